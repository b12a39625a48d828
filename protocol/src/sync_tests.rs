//! The sync machines driven deterministically: two in-memory peers, a simulated clock,
//! and a network that drops, duplicates and reorders messages.

use super::*;
use crate::apply::{decide, Decision, Held};
use crate::record::tests::sample;
use std::collections::HashMap;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const CHILD: &str = "420102";
const PARENT: &str = "420100";
const LOG: &str = "0123456789abcdef0123456789abcdef";
/// The simulated clock's start, ms: hop times are believable.
const T0: i64 = 1_700_000_000_000;

/// What the simulated parent checks changes against.
fn checks() -> Checks<'static> {
    Checks { regions: RegionTable::embedded(), today: Date::new(2026, 1, 1).unwrap(), now_ms: T0 + 1_000_000_000, max_skew_ms: 300_000 }
}

/// A child change log: `records` reg_nos, each changed a few times, some withdrawn.
fn child_log(rng: &mut Rng, records: u32, changes: usize) -> Vec<Change> {
    let mut versions: HashMap<String, (u64, bool)> = HashMap::new();
    let mut log = Vec::new();
    while log.len() < changes {
        let n = rng.below(u64::from(records)) as u32;
        let reg_no = format!("4201022024Y{n:04}");
        let (v, withdrawn) = versions.get(&reg_no).copied().unwrap_or((0, false));
        if withdrawn {
            continue;
        }
        let seq = log.len() as u64 + 1;
        let hops = vec![Hop { node: CHILD.into(), accepted_at_ms: T0 + seq as i64 }];
        let withdrawn_so_far = versions.values().filter(|(_, w)| *w).count() as u32;
        let change = if v > 0 && withdrawn_so_far < records / 2 && rng.chance(15) {
            versions.insert(reg_no.clone(), (v + 1, true));
            Change {
                seq,
                hash: withdraw_hash(&reg_no),
                reg_no,
                origin: CHILD.into(),
                version: v + 1,
                op: Op::Withdraw,
                region: CHILD.into(),
                body: None,
                hops,
            }
        } else {
            let mut r = sample();
            r.reg_no = reg_no.clone();
            r.title = format!("第{}版", v + 1);
            let body = r.canonical_json();
            versions.insert(reg_no.clone(), (v + 1, false));
            Change {
                seq,
                hash: sha256(&body),
                reg_no,
                origin: CHILD.into(),
                version: v + 1,
                op: Op::Upsert,
                region: CHILD.into(),
                body: Some(body),
                hops,
            }
        };
        log.push(change);
    }
    log
}

/// What the parent holds: reg_no → (version, withdrawn, hash), and the durable cursor.
#[derive(Default)]
struct ParentStore {
    records: HashMap<String, (u64, bool, [u8; 32])>,
    cursor: u64,
    applied: u64,
}

impl ParentStore {
    /// One transaction: check everything as the downlink and the store do (the shipped
    /// codec, every change, the batch's range), then apply and move the cursor.
    fn apply(&mut self, b: &Batch) -> Result<(u32, u32), PeerRefusal> {
        assert_eq!(b.after, self.cursor, "the session only applies batches at the cursor");
        let changes = decode_payload(b.encoding, b.payload.clone()).map_err(|e| PeerRefusal::new("bad_batch", e.to_string()))?;
        let checked = changes.into_iter().map(|c| checked(CHILD, c, &checks())).collect::<Result<Vec<_>, _>>()?;
        check_batch_range(CHILD, b.after, b.upto, &checked)?;
        let (mut applied, mut dup) = (0, 0);
        for CheckedChange { change: c, .. } in checked {
            // The shipped rule, as the store calls it (one origin here: no conflicts).
            let held = self.records.get(&c.reg_no).map(|r| Held { origin: CHILD, version: r.0, hash: &r.2, withdrawn: r.1, made_at: None });
            match decide(held, &c) {
                Decision::Apply => {
                    self.records.insert(c.reg_no, (c.version, c.op == Op::Withdraw, c.hash));
                    applied += 1;
                }
                Decision::Duplicate => dup += 1,
                Decision::Quarantine(why) => panic!("one origin, increasing versions: {why}"),
            }
        }
        self.cursor = b.upto;
        self.applied += u64::from(applied);
        Ok((applied, dup))
    }
}

