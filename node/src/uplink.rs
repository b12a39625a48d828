//! The uplink: a child streams its change log to its parent over QUIC, resuming from
//! the parent's durable cursor for this log, reconnecting with exponential backoff
//! and jitter.
//!
//! With protocol version 2 the child names its log (`Resume`); when the parent holds
//! more of it than the store has, the store was rewound (restored from an older copy)
//! and the child starts a new log, so nothing made after the restore is mistaken for
//! something the parent already holds. A change the parent refuses is held aside
//! (`stuck`, shown by `huijiao status`) and the changes behind it go on.

use crate::config::{Config, Parent};
use crate::net::{self, Identity, SessionError};
use crate::store::{Store, StoreError};
use huijiao_protocol::sync::{ChildEvent, ChildSession};
use huijiao_protocol::wire::{self, Message, PeerRefusal};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// How a session ended.
enum End {
    Shutdown,
    Refused(PeerRefusal),
}

/// Jitter for the backoff (xorshift; nothing here needs more).
struct Jitter(u64);

impl Jitter {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Runs until `shutdown`; every failure is logged, recorded for `huijiao status`, and
/// followed by a reconnect.
pub async fn run(
    cfg: Arc<Config>,
    store: Store,
    endpoint: quinn::Endpoint,
    reloads: tokio::sync::watch::Receiver<net::Reload>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(parent) = cfg.parent.clone() else { return Ok(()) };
    let min = Duration::from_millis(cfg.sync.reconnect_min_ms.max(10));
    let max = Duration::from_millis(cfg.sync.reconnect_max_ms.max(cfg.sync.reconnect_min_ms));
    let mut backoff = min;
    let mut jitter = Jitter((crate::clock::now_ms() as u64 ^ u64::from(std::process::id())) | 1);
    loop {
        record(&store, &parent, "connecting", None, None, None).await;
        let started = Instant::now();
        let mut progressed = false;
        let mut acked = None;
        // Each attempt with the identity as last reloaded (a renewed certificate).
        let identity = reloads.borrow().1.clone();
        let result = session(&cfg, &store, &endpoint, &identity, &parent, &shutdown, &mut progressed, &mut acked).await;
        match result {
            Ok(End::Shutdown) => {
                record(&store, &parent, "stopped", acked, None, None).await;
                return Ok(());
            }
            Ok(End::Refused(r)) => {
                error!(parent = %parent.node_id, code = %r.code, "the parent refused this node: {}", r.message);
                note_stuck(&store, &r).await;
                record(&store, &parent, "refused", acked, Some(&r.to_string()), None).await;
            }
            Err(e) if e.held_back().is_some() => {
                let why = e.held_back().unwrap_or_default();
                warn!(parent = %parent.node_id, "the parent holds this node's changes back for now (they wait, nothing is lost): {why}");
                record(&store, &parent, "held back", acked, Some(&why), None).await;
            }
            Err(e) => match e.refusal() {
                // The parent closed the connection with its reason (refused at the handshake).
                Some(r) => {
                    error!(parent = %parent.node_id, code = %r.code, "the parent refused this node: {}", r.message);
                    record(&store, &parent, "refused", acked, Some(&r.to_string()), None).await;
                }
                None => {
                    warn!(parent = %parent.node_id, address = %parent.address, "uplink failed: {e:#}");
                    record(&store, &parent, "error", acked, Some(&format!("{e:#}")), None).await;
                }
            },
        }
        if progressed || started.elapsed() > max {
            backoff = min;
        }
        // Full jitter over [backoff/2, backoff): many counties reconnecting after a
        // parent restart do not arrive in step.
        let wait = backoff / 2 + Duration::from_millis(jitter.below(backoff.as_millis().max(2) as u64 / 2));
        debug!(?wait, "reconnecting after backoff");
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(max);
    }
}

/// A refusal that names one change (`change N of REG_NO …`): that change is held
/// aside, so the next session goes on with the rest.
async fn note_stuck(store: &Store, r: &PeerRefusal) {
    let Some(rest) = r.message.strip_prefix("change ") else { return };
    let mut words = rest.split_whitespace();
    let (Some(seq), Some("of"), Some(reg_no)) = (words.next().and_then(|s| s.parse::<u64>().ok()), words.next(), words.next()) else {
        return;
    };
    let (reg_no, reason, now) = (reg_no.to_string(), r.to_string(), crate::clock::now_ms());
    error!(seq, reg_no = %reg_no, "the parent refused this change; it is held aside and the changes behind it go on: {reason}");
    if let Err(e) = store.run(move |w| w.mark_stuck(seq, &reg_no, &reason, now)).await {
        warn!("cannot hold the refused change aside: {e:#}");
    }
}

async fn record(store: &Store, parent: &Parent, state: &str, acked: Option<u64>, error: Option<&str>, connected_at: Option<i64>) {
    let (p, s, e) = (parent.node_id.clone(), state.to_string(), error.map(str::to_string));
    let now = crate::clock::now_ms();
    match store.run(move |w| w.set_uplink(&p, &s, acked, e.as_deref(), connected_at, now)).await {
        Ok(()) => {}
        Err(e) => warn!("cannot record the uplink state: {e:#}"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    cfg: &Config,
    store: &Store,
    endpoint: &quinn::Endpoint,
    identity: &Identity,
    parent: &Parent,
    shutdown: &CancellationToken,
    progressed: &mut bool,
    acked: &mut Option<u64>,
) -> Result<End, SessionError> {
    let idle = cfg.idle_timeout();
    let unreachable = |what: String| SessionError::Unreachable(what);
    let addr = tokio::net::lookup_host(&parent.address)
        .await
        .map_err(|e| unreachable(format!("cannot resolve parent address {}: {e}", parent.address)))?
        .next()
        .ok_or_else(|| unreachable(format!("parent address {} resolves to nothing", parent.address)))?;
    // An IPv6 parent from an IPv4 socket (or the other way round) needs a socket of
    // its own family.
    let own;
    let local = endpoint.local_addr().map_err(|e| unreachable(format!("this node's UDP socket: {e}")))?;
    let endpoint = if local.is_ipv4() == addr.is_ipv4() {
        endpoint
    } else {
        own = net::client_endpoint(addr.is_ipv6()).map_err(|e| unreachable(format!("{e:#}")))?;
        &own
    };
    // Built per attempt so a renewed CRL is picked up.
    let client = identity.client_config(idle).map_err(|e| unreachable(format!("{e:#}")))?;
    let connecting = endpoint
        .connect_with(client, addr, &crate::pki::node_dns_name(&parent.node_id))
        .map_err(|e| unreachable(format!("cannot connect to parent {} at {addr}: {e}", parent.node_id)))?;
    let conn = tokio::select! {
        _ = shutdown.cancelled() => return Ok(End::Shutdown),
        c = connecting => c.map_err(|cause| SessionError::Connection { what: format!("cannot connect to parent {} at {addr}", parent.node_id), cause })?,
    };
    let result = stream(cfg, store, &conn, parent, shutdown, progressed, acked, idle).await;
    match &result {
        Ok(End::Shutdown) => conn.close(net::CLOSE_DONE.into(), b"shutting down"),
        Ok(End::Refused(_)) => conn.close(net::CLOSE_REFUSED.into(), b"refused"),
        Err(_) => conn.close(net::CLOSE_ERROR.into(), b"error"),
    }
    result
}

/// One sync session with the parent, as a driver in the manner of quinn's connection
/// driver: [`stream`] opens the stream, sends the Hello, and waits for the next event;
/// each event has one handler on [`ParentLink`] — a frame from the parent
/// ([`ParentLink::on_message`]), new changes in the log (the watch), the health timer
/// ([`ParentLink::on_health`]) and the session timer ([`ParentLink::on_tick`]) — and
/// after each, what the window allows goes up ([`ParentLink::send_ready`]). Every
/// decision of the protocol is the session machine's (`protocol::sync`).
#[allow(clippy::too_many_arguments)]
async fn stream(
    cfg: &Config,
    store: &Store,
    conn: &quinn::Connection,
    parent: &Parent,
    shutdown: &CancellationToken,
    progressed: &mut bool,
    acked: &mut Option<u64>,
    idle: Duration,
) -> Result<End, SessionError> {
    let (mut send, recv) =
        conn.open_bi().await.map_err(|cause| SessionError::Connection { what: "cannot open the sync stream".into(), cause })?;
    let features = if cfg.sync.compress { wire::FEATURE_ZSTD } else { 0 } | wire::FEATURE_HEALTH | wire::FEATURE_NOTES;
    let stall = idle.as_millis() as i64 * 2;
    let ((log_id, last_seq), stuck) = store
        .read(|r| {
            let stuck: HashSet<u64> = r.stuck()?.into_iter().map(|s| s.seq as u64).collect();
            Ok::<_, StoreError>((r.log()?, stuck))
        })
        .await?;
    let mut s = ChildSession::new(&cfg.node_id, features, cfg.sync.window, stall).with_log(&log_id, last_seq);
    let agent = concat!("huijiao ", env!("CARGO_PKG_VERSION"));
    net::write_frame(&mut send, &s.hello(crate::clock::now_ms(), agent)).await?;

    let (mut frx, _reader_guard) = net::spawn_frame_reader(recv, net::Messages, 16);
    let mut changes = store.subscribe();
    let last_seq = *changes.borrow_and_update();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut health = tokio::time::interval(Duration::from_secs(cfg.sync.health_secs.max(1)));
    let mut link = ParentLink {
        cfg,
        store,
        parent,
        send,
        s,
        stuck,
        last_seq,
        reader_conn: None,
        last_recorded: Instant::now() - Duration::from_secs(10),
        progressed,
        acked,
    };
    loop {
        let step = match link.send_ready().await {
            Ok(()) => tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let _ = link.send.finish();
                    return Ok(End::Shutdown);
                }
                msg = frx.recv() => match msg.ok_or_else(|| SessionError::Ended("the frame reader stopped".into())) {
                    Ok(Ok(msg)) => link.on_message(msg).await,
                    Ok(Err(e)) | Err(e) => Err(e),
                },
                changed = changes.changed() => match changed {
                    Ok(()) => {
                        link.last_seq = *changes.borrow_and_update();
                        Ok(None)
                    }
                    Err(_) => Err(SessionError::Ended("the store closed".into())),
                },
                _ = health.tick(), if link.health_agreed() => link.on_health().await,
                _ = tick.tick() => link.on_tick().await,
            },
            Err(e) => Err(e),
        };
        match step {
            Ok(None) => {}
            Ok(Some(end)) => return Ok(end),
            // After a failed write the parent may have refused and closed: its reason.
            Err(e @ SessionError::Frame(net::FrameError::Write(_))) => return refusal_or(&mut frx, e).await,
            Err(e) => return Err(e),
        }
    }
}

/// What a session with the parent holds between events.
struct ParentLink<'a> {
    cfg: &'a Config,
    store: &'a Store,
    parent: &'a Parent,
    send: quinn::SendStream,
    s: ChildSession,
    /// Changes of this log held aside (the parent refused them, or would for their size).
    stuck: HashSet<u64>,
    /// The store's last committed change, as the watch last said.
    last_seq: u64,
    /// The log reader, kept between reads (each runs on the blocking pool).
    reader_conn: Option<crate::store::Reader>,
    last_recorded: Instant,
    progressed: &'a mut bool,
    acked: &'a mut Option<u64>,
}

