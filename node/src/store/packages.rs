//! 科技成果包 in the store: each package's definition as operators edit it, and the
//! versions its publications froze (the definition then and its registration numbers in
//! order), never changed afterwards. What a selection holds is the catalogue's to say
//! (`catalogue::Catalogue::select`); this module keeps what was decided.

use super::error::{Context, Result};
use super::{Reader, Writer};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a package holds: the matches of a saved catalogue query (search words and
/// filters by their API names), plus records named by `reg_no`, minus those excluded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Map<String, Value>>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// A package's definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definition {
    pub title: String,
    pub field: Option<String>,
    pub description: String,
    #[serde(flatten)]
    pub selection: Selection,
}

/// A package as kept, with its latest version when it has one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Package {
    pub slug: String,
    #[serde(flatten)]
    pub def: Definition,
    pub retired_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub latest: Option<Version>,
}

/// One publication of a package: its definition then, and how many records it froze.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    pub slug: String,
    pub version: i64,
    pub published_at: i64,
    pub title: String,
    pub field: Option<String>,
    pub description: String,
    pub count: i64,
}

/// Why a package call was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageDenied {
    NotFound,
    /// Retired packages publish no more versions.
    Retired,
}

impl Writer {
    /// Creates or replaces package `slug`'s definition; `true` when it is new.
    pub fn save_package(&mut self, slug: &str, def: &Definition, now: i64) -> Result<bool> {
        let selection = serde_json::to_string(&def.selection).context("a package's selection")?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM packages WHERE slug = ?1)", [slug], |r| r.get(0))?;
        if exists {
            tx.execute(
                "UPDATE packages SET title = ?2, field = ?3, description = ?4, selection = ?5, updated_at = ?6 WHERE slug = ?1",
                params![slug, def.title, def.field, def.description, selection, now],
            )?;
        } else {
            tx.execute(
                "INSERT INTO packages (slug, title, field, description, selection, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![slug, def.title, def.field, def.description, selection, now],
            )?;
        }
        tx.commit()?;
        Ok(!exists)
    }

    /// Freezes `members` (in their order) as the next version of `slug`, with the
    /// definition as it is now; returns the version's number.
    pub fn publish_package(&mut self, slug: &str, members: &[String], now: i64) -> Result<Result<i64, PackageDenied>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let retired: Option<Option<i64>> =
            tx.query_row("SELECT retired_at FROM packages WHERE slug = ?1", [slug], |r| r.get(0)).optional()?;
        match retired {
            None => return Ok(Err(PackageDenied::NotFound)),
            Some(Some(_)) => return Ok(Err(PackageDenied::Retired)),
            Some(None) => {}
        }
        let version: i64 =
            tx.query_row("SELECT coalesce(max(version), 0) + 1 FROM package_versions WHERE slug = ?1", [slug], |r| r.get(0))?;
        tx.execute(
            "INSERT INTO package_versions (slug, version, published_at, title, field, description, selection, count)
             SELECT slug, ?2, ?3, title, field, description, selection, ?4 FROM packages WHERE slug = ?1",
            params![slug, version, now, members.len() as i64],
        )?;
        {
            let mut st = tx.prepare_cached("INSERT INTO package_members (slug, version, pos, reg_no) VALUES (?1, ?2, ?3, ?4)")?;
            for (pos, reg_no) in members.iter().enumerate() {
                st.execute(params![slug, version, pos as i64, reg_no])?;
            }
        }
        tx.commit()?;
        Ok(Ok(version))
    }

    /// Stops publishing `slug`: no more versions; those published stay reachable.
    pub fn retire_package(&mut self, slug: &str, now: i64) -> Result<Result<(), PackageDenied>> {
        let n = self
            .conn
            .execute("UPDATE packages SET retired_at = coalesce(retired_at, ?2), updated_at = ?2 WHERE slug = ?1", params![slug, now])?;
        Ok(if n == 0 { Err(PackageDenied::NotFound) } else { Ok(()) })
    }
}

const VERSION_COLS: &str = "slug, version, published_at, title, field, description, count";

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Version> {
    Ok(Version {
        slug: r.get(0)?,
        version: r.get(1)?,
        published_at: r.get(2)?,
        title: r.get(3)?,
        field: r.get(4)?,
        description: r.get(5)?,
        count: r.get(6)?,
    })
}

impl Reader {
    /// Every package, the most recently published first (never-published ones last).
    pub fn packages(&self) -> Result<Vec<Package>> {
        let slugs: Vec<String> = self
            .conn
            .prepare(
                "SELECT p.slug FROM packages p
                 ORDER BY (SELECT max(published_at) FROM package_versions v WHERE v.slug = p.slug) DESC NULLS LAST, p.slug",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        slugs.iter().filter_map(|s| self.package(s).transpose()).collect()
    }

    /// One package with its latest version.
    pub fn package(&self, slug: &str) -> Result<Option<Package>> {
        let row = self
            .conn
            .query_row(
                "SELECT slug, title, field, description, selection, retired_at, created_at, updated_at FROM packages WHERE slug = ?1",
                [slug],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, i64>(7)?,
                    ))
                },
            )
            .optional()?;
        let Some((slug, title, field, description, selection, retired_at, created_at, updated_at)) = row else { return Ok(None) };
        let selection: Selection = serde_json::from_str(&selection).context("a package's selection")?;
        let latest = self.versions(&slug)?.pop();
        Ok(Some(Package { slug, def: Definition { title, field, description, selection }, retired_at, created_at, updated_at, latest }))
    }

    /// The versions of `slug`, oldest first.
    pub fn versions(&self, slug: &str) -> Result<Vec<Version>> {
        let mut st = self.conn.prepare_cached(&format!("SELECT {VERSION_COLS} FROM package_versions WHERE slug = ?1 ORDER BY version"))?;
        let v = st.query_map([slug], version_row)?.collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// Version `n` of `slug`.
    pub fn version(&self, slug: &str, n: i64) -> Result<Option<Version>> {
        let v = self
            .conn
            .query_row(
                &format!("SELECT {VERSION_COLS} FROM package_versions WHERE slug = ?1 AND version = ?2"),
                params![slug, n],
                version_row,
            )
            .optional()?;
        Ok(v)
    }

    /// The registration numbers version `n` of `slug` froze, in their order.
    pub fn members(&self, slug: &str, n: i64) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached("SELECT reg_no FROM package_members WHERE slug = ?1 AND version = ?2 ORDER BY pos")?;
        let v = st.query_map(params![slug, n], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// The latest publications of every package (or of `slug`), newest first.
    pub fn publications(&self, slug: Option<&str>, limit: usize) -> Result<Vec<Version>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {VERSION_COLS} FROM package_versions WHERE ?1 IS NULL OR slug = ?1 ORDER BY published_at DESC, slug, version DESC LIMIT ?2"
        ))?;
        let v = st.query_map(params![slug, limit as i64], version_row)?.collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }
}