struct Net {
    /// (deliver at, to parent?, message)
    queue: Vec<(i64, bool, Message)>,
    drop: u64,
    dup: u64,
    max_delay: u64,
    /// In order in each direction, as on one QUIC stream; otherwise messages overtake
    /// each other (a network worse than any stream).
    ordered: bool,
    /// The last delivery time in each direction (to the child, to the parent).
    last: [i64; 2],
}

impl Net {
    fn send(&mut self, rng: &mut Rng, now: i64, to_parent: bool, msg: Message) {
        let copies = if rng.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            if !rng.chance(self.drop) {
                let mut at = now + 1 + rng.below(self.max_delay) as i64;
                if self.ordered {
                    at = at.max(self.last[usize::from(to_parent)]);
                    self.last[usize::from(to_parent)] = at;
                }
                self.queue.push((at, to_parent, msg.clone()));
            }
        }
    }
}

/// Runs one simulated federation link to completion; returns the simulated time taken.
fn simulate(seed: u64, drop: u64, dup: u64, reconnect_per_mille: u64) -> (i64, u32) {
    let mut rng = Rng(seed);
    let log = child_log(&mut rng, 40, 300);
    let mut expected: HashMap<String, (u64, bool, [u8; 32])> = HashMap::new();
    for c in &log {
        expected.insert(c.reg_no.clone(), (c.version, c.op == Op::Withdraw, c.hash));
    }
    let mut store = ParentStore::default();
    let mut net = Net { queue: Vec::new(), drop, dup, max_delay: 40, ordered: drop == 0 && dup == 0, last: [0; 2] };
    let mut child = ChildSession::new(CHILD, FEATURE_ZSTD, 4, 200).with_log(LOG, log.len() as u64);
    let mut now = T0;
    let mut parent = ParentSession::new(PARENT, CHILD, 0, FEATURE_ZSTD).opened_at(now);
    let mut reconnects = 0u32;
    net.send(&mut rng, now, true, child.hello(now, "sim"));
    for _ in 0..200_000 {
        if store.cursor == log.len() as u64 && child.acked() == store.cursor {
            assert_eq!(store.records, expected, "seed {seed}: the parent holds every record at its latest version");
            assert!(store.applied <= log.len() as u64, "seed {seed}: nothing applied twice");
            return (now - T0, reconnects);
        }
        // A connection loss, or the child's timer finding its parent silent (what the
        // uplink does: drop the connection): both sides start a new session from
        // durable state, the messages of the old one are gone.
        // The parent's own timer closes a session whose Hello never came (lost here).
        let stalled = child.handle_timeout(now).is_err();
        let no_hello = parent.handle_timeout(now).inspect(|r| assert_eq!(r.code, "no_hello", "seed {seed}")).is_some();
        if stalled || no_hello || rng.below(1000) < reconnect_per_mille {
            net.queue.clear();
            parent = ParentSession::new(PARENT, CHILD, 0, FEATURE_ZSTD).opened_at(now);
            child = ChildSession::new(CHILD, FEATURE_ZSTD, 4, 200).with_log(LOG, log.len() as u64);
            net.send(&mut rng, now, true, child.hello(now, "sim"));
            reconnects += 1;
        }
        // Deliver what is due, in delivery-time order.
        net.queue.sort_by_key(|(at, _, _)| *at);
        let due: Vec<(i64, bool, Message)> = {
            let split = net.queue.partition_point(|(at, _, _)| *at <= now);
            net.queue.drain(..split).collect()
        };
        for (_, to_parent, msg) in due {
            if to_parent {
                match parent.handle(msg) {
                    ParentAction::Send(m) => net.send(&mut rng, now, false, m),
                    ParentAction::Resume { log_id, last_seq } => {
                        assert_eq!((log_id.as_str(), last_seq), (LOG, log.len() as u64));
                        let m = parent.resumed(&log_id, store.cursor, 0, [0; 32]);
                        net.send(&mut rng, now, false, m);
                    }
                    ParentAction::Apply(b) => {
                        let (a, d) = store.apply(&b).unwrap_or_else(|r| panic!("seed {seed}: {r}"));
                        let ack = parent.applied(b.upto, a, d, 0);
                        net.send(&mut rng, now, false, ack);
                    }
                    ParentAction::Close(r) => panic!("seed {seed}: parent closed: {r}"),
                    ParentAction::Fetch { .. } => panic!("seed {seed}: the child never fetches"),
                    ParentAction::Health(_) => panic!("seed {seed}: no health reports in this simulation"),
                }
            } else {
                match child.handle(msg, now) {
                    Ok(ChildEvent::Reply(m)) => net.send(&mut rng, now, true, m),
                    Ok(ChildEvent::Rewound { .. }) => panic!("seed {seed}: the child's log was not rewound"),
                    Ok(_) => {}
                    Err(r) => panic!("seed {seed}: child refused: {r}"),
                }
            }
        }
        // The child sends while its window allows, 1 to 5 changes per batch.
        while let Some(after) = child.next_after() {
            let start = after as usize;
            if start >= log.len() {
                break;
            }
            let end = (start + 1 + rng.below(5) as usize).min(log.len());
            let chunk = &log[start..end];
            let (encoding, payload) = encode_payload(chunk, child.agreed_features() & FEATURE_ZSTD != 0);
            let m = child.batch(after, end as u64, chunk.len() as u32, encoding, payload, now);
            net.send(&mut rng, now, true, m);
        }
        // Time moves on, never past the child's timer unnoticed.
        let step = 1 + rng.below(5) as i64;
        let timer = [child.poll_timeout(), parent.poll_timeout()].into_iter().flatten().min();
        now = timer.map_or(now + step, |at| (now + step).min(at.max(now + 1)));
    }
    panic!("seed {seed}: did not converge; parent cursor {} of {}", store.cursor, log.len());
}

