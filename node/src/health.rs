//! The health of a node's whole subtree: its own, and what each child last reported
//! of itself and the nodes below it, with this node's view of each child (connected,
//! last heard) filled in. A child sends its subtree upward every `[sync] health_secs`
//! (protocol feature `FEATURE_HEALTH`), so the national node lists every node below
//! it with its lag; `status`, `/admin` and `/metrics` show it.

use crate::config::Config;
use crate::store::Reader;
use huijiao_protocol::wire::NodeHealth;

/// A child is shown connected while its session is open and it was heard within this.
pub const LIVE_WITHIN_MS: i64 = 60_000;

/// This node as it sees itself.
/// Files in the inboxes that the node will read (ignored names left out).
pub fn files_waiting(cfg: &Config) -> usize {
    cfg.inboxes
        .iter()
        .map(|i| {
            std::fs::read_dir(&i.path)
                .map(|d| d.flatten().filter(|e| !crate::ingest::is_ignored_name(&e.file_name().to_string_lossy())).count())
                .unwrap_or(0)
        })
        .sum()
}

/// What the parent acknowledged last, as this process knows it at once (0: nothing
/// yet). The store's copy is written every second or two and cannot be while the disk
/// is full; `status` asks the daemon for this one, so it never shows as unsent what the
/// parent holds.
static ACKED_NOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The parent's acknowledged cursor as this process last heard it.
pub fn acked_now() -> Option<u64> {
    Some(ACKED_NOW.load(std::sync::atomic::Ordering::Relaxed)).filter(|a| *a > 0)
}

/// Called by the uplink when the parent acknowledges.
pub(crate) fn note_acked(cursor: u64) {
    ACKED_NOW.store(cursor, std::sync::atomic::Ordering::Relaxed);
}

pub fn own(cfg: &Config, reader: &Reader) -> anyhow::Result<NodeHealth> {
    let s = reader.status()?;
    let mut uplink = reader.uplink()?;
    // In the daemon: the parent's acknowledgement as heard, ahead of the store's copy.
    if let (Some(u), Some(a)) = (uplink.as_mut(), acked_now()) {
        u.acked = u.acked.max(a as i64);
    }
    let (backlog, oldest, state, error) = match &uplink {
        Some(u) => ((s.last_seq - u.acked).max(0) as u64, reader.accepted_at_after(u.acked)?, u.state.clone(), u.last_error.clone()),
        None => (0, None, String::new(), None),
    };
    let waiting = files_waiting(cfg);
    Ok(NodeHealth {
        node: cfg.node_id.clone(),
        parent: cfg.parent.as_ref().map(|p| p.node_id.clone()).unwrap_or_default(),
        reported_at: crate::clock::now_ms(),
        agent: format!("huijiao {}", env!("CARGO_PKG_VERSION")),
        records: s.records as u64,
        last_change_at: s.last_change_at,
        backlog,
        backlog_oldest_at: if backlog > 0 { oldest } else { None },
        uplink_state: state,
        uplink_error: error,
        cert_expires_at: cfg.tls.as_ref().and_then(|t| crate::pki::expiry_of_file(&t.cert).ok()).map(|s| s * 1000),
        inbox_waiting: waiting as u64,
        conflicts: reader.quarantine()?.len() as u64,
        connected: false,
        last_seen_at: None,
    })
}

/// This node and every node below it, parents before their children.
pub fn subtree(cfg: &Config, reader: &Reader) -> anyhow::Result<Vec<NodeHealth>> {
    let mut out = vec![own(cfg, reader)?];
    let now = crate::clock::now_ms();
    for c in reader.children()? {
        let live = c.session_open && c.last_seen_at.is_some_and(|t| now - t < LIVE_WITHIN_MS);
        let reported: Vec<NodeHealth> = c.health.as_deref().and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default();
        let mut own_entry = false;
        for mut n in reported {
            if n.node == c.child {
                n.connected = live;
                n.last_seen_at = c.last_seen_at;
                n.parent = cfg.node_id.clone();
                own_entry = true;
            } else if !live {
                // Reported by a child that went quiet: nothing is known of it now.
                n.connected = false;
            }
            out.push(n);
        }
        if !own_entry {
            out.push(NodeHealth {
                node: c.child.clone(),
                parent: cfg.node_id.clone(),
                connected: live,
                last_seen_at: c.last_seen_at,
                ..NodeHealth::default()
            });
        }
    }
    Ok(out)
}

