//! Federation in the store: streaming the change log upward, applying a child's batch
//! exactly once, conflicts, and the bookkeeping `huijiao status` shows.
//!
//! One room: the exactly-once core — the log read upward, a child's batch with its
//! cursor, rotation and recover, quarantine — over the same tables in the same
//! transactions.

use super::error::{Context, Result, StoreError};
use super::ingest::current;
use super::rows::{append_change, insert_record, op_code, update_record, withdraw_record, NewChange, RecordCols, Seqs};
use super::{Reader, Writer};
use huijiao_protocol::apply::{self, decide, decide_recovered, Decision, Held, Recovered};
use huijiao_protocol::sync::{check_batch_range, CheckedChange};
use huijiao_protocol::wire::{self, Change, Hop, Op, PeerRefusal};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

/// What applying one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub applied: u32,
    /// Already known (a replay, or an older version than held).
    pub duplicates: u32,
    /// Quarantined: another origin holds the `reg_no`, or the change would resurrect
    /// a withdrawn record.
    pub conflicts: u32,
    /// (reg_no, arriving origin, held origin) of each conflict, for the log.
    pub conflict_list: Vec<(String, String, String)>,
    /// The batch did not start at the durable cursor and was not applied.
    pub stale: bool,
    /// Changes whose hop times were replaced by this node's receipt time.
    pub clock_corrections: u32,
}

/// A batch that cannot be applied at all.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The child sent something it must not: the whole batch is refused.
    #[error("{0}")]
    Refused(PeerRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Store(e.into())
    }
}

/// One child as its parent sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChildStatus {
    pub child: String,
    pub cursor: i64,
    pub batches: i64,
    pub changes: i64,
    pub last_batch_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// A session is open (noted by the downlink at its start and end, and kept
    /// fresh by its heartbeat).
    pub session_open: bool,
    /// The change log the child last resumed (version 2).
    pub log_id: Option<String>,
    /// When the child's store was last found rewound.
    pub rewound_at: Option<i64>,
    /// The child's last report of its subtree (JSON list of `wire::NodeHealth`).
    #[serde(skip)]
    pub health: Option<String>,
    /// Hop times from this child replaced by this node's receipt time (its clock, or
    /// one below it, is off), and when last.
    pub clock_corrections: i64,
    pub clock_corrected_at: Option<i64>,
    /// Held back by its volume bound since then, and why (None while it flows).
    pub held_back_at: Option<i64>,
    pub held_back_reason: Option<String>,
}

/// A peer the downlink refused, by the identity it showed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefusalStatus {
    pub identity: String,
    pub reason: String,
    pub count: i64,
    pub first_at: i64,
    pub last_at: i64,
    pub last_message: Option<String>,
}

/// A change of this node's log that the parent refused: held aside, the rest goes on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StuckChange {
    pub seq: i64,
    pub reg_no: String,
    pub reason: String,
    pub at: i64,
}

/// The uplink as last recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UplinkStatus {
    pub parent: String,
    pub state: String,
    pub acked: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub connected_at: Option<i64>,
    pub updated_at: i64,
    /// Since when the uplink has not streamed, failing (None while it streams).
    pub failing_since: Option<i64>,
}

/// A change held aside.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Quarantined {
    pub reg_no: String,
    pub origin: String,
    pub version: i64,
    pub from_child: String,
    pub received_at: i64,
    pub held_origin: Option<String>,
    pub reason: String,
    /// The record as the quarantined change carries it (None for a withdrawal).
    #[serde(skip)]
    pub body: Option<String>,
}

impl Writer {
    /// The durable cursor of `child`'s log `log_id` (`""` for a version-1 child): the
    /// highest seq of that log applied here.
    pub fn child_cursor(&self, child: &str, log_id: &str) -> Result<u64> {
        Ok(self.child_resume_point(child, log_id)?.0)
    }

