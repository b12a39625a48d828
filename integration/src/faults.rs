//! A UDP proxy between a child and its parent that drops, delays, duplicates and
//! reorders datagrams, and can black-hole the link (a partition). Every decision comes
//! from a seeded generator, so a failing run can be replayed with the same seed.

use huijiao_kit::synth::Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

/// What the link does to each datagram.
#[derive(Debug, Clone, Default)]
pub struct Impairment {
    /// Probability a datagram is lost.
    pub drop: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Each copy is delayed uniformly in this range (ms); different delays reorder.
    pub delay_ms: (u64, u64),
    /// Everything is lost, both ways.
    pub partitioned: bool,
}

impl Impairment {
    /// Loss, duplication and reordering of the size the fault tests use.
    pub fn lossy(drop: f64) -> Impairment {
        Impairment { drop, duplicate: 0.05, delay_ms: (0, 20), partitioned: false }
    }
}

/// Datagram counters, both directions together.
#[derive(Debug, Default)]
pub struct Stats {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
}

/// A running proxy: the child talks to [`Proxy::addr`], the proxy to the parent.
pub struct Proxy {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    control: Arc<Mutex<(Impairment, Rng)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr, seed: u64, imp: Impairment) -> anyhow::Result<Proxy> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        back.connect(upstream).await?;
        let addr = front.local_addr()?;
        let control = Arc::new(Mutex::new((imp, Rng::new(seed))));
        let stats = Arc::new(Stats::default());
        let (c, st) = (control.clone(), stats.clone());
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            let (mut up, mut down) = (vec![0u8; 65_536], vec![0u8; 65_536]);
            loop {
                tokio::select! {
                    r = front.recv_from(&mut up) => {
                        let Ok((n, from)) = r else { continue };
                        client = Some(from);
                        forward(&c, &st, back.clone(), None, up[..n].to_vec());
                    }
                    r = back.recv(&mut down) => {
                        let Ok(n) = r else { continue };
                        if let Some(to) = client {
                            forward(&c, &st, front.clone(), Some(to), down[..n].to_vec());
                        }
                    }
                }
            }
        });
        Ok(Proxy { addr, stats, control, task })
    }

    /// Changes the impairment from now on.
    pub fn set(&self, f: impl FnOnce(&mut Impairment)) {
        f(&mut self.control.lock().expect("proxy control").0);
    }

    pub fn partition(&self, on: bool) {
        self.set(|i| i.partitioned = on);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn forward(control: &Mutex<(Impairment, Rng)>, stats: &Stats, sock: Arc<UdpSocket>, to: Option<SocketAddr>, data: Vec<u8>) {
    let delays: Vec<u64> = {
        let mut g = control.lock().expect("proxy control");
        let (imp, rng) = &mut *g;
        if imp.partitioned || rng.chance(imp.drop) {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let copies = if rng.chance(imp.duplicate) {
            stats.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        let (lo, hi) = imp.delay_ms;
        (0..copies).map(|_| lo + rng.below(hi.saturating_sub(lo) + 1)).collect()
    };
    for delay in delays {
        stats.forwarded.fetch_add(1, Ordering::Relaxed);
        let (sock, data) = (sock.clone(), data.clone());
        let send = async move {
            let _ = match to {
                Some(a) => sock.send_to(&data, a).await,
                None => sock.send(&data).await,
            };
        };
        if delay == 0 {
            tokio::spawn(send);
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                send.await;
            });
        }
    }
}
