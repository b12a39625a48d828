//! Helpers for tests that run the real `huijiao` binary.
#![allow(dead_code)]

pub mod http;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_huijiao")
}

pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/samples")
}

pub fn expected() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(samples().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Polls `cond` until it holds or `limit` passes; panics with `what` on timeout.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `huijiao check --json --node NODE path`: the report.
pub fn check_json(node: &str, path: &Path) -> Value {
    let out = Command::new(bin()).args(["check", "--json", "--node", node]).arg(path).output().unwrap();
    serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
}

/// The cells of a comma-separated line, for the kit's spreadsheet writers.
pub fn text_cells(line: &str) -> Vec<huijiao_kit::xlsx_writer::Cell> {
    use huijiao_kit::xlsx_writer::Cell;
    line.split(',').map(|c| if c.is_empty() { Cell::Empty } else { Cell::Text(c.to_string()) }).collect()
}

/// One node in a temporary folder, run as a child process.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// The national node with the pages and API on a free port and `token` as the
    /// operators' token (a rate limit no test meets); started. Its HTTP address.
    pub fn national_with_api(token: &str) -> (Node, String) {
        let mut node = Node::new("000000");
        let file = node.dir.path().join("api-token");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let mut cfg = std::fs::read_to_string(&node.config).unwrap();
        cfg = cfg.replace("[inbox]", "[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"api-token\"\nrate_per_minute = 100000\n\n[inbox]");
        std::fs::write(&node.config, cfg).unwrap();
        node.start();
        let f = node.dir.path().join("data/http-address");
        wait_for("the API address", Duration::from_secs(60), || f.exists());
        let addr = std::fs::read_to_string(f).unwrap();
        (node, addr)
    }

    pub fn new(node_id: &str) -> Node {
        Node::with_inbox(node_id, "paths = [\"inbox\"]\nsettle_ms = 100\nrescan_secs = 1\n")
    }

    /// A node whose `[inbox]` section is `inbox` (the inbox folder must be `inbox`,
    /// relative to the node's folder, or `drop/inbox`).
    pub fn with_inbox(node_id: &str, inbox: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("node.toml");
        std::fs::write(&config, format!("node_id = \"{node_id}\"\ndata_dir = \"data\"\nstandalone = true\n\n[inbox]\n{inbox}")).unwrap();
        std::fs::create_dir_all(dir.path().join("inbox")).unwrap();
        Node { dir, config, child: None }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's peak resident memory so far, in MiB (`VmHWM`).
    pub fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid().expect("running"))).unwrap();
        let kib: u64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
        kib / 1024
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took.
    pub fn terminate(&mut self) -> Duration {
        let mut c = self.child.take().expect("running");
        let t = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let status = c.wait().unwrap();
        assert!(status.success(), "node exited with {status}; log:\n{}", self.log());
        t.elapsed()
    }

    /// Every regular file under the node's folder (not following links) that holds
    /// one of `needles`, with the needle found.
    pub fn files_holding(&self, needles: &[&str]) -> Vec<(PathBuf, String)> {
        let mut hits = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                if m.is_dir() {
                    stack.push(e.path());
                } else if m.is_file() {
                    let bytes = std::fs::read(e.path()).unwrap_or_default();
                    for n in needles {
                        if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                            hits.push((e.path(), n.to_string()));
                        }
                    }
                }
            }
        }
        hits
    }

    /// Waits until a report names `name` (whatever folder it went to).
    pub fn wait_report(&self, name: &str) -> Value {
        wait_for(&format!("a report for {name}"), Duration::from_secs(120), || self.reports().iter().any(|(_, r)| r["file"] == name));
        self.reports().into_iter().find(|(_, r)| r["file"] == name).unwrap().1
    }

    pub fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
    }

    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// Starts the daemon with these environment variables set (test hooks).
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("node.log")).unwrap();
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("HUIJIAO_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let status = c.wait().unwrap();
            assert!(status.success(), "node exited with {status}; log:\n{}", self.log());
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// Copies a file into the inbox the way a clerk's tool would: write a temporary
    /// name, then rename.
    pub fn drop_file(&self, name: &str, bytes: &[u8]) {
        let tmp = self.inbox().join(format!("{name}.part"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.inbox().join(name)).unwrap();
    }

    /// All `*.report.json` files under processed/ and rejected/, by file name.
    pub fn reports(&self) -> Vec<(PathBuf, Value)> {
        let mut out = Vec::new();
        for top in ["processed", "rejected"] {
            let Ok(days) = std::fs::read_dir(self.dir.path().join(top)) else { continue };
            for day in days.flatten() {
                for f in std::fs::read_dir(day.path()).unwrap().flatten() {
                    let p = f.path();
                    if p.to_string_lossy().ends_with(".report.json") {
                        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                        out.push((p, v));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Waits until `name` has left the inbox and a report for it exists; returns the
    /// report of the most recent handling.
    pub fn wait_handled(&self, name: &str, count: usize) -> Value {
        wait_for(&format!("{name} to be handled ({count} reports)"), Duration::from_secs(120), || {
            !self.inbox().join(name).exists() && self.reports().iter().filter(|(_, r)| r["file"] == name).count() >= count
        });
        let mut reports: Vec<(PathBuf, Value)> = self.reports().into_iter().filter(|(_, r)| r["file"] == name).collect();
        reports.sort_by_key(|(p, _)| std::fs::metadata(p).unwrap().modified().unwrap());
        reports.pop().unwrap().1
    }

    pub fn query(&self, args: &[&str]) -> Vec<Value> {
        let out = self.cli(&[&["query", "--json", "--config", self.config.to_str().unwrap()], args].concat());
        assert!(out.status.success(), "query failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin()).args(args).output().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Checks a report against one entry of `expected.json` (counts, rejected rows and the
/// fields blamed, warned columns, encoding, refusal). `verdict` may be the `node` entry.
pub fn assert_verdict(file: &str, report: &Value, verdict: &Value) {
    let refused = verdict["refused"].as_bool().unwrap_or(false);
    assert_eq!(!report["refused"].is_null(), refused, "{file}: refused? report: {report}");
    if refused {
        assert_eq!(report["accepted"], 0, "{file}");
        return;
    }
    for key in ["rows", "accepted", "rejected"] {
        if !verdict[key].is_null() {
            assert_eq!(report[key], verdict[key], "{file}: {key}; report: {report}");
        }
    }
    if let Some(enc) = verdict.get("encoding") {
        assert_eq!(&report["encoding"], enc, "{file}: encoding");
    }
    let want = verdict["rejected_rows"].as_object().unwrap();
    let mut got_rows: Vec<u64> = report["errors"].as_array().unwrap().iter().map(|e| e["row"].as_u64().unwrap()).collect();
    got_rows.dedup();
    let mut want_rows: Vec<u64> = want.keys().map(|k| k.parse().unwrap()).collect();
    want_rows.sort();
    assert_eq!(got_rows, want_rows, "{file}: rejected rows");
    for (row, case) in want {
        let fields: Vec<&str> = case["fields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        let errs: Vec<&Value> =
            report["errors"].as_array().unwrap().iter().filter(|e| e["row"].as_u64().unwrap().to_string() == *row).collect();
        if fields != ["*"] {
            assert!(
                errs.iter().all(|e| e["field"].as_str().is_some_and(|f| fields.contains(&f))),
                "{file} row {row}: blamed {errs:?}, expected one of {fields:?}"
            );
        }
        for e in &errs {
            let msg = e["message"].as_str().unwrap();
            assert!(msg.contains(" (") && msg.ends_with(')') && !msg.is_ascii(), "{file} row {row}: message not Chinese (English): {msg}");
        }
    }
    if let Some(cols) = verdict.get("warn_columns") {
        for c in cols.as_array().unwrap() {
            assert!(
                report["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "unknown_column" && &w["field"] == c),
                "{file}: column {c} not warned"
            );
        }
    }
}

/// The sample files a test drops (everything but the docs and the verdicts).
pub fn sample_files() -> Vec<String> {
    let mut v: Vec<String> = expected().keys().cloned().collect();
    v.sort();
    v
}

/// Checks a JSON value against a schema of the OpenAPI document (the subset it uses:
/// `$ref`, `type` (or a list of types), `required`, `properties`,
/// `additionalProperties: false`, `items`).
pub fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return conforms(doc, &doc["components"]["schemas"][name], v, at);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let type_ok = types.is_empty()
        || types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
    if !type_ok {
        return Err(format!("{at}: {v} is not {types:?}"));
    }
    if let Some(obj) = v.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(req.as_str().unwrap()) {
                return Err(format!("{at}: `{req}` missing"));
            }
        }
        for (k, val) in obj {
            match schema["properties"].get(k) {
                Some(s) => conforms(doc, s, val, &format!("{at}.{k}"))?,
                None if schema["additionalProperties"] == false => return Err(format!("{at}: `{k}` is not in the document")),
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            conforms(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}
