//! The downlink: a parent accepts children over QUIC, authorizes each by the node id
//! in its verified certificate, and applies their batches exactly once.
//!
//! Nothing is spent on a peer before it is known to be a child: the handshake has a
//! deadline and a bounded number run at once; identity, jurisdiction (immediate
//! children only, unless listed) and the allow-list are checked from the certificate
//! right after it, before the connection takes one of `listen.max_children` slots.
//! Then the first frame (`Hello`) must come within [`HELLO_DEADLINE`] (the session's
//! timer: a silent peer is refused `no_hello`), every frame's
//! body within [`FRAME_DEADLINE`] of its length, and frame bytes count against the
//! shared [`FRAME_BUDGET`] only as they arrive. One session per child: a new one
//! replaces the old. Every refusal is noted by the identity the peer showed, for
//! `huijiao status`; a refused peer is never listed as a child.
//!
//! One room: the parent's side of the sync — accepting and authorizing children, the
//! session driver, and the frame reader under the shared budget.

use crate::config::Config;
use crate::net::{self, HandshakeRefusals, Identity, SessionError};
use crate::pki;
use crate::store::{ApplyError, Store, StoreError};
use huijiao_protocol::sync::{authorize_child, checked, Admit, CheckedChange, Checks, ParentAction, ParentSession, Volume};
use huijiao_protocol::wire::{self, Message, PeerRefusal};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Bytes of frames being read or decoded at once, across all children.
pub const FRAME_BUDGET: usize = 128 * 1024 * 1024;

/// Batches decoded and not yet applied, across all children. A decoded batch is a few
/// hundred KiB; with thousands of children sending at once, letting each decode ahead
/// of the single writer would hold a gigabyte. A few keep the writer busy.
const DECODED_AHEAD: usize = 8;

/// How often a parent notes its connected children as seen, so `huijiao status` can
/// tell a county that is connected but has nothing to send from one that went quiet.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// A TLS handshake must finish within this.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Handshakes under way at once; more connection attempts are refused outright.
const MAX_HANDSHAKES: usize = 256;
/// After the handshake, the child must open its sync stream within this; its `Hello`
/// is then due by the session's own timer (`sync::HELLO_DEADLINE_MS`, the same span).
pub const HELLO_DEADLINE: Duration = Duration::from_millis(huijiao_protocol::sync::HELLO_DEADLINE_MS as u64);
/// Once a frame's length has arrived, its body must arrive within this.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(30);

/// Live sessions by child id: the connection's id, its certificate serial, the connection.
type Live = Arc<Mutex<HashMap<String, (usize, String, quinn::Connection)>>>;