#[test]
fn a_perfect_link_converges() {
    for seed in 0..100 {
        let (_, reconnects) = simulate(seed, 0, 0, 0);
        assert_eq!(reconnects, 0, "seed {seed}: a perfect link never stalls");
    }
}

#[test]
fn loss_duplication_and_reordering_converge_exactly_once() {
    for seed in 0..600 {
        simulate(seed, 10, 10, 0);
    }
}

#[test]
fn heavy_loss_and_reconnects_converge() {
    for seed in 1000..1300 {
        simulate(seed, 30, 20, 5);
    }
}

fn hello(min: u16, max: u16, id: &str) -> Message {
    Message::Hello(Hello { magic: MAGIC, min_version: min, max_version: max, node_id: id.into(), features: 0, agent: String::new() })
}

#[test]
fn a_peer_of_another_version_gets_a_clear_refusal() {
    let mut p = ParentSession::new(PARENT, CHILD, 0, 0);
    let ParentAction::Close(r) = p.handle(hello(7, 9, CHILD)) else { panic!() };
    assert_eq!(r.code, "version_mismatch");
    assert!(r.message.contains("7..=9") && r.message.contains("1..=2"), "{r}");
    let mut c = ChildSession::new(CHILD, 0, 1, 100);
    let _ = c.hello(0, "t");
    let err = c.handle(Message::Welcome(Welcome { version: 9, node_id: PARENT.into(), cursor: 0, features: 0 }), 1).unwrap_err();
    assert_eq!(err.code, "version_mismatch");
}

