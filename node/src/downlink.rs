//! The downlink: a parent accepts children over QUIC, authorizes each by the node id
//! in its verified certificate, and applies their batches exactly once.
//!
//! Bounds: at most `listen.max_children` connections (more are refused at once); each
//! connection's buffered data is capped by QUIC flow control (`net::CONN_RECEIVE_WINDOW`)
//! plus frames being decoded, whose total across all children is capped by a shared
//! budget ([`FRAME_BUDGET`]). A hostile child that stalls costs at most those bytes.

use crate::config::Config;
use crate::net::{self, Identity};
use crate::pki;
use crate::store::{ApplyError, Store};
use anyhow::Context;
use huijiao_protocol::sync::{authorize_child, checked, CheckedChange, ParentAction, ParentSession};
use huijiao_protocol::wire::{self, Message, Refused};
use std::collections::HashMap;
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
pub const HEARTBEAT: Duration = Duration::from_secs(60);

/// Live connections by QUIC connection id: child id, certificate serial, connection.
type Live = Arc<Mutex<HashMap<usize, (String, String, quinn::Connection)>>>;

pub async fn run(
    cfg: Arc<Config>,
    store: Store,
    endpoint: quinn::Endpoint,
    identity: Identity,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(listen) = cfg.listen.clone() else { return Ok(()) };
    let idle = cfg.idle_timeout();
    let slots = Arc::new(Semaphore::new(listen.max_children));
    let budget = Arc::new(Budget { bytes: Semaphore::new(FRAME_BUDGET / 1024), decoded: Arc::new(Semaphore::new(DECODED_AHEAD)) });
    let live: Live = Arc::default();
    let mut tasks = JoinSet::new();
    let mut crl_check = tokio::time::interval(Duration::from_secs(2));
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut crl_mtime = mtime(&identity.crl_path);
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
                let connected: Vec<String> = live.lock().expect("live map").values().map(|(child, _, _)| child.clone()).collect();
                if !connected.is_empty() {
                    let now = crate::clock::now_ms();
                    if let Ok(Err(e)) = store.call(move |w| w.children_seen(&connected, now)).await {
                        warn!("cannot note connected children: {e:#}");
                    }
                }
            }
            _ = crl_check.tick() => {
                let m = mtime(&identity.crl_path);
                if m != crl_mtime {
                    crl_mtime = m;
                    reload_crl(&endpoint, &identity, idle, &live);
                }
            }
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let (cfg, store, budget, live, stop) = (cfg.clone(), store.clone(), budget.clone(), live.clone(), shutdown.child_token());
                        tasks.spawn(async move {
                            let from = incoming.remote_address();
                            if let Err(e) = serve(cfg, store, incoming, budget, live, stop).await {
                                warn!(peer = %from, "child connection ended: {e:#}");
                            }
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        warn!(peer = %incoming.remote_address(), max = listen.max_children, "too many child connections; refusing");
                        incoming.refuse();
                    }
                }
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

