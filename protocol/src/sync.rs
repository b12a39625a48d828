//! The sync session state machines, sans-IO: the child streams its change log, the
//! parent applies and acknowledges. Drivers feed in messages and the time, perform the
//! IO the machines ask for (read the log, apply a batch, send a message) and report
//! back; the machines never block, sleep or touch a socket.
//!
//! Exactly-once rests on three rules:
//! 1. the parent applies a batch only if it starts at its durable cursor
//!    (`batch.after == cursor`) and advances the cursor in the same transaction;
//! 2. it acknowledges only after that commit;
//! 3. a child (re)starts from the cursor the parent sends in `Welcome`, so anything not
//!    acknowledged is sent again, and anything sent twice is ignored by rule 1.

use crate::record::{sha256, withdraw_hash, Record};
use crate::regions;
use crate::wire::*;
use std::collections::VecDeque;

/// Where a child session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildState {
    /// `Hello` sent, waiting for `Welcome`.
    AwaitWelcome,
    Streaming,
    /// The parent refused; the session is over.
    Refused(Refused),
}

/// What a message meant to the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEvent {
    /// Welcomed: streaming resumes after `cursor`.
    Ready {
        cursor: u64,
        version: u16,
        features: u32,
    },
    /// The parent durably holds everything up to `cursor`.
    Acked {
        cursor: u64,
        ack: Ack,
    },
    /// Nothing new (a stale or duplicate message).
    Nothing,
    Refused(Refused),
}

/// The child side of one session.
#[derive(Debug, Clone)]
pub struct ChildSession {
    node_id: String,
    features: u32,
    /// Batches allowed in flight.
    window: usize,
    /// With batches in flight and no progress for this long, start again from the
    /// last acknowledged cursor (go-back-N); also resends an unanswered Hello.
    stall_ms: i64,
    state: ChildState,
    acked: u64,
    sent_upto: u64,
    in_flight: VecDeque<u64>,
    last_progress: i64,
    agreed_features: u32,
}

impl ChildSession {
    pub fn new(node_id: &str, features: u32, window: usize, stall_ms: i64) -> ChildSession {
        ChildSession {
            node_id: node_id.to_string(),
            features,
            window: window.max(1),
            stall_ms,
            state: ChildState::AwaitWelcome,
            acked: 0,
            sent_upto: 0,
            in_flight: VecDeque::new(),
            last_progress: 0,
            agreed_features: 0,
        }
    }

    /// Starts (or restarts) the session: the `Hello` to send.
    pub fn hello(&mut self, now: i64, agent: &str) -> Message {
        self.state = ChildState::AwaitWelcome;
        self.in_flight.clear();
        self.last_progress = now;
        Message::Hello(Hello {
            magic: MAGIC,
            min_version: MIN_VERSION,
            max_version: MAX_VERSION,
            node_id: self.node_id.clone(),
            features: self.features,
            agent: agent.to_string(),
        })
    }

    /// Handles a message from the parent. An error is a protocol violation: send it
    /// as `Refused` and close.
    pub fn handle(&mut self, msg: Message, now: i64) -> Result<ChildEvent, Refused> {
        match msg {
            Message::Welcome(w) => {
                if !(MIN_VERSION..=MAX_VERSION).contains(&w.version) {
                    let r = Refused::new(
                        "version_mismatch",
                        format!("parent chose protocol version {}, this node speaks {MIN_VERSION}..={MAX_VERSION}", w.version),
                    );
                    self.state = ChildState::Refused(r.clone());
                    return Err(r);
                }
                self.state = ChildState::Streaming;
                self.acked = w.cursor;
                self.sent_upto = w.cursor;
                self.in_flight.clear();
                self.last_progress = now;
                self.agreed_features = w.features & self.features;
                Ok(ChildEvent::Ready { cursor: w.cursor, version: w.version, features: self.agreed_features })
            }
            Message::Ack(a) => {
                if self.state != ChildState::Streaming || a.cursor <= self.acked {
                    return Ok(ChildEvent::Nothing);
                }
                self.acked = a.cursor;
                self.sent_upto = self.sent_upto.max(a.cursor);
                while self.in_flight.front().is_some_and(|&u| u <= a.cursor) {
                    self.in_flight.pop_front();
                }
                self.last_progress = now;
                Ok(ChildEvent::Acked { cursor: a.cursor, ack: a })
            }
            Message::Refused(r) => {
                self.state = ChildState::Refused(r.clone());
                Ok(ChildEvent::Refused(r))
            }
            Message::Hello(_) | Message::Batch(_) => Err(Refused::new("unexpected_message", "a parent sent a child-side message")),
        }
    }

