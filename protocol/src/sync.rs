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
//!
//! One room: the two session machines (child and parent), whose states mirror each
//! other, and the checks of what a child sends.

use crate::date::Date;
use crate::record::{sha256, withdraw_hash, Record, RecordFacts};
use crate::regions::{self, RegionTable};
use crate::validate::Validator;
use crate::wire::*;
use std::collections::VecDeque;

/// Where a child session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildState {
    /// `Hello` sent, waiting for `Welcome`.
    AwaitWelcome,
    /// Version 2: `Resume` sent, waiting for `Resumed`.
    AwaitResumed,
    Streaming,
    /// The parent refused; the session is over.
    Refused(PeerRefusal),
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
    Refused(PeerRefusal),
    /// Send this message (version 2: `Resume` after `Welcome`).
    Reply(Message),
    /// The parent holds more of this log than the child has: the child's store was
    /// rewound. The driver starts a new log ([`ChildSession::restart_log`]).
    Rewound {
        parent_cursor: u64,
        last_seq: u64,
    },
    /// The parent's last change of this log was at `seq` with this fingerprint: the
    /// driver compares its own change there and calls [`ChildSession::verified`].
    Verify {
        seq: u64,
        fingerprint: [u8; 32],
    },
    /// Conflicts concerning this node's subtree, held aside here or above (every note
    /// names an origin inside this node's jurisdiction: checked).
    Notes(Notes),
}

