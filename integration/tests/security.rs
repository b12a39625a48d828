//! Each hostile or misconfigured peer is refused with the right error, logged, and
//! nothing of what it sent is applied — while a well-behaved sibling keeps syncing.

use huijiao_kit::synth::{self, Generator};
use huijiao_protocol::record::{sha256, withdraw_hash};
use huijiao_protocol::wire::{self, Batch, Change, Hop, Message, Op};
use integration::{wait_for, Federation, RawClient};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

struct Setup {
    f: Federation,
    addr: std::net::SocketAddr,
    certs: std::path::PathBuf,
}

/// national ← prefecture 420100 ← county 420102 (well-behaved), and spare
/// certificates for hostile peers.
async fn setup() -> Setup {
    let mut f = Federation::new().unwrap();
    for (id, parent) in [("000000", None), ("420100", Some("000000")), ("420102", Some("420100"))] {
        f.add(id, parent).unwrap();
    }
    f.allow.insert("420100".into(), vec!["420102".into(), "420103".into(), "420104".into(), "420105".into()]);
    // A prefecture straight under the national node: it must be listed there.
    f.allow.insert("000000".into(), vec!["420100".into()]);
    f.start_all().await.unwrap();
    let certs = f.root.path().join("spare");
    for id in ["420103", "420104", "420105"] {
        huijiao::pki::issue(&f.ca, id, &certs, 30).unwrap();
    }
    let addr = f.node("420100").listen.unwrap();
    Setup { f, addr, certs }
}

async fn raw(s: &Setup, id: &str) -> anyhow::Result<RawClient> {
    RawClient::connect(&s.f.ca, &s.certs.join(format!("{id}.crt")), &s.certs.join(format!("{id}.key")), id, s.addr, "420100").await
}

/// The sibling still syncs: a new file at 420102 reaches the national node.
async fn sibling_syncs(s: &Setup, serial: u32) {
    let today = huijiao::clock::today();
    let rec = Generator::new(u64::from(serial)).record("420102", serial, today);
    s.f.node("420102").drop_file(&format!("s{serial}.jsonl"), &synth::jsonl(std::slice::from_ref(&rec))).unwrap();
    wait_for("the sibling's record at the national node", LIMIT, || s.f.node("000000").records().contains_key(&rec.reg_no)).await.unwrap();
}

