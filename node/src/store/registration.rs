//! Online registration in the store (spec v1.2 §6): units, submissions and their
//! evidence, decisions, and the approval that assigns the 登记号 and enters the record
//! through the same rule as a file's row (`protocol::apply::decide_local`, by
//! `ingest::apply_local`), in one transaction with the serial and the decision.
//! The office's reviewers and the units' members are `store::accounts`.

use super::error::{Context, Result};
use super::ingest::{apply_local, Applied, Prepared};
use super::rows::Seqs;
use super::{Reader, Writer};
use huijiao_protocol::registration::{self, Asked, State};
use huijiao_protocol::report::RowError;
use huijiao_protocol::validate::{Row, Validator};
use huijiao_protocol::{Date, Record, RegionTable};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::{Map, Value};

/// Why a registration call was not carried out (the store itself worked).
#[derive(Debug, Clone, PartialEq)]
pub enum Denied {
    /// No such unit or submission, or not this unit's (the same answer for both).
    NotFound,
    /// The submission is not in a state that allows it.
    WrongState(State),
    /// The unit's USCC is already registered.
    Exists,
    /// What the unit sent breaks a rule (§5 errors, field by field).
    Invalid(Vec<RowError>),
    /// The store was restored from an older copy: approvals wait for `huijiao recover`.
    RecoverNeeded,
}

/// A unit account as the office sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unit {
    pub uscc: String,
    pub name: String,
    pub must_change: bool,
    pub disabled: bool,
    pub created_at: i64,
}

/// Who acts for a unit: the unit account itself, or one of its members (填报人).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account {
    pub uscc: String,
    /// The member's login; none for the unit account.
    pub member: Option<String>,
}

impl Account {
    pub fn unit(uscc: &str) -> Account {
        Account { uscc: uscc.to_string(), member: None }
    }

    /// How decisions record it: `unit:<USCC>` or `member:<login>`.
    pub fn who(&self) -> String {
        match &self.member {
            Some(m) => format!("member:{m}"),
            None => format!("unit:{}", self.uscc),
        }
    }

    /// Whether it may see `s`: its unit's, and a member only its own.
    pub fn sees(&self, s: &Submission) -> bool {
        s.uscc == self.uscc && (self.member.is_none() || s.member == self.member)
    }
}

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    pub n: u32,
    #[serde(rename = "type")]
    pub ty: String,
    pub name: String,
    #[serde(skip)]
    pub format: String,
    pub size: u64,
    pub sha256: String,
}

/// Evidence to keep: its description and bytes (checked by the caller).
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub ty: String,
    pub name: String,
    pub format: String,
    pub sha256: String,
    pub bytes: Vec<u8>,
}

/// A decision on a submission.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub at: i64,
    pub who: String,
    pub action: String,
    pub reason: Option<String>,
    pub reg_no: Option<String>,
    pub version: Option<i64>,
}

/// A submission as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Submission {
    pub id: String,
    pub uscc: String,
    pub unit_name: String,
    /// The member who filled it in (none: the unit account).
    pub member: Option<String>,
    /// That member's name.
    pub member_name: Option<String>,
    pub state: State,
    pub asked: String,
    pub reg_no: Option<String>,
    pub body: Map<String, Value>,
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub submitted_at: Option<i64>,
    pub attachments: Vec<Attachment>,
    pub decisions: Vec<Decision>,
}

impl Submission {
    /// The title the unit gave it (for lists).
    pub fn title(&self) -> &str {
        self.body.get("title").and_then(Value::as_str).unwrap_or_default()
    }
}

fn asked_text(a: &Asked) -> (&'static str, Option<&str>) {
    match a {
        Asked::New => ("new", None),
        Asked::Change(r) => ("change", Some(r)),
        Asked::Withdraw(r) => ("withdraw", Some(r)),
    }
}