/// The child side of one session.
#[derive(Debug, Clone)]
pub struct ChildSession {
    node_id: String,
    features: u32,
    /// Batches allowed in flight.
    window: usize,
    /// With batches in flight or a handshake unanswered and no progress for this
    /// long, the session has stalled ([`ChildSession::handle_timeout`]).
    stall_ms: i64,
    state: ChildState,
    acked: u64,
    sent_upto: u64,
    in_flight: VecDeque<u64>,
    last_progress: i64,
    agreed_features: u32,
    version: u16,
    pending_cursor: Option<u64>,
    /// The change log this session streams (version 2), and its last sequence.
    log_id: String,
    last_seq: u64,
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
            version: 0,
            pending_cursor: None,
            log_id: String::new(),
            last_seq: 0,
        }
    }

    /// Names the change log to stream and its last sequence, for version 2.
    pub fn with_log(mut self, log_id: &str, last_seq: u64) -> ChildSession {
        self.log_id = log_id.to_string();
        self.last_seq = last_seq;
        self
    }

    fn resume(&self) -> Message {
        Message::Resume(Resume { log_id: self.log_id.clone(), last_seq: self.last_seq })
    }

    /// After [`ChildEvent::Verify`]: whether this log's change at that seq is the one
    /// the parent holds. If not, the store was rewound.
    pub fn verified(&mut self, same: bool, now: i64) -> ChildEvent {
        match self.pending_cursor.take() {
            Some(cursor) if same => self.ready(cursor, now),
            Some(cursor) => ChildEvent::Rewound { parent_cursor: cursor, last_seq: self.last_seq },
            None => ChildEvent::Nothing,
        }
    }

    /// After [`ChildEvent::Rewound`]: the driver made a new log; offer it.
    pub fn restart_log(&mut self, log_id: &str, now: i64) -> Message {
        self.log_id = log_id.to_string();
        self.last_progress = now;
        self.resume()
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
    /// as `PeerRefusal` and close.
    pub fn handle(&mut self, msg: Message, now: i64) -> Result<ChildEvent, PeerRefusal> {
        match msg {
            Message::Welcome(w) => {
                if !(MIN_VERSION..=MAX_VERSION).contains(&w.version) {
                    let r = PeerRefusal::new(
                        "version_mismatch",
                        format!("parent chose protocol version {}, this node speaks {MIN_VERSION}..={MAX_VERSION}", w.version),
                    );
                    self.state = ChildState::Refused(r.clone());
                    return Err(r);
                }
                self.in_flight.clear();
                self.last_progress = now;
                self.agreed_features = w.features & self.features;
                self.version = w.version;
                if w.version >= 2 {
                    self.state = ChildState::AwaitResumed;
                    return Ok(ChildEvent::Reply(self.resume()));
                }
                Ok(self.ready(w.cursor, now))
            }
            Message::Resumed(r) => {
                if self.state != ChildState::AwaitResumed {
                    return Ok(ChildEvent::Nothing);
                }
                if r.cursor > self.last_seq || r.check_seq > self.last_seq {
                    return Ok(ChildEvent::Rewound { parent_cursor: r.cursor, last_seq: self.last_seq });
                }
                if r.check_seq > 0 {
                    self.pending_cursor = Some(r.cursor);
                    return Ok(ChildEvent::Verify { seq: r.check_seq, fingerprint: r.check });
                }
                Ok(self.ready(r.cursor, now))
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
            Message::Notes(n) => {
                if self.agreed_features & FEATURE_NOTES == 0 {
                    return Err(PeerRefusal::new("unexpected_message", "conflict notes the session did not agree to"));
                }
                if n.conflicts.len() > MAX_NOTES {
                    return Err(PeerRefusal::new("bad_notes", format!("more than {MAX_NOTES} conflict notes")));
                }
                if let Some(c) = n
                    .conflicts
                    .iter()
                    .find(|c| !regions::covers(&self.node_id, &c.origin) && !regions::covers(&self.node_id, &c.kept_origin))
                {
                    return Err(PeerRefusal::new(
                        "bad_notes",
                        format!(
                            "a conflict note about {} concerns neither origin {} nor {} in this node's subtree",
                            c.reg_no, c.origin, c.kept_origin
                        ),
                    ));
                }
                Ok(ChildEvent::Notes(n))
            }
            Message::Hello(_) | Message::Batch(_) | Message::Resume(_) | Message::Fetch(_) | Message::Records(_) | Message::Health(_) => {
                Err(PeerRefusal::new("unexpected_message", "a parent sent a child-side message"))
            }
        }
    }

    fn ready(&mut self, cursor: u64, now: i64) -> ChildEvent {
        self.state = ChildState::Streaming;
        self.acked = cursor;
        self.sent_upto = cursor;
        self.in_flight.clear();
        self.last_progress = now;
        ChildEvent::Ready { cursor, version: self.version, features: self.agreed_features }
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

    /// When the session's one timer fires, if it is armed: while batches are in
    /// flight or the handshake is unanswered, `stall_ms` after the last progress
    /// (in the manner of quinn-proto's `poll_timeout`).
    pub fn poll_timeout(&self) -> Option<i64> {
        let waiting = !self.in_flight.is_empty() || matches!(self.state, ChildState::AwaitWelcome | ChildState::AwaitResumed);
        waiting.then_some(self.last_progress + self.stall_ms)
    }

    /// Lets time pass. `Err(Stalled)` once the timer has fired: the parent has not
    /// answered for `stall_ms`. The session runs over one ordered stream, where an
    /// answer that has not come will not come: the driver drops the connection and a
    /// new session resumes from the parent's durable cursor (nothing is lost — the
    /// parent acknowledged only what it committed — and nothing is applied twice).
    pub fn handle_timeout(&mut self, now: i64) -> Result<(), Stalled> {
        match self.poll_timeout() {
            Some(at) if now >= at => Err(Stalled { waited_ms: now - self.last_progress, in_flight: self.in_flight.len() }),
            _ => Ok(()),
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

/// A child session whose parent stopped answering (see [`ChildSession::handle_timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no answer from the parent for {waited_ms} ms ({in_flight} batches in flight)")]
pub struct Stalled {
    pub waited_ms: i64,
    pub in_flight: usize,
}

/// What the parent driver must do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentAction {
    Send(Message),
    /// Decode, check and apply this batch in one transaction that also moves the
    /// cursor to `batch.upto`; then call [`ParentSession::applied`].
    Apply(Batch),
    /// Send this refusal, log it, and close the session.
    Close(PeerRefusal),
    /// Version 2: look up the durable cursor of this child's log `log_id`, then call
    /// [`ParentSession::resumed`]. A cursor beyond `last_seq` means the child's store
    /// was rewound (say so loudly; the child starts a new log).
    Resume {
        log_id: String,
        last_seq: u64,
    },
    /// Version 2: send a page of the records held whose origin lies in the child's
    /// subtree (at most [`MAX_FETCH`]), as `Records`.
    Fetch {
        after: String,
        limit: u32,
    },
    /// Store this report of the child's subtree (every node in it lies inside the
    /// child's jurisdiction: checked).
    Health(Health),
}

/// The most records one `Fetch` returns.
pub const MAX_FETCH: u32 = 2000;

/// The parent side of one session with one child, whose identity the driver took from
/// the child's verified certificate.
#[derive(Debug, Clone)]
pub struct ParentSession {
    parent_id: String,
    child_id: String,
    features: u32,
    cursor: u64,
    welcomed: bool,
    version: u16,
    /// Version 2: the log named by `Resume` (batches before it are refused).
    log_id: Option<String>,
    /// When the connection was accepted: the Hello is due [`HELLO_DEADLINE_MS`] later.
    opened_at: i64,
}

/// How long a child has, after its connection is accepted, to say Hello: a peer that
/// opens a connection and says nothing must not hold a parent's slot.
pub const HELLO_DEADLINE_MS: i64 = 5_000;

impl ParentSession {
    /// `cursor` is the durable cursor for this child's version-1 log (version 2
    /// children name their log in `Resume`).
    pub fn new(parent_id: &str, child_id: &str, cursor: u64, features: u32) -> ParentSession {
        ParentSession {
            parent_id: parent_id.to_string(),
            child_id: child_id.to_string(),
            features,
            cursor,
            welcomed: false,
            version: 0,
            log_id: None,
            opened_at: 0,
        }
    }

    /// Starts the Hello deadline at `now` (the time the connection was accepted).
    pub fn opened_at(mut self, now: i64) -> ParentSession {
        self.opened_at = now;
        self
    }

    /// When the session's timer fires, if armed: until the Hello, at the deadline.
    pub fn poll_timeout(&self) -> Option<i64> {
        (!self.welcomed).then_some(self.opened_at + HELLO_DEADLINE_MS)
    }

    /// Lets time pass: past the Hello deadline, the refusal to send before closing.
    pub fn handle_timeout(&mut self, now: i64) -> Option<PeerRefusal> {
        match self.poll_timeout() {
            Some(at) if now >= at => {
                Some(PeerRefusal::new("no_hello", format!("no Hello within {} s of connecting", HELLO_DEADLINE_MS / 1000)))
            }
            _ => None,
        }
    }

    pub fn handle(&mut self, msg: Message) -> ParentAction {
        match msg {
            Message::Hello(h) => {
                if h.magic != MAGIC {
                    return ParentAction::Close(PeerRefusal::new("bad_hello", "the first message is not a huijiao Hello"));
                }
                let (lo, hi) = (h.min_version.max(MIN_VERSION), h.max_version.min(MAX_VERSION));
                if lo > hi {
                    return ParentAction::Close(PeerRefusal::new(
                        "version_mismatch",
                        format!(
                            "child {} speaks protocol versions {}..={}, parent {} speaks {MIN_VERSION}..={MAX_VERSION}; upgrade the older node",
                            self.child_id, h.min_version, h.max_version, self.parent_id
                        ),
                    ));
                }
                if h.node_id != self.child_id {
                    return ParentAction::Close(PeerRefusal::new(
                        "identity_mismatch",
                        format!("the child says it is node {} but its certificate names node {}", h.node_id, self.child_id),
                    ));
                }
                self.welcomed = true;
                self.version = hi;
                self.features &= h.features;
                ParentAction::Send(Message::Welcome(Welcome {
                    version: hi,
                    node_id: self.parent_id.clone(),
                    // Version 2 resumes after `Resume` names the log.
                    cursor: if hi >= 2 { 0 } else { self.cursor },
                    features: self.features,
                }))
            }
            Message::Resume(r) => {
                if !self.welcomed || self.version < 2 {
                    return ParentAction::Close(PeerRefusal::new("unexpected_message", "Resume outside a version-2 session"));
                }
                if r.log_id.len() != 32 || !r.log_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return ParentAction::Close(PeerRefusal::new("bad_resume", "a log id is 32 hex digits"));
                }
                ParentAction::Resume { log_id: r.log_id, last_seq: r.last_seq }
            }
            Message::Fetch(f) => {
                if !self.welcomed || self.version < 2 {
                    return ParentAction::Close(PeerRefusal::new("unexpected_message", "Fetch outside a version-2 session"));
                }
                ParentAction::Fetch { after: f.after, limit: f.limit.clamp(1, MAX_FETCH) }
            }
            Message::Batch(b) => {
                if !self.welcomed {
                    return ParentAction::Close(PeerRefusal::new("unexpected_message", "a batch before Hello"));
                }
                if self.version >= 2 && self.log_id.is_none() {
                    return ParentAction::Close(PeerRefusal::new("unexpected_message", "a batch before Resume"));
                }
                if b.after != self.cursor {
                    // A replay or a batch overtaken by a rewind: state the cursor again.
                    return ParentAction::Send(Message::Ack(Ack { cursor: self.cursor, applied: 0, duplicates: 0, conflicts: 0 }));
                }
                if b.upto <= b.after {
                    return ParentAction::Close(PeerRefusal::new("bad_batch", format!("batch range ({}, {}] is empty", b.after, b.upto)));
                }
                if b.upto > i64::MAX as u64 {
                    return ParentAction::Close(PeerRefusal::new(
                        "bad_batch",
                        format!("batch range ({}, {}] goes past {} (the store cannot hold it)", b.after, b.upto, i64::MAX),
                    ));
                }
                ParentAction::Apply(b)
            }
            Message::Health(h) => {
                if !self.welcomed || self.features & FEATURE_HEALTH == 0 {
                    return ParentAction::Close(PeerRefusal::new("unexpected_message", "a health report the session did not agree to"));
                }
                if h.nodes.len() > MAX_HEALTH_NODES {
                    return ParentAction::Close(PeerRefusal::new(
                        "bad_health",
                        format!("a health report of more than {MAX_HEALTH_NODES} nodes"),
                    ));
                }
                if let Some(n) = h.nodes.iter().find(|n| !crate::regions::covers(&self.child_id, &n.node)) {
                    return ParentAction::Close(PeerRefusal::new(
                        "outside_jurisdiction",
                        format!("child {} reported on node {}, which is not in its subtree", self.child_id, n.node),
                    ));
                }
                ParentAction::Health(h)
            }
            Message::Welcome(_) | Message::Ack(_) | Message::Resumed(_) | Message::Records(_) | Message::Notes(_) => {
                ParentAction::Close(PeerRefusal::new("unexpected_message", "a child sent a parent-side message"))
            }
            Message::Refused(r) => ParentAction::Close(r),
        }
    }

    /// The features both sides agreed on (after `Hello`).
    pub fn features(&self) -> u32 {
        self.features
    }

    /// The durable cursor of the log named in `Resume`, and the seq and fingerprint
    /// of the last change received from it: the answer to send.
    pub fn resumed(&mut self, log_id: &str, cursor: u64, check_seq: u64, check: [u8; 32]) -> Message {
        self.log_id = Some(log_id.to_string());
        self.cursor = cursor;
        Message::Resumed(Resumed { cursor, check_seq, check })
    }

    /// The log this session applies to: `""` for a version-1 child.
    pub fn log_id(&self) -> &str {
        self.log_id.as_deref().unwrap_or("")
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

/// Whether `parent` takes `child` as a child: strictly inside its jurisdiction, and
/// either on the allow-list when there is one, or else its immediate child in the
/// GB/T 2260 table (a province's prefectures and 省直辖县, a prefecture's counties,
/// the national node's provinces). A node deeper down must connect to its own
/// parent, or be listed: nobody skips a tier by accident.
pub fn authorize_child(parent: &str, child: &str, allow: Option<&[String]>, regions: &RegionTable) -> Result<(), PeerRefusal> {
    if !regions::is_below(parent, child) {
        return Err(PeerRefusal::new("outside_jurisdiction", format!("node {child} is not inside the jurisdiction of node {parent}")));
    }
    match allow {
        Some(list) if !list.iter().any(|a| a == child) => {
            Err(PeerRefusal::new("not_allowed", format!("node {child} is not on node {parent}'s list of children")))
        }
        Some(_) => Ok(()),
        None if regions.get(child).is_some_and(|r| r.parent == parent) => Ok(()),
        None => {
            let own = match regions.get(child).map(|r| r.parent.clone()).filter(|p| !p.is_empty()) {
                Some(p) => format!("its own parent {p}"),
                None => "its own parent".to_string(),
            };
            Err(PeerRefusal::new(
                "not_immediate_child",
                format!(
                    "node {child} is not an immediate child of node {parent}: it must connect to {own}, or be listed in node {parent}'s [listen] children"
                ),
            ))
        }
    }
}

/// A change that passed [`check_change`], with what a store keeps of its record
/// beside the body (for an upsert). Only `check_change` makes one, so a store that
/// takes `CheckedChange`s knows the checks ran.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckedChange {
    /// The change; an upsert's body is in `text` instead (`change.body` is `None`).
    pub change: Change,
    /// The parsed record's facts. The record itself is dropped by the check, on the
    /// thread that parsed it: freeing its two dozen strings on the store's writer
    /// thread instead took a seventh of the writer's time at a parent.
    pub facts: Option<RecordFacts>,
    /// An upsert's body as the text it was checked to be (UTF-8 checked once, here, so
    /// a store writes it without checking it again).
    pub text: Option<String>,
    /// A hop time was not believable (before the hop before it, or too far in the
    /// future) and was replaced by the parent's receipt time: the child's clock (or a
    /// clock below it) is off.
    pub clock_corrected: bool,
}

/// What a parent checks a child's change against besides the change itself.
#[derive(Debug, Clone, Copy)]
pub struct Checks<'a> {
    pub regions: &'a RegionTable,
    /// The parent's today in Beijing time; a record's 登记日期 may be one day later
    /// (the origin's midnight may come first).
    pub today: Date,
    /// The parent's clock, ms since the epoch: what a corrected hop time becomes.
    pub now_ms: i64,
    /// How far ahead of `now_ms` a hop time may be before it is corrected.
    pub max_skew_ms: i64,
}

/// How much one child may send: changes per day (Beijing date) and per minute. What is
/// over is held back — never refused, never lost: it comes when the bound allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeLimits {
    pub per_day: u64,
    pub per_minute: u64,
}

/// What the parent does with a batch of a child, by its volume so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Apply it now.
    Now,
    /// Apply it after waiting this long (ms): the rate is over for a moment.
    After(i64),
    /// Hold it back (end the session, the child comes back later): the reason.
    Hold(String),
}

/// A child's volume: a day's count and a token bucket of a minute's worth.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    day: Date,
    today: u64,
    tokens: f64,
    at_ms: i64,
}

