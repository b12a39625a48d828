//! A Jepsen-style audit of a federation run: what each origin accepted, against what
//! the top node holds. Lost, stale, mismatched and duplicated changes are reported;
//! the demo and the fault-injection tests fail on any.

use huijiao_protocol::record::RecordState;
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

/// What one node holds, read from its store for an audit.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    /// The state of every record the node holds.
    pub records: Vec<RecordState>,
    /// (reg_no, version, times) of changes its log holds more than once.
    pub duplicated: Vec<(String, i64, i64)>,
}

/// Audits `top` against the origins `(node id, what it holds)`: each origin's own
/// records (those it entered) must be at the top, at the same version and content,
/// exactly once, and the top must hold nothing in their name they do not.
pub fn audit(origins: &[(&str, &Holdings)], top: &Holdings) -> Audit {
    let mut a = Audit::default();
    let held: HashMap<&str, &RecordState> = top.records.iter().map(|r| (r.reg_no.as_str(), r)).collect();
    for (node, holdings) in origins {
        let own: HashMap<&str, &RecordState> =
            holdings.records.iter().filter(|r| r.origin == *node).map(|r| (r.reg_no.as_str(), r)).collect();
        a.expected += own.len();
        for (reg_no, mine) in &own {
            match held.get(reg_no) {
                None => a.lost.push(reg_no.to_string()),
                Some(top) if top.version < mine.version => a.stale.push((reg_no.to_string(), top.version, mine.version)),
                Some(top) if top != mine => a.mismatched.push(reg_no.to_string()),
                Some(_) => a.matched += 1,
            }
        }
        a.phantom.extend(held.values().filter(|r| r.origin == *node && !own.contains_key(r.reg_no.as_str())).map(|r| r.reg_no.clone()));
    }
    a.duplicated = top.duplicated.clone();
    a.lost.sort();
    a.mismatched.sort();
    a.phantom.sort();
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(reg_no: &str, version: i64, hash: u8) -> RecordState {
        RecordState { reg_no: reg_no.into(), origin: reg_no[..6].into(), version, hash: vec![hash], withdrawn: false }
    }

    #[test]
    fn every_kind_of_failure_is_found() {
        let county = Holdings {
            records: vec![
                state("4201022024Y0001", 1, 1),
                state("4201022024Y0002", 2, 2),
                state("4201022024Y0003", 1, 3),
                state("4201022024Y0004", 1, 4),
            ],
            duplicated: vec![],
        };
        let top = Holdings {
            records: vec![
                state("4201022024Y0001", 1, 1),
                state("4201022024Y0002", 1, 2),
                state("4201022024Y0003", 1, 9),
                state("4201022024Y0009", 1, 9),
            ],
            duplicated: vec![("4201022024Y0001".into(), 1, 2)],
        };
        let a = audit(&[("420102", &county)], &top);
        assert_eq!((a.expected, a.matched), (4, 1));
        assert_eq!(a.lost, vec!["4201022024Y0004"]);
        assert_eq!(a.stale, vec![("4201022024Y0002".to_string(), 1, 2)]);
        assert_eq!(a.mismatched, vec!["4201022024Y0003"]);
        assert_eq!(a.phantom, vec!["4201022024Y0009"]);
        assert_eq!(a.duplicated.len(), 1);
        assert!(!a.ok());
        let clean = audit(&[("420102", &county)], &county);
        assert!(clean.ok() && clean.matched == 4, "{}", clean.summary());
    }
}