    /// The cursor of a child's log with the seq and fingerprint of the last change
    /// received from it (0 and zeros when none).
    pub fn child_resume_point(&self, child: &str, log_id: &str) -> Result<(u64, u64, [u8; 32])> {
        let row: Option<(i64, i64, Option<Vec<u8>>)> = self
            .conn
            .query_row("SELECT cursor, check_seq, check_fp FROM cursors WHERE child = ?1 AND log_id = ?2", [child, log_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        Ok(match row {
            Some((cursor, seq, Some(fp))) if fp.len() == 32 => (cursor as u64, seq as u64, fp.try_into().expect("32 bytes")),
            Some((cursor, _, _)) => (cursor as u64, 0, [0; 32]),
            None => (0, 0, [0; 32]),
        })
    }

    /// Notes that `child` is held back by its volume bound (`reason`), or flows again
    /// (None).
    pub fn child_held_back(&self, child: &str, reason: Option<&str>, now: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO children (child, cursor, held_back_at, held_back_reason) VALUES (?1, 0, CASE WHEN ?2 IS NULL THEN NULL ELSE ?3 END, ?2)
             ON CONFLICT (child) DO UPDATE SET held_back_reason = ?2,
               held_back_at = CASE WHEN ?2 IS NULL THEN NULL ELSE coalesce(held_back_at, ?3) END",
            params![child, reason, now],
        )?;
        Ok(())
    }

    /// Notes which log a child resumed, and when its store was found rewound.
    pub fn child_resumed(&self, child: &str, log_id: &str, rewound: bool, now: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO children (child, cursor, last_seen_at, log_id, connected) VALUES (?1, 0, ?3, ?2, 1)
             ON CONFLICT (child) DO UPDATE SET log_id = excluded.log_id, last_seen_at = excluded.last_seen_at, connected = 1,
               rewound_at = CASE WHEN ?4 THEN ?3 ELSE rewound_at END",
            params![child, log_id, now, rewound],
        )?;
        Ok(())
    }