    /// When a batch may be sent: the log position it must start after.
    pub fn next_after(&self) -> Option<u64> {
        (self.state == ChildState::Streaming && self.in_flight.len() < self.window).then_some(self.sent_upto)
    }

    /// Builds the batch of log entries `(after, upto]` and records it as in flight.
    pub fn batch(&mut self, after: u64, upto: u64, count: u32, encoding: u8, payload: Vec<u8>, now: i64) -> Message {
        debug_assert_eq!(after, self.sent_upto, "batches follow each other");
        if self.in_flight.is_empty() {
            self.last_progress = now;
        }
        self.sent_upto = upto;
        self.in_flight.push_back(upto);
        Message::Batch(Batch { after, upto, count, encoding, payload })
    }

    /// Lets time pass; returns a message to send when the session stalled.
    pub fn tick(&mut self, now: i64, agent: &str) -> Option<Message> {
        if now - self.last_progress < self.stall_ms {
            return None;
        }
        match self.state {
            ChildState::AwaitWelcome => Some(self.hello(now, agent)),
            ChildState::Streaming if !self.in_flight.is_empty() => {
                self.in_flight.clear();
                self.sent_upto = self.acked;
                self.last_progress = now;
                None
            }
            _ => None,
        }
    }

    pub fn state(&self) -> &ChildState {
        &self.state
    }

    /// The parent's durable cursor, as last acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Features both sides agreed on in `Welcome`.
    pub fn agreed_features(&self) -> u32 {
        self.agreed_features
    }
}

/// What the parent driver must do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentAction {
    Send(Message),
    /// Decode, check and apply this batch in one transaction that also moves the
    /// cursor to `batch.upto`; then call [`ParentSession::applied`].
    Apply(Batch),
    /// Send this refusal, log it, and close the session.
    Close(Refused),
}

/// The parent side of one session with one child, whose identity the driver took from
/// the child's verified certificate.
#[derive(Debug, Clone)]
pub struct ParentSession {
    parent_id: String,
    child_id: String,
    features: u32,
    cursor: u64,
    welcomed: bool,
}

impl ParentSession {
    /// `cursor` is the durable cursor for this child.
    pub fn new(parent_id: &str, child_id: &str, cursor: u64, features: u32) -> ParentSession {
        ParentSession { parent_id: parent_id.to_string(), child_id: child_id.to_string(), features, cursor, welcomed: false }
    }

    pub fn handle(&mut self, msg: Message) -> ParentAction {
        match msg {
            Message::Hello(h) => {
                if h.magic != MAGIC {
                    return ParentAction::Close(Refused::new("bad_hello", "the first message is not a huijiao Hello"));
                }
                let (lo, hi) = (h.min_version.max(MIN_VERSION), h.max_version.min(MAX_VERSION));
                if lo > hi {
                    return ParentAction::Close(Refused::new(
                        "version_mismatch",
                        format!(
                            "child {} speaks protocol versions {}..={}, parent {} speaks {MIN_VERSION}..={MAX_VERSION}; upgrade the older node",
                            self.child_id, h.min_version, h.max_version, self.parent_id
                        ),
                    ));
                }
                if h.node_id != self.child_id {
                    return ParentAction::Close(Refused::new(
                        "identity_mismatch",
                        format!("the child says it is node {} but its certificate names node {}", h.node_id, self.child_id),
                    ));
                }
                self.welcomed = true;
                ParentAction::Send(Message::Welcome(Welcome {
                    version: hi,
                    node_id: self.parent_id.clone(),
                    cursor: self.cursor,
                    features: self.features & h.features,
                }))
            }
            Message::Batch(b) => {
                if !self.welcomed {
                    return ParentAction::Close(Refused::new("unexpected_message", "a batch before Hello"));
                }
                if b.after != self.cursor {
                    // A replay or a batch overtaken by a rewind: state the cursor again.
                    return ParentAction::Send(Message::Ack(Ack { cursor: self.cursor, applied: 0, duplicates: 0, conflicts: 0 }));
                }
                if b.upto <= b.after {
                    return ParentAction::Close(Refused::new("bad_batch", format!("batch range ({}, {}] is empty", b.after, b.upto)));
                }
                ParentAction::Apply(b)
            }
            Message::Welcome(_) | Message::Ack(_) => {
                ParentAction::Close(Refused::new("unexpected_message", "a child sent a parent-side message"))
            }
            Message::Refused(r) => ParentAction::Close(r),
        }
    }