/// A rate that would make the parent wait longer than this holds the batch back instead.
pub const MAX_VOLUME_WAIT_MS: i64 = 10_000;

impl Volume {
    pub fn new(today: Date, now_ms: i64, limits: VolumeLimits) -> Volume {
        Volume { day: today, today: 0, tokens: limits.per_minute as f64, at_ms: now_ms }
    }

    /// Whether a batch of `n` changes may be applied (`today` in Beijing time).
    pub fn admit(&mut self, n: u64, today: Date, now_ms: i64, limits: VolumeLimits) -> Admit {
        if today != self.day {
            self.day = today;
            self.today = 0;
        }
        let per_ms = limits.per_minute as f64 / 60_000.0;
        let cap = limits.per_minute as f64;
        self.tokens = (self.tokens + (now_ms - self.at_ms).max(0) as f64 * per_ms).min(cap);
        self.at_ms = now_ms;
        if self.today.saturating_add(n) > limits.per_day {
            return Admit::Hold(format!(
                "{} changes today and {n} more would pass the daily bound of {} ([listen] max_changes_per_day); the rest waits for tomorrow (Beijing time) or a higher bound",
                self.today, limits.per_day
            ));
        }
        // A batch larger than a minute's worth needs a full bucket.
        let need = (n as f64).min(cap);
        if self.tokens >= need {
            self.tokens -= n as f64;
            self.today += n;
            return Admit::Now;
        }
        let wait = ((need - self.tokens) / per_ms.max(f64::MIN_POSITIVE)).ceil() as i64;
        if wait > MAX_VOLUME_WAIT_MS {
            return Admit::Hold(format!(
                "{n} changes now would pass the bound of {} a minute ([listen] max_changes_per_minute); they come in a moment",
                limits.per_minute
            ));
        }
        Admit::After(wait)
    }
}

