//! What OAI-PMH harvesters are told (`crate::oai`): for every record that was ever
//! public, when it last changed *in the public view* and whether it is still shown
//! (a withdrawal, or a record no longer public, is a deletion). The indexer keeps the
//! `oai` table with every record it indexes; a reindex keeps it (stamps do not move
//! for what did not change, so a harvest's resumption token goes on across it), and a
//! record that never was public never appears.

use super::*;

/// Marks `reg_no`'s public view as it is now: `public` holds a digest of its public
/// fields, or `None` when the public may not see it. The stamp moves only when what a
/// harvester sees changes (a new public view, shown again, or gone).
pub(super) fn note(tx: &rusqlite::Transaction<'_>, reg_no: &str, region: &str, kind: &str, public: Option<&str>) -> Result<()> {
    let old: Option<(i64, Option<String>)> = tx
        .prepare_cached("SELECT public, hash FROM oai WHERE reg_no = ?1")?
        .query_row([reg_no], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let now = crate::clock::now_ms() / 1000;
    match (old, public) {
        // Never public and still not: nothing to tell anyone.
        (None, None) => {}
        (None, Some(h)) => {
            tx.prepare_cached("INSERT INTO oai (reg_no, stamp, public, hash, region, kind) VALUES (?1, ?2, 1, ?3, ?4, ?5)")?
                .execute(params![reg_no, now, h, region, kind])?;
            tx.prepare_cached("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'oai_rows'")?.execute([])?;
        }
        (Some((1, Some(was))), Some(h)) if was == h => {}
        (Some(_), Some(h)) => {
            tx.prepare_cached("UPDATE oai SET stamp = ?2, public = 1, hash = ?3, region = ?4, kind = ?5 WHERE reg_no = ?1")?
                .execute(params![reg_no, now, h, region, kind])?;
        }
        (Some((0, _)), None) => {}
        (Some(_), None) => {
            tx.prepare_cached("UPDATE oai SET stamp = ?2, public = 0, hash = NULL WHERE reg_no = ?1")?.execute(params![reg_no, now])?;
        }
    }
    Ok(())
}

/// The digest of a record's public view, as [`note`] compares them.
pub(super) fn public_digest(r: &Record) -> String {
    let json = serde_json::to_vec(&r.public_json()).expect("a record serializes");
    huijiao_protocol::record::hex(&huijiao_protocol::record::sha256(&json)[..16])
}

/// After a rebuild: what was shown and is no longer in the catalogue as public (a
/// store restored from an older copy) is a deletion.
pub(super) fn rebuilt(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let now = crate::clock::now_ms() / 1000;
    tx.execute(
        "UPDATE oai SET stamp = ?1, public = 0, hash = NULL
         WHERE public = 1 AND NOT EXISTS (SELECT 1 FROM docs d WHERE d.reg_no = oai.reg_no AND d.state = ?2)",
        params![now, STATE_PUBLIC],
    )?;
    Ok(())
}

/// A catalogue made before OAI-PMH: its public records enter the table as of now,
/// once (their public view unknown, so their next change moves their stamp).
pub(super) fn backfill(conn: &Connection) -> Result<()> {
    let done: Option<String> = conn.query_row("SELECT value FROM meta WHERE key = 'oai_rows'", [], |r| r.get(0)).optional()?;
    if done.is_some() {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    let now = crate::clock::now_ms() / 1000;
    let n = tx.execute(
        "INSERT OR IGNORE INTO oai (reg_no, stamp, public, hash, region, kind) SELECT reg_no, ?1, 1, NULL, region, kind FROM docs WHERE state = ?2",
        params![now, STATE_PUBLIC],
    )?;
    tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('oai_rows', ?1)", [n.to_string()])?;
    tx.commit()?;
    Ok(())
}

/// Which records a list request covers (the set's condition is on `o`, the oai row).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OaiScope {
    /// Stamps from and until, inclusive, in seconds.
    pub from: Option<i64>,
    pub until: Option<i64>,
    pub set: Option<OaiSet>,
}

/// An OAI set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OaiSet {
    /// Every record (the parent sets `region` and `kind`).
    All,
    /// A province's records: a region code prefix.
    Region(String),
    /// A kind, as the record holds it (应用技术…).
    Kind(String),
    /// The members of a package's version.
    Package(String, i64),
    /// The members of every package's latest version (the parent set `package`).
    Packages,
}

/// One item of a list: a record shown, or a deletion.
#[derive(Debug, Clone)]
pub struct OaiItem {
    pub reg_no: String,
    pub stamp: i64,
    pub region: String,
    pub kind: String,
    /// The record when the public may see it now; `None`: deleted.
    pub record: Option<Record>,
}

