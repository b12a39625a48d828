//! What a 科技成果包's selection holds now (for a preview or a publication), and a
//! frozen version's members as a view may see them: a record still public is shown,
//! one withdrawn or no longer public is its registration number and that state only.

use super::*;

/// Records a package holds at most: a package is a selection people read, not a
/// second catalogue (a query matching more is refused at publication).
pub const MAX_PACKAGE_RECORDS: usize = 10_000;

/// A selection evaluated against the public catalogue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selected {
    /// The records it holds, in order: the query's matches newest first, then the
    /// records included by number.
    pub reg_nos: Vec<String>,
    /// Records included by number that the public cannot see (or that do not exist).
    pub not_public: Vec<String>,
    /// The query matched more than [`MAX_PACKAGE_RECORDS`].
    pub too_many: bool,
}

/// Why a member of a version is no longer shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    Withdrawn,
    NotPublic,
}

impl Gone {
    pub fn as_str(self) -> &'static str {
        match self {
            Gone::Withdrawn => "withdrawn",
            Gone::NotPublic => "not_public",
        }
    }
}

/// A member of a version as a view sees it.
#[derive(Debug, Clone)]
pub enum Member {
    Shown(Box<Hit>),
    Gone { reg_no: String, state: Gone },
}

impl Catalogue {
    /// What a package selecting `q` and `f` (when `query`), plus `include`, minus
    /// `exclude`, holds in the public view on `today`.
    pub fn select(&self, query: Option<(Option<&str>, &Filters)>, include: &[String], exclude: &[String], today: Date) -> Result<Selected> {
        let view = View::Public { today };
        let mut out = Selected::default();
        let excluded = |r: &str| exclude.iter().any(|e| e == r);
        if let Some((q, f)) = query {
            let mut w = filter_sql(f, view);
            if let Some(e) = q.and_then(search::match_expr) {
                w.and("d.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)", [text(&e)]);
            }
            let sql = format!(
                "SELECT d.reg_no FROM docs d CROSS JOIN st.records r ON r.reg_no = d.reg_no WHERE 1 = 1{} ORDER BY d.reg_date DESC, d.id DESC LIMIT {}",
                w.sql,
                MAX_PACKAGE_RECORDS + 1
            );
            let mut st = self.conn.prepare(&sql)?;
            let mut rows = st.query(params_from_iter(w.args.iter()))?;
            while let Some(r) = rows.next()? {
                let reg_no: String = r.get(0)?;
                if !excluded(&reg_no) {
                    out.reg_nos.push(reg_no);
                }
            }
            out.too_many = out.reg_nos.len() > MAX_PACKAGE_RECORDS;
            out.reg_nos.truncate(MAX_PACKAGE_RECORDS);
        }
        for reg_no in include {
            let reg_no = reg_no.trim().to_ascii_uppercase();
            if excluded(&reg_no) || out.reg_nos.contains(&reg_no) {
                continue;
            }
            if self.get(&reg_no, view)?.is_some() {
                out.reg_nos.push(reg_no);
            } else if !out.not_public.contains(&reg_no) {
                out.not_public.push(reg_no);
            }
        }
        out.too_many |= out.reg_nos.len() > MAX_PACKAGE_RECORDS;
        Ok(out)
    }

    /// Members of version `version` of `slug` after position `after` (exclusive), at
    /// most `limit`, as `view` sees them; and the position to go on from when more
    /// follow.
    pub fn members(&self, slug: &str, version: i64, after: i64, limit: usize, view: View) -> Result<(Vec<Member>, Option<i64>)> {
        let mut st = self.conn.prepare_cached(
            "SELECT m.pos, m.reg_no, coalesce(r.withdrawn, 1) FROM st.package_members m LEFT JOIN st.records r ON r.reg_no = m.reg_no
             WHERE m.slug = ?1 AND m.version = ?2 AND m.pos > ?3 ORDER BY m.pos LIMIT ?4",
        )?;
        let rows: Vec<(i64, String, bool)> = st
            .query_map(params![slug, version, after, limit as i64 + 1], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)))?
            .collect::<rusqlite::Result<_>>()?;
        let more = rows.len() > limit;
        let mut out = Vec::with_capacity(limit);
        let mut last = after;
        for (pos, reg_no, withdrawn) in rows.into_iter().take(limit) {
            last = pos;
            out.push(match self.get(&reg_no, view)? {
                Some(hit) => Member::Shown(Box::new(hit)),
                None => Member::Gone { reg_no, state: if withdrawn { Gone::Withdrawn } else { Gone::NotPublic } },
            });
        }
        Ok((out, more.then_some(last)))
    }

    /// The members of a version the public can no longer see on `today`, in order.
    pub fn gone(&self, slug: &str, version: i64, today: Date) -> Result<Vec<(String, Gone)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT m.reg_no, coalesce(r.withdrawn, 1) FROM st.package_members m LEFT JOIN st.records r ON r.reg_no = m.reg_no
             WHERE m.slug = ?1 AND m.version = ?2
               AND coalesce(r.secret = '公开' AND r.withdrawn = 0 AND (r.embargo_until IS NULL OR r.embargo_until < ?3), 0) = 0
             ORDER BY m.pos",
        )?;
        let v = st
            .query_map(params![slug, version, today.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, if r.get::<_, i64>(1)? != 0 { Gone::Withdrawn } else { Gone::NotPublic }))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }
}

/// A package's latest version, as OAI-PMH offers it as a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSet {
    pub slug: String,
    pub title: String,
    pub version: i64,
}

impl Catalogue {
    /// Every published package with its latest version.
    pub fn package_sets(&self) -> Result<Vec<PackageSet>> {
        let mut st = self.conn.prepare_cached(
            "SELECT v.slug, v.title, v.version FROM st.package_versions v
             WHERE v.version = (SELECT max(version) FROM st.package_versions w WHERE w.slug = v.slug) ORDER BY v.slug",
        )?;
        let v = st
            .query_map([], |r| Ok(PackageSet { slug: r.get(0)?, title: r.get(1)?, version: r.get(2)? }))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// Which of `sets` hold each of `reg_nos` (in their latest versions).
    pub fn package_sets_of(&self, sets: &[PackageSet], reg_nos: &[&str]) -> Result<std::collections::HashMap<String, Vec<String>>> {
        let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        let mut st = self.conn.prepare_cached("SELECT 1 FROM st.package_members WHERE slug = ?1 AND version = ?2 AND reg_no = ?3")?;
        for s in sets {
            for r in reg_nos {
                if st.exists(params![s.slug, s.version, r])? {
                    out.entry(r.to_string()).or_default().push(s.slug.clone());
                }
            }
        }
        Ok(out)
    }
}
