//! What enters the store, sans IO: every rule of it in one place. The store reads what
//! it holds of a record ([`Held`]), asks here, and writes what the answer says. There
//! are three ways in, and one way held aside on the way out:
//!
//! - a change from a child: [`decide`] (applied, a duplicate, or quarantined), with the
//!   hops it is stored under ([`hops_at_parent`]);
//! - a row at its origin (a file's row; an approved online registration):
//!   [`decide_local`] (inserted, a new version, withdrawn, unchanged, or refused with a
//!   reason the clerk reads);
//! - a record a parent gives back to a store that lost it (`huijiao recover`):
//!   [`decide_recovered`], with its hops as this node first had them
//!   ([`hops_recovered`]);
//! - a change of this node's log too large for any parent to take is held aside
//!   instead of sent ([`too_large_to_send`]).

use crate::wire::{Change, Hop, Op, MAX_CHANGE_BODY};

/// What a node holds of a record: what [`decide`] weighs an arriving change against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held<'a> {
    pub origin: &'a str,
    pub version: u64,
    pub hash: &'a [u8],
    pub withdrawn: bool,
    /// When the origin made the version held (its first hop), when the caller looked
    /// it up: needed only for a change of a lower version.
    pub made_at: Option<i64>,
}

/// What becomes of a change that arrives from a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Stored: a new record, or a newer version from the record's own origin.
    Apply,
    /// Already held (a replay, or an older version): acknowledged, not stored again.
    Duplicate,
    /// Held aside for an operator, with the reason shown in `conflicts`; the version
    /// held is kept.
    Quarantine(&'static str),
}

/// Why a change of a lower version than held, made later, is held aside.
pub const LOWER_VERSION_LATER: &str = "an older version made after the newer one held here: the origin's store was restored from an older copy and forgot it; run `huijiao recover` there";

/// The rule that decides whether a change from a child is applied; the store's
/// `apply_batch` (its fast path too: a record not held is what `decide(None, …)`
/// answers for) and the simulation both call it.
///
/// - a record never held: applied, unless the change withdraws it (nothing to
///   withdraw: quarantined);
/// - another origin holds the `reg_no`: quarantined (only the origin changes a record);
/// - the same version with other content: quarantined (the origin's store was
///   restored from an older copy and made that version again; never a replay);
/// - an older version that the origin made after the version held (its first hop is
///   later): quarantined — the origin forgot the newer one (a restore) and made the
///   number again; a version never goes backwards in silence;
/// - the same or an older version otherwise: a duplicate (a replay: a child sends its
///   whole log again after a new log was started);
/// - a newer version of a withdrawn record: quarantined (nothing resurrects it);
/// - a newer version: applied.
pub fn decide(held: Option<Held<'_>>, c: &Change) -> Decision {
    let Some(h) = held else {
        return if c.op == Op::Withdraw { Decision::Quarantine("a withdrawal of a record this node never held") } else { Decision::Apply };
    };
    if h.origin != c.origin {
        return Decision::Quarantine("another origin holds this reg_no");
    }
    if c.version == h.version && h.hash != c.hash {
        return Decision::Quarantine(
            "the same version with other content: the origin's store was restored from an older copy; run `huijiao recover` there",
        );
    }
    if c.version < h.version {
        let made = c.hops.first().map(|hop| hop.accepted_at_ms);
        if let (Some(made), Some(held_made)) = (made, h.made_at) {
            if made > held_made {
                return Decision::Quarantine(LOWER_VERSION_LATER);
            }
        }
    }
    if c.version <= h.version {
        return Decision::Duplicate;
    }
    if h.withdrawn {
        return Decision::Quarantine("the record was withdrawn; nothing resurrects it");
    }
    Decision::Apply
}

/// What becomes of a row at its origin (this node registered the record, or will).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// A record not held: version 1.
    Insert,
    /// Other content for a record this node holds: the next version.
    Update { version: u64 },
    /// A withdrawal of a record this node holds: the next version, a tombstone.
    Withdraw { version: u64 },
    /// The content held already, or a withdrawal of a withdrawn record: no version.
    Unchanged,
    /// The row cannot change the store.
    Refused(LocalRefusal),
}