    /// Notes a peer the downlink refused (never listed as a child).
    pub fn note_refusal(&self, identity: &str, reason: &str, message: &str, now: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO refusals (identity, reason, count, first_at, last_at, last_message) VALUES (?1, ?2, 1, ?4, ?4, ?3)
             ON CONFLICT (identity, reason) DO UPDATE SET count = count + 1, last_at = excluded.last_at, last_message = excluded.last_message",
            params![identity, reason, message, now],
        )?;
        Ok(())
    }

    /// Notes that a child's session ended (with its error, if any), for `huijiao status`.
    pub fn child_seen(&self, child: &str, now: i64, error: Option<&str>) -> Result<()> {
        self.conn.execute(
            "INSERT INTO children (child, cursor, last_seen_at, last_error, last_error_at, connected) VALUES (?1, 0, ?2, ?3, CASE WHEN ?3 IS NULL THEN NULL ELSE ?2 END, 0)
             ON CONFLICT (child) DO UPDATE SET last_seen_at = excluded.last_seen_at, connected = 0,
               last_error = coalesce(excluded.last_error, last_error), last_error_at = coalesce(excluded.last_error_at, last_error_at)",
            params![child, now, error],
        )?;
        Ok(())
    }

    /// At start: no session survives a restart.
    /// Keeps the conflict notes the parent sent; returns those not known before.
    pub fn note_conflicts(
        &mut self,
        notes: &[huijiao_protocol::wire::ConflictNote],
        now: i64,
    ) -> Result<Vec<huijiao_protocol::wire::ConflictNote>> {
        let tx = self.conn.transaction()?;
        let mut new = Vec::new();
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO conflict_notes (reg_no, origin, version, kept_origin, met_at, at, reason, noted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for n in notes {
                if st.execute(rusqlite::params![n.reg_no, n.origin, n.version, n.kept_origin, n.met_at, n.at, n.reason, now])? > 0 {
                    new.push(n.clone());
                }
            }
        }
        tx.commit()?;
        Ok(new)
    }

    /// Keeps a child's report of its subtree.
    pub fn set_child_health(&mut self, child: &str, nodes_json: &str, now: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE children SET health = ?2, health_at = ?3, last_seen_at = ?3 WHERE child = ?1",
            rusqlite::params![child, nodes_json, now],
        )?;
        Ok(())
    }

    pub fn children_disconnected(&self) -> Result<()> {
        self.conn.execute("UPDATE children SET connected = 0 WHERE connected = 1", [])?;
        Ok(())
    }

    /// Notes that these children are connected now.
    pub fn children_seen(&mut self, children: &[String], now: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        for c in children {
            tx.prepare_cached("UPDATE children SET last_seen_at = ?2, connected = 1 WHERE child = ?1")?.execute(params![c, now])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Applies a batch `(after, upto]` from `child` in one transaction that also moves
    /// the child's cursor; nothing of it is applied if any change is refused.
    /// The changes come checked (`protocol::sync::checked`, done by the downlink off
    /// the writer thread); their records' facts fill the columns. They are borrowed,
    /// so the caller frees them off the writer thread (thousands of small strings a
    /// batch).
    ///
    /// One piece: one transaction, whose steps (the cursor check, each change through the
    /// rule, the cursor moved) must commit together.
    pub fn apply_batch(
        &mut self,
        child: &str,
        log_id: &str,
        after: u64,
        upto: u64,
        checked: &[CheckedChange],
        now: i64,
    ) -> Result<BatchOutcome, ApplyError> {
        check_batch_range(child, after, upto, checked).map_err(ApplyError::Refused)?;
        let corrected = checked.iter().filter(|c| c.clock_corrected).count() as i64;
        let node = self.node_id.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut seqs = Seqs::start(&tx)?;
        let cursor: i64 = tx
            .query_row("SELECT cursor FROM cursors WHERE child = ?1 AND log_id = ?2", [child, log_id], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let mut out = BatchOutcome::default();
        if cursor as u64 != after {
            out.stale = true;
            return Ok(out);
        }
        let source = format!("child:{child}");
        // The last change received, so a rewound child is recognised even when its
        // log has grown past the cursor again.
        let check = checked.last().map(|c| &c.change).map(|c| (c.seq as i64, wire::fingerprint(&c.reg_no, c.version, c.op, &c.hash)));
        for CheckedChange { change: c, facts: rec, text, .. } in checked {
            let hops = apply::hops_at_parent(&c.hops, &node, now);
            let hops_json = serde_json::to_string(&hops.iter().map(|h| (&h.node, h.accepted_at_ms)).collect::<Vec<_>>()).context("hops")?;
            // Checked as UTF-8 once, by the check that parsed it.
            let body = text.as_deref();
            let new = NewChange {
                reg_no: &c.reg_no,
                origin: &c.origin,
                version: c.version as i64,
                op: c.op,
                region: &c.region,
                hash: &c.hash,
                accepted_at: now,
                hops: &hops_json,
                source: &source,
                body,
            };
            let cols = rec.as_ref().map(RecordCols::of);
            // A record this node has never seen is inserted without a lookup first: the
            // rule's answer for a record not held (the insert finds out whether it is new).
            if let (Decision::Apply, Some(cols)) = (decide(None, c), &cols) {
                if insert_record(&tx, seqs.peek(), &new, cols)? {
                    append_change(&tx, &mut seqs, &new)?;
                    out.applied += 1;
                    continue;
                }
            }
            // The rule itself is `protocol::apply::decide`; this only reads and writes.
            let cur = current(&tx, &c.reg_no)?;
            // For an older version, when the origin made the version held.
            let made_at = match &cur {
                Some(h) if (h.version as u64) > c.version => made_at(&tx, &c.reg_no)?,
                _ => None,
            };
            let held =
                cur.as_ref().map(|h| Held { origin: &h.origin, version: h.version as u64, hash: &h.hash, withdrawn: h.withdrawn, made_at });
            let conflict = match decide(held, c) {
                Decision::Apply => None,
                Decision::Duplicate => {
                    out.duplicates += 1;
                    continue;
                }
                Decision::Quarantine(reason) => {
                    // Say what this node holds, so the origin's operator sees both sides.
                    let reason = match &cur {
                        Some(h) if h.origin == c.origin => {
                            format!("{reason} (this node holds version {}{})", h.version, if h.withdrawn { ", withdrawn" } else { "" })
                        }
                        _ => reason.to_string(),
                    };
                    Some((cur.as_ref().map(|h| h.origin.clone()), reason))
                }
            };
            if let Some((held, reason)) = conflict {
                let n = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO quarantine (reg_no, origin, version, op, region, hash, hops, body, from_child, received_at, held_origin, reason)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    )?
                    .execute(params![
                        c.reg_no,
                        c.origin,
                        c.version as i64,
                        op_code(c.op),
                        c.region,
                        &c.hash[..],
                        hops_json,
                        body,
                        child,
                        now,
                        held,
                        reason
                    ])?;
                if n > 0 {
                    out.conflicts += 1;
                    out.conflict_list.push((c.reg_no.clone(), c.origin.clone(), held.unwrap_or_default()));
                } else {
                    out.duplicates += 1;
                }
                continue;
            }
            let seq = append_change(&tx, &mut seqs, &new)?;
            match &cols {
                Some(cols) => update_record(&tx, seq, &new, cols)?,
                None => withdraw_record(&tx, seq, &new)?,
            }
            out.applied += 1;
        }
        let total = out.applied + out.duplicates + out.conflicts;
        tx.prepare_cached(
            "INSERT INTO cursors (child, log_id, cursor, check_seq, check_fp) VALUES (?1, ?2, ?3, coalesce(?4, 0), ?5)
             ON CONFLICT (child, log_id) DO UPDATE SET cursor = excluded.cursor,
               check_seq = coalesce(?4, check_seq), check_fp = coalesce(?5, check_fp)",
        )?
        .execute(params![child, log_id, upto as i64, check.map(|c| c.0), check.map(|c| c.1.to_vec())])?;
        tx.prepare_cached(
            "INSERT INTO children (child, cursor, batches, changes, last_batch_at, last_seen_at, connected) VALUES (?1, ?2, 1, ?3, ?4, ?4, 1)
             ON CONFLICT (child) DO UPDATE SET cursor = excluded.cursor, batches = batches + 1, changes = changes + excluded.changes,
               last_batch_at = excluded.last_batch_at, last_seen_at = excluded.last_seen_at, connected = 1, last_error = NULL, last_error_at = NULL",
        )?
        .execute(params![child, upto as i64, total, now])?;
        if corrected > 0 {
            tx.prepare_cached("UPDATE children SET clock_corrections = clock_corrections + ?2, clock_corrected_at = ?3 WHERE child = ?1")?
                .execute(params![child, corrected, now])?;
        }
        out.clock_corrections = corrected as u32;
        tx.commit()?;
        if out.applied > 0 {
            self.notify_changes();
        }
        Ok(out)
    }

    /// Starts a new change log after the parent showed this store was rewound: the
    /// whole log goes up again under the new id (the parent takes replays as no-ops).
    /// Returns the new id, and whether `huijiao recover` is needed: it is, unless it
    /// already ran on this store since the log being left was started (restore →
    /// recover → start: the parent then finds the restored log, and nothing is missing).
    pub fn rotate_log(&mut self, parent_cursor: u64, last_seq: u64, now: i64) -> Result<(String, bool)> {
        let id = super::new_log_id()?;
        let note = serde_json::json!({"at": now, "parent_cursor": parent_cursor, "last_seq": last_seq, "new_log_id": id}).to_string();
        let tx = self.conn.transaction()?;
        let old: String = tx.query_row("SELECT value FROM meta WHERE key = 'log_id'", [], |r| r.get(0))?;
        let recovered: Option<String> = tx.query_row("SELECT value FROM meta WHERE key = 'recovered'", [], |r| r.get(0)).optional()?;
        let recovered_this_log = recovered
            .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
            .is_some_and(|v| v["log_id"].as_str() == Some(old.as_str()));
        tx.execute("UPDATE meta SET value = ?1 WHERE key = 'log_id'", [&id])?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('log_rotated', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [&note],
        )?;
        if !recovered_this_log {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('recover_needed', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [&note],
            )?;
        }
        tx.commit()?;
        Ok((id, !recovered_this_log))
    }

    /// `huijiao recover` finished: the store holds what the parent holds of its
    /// subtree. Clears the need for it, and remembers which log it was run on.
    pub fn mark_recovered(&mut self, now: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        let log: String = tx.query_row("SELECT value FROM meta WHERE key = 'log_id'", [], |r| r.get(0))?;
        let note = serde_json::json!({"at": now, "log_id": log}).to_string();
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('recovered', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [&note],
        )?;
        tx.execute("DELETE FROM meta WHERE key = 'recover_needed'", [])?;
        tx.commit()?;
        Ok(())
    }

    /// Why `huijiao recover` is needed (the note of the rotation), if it is.
    pub fn recover_needed(&self) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = 'recover_needed'", [], |r| r.get(0)).optional()?)
    }

    /// Takes back records a parent held that this store lost (`huijiao recover`):
    /// each is logged as a change at the version it had, unless this store already
    /// holds that version or a newer one. Returns how many records were restored (a
    /// withdrawn record comes as two changes: its last content, then the withdrawal).
    pub fn restore_records(&mut self, checked: Vec<CheckedChange>, now: i64) -> Result<u64> {
        let node = self.node_id.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut seqs = Seqs::start(&tx)?;
        let mut restored = 0;
        let mut last_restored: Option<String> = None;
        for CheckedChange { change: c, facts: rec, text, .. } in checked {
            let cur = current(&tx, &c.reg_no)?;
            let held = cur.as_ref().map(|h| Held {
                origin: &h.origin,
                version: h.version as u64,
                hash: &h.hash,
                withdrawn: h.withdrawn,
                made_at: None,
            });
            let decision = decide_recovered(held, &c);
            if decision == Recovered::Skip {
                continue;
            }
            let hops = apply::hops_recovered(&c.hops, &node, now);
            let hops_json = serde_json::to_string(&hops.iter().map(|h| (&h.node, h.accepted_at_ms)).collect::<Vec<_>>()).context("hops")?;
            let body = text.as_deref();
            let new = NewChange {
                reg_no: &c.reg_no,
                origin: &c.origin,
                version: c.version as i64,
                op: c.op,
                region: &c.region,
                hash: &c.hash,
                accepted_at: now,
                hops: &hops_json,
                source: "recover",
                body,
            };
            let seq = append_change(&tx, &mut seqs, &new)?;
            match (decision, &rec) {
                (Recovered::Insert | Recovered::Update, Some(r)) => {
                    let cols = RecordCols::of(r);
                    if decision == Recovered::Insert {
                        insert_record(&tx, seq, &new, &cols)?;
                    } else {
                        update_record(&tx, seq, &new, &cols)?;
                    }
                }
                (Recovered::Withdraw, _) => withdraw_record(&tx, seq, &new)?,
                _ => {}
            }
            if last_restored.as_deref() != Some(c.reg_no.as_str()) {
                restored += 1;
                last_restored = Some(c.reg_no.clone());
            }
        }
        tx.commit()?;
        if restored > 0 {
            self.notify_changes();
        }
        Ok(restored)
    }

    /// Holds aside a change of this node's log that the parent refused.
    pub fn mark_stuck(&self, seq: u64, reg_no: &str, reason: &str, now: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO stuck (seq, reg_no, reason, at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (seq) DO UPDATE SET reason = excluded.reason, at = excluded.at",
            params![seq as i64, reg_no, reason, now],
        )?;
        Ok(())
    }

    /// Records what the uplink is doing, for `huijiao status`.
    /// `acked` None keeps the recorded value; an error is kept until the next one.
    pub fn set_uplink(
        &self,
        parent: &str,
        state: &str,
        acked: Option<u64>,
        error: Option<&str>,
        connected_at: Option<i64>,
        now: i64,
    ) -> Result<()> {
        // An error stays (with its time) until the uplink streams again.
        self.conn.execute(
            "INSERT INTO uplink (id, parent, state, acked, last_error, last_error_at, connected_at, updated_at, failing_since)
               VALUES (1, ?1, ?2, coalesce(?3, 0), ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?6 END, ?5, ?6, CASE WHEN ?4 IS NULL THEN NULL ELSE ?6 END)
             ON CONFLICT (id) DO UPDATE SET parent = excluded.parent, state = excluded.state, acked = coalesce(?3, acked),
               failing_since = CASE WHEN excluded.state = 'streaming' THEN NULL
                                    WHEN excluded.last_error IS NOT NULL THEN coalesce(failing_since, excluded.updated_at)
                                    ELSE failing_since END,
               last_error = CASE WHEN excluded.state = 'streaming' THEN NULL ELSE coalesce(excluded.last_error, last_error) END,
               last_error_at = CASE WHEN excluded.state = 'streaming' THEN NULL ELSE coalesce(excluded.last_error_at, last_error_at) END,
               connected_at = coalesce(excluded.connected_at, connected_at), updated_at = excluded.updated_at",
            params![parent, state, acked.map(|a| a as i64), error, connected_at, now],
        )?;
        Ok(())
    }
}