impl Writer {
    /// Creates a unit account with the hash of its one-time password.
    pub fn add_unit(&mut self, uscc: &str, name: &str, hash: &str, now: i64) -> Result<Result<(), Denied>> {
        let n = self.conn.execute(
            "INSERT INTO units (uscc, name, hash, must_change, created_at, updated_at) VALUES (?1, ?2, ?3, 1, ?4, ?4)
             ON CONFLICT (uscc) DO NOTHING",
            params![uscc, name, hash, now],
        )?;
        Ok(if n == 0 { Err(Denied::Exists) } else { Ok(()) })
    }

    /// Sets a unit's password hash; `must_change` for a one-time password (a reset).
    pub fn set_unit_password(&mut self, uscc: &str, hash: &str, must_change: bool, now: i64) -> Result<Result<(), Denied>> {
        let n = self.conn.execute(
            "UPDATE units SET hash = ?2, must_change = ?3, updated_at = ?4 WHERE uscc = ?1",
            params![uscc, hash, must_change, now],
        )?;
        Ok(if n == 0 { Err(Denied::NotFound) } else { Ok(()) })
    }

    /// Disables (or enables again) a unit: a disabled unit signs in to nothing.
    pub fn set_unit_disabled(&mut self, uscc: &str, disabled: bool, now: i64) -> Result<Result<(), Denied>> {
        let n = self.conn.execute("UPDATE units SET disabled = ?2, updated_at = ?3 WHERE uscc = ?1", params![uscc, disabled, now])?;
        Ok(if n == 0 { Err(Denied::NotFound) } else { Ok(()) })
    }