/// One piece: the accept loop, whose arms (a new connection, a reload, a finished session,
/// shutdown) share the live-session map and the budget.
pub async fn run(
    cfg: Arc<Config>,
    store: Store,
    endpoint: quinn::Endpoint,
    mut reloads: tokio::sync::watch::Receiver<net::Reload>,
    refused: HandshakeRefusals,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut cfg = cfg;
    let mut identity: Identity = reloads.borrow_and_update().1.clone();
    let Some(listen) = cfg.listen.clone() else { return Ok(()) };
    let idle = cfg.idle_timeout();
    let slots = Arc::new(Semaphore::new(listen.max_children));
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let budget = Arc::new(Budget { bytes: Semaphore::new(FRAME_BUDGET / 1024), decoded: Arc::new(Semaphore::new(DECODED_AHEAD)) });
    let live: Live = Arc::default();
    let volumes: Volumes = Arc::default();
    let next_id = Arc::new(AtomicUsize::new(1));
    let mut tasks = JoinSet::new();
    let mut crl_check = tokio::time::interval(Duration::from_secs(2));
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut crl_mtime = mtime(&identity.crl_path);
    // A changed CRL is acted on at once: file events, with the 2 s poll behind them.
    let (crl_tx, mut crl_rx) = tokio::sync::mpsc::channel::<()>(1);
    let _crl_watch = watch_crl(&identity.crl_path, crl_tx);
    if let Err(e) = store.call(|w| w.children_disconnected()).await? {
        warn!("cannot reset the children's session flags: {e:#}");
    }
    info!(address = %listen.address, max_children = listen.max_children, "listening for children");
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(done) = tasks.join_next() => {
                if let Err(e) = done {
                    error!("a child connection task panicked: {e}");
                }
            }
            _ = heartbeat.tick() => {
                let connected: Vec<String> = live.lock().expect("live map").keys().cloned().collect();
                let noted: Vec<(String, String, String)> = std::mem::take(&mut *refused.lock().expect("refusal list"));
                let now = crate::clock::now_ms();
                let result = store.call(move |w| -> anyhow::Result<()> {
                    if !connected.is_empty() {
                        w.children_seen(&connected, now)?;
                    }
                    for (who, reason, detail) in noted {
                        crate::metrics::refused(&reason);
                        w.note_refusal(&who, &reason, &detail, now)?;
                    }
                    Ok(())
                }).await;
                if let Err(e) = result.map_err(anyhow::Error::from).and_then(|r| r) {
                    warn!("cannot note the children's state: {e:#}");
                }
            }
            Some(()) = crl_rx.recv() => {
                crl_mtime = mtime(&identity.crl_path);
                reload_crl(&endpoint, &identity, idle, &refused, &live);
            }
            Ok(()) = reloads.changed() => {
                // SIGHUP: the new identity for new handshakes, the CRL and the
                // allow-list applied to the connections that stay.
                let r = reloads.borrow_and_update().clone();
                cfg = r.0.clone();
                identity = r.1.clone();
                crl_mtime = mtime(&identity.crl_path);
                reload_crl(&endpoint, &identity, idle, &refused, &live);
                let allow = cfg.listen.as_ref().and_then(|l| l.children.clone());
                live.lock().expect("live map").retain(|child, (_, _, conn)| match authorize_child(&cfg.node_id, child, allow.as_deref(), &cfg.regions) {
                    Ok(()) => true,
                    Err(r) => {
                        warn!(child = %child, "no longer allowed after the reload; closing: {}", r.message);
                        conn.close(net::CLOSE_REFUSED.into(), format!("{}: {}", r.code, r.message).as_bytes());
                        false
                    }
                });
            }
            _ = crl_check.tick() => {
                let m = mtime(&identity.crl_path);
                if m != crl_mtime {
                    crl_mtime = m;
                    reload_crl(&endpoint, &identity, idle, &refused, &live);
                }
            }
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    warn!(peer = %incoming.remote_address(), "too many handshakes under way; refusing");
                    if let Ok(mut list) = refused.lock() {
                        if list.len() < 1000 {
                            list.push((
                                incoming.remote_address().to_string(),
                                "too_many_handshakes".into(),
                                "too many TLS handshakes under way at once".into(),
                            ));
                        }
                    }
                    incoming.refuse();
                    continue;
                };
                let ctx = Accept {
                    cfg: cfg.clone(),
                    store: store.clone(),
                    volumes: volumes.clone(),
                    budget: budget.clone(),
                    live: live.clone(),
                    slots: slots.clone(),
                    id: next_id.fetch_add(1, Ordering::Relaxed),
                    stop: shutdown.child_token(),
                };
                tasks.spawn(async move {
                    let from = incoming.remote_address();
                    if let Err(e) = accept(ctx, incoming, permit).await {
                        warn!(peer = %from, "child connection ended: {e:#}");
                    }
                });
            }
        }
    }
    // Drain: connections close with a reason, then give the endpoint a moment to send it.
    for (_, (_, _, c)) in live.lock().expect("live map").drain() {
        c.close(net::CLOSE_DONE.into(), b"parent shutting down");
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Watches the CRL's folder, so a new CRL is acted on as soon as it is written.
fn watch_crl(crl: &std::path::Path, tx: tokio::sync::mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let name = crl.file_name()?.to_os_string();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            // Only what changes the file: reading it (as the reload does) raises
            // open/access/close events, which would reload it again, forever.
            if crl_changed(&ev.kind) && ev.paths.iter().any(|p| p.file_name() == Some(name.as_os_str())) {
                let _ = tx.try_send(());
            }
        }
    })
    .ok()?;
    w.watch(crl.parent()?, RecursiveMode::NonRecursive).ok()?;
    Some(w)
}

