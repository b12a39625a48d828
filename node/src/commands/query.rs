//! `huijiao query`: read the store, also while the daemon runs.

use crate::publish::{self, Endpoint, Format};
use crate::store::catalogue::{Catalogue, Indexer, Listing, View};
use crate::store::{Filter, Reader, StoredRecord};
use anyhow::Context;
use huijiao_protocol::table::pad;
use huijiao_protocol::Date;
use serde_json::Value;
use std::io::Write;

/// Prints matching records; returns how many.
pub fn run(reader: &Reader, filter: &Filter, json: bool, count_only: bool, out: &mut dyn Write) -> anyhow::Result<u64> {
    let public = filter.public.is_some();
    if count_only {
        let n = reader.for_each(filter, |_| Ok::<_, anyhow::Error>(()))?;
        writeln!(out, "{n}")?;
        return Ok(n);
    }
    if !json {
        table_row(out, ["reg_no", "ver", "kind", "region", "reg_date", "状态", "title"])?;
    }
    let n = reader.for_each(filter, |r| {
        if json {
            writeln!(out, "{}", Value::Object(publish::record_json(&r, public)))?;
        } else {
            print_row(out, &r)?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    if !json {
        writeln!(out, "({n} records)")?;
    }
    Ok(n)
}

fn print_row(out: &mut dyn Write, r: &StoredRecord) -> std::io::Result<()> {
    let title: String = r.record.title.chars().take(30).collect();
    let state = if r.withdrawn {
        "撤销"
    } else if r.record.secret == huijiao_protocol::Secret::Internal {
        "内部"
    } else {
        "公开"
    };
    let (version, date) = (r.version.to_string(), r.record.reg_date.to_string());
    table_row(out, [&r.record.reg_no, &version, r.record.kind.zh(), &r.record.region, &date, state, &title])
}

fn table_row(out: &mut dyn Write, c: [&str; 7]) -> std::io::Result<()> {
    writeln!(out, "{:<18} {:>3} {:<8} {:<6} {:<10} {:<4} {}", c[0], c[1], c[2], c[3], c[4], c[5], c[6])
}

/// Parses a `--since` / `--until` value in any date form the spec accepts.
pub fn parse_date_arg(s: &str) -> anyhow::Result<Date> {
    Date::parse(s).map_err(|_| anyhow::anyhow!("`{s}` is not a date (use YYYY-MM-DD)"))
}

/// What `query` does with the catalogue.
pub enum Action {
    /// Print records (all of them unless `limit`), or only how many with `count`.
    List { limit: Option<usize>, count: bool },
    /// Print a statistics table.
    Stats,
    /// Write an export to the file (standard output if none).
    Export(Option<std::path::PathBuf>),
}

/// Brings the catalogue up to date with the store (when this process may write it),
/// saying so on stderr when that is more than a moment's work.
pub fn make_current(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let mut ix = match Indexer::open(data_dir) {
        Ok(ix) => ix,
        Err(e) => {
            eprintln!("huijiao: cannot update the catalogue ({e:#}); answering from it as it is");
            return Ok(());
        }
    };
    let mut said = false;
    loop {
        let n = ix.catch_up(5000)?;
        if n == 0 {
            return Ok(());
        }
        if !said {
            eprintln!("huijiao: bringing the catalogue up to date with the store…");
            said = true;
        }
    }
}

/// `huijiao reindex`: rebuilds the catalogue; returns how many records it holds.
pub fn reindex(data_dir: &std::path::Path, progress: &mut dyn Write) -> anyhow::Result<u64> {
    let mut ix = Indexer::open(data_dir)?;
    let started = std::time::Instant::now();
    let n = ix.rebuild()?;
    // Changes that came in meanwhile.
    while ix.catch_up(5000)? > 0 {}
    writeln!(progress, "indexed {n} records in {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(n)
}

/// `query` over the catalogue: parameters as the HTTP API takes them.
pub fn run_catalogue(
    cfg: &crate::config::Config,
    pairs: &[(String, String)],
    action: Action,
    view: View,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let endpoint = match action {
        Action::List { .. } => Endpoint::List,
        Action::Stats => Endpoint::Stats,
        Action::Export(_) => Endpoint::Export,
    };
    let req =
        publish::parse(pairs, endpoint, &cfg.regions).map_err(|e| anyhow::anyhow!("--{}: {}", e.param.replace('_', "-"), e.message))?;
    make_current(&cfg.data_dir)?;
    let cat = Catalogue::open(&cfg.data_dir)?;
    match action {
        Action::List { limit, count } => {
            if count {
                writeln!(out, "{}", cat.count_all(req.q.as_deref(), &req.filters, view)?)?;
                return Ok(0);
            }
            if !json {
                table_row(out, ["reg_no", "ver", "kind", "region", "reg_date", "状态", "title"])?;
            }
            let mut shown = 0usize;
            let mut cursor = None;
            loop {
                let want = limit.map_or(publish::MAX_LIMIT, |l| (l - shown).min(publish::MAX_LIMIT));
                if want == 0 {
                    break;
                }
                let listing = Listing { q: req.q.clone(), filters: req.filters.clone(), sort: req.sort, limit: want, cursor, view };
                let page = cat.list(&listing).map_err(|e| anyhow::anyhow!("{e}"))?;
                for h in &page.hits {
                    if json {
                        writeln!(out, "{}", Value::Object(publish::hit_json(h, view, false)))?;
                    } else {
                        print_row(out, &h.stored)?;
                    }
                }
                shown += page.hits.len();
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            if !json {
                writeln!(out, "({shown} records)")?;
            }
        }
        Action::Stats => {
            let by = req.by.expect("stats have a grouping");
            let groups = publish::stats(&cat, &req, view, &cfg.regions)?;
            let total: u64 = groups.iter().map(|g| g.count).sum();
            if json {
                let v = serde_json::json!({"by": publish::group_label(by), "total": total, "groups": groups});
                writeln!(out, "{v}")?;
            } else {
                let label = publish::group_label(by);
                writeln!(out, "{} {} {:>10}", pad(label, 18), pad("名称", 16), "count")?;
                for g in &groups {
                    let key = if g.key.is_empty() { "(未填)" } else { &g.key };
                    writeln!(out, "{} {} {:>10}", pad(key, 18), pad(&g.name, 16), g.count)?;
                }
                writeln!(out, "{} {} {total:>10}", pad("合计", 18), pad("", 16))?;
                if matches!(view, View::Public { .. }) {
                    writeln!(out, "(public records only; --operator counts every record)")?;
                }
            }
        }
        Action::Export(path) => {
            let format = req.format.unwrap_or(Format::Csv);
            let n = match &path {
                Some(p) => {
                    // Written beside the target and renamed: a half-written export is never
                    // left under the name asked for.
                    let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
                    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
                    let n = {
                        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
                        publish::export(&cat, req.q.as_deref(), &req.filters, view, format, &mut w)?
                    };
                    tmp.as_file().sync_all()?;
                    tmp.persist(p).with_context(|| format!("cannot write {}", p.display()))?;
                    n
                }
                None => {
                    let mut w = std::io::BufWriter::new(&mut *out);
                    publish::export(&cat, req.q.as_deref(), &req.filters, view, format, &mut w)?
                }
            };
            let scope = if matches!(view, View::Public { .. }) { "public records, public fields" } else { "every record, every field" };
            match &path {
                Some(p) => eprintln!("exported {n} records ({scope}) to {}", p.display()),
                None => eprintln!("exported {n} records ({scope})"),
            }
        }
    }
    Ok(0)
}