    /// The batch up to `upto` is durably applied: the acknowledgement to send.
    pub fn applied(&mut self, upto: u64, applied: u32, duplicates: u32, conflicts: u32) -> Message {
        self.cursor = self.cursor.max(upto);
        Message::Ack(Ack { cursor: self.cursor, applied, duplicates, conflicts })
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn child_id(&self) -> &str {
        &self.child_id
    }
}

/// Whether `parent` takes `child` as a child: strictly inside its jurisdiction, and on
/// the allow-list when there is one.
pub fn authorize_child(parent: &str, child: &str, allow: Option<&[String]>) -> Result<(), Refused> {
    if !regions::is_below(parent, child) {
        return Err(Refused::new("outside_jurisdiction", format!("node {child} is not inside the jurisdiction of node {parent}")));
    }
    if let Some(list) = allow {
        if !list.iter().any(|a| a == child) {
            return Err(Refused::new("not_allowed", format!("node {child} is not on node {parent}'s list of children")));
        }
    }
    Ok(())
}

/// A change that passed [`check_change`], with its parsed record (for an upsert).
/// Only `check_change` makes one, so a store that takes `CheckedChange`s knows the
/// checks ran.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckedChange {
    pub change: Change,
    pub record: Option<Record>,
}

/// Checks a change from `child` and keeps the record it parsed.
pub fn checked(child: &str, change: Change) -> Result<CheckedChange, Refused> {
    let record = check_change(child, &change)?;
    Ok(CheckedChange { change, record })
}

/// Checks one change from `child`: inside its jurisdiction, a consistent provenance,
/// and a body that matches its hash and is a record. Any failure refuses the whole
/// batch. Returns the parsed record of an upsert, so it is parsed only once.
pub fn check_change(child: &str, c: &Change) -> Result<Option<Record>, Refused> {
    let what = || format!("change {} of {} (version {}) from node {child}", c.seq, c.reg_no, c.version);
    if !regions::covers(child, &c.region) || !regions::covers(child, &c.origin) {
        return Err(Refused::new(
            "outside_jurisdiction",
            format!("{}: region {} / origin {} is outside the jurisdiction of node {child}", what(), c.region, c.origin),
        ));
    }
    if c.reg_no.get(..6) != Some(c.region.as_str()) {
        return Err(Refused::new("bad_change", format!("{}: reg_no does not start with region {}", what(), c.region)));
    }
    if c.version == 0 {
        return Err(Refused::new("bad_change", format!("{}: version 0", what())));
    }
    match (c.hops.first(), c.hops.last()) {
        (Some(first), Some(last)) if first.node == c.origin && last.node == child => {}
        _ => return Err(Refused::new("bad_change", format!("{}: hops must run from the origin {} to the sender", what(), c.origin))),
    }
    match (c.op, &c.body) {
        (Op::Upsert, Some(body)) => {
            if sha256(body) != c.hash {
                return Err(Refused::new("bad_change", format!("{}: body does not match its hash", what())));
            }
            let rec = Record::from_json(body).map_err(|e| Refused::new("bad_change", format!("{}: body is not a record: {e}", what())))?;
            if rec.reg_no != c.reg_no || rec.region != c.region {
                return Err(Refused::new("bad_change", format!("{}: body names another record", what())));
            }
            Ok(Some(rec))
        }
        (Op::Withdraw, None) if c.hash == withdraw_hash(&c.reg_no) => Ok(None),
        _ => Err(Refused::new("bad_change", format!("{}: body and operation disagree", what()))),
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
