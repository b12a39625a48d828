//! Fault scenarios shared by the CI tests (small) and the soak command (long).

use crate::faults::{Impairment, Proxy};
use crate::workload::Workload;
use crate::Federation;
use huijiao_kit::audit::Audit;
use huijiao_kit::synth::Rng;
use std::time::Duration;

/// The chain the fault runs use: national ← province ← prefecture ← two counties,
/// and a county directly under the province.
pub const CHAIN: [(&str, Option<&str>); 6] = [
    ("000000", None),
    ("420000", Some("000000")),
    ("420100", Some("420000")),
    ("420102", Some("420100")),
    ("420103", Some("420100")),
    ("429004", Some("420000")),
];

pub const COUNTIES: [&str; 3] = ["420102", "420103", "429004"];

/// A process federation of [`CHAIN`]: short timeouts so broken links are noticed fast.
pub fn chain() -> anyhow::Result<Federation> {
    let mut f = Federation::with_processes()?;
    f.extra_toml = "[sync]\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\nidle_timeout_secs = 3\nbatch_changes = 100\n".into();
    for (id, parent) in CHAIN {
        f.add(id, parent)?;
    }
    Ok(f)
}

/// Starts every node, parents first, each child talking to its parent through a
/// proxy with `imp`. Returns the proxies by child id.
pub async fn start_with_proxies(f: &mut Federation, imp: Impairment, seed: u64) -> anyhow::Result<Vec<(String, Proxy)>> {
    let mut proxies = Vec::new();
    let mut ids: Vec<(String, Option<String>)> = f.nodes.values().map(|n| (n.id.clone(), n.parent.clone())).collect();
    ids.sort_by_key(|(id, _)| huijiao_protocol::regions::node_level(id));
    for (i, (id, parent)) in ids.into_iter().enumerate() {
        if let Some(p) = parent {
            let upstream = f.nodes[&p].listen.ok_or_else(|| anyhow::anyhow!("parent {p} not started"))?;
            let proxy = Proxy::start(upstream, seed.wrapping_add(i as u64), imp.clone()).await?;
            f.parent_addr.insert(id.clone(), proxy.addr);
            proxies.push((id.clone(), proxy));
        }
        f.start(&id).await?;
    }
    Ok(proxies)
}

/// Drops one file at every county.
pub fn drop_round(f: &Federation, w: &mut Workload, size: u32) -> anyhow::Result<()> {
    for c in COUNTIES {
        let (name, bytes) = w.next_file(c, size);
        f.node(c).drop_file(&name, &bytes)?;
    }
    Ok(())
}

/// kill -9 of a random node at a random moment, `rounds` times while files keep
/// arriving, each node restarted after; then the audit must pass.
pub async fn kill_nine(seed: u64, rounds: usize, limit: Duration) -> anyhow::Result<Audit> {
    let mut f = chain()?;
    f.start_all().await?;
    let mut w = Workload::new(seed);
    let mut rng = Rng::new(seed ^ 0x9e37);
    let ids: Vec<String> = f.nodes.keys().cloned().collect();
    for round in 0..rounds {
        drop_round(&f, &mut w, 20 + rng.below(100) as u32)?;
        tokio::time::sleep(Duration::from_millis(50 + rng.below(600))).await;
        let victim = ids[rng.below(ids.len() as u64) as usize].clone();
        f.crash(&victim).await;
        tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
        f.start(&victim).await.map_err(|e| e.context(format!("restarting {victim} in round {round} (seed {seed})")))?;
    }
    crate::wait_for("every inbox to be handled", limit, || f.inboxes_empty()).await?;
    let audit = f.converge("000000", 1, limit).await.map_err(|e| e.context(format!("seed {seed}")))?;
    f.stop_all().await?;
    Ok(audit)
}
