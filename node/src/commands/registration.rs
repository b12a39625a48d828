//! `huijiao unit …` and `huijiao review …`: the office's side of online registration
//! from the command line. With the daemon running the command goes through its admin
//! socket (the daemon holds the store); with the daemon stopped it runs on the store
//! itself. Either way the same service carries it out.

use crate::config::Config;
use crate::registration::{Command, Registration};
use anyhow::Context;
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;

/// Carries out `c`: the answer, or the refusal as `{"status", "message", "errors"}`.
pub fn run(cfg: &Config, c: Command) -> anyhow::Result<Result<Value, Value>> {
    let Some(reg) = &cfg.registration else {
        anyhow::bail!("online registration is off at this node: its config has no [registration] section (docs/registration.md)");
    };
    if let Some(answer) = crate::admin::command(&cfg.data_dir, &c) {
        let answer = answer?;
        return Ok(match (answer.get("ok"), answer.get("error")) {
            (Some(ok), _) => Ok(ok.clone()),
            (None, Some(e)) => Err(e.clone()),
            _ => anyhow::bail!("the daemon answered something else: {answer}"),
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    rt.block_on(async {
        let store = crate::store::Store::open(&cfg.db_path(), &cfg.node_id)?;
        let service = Arc::new(Registration {
            store,
            regions: cfg.regions.clone(),
            node: cfg.node_id.clone(),
            office: reg.office.clone(),
            data_dir: cfg.data_dir.clone(),
            reviewer_keys: Default::default(),
            auth: Default::default(),
        });
        Ok(match service.command(c).await {
            Ok(v) => Ok(v),
            Err(r) => Err(crate::registration::refusal_json(&r)),
        })
    })
}

/// Prints a refusal for a person: the message, then each rule broken.
pub fn print_refusal(e: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "refused ({}): {}", e["status"], e["message"].as_str().unwrap_or_default())?;
    for err in e["errors"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {}: {} — {}",
            err["field"].as_str().unwrap_or("—"),
            err["code"].as_str().unwrap_or_default(),
            err["message"].as_str().unwrap_or_default()
        )?;
    }
    Ok(())
}

/// Prints an answer for a person.
pub fn print(c: &str, v: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    match c {
        "unit_add" | "unit_reset" => {
            writeln!(out, "{} {}", v["uscc"].as_str().unwrap_or_default(), v["name"].as_str().unwrap_or_default())?;
            writeln!(out, "one-time password: {}", v["password"].as_str().unwrap_or_default())?;
            writeln!(out, "(shown once: give it to the unit; it must be changed at first sign-in)")
        }
        "unit_list" => {
            for u in v["units"].as_array().into_iter().flatten() {
                let state = if u["disabled"].as_bool() == Some(true) {
                    "disabled"
                } else if u["must_change"].as_bool() == Some(true) {
                    "one-time password not yet changed"
                } else {
                    "active"
                };
                writeln!(out, "{}  {}  {state}", u["uscc"].as_str().unwrap_or_default(), u["name"].as_str().unwrap_or_default())?;
            }
            Ok(())
        }
        "review_list" => {
            let now = crate::clock::now_ms();
            for s in v["submissions"].as_array().into_iter().flatten() {
                let age = s["submitted_at_ms"].as_i64().map(|t| (now - t).max(0) / 60_000);
                writeln!(
                    out,
                    "{}  {:<11}  {}  {}{}",
                    s["id"].as_str().unwrap_or_default(),
                    s["state"].as_str().unwrap_or_default(),
                    s["unit"]["name"].as_str().unwrap_or_default(),
                    s["record"]["title"].as_str().unwrap_or("(no title)"),
                    age.map(|m| format!("  (waiting {m} min)")).unwrap_or_default()
                )?;
            }
            Ok(())
        }
        "reviewer_add" => {
            writeln!(out, "{} {}", v["login"].as_str().unwrap_or_default(), v["name"].as_str().unwrap_or_default())?;
            writeln!(out, "one-time password: {}", v["password"].as_str().unwrap_or_default())?;
            writeln!(out, "(shown once: the reviewer signs in at /admin with it and changes it)")
        }
        "reviewer_list" => {
            for r in v["reviewers"].as_array().into_iter().flatten() {
                let state = if r["disabled"].as_bool() == Some(true) {
                    "disabled"
                } else if r["must_change"].as_bool() == Some(true) {
                    "one-time password not yet changed"
                } else {
                    "active"
                };
                writeln!(out, "{}  {}  {state}", r["login"].as_str().unwrap_or_default(), r["name"].as_str().unwrap_or_default())?;
            }
            Ok(())
        }
        "review_approve" => writeln!(out, "approved: {} (version {})", v["reg_no"].as_str().unwrap_or_default(), v["version"]),
        _ => writeln!(out, "{}", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}