/// Hop times before this (2000-01-01) are nobody's clock.
const EARLIEST_HOP_MS: i64 = 946_684_800_000;

/// Checks that a batch `(after, upto]` from `child` holds only changes of that range
/// that `child` sent itself (it is the last hop). Any stray change refuses the batch.
pub fn check_batch_range(child: &str, after: u64, upto: u64, changes: &[CheckedChange]) -> Result<(), PeerRefusal> {
    if upto > i64::MAX as u64 || after > upto {
        return Err(PeerRefusal::new(
            "bad_batch",
            format!("batch ({after}, {upto}] is not a range this node can store (at most {})", i64::MAX),
        ));
    }
    match changes.iter().find(|c| c.change.seq <= after || c.change.seq > upto || c.change.hops.last().is_none_or(|h| h.node != child)) {
        Some(c) => {
            Err(PeerRefusal::new("bad_batch", format!("change seq {} outside batch ({after}, {upto}] or not from {child}", c.change.seq)))
        }
        None => Ok(()),
    }
}

/// Checks a change from `child` and keeps the record it parsed.
pub fn checked(child: &str, mut change: Change, checks: &Checks<'_>) -> Result<CheckedChange, PeerRefusal> {
    let (record, clock_corrected, text) = check_change_text(child, &mut change, checks)?;
    Ok(CheckedChange { change, facts: record.as_ref().map(RecordFacts::of), text, clock_corrected })
}