#[test]
fn the_hello_must_match_the_certificate_and_come_first() {
    let mut p = ParentSession::new(PARENT, CHILD, 0, 0);
    let batch = Message::Batch(Batch { after: 0, upto: 1, count: 0, encoding: 0, payload: vec![] });
    assert!(matches!(p.handle(batch), ParentAction::Close(r) if r.code == "unexpected_message"));
    let mut p = ParentSession::new(PARENT, CHILD, 0, 0);
    assert!(matches!(p.handle(hello(1, 1, "420103")), ParentAction::Close(r) if r.code == "identity_mismatch"));
    let mut bad_magic = hello(1, 1, CHILD);
    if let Message::Hello(h) = &mut bad_magic {
        h.magic = 1;
    }
    assert!(matches!(p.handle(bad_magic), ParentAction::Close(r) if r.code == "bad_hello"));
}

#[test]
fn children_must_lie_inside_the_jurisdiction_and_on_the_list() {
    let t = RegionTable::embedded();
    assert!(authorize_child("420100", "420102", None, t).is_ok());
    assert!(authorize_child("420000", "429004", None, t).is_ok(), "a 省直辖县 under its province");
    assert!(authorize_child("000000", "420000", None, t).is_ok());
    assert_eq!(authorize_child("420100", "420202", None, t).unwrap_err().code, "outside_jurisdiction");
    assert_eq!(authorize_child("420100", "420100", None, t).unwrap_err().code, "outside_jurisdiction");
    // Skipping a tier needs the parent's explicit list.
    assert_eq!(authorize_child("000000", "420100", None, t).unwrap_err().code, "not_immediate_child");
    assert_eq!(authorize_child("420000", "420102", None, t).unwrap_err().code, "not_immediate_child");
    assert!(authorize_child("000000", "420100", Some(&["420100".to_string()]), t).is_ok());
    let list = vec!["420103".to_string()];
    assert_eq!(authorize_child("420100", "420102", Some(&list), t).unwrap_err().code, "not_allowed");
}

#[test]
fn changes_are_checked_for_jurisdiction_provenance_and_integrity() {
    let mut rng = Rng(1);
    let good = child_log(&mut rng, 3, 1).remove(0);
    let check = |node: &str, c: &Change| check_change(node, &mut c.clone(), &checks());
    assert!(!check(CHILD, &good).unwrap().1, "nothing corrected");
    let mut c = good.clone();
    c.region = "420103".into();
    c.reg_no = format!("420103{}", &c.reg_no[6..]);
    assert_eq!(check(CHILD, &c).unwrap_err().code, "outside_jurisdiction");
    let mut c = good.clone();
    c.body.as_mut().unwrap().push(b' ');
    assert_eq!(check(CHILD, &c).unwrap_err().code, "bad_change");
    let mut c = good.clone();
    c.hops.clear();
    assert_eq!(check(CHILD, &c).unwrap_err().code, "bad_change");
    // A prefecture may forward its counties' changes.
    let mut c = good;
    c.hops.push(Hop { node: PARENT.into(), accepted_at_ms: T0 + 9 });
    assert!(check(PARENT, &c).is_ok());
    assert_eq!(check("420200", &c).unwrap_err().code, "outside_jurisdiction");
}

/// A change of `r` from the county, as a hostile child may forge it.
fn change_of(r: &Record) -> Change {
    let body = r.canonical_json();
    Change {
        seq: 1,
        hash: sha256(&body),
        reg_no: r.reg_no.clone(),
        origin: CHILD.into(),
        version: 1,
        op: Op::Upsert,
        region: CHILD.into(),
        body: Some(body),
        hops: vec![Hop { node: CHILD.into(), accepted_at_ms: T0 }],
    }
}