/// Why a row at its origin cannot change the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRefusal {
    /// A withdrawal of a record not held here.
    UnknownRecord,
    /// Another node registered the record (its origin): only it changes the record.
    NotOrigin(String),
    /// The record was withdrawn: nothing changes or registers it again.
    Withdrawn,
}

/// The rule for a row at its origin `node`: `upsert` is the hash of the row's record,
/// `None` for a withdrawal. The store's ingest (its fast path too: a record not held is
/// what `decide_local(None, …)` answers for) calls it.
pub fn decide_local(held: Option<Held<'_>>, node: &str, upsert: Option<&[u8]>) -> Local {
    let Some(h) = held else {
        return match upsert {
            Some(_) => Local::Insert,
            None => Local::Refused(LocalRefusal::UnknownRecord),
        };
    };
    if h.origin != node {
        return Local::Refused(LocalRefusal::NotOrigin(h.origin.to_string()));
    }
    match upsert {
        Some(_) if h.withdrawn => Local::Refused(LocalRefusal::Withdrawn),
        Some(hash) if hash == h.hash => Local::Unchanged,
        Some(_) => Local::Update { version: h.version + 1 },
        None if h.withdrawn => Local::Unchanged,
        None => Local::Withdraw { version: h.version + 1 },
    }
}

/// What becomes of a record a parent gives back (`huijiao recover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// This store holds that version or a newer one.
    Skip,
    /// A record this store lost: logged at its version and held again.
    Insert,
    /// A newer version than this store holds: logged, and the record points at it.
    Update,
    /// The withdrawal of a record this store holds: logged, the record withdrawn.
    Withdraw,
    /// A withdrawal of a record this store never held (a parent that sent no content
    /// before it): logged, nothing to point at.
    LogOnly,
}

/// The rule for a record a parent gives back: taken unless this store already holds
/// its version or a newer one (the parent's copy never overrides what the origin has
/// since).
pub fn decide_recovered(held: Option<Held<'_>>, c: &Change) -> Recovered {
    if held.is_some_and(|h| h.version >= c.version) {
        return Recovered::Skip;
    }
    match (c.op, held) {
        (Op::Upsert, None) => Recovered::Insert,
        (Op::Upsert, Some(_)) => Recovered::Update,
        (Op::Withdraw, Some(_)) => Recovered::Withdraw,
        (Op::Withdraw, None) => Recovered::LogOnly,
    }
}

/// The hops a change from a child is stored under: its own, then this node's.
pub fn hops_at_parent(hops: &[Hop], node: &str, now_ms: i64) -> Vec<Hop> {
    let mut out = hops.to_vec();
    out.push(Hop { node: node.to_string(), accepted_at_ms: now_ms });
    out
}

/// The hops of a recovered change as this node first had them: up to this node (the
/// parent's own hops are not this node's history; sent up again, they would not run
/// up the tree). A record this node never passed on gets this node's hop.
pub fn hops_recovered(hops: &[Hop], node: &str, now_ms: i64) -> Vec<Hop> {
    let mut out: Vec<Hop> = match hops.iter().position(|h| h.node == node) {
        Some(i) => hops[..=i].to_vec(),
        None => hops.to_vec(),
    };
    if out.last().is_none_or(|h| h.node != node) {
        out.push(Hop { node: node.to_string(), accepted_at_ms: now_ms });
    }
    out
}

/// Why a change of this node's log is held aside instead of sent, if it is: a body
/// over [`MAX_CHANGE_BODY`] no parent takes, and it must not stop the changes after it.
pub fn too_large_to_send(body_len: usize) -> Option<String> {
    (body_len > MAX_CHANGE_BODY).then(|| format!("body of {body_len} bytes is over the limit of {MAX_CHANGE_BODY}"))
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
