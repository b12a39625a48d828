//! What the PostgreSQL mirror (`crate::mirror`) reads of the store: the change log in
//! order from a cursor, the current state of the records a batch touched, the log's
//! identity (a restored store starts a new log, which the mirror follows from its
//! start), and the records whose embargo lapsed between two days.

use super::error::{Context, Result};
use super::{Reader, StoredRecord};
use huijiao_protocol::{Date, Record};
use rusqlite::OptionalExtension;

/// One change of the log, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChange {
    pub seq: i64,
    pub reg_no: String,
    pub origin: String,
    pub version: i64,
    pub withdraw: bool,
    pub region: String,
    pub accepted_at: i64,
    /// JSON `[[node, ms], …]`, as the store keeps it.
    pub hops: String,
}

impl Reader {
    /// This store's change log: its id (empty for a store that never had one).
    pub fn log_id(&self) -> Result<String> {
        Ok(self.conn.query_row("SELECT coalesce((SELECT value FROM meta WHERE key = 'log_id'), '')", [], |r| r.get(0))?)
    }

    /// The last change's seq (0 for an empty log).
    pub fn last_seq(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))?)
    }

    /// Up to `max` changes after `after`, in order.
    pub fn log_after(&self, after: i64, max: usize) -> Result<Vec<LogChange>> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, reg_no, origin, version, op, region, accepted_at, hops FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st.query_map(rusqlite::params![after, max as i64], |r| {
            Ok(LogChange {
                seq: r.get(0)?,
                reg_no: r.get(1)?,
                origin: r.get(2)?,
                version: r.get(3)?,
                withdraw: r.get::<_, i64>(4)? != 0,
                region: r.get(5)?,
                accepted_at: r.get(6)?,
                hops: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Each record of `reg_nos` as the store holds it now (unknown ones left out).
    pub fn current(&self, reg_nos: &[&str]) -> Result<Vec<StoredRecord>> {
        let mut st = self.conn.prepare_cached(
            "SELECT r.origin, r.version, r.withdrawn, r.updated_at, b.body, l.hops FROM records r
             JOIN changes b ON b.seq = r.body_seq JOIN changes l ON l.seq = r.seq WHERE r.reg_no = ?1",
        )?;
        let mut out = Vec::with_capacity(reg_nos.len());
        for reg_no in reg_nos {
            let row: Option<(String, i64, i64, i64, Option<String>, String)> =
                st.query_row([reg_no], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))).optional()?;
            let Some((origin, version, withdrawn, updated_at, Some(body), hops)) = row else { continue };
            let record = Record::from_json(body.as_bytes()).with_context(|| format!("corrupt body of {reg_no}"))?;
            let hops = serde_json::from_str(&hops).with_context(|| format!("corrupt hops of {reg_no}"))?;
            out.push(StoredRecord { record, origin, version, withdrawn: withdrawn != 0, updated_at, hops });
        }
        Ok(out)
    }

    /// Records, 公开 and not withdrawn, whose embargo lapsed on a day from `from` to
    /// `to` (exclusive): `embargo_until` in `[from - 1, to - 1)`, since a record is
    /// public the day after its embargo date.
    pub fn embargoes_lapsed(&self, from: Date, to: Date) -> Result<Vec<String>> {
        let (a, b) = (Date::from_days(from.to_days() - 1).to_string(), Date::from_days(to.to_days() - 1).to_string());
        let mut st = self.conn.prepare_cached(
            "SELECT reg_no FROM records WHERE embargo_until >= ?1 AND embargo_until < ?2 AND withdrawn = 0 AND secret = '公开'",
        )?;
        let v = st.query_map([a, b], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }
}