#[test]
fn a_childs_records_meet_every_rule_of_the_format() {
    let refused = |r: &Record| check_change(CHILD, &mut change_of(r), &checks()).unwrap_err();
    assert!(check_change(CHILD, &mut change_of(&sample()), &checks()).is_ok());
    for (broken, rule) in [
        (Record { title: String::new(), ..sample() }, "missing_field in field title"),
        (Record { persons: vec![], ..sample() }, "missing_field in field persons"),
        (Record { reg_date: Date::new(2019, 3, 5).unwrap(), ..sample() }, "in field reg_no"),
        (Record { title: "长".repeat(101), ..sample() }, "in field title"),
        (Record { discipline: "41".into(), ..sample() }, "in field discipline"),
        (Record { trl: Some(12), ..sample() }, "in field trl"),
        (Record { persons: vec!["张三;李四".into()], ..sample() }, "not_canonical in field persons"),
        (Record { reg_date: Date::new(2027, 1, 1).unwrap(), reg_no: "4201022027Y0001".into(), ..sample() }, "date_in_future"),
    ] {
        let e = refused(&broken);
        assert_eq!(e.code, "bad_change", "{rule}");
        assert!(e.message.contains(rule), "{rule}: {}", e.message);
    }
}

#[test]
fn provenance_is_bounded_ordered_and_numbers_fit_the_store() {
    let base = change_of(&sample());
    let check = |c: &Change| {
        let mut c = c.clone();
        check_change(CHILD, &mut c, &checks()).map(|(_, corrected)| (c, corrected))
    };
    // 100,000 hops, or a middle hop naming any node: refused.
    let mut c = base.clone();
    c.hops = (0..100_000).map(|_| Hop { node: CHILD.into(), accepted_at_ms: T0 }).collect();
    assert_eq!(check(&c).unwrap_err().code, "bad_change");
    let mut c = base.clone();
    c.hops.insert(0, Hop { node: CHILD.into(), accepted_at_ms: T0 });
    c.hops[1].node = "440106".into();
    c.hops.push(Hop { node: CHILD.into(), accepted_at_ms: T0 });
    assert_eq!(check(&c).unwrap_err().code, "bad_change");
    // Up the tree: county → prefecture → province, and a 省直辖县 straight to its province.
    let mut c = base.clone();
    c.hops.extend([Hop { node: "420100".into(), accepted_at_ms: T0 + 1 }, Hop { node: "420000".into(), accepted_at_ms: T0 + 2 }]);
    assert!(check_change("420000", &mut c.clone(), &checks()).is_ok());
    let mut r = sample();
    r.region = "429004".into();
    r.reg_no = "4290042024Y0001".into();
    let mut c = change_of(&r);
    c.origin = "429004".into();
    c.region = "429004".into();
    c.hops = vec![Hop { node: "429004".into(), accepted_at_ms: T0 }, Hop { node: "420000".into(), accepted_at_ms: T0 + 1 }];
    assert!(check_change("420000", &mut c.clone(), &checks()).is_ok());
    // Times: one from before the hop below, from 1677 or from the future is the
    // parent's receipt time instead, and says so.
    for t in [i64::MIN, 0, T0 - 1, checks().now_ms + checks().max_skew_ms + 1] {
        let mut c = base.clone();
        c.hops[0].accepted_at_ms = t;
        let (fixed, corrected) = check(&c).unwrap();
        if t == T0 - 1 {
            assert!(!corrected, "a believable time stays");
            continue;
        }
        assert!(corrected, "{t}");
        assert_eq!(fixed.hops[0].accepted_at_ms, checks().now_ms);
    }
    let mut c = base.clone();
    c.hops.push(Hop { node: "420100".into(), accepted_at_ms: T0 - 5 });
    let mut later = c.clone();
    let (_, corrected) = check_change("420100", &mut later, &checks()).unwrap();
    assert!(corrected && later.hops[1].accepted_at_ms == checks().now_ms, "a hop before the one below it");
    // Numbers past what the store holds.
    let mut c = base.clone();
    c.version = u64::MAX;
    assert_eq!(check(&c).unwrap_err().code, "bad_change");
    let mut c = base.clone();
    c.seq = u64::MAX;
    assert_eq!(check(&c).unwrap_err().code, "bad_change");
    assert_eq!(check_batch_range(CHILD, 0, u64::MAX, &[]).unwrap_err().code, "bad_batch");
    let mut p = ParentSession::new(PARENT, CHILD, 0, 0);
    let _ = p.handle(hello(1, 1, CHILD));
    let big = Batch { after: 0, upto: u64::MAX, count: 0, encoding: 0, payload: vec![] };
    assert!(matches!(p.handle(Message::Batch(big)), ParentAction::Close(r) if r.code == "bad_batch"));
}