impl Reader {
    /// Up to `max_changes` log entries after `after`, stopping once `max_bytes` of
    /// bodies are collected (at least one entry is returned when there is one).
    pub fn changes_after(&self, after: u64, max_changes: usize, max_bytes: usize) -> Result<Vec<Change>> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, reg_no, origin, version, op, region, hash, hops, body FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut rows = st.query(params![after as i64, max_changes as i64])?;
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(r) = rows.next()? {
            let hash: Vec<u8> = r.get(6)?;
            let hops: String = r.get(7)?;
            let hops: Vec<(String, i64)> = serde_json::from_str(&hops).context("corrupt hop list in the store")?;
            let body = body_bytes(r, 8)?;
            bytes += body.as_ref().map_or(64, |b| b.len() + 64);
            out.push(Change {
                seq: r.get::<_, i64>(0)? as u64,
                reg_no: r.get(1)?,
                origin: r.get(2)?,
                version: r.get::<_, i64>(3)? as u64,
                op: if r.get::<_, i64>(4)? == 0 { Op::Upsert } else { Op::Withdraw },
                region: r.get(5)?,
                hash: hash.try_into().map_err(|_: Vec<u8>| StoreError::corrupt("a change hash in the store", "not 32 bytes"))?,
                body,
                hops: hops.into_iter().map(|(node, accepted_at_ms)| Hop { node, accepted_at_ms }).collect(),
            });
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// A page of the records held whose origin lies in `child`'s subtree, after
    /// `after` in reg_no order, each as the change that made its latest version
    /// (`seq` 0), with whether more follow. A withdrawn record comes as two changes, in
    /// this order: the version its last content had, then the withdrawal — so a
    /// restored store takes back the tombstone too, and with it the record's versions.
    pub fn records_of_subtree(&self, child: &str, after: &str, limit: u32, max_bytes: usize) -> Result<(Vec<Change>, bool)> {
        let prefix = huijiao_protocol::regions::jurisdiction_prefix(child);
        let mut st = self.conn.prepare_cached(
            "SELECT r.reg_no, r.origin, r.version, r.withdrawn, r.region, r.hash, l.hops, b.body, b.version, b.hash, b.hops
             FROM records r JOIN changes b ON b.seq = r.body_seq JOIN changes l ON l.seq = r.seq
             WHERE r.reg_no > ?1 AND substr(r.origin, 1, ?2) = ?3 ORDER BY r.reg_no LIMIT ?4",
        )?;
        let mut rows = st.query(params![after, prefix.len() as i64, prefix, i64::from(limit) + 1])?;
        let mut out = Vec::new();
        let mut records = 0;
        let mut bytes = 0;
        let hops_of = |text: String| -> Result<Vec<Hop>> {
            let hops: Vec<(String, i64)> = serde_json::from_str(&text).context("corrupt hop list in the store")?;
            Ok(hops.into_iter().map(|(node, accepted_at_ms)| Hop { node, accepted_at_ms }).collect())
        };
        let hash_of = |h: Vec<u8>| -> Result<[u8; 32]> {
            h.try_into().map_err(|_: Vec<u8>| StoreError::corrupt("a change hash in the store", "not 32 bytes"))
        };
        while let Some(r) = rows.next()? {
            if records == limit as usize || bytes >= max_bytes {
                return Ok((out, true));
            }
            records += 1;
            let withdrawn = r.get::<_, i64>(3)? != 0;
            let mut body = body_bytes(r, 7)?;
            bytes += body.as_ref().map_or(64, |b| b.len() + 64);
            let (reg_no, origin, region): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(4)?);
            if withdrawn {
                // The content before the withdrawal (when the store still has it).
                if let Some(body) = body.take() {
                    out.push(Change {
                        seq: 0,
                        reg_no: reg_no.clone(),
                        origin: origin.clone(),
                        version: r.get::<_, i64>(8)? as u64,
                        op: Op::Upsert,
                        region: region.clone(),
                        hash: hash_of(r.get(9)?)?,
                        body: Some(body),
                        hops: hops_of(r.get(10)?)?,
                    });
                }
            }
            out.push(Change {
                seq: 0,
                reg_no,
                origin,
                version: r.get::<_, i64>(2)? as u64,
                op: if withdrawn { Op::Withdraw } else { Op::Upsert },
                region,
                hash: hash_of(r.get(5)?)?,
                // A withdrawal carries no body (the one before it was taken above).
                body,
                hops: hops_of(r.get(6)?)?,
            });
        }
        Ok((out, false))
    }

