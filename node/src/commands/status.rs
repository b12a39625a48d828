//! `huijiao status`: what a node holds and when it last took something in.

use crate::config::Config;
use crate::store::Reader;
use std::io::Write;

pub fn run(cfg: &Config, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let reader = Reader::open(&cfg.db_path())?;
    let s = reader.status()?;
    let waiting: usize = cfg
        .inboxes
        .iter()
        .map(|i| {
            std::fs::read_dir(&i.path)
                .map(|d| d.flatten().filter(|e| !crate::ingest::is_ignored_name(&e.file_name().to_string_lossy())).count())
                .unwrap_or(0)
        })
        .sum();
    let children = reader.children()?;
    let uplink = reader.uplink()?;
    let conflicts = reader.quarantine()?.len();
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["inbox_waiting"] = waiting.into();
        v["children"] = serde_json::to_value(&children)?;
        v["uplink"] = serde_json::to_value(&uplink)?;
        v["conflicts"] = conflicts.into();
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let at = |ms: Option<i64>| ms.map_or_else(|| "never".to_string(), crate::clock::rfc3339_china);
    writeln!(out, "node            {}", s.node_id)?;
    writeln!(out, "records         {} ({} withdrawn)", s.records, s.withdrawn)?;
    writeln!(out, "change log      {} changes, last seq {}, last at {}", s.changes, s.last_seq, at(s.last_change_at))?;
    writeln!(out, "files ingested  {}, last at {}", s.files, at(s.last_file_at))?;
    writeln!(out, "inbox waiting   {waiting}")?;
    if let Some(u) = uplink {
        writeln!(out, "uplink          to {}: {}, parent holds up to seq {} of {}", u.parent, u.state, u.acked, s.last_seq)?;
        if let Some(e) = &u.last_error {
            writeln!(out, "                last error: {e}")?;
        }
    }
    if conflicts > 0 {
        writeln!(out, "conflicts       {conflicts} quarantined (huijiao conflicts --config …)")?;
    }
    if !children.is_empty() {
        writeln!(out, "children        {:<8} {:>10} {:>10}  {:<29}  last error", "node", "cursor", "changes", "last seen")?;
        for c in &children {
            writeln!(
                out,
                "                {:<8} {:>10} {:>10}  {:<29}  {}",
                c.child,
                c.cursor,
                c.changes,
                at(c.last_seen_at),
                c.last_error.as_deref().unwrap_or("")
            )?;
        }
    }
    Ok(())
}