/// Checks one change from `child` — a certificate proves who the child is, not that
/// its data is good, so everything is checked again: inside its jurisdiction; numbers
/// that fit the store (version and seq at most `i64::MAX`); a provenance that runs from
/// the origin up the GB/T 2260 tree to the sender, each hop an ancestor of the one
/// before (a 省直辖县's next hop is its province), hence at most four; a body that
/// matches its hash and is a record meeting every rule of spec §3 the intake applies
/// (`bad_change` naming the rule and field). Any failure refuses the whole batch.
/// A hop time before the previous one's, before 2000 or beyond the allowed skew into
/// the future is replaced by the parent's receipt time (a county with a bad clock
/// must not get stuck); the second value says so. Returns the parsed record of an
/// upsert, so it is parsed only once.
pub fn check_change(child: &str, c: &mut Change, checks: &Checks<'_>) -> Result<(Option<Record>, bool), PeerRefusal> {
    let (record, corrected, text) = check_change_text(child, c, checks)?;
    if let Some(t) = text {
        c.body = Some(t.into_bytes());
    }
    Ok((record, corrected))
}

/// [`check_change`], handing an upsert's body back as text (taken out of the change).
fn check_change_text(child: &str, c: &mut Change, checks: &Checks<'_>) -> Result<(Option<Record>, bool, Option<String>), PeerRefusal> {
    let what = |c: &Change| format!("change {} of {} (version {}) from node {child}", c.seq, c.reg_no, c.version);
    if !regions::covers(child, &c.region) || !regions::covers(child, &c.origin) {
        return Err(PeerRefusal::new(
            "outside_jurisdiction",
            format!("{}: region {} / origin {} is outside the jurisdiction of node {child}", what(c), c.region, c.origin),
        ));
    }
    if c.reg_no.get(..6) != Some(c.region.as_str()) {
        return Err(PeerRefusal::new("bad_change", format!("{}: reg_no does not start with region {}", what(c), c.region)));
    }
    if c.version == 0 || c.version > i64::MAX as u64 {
        return Err(PeerRefusal::new("bad_change", format!("{}: version out of range (1 to {})", what(c), i64::MAX)));
    }
    if c.seq > i64::MAX as u64 {
        return Err(PeerRefusal::new("bad_change", format!("{}: seq out of range (at most {})", what(c), i64::MAX)));
    }
    match (c.hops.first(), c.hops.last()) {
        (Some(first), Some(last)) if first.node == c.origin && last.node == child => {}
        _ => return Err(PeerRefusal::new("bad_change", format!("{}: hops must run from the origin {} to the sender", what(c), c.origin))),
    }
    for pair in c.hops.windows(2) {
        let (below, above) = (&pair[0].node, &pair[1].node);
        let known = |n: &str| n == regions::NATIONAL || checks.regions.contains(n);
        if !known(below) || !known(above) || below == above || !regions::covers(above, below) {
            return Err(PeerRefusal::new(
                "bad_change",
                format!("{}: hop {above} does not stand above hop {below} in the GB/T 2260 tree", what(c)),
            ));
        }
    }
    let mut corrected = false;
    let mut previous = EARLIEST_HOP_MS;
    for hop in &mut c.hops {
        if hop.accepted_at_ms < previous || hop.accepted_at_ms > checks.now_ms.saturating_add(checks.max_skew_ms) {
            hop.accepted_at_ms = checks.now_ms.max(previous);
            corrected = true;
        }
        previous = hop.accepted_at_ms;
    }
    let (record, text) = match (c.op, c.body.take()) {
        (Op::Upsert, Some(body)) if body.len() > MAX_CHANGE_BODY => {
            let message = format!("{}: body of {} bytes is over the limit of {MAX_CHANGE_BODY}", what(c), body.len());
            c.body = Some(body);
            return Err(PeerRefusal::new("bad_change", message));
        }
        (Op::Upsert, Some(body)) => {
            if sha256(&body) != c.hash {
                c.body = Some(body);
                return Err(PeerRefusal::new("bad_change", format!("{}: body does not match its hash", what(c))));
            }
            // UTF-8 checked once for the whole body; the parser then reads text.
            let text = match String::from_utf8(body) {
                Ok(t) => t,
                Err(e) => {
                    c.body = Some(e.into_bytes());
                    return Err(PeerRefusal::new("bad_change", format!("{}: body is not UTF-8 JSON", what(c))));
                }
            };
            let rec = match serde_json::from_str::<Record>(&text) {
                Ok(r) => r,
                Err(e) => {
                    let message = format!("{}: body is not a record: {e}", what(c));
                    c.body = Some(text.into_bytes());
                    return Err(PeerRefusal::new("bad_change", message));
                }
            };
            if rec.reg_no != c.reg_no || rec.region != c.region {
                c.body = Some(text.into_bytes());
                return Err(PeerRefusal::new("bad_change", format!("{}: body names another record", what(c))));
            }
            let v = Validator { regions: checks.regions, today: Date::from_days(checks.today.to_days() + 1), node: Some(child) };
            if let Err(errors) = v.check_record(&rec) {
                let e = &errors[0];
                let message = format!(
                    "{}: breaks the submission format: {} in field {} ({})",
                    what(c),
                    e.code,
                    e.field.as_deref().unwrap_or("?"),
                    e.message
                );
                c.body = Some(text.into_bytes());
                return Err(PeerRefusal::new("bad_change", message));
            }
            (Some(rec), Some(text))
        }
        (Op::Withdraw, None) if c.hash == withdraw_hash(&c.reg_no) => (None, None),
        (_, body) => {
            c.body = body;
            return Err(PeerRefusal::new("bad_change", format!("{}: body and operation disagree", what(c))));
        }
    };
    Ok((record, corrected, text))
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;

/// Checks a record a parent sent back to `node` (`huijiao recover`): inside the node's
/// own jurisdiction, a body that matches its hash and names the record.
pub fn check_recovered(node: &str, c: Change) -> Result<CheckedChange, PeerRefusal> {
    if !regions::covers(node, &c.region) || !regions::covers(node, &c.origin) {
        return Err(PeerRefusal::new(
            "outside_jurisdiction",
            format!("record {} (origin {}) is not from node {node}'s subtree", c.reg_no, c.origin),
        ));
    }
    let mut c = c;
    let (record, text) = match (c.op, c.body.take()) {
        (Op::Upsert, Some(body)) if sha256(&body) == c.hash && body.len() <= MAX_CHANGE_BODY => {
            // UTF-8 checked once; the parser then reads the text.
            let text = String::from_utf8(body)
                .map_err(|_| PeerRefusal::new("bad_change", format!("record {}: the body is not UTF-8 JSON", c.reg_no)))?;
            let rec =
                serde_json::from_str::<Record>(&text).map_err(|e| PeerRefusal::new("bad_change", format!("record {}: {e}", c.reg_no)))?;
            if rec.reg_no != c.reg_no || rec.region != c.region {
                return Err(PeerRefusal::new("bad_change", format!("record {}: the body names another record", c.reg_no)));
            }
            (Some(rec), Some(text))
        }
        (Op::Withdraw, None) if c.hash == withdraw_hash(&c.reg_no) => (None, None),
        _ => return Err(PeerRefusal::new("bad_change", format!("record {}: body and hash disagree", c.reg_no))),
    };
    Ok(CheckedChange { change: c, facts: record.as_ref().map(RecordFacts::of), text, clock_corrected: false })
}