impl ParentLink<'_> {
    /// Sends while the window allows and there is something to send: a lone change
    /// goes at once, and under load each read returns a full batch.
    async fn send_ready(&mut self) -> Result<(), SessionError> {
        while let Some(after) = self.s.next_after() {
            if after >= self.last_seq {
                break;
            }
            let (max_c, max_b) = (self.cfg.sync.batch_changes, self.cfg.sync.batch_kib * 1024);
            let (mut batch, r) = self.store.read_with(self.reader_conn.take(), move |r| r.changes_after(after, max_c, max_b)).await?;
            self.reader_conn = Some(r);
            let Some(upto) = batch.last().map(|c| c.seq) else {
                self.last_seq = after;
                break;
            };
            // A change the parent refused, or one it would refuse for its size, is
            // held aside; the batch still covers its sequence number.
            for c in &batch {
                let size = c.body.as_ref().map_or(0, Vec::len);
                let too_large = if self.stuck.contains(&c.seq) { None } else { huijiao_protocol::apply::too_large_to_send(size) };
                if let Some(reason) = too_large {
                    error!(seq = c.seq, reg_no = %c.reg_no, "a change too large to send is held aside: {reason}");
                    let (seq, reg_no, now) = (c.seq, c.reg_no.clone(), crate::clock::now_ms());
                    self.store.run(move |w| w.mark_stuck(seq, &reg_no, &reason, now)).await?;
                    self.stuck.insert(c.seq);
                }
            }
            batch.retain(|c| !self.stuck.contains(&c.seq));
            let count = batch.len() as u32;
            let zstd_ok = self.s.agreed_features() & wire::FEATURE_ZSTD != 0;
            let (encoding, payload) = tokio::task::spawn_blocking(move || wire::encode_payload(&batch, zstd_ok)).await?;
            let msg = self.s.batch(after, upto, count, encoding, payload, crate::clock::now_ms());
            net::write_frame(&mut self.send, &msg).await?;
        }
        Ok(())
    }

    /// A frame from the parent: the session machine says what it means.
    async fn on_message(&mut self, msg: Message) -> Result<Option<End>, SessionError> {
        match self.s.handle(msg, crate::clock::now_ms()) {
            Ok(ChildEvent::Ready { cursor, version, features }) => {
                info!(parent = %self.parent.node_id, cursor, version, zstd = features & wire::FEATURE_ZSTD != 0, "uplink streaming");
                self.streaming(cursor).await;
            }
            Ok(ChildEvent::Reply(m)) => net::write_frame(&mut self.send, &m).await?,
            Ok(ChildEvent::Verify { seq, fingerprint }) => {
                // Is this log's change there the one the parent holds?
                let same = self.store.read(move |r| r.change_fingerprint(seq)).await? == Some(fingerprint);
                match self.s.verified(same, crate::clock::now_ms()) {
                    ChildEvent::Ready { cursor, .. } => {
                        info!(parent = %self.parent.node_id, cursor, "uplink streaming");
                        self.streaming(cursor).await;
                    }
                    ChildEvent::Rewound { parent_cursor, last_seq } => self.on_rewound(parent_cursor, last_seq).await?,
                    _ => {}
                }
            }
            Ok(ChildEvent::Rewound { parent_cursor, last_seq }) => self.on_rewound(parent_cursor, last_seq).await?,
            Ok(ChildEvent::Acked { cursor, ack }) => self.on_acked(cursor, ack.conflicts).await,
            Ok(ChildEvent::Notes(n)) => self.on_notes(n).await?,
            Ok(ChildEvent::Nothing) => {}
            Ok(ChildEvent::Refused(r)) => return Ok(Some(End::Refused(r))),
            Err(r) => {
                let _ = net::write_frame(&mut self.send, &Message::Refused(r.clone())).await;
                return Ok(Some(End::Refused(r)));
            }
        }
        Ok(None)
    }

    /// The parent took the session at `cursor`.
    async fn streaming(&mut self, cursor: u64) {
        *self.acked = Some(cursor);
        crate::health::note_acked(cursor);
        record(self.store, self.parent, "streaming", Some(cursor), None, Some(crate::clock::now_ms())).await;
    }

    /// This store was rewound: a new log, announced.
    async fn on_rewound(&mut self, parent_cursor: u64, last_seq: u64) -> Result<(), SessionError> {
        let m = rotate(self.store, self.parent, &mut self.s, parent_cursor, last_seq).await?;
        Ok(net::write_frame(&mut self.send, &m).await?)
    }

    /// The parent acknowledged up to `cursor` (durably applied there).
    async fn on_acked(&mut self, cursor: u64, conflicts: u32) {
        *self.progressed = true;
        crate::metrics::changes_acked(cursor.saturating_sub(self.acked.unwrap_or(cursor)));
        *self.acked = Some(cursor);
        crate::health::note_acked(cursor);
        if conflicts > 0 {
            warn!(parent = %self.parent.node_id, conflicts, "the parent quarantined conflicting changes (see huijiao conflicts at the parent)");
        }
        if self.last_recorded.elapsed() >= Duration::from_secs(1) {
            record(self.store, self.parent, "streaming", Some(cursor), None, None).await;
            self.last_recorded = Instant::now();
        }
    }

    /// Conflicts that concern this node's subtree, told by the parent.
    async fn on_notes(&mut self, n: wire::Notes) -> Result<(), SessionError> {
        let now = crate::clock::now_ms();
        let new = self.store.run(move |w| w.note_conflicts(&n.conflicts, now)).await?;
        for c in new {
            warn!(
                reg_no = %c.reg_no,
                origin = %c.origin,
                version = c.version,
                kept_origin = %c.kept_origin,
                met_at = %c.met_at,
                "conflict: the same reg_no came from two origins; node {} keeps the record of {} and held aside version {} from {} ({})",
                c.met_at, c.kept_origin, c.version, c.origin, c.reason
            );
        }
        Ok(())
    }

    fn health_agreed(&self) -> bool {
        self.s.agreed_features() & wire::FEATURE_HEALTH != 0 && matches!(self.s.state(), huijiao_protocol::sync::ChildState::Streaming)
    }

    /// The subtree's health, for the tiers above.
    async fn on_health(&mut self) -> Result<Option<End>, SessionError> {
        let c = self.cfg.clone();
        let nodes = self
            .store
            .read(move |r| {
                crate::health::subtree(&c, r).map_err(|e| SessionError::Ended(format!("cannot read the subtree's health: {e:#}")))
            })
            .await?;
        net::write_frame(&mut self.send, &Message::Health(wire::Health { nodes })).await?;
        Ok(None)
    }

    /// The session's own timer: a stalled session means a broken link (QUIC delivers
    /// in order or not at all), so the connection goes.
    async fn on_tick(&mut self) -> Result<Option<End>, SessionError> {
        if let Err(stalled) = self.s.handle_timeout(crate::clock::now_ms()) {
            return Err(SessionError::Timeout(format!("parent {}: {stalled}", self.parent.node_id)));
        }
        if self.last_recorded.elapsed() >= Duration::from_secs(2) && self.s.acked() > 0 {
            record(self.store, self.parent, "streaming", Some(self.s.acked()), None, None).await;
            self.last_recorded = Instant::now();
        }
        Ok(None)
    }
}