    /// Creates a submission (`create`), or replaces a draft's or a returned one's
    /// object; `attachments` are added to those it has; with `submit`, it is submitted
    /// in the same transaction, and nothing is kept if it breaks a rule. The object was
    /// screened for markings by the caller: nothing classified reaches here.
    #[allow(clippy::too_many_arguments)]
    pub fn save_submission(
        &mut self,
        id: &str,
        acc: &Account,
        create: bool,
        asked: &Asked,
        body: &Map<String, Value>,
        attachments: Vec<NewAttachment>,
        submit: Option<(&RegionTable, Date)>,
        now: i64,
    ) -> Result<Result<(), Denied>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (asked, reg_no) = asked_text(asked);
        let body = serde_json::to_string(body).context("a submission")?;
        if create {
            tx.execute(
                "INSERT INTO submissions (id, uscc, member, state, asked, reg_no, body, created_at, updated_at)
                 VALUES (?1, ?2, ?7, 'draft', ?3, ?4, ?5, ?6, ?6)",
                params![id, acc.uscc, asked, reg_no, body, now, acc.member],
            )?;
        } else {
            match state_of(&tx, id, acc)? {
                None => return Ok(Err(Denied::NotFound)),
                Some(s) if !s.editable() => return Ok(Err(Denied::WrongState(s))),
                Some(_) => {}
            }
            tx.execute(
                "UPDATE submissions SET asked = ?2, reg_no = ?3, body = ?4, updated_at = ?5 WHERE id = ?1",
                params![id, asked, reg_no, body, now],
            )?;
        }
        if let Err(d) = add_attachments(&tx, id, attachments)? {
            return Ok(Err(d));
        }
        if let Some((regions, today)) = submit {
            let node = self.node_id.clone();
            if let Err(d) = submit_in(&tx, &node, id, acc, regions, today, now)? {
                return Ok(Err(d));
            }
        }
        tx.commit()?;
        Ok(Ok(()))
    }

    /// Adds evidence to a draft or a returned submission `acc` sees; returns its number.
    pub fn add_attachment(&mut self, id: &str, acc: &Account, a: NewAttachment) -> Result<Result<u32, Denied>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        match state_of(&tx, id, acc)? {
            None => return Ok(Err(Denied::NotFound)),
            Some(s) if !s.editable() => return Ok(Err(Denied::WrongState(s))),
            Some(_) => {}
        }
        let n = match add_attachments(&tx, id, vec![a])? {
            Ok(n) => n,
            Err(d) => return Ok(Err(d)),
        };
        tx.commit()?;
        Ok(Ok(n))
    }

    /// Submits a draft or a returned submission `acc` sees: every rule of spec §3 and
    /// the evidence rule (§6.2) checked as of `today`. A member's goes to its unit's
    /// check (`unit_review`), the unit account's straight to the office (`submitted`).
    pub fn submit(&mut self, id: &str, acc: &Account, regions: &RegionTable, today: Date, now: i64) -> Result<Result<State, Denied>> {
        let node = self.node_id.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let state = match submit_in(&tx, &node, id, acc, regions, today, now)? {
            Ok(s) => s,
            Err(d) => return Ok(Err(d)),
        };
        tx.commit()?;
        Ok(Ok(state))
    }

    /// The unit's check of a member's submission (spec §6.1): passed on to the office
    /// (`submitted`, checked again as of `today`), or returned to the member with
    /// `reason`. Only the unit account decides; the decision records it.
    #[allow(clippy::too_many_arguments)]
    pub fn unit_decide(
        &mut self,
        id: &str,
        uscc: &str,
        pass: bool,
        reason: Option<&str>,
        regions: &RegionTable,
        today: Date,
        now: i64,
    ) -> Result<Result<State, Denied>> {
        let node = self.node_id.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(sub) = load(&tx, id)?.filter(|s| s.uscc == uscc) else { return Ok(Err(Denied::NotFound)) };
        if sub.state != State::UnitReview {
            return Ok(Err(Denied::WrongState(sub.state)));
        }
        let who = Account::unit(uscc).who();
        let state = if pass {
            let v = Validator { regions, today, node: Some(&node) };
            if let Err(errors) = check(&tx, &node, &v, &sub)? {
                return Ok(Err(Denied::Invalid(errors)));
            }
            tx.execute(
                "UPDATE submissions SET state = 'submitted', reason = NULL, submitted_at = ?2, updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            tx.execute("INSERT INTO decisions (submission, at, who, action) VALUES (?1, ?2, ?3, 'pass')", params![id, now, who])?;
            State::Submitted
        } else {
            tx.execute("UPDATE submissions SET state = 'returned', reason = ?2, updated_at = ?3 WHERE id = ?1", params![id, reason, now])?;
            tx.execute(
                "INSERT INTO decisions (submission, at, who, action, reason) VALUES (?1, ?2, ?3, 'unit_return', ?4)",
                params![id, now, who, reason],
            )?;
            State::Returned
        };
        tx.commit()?;
        Ok(Ok(state))
    }

    /// Approves a submitted submission: checks it again as of `today`, assigns the
    /// 登记号 of a new one (spec §6.3: the next serial for (node, year, kind) not held
    /// already), and enters the record through the rule of a row at its origin — all
    /// in one transaction with the serial, the submission's state and the decision.
    /// Returns the 登记号 and the record's version.
    pub fn approve(&mut self, id: &str, who: &str, regions: &RegionTable, today: Date, now: i64) -> Result<Result<(String, i64), Denied>> {
        if self.recover_needed()?.is_some() {
            return Ok(Err(Denied::RecoverNeeded));
        }
        let node = self.node_id.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(sub) = load(&tx, id)? else { return Ok(Err(Denied::NotFound)) };
        if sub.state != State::Submitted {
            return Ok(Err(Denied::WrongState(sub.state)));
        }
        let v = Validator { regions, today, node: Some(&node) };
        let (asked, row) = match check(&tx, &node, &v, &sub)? {
            Ok(checked) => checked,
            Err(errors) => return Ok(Err(Denied::Invalid(errors))),
        };
        let (row, serial) = match (row, &asked) {
            (Row::Upsert(mut r), Asked::New) => {
                let prefix = registration::reg_no_prefix(&node, r.reg_date.year, r.kind);
                let serial = next_serial(&tx, &prefix, &node, &r)?;
                r.reg_no = registration::reg_no_for(&node, r.reg_date.year, r.kind, serial);
                (Row::Upsert(r), Some((prefix, serial)))
            }
            (row, _) => (row, None),
        };
        let reg_no = row.reg_no().to_string();
        let source = format!("online:{id}");
        let applied = apply_local(&tx, &mut Seqs::start(&tx)?, &node, &source, Prepared::new(1, row), now)?;
        let applied = match applied {
            Ok(a) => a,
            Err(e) => return Ok(Err(Denied::Invalid(vec![e]))),
        };
        if let Some((prefix, serial)) = serial {
            tx.execute(
                "INSERT INTO serials (prefix, next) VALUES (?1, ?2) ON CONFLICT (prefix) DO UPDATE SET next = excluded.next",
                params![prefix, serial as i64 + 1],
            )?;
        }
        let version: i64 = tx.query_row("SELECT version FROM records WHERE reg_no = ?1", [&reg_no], |r| r.get(0))?;
        let state = if matches!(asked, Asked::Withdraw(_)) { State::Withdrawn } else { State::Registered };
        tx.execute(
            "UPDATE submissions SET state = ?2, reg_no = ?3, reason = NULL, updated_at = ?4 WHERE id = ?1",
            params![id, state.as_str(), reg_no, now],
        )?;
        tx.execute(
            "INSERT INTO decisions (submission, at, who, action, reg_no, version) VALUES (?1, ?2, ?3, 'approve', ?4, ?5)",
            params![id, now, who, reg_no, version],
        )?;
        tx.commit()?;
        if !matches!(applied, Applied::Unchanged) {
            self.notify_changes();
        }
        Ok(Ok((reg_no, version)))
    }

    /// Returns a submitted submission to its unit with the reviewer's reason.
    pub fn return_submission(&mut self, id: &str, who: &str, reason: &str, now: i64) -> Result<Result<State, Denied>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        match tx.query_row("SELECT state FROM submissions WHERE id = ?1", [id], |r| r.get::<_, String>(0)).optional()? {
            None => return Ok(Err(Denied::NotFound)),
            Some(s) if s != "submitted" => return Ok(Err(Denied::WrongState(State::parse(&s).unwrap_or(State::Draft)))),
            Some(_) => {}
        }
        tx.execute("UPDATE submissions SET state = 'returned', reason = ?2, updated_at = ?3 WHERE id = ?1", params![id, reason, now])?;
        tx.execute(
            "INSERT INTO decisions (submission, at, who, action, reason) VALUES (?1, ?2, ?3, 'return', ?4)",
            params![id, now, who, reason],
        )?;
        tx.commit()?;
        Ok(Ok(State::Returned))
    }
}

