//! Local ingest: rows from an inbox file become changes at this node, their origin.

use super::error::{bail, Context, Result};
use super::rows::{append_change, insert_record, update_record, withdraw_record, NewChange, RecordCols, Seqs};
use super::StoreError;
use super::Writer;
use huijiao_protocol::apply::{decide_local, Held, Local, LocalRefusal};
use huijiao_protocol::record::{sha256, withdraw_hash};
use huijiao_protocol::report::{zh_en, Report, RowError};
use huijiao_protocol::validate::Row;
use huijiao_protocol::wire::Op;
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use std::sync::mpsc::Receiver;

/// The journal entry of a file being ingested.
#[derive(Debug, Clone)]
pub struct FileMeta {
    pub sha256: String,
    pub name: String,
    /// Where the file lies in the inbox.
    pub source_path: String,
    /// Where it will be moved, chosen before the commit so a restart can finish the move.
    pub dest: String,
    pub received_at: i64,
}

/// A journal entry as stored.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub meta: FileMeta,
    pub report: Report,
    pub moved: bool,
}

/// What the inbox streams to [`Writer::ingest_part`]: valid rows in chunks, then
/// either `Commit` (a part ends: everything sent so far is committed, with the file's
/// progress) or the final report (which already counts the rows the store refused). A
/// sender that goes away without either rolls back the part in progress; parts
/// committed before it stay, and the file resumes after them.
pub enum IngestMsg {
    Rows(Vec<Prepared>),
    /// The part ends with the valid rows up to this data row of the file.
    Commit {
        through_row: u64,
    },
    Done(Box<Report>),
}

/// How far a file committed in parts got (spec v1.2 §2), as a restart finds it.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub dest: String,
    pub received_at: i64,
    /// The file row of the last valid row committed: a resume sends only later rows.
    pub rows_done: u64,
    pub parts: u64,
    /// The rows the store refused in committed parts, by row.
    pub refused: Vec<RowError>,
}

/// How a part ended.
#[derive(Debug)]
pub enum PartEnd {
    /// Committed with the file's progress; more parts follow.
    Committed,
    /// The file's last part, with its journal entry.
    Done(Box<IngestSummary>),
}

/// How often a file may be started without finishing (the node died while reading
/// it, or was restarted) before it is set aside: enough for a few restarts by an
/// operator, few enough that a file that kills the node cannot keep it down.
pub const MAX_ATTEMPTS: i64 = 5;

/// A valid row made ready for the store off the writer thread: the canonical body and
/// its hash are computed by the sender, so the writer only writes.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub row_no: u64,
    pub reg_no: String,
    pub upsert: Option<PreparedRecord>,
}

/// The columns and body of an upsert.
#[derive(Debug, Clone)]
pub struct PreparedRecord {
    pub body: String,
    pub hash: [u8; 32],
    pub region: String,
    pub(crate) cols: RecordCols,
}

impl Prepared {
    pub fn new(row_no: u64, row: Row) -> Prepared {
        match row {
            Row::Withdraw { reg_no } => Prepared { row_no, reg_no, upsert: None },
            Row::Upsert(rec) => {
                let body = rec.canonical_string();
                let hash = sha256(body.as_bytes());
                Prepared {
                    row_no,
                    upsert: Some(PreparedRecord {
                        hash,
                        cols: RecordCols::of(&huijiao_protocol::record::RecordFacts::of(&rec)),
                        region: rec.region,
                        body,
                    }),
                    reg_no: rec.reg_no,
                }
            }
        }
    }
}

/// The result of one committed file.
#[derive(Debug, Clone)]
pub struct IngestSummary {
    /// The final report, including rows only the store could reject.
    pub report: Report,
    pub inserted: u64,
    pub updated: u64,
    pub withdrawn: u64,
    pub unchanged: u64,
}

/// The state of a record that a row is checked against.
pub(crate) struct Current {
    pub(crate) origin: String,
    pub(crate) version: i64,
    pub(crate) withdrawn: bool,
    pub(crate) hash: Vec<u8>,
    pub(crate) region: String,
}

pub(super) enum Applied {
    Inserted,
    Updated,
    Withdrawn,
    Unchanged,
}

fn store_error(row: u64, reg_no: &str, field: &str, code: &str, zh: &str, en: &str) -> RowError {
    RowError { row, reg_no: Some(reg_no.to_string()), field: Some(field.to_string()), code: code.to_string(), message: zh_en(zh, en) }
}

impl Writer {
    /// The journal entry for a file hash, if the file was ingested before.
    pub fn lookup_file(&self, sha256: &str) -> Result<Option<FileEntry>> {
        self.conn
            .query_row(
                "SELECT sha256, name, source_path, dest, received_at, report, moved FROM files WHERE sha256 = ?1",
                [sha256],
                file_entry,
            )
            .optional()?
            .transpose()
    }

