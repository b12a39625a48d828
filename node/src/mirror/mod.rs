//! The PostgreSQL mirror (docs/open-data.md): follows this node's own change log into
//! a PostgreSQL schema for analysts and scaled-out reads — never a second source of
//! truth. `huijiao mirror` runs it in the foreground; a `[mirror]` section has the
//! daemon run it. Each batch of the log (the records it touched, as they are now; the
//! changes; the cursor) is one PostgreSQL transaction (`pg`); the store is read on the
//! blocking pool. A store restored from another copy starts a new log: the mirror
//! notices and follows it from its start. Progress and errors go to
//! `mirror-<schema>.json` in the data folder, which `status` and `/metrics` read.
//!
//! Rooms: this file (the loop, views, status), `pg` (the schema and the batch in
//! PostgreSQL), `copy` (COPY's binary format).

mod copy;
pub mod pg;

use crate::config::Config;
use crate::store::{Reader, StoredRecord};
use anyhow::Context;
use huijiao_protocol::{Date, Secret};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Changes per batch (one PostgreSQL transaction).
pub const BATCH: usize = 5000;

pub use crate::config::MirrorView as View;

/// Whether `view` holds `r` on `today`.
pub fn shows(view: View, r: &StoredRecord, today: Date) -> bool {
    match view {
        View::Operator => true,
        View::Public => !r.withdrawn && r.record.secret == Secret::Public && r.record.embargo_until.is_none_or(|e| e < today),
    }
}

/// How to run a mirror.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub schema: String,
    pub view: View,
    /// Exit when caught up (`--once`) instead of following.
    pub once: bool,
}

/// What a mirror last reported, in `mirror-<schema>.json` beside the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MirrorStatus {
    pub schema: String,
    pub view: String,
    /// The last change of the store's log in PostgreSQL.
    pub cursor: i64,
    /// The store's last change when the mirror last looked.
    pub last_seq: i64,
    /// When it last committed or found nothing to do (ms).
    pub ok_at: Option<i64>,
    /// The last error, while it lasts, and since when (ms).
    pub error: Option<String>,
    pub failing_since: Option<i64>,
}

impl MirrorStatus {
    /// Changes of the store not yet in PostgreSQL.
    pub fn lag(&self) -> i64 {
        (self.last_seq - self.cursor).max(0)
    }
}

pub fn status_path(data_dir: &Path, schema: &str) -> PathBuf {
    data_dir.join(format!("mirror-{schema}.json"))
}

/// Every mirror's last report (one file per schema).
pub fn statuses(data_dir: &Path) -> Vec<MirrorStatus> {
    let mut out: Vec<MirrorStatus> = std::fs::read_dir(data_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("mirror-") && e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect();
    out.sort_by(|a, b| a.schema.cmp(&b.schema));
    out
}

fn report(data_dir: &Path, s: &MirrorStatus) {
    let path = status_path(data_dir, &s.schema);
    if let Err(e) = crate::fsx::write_atomic(&path, serde_json::to_vec(s).unwrap_or_default()) {
        tracing::warn!("cannot write {}: {e:#}", path.display());
    }
}

/// Runs `f` on a reader of the store at `db`, on the blocking pool.
async fn read<T: Send + 'static>(db: &Path, f: impl FnOnce(&Reader) -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    let db = db.to_path_buf();
    tokio::task::spawn_blocking(move || with_reader(&db, f)).await.context("the store reader task failed")?
}

fn with_reader<T>(db: &Path, f: impl FnOnce(&Reader) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let r = Reader::open(db)?;
    f(&r)
}