/// [`Writer::submit`] inside a transaction.
fn submit_in(
    tx: &Transaction<'_>,
    node: &str,
    id: &str,
    acc: &Account,
    regions: &RegionTable,
    today: Date,
    now: i64,
) -> Result<Result<State, Denied>> {
    let Some(sub) = load(tx, id)?.filter(|s| acc.sees(s)) else { return Ok(Err(Denied::NotFound)) };
    if !sub.state.editable() {
        return Ok(Err(Denied::WrongState(sub.state)));
    }
    let v = Validator { regions, today, node: Some(node) };
    let row = match check(tx, node, &v, &sub)? {
        Ok((_, row)) => row,
        Err(errors) => return Ok(Err(Denied::Invalid(errors))),
    };
    if let Row::Upsert(r) = &row {
        if !sub.attachments.iter().any(|a| registration::evidence_fits(r.kind, &a.ty)) {
            return Ok(Err(Denied::Invalid(vec![registration::missing_evidence(r.kind)])));
        }
    }
    // A member's submission waits for its unit's check; the unit's own goes to the office.
    let state = if acc.member.is_some() { State::UnitReview } else { State::Submitted };
    tx.execute(
        "UPDATE submissions SET state = ?3, reason = NULL, submitted_at = CASE WHEN ?3 = 'submitted' THEN ?2 END, updated_at = ?2
         WHERE id = ?1",
        params![id, now, state.as_str()],
    )?;
    tx.execute("INSERT INTO decisions (submission, at, who, action) VALUES (?1, ?2, ?3, 'submit')", params![id, now, acc.who()])?;
    Ok(Ok(state))
}