/// Whether a file event can have changed the file's content.
fn crl_changed(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// A changed CRL: new connections are checked against it, and connections of
/// certificates it revokes are closed (rustls checks only at the handshake).
fn reload_crl(endpoint: &quinn::Endpoint, identity: &Identity, idle: Duration, refused: &HandshakeRefusals, live: &Live) {
    match identity.server_config(idle, refused) {
        Ok(sc) => endpoint.set_server_config(Some(sc)),
        Err(e) => {
            error!("cannot load the new CRL {}; keeping the old one: {e:#}", identity.crl_path.display());
            return;
        }
    }
    let revoked = pki::revoked_serials(&identity.crl_path).unwrap_or_default();
    let mut live = live.lock().expect("live map");
    live.retain(|child, (_, serial, conn)| {
        if revoked.contains(serial) {
            warn!(child = %child, serial = %serial, "certificate revoked; closing the connection");
            conn.close(net::CLOSE_REFUSED.into(), b"certificate_revoked: the node's certificate was revoked");
            if let Ok(mut list) = refused.lock() {
                list.push((format!("node {child}"), "certificate revoked".into(), format!("serial {serial} revoked while connected")));
            }
            false
        } else {
            true
        }
    });
    info!(revoked = revoked.len(), "CRL reloaded");
}

/// What all children share: frame bytes in memory, and decoded batches waiting for
/// the writer.
struct Budget {
    bytes: Semaphore,
    decoded: Arc<Semaphore>,
}

/// What a connection being accepted needs.
/// Each child's volume so far (a day's count, a minute's bucket), across its sessions.
type Volumes = Arc<Mutex<HashMap<String, Volume>>>;

struct Accept {
    cfg: Arc<Config>,
    store: Store,
    volumes: Volumes,
    budget: Arc<Budget>,
    live: Live,
    slots: Arc<Semaphore>,
    id: usize,
    stop: CancellationToken,
}

/// Every refusal is counted by its reason (`huijiao_refusals_total`) and listed in
/// `status` under the identity it showed: this is the one place for both.
async fn note_refusal(store: &Store, who: &str, r: &PeerRefusal) {
    crate::metrics::refused(&r.code);
    let (who, code, message, now) = (who.to_string(), r.code.clone(), r.message.clone(), crate::clock::now_ms());
    if let Err(e) = store.run(move |w| w.note_refusal(&who, &code, &message, now)).await {
        warn!("cannot note a refusal: {e:#}");
    }
}

/// Closes a connection with a refusal the child can read: `code: message`.
fn close_refused(conn: &quinn::Connection, r: &PeerRefusal) {
    let mut text = format!("{}: {}", r.code, r.message);
    let mut cut = text.len().min(900);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    conn.close(net::CLOSE_REFUSED.into(), text.as_bytes());
}

async fn accept(ctx: Accept, incoming: quinn::Incoming, permit: tokio::sync::OwnedSemaphorePermit) -> anyhow::Result<()> {
    let from = incoming.remote_address();
    let conn = match tokio::time::timeout(HANDSHAKE_DEADLINE, incoming).await {
        Ok(Ok(c)) => c,
        // A certificate refused at the handshake was noted by the verifier.
        Ok(Err(e)) => {
            debug!(peer = %from, "TLS handshake failed: {e}");
            return Ok(());
        }
        Err(_) => {
            let r = PeerRefusal::new("handshake_timeout", format!("no TLS handshake within {HANDSHAKE_DEADLINE:?}"));
            note_refusal(&ctx.store, &from.to_string(), &r).await;
            return Ok(());
        }
    };
    drop(permit);
    let certs = net::peer_certs(&conn)?;
    let child = pki::node_id_of(&certs[0])?;
    let serial = pki::serial_of(&certs[0])?;
    // Authorized from the certificate alone, before the peer costs a slot.
    let allow = ctx.cfg.listen.as_ref().and_then(|l| l.children.as_deref());
    if let Err(r) = authorize_child(&ctx.cfg.node_id, &child, allow, &ctx.cfg.regions) {
        warn!(child = %child, code = %r.code, "refusing child: {}", r.message);
        note_refusal(&ctx.store, &format!("node {child}"), &r).await;
        close_refused(&conn, &r);
        return Ok(());
    }
    let Ok(slot) = ctx.slots.clone().try_acquire_owned() else {
        let r = PeerRefusal::new("too_many_children", format!("node {} holds its maximum of connections; try later", ctx.cfg.node_id));
        warn!(child = %child, "too many child connections; refusing");
        note_refusal(&ctx.store, &format!("node {child}"), &r).await;
        close_refused(&conn, &r);
        return Ok(());
    };
    // One session per child: a new one replaces the old (a child that reconnected
    // after a broken link, or a second process with the same certificate).
    if let Some((_, _, old)) = ctx.live.lock().expect("live map").insert(child.clone(), (ctx.id, serial, conn.clone())) {
        info!(child = %child, "a new session replaces the child's old one");
        old.close(net::CLOSE_DONE.into(), b"replaced by a newer session of the same node");
    }
    let result = session(&ctx.cfg, &ctx.store, &conn, &child, &ctx.budget, &ctx.volumes, &ctx.stop).await;
    {
        let mut live = ctx.live.lock().expect("live map");
        if live.get(&child).is_some_and(|(id, _, _)| *id == ctx.id) {
            live.remove(&child);
        }
    }
    drop(slot);
    let now = crate::clock::now_ms();
    // A child that closed its connection saying it was done (shutting down) ended
    // cleanly: that is no error to show.
    let err_text = result.as_ref().err().filter(|e| !e.closed_when_done()).map(|e| format!("{e:#}"));
    let c2 = child.clone();
    let _ = ctx.store.call(move |w| w.child_seen(&c2, now, err_text.as_deref())).await;
    match result {
        Ok(()) => {
            conn.close(net::CLOSE_DONE.into(), b"done");
            Ok(())
        }
        Err(e) => {
            conn.close(net::CLOSE_ERROR.into(), b"error");
            Err(anyhow::Error::from(e).context(format!("child {child} at {from}")))
        }
    }
}

/// Holds a child back (its volume bound): says why where the operator looks, and ends
/// the session with the reason the child records; it comes back after its backoff.
async fn hold_back(conn: &quinn::Connection, store: &Store, child: &str, reason: &str) -> Result<(), SessionError> {
    warn!(child = %child, "holding the child's changes back: {reason}");
    crate::metrics::held_back(child);
    let (c, r, now) = (child.to_string(), reason.to_string(), crate::clock::now_ms());
    store.run(move |w| w.child_held_back(&c, Some(&r), now)).await?;
    let mut text = format!("held_back: {reason}");
    let mut cut = text.len().min(900);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    conn.close(net::CLOSE_HELD.into(), text.as_bytes());
    Ok(())
}

/// Sends a refusal, logs it, notes it; the session ends with the error returned.
async fn refuse(send: &mut quinn::SendStream, store: &Store, child: &str, r: PeerRefusal) -> SessionError {
    error!(child = %child, code = %r.code, "refusing child: {}", r.message);
    note_refusal(store, &format!("node {child}"), &r).await;
    let _ = net::write_frame(send, &Message::Refused(r.clone())).await;
    let _ = send.finish();
    // Give the refusal a moment to reach the child before the connection closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    SessionError::Refused(r)
}

/// One sync session with a child, as a driver in the manner of quinn's connection
/// driver: [`session`] opens the stream and waits for the next event; each event has
/// one handler on [`ChildLink`] — the Hello deadline ([`ChildLink::on_timeout`]), the
/// conflict-notes timer ([`ChildLink::on_notes_tick`]), and a frame from the child
/// ([`ChildLink::on_frame`], which gives each action of the session machine its own
/// handler). A handler answers whether the session goes on; every decision of the
/// protocol is the session machine's (`protocol::sync`), every rule of what is
/// applied the store's (`protocol::apply`).
async fn session(
    cfg: &Config,
    store: &Store,
    conn: &quinn::Connection,
    child: &str,
    budget: &Arc<Budget>,
    volumes: &Volumes,
    stop: &CancellationToken,
) -> Result<(), SessionError> {
    let (send, recv) = tokio::select! {
        _ = stop.cancelled() => return Ok(()),
        s = tokio::time::timeout(HELLO_DEADLINE, conn.accept_bi()) => match s {
            Ok(s) => s.map_err(|cause| SessionError::Connection { what: "the child opened no sync stream".into(), cause })?,
            Err(_) => return Err(SessionError::Timeout(format!("no sync stream within {HELLO_DEADLINE:?}"))),
        },
    };
    let c = child.to_string();
    let cursor = store.run(move |w| w.child_cursor(&c, "")).await?;
    let features = if cfg.sync.compress { wire::FEATURE_ZSTD } else { 0 };
    let s = ParentSession::new(&cfg.node_id, child, cursor, features | wire::FEATURE_HEALTH | wire::FEATURE_NOTES)
        .opened_at(crate::clock::now_ms());
    // Conflicts concerning the child's subtree go down to it when they change.
    let mut notes_tick = tokio::time::interval(Duration::from_secs(cfg.sync.health_secs.max(1)));
    // Frames are read and decoded by their own task (under the shared budget) while
    // the previous batch is being applied; every change is checked there against
    // spec §3 and its hops.
    let source = CheckedFrames {
        budget: budget.clone(),
        child: child.to_string(),
        regions: cfg.regions.clone(),
        max_skew_ms: cfg.sync.max_clock_skew_secs.saturating_mul(1000).min(i64::MAX as u64) as i64,
    };
    let (mut frx, _guard) = net::spawn_frame_reader(recv, source, 2);
    let mut link = ChildLink { cfg, store, conn, child, volumes, send, s, notes_sent: None, volume_flowing: false };
    loop {
        // The session's own timer (the Hello deadline), as a point on tokio's clock.
        let due = link
            .s
            .poll_timeout()
            .map(|at| tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(crate::clock::now_ms()).max(0) as u64));
        let flow = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => link.on_timeout().await?,
            _ = notes_tick.tick(), if link.s.features() & wire::FEATURE_NOTES != 0 => link.on_notes_tick().await?,
            d = frx.recv() => match d {
                Some(Ok(d)) => link.on_frame(d).await?,
                Some(Err(SessionError::Frame(net::FrameError::Decode(r)))) => {
                    return link.refuse(PeerRefusal::new("bad_frame", format!("cannot decode a frame from {child}: {r}"))).await;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        };
        if let Flow::Done = flow {
            return Ok(());
        }
    }
}

/// Whether a session goes on after an event.
enum Flow {
    Continue,
    Done,
}

/// What a session with one child holds between events.
struct ChildLink<'a> {
    cfg: &'a Config,
    store: &'a Store,
    conn: &'a quinn::Connection,
    child: &'a str,
    volumes: &'a Volumes,
    send: quinn::SendStream,
    s: ParentSession,
    /// The conflict notes last sent down (sent again only when they change).
    notes_sent: Option<Vec<wire::ConflictNote>>,
    /// Whether this session noted the child flowing (no longer held back).
    volume_flowing: bool,
}

