//! `huijiao status`: what a node holds and when it last took something in.

use crate::config::Config;
use crate::store::Reader;
use std::io::Write;

/// A child is connected when its session is open and the parent's heartbeat noted it
/// within three beats (a parent that died leaves no fresh note).
const CONNECTED_WITHIN_SECS: i64 = 3 * crate::downlink::HEARTBEAT.as_secs() as i64;

fn connected(c: &crate::store::ChildStatus) -> bool {
    c.session_open && quiet_secs(c.last_seen_at).is_some_and(|q| q <= CONNECTED_WITHIN_SECS)
}

/// Seconds since a child was last seen.
/// The refusal of a child since it was last heard (a revoked certificate, say): why
/// it is gone, rather than just quiet.
pub fn refused_since_seen<'a>(
    refusals: &'a [crate::store::RefusalStatus],
    c: &crate::store::ChildStatus,
) -> Option<&'a crate::store::RefusalStatus> {
    let who = format!("node {}", c.child);
    refusals.iter().filter(|r| r.identity == who && r.last_at >= c.last_seen_at.unwrap_or(0)).max_by_key(|r| r.last_at)
}

fn quiet_secs(last_seen_at: Option<i64>) -> Option<i64> {
    last_seen_at.map(|t| ((crate::clock::now_ms() - t) / 1000).max(0))
}

/// Free space under this many bytes counts as a full disk.
const FULL_BELOW: u64 = 1024 * 1024;

/// The folders the node writes to, with the bytes free on each one's file system.
fn free_space(cfg: &Config) -> Vec<(std::path::PathBuf, Option<u64>)> {
    let mut dirs = vec![cfg.data_dir.clone()];
    for i in &cfg.inboxes {
        dirs.extend([i.path.clone(), i.processed.clone(), i.rejected.clone()]);
    }
    dirs.dedup();
    // A folder not made yet is on its nearest existing parent's file system.
    dirs.into_iter().map(|d| (d.clone(), crate::fsx::free_bytes(&d))).collect()
}

/// What `status` shows, read from the store and the node's folders.
pub struct Snapshot {
    pub store: crate::store::StoreStatus,
    pub unfinished: i64,
    pub disks: Vec<(std::path::PathBuf, Option<u64>)>,
    pub waiting: usize,
    pub children: Vec<crate::store::ChildStatus>,
    pub uplink: Option<crate::store::UplinkStatus>,
    pub conflicts: usize,
    pub refusals: Vec<crate::store::RefusalStatus>,
    pub stuck: Vec<crate::store::StuckChange>,
    pub log_id: String,
    pub rotation: Option<serde_json::Value>,
    /// Set while the store waits for `huijiao recover` (the note of the rotation).
    pub recover_needed: Option<serde_json::Value>,
    /// When `huijiao recover` last finished.
    pub recovered: Option<serde_json::Value>,
    /// What the running daemon says of itself (None: not running).
    pub daemon: Option<crate::admin::DaemonInfo>,
    /// This node and every node below it.
    pub subtree: Vec<huijiao_protocol::wire::NodeHealth>,
    /// Conflicts concerning this subtree that nodes above held aside.
    pub conflict_notes: Vec<huijiao_protocol::wire::ConflictNote>,
    pub store_bytes: u64,
    /// Online registration's review queue, where it is on.
    pub review: Option<crate::store::registration::Queue>,
    /// What each PostgreSQL mirror last reported.
    pub mirrors: Vec<crate::mirror::MirrorStatus>,
}