/// The state of submission `id` if `acc` sees it.
fn state_of(tx: &Transaction<'_>, id: &str, acc: &Account) -> Result<Option<State>> {
    let s: Option<String> = tx
        .query_row(
            "SELECT state FROM submissions WHERE id = ?1 AND uscc = ?2 AND (?3 IS NULL OR member = ?3)",
            params![id, acc.uscc, acc.member],
            |r| r.get(0),
        )
        .optional()?;
    Ok(s.and_then(|s| State::parse(&s)))
}

fn add_attachments(tx: &Transaction<'_>, id: &str, attachments: Vec<NewAttachment>) -> Result<Result<u32, Denied>> {
    let had: i64 = tx.query_row("SELECT count(*) FROM attachments WHERE submission = ?1", [id], |r| r.get(0))?;
    if had as usize + attachments.len() > registration::MAX_ATTACHMENTS {
        return Ok(Err(Denied::Invalid(vec![registration::bad_attachment(
            &format!("每份登记至多 {} 个附件", registration::MAX_ATTACHMENTS),
            &format!("at most {} attachments per submission", registration::MAX_ATTACHMENTS),
        )])));
    }
    let mut n = tx.query_row("SELECT coalesce(max(n), 0) FROM attachments WHERE submission = ?1", [id], |r| r.get::<_, i64>(0))? as u32;
    for a in attachments {
        n += 1;
        tx.execute(
            "INSERT INTO attachment_bytes (sha256, bytes) VALUES (?1, ?2) ON CONFLICT (sha256) DO NOTHING",
            params![a.sha256, a.bytes],
        )?;
        tx.execute(
            "INSERT INTO attachments (submission, n, type, name, format, size, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, n, a.ty, a.name, a.format, a.bytes.len() as i64, a.sha256],
        )?;
    }
    Ok(Ok(n))
}

/// Checks a stored submission as the node would take it now: what it asks for and the
/// row, or its errors.
fn check(
    conn: &rusqlite::Connection,
    node: &str,
    v: &Validator<'_>,
    sub: &Submission,
) -> Result<std::result::Result<(Asked, Row), Vec<RowError>>> {
    let mut lookups = Vec::new();
    for reg_no in sub.reg_no.iter().chain(sub.body.get("reg_no").and_then(Value::as_str).map(|s| s.to_ascii_uppercase()).as_ref()) {
        let acc = Account { uscc: sub.uscc.clone(), member: sub.member.clone() };
        lookups.push((reg_no.clone(), units_record(conn, &acc, reg_no)?));
    }
    let registered = |r: &str| lookups.iter().find(|(k, _)| k == r).and_then(|(_, rec)| rec.clone());
    let (asked, raw) = match registration::submission_row(&sub.body, node, v.today, &sub.unit_name, registered) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    Ok(registration::validate_submission(v, &asked, &raw).map(|row| (asked, row)))
}

/// The current record of `reg_no` if `acc`'s unit registered it online here (a
/// member: from its own submission) and it stands (not withdrawn): what a change or
/// withdrawal by that account may name.
fn units_record(conn: &rusqlite::Connection, acc: &Account, reg_no: &str) -> Result<Option<Record>> {
    let theirs: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM submissions WHERE uscc = ?1 AND reg_no = ?2 AND asked = 'new' AND state = 'registered'
                        AND (?3 IS NULL OR member = ?3))",
        params![acc.uscc, reg_no, acc.member],
        |r| r.get(0),
    )?;
    if !theirs {
        return Ok(None);
    }
    let body: Option<String> = conn
        .query_row(
            "SELECT c.body FROM records r JOIN changes c ON c.seq = r.body_seq WHERE r.reg_no = ?1 AND r.withdrawn = 0",
            [reg_no],
            |r| r.get(0),
        )
        .optional()?;
    body.map(|b| Record::from_json(b.as_bytes()).map_err(|e| super::StoreError::corrupt(format!("the body of {reg_no}"), e))).transpose()
}