impl ChildLink<'_> {
    /// Refuses the child with `r` and ends the session.
    async fn refuse<T>(&mut self, r: PeerRefusal) -> Result<T, SessionError> {
        Err(refuse(&mut self.send, self.store, self.child, r).await)
    }

    async fn write(&mut self, m: &Message) -> Result<Flow, SessionError> {
        net::write_frame(&mut self.send, m).await?;
        Ok(Flow::Continue)
    }

    /// The Hello deadline passed.
    async fn on_timeout(&mut self) -> Result<Flow, SessionError> {
        match self.s.handle_timeout(crate::clock::now_ms()) {
            Some(r) => self.refuse(r).await,
            None => Ok(Flow::Continue),
        }
    }

    /// Conflicts concerning the child's subtree, sent when they changed.
    async fn on_notes_tick(&mut self) -> Result<Flow, SessionError> {
        let (me, c) = (self.cfg.node_id.clone(), self.child.to_string());
        let notes = self.store.read(move |r| r.notes_for(&me, &c)).await?;
        if self.notes_sent.as_ref() != Some(&notes) && !(self.notes_sent.is_none() && notes.is_empty()) {
            self.write(&Message::Notes(wire::Notes { conflicts: notes.clone() })).await?;
        }
        self.notes_sent = Some(notes);
        Ok(Flow::Continue)
    }

    /// A frame from the child: the session machine says what it means.
    async fn on_frame(&mut self, decoded: Decoded) -> Result<Flow, SessionError> {
        match self.s.handle(decoded.message) {
            ParentAction::Send(m) => self.on_send(m).await,
            ParentAction::Resume { log_id, last_seq } => self.on_resume(log_id, last_seq).await,
            ParentAction::Fetch { after, limit } => self.on_fetch(after, limit).await,
            ParentAction::Close(r) => self.refuse(r).await,
            ParentAction::Health(h) => self.on_health(h).await,
            ParentAction::Apply(batch) => {
                let changes = match decoded.changes {
                    Some(Ok(c)) => c,
                    Some(Err(r)) => return self.refuse(r).await,
                    None => Vec::new(),
                };
                self.on_apply(batch.after, batch.upto, changes).await
            }
        }
    }

    /// A reply the session machine made (a Welcome to a version-1 child, an answer).
    async fn on_send(&mut self, m: Message) -> Result<Flow, SessionError> {
        if let Message::Welcome(w) = &m {
            if w.version < 2 {
                info!(child = %self.child, cursor = w.cursor, version = w.version, "child connected");
                let (c, now) = (self.child.to_string(), crate::clock::now_ms());
                let _ = self.store.call(move |w| w.child_resumed(&c, "", false, now)).await;
            }
        }
        self.write(&m).await
    }

    /// The child named its log: where this node's cursor in it stands.
    async fn on_resume(&mut self, log_id: String, last_seq: u64) -> Result<Flow, SessionError> {
        let (c, l) = (self.child.to_string(), log_id.clone());
        let (cursor, check_seq, check) = self.store.run(move |w| w.child_resume_point(&c, &l)).await?;
        let rewound = cursor > last_seq;
        if rewound {
            error!(
                child = %self.child,
                log = %log_id,
                parent_cursor = cursor,
                child_last_seq = last_seq,
                "the child's store was rewound (restored from an older copy?): it holds less of its log than this node already has; it starts a new log and sends it all again"
            );
        } else {
            info!(child = %self.child, cursor, log = %log_id, "child connected");
        }
        let (c, l, now) = (self.child.to_string(), log_id.clone(), crate::clock::now_ms());
        self.store.run(move |w| w.child_resumed(&c, &l, rewound, now)).await?;
        let m = self.s.resumed(&log_id, cursor, check_seq, check);
        self.write(&m).await
    }

    /// `huijiao recover` at the child: a page of what this node holds of its subtree.
    async fn on_fetch(&mut self, after: String, limit: u32) -> Result<Flow, SessionError> {
        let (c, zstd_ok) = (self.child.to_string(), self.cfg.sync.compress);
        let page = self
            .store
            .read(move |r| {
                let (changes, more) = r.records_of_subtree(&c, &after, limit, 1024 * 1024)?;
                let count = changes.len() as u32;
                let (encoding, payload) = wire::encode_payload(&changes, zstd_ok);
                Ok::<_, StoreError>(Message::Records(wire::Records { count, encoding, payload, more }))
            })
            .await?;
        self.write(&page).await
    }

    /// The child's report of its subtree's health, kept for status and metrics.
    async fn on_health(&mut self, h: wire::Health) -> Result<Flow, SessionError> {
        let json = serde_json::to_string(&h.nodes).map_err(|e| SessionError::Ended(format!("cannot keep a health report: {e}")))?;
        let (c, now) = (self.child.to_string(), crate::clock::now_ms());
        if let Err(e) = self.store.call(move |w| w.set_child_health(&c, &json, now)).await? {
            warn!(child = %self.child, "cannot keep the child's health report: {e:#}");
        }
        Ok(Flow::Continue)
    }

    /// A batch, its changes checked: within the child's volume bound, applied in one
    /// transaction with the cursor, then acknowledged.
    async fn on_apply(&mut self, after: u64, upto: u64, changes: Vec<CheckedChange>) -> Result<Flow, SessionError> {
        if let Flow::Done = self.admit(changes.len() as u64).await? {
            return Ok(Flow::Done);
        }
        let child = self.child;
        let (c, log, now) = (child.to_string(), self.s.log_id().to_string(), crate::clock::now_ms());
        // The batch comes back to be freed here, not on the writer thread.
        let (applied, changes) = self.store.call(move |w| (w.apply_batch(&c, &log, after, upto, &changes, now), changes)).await?;
        drop(changes);
        match applied {
            Ok(out) => {
                for (reg_no, origin, held) in &out.conflict_list {
                    warn!(child = %child, reg_no = %reg_no, arriving_origin = %origin, held_origin = %held, "conflict: quarantined the second arrival");
                }
                if out.clock_corrections > 0 {
                    warn!(child = %child, changes = out.clock_corrections, "hop times not believable (before the hop below, or too far ahead): replaced by this node's receipt time; the child's clock, or one below it, is off");
                }
                if out.stale {
                    // The durable cursor moved on elsewhere (a parallel session): resync.
                    return Err(SessionError::Ended("batch does not follow the durable cursor; resynchronising".into()));
                }
                debug!(child = %child, after, upto, applied = out.applied, duplicates = out.duplicates, "batch applied");
                crate::metrics::changes_received(child, u64::from(out.applied));
                let ack = self.s.applied(upto, out.applied, out.duplicates, out.conflicts);
                self.write(&ack).await
            }
            Err(ApplyError::Refused(r)) => self.refuse(r).await,
            Err(ApplyError::Store(e)) => Err(SessionError::Store(e)),
        }
    }

    /// The child's volume bound: waits a moment, or holds the child back (never a
    /// refusal); `Done` when held back.
    async fn admit(&mut self, n: u64) -> Result<Flow, SessionError> {
        let Some(listen) = &self.cfg.listen else { return Ok(Flow::Continue) };
        let limits = listen.limits_for(self.child);
        loop {
            let admit = self
                .volumes
                .lock()
                .expect("volumes")
                .entry(self.child.to_string())
                .or_insert_with(|| Volume::new(crate::clock::today(), crate::clock::now_ms(), limits))
                .admit(n, crate::clock::today(), crate::clock::now_ms(), limits);
            match admit {
                Admit::Now => break,
                Admit::After(ms) => {
                    debug!(child = %self.child, wait_ms = ms, "the child's rate is over its bound: waiting");
                    tokio::time::sleep(Duration::from_millis(ms.max(1) as u64)).await;
                }
                Admit::Hold(reason) => {
                    hold_back(self.conn, self.store, self.child, &reason).await?;
                    return Ok(Flow::Done);
                }
            }
        }
        if !self.volume_flowing {
            let (c, now) = (self.child.to_string(), crate::clock::now_ms());
            self.store.run(move |w| w.child_held_back(&c, None, now)).await?;
            self.volume_flowing = true;
        }
        Ok(Flow::Continue)
    }
}