impl Snapshot {
    pub fn gather(cfg: &Config) -> anyhow::Result<Snapshot> {
        let reader = Reader::open(&cfg.db_path())?;
        let daemon = crate::admin::ask(&cfg.data_dir);
        let mut uplink = reader.uplink()?;
        // The running daemon knows the parent's acknowledgement before its store does.
        if let (Some(u), Some(a)) = (uplink.as_mut(), daemon.as_ref().and_then(|d| d.acked)) {
            u.acked = u.acked.max(a as i64);
        }
        let waiting = crate::health::files_waiting(cfg);
        let (log_id, _) = reader.log()?;
        let mut subtree = crate::health::subtree(cfg, &reader)?;
        if let (Some(me), Some(u)) = (subtree.first_mut(), uplink.as_ref()) {
            let store = reader.status()?;
            me.backlog = (store.last_seq - u.acked).max(0) as u64;
            me.backlog_oldest_at = if me.backlog > 0 { reader.accepted_at_after(u.acked)? } else { None };
        }
        Ok(Snapshot {
            store: reader.status()?,
            unfinished: reader.unfinished_files()?,
            disks: free_space(cfg),
            waiting,
            children: reader.children()?,
            uplink,
            conflicts: reader.quarantine()?.len(),
            refusals: reader.refusals()?,
            stuck: reader.stuck()?,
            log_id,
            rotation: reader.log_rotation()?.and_then(|t| serde_json::from_str(&t).ok()),
            recover_needed: reader.recover_needed()?.and_then(|t| serde_json::from_str(&t).ok()),
            recovered: reader.last_recovery()?.and_then(|t| serde_json::from_str(&t).ok()),
            daemon,
            subtree,
            conflict_notes: reader.conflict_notes()?,
            review: cfg.registration.as_ref().map(|_| reader.review_queue()).transpose()?,
            mirrors: crate::mirror::statuses(&cfg.data_dir),
            store_bytes: std::fs::metadata(cfg.db_path()).map(|m| m.len()).unwrap_or(0)
                + std::fs::metadata(format!("{}-wal", cfg.db_path().display())).map(|m| m.len()).unwrap_or(0),
        })
    }

    fn full_disks(&self) -> Vec<&(std::path::PathBuf, Option<u64>)> {
        self.disks.iter().filter(|(_, f)| f.is_some_and(|f| f < FULL_BELOW)).collect()
    }

    /// `status --json`.
    pub fn to_json(&self) -> anyhow::Result<serde_json::Value> {
        let mut v = serde_json::to_value(&self.store)?;
        v["inbox_waiting"] = self.waiting.into();
        v["children"] = serde_json::to_value(&self.children)?;
        if let Some(list) = v["children"].as_array_mut() {
            for (c, status) in list.iter_mut().zip(&self.children) {
                c["quiet_secs"] = quiet_secs(status.last_seen_at).into();
                c["connected"] = connected(status).into();
                c["refused"] = refused_since_seen(&self.refusals, status).map(|r| r.reason.clone()).into();
            }
        }
        v["uplink"] = serde_json::to_value(&self.uplink)?;
        v["conflicts"] = self.conflicts.into();
        v["refusals"] = serde_json::to_value(&self.refusals)?;
        v["stuck"] = serde_json::to_value(&self.stuck)?;
        v["log_id"] = self.log_id.clone().into();
        v["log_rotated"] = self.rotation.clone().unwrap_or_default();
        v["recover_needed"] = self.recover_needed.clone().unwrap_or_default();
        v["recovered"] = self.recovered.clone().unwrap_or_default();
        v["files_unfinished"] = self.unfinished.into();
        v["review"] = serde_json::to_value(self.review)?;
        v["mirrors"] = serde_json::to_value(&self.mirrors)?;
        v["disk_full"] = (!self.full_disks().is_empty()).into();
        v["daemon"] = serde_json::to_value(&self.daemon)?;
        v["subtree"] = serde_json::to_value(&self.subtree)?;
        if let Some(list) = v["subtree"].as_array_mut() {
            for (i, entry) in list.iter_mut().enumerate().skip(1) {
                let (state, since) = crate::health::state_of(&self.subtree, i);
                entry["state"] = state.into();
                entry["since"] = since.into();
            }
        }
        v["conflict_notes"] = serde_json::to_value(&self.conflict_notes)?;
        v["store_bytes"] = self.store_bytes.into();
        if let Some(me) = self.subtree.first() {
            v["backlog"] = me.backlog.into();
            v["backlog_oldest_at"] = me.backlog_oldest_at.into();
            v["cert_expires_at"] = me.cert_expires_at.into();
        }
        v["disk_free"] = self
            .disks
            .iter()
            .map(|(d, f)| serde_json::json!({"path": d.display().to_string(), "free_bytes": f}))
            .collect::<Vec<_>>()
            .into();
        Ok(v)
    }
}