#[test]
fn a_rewound_store_starts_a_new_log_and_sends_it_all() {
    let mut parent = ParentSession::new(PARENT, CHILD, 0, 0);
    // The parent holds this log up to 100; the child, restored from an old copy, has 5.
    let mut child = ChildSession::new(CHILD, 0, 2, 100).with_log(LOG, 5);
    let ParentAction::Send(welcome) = parent.handle(child.hello(0, "t")) else { panic!() };
    let Ok(ChildEvent::Reply(resume)) = child.handle(welcome, 1) else { panic!("version 2 resumes") };
    let ParentAction::Resume { log_id, last_seq } = parent.handle(resume) else { panic!() };
    assert_eq!((log_id.as_str(), last_seq), (LOG, 5));
    let answer = parent.resumed(&log_id, 100, 100, [7; 32]);
    assert_eq!(child.handle(answer, 2), Ok(ChildEvent::Rewound { parent_cursor: 100, last_seq: 5 }));
    assert_eq!(child.next_after(), None, "nothing is sent against a cursor the child cannot have");
    let fresh = "fedcba9876543210fedcba9876543210";
    let ParentAction::Resume { log_id, .. } = parent.handle(child.restart_log(fresh, 3)) else { panic!() };
    assert_eq!(log_id, fresh);
    let answer = parent.resumed(&log_id, 0, 0, [0; 32]);
    assert!(matches!(child.handle(answer, 4), Ok(ChildEvent::Ready { cursor: 0, version: 2, .. })));
    assert_eq!(child.next_after(), Some(0), "the whole new log goes up");
    assert_eq!(parent.log_id(), fresh);
}

#[test]
fn a_version_1_child_still_works_and_batches_wait_for_resume() {
    let mut p = ParentSession::new(PARENT, CHILD, 42, 0);
    let ParentAction::Send(Message::Welcome(w)) = p.handle(hello(1, 1, CHILD)) else { panic!() };
    assert_eq!((w.version, w.cursor), (1, 42));
    let mut p = ParentSession::new(PARENT, CHILD, 42, 0);
    let ParentAction::Send(Message::Welcome(w)) = p.handle(hello(1, 2, CHILD)) else { panic!() };
    assert_eq!(w.version, 2);
    let batch = Message::Batch(Batch { after: 0, upto: 1, count: 1, encoding: 0, payload: vec![] });
    assert!(matches!(p.handle(batch), ParentAction::Close(r) if r.code == "unexpected_message"));
    let mut p = ParentSession::new(PARENT, CHILD, 0, 0);
    p.handle(hello(1, 2, CHILD));
    let bad = Message::Resume(Resume { log_id: "nothex".into(), last_seq: 1 });
    assert!(matches!(p.handle(bad), ParentAction::Close(r) if r.code == "bad_resume"));
}

