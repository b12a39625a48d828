//! A Jepsen-style audit of a federation run: what each origin accepted, against what
//! the top node holds. Lost, stale, mismatched and duplicated changes are reported;
//! the demo and the fault-injection tests fail on any.

use crate::store::{Reader, RecordState};
use std::collections::HashMap;

/// The outcome of an audit.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Audit {
    /// Records the origins hold as their own.
    pub expected: usize,
    /// Of those, held at the top at the same version and content.
    pub matched: usize,
    /// Missing at the top.
    pub lost: Vec<String>,
    /// At the top with an older version: (reg_no, top version, origin version).
    pub stale: Vec<(String, i64, i64)>,
    /// Same version, different content or withdrawal state.
    pub mismatched: Vec<String>,
    /// A (reg_no, version) the top's change log holds more than once: (reg_no, version, times).
    pub duplicated: Vec<(String, i64, i64)>,
    /// At the top, claiming one of the audited origins, but unknown there.
    pub phantom: Vec<String>,
}

impl Audit {
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.stale.is_empty() && self.mismatched.is_empty() && self.duplicated.is_empty() && self.phantom.is_empty()
    }

    /// One line for logs and test failures.
    pub fn summary(&self) -> String {
        let eg = |v: &[String]| v.first().map(|r| format!(" (e.g. {r})")).unwrap_or_default();
        format!(
            "{} expected, {} matched, {} lost{}, {} stale, {} mismatched{}, {} duplicated, {} phantom{}",
            self.expected,
            self.matched,
            self.lost.len(),
            eg(&self.lost),
            self.stale.len(),
            self.mismatched.len(),
            eg(&self.mismatched),
            self.duplicated.len(),
            self.phantom.len(),
            eg(&self.phantom)
        )
    }
}

/// Audits `top` against the origins `(node id, its store)`.
pub fn audit(origins: &[(&str, &Reader)], top: &Reader) -> anyhow::Result<Audit> {
    let mut a = Audit::default();
    let held: HashMap<String, RecordState> = top.record_states()?.into_iter().map(|r| (r.reg_no.clone(), r)).collect();
    for (node, reader) in origins {
        let own: HashMap<String, RecordState> =
            reader.record_states()?.into_iter().filter(|r| r.origin == *node).map(|r| (r.reg_no.clone(), r)).collect();
        a.expected += own.len();
        for (reg_no, mine) in &own {
            match held.get(reg_no) {
                None => a.lost.push(reg_no.clone()),
                Some(top) if top.version < mine.version => a.stale.push((reg_no.clone(), top.version, mine.version)),
                Some(top) if top != mine => a.mismatched.push(reg_no.clone()),
                Some(_) => a.matched += 1,
            }
        }
        a.phantom.extend(held.values().filter(|r| r.origin == *node && !own.contains_key(&r.reg_no)).map(|r| r.reg_no.clone()));
    }
    a.duplicated = top.duplicate_changes()?;
    a.lost.sort();
    a.mismatched.sort();
    a.phantom.sort();
    Ok(a)
}
