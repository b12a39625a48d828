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
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["inbox_waiting"] = waiting.into();
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let at = |ms: Option<i64>| ms.map_or_else(|| "never".to_string(), crate::clock::rfc3339_china);
    writeln!(out, "node            {}", s.node_id)?;
    writeln!(out, "records         {} ({} withdrawn)", s.records, s.withdrawn)?;
    writeln!(out, "change log      {} changes, last seq {}, last at {}", s.changes, s.last_seq, at(s.last_change_at))?;
    writeln!(out, "files ingested  {}, last at {}", s.files, at(s.last_file_at))?;
    writeln!(out, "inbox waiting   {waiting}")?;
    Ok(())
}