/// One piece: the report reads top to bottom in the order an operator reads it, each
/// section a few lines over one snapshot.
pub fn run(cfg: &Config, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let snap = Snapshot::gather(cfg)?;
    if json {
        writeln!(out, "{}", snap.to_json()?)?;
        return Ok(());
    }
    let Snapshot { store: s, unfinished, waiting, children, uplink, conflicts, refusals, stuck, rotation, .. } = &snap;
    let (unfinished, waiting, conflicts) = (*unfinished, *waiting, *conflicts);
    let full = snap.full_disks();
    let at = |ms: Option<i64>| ms.map_or_else(|| "never".to_string(), crate::clock::rfc3339_china);
    let now = crate::clock::now_ms();
    match &snap.daemon {
        Some(d) => {
            writeln!(out, "daemon          running (pid {}, huijiao {}, up {})", d.pid, d.version, crate::health::age(now - d.started_at))?
        }
        None => writeln!(
            out,
            "daemon          NOT RUNNING (nothing answers on {}); below is the store as the node left it",
            crate::admin::socket_path(&cfg.data_dir).display()
        )?,
    }
    writeln!(out, "node            {}", s.node_id)?;
    writeln!(out, "records         {} ({} withdrawn)", s.records, s.withdrawn)?;
    writeln!(out, "change log      {} changes, last seq {}, last at {}", s.changes, s.last_seq, at(s.last_change_at))?;
    writeln!(out, "files ingested  {}, last at {}", s.files, at(s.last_file_at))?;
    writeln!(out, "inbox waiting   {waiting}")?;
    writeln!(out, "store size      {:.1} MiB", snap.store_bytes as f64 / 1048576.0)?;
    if let Some(q) = &snap.review {
        let oldest = q.oldest_submitted_at.map(|t| format!(", the oldest waiting {}", crate::health::age(now - t))).unwrap_or_default();
        writeln!(out, "review queue    {} submission(s) waiting for review{oldest}", q.waiting)?;
    }
    for m in &snap.mirrors {
        let behind = (s.last_seq - m.cursor).max(0);
        let state = match (&m.error, m.failing_since) {
            (Some(e), Some(since)) => format!("FAILING for {}: {e}", crate::health::age(now - since)),
            _ => format!("ok {} ago", m.ok_at.map_or("never".into(), |t| crate::health::age(now - t))),
        };
        writeln!(out, "mirror          {} ({} view): at change {}, {behind} behind; {state}", m.schema, m.view, m.cursor)?;
    }
    if let Some(me) = snap.subtree.first() {
        if let Some(exp) = me.cert_expires_at {
            let days = (exp - now).div_euclid(86_400_000);
            let warn =
                if days < crate::pki::EXPIRY_WARNING_DAYS { "  RENEW IT: huijiao pki renew, then systemctl reload huijiao" } else { "" };
            writeln!(out, "certificate     expires in {days} days ({}){warn}", at(Some(exp)))?;
        }
        if me.backlog > 0 {
            let oldest = me.backlog_oldest_at.map(|t| format!(", the oldest made {} ago", crate::health::age(now - t))).unwrap_or_default();
            writeln!(out, "unsent          {} change(s) not yet acknowledged by the parent{oldest}", me.backlog)?;
        }
    }
    if unfinished > 0 {
        writeln!(
            out,
            "unfinished      {unfinished} committed file(s) not yet moved out of the inbox or reported (retried every few seconds)"
        )?;
    }
    for (d, f) in &full {
        writeln!(out, "DISK FULL       {} has {} bytes free; the node retries on its own when space returns", d.display(), f.unwrap_or(0))?;
    }
    if let Some(u) = uplink {
        writeln!(out, "uplink          to {}: {}, parent holds up to seq {} of {}", u.parent, u.state, u.acked, s.last_seq)?;
        if let Some(since) = u.connected_at {
            writeln!(out, "                connected since {}, last acknowledgement recorded {}", at(Some(since)), at(Some(u.updated_at)))?;
        }
        if let Some(e) = &u.last_error {
            writeln!(out, "                last error at {}: {e}", at(u.last_error_at))?;
        }
        if let Some(since) = u.failing_since.filter(|t| now - t >= crate::metrics::UPLINK_FAILING_MS) {
            writeln!(
                out,
                "UPLINK FAILING  since {} ({} ago): nothing reaches the parent until this is fixed",
                at(Some(since)),
                crate::health::age(now - since)
            )?;
        }
    }
    if let Some(r) = &snap.recover_needed {
        writeln!(
            out,
            "RECOVER NEEDED  since {}: the parent held changes up to {} of this store's log, the store only up to {} (restored from an older copy); the inbox waits until `huijiao recover --config …` (node stopped) has taken back what the store lost",
            at(r["at"].as_i64()),
            r["parent_cursor"],
            r["last_seq"]
        )?;
    } else if let Some(r) = &rotation {
        let recovered = snap.recovered.as_ref().and_then(|v| v["at"].as_i64());
        writeln!(
            out,
            "LOG RESTARTED   at {}: the parent held changes up to {} of this store's log, the store only up to {} (restored from an older copy); everything was sent again{}",
            at(r["at"].as_i64()),
            r["parent_cursor"],
            r["last_seq"],
            match recovered {
                Some(t) => format!("; `huijiao recover` took back what it lost ({})", at(Some(t))),
                None => String::new(),
            }
        )?;
    }
    for st in stuck {
        writeln!(out, "STUCK CHANGE    seq {} {} held aside at {}: {}", st.seq, st.reg_no, at(Some(st.at)), st.reason)?;
    }
    if conflicts > 0 {
        writeln!(out, "conflicts       {conflicts} quarantined (huijiao conflicts --config …)")?;
    }
    if !children.is_empty() {
        writeln!(
            out,
            "children        {:<8} {:>10} {:>10}  {:<29}  {:<14}  last error",
            "node", "cursor", "changes", "last seen", "state"
        )?;
        for c in children {
            let state = match (quiet_secs(c.last_seen_at), refused_since_seen(refusals, c)) {
                _ if connected(c) => "connected".to_string(),
                (_, Some(r)) => format!("REFUSED: {}", r.reason),
                (Some(q), None) => format!("QUIET {}h{:02}m", q / 3600, q / 60 % 60),
                (None, None) => "never seen".to_string(),
            };
            let rewound = c.rewound_at.map(|t| format!(" [store rewound at {}]", at(Some(t)))).unwrap_or_default();
            writeln!(
                out,
                "                {:<8} {:>10} {:>10}  {:<29}  {:<14}  {}",
                c.child,
                c.cursor,
                c.changes,
                at(c.last_seen_at),
                state,
                c.last_error.as_deref().map(|e| format!("{} {e}", at(c.last_error_at))).unwrap_or_default() + &rewound
            )?;
        }
    }
    if !refusals.is_empty() {
        writeln!(out, "refused peers   (never children; by the identity they showed)")?;
        for r in refusals {
            writeln!(
                out,
                "                {:<28} {:<24} ×{:<5} last at {}  {}",
                r.identity,
                r.reason,
                r.count,
                at(Some(r.last_at)),
                r.last_message.as_deref().unwrap_or("")
            )?;
        }
    }
    for c in children.iter().filter(|c| c.held_back_at.is_some()) {
        writeln!(out, "HELD BACK       child {} since {}: {}", c.child, at(c.held_back_at), c.held_back_reason.as_deref().unwrap_or(""))?;
    }
    for c in children.iter().filter(|c| c.clock_corrections > 0) {
        writeln!(
            out,
            "CLOCK           child {}: {} change(s) with hop times not believable (before the hop below, or over [sync] max_clock_skew_secs ahead), the last at {}; they were given this node's receipt time — check the clock of {} and the nodes below it",
            c.child,
            c.clock_corrections,
            at(c.clock_corrected_at),
            c.child
        )?;
    }
    for n in &snap.conflict_notes {
        if n.origin == n.kept_origin {
            // The same origin's own versions disagree: a restored store forgot some.
            writeln!(
                out,
                "CONFLICT        {}: version {} from {} was held aside at node {} ({}): {}; run `huijiao recover` on {} and drop the row again",
                n.reg_no,
                n.version,
                n.origin,
                n.met_at,
                at(Some(n.at)),
                n.reason,
                n.origin
            )?;
            continue;
        }
        writeln!(
            out,
            "CONFLICT        {}: version {} from {} was held aside at node {}, which keeps the record of {} ({}, {}); settle which office owns it",
            n.reg_no,
            n.version,
            n.origin,
            n.met_at,
            n.kept_origin,
            n.reason,
            at(Some(n.at))
        )?;
    }
    if snap.subtree.len() > 1 {
        writeln!(out, "subtree         (each node as it last reported; states as its parent sees it)")?;
        for line in crate::health::tree(&snap.subtree, &cfg.regions, now) {
            writeln!(out, "                {line}")?;
        }
    }
    Ok(())
}
