//! The rules of what enters the store, each way in.

use super::*;
use crate::record::sha256;
use crate::record::tests::sample;

const CHILD: &str = "420102";
const T0: i64 = 1_700_000_000_000;

fn change(version: u64, op: Op) -> Change {
    let body = sample().canonical_json();
    Change {
        seq: 1,
        hash: sha256(&body),
        reg_no: sample().reg_no,
        origin: CHILD.into(),
        version,
        op,
        region: CHILD.into(),
        body: (op == Op::Upsert).then_some(body),
        hops: vec![Hop { node: CHILD.into(), accepted_at_ms: T0 }],
    }
}

fn held<'a>(origin: &'a str, version: u64, hash: &'a [u8], withdrawn: bool) -> Option<Held<'a>> {
    Some(Held { origin, version, hash, withdrawn, made_at: None })
}

#[test]
fn decide_is_the_whole_rule_for_a_childs_change() {
    let c = &change(1, Op::Upsert);
    assert_eq!(decide(None, c), Decision::Apply);
    let withdraw = change(1, Op::Withdraw);
    assert!(matches!(decide(None, &withdraw), Decision::Quarantine(r) if r.contains("never held")));
    let same = &c.hash[..];
    assert!(matches!(decide(held("420106", 1, same, false), c), Decision::Quarantine(r) if r.contains("another origin")));
    assert_eq!(decide(held(CHILD, 1, same, false), c), Decision::Duplicate, "a replay");
    assert_eq!(decide(held(CHILD, 2, &[0; 32], false), c), Decision::Duplicate, "an older version");
    assert!(matches!(decide(held(CHILD, 1, &[0; 32], false), c), Decision::Quarantine(r) if r.contains("same version")));
    let newer = Change { version: 2, ..c.clone() };
    assert_eq!(decide(held(CHILD, 1, same, false), &newer), Decision::Apply);
    assert!(matches!(decide(held(CHILD, 1, same, true), &newer), Decision::Quarantine(r) if r.contains("withdrawn")));
    // An older version: a replay if the origin made it before the version held, a
    // restored origin's new record of the same number if after.
    let made = c.hops[0].accepted_at_ms;
    let at = |t: i64| Some(Held { origin: CHILD, version: 2, hash: &[0; 32], withdrawn: true, made_at: Some(t) });
    assert_eq!(decide(at(made + 1), c), Decision::Duplicate, "made before the held version: a replay");
    assert_eq!(decide(at(made), c), Decision::Duplicate);
    assert_eq!(decide(at(made - 1), c), Decision::Quarantine(LOWER_VERSION_LATER), "made after it: never silent");
}

#[test]
fn decide_local_is_the_whole_rule_for_a_row_at_its_origin() {
    let (a, b) = ([1u8; 32], [2u8; 32]);
    assert_eq!(decide_local(None, CHILD, Some(&a)), Local::Insert);
    assert_eq!(decide_local(None, CHILD, None), Local::Refused(LocalRefusal::UnknownRecord));
    assert_eq!(decide_local(held("420106", 3, &a, false), CHILD, Some(&b)), Local::Refused(LocalRefusal::NotOrigin("420106".into())));
    assert_eq!(decide_local(held("420106", 3, &a, false), CHILD, None), Local::Refused(LocalRefusal::NotOrigin("420106".into())));
    assert_eq!(decide_local(held(CHILD, 3, &a, false), CHILD, Some(&a)), Local::Unchanged, "the same content: no version");
    assert_eq!(decide_local(held(CHILD, 3, &a, false), CHILD, Some(&b)), Local::Update { version: 4 });
    assert_eq!(decide_local(held(CHILD, 3, &a, false), CHILD, None), Local::Withdraw { version: 4 });
    assert_eq!(decide_local(held(CHILD, 4, &a, true), CHILD, None), Local::Unchanged, "withdrawn already");
    assert_eq!(decide_local(held(CHILD, 4, &a, true), CHILD, Some(&b)), Local::Refused(LocalRefusal::Withdrawn), "nothing resurrects");
}

#[test]
fn a_recovered_record_never_overrides_what_the_store_has_since() {
    let (up, down) = (change(3, Op::Upsert), change(4, Op::Withdraw));
    assert_eq!(decide_recovered(None, &up), Recovered::Insert);
    assert_eq!(decide_recovered(None, &down), Recovered::LogOnly);
    assert_eq!(decide_recovered(held(CHILD, 2, &[0; 32], false), &up), Recovered::Update);
    assert_eq!(decide_recovered(held(CHILD, 3, &[0; 32], false), &up), Recovered::Skip, "the same version");
    assert_eq!(decide_recovered(held(CHILD, 5, &[0; 32], false), &up), Recovered::Skip, "a newer one");
    assert_eq!(decide_recovered(held(CHILD, 3, &[0; 32], false), &down), Recovered::Withdraw);
}

#[test]
fn hops_run_up_the_tree_and_a_recovered_change_keeps_only_this_nodes_history() {
    let hop = |node: &str, at: i64| Hop { node: node.into(), accepted_at_ms: at };
    let below = [hop("420102", 1), hop("420100", 2)];
    assert_eq!(hops_at_parent(&below, "420000", 3), vec![hop("420102", 1), hop("420100", 2), hop("420000", 3)]);
    let up = [hop("420102", 1), hop("420100", 2), hop("420000", 3), hop("000000", 4)];
    assert_eq!(hops_recovered(&up, "420100", 9), vec![hop("420102", 1), hop("420100", 2)], "the parent's hops are not ours");
    assert_eq!(hops_recovered(&[hop("420000", 3)], "420100", 9), vec![hop("420000", 3), hop("420100", 9)], "never passed on");
}

#[test]
fn only_a_change_no_parent_takes_is_held_aside() {
    assert_eq!(too_large_to_send(MAX_CHANGE_BODY), None);
    assert!(too_large_to_send(MAX_CHANGE_BODY + 1).is_some_and(|r| r.contains(&MAX_CHANGE_BODY.to_string())));
}