/// A changed CRL: new connections are checked against it, and connections of
/// certificates it revokes are closed (rustls checks only at the handshake).
fn reload_crl(endpoint: &quinn::Endpoint, identity: &Identity, idle: Duration, live: &Live) {
    match identity.server_config(idle) {
        Ok(sc) => endpoint.set_server_config(Some(sc)),
        Err(e) => {
            error!("cannot load the new CRL {}; keeping the old one: {e:#}", identity.crl_path.display());
            return;
        }
    }
    let revoked = pki::revoked_serials(&identity.crl_path).unwrap_or_default();
    let mut live = live.lock().expect("live map");
    live.retain(|_, (child, serial, conn)| {
        if revoked.contains(serial) {
            warn!(child = %child, serial = %serial, "certificate revoked; closing the connection");
            conn.close(net::CLOSE_REFUSED.into(), b"certificate revoked");
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

async fn serve(
    cfg: Arc<Config>,
    store: Store,
    incoming: quinn::Incoming,
    budget: Arc<Budget>,
    live: Live,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let from = incoming.remote_address();
    let conn = incoming.await.with_context(|| format!("TLS handshake with {from} failed"))?;
    let certs = net::peer_certs(&conn)?;
    let child = pki::node_id_of(&certs[0])?;
    let serial = pki::serial_of(&certs[0])?;
    live.lock().expect("live map").insert(conn.stable_id(), (child.clone(), serial, conn.clone()));
    let result = session(&cfg, &store, &conn, &child, &budget, &stop).await;
    live.lock().expect("live map").remove(&conn.stable_id());
    let now = crate::clock::now_ms();
    let err_text = result.as_ref().err().map(|e| format!("{e:#}"));
    let c2 = child.clone();
    let _ = store.call(move |w| w.child_seen(&c2, now, err_text.as_deref())).await;
    match result {
        Ok(()) => {
            conn.close(net::CLOSE_DONE.into(), b"done");
            Ok(())
        }
        Err(e) => {
            conn.close(net::CLOSE_ERROR.into(), b"error");
            Err(e.context(format!("child {child}")))
        }
    }
}

/// Sends a refusal, logs it, and ends the session with it as the error.
async fn refuse(send: &mut quinn::SendStream, child: &str, r: Refused) -> anyhow::Result<()> {
    error!(child = %child, code = %r.code, "refusing child: {}", r.message);
    let _ = net::write_frame(send, &Message::Refused(r.clone())).await;
    let _ = send.finish();
    // Give the refusal a moment to reach the child before the connection closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    anyhow::bail!("refused: {r}")
}

async fn session(
    cfg: &Config,
    store: &Store,
    conn: &quinn::Connection,
    child: &str,
    budget: &Arc<Budget>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let (mut send, mut recv) = tokio::select! {
        _ = stop.cancelled() => return Ok(()),
        s = conn.accept_bi() => s.context("the child opened no sync stream")?,
    };
    let allow = cfg.listen.as_ref().and_then(|l| l.children.as_deref());
    let c = child.to_string();
    let cursor = store.call(move |w| w.child_cursor(&c)).await??;
    let features = if cfg.sync.compress { wire::FEATURE_ZSTD } else { 0 };
    let mut s = ParentSession::new(&cfg.node_id, child, cursor, features);

    // Frames are read and decoded by their own task (under the shared budget) while
    // the previous batch is being applied.
    let (ftx, mut frx) = tokio::sync::mpsc::channel::<anyhow::Result<Decoded>>(2);
    let budget = budget.clone();
    let reader_child = child.to_string();
    let reader = tokio::spawn(async move {
        loop {
            let r = read_decoded(&mut recv, &budget, &reader_child).await;
            let stop = !matches!(r, Ok(Some(_)));
            let item = match r {
                Ok(Some(d)) => Ok(d),
                Ok(None) => Err(anyhow::anyhow!("the child closed the sync stream")),
                Err(e) => Err(e),
            };
            if ftx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    let _guard = net::AbortOnDrop(reader);
    let mut welcomed = false;
    loop {
        let decoded = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            d = frx.recv() => match d {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    if let Some(r) = e.downcast_ref::<wire::DecodeError>() {
                        return refuse(&mut send, child, Refused::new("bad_frame", format!("cannot decode a frame from {child}: {r}"))).await;
                    }
                    return Err(e);
                }
                None => return Ok(()),
            },
        };
        if !welcomed {
            if let Message::Hello(_) = &decoded.message {
                if let Err(r) = authorize_child(&cfg.node_id, child, allow) {
                    return refuse(&mut send, child, r).await;
                }
            }
        }
        match s.handle(decoded.message) {
            ParentAction::Send(m) => {
                if let Message::Welcome(w) = &m {
                    welcomed = true;
                    info!(child = %child, cursor = w.cursor, "child connected");
                }
                net::write_frame(&mut send, &m).await?;
            }
            ParentAction::Close(r) => return refuse(&mut send, child, r).await,
            ParentAction::Apply(batch) => {
                let changes = match decoded.changes {
                    Some(Ok(c)) => c,
                    Some(Err(r)) => return refuse(&mut send, child, r).await,
                    None => Vec::new(),
                };
                let (c, after, upto, now) = (child.to_string(), batch.after, batch.upto, crate::clock::now_ms());
                match store.call(move |w| w.apply_batch(&c, after, upto, changes, now)).await? {
                    Ok(out) => {
                        for (reg_no, origin, held) in &out.conflict_list {
                            warn!(child = %child, reg_no = %reg_no, arriving_origin = %origin, held_origin = %held, "conflict: quarantined the second arrival");
                        }
                        if out.stale {
                            // The durable cursor moved on elsewhere (a parallel session): resync.
                            anyhow::bail!("batch does not follow the durable cursor; resynchronising");
                        }
                        debug!(child = %child, after, upto, applied = out.applied, duplicates = out.duplicates, "batch applied");
                        let ack = s.applied(upto, out.applied, out.duplicates, out.conflicts);
                        net::write_frame(&mut send, &ack).await?;
                    }
                    Err(ApplyError::Refused(r)) => return refuse(&mut send, child, r).await,
                    Err(ApplyError::Store(e)) => return Err(e.context("cannot apply a batch")),
                }
            }
        }
    }
}

/// Keeps a decoding error recognisable (it becomes a `bad_frame` refusal).
fn frame_error(e: net::FrameError) -> anyhow::Error {
    match e {
        net::FrameError::Decode(d) => d.into(),
        other => other.into(),
    }
}

/// A frame decoded off the connection task: the message and, for a batch, its
/// changes, already checked (jurisdiction, provenance, hashes, bodies).
struct Decoded {
    message: Message,
    changes: Option<Result<Vec<CheckedChange>, Refused>>,
    /// Held until the batch is applied (see [`DECODED_AHEAD`]).
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

async fn read_decoded(recv: &mut quinn::RecvStream, budget: &Budget, child: &str) -> anyhow::Result<Option<Decoded>> {
    let Some(len) = net::read_frame_len(recv).await.map_err(frame_error)? else { return Ok(None) };
    let _permit = budget.bytes.acquire_many(len.div_ceil(1024).max(1) as u32).await?;
    let body = net::read_frame_body(recv, len).await.map_err(frame_error)?;
    let mut message = wire::decode_message(&body)?;
    drop(body);
    let mut slot = None;
    let changes = match &mut message {
        Message::Batch(b) => {
            slot = Some(budget.decoded.clone().acquire_owned().await?);
            let (enc, payload, child) = (b.encoding, std::mem::take(&mut b.payload), child.to_string());
            let range = format!("batch ({}, {}] from {child}", b.after, b.upto);
            Some(
                tokio::task::spawn_blocking(move || {
                    let changes = net::decompress(enc, payload)
                        .and_then(|p| wire::decode_changes(&p))
                        .map_err(|e| Refused::new("bad_batch", format!("{range}: {e}")))?;
                    changes.into_iter().map(|c| checked(&child, c)).collect::<Result<Vec<_>, _>>()
                })
                .await?,
            )
        }
        _ => None,
    };
    Ok(Some(Decoded { message, changes, _slot: slot }))
}