/// Follows the store into PostgreSQL until `shutdown` (or, with `once`, until caught
/// up). Errors are reported and retried with a growing pause (with `once`, returned).
pub async fn run(cfg: &Config, opts: &Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut pause = Duration::from_secs(1);
    let mut status = MirrorStatus {
        schema: opts.schema.clone(),
        view: opts.view.as_str().into(),
        cursor: 0,
        last_seq: 0,
        ok_at: None,
        error: None,
        failing_since: None,
    };
    loop {
        match session(cfg, opts, &shutdown, &mut status).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let now = crate::clock::now_ms();
                status.error = Some(format!("{e:#}"));
                status.failing_since.get_or_insert(now);
                report(&cfg.data_dir, &status);
                if opts.once {
                    return Err(e);
                }
                tracing::warn!(schema = %opts.schema, "the PostgreSQL mirror failed; retrying in {} s: {e:#}", pause.as_secs());
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// One piece: a connection's life — connect and lock, then batch after batch from the
/// cursor in PostgreSQL (or from the start of a new log), the public view's daily
/// embargo sweep when idle, and the report after each step. While PostgreSQL applies
/// one batch, the next is read from the store and turned into COPY rows on the
/// blocking pool, from the state the batch being applied will leave; it is used only
/// if PostgreSQL then shows exactly that state.
async fn session(cfg: &Config, opts: &Options, shutdown: &CancellationToken, status: &mut MirrorStatus) -> anyhow::Result<()> {
    let client = pg::connect(&opts.url).await?;
    let mut pg = pg::Pg::prepare(client, &opts.schema, opts.view, &cfg.node_id).await?;
    tracing::info!(schema = %opts.schema, view = opts.view.as_str(), "PostgreSQL mirror connected");
    let db = cfg.db_path();
    let view = opts.view;
    let mut ahead: Option<(pg::State, tokio::task::JoinHandle<anyhow::Result<Next>>)> = None;
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let state = pg.state().await?;
        let today = crate::clock::today();
        // The batch read ahead, when it was read from the state PostgreSQL now shows.
        let ready = match ahead.take() {
            Some((expected, handle)) if expected == state => Some(handle.await.context("the store reader task failed")??),
            Some((_, handle)) => {
                handle.abort();
                None
            }
            None => None,
        };
        let next = match ready {
            Some(next) if next.batch.today == today => next,
            _ => {
                let state = state.clone();
                read(&db, move |r| next_batch(r, view, &state, today)).await?
            }
        };
        let Next { mut batch, last } = next;
        if batch.reset {
            tracing::info!(schema = %opts.schema, "the store has a new change log (restored or replaced): mirroring it from its start");
        }
        if batch.changes == 0 {
            pg.caught_up().await?;
            // Idle: in the public view, records whose embargo lapsed since the last sweep.
            let due = match (&state.swept, view) {
                (Some(s), View::Public) if *s != today.to_string() => {
                    let from = Date::parse(s).unwrap_or(today);
                    Some(read(&db, move |r| Ok(r.embargoes_lapsed(from, today)?)).await?)
                }
                _ => None,
            };
            if let Some(due) = due {
                batch.records = read(&db, move |r| {
                    let records = r.current(&due.iter().map(String::as_str).collect::<Vec<_>>())?;
                    Ok(pg::record_rows(view, today, &records))
                })
                .await?;
                batch.swept = Some(today.to_string());
            }
            if batch.reset || batch.swept.is_some() {
                pg.apply(&batch).await?;
            }
            *status = MirrorStatus {
                cursor: batch.cursor,
                last_seq: last,
                ok_at: Some(crate::clock::now_ms()),
                error: None,
                failing_since: None,
                ..status.clone()
            };
            report(&cfg.data_dir, status);
            if opts.once {
                return Ok(());
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        // The state this batch leaves in PostgreSQL, and the next batch read from it.
        let leaves = pg::State { log_id: batch.log_id.clone(), cursor: batch.cursor, swept: batch.swept.clone().or(state.swept.clone()) };
        let following = {
            let (db, leaves) = (db.clone(), leaves.clone());
            tokio::task::spawn_blocking(move || with_reader(&db, |r| next_batch(r, view, &leaves, today)))
        };
        ahead = Some((leaves, following));
        pg.apply(&batch).await?;
        *status = MirrorStatus {
            cursor: batch.cursor,
            last_seq: last.max(batch.cursor),
            ok_at: Some(crate::clock::now_ms()),
            error: None,
            failing_since: None,
            ..status.clone()
        };
        report(&cfg.data_dir, status);
    }
}

/// The next batch from the store, and the log's last seq when it was read.
struct Next {
    batch: pg::Batch,
    last: i64,
}

/// Reads the batch that follows `state` in PostgreSQL (the whole log again when the
/// store has a new one) and turns it into COPY rows: the changes, and the records they
/// touched as the store holds them now.
fn next_batch(r: &Reader, view: View, state: &pg::State, today: Date) -> anyhow::Result<Next> {
    let (log_id, last) = (r.log_id()?, r.last_seq()?);
    let new_log = state.log_id != log_id;
    let reset = new_log && (state.cursor > 0 || !state.log_id.is_empty());
    let cursor = if new_log { 0 } else { state.cursor };
    let first_sweep = (view == View::Public && state.swept.is_none()).then(|| today.to_string());
    let changes = r.log_after(cursor, BATCH)?;
    let mut touched: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for c in &changes {
        if seen.insert(c.reg_no.as_str()) {
            touched.push(c.reg_no.as_str());
        }
    }
    let records = r.current(&touched)?;
    let found: std::collections::HashSet<&str> = records.iter().map(|r| r.record.reg_no.as_str()).collect();
    let batch = pg::Batch {
        changes: changes.len(),
        change_rows: if view == View::Operator { pg::change_rows(&changes) } else { Default::default() },
        records: pg::record_rows(view, today, &records),
        missing: touched.iter().filter(|t| !found.contains(*t)).map(|t| t.to_string()).collect(),
        cursor: changes.last().map_or(cursor, |c| c.seq),
        log_id,
        reset,
        swept: first_sweep,
        today,
    };
    Ok(Next { batch, last })
}