    pub fn children(&self) -> Result<Vec<ChildStatus>> {
        let mut st = self.conn.prepare(
            "SELECT child, cursor, batches, changes, last_batch_at, last_seen_at, last_error, last_error_at, connected, log_id, rewound_at,
                    health, clock_corrections, clock_corrected_at, held_back_at, held_back_reason
             FROM children ORDER BY child",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ChildStatus {
                child: r.get(0)?,
                cursor: r.get(1)?,
                batches: r.get(2)?,
                changes: r.get(3)?,
                last_batch_at: r.get(4)?,
                last_seen_at: r.get(5)?,
                last_error: r.get(6)?,
                last_error_at: r.get(7)?,
                session_open: r.get::<_, i64>(8)? != 0,
                log_id: r.get(9)?,
                rewound_at: r.get(10)?,
                health: r.get(11)?,
                clock_corrections: r.get(12)?,
                clock_corrected_at: r.get(13)?,
                held_back_at: r.get(14)?,
                held_back_reason: r.get(15)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn refusals(&self) -> Result<Vec<RefusalStatus>> {
        let mut st =
            self.conn.prepare("SELECT identity, reason, count, first_at, last_at, last_message FROM refusals ORDER BY last_at DESC")?;
        let rows = st.query_map([], |r| {
            Ok(RefusalStatus {
                identity: r.get(0)?,
                reason: r.get(1)?,
                count: r.get(2)?,
                first_at: r.get(3)?,
                last_at: r.get(4)?,
                last_message: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn stuck(&self) -> Result<Vec<StuckChange>> {
        let mut st = self.conn.prepare("SELECT seq, reg_no, reason, at FROM stuck ORDER BY seq")?;
        let rows = st.query_map([], |r| Ok(StuckChange { seq: r.get(0)?, reg_no: r.get(1)?, reason: r.get(2)?, at: r.get(3)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The fingerprint of this store's change `seq`, if it holds one.
    pub fn change_fingerprint(&self, seq: u64) -> Result<Option<[u8; 32]>> {
        let row: Option<(String, i64, i64, Vec<u8>)> = self
            .conn
            .query_row("SELECT reg_no, version, op, hash FROM changes WHERE seq = ?1", [seq as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        Ok(row.and_then(|(reg_no, version, op, hash)| {
            let hash: [u8; 32] = hash.try_into().ok()?;
            Some(wire::fingerprint(&reg_no, version as u64, if op == 0 { Op::Upsert } else { Op::Withdraw }, &hash))
        }))
    }

    /// This store's change log: its id and last sequence.
    pub fn log(&self) -> Result<(String, u64)> {
        let id: String = self.conn.query_row("SELECT value FROM meta WHERE key = 'log_id'", [], |r| r.get(0))?;
        let last: i64 = self.conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))?;
        Ok((id, last as u64))
    }

    /// Why `huijiao recover` is needed (the note of the rotation), if it is.
    pub fn recover_needed(&self) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = 'recover_needed'", [], |r| r.get(0)).optional()?)
    }

    /// When `huijiao recover` last finished, and on which log.
    pub fn last_recovery(&self) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = 'recovered'", [], |r| r.get(0)).optional()?)
    }

    /// When this node's own log was last started anew, and why.
    pub fn log_rotation(&self) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = 'log_rotated'", [], |r| r.get(0)).optional()?)
    }

    pub fn uplink(&self) -> Result<Option<UplinkStatus>> {
        Ok(self
            .conn
            .query_row(
                "SELECT parent, state, acked, last_error, connected_at, updated_at, last_error_at, failing_since FROM uplink WHERE id = 1",
                [],
                |r| {
                    Ok(UplinkStatus {
                        parent: r.get(0)?,
                        state: r.get(1)?,
                        acked: r.get(2)?,
                        last_error: r.get(3)?,
                        connected_at: r.get(4)?,
                        updated_at: r.get(5)?,
                        last_error_at: r.get(6)?,
                        failing_since: r.get(7)?,
                    })
                },
            )
            .optional()?)
    }

    /// Conflicts the parent told of (held aside there or above).
    pub fn conflict_notes(&self) -> Result<Vec<huijiao_protocol::wire::ConflictNote>> {
        let mut st =
            self.conn.prepare("SELECT reg_no, origin, version, kept_origin, met_at, at, reason FROM conflict_notes ORDER BY at, reg_no")?;
        let rows = st.query_map([], |r| {
            Ok(huijiao_protocol::wire::ConflictNote {
                reg_no: r.get(0)?,
                origin: r.get(1)?,
                version: r.get(2)?,
                kept_origin: r.get(3)?,
                met_at: r.get(4)?,
                at: r.get(5)?,
                reason: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every conflict held aside here (`this_node`) or told from above that concerns a
    /// record of `child`'s subtree (either origin inside it), in a stable order: what
    /// `child` is to be told.
    pub fn notes_for(&self, this_node: &str, child: &str) -> Result<Vec<huijiao_protocol::wire::ConflictNote>> {
        use huijiao_protocol::regions::covers;
        let mut out: Vec<huijiao_protocol::wire::ConflictNote> = self
            .quarantine()?
            .into_iter()
            .map(|q| huijiao_protocol::wire::ConflictNote {
                reg_no: q.reg_no,
                origin: q.origin,
                version: q.version,
                kept_origin: q.held_origin.unwrap_or_default(),
                met_at: this_node.to_string(),
                at: q.received_at,
                reason: q.reason,
            })
            .chain(self.conflict_notes()?)
            .filter(|n| covers(child, &n.origin) || covers(child, &n.kept_origin))
            .collect();
        out.sort();
        out.dedup();
        out.truncate(huijiao_protocol::wire::MAX_NOTES);
        Ok(out)
    }

    pub fn quarantine(&self) -> Result<Vec<Quarantined>> {
        let mut st = self
            .conn
            .prepare("SELECT reg_no, origin, version, from_child, received_at, held_origin, reason, body FROM quarantine ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(Quarantined {
                reg_no: r.get(0)?,
                origin: r.get(1)?,
                version: r.get(2)?,
                from_child: r.get(3)?,
                received_at: r.get(4)?,
                held_origin: r.get(5)?,
                reason: r.get(6)?,
                body: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// When the origin made the version of `reg_no` held here: the first hop of the change
/// the record points at.
fn made_at(tx: &rusqlite::Transaction<'_>, reg_no: &str) -> Result<Option<i64>> {
    let hops: Option<String> = tx
        .prepare_cached("SELECT c.hops FROM records r JOIN changes c ON c.seq = r.seq WHERE r.reg_no = ?1")?
        .query_row([reg_no], |r| r.get(0))
        .optional()?;
    let Some(hops) = hops else { return Ok(None) };
    let hops: Vec<(String, i64)> = serde_json::from_str(&hops).map_err(|e| StoreError::corrupt("a hop list in the store", e))?;
    Ok(hops.first().map(|h| h.1))
}

/// A change's body as the bytes the store holds, for sending on: the parent checks
/// them (hash, UTF-8, the record) whatever this node did, so the sender does not
/// check its own text again.
fn body_bytes(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    use rusqlite::types::ValueRef;
    match r.get_ref(i)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(b) | ValueRef::Blob(b) => Ok(Some(b.to_vec())),
        other => Err(rusqlite::Error::InvalidColumnType(i, "body".into(), other.data_type())),
    }
}
