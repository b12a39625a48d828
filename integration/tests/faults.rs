//! Fault injection with real node processes: kill -9, lossy/duplicating/reordering
//! links, a partition, a parent down for a while, and a county with a clock far off.
//! Each run is driven by a seed (HUIJIAO_FAULT_SEED to replay one) and ends with the
//! audit: 0 lost, 0 duplicated, every record at its latest version.

use huijiao_kit::synth::Rng;
use integration::faults::Impairment;
use integration::scenarios::{self, chain, drop_round, start_with_proxies, COUNTIES};
use integration::wait_for;
use integration::workload::Workload;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);

fn seed() -> u64 {
    std::env::var("HUIJIAO_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_126)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_of_random_nodes_at_random_moments() {
    let seed = seed();
    let audit = scenarios::kill_nine(seed, 6, LIMIT).await.unwrap();
    assert!(audit.ok() && audit.expected > 100, "seed {seed}: {}", audit.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_loss_with_reordering_and_duplication_on_every_link() {
    let seed = seed() + 1;
    let mut f = chain().unwrap();
    let proxies = start_with_proxies(&mut f, Impairment::lossy(0.10), seed).await.unwrap();
    let mut w = Workload::new(seed);
    for _ in 0..4 {
        drop_round(&f, &mut w, 60).unwrap();
    }
    let audit = f.converge("000000", 200, LIMIT).await.unwrap();
    assert!(audit.ok(), "seed {seed}: {}", audit.summary());
    for (child, p) in &proxies {
        let dropped = p.stats.dropped.load(std::sync::atomic::Ordering::Relaxed);
        assert!(dropped > 0, "the link from {child} lost nothing: the test did not test");
    }
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_prefecture_drains_its_backlog_after_healing() {
    let seed = seed() + 2;
    let mut f = chain().unwrap();
    let proxies = start_with_proxies(&mut f, Impairment::default(), seed).await.unwrap();
    let link = &proxies.iter().find(|(c, _)| c == "420100").unwrap().1;
    let mut w = Workload::new(seed);
    drop_round(&f, &mut w, 30).unwrap();
    f.converge("000000", 60, LIMIT).await.unwrap();

    link.partition(true);
    let before = f.node("000000").record_count();
    for _ in 0..3 {
        drop_round(&f, &mut w, 40).unwrap();
    }
    // Ingest goes on below the partition: the prefecture fills up, the top does not.
    wait_for("the counties' files at the prefecture", LIMIT, || {
        f.inboxes_empty() && f.node("420100").record_count() >= 2 * 60 + 2 * 3 * 40 - 60
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let national_during = f.node("000000").record_count();
    let from_429004 = f.node("429004").record_count();
    assert!(national_during - before <= from_429004, "nothing of the prefecture's backlog crossed the partition");
    link.partition(false);
    let audit = f.converge("000000", 300, LIMIT).await.unwrap();
    assert!(audit.ok(), "seed {seed}: {}", audit.summary());
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_catches_up_after_its_parent_was_down() {
    let seed = seed() + 3;
    let mut f = chain().unwrap();
    f.start_all().await.unwrap();
    let mut w = Workload::new(seed);
    drop_round(&f, &mut w, 30).unwrap();
    f.converge("000000", 60, LIMIT).await.unwrap();
    f.crash("420100").await;
    let mut rng = Rng::new(seed);
    for _ in 0..4 {
        drop_round(&f, &mut w, 20 + rng.below(60) as u32).unwrap();
    }
    // The counties keep ingesting while their parent is down.
    wait_for("the counties to ingest while the parent is down", LIMIT, || f.inboxes_empty()).await.unwrap();
    let held_below = f.node("420102").record_count() + f.node("420103").record_count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.start("420100").await.unwrap();
    let audit = f.converge("000000", held_below as usize, LIMIT).await.unwrap();
    assert!(audit.ok(), "seed {seed}: {}", audit.summary());
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counties_with_clocks_hours_off_keep_order_and_provenance() {
    let seed = seed() + 4;
    let mut f = chain().unwrap();
    let skew: [(&str, i64); 2] = [("420102", 5 * 3600), ("420103", -5 * 3600)];
    for (c, s) in skew {
        f.nodes.get_mut(c).unwrap().env.push(("HUIJIAO_CLOCK_SKEW_SECS".into(), s.to_string()));
    }
    f.start_all().await.unwrap();
    let mut w = Workload::new(seed);
    for _ in 0..8 {
        drop_round(&f, &mut w, 25).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let audit = f.converge("000000", 100, LIMIT).await.unwrap();
    assert!(audit.ok(), "seed {seed}: {}", audit.summary());
    let now = huijiao::clock::now_ms();
    let national = f.node("000000").records();
    for (county, s) in skew {
        let mine: Vec<_> = national.values().filter(|r| r.origin == county).collect();
        assert!(!mine.is_empty());
        assert!(mine.iter().any(|r| r.version > 1 || r.withdrawn), "{county}: no updates or withdrawals exercised");
        for r in mine {
            let nodes: Vec<&str> = r.hops.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(nodes, vec![county, "420100", "420000", "000000"], "{}", r.record.reg_no);
            // The county stamps its own (wrong) clock; every other hop is right. A time in
            // the future is not believed: the prefecture puts its own receipt time there.
            let off = r.hops[0].1 - r.hops[1].1;
            let expected = if s > 0 { 0 } else { s * 1000 };
            assert!((off - expected).abs() < 120_000, "{}: county hop {off} ms off, clock skew {s} s", r.record.reg_no);
            assert!((r.hops[3].1 - now).abs() < 600_000, "the national hop uses the national clock");
        }
    }
    for c in COUNTIES {
        assert!(f.node(c).record_count() > 0);
    }
    // The prefecture says whose clock runs ahead.
    let children = f.node("420100").reader().unwrap().children().unwrap();
    let corrections = |c: &str| children.iter().find(|x| x.child == c).map_or(0, |x| x.clock_corrections);
    assert!(corrections("420102") > 0, "{children:?}");
    assert_eq!(corrections("420103"), 0, "a clock behind is believable");
    f.stop_all().await.unwrap();
}