/// The store was rewound: says so loudly, starts a new log, and returns its `Resume`.
/// Unless `huijiao recover` already ran on it, the inbox waits until it has.
async fn rotate(store: &Store, parent: &Parent, s: &mut ChildSession, parent_cursor: u64, last_seq: u64) -> Result<Message, SessionError> {
    let now = crate::clock::now_ms();
    let (id, needed) = store.run(move |w| w.rotate_log(parent_cursor, last_seq, now)).await?;
    if needed {
        store.set_recover_needed();
        error!(
            parent = %parent.node_id,
            parent_cursor,
            last_seq,
            "this store was rewound (restored from an older copy): the parent holds other or more changes of this log (up to {parent_cursor}) than the store (up to {last_seq}). Starting a new log and sending it all again. RECOVER NEEDED: the inbox waits until `huijiao recover` has taken back the records the parent holds that this store lost (stop the node, run it, start the node)"
        );
    } else {
        warn!(
            parent = %parent.node_id,
            parent_cursor,
            last_seq,
            "this store was restored and recovered: the parent holds other changes of this log (up to {parent_cursor}) than the store (up to {last_seq}); starting a new log and sending it all again"
        );
    }
    Ok(s.restart_log(&id, now))
}

/// After a failed write: the parent may have refused and closed; its refusal, if it
/// arrives within a moment, is what the operator needs to see.
async fn refusal_or(frx: &mut tokio::sync::mpsc::Receiver<Result<Message, SessionError>>, e: SessionError) -> Result<End, SessionError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, frx.recv()).await {
        match m {
            Ok(Message::Refused(r)) => return Ok(End::Refused(r)),
            Ok(_) => continue,
            Err(read) => match read.refusal() {
                Some(r) => return Ok(End::Refused(r)),
                None => break,
            },
        }
    }
    match e.refusal() {
        Some(r) => Ok(End::Refused(r)),
        None => Err(e),
    }
}
