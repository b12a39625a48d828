//! Accounts besides the units themselves (spec v1.2 §6.1, §6.3): the office's named
//! reviewers and the units' members (填报人), each with its Argon2id hash, a one-time
//! password to change first, and a switch to disable it.

use super::error::Result;
use super::registration::Denied;
use super::{Reader, Writer};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

/// A member account (填报人) as its unit sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub login: String,
    pub uscc: String,
    pub name: String,
    pub must_change: bool,
    pub disabled: bool,
    pub created_at: i64,
}

/// A named reviewer of the office, as the operators see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reviewer {
    pub login: String,
    pub name: String,
    pub must_change: bool,
    pub disabled: bool,
    pub created_at: i64,
}

impl Writer {
    /// Creates a reviewer with a one-time password's hash.
    pub fn add_reviewer(&mut self, login: &str, name: &str, hash: &str, now: i64) -> Result<Result<(), Denied>> {
        let n = self.conn.execute(
            "INSERT INTO reviewers (login, name, hash, must_change, created_at, updated_at) VALUES (?1, ?2, ?3, 1, ?4, ?4)
             ON CONFLICT (login) DO NOTHING",
            params![login, name, hash, now],
        )?;
        Ok(if n == 0 { Err(Denied::Exists) } else { Ok(()) })
    }

    /// Sets a reviewer's password hash; `must_change` for a one-time password.
    pub fn set_reviewer_password(&mut self, login: &str, hash: &str, must_change: bool, now: i64) -> Result<Result<(), Denied>> {
        let n = self.conn.execute(
            "UPDATE reviewers SET hash = ?2, must_change = ?3, updated_at = ?4 WHERE login = ?1",
            params![login, hash, must_change, now],
        )?;
        Ok(if n == 0 { Err(Denied::NotFound) } else { Ok(()) })
    }

    /// Disables (or enables again) a reviewer.
    pub fn set_reviewer_disabled(&mut self, login: &str, disabled: bool, now: i64) -> Result<Result<(), Denied>> {
        let n = self.conn.execute("UPDATE reviewers SET disabled = ?2, updated_at = ?3 WHERE login = ?1", params![login, disabled, now])?;
        Ok(if n == 0 { Err(Denied::NotFound) } else { Ok(()) })
    }
}

impl Reader {
    pub fn reviewers(&self) -> Result<Vec<Reviewer>> {
        let mut st =
            self.conn.prepare("SELECT login, name, must_change, disabled, created_at FROM reviewers ORDER BY created_at, login")?;
        let rows = st.query_map([], |r| {
            Ok(Reviewer { login: r.get(0)?, name: r.get(1)?, must_change: r.get(2)?, disabled: r.get(3)?, created_at: r.get(4)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A reviewer and its password hash, for signing in.
    pub fn reviewer_credentials(&self, login: &str) -> Result<Option<(Reviewer, String)>> {
        Ok(self
            .conn
            .query_row("SELECT login, name, must_change, disabled, created_at, hash FROM reviewers WHERE login = ?1", [login], |r| {
                Ok((
                    Reviewer { login: r.get(0)?, name: r.get(1)?, must_change: r.get(2)?, disabled: r.get(3)?, created_at: r.get(4)? },
                    r.get(5)?,
                ))
            })
            .optional()?)
    }
}

impl Writer {
    /// Creates a member of `uscc` with a one-time password's hash (`Exists` when the
    /// login is taken; `NotFound` without such a unit).
    pub fn add_member(&mut self, uscc: &str, login: &str, name: &str, hash: &str, now: i64) -> Result<Result<(), Denied>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let unit: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM units WHERE uscc = ?1)", [uscc], |r| r.get(0))?;
        if !unit {
            return Ok(Err(Denied::NotFound));
        }
        let n = tx.execute(
            "INSERT INTO members (login, uscc, name, hash, must_change, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
             ON CONFLICT (login) DO NOTHING",
            params![login, uscc, name, hash, now],
        )?;
        tx.commit()?;
        Ok(if n == 0 { Err(Denied::Exists) } else { Ok(()) })
    }

    /// Sets a member's password hash; `must_change` for a one-time password.
    pub fn set_member_password(&mut self, login: &str, hash: &str, must_change: bool, now: i64) -> Result<Result<(), Denied>> {
        let n = self.conn.execute(
            "UPDATE members SET hash = ?2, must_change = ?3, updated_at = ?4 WHERE login = ?1",
            params![login, hash, must_change, now],
        )?;
        Ok(if n == 0 { Err(Denied::NotFound) } else { Ok(()) })
    }

    /// Disables (or enables again) a member of `uscc`.
    pub fn set_member_disabled(&mut self, uscc: &str, login: &str, disabled: bool, now: i64) -> Result<Result<(), Denied>> {
        let n = self.conn.execute(
            "UPDATE members SET disabled = ?3, updated_at = ?4 WHERE login = ?1 AND uscc = ?2",
            params![login, uscc, disabled, now],
        )?;
        Ok(if n == 0 { Err(Denied::NotFound) } else { Ok(()) })
    }
}

fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member { login: r.get(0)?, uscc: r.get(1)?, name: r.get(2)?, must_change: r.get(3)?, disabled: r.get(4)?, created_at: r.get(5)? })
}

impl Reader {
    /// A unit's members, oldest first.
    pub fn unit_members(&self, uscc: &str) -> Result<Vec<Member>> {
        let mut st = self.conn.prepare(
            "SELECT login, uscc, name, must_change, disabled, created_at FROM members WHERE uscc = ?1 ORDER BY created_at, login",
        )?;
        let rows = st.query_map([uscc], member_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many members `uscc` has had (the next generated login's number).
    pub fn member_count(&self, uscc: &str) -> Result<u64> {
        Ok(self.conn.query_row("SELECT count(*) FROM members WHERE uscc = ?1", [uscc], |r| r.get::<_, i64>(0))? as u64)
    }

    /// A member, its password hash, and whether its unit is disabled, for signing in.
    pub fn member_credentials(&self, login: &str) -> Result<Option<(Member, String, bool)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT m.login, m.uscc, m.name, m.must_change, m.disabled, m.created_at, m.hash, coalesce(u.disabled, 1)
                 FROM members m LEFT JOIN units u ON u.uscc = m.uscc WHERE m.login = ?1",
                [login],
                |r| Ok((member_row(r)?, r.get(6)?, r.get(7)?)),
            )
            .optional()?)
    }
}