fn refused(m: Message) -> wire::PeerRefusal {
    match m {
        Message::Refused(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn change(seq: u64, region: &str, serial: u32, sender: &str) -> Change {
    let today = huijiao::clock::today();
    let rec = Generator::new(7).record(region, serial, today);
    let body = rec.canonical_json();
    Change {
        seq,
        reg_no: rec.reg_no.clone(),
        origin: region.into(),
        version: 1,
        op: Op::Upsert,
        region: region.into(),
        hash: sha256(&body),
        body: Some(body),
        hops: vec![Hop { node: sender.into(), accepted_at_ms: 1 }],
    }
}

fn batch(after: u64, changes: &[Change]) -> Message {
    let upto = changes.last().map_or(after + 1, |c| c.seq);
    Message::Batch(Batch {
        after,
        upto,
        count: changes.len() as u32,
        encoding: wire::ENCODING_PLAIN,
        payload: wire::encode_changes(changes),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_misconfigured_peers_are_refused() {
    let mut s = setup().await;
    sibling_syncs(&s, 1).await;

    // A certificate from another CA: the handshake fails.
    let rogue_ca = s.f.root.path().join("rogue-ca");
    huijiao::pki::init(&rogue_ca).unwrap();
    let rogue = s.f.root.path().join("rogue");
    huijiao::pki::issue(&rogue_ca, "420103", &rogue, 30).unwrap();
    let r = RawClient::connect(&s.f.ca, &rogue.join("420103.crt"), &rogue.join("420103.key"), "420103", s.addr, "420100").await;
    let err = match r {
        Err(e) => format!("{e:#}"),
        Ok(mut c) => format!("{:#}", c.recv().await.unwrap_err()),
    };
    assert!(err.contains("invalid peer certificate"), "wrong CA: {err}");

    // An expired certificate.
    let old = s.f.root.path().join("old");
    let now = huijiao::clock::now_ms() / 1000;
    huijiao::pki::issue_between(&s.f.ca, "420103", &old, now - 40 * 86_400, now - 86_400).unwrap();
    let r = RawClient::connect(&s.f.ca, &old.join("420103.crt"), &old.join("420103.key"), "420103", s.addr, "420100").await;
    let err = match r {
        Err(e) => format!("{e:#}"),
        Ok(mut c) => format!("{:#}", c.recv().await.unwrap_err()),
    };
    assert!(err.contains("certificate expired"), "expired certificate: {err}");

    // A child that starts its Hello and never finishes it: refused when the parent
    // session's own timer fires (the slot is not held).
    let mut c = raw(&s, "420103").await.unwrap();
    c.send_raw(&[0, 0]).await.unwrap();
    assert_eq!(refused(c.recv().await.unwrap()).code, "no_hello");

    // Another protocol version.
    let mut c = raw(&s, "420103").await.unwrap();
    c.send(&RawClient::hello("420103", 99, 99)).await.unwrap();
    let r = refused(c.recv().await.unwrap());
    assert_eq!(r.code, "version_mismatch");
    assert!(r.message.contains("99"), "{r}");

    // A county certificate presented under another county's name.
    let mut c = raw(&s, "420103").await.unwrap();
    c.send(&RawClient::hello("420104", 1, 1)).await.unwrap();
    assert_eq!(refused(c.recv().await.unwrap()).code, "identity_mismatch");

    // Records outside the sender's jurisdiction: the whole batch is refused, nothing applied.
    let mut c = raw(&s, "420103").await.unwrap();
    c.send(&RawClient::hello("420103", 1, 1)).await.unwrap();
    let Message::Welcome(w) = c.recv().await.unwrap() else { panic!("no welcome") };
    let good = change(w.cursor + 1, "420103", 1, "420103");
    let bad = change(w.cursor + 2, "420104", 2, "420103");
    c.send(&batch(w.cursor, &[good.clone(), bad])).await.unwrap();
    let r = refused(c.recv().await.unwrap());
    assert_eq!(r.code, "outside_jurisdiction", "{r}");
    assert!(r.message.contains("420104") && r.message.contains("420103"), "{r}");
    assert!(!s.f.node("420100").records().contains_key(&good.reg_no), "nothing of a refused batch is applied");

    // A withdrawal with a forged hash is refused too.
    let mut c = raw(&s, "420103").await.unwrap();
    c.send(&RawClient::hello("420103", 1, 1)).await.unwrap();
    let Message::Welcome(w) = c.recv().await.unwrap() else { panic!("no welcome") };
    let mut forged = change(w.cursor + 1, "420103", 3, "420103");
    forged.op = Op::Withdraw;
    forged.body = None;
    assert_ne!(forged.hash, withdraw_hash(&forged.reg_no));
    c.send(&batch(w.cursor, &[forged])).await.unwrap();
    assert_eq!(refused(c.recv().await.unwrap()).code, "bad_change");

    // Garbage bytes.
    let mut c = raw(&s, "420103").await.unwrap();
    c.send_raw(&[9, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff, 0x01]).await.unwrap();
    let r = refused(c.recv().await.unwrap());
    assert_eq!(r.code, "bad_frame", "{r}");

    // An oversized frame: refused from its length prefix alone.
    let mut c = raw(&s, "420103").await.unwrap();
    c.send_raw(&((wire::MAX_FRAME as u32) + 1).to_le_bytes()).await.unwrap();
    let r = refused(c.recv().await.unwrap());
    assert!(r.code == "bad_frame" && r.message.contains("exceeds"), "{r}");

    // A revoked certificate: a live connection is closed, a new one fails.
    let mut c = raw(&s, "420104").await.unwrap();
    c.send(&RawClient::hello("420104", 1, 1)).await.unwrap();
    assert!(matches!(c.recv().await.unwrap(), Message::Welcome(_)));
    huijiao::pki::revoke(&s.f.ca, huijiao::pki::RevokeTarget::Node("420104".into())).unwrap();
    let closed = tokio::time::timeout(LIMIT, c.conn.closed()).await.expect("revoked connection not closed");
    assert!(format!("{closed}").contains("revoked"), "{closed}");
    let r = raw(&s, "420104").await;
    let err = match r {
        Err(e) => format!("{e:#}"),
        Ok(mut c) => {
            let _ = c.send(&RawClient::hello("420104", 1, 1)).await;
            format!("{:#}", c.recv().await.unwrap_err())
        }
    };
    assert!(err.contains("Revoked"), "revoked certificate: {err}");

    // Through all of this the well-behaved sibling kept syncing.
    sibling_syncs(&s, 2).await;
    let log = s.f.node("420100").reader().unwrap().children().unwrap();
    assert!(log.iter().any(|c| c.child == "420103" && c.last_error.as_deref().is_some_and(|e| e.contains("refused"))), "{log:?}");
    s.f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfigured_nodes_are_stopped_or_refused_visibly() {
    let mut s = setup().await;
    // A county certificate used from another county's config: the node will not start.
    s.f.add("420103", Some("420100")).unwrap();
    let err =
        s.f.start_with("420103", |t| {
            *t = t.replace("tls/420103.crt", "../node-420102/tls/420102.crt").replace("tls/420103.key", "../node-420102/tls/420102.key")
        })
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("names node 420102"), "{err:#}");

    // A child outside the parent's allow-list is refused; the child's status says why.
    s.f.add("420106", Some("420100")).unwrap();
    s.f.start("420106").await.unwrap();
    let child = s.f.node("420106");
    wait_for("the refusal to be recorded at the child", LIMIT, || {
        child
            .reader()
            .ok()
            .and_then(|r| r.uplink().ok().flatten())
            .is_some_and(|u| u.state == "refused" && u.last_error.as_deref().is_some_and(|e| e.contains("not_allowed")))
    })
    .await
    .unwrap();
    sibling_syncs(&s, 3).await;
    s.f.stop_all().await.unwrap();
}

/// A change of `rec` from county 420103 (its own origin), hops as given.
fn change_of(seq: u64, rec: &huijiao_protocol::Record, hops: Vec<Hop>) -> Change {
    let body = rec.canonical_json();
    Change {
        seq,
        reg_no: rec.reg_no.clone(),
        origin: "420103".into(),
        version: 1,
        op: Op::Upsert,
        region: "420103".into(),
        hash: sha256(&body),
        body: Some(body),
        hops,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_certificate_does_not_make_bad_data_good() {
    let s = setup().await;
    let now = huijiao::clock::now_ms();
    let today = huijiao::clock::today();
    let rec = |serial: u32| Generator::new(u64::from(serial)).record("420103", serial, today);
    let hop = |t: i64| vec![Hop { node: "420103".into(), accepted_at_ms: t }];
    // Each forged change alone in a batch: refused naming the rule, nothing stored.
    let mut cases: Vec<(Change, &str)> = Vec::new();
    let mut r = rec(1);
    r.title = String::new();
    cases.push((change_of(1, &r, hop(now)), "missing_field in field title"));
    let mut r = rec(2);
    r.persons.clear();
    cases.push((change_of(1, &r, hop(now)), "missing_field in field persons"));
    let mut r = rec(3);
    r.reg_date = huijiao_protocol::Date::new(2024, 3, 5).unwrap();
    r.reg_no = format!("4201032019{}", &r.reg_no[10..]);
    cases.push((change_of(1, &r, hop(now)), "in field reg_no"));
    let many: Vec<Hop> = (0..100_000).map(|_| Hop { node: "420103".into(), accepted_at_ms: now }).collect();
    cases.push((change_of(1, &rec(4), many), "does not stand above"));
    let mut middle = hop(now);
    middle.insert(0, Hop { node: "420103".into(), accepted_at_ms: now });
    middle[1].node = "440106".into();
    middle.push(Hop { node: "420103".into(), accepted_at_ms: now });
    cases.push((change_of(1, &rec(5), middle), "does not stand above"));
    let mut huge = change_of(1, &rec(6), hop(now));
    huge.version = u64::MAX;
    cases.push((huge, "version out of range"));
    for (c, rule) in &cases {
        let mut client = raw(&s, "420103").await.unwrap();
        client.send(&RawClient::hello("420103", 1, 1)).await.unwrap();
        let Message::Welcome(w) = client.recv().await.unwrap() else { panic!("no welcome") };
        let mut c = c.clone();
        c.seq = w.cursor + 1;
        client.send(&batch(w.cursor, &[c.clone()])).await.unwrap();
        let r = refused(client.recv().await.unwrap());
        assert_eq!(r.code, "bad_change", "{rule}: {r}");
        assert!(r.message.contains(rule), "{rule}: {r}");
        assert!(!s.f.node("420100").records().contains_key(&c.reg_no), "{rule}: stored");
    }
    // A batch beyond what the store can count.
    let mut client = raw(&s, "420103").await.unwrap();
    client.send(&RawClient::hello("420103", 1, 1)).await.unwrap();
    let Message::Welcome(w) = client.recv().await.unwrap() else { panic!("no welcome") };
    let mut c = change_of(w.cursor + 1, &rec(7), hop(now));
    c.seq = u64::MAX;
    let mut b = batch(w.cursor, &[c]);
    if let Message::Batch(b) = &mut b {
        b.upto = u64::MAX;
    }
    client.send(&b).await.unwrap();
    assert_eq!(refused(client.recv().await.unwrap()).code, "bad_batch");
    // A county with a clock gone wrong is not stuck: its hop time becomes the parent's
    // receipt time, and the parent says the clock is off.
    let mut client = raw(&s, "420103").await.unwrap();
    client.send(&RawClient::hello("420103", 1, 1)).await.unwrap();
    let Message::Welcome(w) = client.recv().await.unwrap() else { panic!("no welcome") };
    let good = rec(8);
    client.send(&batch(w.cursor, &[change_of(w.cursor + 1, &good, hop(i64::MIN))])).await.unwrap();
    let Message::Ack(a) = client.recv().await.unwrap() else { panic!("no ack") };
    assert_eq!(a.applied, 1);
    let held = &s.f.node("420100").records()[&good.reg_no];
    assert!(held.hops[0].1 >= now, "the receipt time, not year −292275055: {:?}", held.hops);
    let child = s.f.node("420100").reader().unwrap().children().unwrap().into_iter().find(|c| c.child == "420103").unwrap();
    assert_eq!(child.clock_corrections, 1);
    // And the honest sibling never noticed.
    sibling_syncs(&s, 3).await;
    let mut s = s;
    s.f.stop_all().await.unwrap();
}
