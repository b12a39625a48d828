//! The row writes that local ingest and children's batches share: appending a change,
//! and pointing a record at it.

use huijiao_protocol::wire::Op;
use rusqlite::{params, Transaction};

/// A change about to be appended to the log.
#[derive(Clone, Copy)]
pub(crate) struct NewChange<'a> {
    pub reg_no: &'a str,
    pub origin: &'a str,
    pub version: i64,
    pub op: Op,
    pub region: &'a str,
    pub hash: &'a [u8],
    /// When this node accepted it; also the record's `updated_at`.
    pub accepted_at: i64,
    /// JSON `[[node, ms], ...]`, this node last.
    pub hops: &'a str,
    pub source: &'a str,
    pub body: Option<&'a str>,
}

/// The columns of a record row that come from its body, built one way: from the
/// record's facts ([`RecordCols::of`]), whichever path it came in by.
#[derive(Debug, Clone)]
pub(crate) struct RecordCols {
    pub kind: &'static str,
    pub reg_date: String,
    pub secret: &'static str,
    pub embargo_until: Option<String>,
}

impl RecordCols {
    pub(crate) fn of(f: &huijiao_protocol::record::RecordFacts) -> RecordCols {
        RecordCols {
            kind: f.kind.zh(),
            reg_date: f.reg_date.to_string(),
            secret: f.secret.zh(),
            embargo_until: f.embargo_until.map(|d| d.to_string()),
        }
    }
}

/// The sequence numbers one transaction hands out. The log is never pruned and only
/// the writer appends to it, inside its transaction, so `max + 1` read once at the
/// start and counted on is exact: a batch of two thousand changes asks once, not two
/// thousand times.
pub(crate) struct Seqs {
    next: i64,
}

impl Seqs {
    pub(crate) fn start(tx: &Transaction<'_>) -> rusqlite::Result<Seqs> {
        let next = tx.prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM changes")?.query_row([], |r| r.get(0))?;
        Ok(Seqs { next })
    }

    /// The number the next appended change gets.
    pub(crate) fn peek(&self) -> i64 {
        self.next
    }
}

/// How `changes.op` and `quarantine.op` store an operation.
pub(crate) fn op_code(op: Op) -> i64 {
    match op {
        Op::Upsert => 0,
        Op::Withdraw => 1,
    }
}

/// Appends a change under the next number of `seqs`, and returns that number.
pub(crate) fn append_change(tx: &Transaction<'_>, seqs: &mut Seqs, c: &NewChange<'_>) -> rusqlite::Result<i64> {
    let (op, seq) = (op_code(c.op), seqs.next);
    tx.prepare_cached(
        "INSERT INTO changes (seq, reg_no, origin, version, op, region, hash, accepted_at, hops, source, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![seq, c.reg_no, c.origin, c.version, op, c.region, c.hash, c.accepted_at, c.hops, c.source, c.body])?;
    seqs.next += 1;
    Ok(seq)
}

/// Inserts a record whose body is change `seq`, unless its reg_no is already held.
/// Returns whether it was inserted: a new record needs no lookup first.
pub(crate) fn insert_record(tx: &Transaction<'_>, seq: i64, c: &NewChange<'_>, cols: &RecordCols) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT INTO records (reg_no, origin, version, withdrawn, hash, seq, body_seq, region, kind, reg_date, secret, embargo_until, updated_at)
             VALUES (?1, ?2, ?3, 0, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (reg_no) DO NOTHING",
        )?
        .execute(params![
            c.reg_no,
            c.origin,
            c.version,
            c.hash,
            seq,
            c.region,
            cols.kind,
            cols.reg_date.as_str(),
            cols.secret,
            cols.embargo_until.as_deref(),
            c.accepted_at
        ])?;
    Ok(n == 1)
}

/// Points a held record at the upsert change `seq`.
pub(crate) fn update_record(tx: &Transaction<'_>, seq: i64, c: &NewChange<'_>, cols: &RecordCols) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE records SET version = ?2, hash = ?3, seq = ?4, body_seq = ?4, region = ?5, kind = ?6, reg_date = ?7, secret = ?8,
           embargo_until = ?9, updated_at = ?10 WHERE reg_no = ?1",
    )?
    .execute(params![
        c.reg_no,
        c.version,
        c.hash,
        seq,
        c.region,
        cols.kind,
        cols.reg_date.as_str(),
        cols.secret,
        cols.embargo_until.as_deref(),
        c.accepted_at
    ])?;
    Ok(())
}

/// Marks a held record withdrawn by change `seq`; its last body stays readable.
pub(crate) fn withdraw_record(tx: &Transaction<'_>, seq: i64, c: &NewChange<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE records SET version = ?2, withdrawn = 1, hash = ?3, seq = ?4, updated_at = ?5 WHERE reg_no = ?1")?
        .execute(params![c.reg_no, c.version, c.hash, seq, c.accepted_at])?;
    Ok(())
}