#[test]
fn a_rewound_store_that_grew_past_the_cursor_is_caught_by_the_fingerprint() {
    let mut parent = ParentSession::new(PARENT, CHILD, 0, 0);
    // Restored from an old copy and then grown to 120 changes; the parent holds 100
    // of the old log, whose change 100 differs from the store's change 100 now.
    let mut child = ChildSession::new(CHILD, 0, 2, 100).with_log(LOG, 120);
    let ParentAction::Send(welcome) = parent.handle(child.hello(0, "t")) else { panic!() };
    let Ok(ChildEvent::Reply(resume)) = child.handle(welcome, 1) else { panic!() };
    let ParentAction::Resume { log_id, .. } = parent.handle(resume) else { panic!() };
    let held = fingerprint("4201022024Y0001", 1, Op::Upsert, &[1; 32]);
    let answer = parent.resumed(&log_id, 100, 100, held);
    assert_eq!(child.handle(answer, 2), Ok(ChildEvent::Verify { seq: 100, fingerprint: held }));
    assert_eq!(child.verified(false, 3), ChildEvent::Rewound { parent_cursor: 100, last_seq: 120 });
    // The same change there: the log goes on from the cursor.
    let mut child = ChildSession::new(CHILD, 0, 2, 100).with_log(LOG, 120);
    let mut parent = ParentSession::new(PARENT, CHILD, 0, 0);
    let ParentAction::Send(welcome) = parent.handle(child.hello(0, "t")) else { panic!() };
    let Ok(ChildEvent::Reply(resume)) = child.handle(welcome, 1) else { panic!() };
    let ParentAction::Resume { log_id, .. } = parent.handle(resume) else { panic!() };
    child.handle(parent.resumed(&log_id, 100, 100, held), 2).unwrap();
    assert!(matches!(child.verified(true, 3), ChildEvent::Ready { cursor: 100, .. }));
}

#[test]
fn health_reports_only_when_agreed_and_only_of_the_childs_subtree() {
    let report = |nodes: &[&str]| {
        Message::Health(Health { nodes: nodes.iter().map(|n| NodeHealth { node: n.to_string(), ..NodeHealth::default() }).collect() })
    };
    let hello_with = |features: u32| match hello(1, 2, CHILD) {
        Message::Hello(h) => Message::Hello(Hello { features, ..h }),
        _ => unreachable!(),
    };
    // Not agreed: the parent does not offer it.
    let mut p = ParentSession::new(PARENT, CHILD, 0, 0);
    p.handle(hello_with(FEATURE_HEALTH));
    assert!(matches!(p.handle(report(&[CHILD])), ParentAction::Close(r) if r.code == "unexpected_message"));
    // Not agreed: the child does not offer it.
    let mut p = ParentSession::new(PARENT, CHILD, 0, FEATURE_HEALTH);
    p.handle(hello_with(0));
    assert!(matches!(p.handle(report(&[CHILD])), ParentAction::Close(r) if r.code == "unexpected_message"));
    // Agreed: the child's own subtree only.
    let mut p = ParentSession::new(PARENT, CHILD, 0, FEATURE_HEALTH | FEATURE_ZSTD);
    match p.handle(hello_with(FEATURE_HEALTH)) {
        ParentAction::Send(Message::Welcome(w)) => assert_eq!(w.features, FEATURE_HEALTH),
        other => panic!("{other:?}"),
    }
    assert!(matches!(p.handle(report(&[CHILD])), ParentAction::Health(h) if h.nodes.len() == 1));
    assert!(matches!(p.handle(report(&[CHILD, "440106"])), ParentAction::Close(r) if r.code == "outside_jurisdiction"));
}