/// The next serial for `prefix`: past the counter and past every 登记号 the node holds
/// (a file's, or one a parent gave back by `huijiao recover`), never one used before.
fn next_serial(tx: &Transaction<'_>, prefix: &str, node: &str, r: &Record) -> Result<u64> {
    let counter: Option<i64> = tx.query_row("SELECT next FROM serials WHERE prefix = ?1", [prefix], |r| r.get(0)).optional()?;
    let mut serial = counter.unwrap_or(1).max(1) as u64;
    let mut held = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM records WHERE reg_no = ?1)")?;
    loop {
        let reg_no = registration::reg_no_for(node, r.reg_date.year, r.kind, serial);
        if !held.query_row([&reg_no], |row| row.get::<_, bool>(0))? {
            return Ok(serial);
        }
        serial += 1;
    }
}

/// A submission with its unit's name, evidence and decisions.
fn load(conn: &rusqlite::Connection, id: &str) -> Result<Option<Submission>> {
    let row = conn
        .query_row(
            "SELECT s.id, s.uscc, coalesce(u.name, ''), s.state, s.asked, s.reg_no, s.body, s.reason, s.created_at, s.updated_at,
                    s.submitted_at, s.member, m.name
             FROM submissions s LEFT JOIN units u ON u.uscc = s.uscc LEFT JOIN members m ON m.login = s.member WHERE s.id = ?1",
            [id],
            submission_row,
        )
        .optional()?;
    let Some(mut sub) = row.transpose()? else { return Ok(None) };
    let mut st = conn.prepare_cached("SELECT n, type, name, format, size, sha256 FROM attachments WHERE submission = ?1 ORDER BY n")?;
    sub.attachments = st
        .query_map([id], |r| {
            Ok(Attachment {
                n: r.get(0)?,
                ty: r.get(1)?,
                name: r.get(2)?,
                format: r.get(3)?,
                size: r.get::<_, i64>(4)? as u64,
                sha256: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare_cached("SELECT at, who, action, reason, reg_no, version FROM decisions WHERE submission = ?1 ORDER BY id")?;
    sub.decisions = st
        .query_map([id], |r| {
            Ok(Decision { at: r.get(0)?, who: r.get(1)?, action: r.get(2)?, reason: r.get(3)?, reg_no: r.get(4)?, version: r.get(5)? })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(sub))
}

fn submission_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Submission>> {
    let body: String = r.get(6)?;
    let state: String = r.get(3)?;
    Ok(serde_json::from_str::<Map<String, Value>>(&body).map_err(|e| super::StoreError::corrupt("a submission's object", e)).map(|body| {
        Submission {
            id: r.get(0).unwrap_or_default(),
            uscc: r.get(1).unwrap_or_default(),
            unit_name: r.get(2).unwrap_or_default(),
            member: r.get(11).unwrap_or_default(),
            member_name: r.get(12).unwrap_or_default(),
            state: State::parse(&state).unwrap_or(State::Draft),
            asked: r.get(4).unwrap_or_default(),
            reg_no: r.get(5).unwrap_or_default(),
            body,
            reason: r.get(7).unwrap_or_default(),
            created_at: r.get(8).unwrap_or_default(),
            updated_at: r.get(9).unwrap_or_default(),
            submitted_at: r.get(10).unwrap_or_default(),
            attachments: Vec::new(),
            decisions: Vec::new(),
        }
    }))
}

/// What the review queue holds: how many wait, and since when the oldest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Queue {
    pub waiting: u64,
    pub oldest_submitted_at: Option<i64>,
}

impl Reader {
    /// Every unit account.
    pub fn units(&self) -> Result<Vec<Unit>> {
        let mut st = self.conn.prepare("SELECT uscc, name, must_change, disabled, created_at FROM units ORDER BY created_at, uscc")?;
        let rows = st.query_map([], |r| {
            Ok(Unit { uscc: r.get(0)?, name: r.get(1)?, must_change: r.get(2)?, disabled: r.get(3)?, created_at: r.get(4)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A unit and its password hash, for signing in.
    pub fn unit_credentials(&self, uscc: &str) -> Result<Option<(Unit, String)>> {
        Ok(self
            .conn
            .query_row("SELECT uscc, name, must_change, disabled, created_at, hash FROM units WHERE uscc = ?1", [uscc], |r| {
                Ok((
                    Unit { uscc: r.get(0)?, name: r.get(1)?, must_change: r.get(2)?, disabled: r.get(3)?, created_at: r.get(4)? },
                    r.get(5)?,
                ))
            })
            .optional()?)
    }

    /// One submission; with `acc`, only if that account sees it.
    pub fn submission(&self, id: &str, acc: Option<&Account>) -> Result<Option<Submission>> {
        Ok(load(&self.conn, id)?.filter(|s| acc.is_none_or(|a| a.sees(s))))
    }

    /// Submissions, newest first: those an account sees (`acc`), or in a state (the
    /// queue is `submitted`, oldest first).
    pub fn submissions(&self, acc: Option<&Account>, state: Option<State>, limit: usize) -> Result<Vec<Submission>> {
        let order = if state == Some(State::Submitted) { "s.submitted_at, s.id" } else { "s.updated_at DESC, s.id" };
        let sql = format!(
            "SELECT s.id FROM submissions s WHERE (?1 IS NULL OR s.uscc = ?1) AND (?4 IS NULL OR s.member = ?4)
             AND (?2 IS NULL OR s.state = ?2) ORDER BY {order} LIMIT ?3"
        );
        let mut st = self.conn.prepare(&sql)?;
        let (uscc, member) = (acc.map(|a| a.uscc.as_str()), acc.and_then(|a| a.member.as_deref()));
        let ids: Vec<String> =
            st.query_map(params![uscc, state.map(State::as_str), limit as i64, member], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = load(&self.conn, &id)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Evidence `n` of submission `id` with its bytes; with `acc`, only what it sees.
    pub fn attachment(&self, id: &str, n: u32, acc: Option<&Account>) -> Result<Option<(Attachment, Vec<u8>)>> {
        let Some(sub) = self.submission(id, acc)? else { return Ok(None) };
        let Some(a) = sub.attachments.into_iter().find(|a| a.n == n) else { return Ok(None) };
        let bytes: Vec<u8> = self.conn.query_row("SELECT bytes FROM attachment_bytes WHERE sha256 = ?1", [&a.sha256], |r| r.get(0))?;
        Ok(Some((a, bytes)))
    }

    /// The review queue's length and its oldest submission's time.
    pub fn review_queue(&self) -> Result<Queue> {
        let (n, oldest): (i64, Option<i64>) =
            self.conn.query_row("SELECT count(*), min(submitted_at) FROM submissions WHERE state = 'submitted'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok(Queue { waiting: n as u64, oldest_submitted_at: oldest })
    }

    /// The current record of `reg_no` if `acc` registered it online here and it stands.
    pub fn units_record(&self, acc: &Account, reg_no: &str) -> Result<Option<Record>> {
        units_record(&self.conn, acc, reg_no)
    }
}

impl Reader {
    /// Every version of `reg_no` with a body, oldest first, and whether the record is
    /// withdrawn now (a certificate names one of them).
    pub fn record_versions(&self, reg_no: &str) -> Result<(Vec<(i64, Record)>, bool)> {
        let mut st = self.conn.prepare_cached("SELECT version, body FROM changes WHERE reg_no = ?1 AND op = 0 ORDER BY seq")?;
        let rows: Vec<(i64, String)> = st.query_map([reg_no], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (v, body) in rows {
            out.push((v, Record::from_json(body.as_bytes()).map_err(|e| super::StoreError::corrupt(format!("the body of {reg_no}"), e))?));
        }
        let withdrawn: bool =
            self.conn.query_row("SELECT coalesce((SELECT withdrawn FROM records WHERE reg_no = ?1), 0)", [reg_no], |r| r.get(0))?;
        Ok((out, withdrawn))
    }
}
