//! Prometheus metrics (`[metrics] address`, off by default): `/metrics` in the text
//! format and `/healthz`.
//!
//! Counters of what happened since the process started (files, rows by outcome and
//! error code, changes acknowledged by the parent and received from children, peers
//! refused by reason) are kept in memory with `prometheus-client`; the state of the
//! node (records, backlog and its age, children and their lag, store and WAL size,
//! certificate expiry) is read from the store at each scrape.

use crate::config::Config;
use crate::store::Store;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

type Labels = Vec<(String, String)>;

/// The counters, shared by the whole process.
#[derive(Default, Clone)]
pub struct Counters {
    pub files: Family<Labels, Counter>,
    pub rows: Family<Labels, Counter>,
    pub row_errors: Family<Labels, Counter>,
    pub changes_acked: Counter,
    pub changes_received: Family<Labels, Counter>,
    pub refusals: Family<Labels, Counter>,
    pub held_back: Family<Labels, Counter>,
}

static COUNTERS: OnceLock<Counters> = OnceLock::new();

pub fn counters() -> &'static Counters {
    COUNTERS.get_or_init(Counters::default)
}

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

/// A file handled by the inbox.
pub fn file_handled(report: &huijiao_protocol::report::Report) {
    let c = counters();
    let outcome = if report.refused.is_some() {
        "refused"
    } else if report.rejected > 0 {
        "with_rejected_rows"
    } else {
        "accepted"
    };
    c.files.get_or_create(&label("outcome", outcome)).inc();
    c.rows.get_or_create(&label("outcome", "accepted")).inc_by(report.accepted);
    c.rows.get_or_create(&label("outcome", "rejected")).inc_by(report.rejected);
    match &report.error_counts {
        Some(counts) => {
            for (code, n) in counts {
                c.row_errors.get_or_create(&label("code", code)).inc_by(*n);
            }
        }
        None => {
            for e in &report.errors {
                c.row_errors.get_or_create(&label("code", &e.code)).inc();
            }
        }
    }
}

/// Changes the parent acknowledged.
pub fn changes_acked(n: u64) {
    counters().changes_acked.inc_by(n);
}

/// Changes a child sent that this node applied.
pub fn changes_received(child: &str, n: u64) {
    counters().changes_received.get_or_create(&label("child", child)).inc_by(n);
}

/// A peer refused, by reason code.
/// A child's changes were held back by its volume bound.
pub fn held_back(child: &str) {
    counters().held_back.get_or_create(&label("child", child)).inc();
}

pub fn refused(reason: &str) {
    counters().refusals.get_or_create(&label("reason", reason)).inc();
}

fn gauge(registry: &mut Registry, name: &str, help: &str, v: f64) {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(v);
    registry.register(name, help, g);
}

fn file_size(p: &std::path::Path) -> f64 {
    std::fs::metadata(p).map(|m| m.len() as f64).unwrap_or(0.0)
}