    /// Files committed but not yet moved out of the inbox (a crash in between).
    pub fn pending_moves(&self) -> Result<Vec<FileEntry>> {
        let mut st = self.conn.prepare("SELECT sha256, name, source_path, dest, received_at, report, moved FROM files WHERE moved = 0")?;
        let rows = st.query_map([], file_entry)?;
        rows.map(|r| r?).collect()
    }

    /// Whether an unfinished move, or a file in progress, has already claimed `dest`.
    pub fn dest_reserved(&self, dest: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM files WHERE dest = ?1 AND moved = 0 UNION ALL SELECT 1 FROM file_progress WHERE dest = ?1",
                [dest],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The progress of a file committed in parts and not finished (a restart resumes
    /// it); `None` for a file not begun, or begun in one part.
    pub fn file_progress(&self, sha256: &str) -> Result<Option<Progress>> {
        let found = self
            .conn
            .query_row("SELECT dest, received_at, rows_done, parts FROM file_progress WHERE sha256 = ?1", [sha256], |r| {
                Ok(Progress {
                    dest: r.get(0)?,
                    received_at: r.get(1)?,
                    rows_done: r.get::<_, i64>(2)? as u64,
                    parts: r.get::<_, i64>(3)? as u64,
                    refused: Vec::new(),
                })
            })
            .optional()?;
        let Some(mut p) = found else { return Ok(None) };
        let mut st = self.conn.prepare("SELECT error FROM file_progress_refused WHERE sha256 = ?1 ORDER BY row")?;
        let errors: Vec<String> = st.query_map([sha256], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        for e in errors {
            p.refused.push(serde_json::from_str(&e).context("corrupt refusal in the file progress")?);
        }
        Ok(Some(p))
    }

    /// Forgets a file's progress (its bytes changed before it finished: the parts it
    /// committed stay in the store as the valid rows they were).
    pub fn drop_progress_of(&self, source_path: &str, keep_sha256: &str) -> Result<()> {
        let olds: Vec<String> = self
            .conn
            .prepare("SELECT sha256 FROM file_progress WHERE source_path = ?1 AND sha256 <> ?2")?
            .query_map([source_path, keep_sha256], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for sha in olds {
            tracing::warn!(file = %source_path, "a file changed after parts of it were committed; those rows stay, the new content is read as a new file");
            self.conn.execute("DELETE FROM file_progress WHERE sha256 = ?1", [&sha])?;
            self.conn.execute("DELETE FROM file_progress_refused WHERE sha256 = ?1", [&sha])?;
        }
        Ok(())
    }

    pub fn mark_moved(&self, sha256: &str) -> Result<()> {
        self.conn.execute("UPDATE files SET moved = 1 WHERE sha256 = ?1", [sha256])?;
        Ok(())
    }

    /// Stores one file's valid rows and its journal entry, in one durable transaction
    /// or in parts (as the sender's `Commit`s say), on this one job of the writer.
    pub fn ingest_file(
        &mut self,
        meta: FileMeta,
        rows: Receiver<IngestMsg>,
        answers: std::sync::mpsc::SyncSender<Vec<RowError>>,
    ) -> Result<IngestSummary> {
        loop {
            if let PartEnd::Done(summary) = self.ingest_part(&meta, &rows, &answers)? {
                return Ok(*summary);
            }
        }
    }

    /// Stores one part of a file: rows arrive in chunks while the sender is still
    /// validating later ones; each chunk is answered on `answers` with the rows the
    /// store refused (`unknown_record`, `not_origin`, `withdrawn_record`), so the
    /// sender can count them and echo them in `NAME.rejected.csv`. `Commit` ends the
    /// part durably with the file's progress (the uplink may send it at once); the
    /// final report ends the file with its journal entry. Between parts the writer is
    /// free for other work: each part is its own job.
    ///
    /// One piece: a part's transaction from its first row to its commit, with the
    /// progress and journal rows that must be in the same transaction.
    pub fn ingest_part(
        &mut self,
        meta: &FileMeta,
        rows: &Receiver<IngestMsg>,
        answers: &std::sync::mpsc::SyncSender<Vec<RowError>>,
    ) -> Result<PartEnd> {
        let node = self.node_id.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut seqs = Seqs::start(&tx)?;
        let mut summary =
            IngestSummary { report: Report::new(&meta.name, &meta.sha256), inserted: 0, updated: 0, withdrawn: 0, unchanged: 0 };
        let mut refused_here: Vec<RowError> = Vec::new();
        // The first 16 hex digits name the file well enough for an audit; the full
        // hash is in the journal, and 48 bytes less per change add up.
        let source = format!("file:{}", &meta.sha256[..meta.sha256.len().min(16)]);
        let report = loop {
            match rows.recv() {
                Ok(IngestMsg::Rows(chunk)) => {
                    let now = crate::clock::now_ms();
                    let mut refused = Vec::new();
                    for row in chunk {
                        match apply_local(&tx, &mut seqs, &node, &source, row, now)? {
                            Ok(Applied::Inserted) => summary.inserted += 1,
                            Ok(Applied::Updated) => summary.updated += 1,
                            Ok(Applied::Withdrawn) => summary.withdrawn += 1,
                            Ok(Applied::Unchanged) => summary.unchanged += 1,
                            Err(e) => refused.push(e),
                        }
                    }
                    refused_here.extend(refused.iter().cloned());
                    let _ = answers.send(refused);
                }
                Ok(IngestMsg::Commit { through_row }) => {
                    tx.execute(
                        "INSERT INTO file_progress (sha256, name, source_path, dest, received_at, rows_done, parts, inserted, updated, withdrawn, unchanged)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10)
                         ON CONFLICT (sha256) DO UPDATE SET rows_done = excluded.rows_done, parts = parts + 1,
                           inserted = inserted + excluded.inserted, updated = updated + excluded.updated,
                           withdrawn = withdrawn + excluded.withdrawn, unchanged = unchanged + excluded.unchanged",
                        params![
                            meta.sha256,
                            meta.name,
                            meta.source_path,
                            meta.dest,
                            meta.received_at,
                            through_row as i64,
                            summary.inserted as i64,
                            summary.updated as i64,
                            summary.withdrawn as i64,
                            summary.unchanged as i64
                        ],
                    )
                    .context("cannot record the file's progress")?;
                    let mut st =
                        tx.prepare_cached("INSERT OR IGNORE INTO file_progress_refused (sha256, row, error) VALUES (?1, ?2, ?3)")?;
                    for e in &refused_here {
                        st.execute(params![meta.sha256, e.row as i64, serde_json::to_string(e).context("a row error")?])?;
                    }
                    drop(st);
                    tx.commit().context("cannot commit a part of the file")?;
                    if summary.inserted + summary.updated + summary.withdrawn > 0 {
                        self.notify_changes();
                    }
                    return Ok(PartEnd::Committed);
                }
                Ok(IngestMsg::Done(report)) => break *report,
                Err(_) => bail!("ingest of {} was abandoned before it finished; its part in progress was not stored", meta.name),
            }
        };
        // The counts of the parts committed before this last one.
        let before: Option<(i64, i64, i64, i64)> = tx
            .query_row("SELECT inserted, updated, withdrawn, unchanged FROM file_progress WHERE sha256 = ?1", [&meta.sha256], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        if let Some((i, u, w, n)) = before {
            summary.inserted += i as u64;
            summary.updated += u as u64;
            summary.withdrawn += w as u64;
            summary.unchanged += n as u64;
            tx.execute("DELETE FROM file_progress WHERE sha256 = ?1", [&meta.sha256])?;
            tx.execute("DELETE FROM file_progress_refused WHERE sha256 = ?1", [&meta.sha256])?;
        }
        tx.execute(
            "INSERT INTO files (sha256, name, source_path, dest, received_at, report, moved) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            params![
                meta.sha256,
                meta.name,
                meta.source_path,
                meta.dest,
                meta.received_at,
                serde_json::to_string(&report).context("a report")?
            ],
        )
        .context("cannot journal the file")?;
        tx.execute("DELETE FROM attempts WHERE path = ?1", [&meta.source_path])?;
        tx.commit().context("cannot commit the file")?;
        if summary.inserted + summary.updated + summary.withdrawn > 0 {
            self.notify_changes();
        }
        summary.report = report;
        Ok(PartEnd::Done(Box::new(summary)))
    }

    /// Notes that the inbox starts on `path`; returns how many times it has started
    /// on it without finishing before (a count that survives a crash).
    pub fn start_attempt(&mut self, path: &str, now: i64) -> Result<i64> {
        let before: i64 = self.conn.query_row("SELECT coalesce((SELECT count FROM attempts WHERE path = ?1), 0)", [path], |r| r.get(0))?;
        self.conn.execute(
            "INSERT INTO attempts (path, count, last_at) VALUES (?1, 1, ?2)
             ON CONFLICT (path) DO UPDATE SET count = count + 1, last_at = excluded.last_at",
            params![path, now],
        )?;
        Ok(before)
    }

    /// The inbox is done with `path` (or stopped on it for a reason that is not the
    /// file's fault).
    pub fn end_attempt(&mut self, path: &str) -> Result<()> {
        self.conn.execute("DELETE FROM attempts WHERE path = ?1", [path])?;
        Ok(())
    }
}

fn file_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<FileEntry>> {
    let report: String = r.get(5)?;
    let meta = FileMeta { sha256: r.get(0)?, name: r.get(1)?, source_path: r.get(2)?, dest: r.get(3)?, received_at: r.get(4)? };
    Ok(serde_json::from_str(&report).context("corrupt report in the file journal").map(|report| FileEntry {
        meta,
        report,
        moved: r.get::<_, i64>(6).unwrap_or(0) != 0,
    }))
}

pub(crate) fn current(tx: &Transaction<'_>, reg_no: &str) -> rusqlite::Result<Option<Current>> {
    tx.prepare_cached("SELECT origin, version, withdrawn, hash, region FROM records WHERE reg_no = ?1")?
        .query_row([reg_no], |r| {
            Ok(Current { origin: r.get(0)?, version: r.get(1)?, withdrawn: r.get::<_, i64>(2)? != 0, hash: r.get(3)?, region: r.get(4)? })
        })
        .optional()
}

/// Applies one row at its origin. The outer error is a database failure (the file is
/// rolled back); the inner one a row the store refuses.
pub(super) fn apply_local(
    tx: &Transaction<'_>,
    seqs: &mut Seqs,
    node: &str,
    source: &str,
    row: Prepared,
    now: i64,
) -> Result<Result<Applied, RowError>> {
    let (row_no, reg_no) = (row.row_no, row.reg_no.as_str());
    let hops = format!("[[\"{node}\",{now}]]");
    let base = NewChange {
        reg_no,
        origin: node,
        version: 1,
        op: Op::Upsert,
        region: "",
        hash: &[],
        accepted_at: now,
        hops: &hops,
        source,
        body: None,
    };
    // Most rows of a big file are new records: insert optimistically (the rule's
    // answer for a record not held), and look the record up only when it exists.
    let upsert_hash = row.upsert.as_ref().map(|r| &r.hash[..]);
    if let (Local::Insert, Some(rec)) = (decide_local(None, node, upsert_hash), &row.upsert) {
        let new = NewChange { region: &rec.region, hash: &rec.hash, body: Some(&rec.body), ..base };
        if insert_record(tx, seqs.peek(), &new, &rec.cols)? {
            append_change(tx, seqs, &new)?;
            return Ok(Ok(Applied::Inserted));
        }
    }
    // The rule itself is `protocol::apply::decide_local`; this only reads and writes.
    let cur = current(tx, reg_no)?;
    let held =
        cur.as_ref().map(|h| Held { origin: &h.origin, version: h.version as u64, hash: &h.hash, withdrawn: h.withdrawn, made_at: None });
    let refused = |code, zh: &str, en: &str| Ok(Err(store_error(row_no, reg_no, "reg_no", code, zh, en)));
    match (decide_local(held, node, upsert_hash), &row.upsert, &cur) {
        (Local::Refused(LocalRefusal::UnknownRecord), ..) => {
            refused("unknown_record", "要撤销的登记号在本节点不存在", "the record to withdraw is not held by this node")
        }
        (Local::Refused(LocalRefusal::NotOrigin(origin)), ..) => refused(
            "not_origin",
            &format!("该成果由节点 {origin} 登记，只有该节点可以修改或撤销"),
            &format!("the record originated at node {origin}; only that node may change or withdraw it"),
        ),
        (Local::Refused(LocalRefusal::Withdrawn), ..) => refused(
            "withdrawn_record",
            "该成果已撤销，撤销后不能再修改或重新登记",
            "the record was withdrawn; a withdrawn record cannot be changed or registered again",
        ),
        (Local::Unchanged, ..) => Ok(Ok(Applied::Unchanged)),
        (Local::Update { version }, Some(rec), _) => {
            let new = NewChange { version: version as i64, region: &rec.region, hash: &rec.hash, body: Some(&rec.body), ..base };
            let seq = append_change(tx, seqs, &new)?;
            update_record(tx, seq, &new, &rec.cols)?;
            Ok(Ok(Applied::Updated))
        }
        (Local::Withdraw { version }, _, Some(cur)) => {
            let hash = withdraw_hash(reg_no);
            let new = NewChange { version: version as i64, op: Op::Withdraw, region: &cur.region, hash: &hash, ..base };
            let seq = append_change(tx, seqs, &new)?;
            withdraw_record(tx, seq, &new)?;
            Ok(Ok(Applied::Withdrawn))
        }
        // An insert that found the record (it was inserted above otherwise), or an
        // answer that does not fit the row: the rule and this code disagree.
        (d, ..) => Err(StoreError::corrupt(format!("row {row_no} ({reg_no})"), format!("the apply rule answered {d:?} for this row"))),
    }
}