impl OaiScope {
    fn sql(&self) -> Where {
        let mut w = Where::default();
        if let Some(f) = self.from {
            w.and("o.stamp >= ?", [int(f)]);
        }
        if let Some(u) = self.until {
            w.and("o.stamp <= ?", [int(u)]);
        }
        match &self.set {
            None | Some(OaiSet::All) => {}
            Some(OaiSet::Region(p)) => w.and("o.region >= ? AND o.region < ?", [text(p), text(&prefix_end(p))]),
            Some(OaiSet::Kind(k)) => w.and("o.kind = ?", [text(k)]),
            Some(OaiSet::Package(slug, v)) => {
                w.and("o.reg_no IN (SELECT reg_no FROM st.package_members WHERE slug = ? AND version = ?)", [text(slug), int(*v)])
            }
            Some(OaiSet::Packages) => w.and(
                "o.reg_no IN (SELECT m.reg_no FROM st.package_members m JOIN st.package_versions v ON v.slug = m.slug AND v.version = m.version
                  WHERE v.version = (SELECT max(version) FROM st.package_versions x WHERE x.slug = v.slug))",
                [],
            ),
        }
        w
    }
}

impl Catalogue {
    /// The oldest stamp of any record (Identify's earliestDatestamp).
    pub fn oai_earliest(&self) -> Result<Option<i64>> {
        Ok(self.conn.query_row("SELECT min(stamp) FROM oai", [], |r| r.get(0))?)
    }

    /// How many items `scope` covers, when that can be counted within a budget.
    pub fn oai_count(&self, scope: &OaiScope) -> Result<Option<u64>> {
        if scope == &OaiScope::default() || scope == &(OaiScope { set: Some(OaiSet::All), ..OaiScope::default() }) {
            let n: String =
                self.conn.query_row("SELECT coalesce((SELECT value FROM meta WHERE key = 'oai_rows'), '0')", [], |r| r.get(0))?;
            return Ok(n.parse().ok());
        }
        let w = scope.sql();
        let calls = std::sync::atomic::AtomicU64::new(0);
        self.conn.progress_handler(
            COUNT_STEP as i32,
            Some(move || calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 > COUNT_STEPS * 4 / COUNT_STEP),
        );
        let counted =
            self.conn.query_row(&format!("SELECT count(*) FROM oai o WHERE 1 = 1{}", w.sql), params_from_iter(w.args.iter()), |r| {
                r.get::<_, i64>(0)
            });
        self.conn.progress_handler(0, None::<fn() -> bool>);
        match counted {
            Ok(n) => Ok(Some(n as u64)),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::OperationInterrupted => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Up to `limit` items of `scope` after `(stamp, reg_no)`, in that order, each as
    /// the public may see it on `today` — the store's own state decides, as in every
    /// public view: a row the index still holds as public but the store no longer
    /// shows is a deletion.
    pub fn oai_page(&self, scope: &OaiScope, after: Option<(i64, &str)>, limit: usize, today: Date) -> Result<Vec<OaiItem>> {
        let mut w = scope.sql();
        if let Some((stamp, reg_no)) = after {
            w.and("(o.stamp > ? OR (o.stamp = ? AND o.reg_no > ?))", [int(stamp), int(stamp), text(reg_no)]);
        }
        self.oai_items(&w, limit, today)
    }

    fn oai_items(&self, w: &Where, limit: usize, today: Date) -> Result<Vec<OaiItem>> {
        let sql = format!(
            "SELECT o.reg_no, o.stamp, o.region, o.kind, o.public, r.secret, r.withdrawn, r.embargo_until, b.body
             FROM oai o LEFT JOIN st.records r ON r.reg_no = o.reg_no LEFT JOIN st.changes b ON b.seq = r.body_seq
             WHERE 1 = 1{} ORDER BY o.stamp, o.reg_no LIMIT {limit}",
            w.sql
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(w.args.iter()))?;
        let mut out = Vec::new();
        let today = today.to_string();
        while let Some(r) = rows.next()? {
            let shown = r.get::<_, i64>(4)? == 1
                && r.get::<_, Option<String>>(5)?.as_deref() == Some("公开")
                && r.get::<_, Option<i64>>(6)? == Some(0)
                && r.get::<_, Option<String>>(7)?.is_none_or(|e| e < today);
            let record = match (shown, r.get::<_, Option<String>>(8)?) {
                (true, Some(body)) => Some(Record::from_json(body.as_bytes()).context("corrupt record body in the store")?),
                _ => None,
            };
            out.push(OaiItem { reg_no: r.get(0)?, stamp: r.get(1)?, region: r.get(2)?, kind: r.get(3)?, record });
        }
        Ok(out)
    }

    /// One item by registration number; `None` when it was never public.
    pub fn oai_get(&self, reg_no: &str, today: Date) -> Result<Option<OaiItem>> {
        let mut w = Where::default();
        w.and("o.reg_no = ?", [text(reg_no)]);
        Ok(self.oai_items(&w, 1, today)?.pop())
    }
}