/// The exposition: counters plus the node's state read now.
pub fn render(cfg: &Config) -> anyhow::Result<String> {
    let mut registry = Registry::with_prefix("huijiao");
    let c = counters().clone();
    registry.register("files", "Files the inbox handled, by outcome", c.files);
    registry.register("rows", "Data rows read from files, by outcome", c.rows);
    registry.register("row_errors", "Row errors in files, by error code", c.row_errors);
    registry.register("changes_acknowledged", "Changes of this node's log the parent acknowledged", c.changes_acked);
    registry.register("changes_received", "Changes received from children and applied, by child", c.changes_received);
    registry.register("refusals", "Peers refused, by reason", c.refusals);
    registry.register("held_back", "Sessions of a child ended to hold its changes back (its volume bound), by child", c.held_back);

    let reader = crate::store::Reader::open(&cfg.db_path())?;
    let s = reader.status()?;
    gauge(&mut registry, "records", "Records held (the whole subtree)", s.records as f64);
    gauge(&mut registry, "records_withdrawn", "Records held as withdrawn", s.withdrawn as f64);
    gauge(&mut registry, "log_last_seq", "The last change of this node's log", s.last_seq as f64);
    if let Some(u) = reader.uplink()? {
        let backlog = (s.last_seq - u.acked).max(0);
        gauge(&mut registry, "backlog_changes", "Changes the parent has not acknowledged", backlog as f64);
        let age = reader.accepted_at_after(u.acked)?.map_or(0.0, |t| ((crate::clock::now_ms() - t).max(0) as f64) / 1000.0);
        gauge(&mut registry, "backlog_oldest_age_seconds", "Age of the oldest change the parent has not acknowledged", age);
        gauge(&mut registry, "uplink_streaming", "1 while the uplink streams to the parent", f64::from(u8::from(u.state == "streaming")));
    }
    let children = reader.children()?;
    let connected: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
    let seen: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
    let received: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
    let corrected: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
    let held: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
    let now = crate::clock::now_ms();
    for ch in &children {
        let l = label("child", &ch.child);
        let live = ch.session_open && ch.last_seen_at.is_some_and(|t| now - t < 60_000);
        connected.get_or_create(&l).set(f64::from(u8::from(live)));
        seen.get_or_create(&l).set(ch.last_seen_at.map_or(-1.0, |t| ((now - t).max(0) as f64) / 1000.0));
        received.get_or_create(&l).set(ch.cursor as f64);
        corrected.get_or_create(&l).set(ch.clock_corrections as f64);
        held.get_or_create(&l).set(f64::from(u8::from(ch.held_back_at.is_some())));
    }
    registry.register("child_connected", "1 while the child has a live session", connected);
    registry.register("child_last_seen_age_seconds", "Seconds since the child was last heard (-1: never)", seen);
    registry.register("child_cursor", "The child's log position applied here", received);
    registry.register("child_held_back", "1 while the child's changes are held back by its volume bound", held);
    registry.register(
        "child_clock_corrections",
        "Changes from the child whose hop times were not believable and were replaced by this node's receipt time",
        corrected,
    );
    gauge(&mut registry, "connections", "Children connected now", children.iter().filter(|c| c.session_open).count() as f64);
    gauge(&mut registry, "conflicts", "Changes quarantined as conflicts", reader.quarantine()?.len() as f64);
    gauge(&mut registry, "stuck_changes", "Own changes the parent refused, held aside", reader.stuck()?.len() as f64);
    if cfg.registration.is_some() {
        let q = reader.review_queue()?;
        gauge(&mut registry, "review_queue_waiting", "Online submissions waiting for review", q.waiting as f64);
        let age = q.oldest_submitted_at.map_or(0.0, |t| ((now - t).max(0) as f64) / 1000.0);
        gauge(&mut registry, "review_queue_oldest_age_seconds", "Seconds the oldest submission has waited for review (0: none)", age);
    }
    let mirrors = crate::mirror::statuses(&cfg.data_dir);
    if !mirrors.is_empty() {
        let lag: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
        let failing: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
        let ok_age: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
        for m in &mirrors {
            let l = label("schema", &m.schema);
            lag.get_or_create(&l).set((s.last_seq - m.cursor).max(0) as f64);
            failing.get_or_create(&l).set(f64::from(u8::from(m.error.is_some())));
            ok_age.get_or_create(&l).set(m.ok_at.map_or(-1.0, |t| ((now - t).max(0) as f64) / 1000.0));
        }
        registry.register("mirror_lag_changes", "Changes of this node's log not yet in the PostgreSQL mirror", lag);
        registry.register("mirror_failing", "1 while the PostgreSQL mirror's last attempt failed", failing);
        registry.register(
            "mirror_last_ok_age_seconds",
            "Seconds since the mirror last committed or found nothing to do (-1: never)",
            ok_age,
        );
    }
    let db = cfg.db_path();
    gauge(&mut registry, "store_bytes", "Size of the store file", file_size(&db));
    gauge(
        &mut registry,
        "wal_bytes",
        "Size of the store's write-ahead log",
        file_size(&std::path::PathBuf::from(format!("{}-wal", db.display()))),
    );
    if let Some(t) = &cfg.tls {
        let expiry: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
        for (which, path) in [("node", &t.cert), ("ca", &t.ca)] {
            if let Ok(secs) = crate::pki::expiry_of_file(path) {
                expiry.get_or_create(&label("certificate", which)).set((secs * 1000 - now) as f64 / 1000.0);
            }
        }
        registry.register("certificate_expiry_seconds", "Seconds until the certificate expires", expiry);
    }
    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}

/// What the metrics endpoints share.
struct Ctx {
    cfg: Arc<Config>,
    store: Store,
}

/// Serves `/metrics` and `/healthz` on its own listener until `shutdown`.
pub async fn serve(
    cfg: Arc<Config>,
    store: Store,
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let app = Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(Arc::new(Ctx { cfg, store }));
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
    Ok(())
}

async fn metrics(State(ctx): State<Arc<Ctx>>) -> Response {
    let cfg = ctx.cfg.clone();
    match tokio::task::spawn_blocking(move || render(&cfg)).await {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"))], text)
                .into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the store: {e:#}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// How long the uplink may fail (a parent restarting, a link down for a moment)
/// before `/healthz` says so.
pub const UPLINK_FAILING_MS: i64 = 60_000;

/// 200 when the store's writer answers within 2 s, the uplink (if any) has not been
/// failing for a minute, no own change is stuck at the parent and the store needs no
/// `huijiao recover`; 503 with the reason otherwise.
async fn healthz(State(ctx): State<Arc<Ctx>>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), ctx.store.call(|w| w.node_id().len())).await {
        Ok(Ok(_)) => {}
        _ => return (StatusCode::SERVICE_UNAVAILABLE, "store: the writer does not answer\n").into_response(),
    }
    if ctx.store.recover_needed() {
        return (StatusCode::SERVICE_UNAVAILABLE, "store: restored from an older copy; the inbox waits until `huijiao recover` has run\n")
            .into_response();
    }
    let cfg = ctx.cfg.clone();
    let state = tokio::task::spawn_blocking(move || {
        let r = crate::store::Reader::open(&cfg.db_path())?;
        Ok::<_, crate::store::StoreError>((r.stuck()?, r.uplink()?))
    })
    .await;
    let now = crate::clock::now_ms();
    match state {
        Ok(Ok((_, Some(u)))) if u.failing_since.is_some_and(|t| now - t >= UPLINK_FAILING_MS) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "uplink: failing for {} s: {}\n",
                (now - u.failing_since.unwrap_or(now)) / 1000,
                u.last_error.as_deref().unwrap_or("no connection to the parent")
            ),
        )
            .into_response(),
        Ok(Ok((s, _))) if s.is_empty() => (StatusCode::OK, "ok\n").into_response(),
        Ok(Ok((s, _))) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("uplink: {} change(s) refused by the parent and held aside\n", s.len()))
                .into_response()
        }
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e:#}\n")).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