/// A frame decoded off the connection task: the message and, for a batch, its
/// changes, already checked (jurisdiction, provenance, hashes, bodies).
struct Decoded {
    message: Message,
    changes: Option<Result<Vec<CheckedChange>, PeerRefusal>>,
    /// Held until the batch is applied (see [`DECODED_AHEAD`]).
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// A child's frames, decoded and checked (see [`read_decoded`]).
struct CheckedFrames {
    budget: Arc<Budget>,
    child: String,
    regions: Arc<huijiao_protocol::RegionTable>,
    max_skew_ms: i64,
}

impl net::FrameSource for CheckedFrames {
    type Item = Decoded;
    async fn next(&mut self, recv: &mut quinn::RecvStream) -> Result<Option<Decoded>, SessionError> {
        read_decoded(recv, self).await
    }
}

/// Reads and decodes the next frame: its body within [`FRAME_DEADLINE`] of its length;
/// the body's bytes count against the shared budget only as they arrive. (The Hello's
/// deadline is the session's own timer.)
async fn read_decoded(recv: &mut quinn::RecvStream, source: &CheckedFrames) -> Result<Option<Decoded>, SessionError> {
    let (budget, child) = (&source.budget, source.child.as_str());
    let len = net::read_frame_len(recv).await?;
    let Some(len) = len else { return Ok(None) };
    let reading = net::read_frame_body_reserving(recv, len, |n| budget.bytes.acquire_many(n.div_ceil(1024).max(1) as u32));
    let (body, permits) = match tokio::time::timeout(FRAME_DEADLINE, reading).await {
        Ok(r) => r?,
        Err(_) => return Err(SessionError::Timeout(format!("a frame of {len} bytes did not arrive within {FRAME_DEADLINE:?}"))),
    };
    let mut message = wire::decode_message(&body).map_err(net::FrameError::Decode)?;
    drop(body);
    drop(permits);
    let mut slot = None;
    let changes = match &mut message {
        Message::Batch(b) => {
            slot = Some(budget.decoded.clone().acquire_owned().await.map_err(|_| SessionError::Ended("stopping".into()))?);
            let (enc, payload, child) = (b.encoding, std::mem::take(&mut b.payload), child.to_string());
            let range = format!("batch ({}, {}] from {child}", b.after, b.upto);
            let (regions, max_skew_ms) = (source.regions.clone(), source.max_skew_ms);
            Some(
                tokio::task::spawn_blocking(move || {
                    let changes = wire::decode_payload(enc, payload).map_err(|e| PeerRefusal::new("bad_batch", format!("{range}: {e}")))?;
                    // A certificate says who the child is, not that its data is good.
                    let checks = Checks { regions: &regions, today: crate::clock::today(), now_ms: crate::clock::now_ms(), max_skew_ms };
                    changes.into_iter().map(|c| checked(&child, c, &checks)).collect::<Result<Vec<_>, _>>()
                })
                .await?,
            )
        }
        _ => None,
    };
    Ok(Some(Decoded { message, changes, _slot: slot }))
}

#[cfg(test)]
mod tests {
    use super::crl_changed;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, EventKind, ModifyKind, RenameMode};

    #[test]
    fn reading_the_crl_does_not_count_as_a_change() {
        // The reload reads the file; were reads changes, it would reload forever
        // (it did: a quarter of a core on a parent, found by profiling `bench bighop`).
        for read in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ] {
            assert!(!crl_changed(&read), "{read:?}");
        }
        for write in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Remove(notify::event::RemoveKind::File),
        ] {
            assert!(crl_changed(&write), "{write:?}");
        }
    }
}