#[test]
fn conflict_notes_only_when_agreed_and_only_about_the_childs_subtree() {
    let note = |origin: &str, kept: &str| ConflictNote {
        reg_no: "x".into(),
        origin: origin.into(),
        kept_origin: kept.into(),
        met_at: PARENT.into(),
        ..ConflictNote::default()
    };
    let welcome = |features: u32| Message::Welcome(Welcome { version: 1, node_id: PARENT.into(), cursor: 0, features });
    let mut c = ChildSession::new(CHILD, FEATURE_NOTES, 1, 100);
    let _ = c.hello(0, "t");
    c.handle(welcome(0), 0).unwrap();
    let notes = |v: Vec<ConflictNote>| Message::Notes(Notes { conflicts: v });
    assert_eq!(c.handle(notes(vec![note(CHILD, "440106")]), 0).unwrap_err().code, "unexpected_message", "not agreed");
    let mut c = ChildSession::new(CHILD, FEATURE_NOTES, 1, 100);
    let _ = c.hello(0, "t");
    c.handle(welcome(FEATURE_NOTES), 0).unwrap();
    assert!(matches!(c.handle(notes(vec![note(CHILD, "440106")]), 0), Ok(ChildEvent::Notes(n)) if n.conflicts.len() == 1));
    assert!(matches!(c.handle(notes(vec![note("440106", CHILD)]), 0), Ok(ChildEvent::Notes(_))), "the kept side learns too");
    assert_eq!(c.handle(notes(vec![note("440106", "110105")]), 0).unwrap_err().code, "bad_notes");
}

#[test]
fn a_batch_holds_only_its_own_range_from_its_own_child() {
    let mut rng = Rng(3);
    let log = child_log(&mut rng, 5, 4);
    let checked: Vec<CheckedChange> = log.iter().map(|c| super::checked(CHILD, c.clone(), &checks()).unwrap()).collect();
    assert!(check_batch_range(CHILD, 0, 4, &checked).is_ok());
    assert_eq!(check_batch_range(CHILD, 1, 4, &checked).unwrap_err().code, "bad_batch", "seq 1 is before the range");
    assert_eq!(check_batch_range(CHILD, 0, 3, &checked).unwrap_err().code, "bad_batch", "seq 4 is after it");
    assert_eq!(check_batch_range("420106", 0, 4, &checked).unwrap_err().code, "bad_batch", "another child's changes");
}

#[test]
fn the_parent_times_out_a_child_that_never_says_hello() {
    let mut p = ParentSession::new(PARENT, CHILD, 0, 0).opened_at(1_000);
    assert_eq!(p.poll_timeout(), Some(1_000 + HELLO_DEADLINE_MS));
    assert_eq!(p.handle_timeout(1_000 + HELLO_DEADLINE_MS - 1), None);
    assert_eq!(p.handle_timeout(1_000 + HELLO_DEADLINE_MS).unwrap().code, "no_hello");
    let mut p = ParentSession::new(PARENT, CHILD, 0, 0).opened_at(1_000);
    assert!(matches!(p.handle(hello(1, 2, CHILD)), ParentAction::Send(_)));
    assert_eq!(p.poll_timeout(), None, "a Hello disarms the timer");
    assert_eq!(p.handle_timeout(i64::MAX), None);
}

#[test]
fn a_childs_volume_is_held_back_never_refused() {
    let day = Date::new(2026, 3, 1).unwrap();
    let limits = VolumeLimits { per_day: 1000, per_minute: 600 };
    let mut v = Volume::new(day, 0, limits);
    assert_eq!(v.admit(600, day, 0, limits), Admit::Now, "a minute's worth at once");
    // Ten more a second after: 10 tokens back (10 a second).
    assert_eq!(v.admit(10, day, 1_000, limits), Admit::Now);
    assert_eq!(v.admit(50, day, 1_000, limits), Admit::After(5_000), "wait for 50 tokens");
    assert!(matches!(v.admit(300, day, 1_000, limits), Admit::Hold(r) if r.contains("a minute")), "too long a wait");
    assert_eq!(v.admit(300, day, 61_000, limits), Admit::Now);
    // The daily bound: 910 so far; 100 more would pass 1000.
    assert!(matches!(v.admit(100, day, 200_000, limits), Admit::Hold(r) if r.contains("daily bound of 1000")));
    assert_eq!(v.admit(90, day, 200_000, limits), Admit::Now);
    // A new day starts afresh.
    let next = Date::new(2026, 3, 2).unwrap();
    assert_eq!(v.admit(600, next, 300_000, limits), Admit::Now);
}
