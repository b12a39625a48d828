//! Every sample file gives exactly its `expected.json` verdict, through `huijiao check`
//! and through a running daemon.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

#[test]
fn check_gives_every_sample_its_verdict_in_argument_order() {
    let files = sample_files();
    let paths: Vec<String> = files.iter().map(|f| samples().join(f).display().to_string()).collect();
    let out = Command::new(bin()).args(["check", "--json", "--node", "000000"]).args(&paths).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "some samples have rejected rows");
    let lines: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), files.len(), "one JSON object per file");
    let expected = expected();
    for (file, report) in files.iter().zip(&lines) {
        assert_eq!(report["file"], file.as_str(), "argument order");
        assert_verdict(file, report, &expected[file]);
        assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    }
}

#[test]
fn check_exit_codes() {
    let clean = samples().join("gb18030-rare.csv");
    let out = Command::new(bin()).args(["check"]).arg(&clean).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let out = Command::new(bin()).args(["check"]).arg(samples().join("junk.csv")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(bin()).args(["check", "--bogus"]).arg(&clean).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin()).args(["check", "--node", "12345"]).arg(&clean).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin()).args(["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no files is a usage error");
    // Jurisdiction only with --node: a county rejects the rows of other counties.
    let out = Command::new(bin()).args(["check", "--json", "--node", "530524"]).arg(&clean).output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(r["accepted"].as_u64().unwrap() >= 1 && r["rejected"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["errors"].as_array().unwrap().iter().all(|e| e["code"] == "outside_jurisdiction" && e["field"] == "region"));
}

#[test]
fn the_daemon_gives_every_sample_its_verdict_and_keeps_values_exact() {
    let expected = expected();
    let mut node = Node::new("000000");
    node.start();
    let files: Vec<String> = sample_files().into_iter().filter(|f| expected[f].get("node_after").is_none()).collect();
    for f in &files {
        node.drop_file(f, &std::fs::read(samples().join(f)).unwrap());
    }
    for f in &files {
        let report = node.wait_handled(f, 1);
        assert_verdict(f, &report, &expected[f]);
        let top = if expected[f]["refused"].as_bool().unwrap() { "rejected" } else { "processed" };
        let here = node.reports().into_iter().find(|(_, r)| r["file"] == f.as_str()).unwrap().0;
        assert!(here.to_string_lossy().contains(&format!("/{top}/")), "{f} went to {}", here.display());
        for (reg_no, fields) in expected[f].get("must_keep").and_then(Value::as_object).into_iter().flatten() {
            let got = node.query(&["--reg-no", reg_no]);
            assert_eq!(got.len(), 1, "{reg_no}");
            for (k, v) in fields.as_object().unwrap() {
                assert_eq!(&got[0][k], v, "{reg_no}.{k} must come back byte-exact");
            }
        }
    }
    // Files whose verdict depends on the store: dropped after the file they follow.
    for f in sample_files() {
        let Some(after) = expected[&f].get("node_after") else { continue };
        assert!(files.contains(&after.as_str().unwrap().to_string()));
        node.drop_file(&f, &std::fs::read(samples().join(&f)).unwrap());
        let report = node.wait_handled(&f, 1);
        let verdict = &expected[&f]["node"];
        assert_verdict(&f, &report, verdict);
        for reg_no in verdict["withdrawn"].as_array().unwrap() {
            let got = node.query(&["--reg-no", reg_no.as_str().unwrap()]);
            assert_eq!(got[0]["_withdrawn"], true, "{reg_no}");
            assert_eq!(got[0]["_version"], 2, "{reg_no}: a withdrawal is a new version");
        }
    }
    // Every accepted row is stored once: the totals of the reports match the store.
    let accepted: u64 =
        node.reports().iter().filter(|(_, r)| r["file"] != "withdraw.csv").map(|(_, r)| r["accepted"].as_u64().unwrap()).sum();
    let all = node.query(&[]);
    assert_eq!(all.len() as u64, accepted);
    // Classified rows never reach the store, and the public view hides what it must.
    assert!(all.iter().all(|r| ["公开", "内部"].contains(&r["secret"].as_str().unwrap())));
    let public = node.query(&["--public"]);
    assert!(!public.is_empty() && public.len() < all.len());
    for r in &public {
        for hidden in ["secret", "funding", "benefit", "contact", "phone", "embargo_until"] {
            assert!(r.get(hidden).is_none(), "public view shows {hidden}");
        }
        assert_eq!(r["_withdrawn"], false);
        assert!(r["ip"].as_array().unwrap().iter().all(|e| !e.as_str().unwrap().starts_with("技术秘密")));
    }
    node.stop();
    let log = node.log();
    assert!(!log.contains("绝密") && !log.contains("机密"), "the log must not echo classified rows");
}