/// `1h05m`, `3m`, `12s`.
pub fn age(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

/// Whether the state of `nodes[i]` is known now. None when it hangs straight below
/// this node (`nodes[0]`) or below nodes that are all connected; `Some(since)` when a
/// node between it and this one is quiet — its last report came through that node,
/// so its state is unknown since that node was last heard.
pub fn unknown_since(nodes: &[NodeHealth], i: usize) -> Option<i64> {
    let top = &nodes.first()?.node;
    let mut at = nodes.get(i)?.parent.clone();
    for _ in 0..8 {
        if &at == top || at.is_empty() {
            return None;
        }
        let p = nodes.iter().find(|n| n.node == at)?;
        if !p.connected {
            return Some(p.last_seen_at.unwrap_or(p.reported_at));
        }
        at = p.parent.clone();
    }
    None
}

/// `connected`, `quiet` or `unknown` (see [`unknown_since`]), with since when.
pub fn state_of(nodes: &[NodeHealth], i: usize) -> (&'static str, Option<i64>) {
    match unknown_since(nodes, i) {
        Some(since) => ("unknown", Some(since)),
        None if nodes[i].connected => ("connected", nodes[i].last_seen_at),
        None => ("quiet", nodes[i].last_seen_at),
    }
}

/// One line of the tree for a node (not the top one); `unknown` from [`unknown_since`].
pub fn describe(n: &NodeHealth, now: i64, unknown: Option<i64>) -> String {
    let mut parts = Vec::new();
    parts.push(if let Some(since) = unknown {
        format!("UNKNOWN since {} ago (its parent went quiet; as last reported:)", age(now - since))
    } else if n.connected {
        "connected".to_string()
    } else {
        match n.last_seen_at {
            Some(t) => format!("QUIET {}", age(now - t)),
            None => "never seen".to_string(),
        }
    });
    if n.reported_at > 0 {
        parts.push(format!("{} records", n.records));
        if n.backlog > 0 {
            let oldest = n.backlog_oldest_at.map(|t| format!(", oldest {}", age(now - t))).unwrap_or_default();
            parts.push(format!("backlog {}{oldest}", n.backlog));
        }
        if n.inbox_waiting > 0 {
            parts.push(format!("{} file(s) waiting", n.inbox_waiting));
        }
        if n.conflicts > 0 {
            parts.push(format!("{} CONFLICT(S) held aside", n.conflicts));
        }
        if let Some(e) = &n.uplink_error {
            parts.push(format!("last error: {e}"));
        }
        if let Some(exp) = n.cert_expires_at {
            let days = (exp - now).div_euclid(86_400_000);
            if days < crate::pki::EXPIRY_WARNING_DAYS {
                parts.push(format!("CERTIFICATE EXPIRES IN {days} DAYS"));
            }
        }
        parts.push(format!("report {} old", age(now - n.reported_at)));
    }
    parts.join(", ")
}

/// The subtree as an indented tree, one node per line, with region names.
pub fn tree(nodes: &[NodeHealth], names: &huijiao_protocol::RegionTable, now: i64) -> Vec<String> {
    let mut out = Vec::new();
    let Some(top) = nodes.first() else { return out };
    fn walk(nodes: &[NodeHealth], at: &NodeHealth, prefix: &str, names: &huijiao_protocol::RegionTable, now: i64, out: &mut Vec<String>) {
        let kids: Vec<(usize, &NodeHealth)> = nodes.iter().enumerate().filter(|(_, n)| n.parent == at.node && n.node != at.node).collect();
        for (i, (index, k)) in kids.iter().enumerate() {
            let last = i + 1 == kids.len();
            let name = names.get(&k.node).map(|r| r.name.as_str()).unwrap_or("");
            let unknown = unknown_since(nodes, *index);
            out.push(format!("{prefix}{}{} {}  {}", if last { "└─ " } else { "├─ " }, k.node, name, describe(k, now, unknown)));
            walk(nodes, k, &format!("{prefix}{}", if last { "   " } else { "│  " }), names, now, out);
        }
    }
    let name = names.get(&top.node).map(|r| r.name.as_str()).unwrap_or("");
    out.push(format!("{} {}  {} records (this node)", top.node, name, top.records));
    walk(nodes, top, "", names, now, &mut out);
    out
}
