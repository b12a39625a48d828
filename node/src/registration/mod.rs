//! Online registration (spec v1.2 §6): what the API, the reviewer's page and the CLI
//! share. A unit account is created by the office; the unit signs in with its USCC,
//! submits its achievements with evidence; the office approves (the node assigns the
//! 登记号 and the record enters the store through the same rule as a file's row) or
//! returns them with a reason.
//!
//! Rooms: `auth` (password hashes, tokens, the failure limit), `evidence` (what an
//! attachment may be). The store keeps units, submissions, evidence and decisions
//! (`store::registration`); the rules without IO are `protocol::registration`.

pub mod auth;
pub mod certificate;
pub mod evidence;
pub mod members;
pub mod reviewers;

pub use crate::store::registration::Account;
use crate::store::registration::{Denied, NewAttachment, Submission};
use crate::store::{Store, StoreError};
use huijiao_protocol::registration::{self, Asked, State, MAX_ATTACHMENTS};
use huijiao_protocol::report::{zh_en, RowError};
use huijiao_protocol::secrecy;
use huijiao_protocol::validate::RawValue;
use huijiao_protocol::RegionTable;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Why a registration request was not carried out.
#[derive(Debug)]
pub enum Refused {
    /// 400: the request itself is malformed (not JSON, not an object).
    BadRequest(String),
    /// 401: wrong credentials, or no valid token.
    Unauthorized,
    /// 403 with a code (`password_change_required`, `unit_disabled`).
    Forbidden(&'static str, String),
    /// 404: no such submission, or not this unit's.
    NotFound,
    /// 409: not in a state that allows it, or a unit already there.
    Conflict(String),
    /// 422: §5 errors.
    Invalid(Vec<RowError>),
    /// 429: too many failures; seconds to wait.
    TooMany(u64),
    /// 503: approvals wait for `huijiao recover`.
    Unavailable(String),
    Store(StoreError),
    Internal(anyhow::Error),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Store(e)
    }
}

impl From<crate::store::WriterGone> for Refused {
    fn from(e: crate::store::WriterGone) -> Self {
        Refused::Store(e.into())
    }
}

impl From<Denied> for Refused {
    fn from(d: Denied) -> Self {
        match d {
            Denied::NotFound => Refused::NotFound,
            Denied::WrongState(s) => Refused::Conflict(format!("the submission is {} ({})", s.as_str(), s.zh())),
            Denied::Exists => Refused::Conflict("a unit with this code is already registered here".into()),
            Denied::Invalid(e) => Refused::Invalid(e),
            Denied::RecoverNeeded => Refused::Unavailable(
                "this store was restored from an older copy: approvals wait until `huijiao recover` has run (spec §6.3)".into(),
            ),
        }
    }
}

/// The registration service of one node.
pub struct Registration {
    pub store: Store,
    pub regions: Arc<RegionTable>,
    pub node: String,
    /// The office's name, printed on certificates.
    pub office: String,
    /// The data folder (the certificate key lives there).
    pub data_dir: std::path::PathBuf,
    /// Signed-in reviewers' session secrets (see `reviewers`).
    pub reviewer_keys: std::sync::Mutex<std::collections::HashMap<String, String>>,
    pub auth: auth::Auth,
}

/// A new unit and its one-time password (shown once, never kept).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewUnit {
    pub uscc: String,
    pub name: String,
    pub password: String,
}

/// The error of a USCC that is not one (§6.1).
pub fn bad_uscc(code: &str) -> Refused {
    Refused::Invalid(vec![RowError {
        row: 1,
        reg_no: None,
        field: Some("uscc".into()),
        code: "bad_uscc".into(),
        message: registration::bad_uscc(code),
    }])
}

impl Registration {
    /// Creates a unit account; returns its one-time password.
    pub async fn add_unit(&self, uscc: &str, name: &str) -> Result<NewUnit, Refused> {
        let uscc = uscc.trim().to_ascii_uppercase();
        if !registration::uscc_ok(&uscc) {
            return Err(bad_uscc(&uscc));
        }
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Refused::BadRequest("a unit's name is 1 to 200 characters".into()));
        }
        if secrecy::file_text_is_marked(&name) {
            return Err(Refused::Invalid(vec![secrecy::classified_error(1)]));
        }
        let password = auth::one_time_password();
        let hash = auth::hash(password.clone()).await.map_err(Refused::Internal)?;
        let (u, n, now) = (uscc.clone(), name.clone(), crate::clock::now_ms());
        self.store.run(move |w| w.add_unit(&u, &n, &hash, now)).await?.map_err(Refused::from)?;
        tracing::info!(uscc = %uscc, "unit account created");
        Ok(NewUnit { uscc, name, password })
    }

    /// A new one-time password for a unit (its tokens end).
    pub async fn reset_unit(&self, uscc: &str) -> Result<NewUnit, Refused> {
        let uscc = uscc.trim().to_ascii_uppercase();
        let password = auth::one_time_password();
        let hash = auth::hash(password.clone()).await.map_err(Refused::Internal)?;
        let (u, now) = (uscc.clone(), crate::clock::now_ms());
        self.store.run(move |w| w.set_unit_password(&u, &hash, true, now)).await?.map_err(Refused::from)?;
        self.auth.revoke(&uscc);
        let name = self.store.read(move |r| r.unit_credentials(&uscc)).await?.map(|(u, _)| u).ok_or(Refused::NotFound)?;
        tracing::info!(uscc = %name.uscc, "unit password reset");
        Ok(NewUnit { uscc: name.uscc, name: name.name, password })
    }

    /// Disables or enables a unit (a disabled unit's tokens end).
    pub async fn set_disabled(&self, uscc: &str, disabled: bool) -> Result<(), Refused> {
        let (u, now) = (uscc.trim().to_ascii_uppercase(), crate::clock::now_ms());
        let key = u.clone();
        self.store.run(move |w| w.set_unit_disabled(&u, disabled, now)).await?.map_err(Refused::from)?;
        if disabled {
            self.auth.revoke(&key);
        }
        tracing::info!(uscc = %key, disabled, "unit account changed");
        Ok(())
    }

    /// Refuses an account closed by too many failed sign-ins (`key`: its failure count's name).
    fn not_locked(&self, key: &str) -> Result<(), Refused> {
        match self.auth.locked(key) {
            Some(wait) => Err(Refused::TooMany(wait)),
            None => Ok(()),
        }
    }

    /// The password check every kind of account shares: `found` is the account and its
    /// hash if it exists — an unknown one costs a hash too, so timing does not tell
    /// which exist; a failure is counted under `key`, and the fifth closes the account.
    async fn verify_sign_in<T: Send>(&self, key: &str, found: Option<(T, String)>, password: &str) -> Result<(T, String), Refused> {
        let hash = match &found {
            Some((_, h)) => h.clone(),
            None => tokio::task::spawn_blocking(dummy_hash).await.map_err(|e| Refused::Internal(e.into()))?,
        };
        // Verified whether the account exists or not: the same time either way.
        let matches = auth::verify(password.to_string(), hash).await;
        match found {
            Some(f) if matches => {
                self.auth.succeeded(key);
                Ok(f)
            }
            _ => {
                self.auth.failed(key);
                self.not_locked(key)?;
                Err(Refused::Unauthorized)
            }
        }
    }

    /// Checks a unit's password (counting failures); the unit when it matches.
    async fn check_password(&self, uscc: &str, password: &str) -> Result<crate::store::registration::Unit, Refused> {
        let uscc = uscc.trim().to_ascii_uppercase();
        self.not_locked(&uscc)?;
        let key = uscc.clone();
        let found = self.store.read(move |r| r.unit_credentials(&key)).await?;
        let (unit, _) = self.verify_sign_in(&uscc, found, password).await?;
        if unit.disabled {
            return Err(Refused::Forbidden("unit_disabled", "this unit account is disabled; ask the registering office".into()));
        }
        Ok(unit)
    }

    /// Signs a unit in: a bearer token and its lifetime in seconds.
    pub async fn token(&self, uscc: &str, password: &str) -> Result<(String, u64), Refused> {
        let unit = self.check_password(uscc, password).await?;
        if unit.must_change {
            return Err(Refused::Forbidden(
                "password_change_required",
                "the one-time password must be changed first (POST /api/v1/unit/password)".into(),
            ));
        }
        Ok((self.auth.issue(&Account::unit(&unit.uscc)), auth::token_lifetime().as_secs()))
    }

    /// Signs a unit in to the pages: the unit, and the secret its page session is tied
    /// to (its password hash: a new password, a reset or disabling ends the session).
    pub async fn page_sign_in(&self, uscc: &str, password: &str) -> Result<(crate::store::registration::Unit, String), Refused> {
        let unit = self.check_password(uscc, password).await?;
        if unit.must_change {
            return Err(Refused::Forbidden("password_change_required", "the one-time password must be changed first".into()));
        }
        let secret = self.page_secret(&unit.uscc).await?.ok_or(Refused::Unauthorized)?;
        Ok((unit, secret))
    }

    /// The secret a unit's page session must have been opened with, while the unit may
    /// sign in at all (not disabled, its password changed).
    pub async fn page_secret(&self, uscc: &str) -> Result<Option<String>, Refused> {
        let u = uscc.to_string();
        let found = self.store.read(move |r| r.unit_credentials(&u)).await?;
        Ok(found.filter(|(unit, _)| !unit.disabled && !unit.must_change).map(|(unit, hash)| format!("unit\0{}\0{hash}", unit.uscc)))
    }

    /// Changes a unit's password (the one-time password is good for nothing else).
    pub async fn change_password(&self, uscc: &str, password: &str, new_password: &str) -> Result<(), Refused> {
        let unit = self.check_password(uscc, password).await?;
        if let Some(why) = registration::password_refusal(&unit.uscc, new_password) {
            return Err(weak_password(why));
        }
        let hash = auth::hash(new_password.to_string()).await.map_err(Refused::Internal)?;
        let (u, now) = (unit.uscc.clone(), crate::clock::now_ms());
        self.store.run(move |w| w.set_unit_password(&u, &hash, false, now)).await?.map_err(Refused::from)?;
        self.auth.revoke(&unit.uscc);
        tracing::info!(uscc = %unit.uscc, "unit password changed");
        Ok(())
    }

    /// Creates a submission (`id` None) or replaces a draft's or returned one's object;
    /// submits it unless `draft`. Nothing of a classified submission is kept.
    pub async fn save(&self, acc: &Account, id: Option<&str>, mut body: Map<String, Value>) -> Result<Submission, Refused> {
        let draft = match body.remove("draft") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(_) => return Err(Refused::BadRequest("draft is true or false".into())),
        };
        let inline = match body.remove("attachments") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(Refused::BadRequest("attachments is a list of {type, name, content_base64}".into())),
        };
        if inline.len() > MAX_ATTACHMENTS {
            return Err(Refused::Invalid(vec![registration::bad_attachment(
                &format!("每份登记至多 {MAX_ATTACHMENTS} 个附件"),
                &format!("at most {MAX_ATTACHMENTS} attachments per submission"),
            )]));
        }
        let mut attachments = Vec::new();
        let mut names = Vec::new();
        for a in &inline {
            let field = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            names.push(field("name"));
            let Some(bytes) = evidence::base64_decode(&field("content_base64")) else {
                return Err(Refused::Invalid(vec![registration::bad_attachment(
                    "content_base64 不是 base64",
                    "content_base64 is not base64",
                )]));
            };
            attachments.push((field("type"), field("name"), bytes));
        }
        // The whole-file screen over everything the unit typed, and its 密级: a
        // classified submission is refused before anything of it is kept (spec §6.2).
        screen(&body, &names.iter().map(String::as_str).collect::<Vec<_>>())?;
        let mut checked = Vec::new();
        for (ty, name, bytes) in attachments {
            checked.push(evidence::check(&ty, &name, bytes).map_err(|e| Refused::Invalid(vec![e]))?);
        }
        let asked = self.asked(acc, &body).await?;
        let create = id.is_none();
        let id = id.map_or_else(new_id, str::to_string);
        let (sid, a, now) = (id.clone(), acc.clone(), crate::clock::now_ms());
        let submit = (!draft).then(|| (self.regions.clone(), crate::clock::today()));
        self.store
            .run(move |w| w.save_submission(&sid, &a, create, &asked, &body, checked, submit.as_ref().map(|(r, d)| (&**r, *d)), now))
            .await?
            .map_err(Refused::from)?;
        self.submission(Some(acc), &id).await
    }

    /// What a unit's object asks for (a new record, or a change or withdrawal of one of
    /// its own), refusing what is malformed whatever the draft.
    async fn asked(&self, acc: &Account, body: &Map<String, Value>) -> Result<Asked, Refused> {
        let named = body.get("reg_no").and_then(Value::as_str).map(|s| s.trim().to_ascii_uppercase()).filter(|s| !s.is_empty());
        let held = match named.clone() {
            Some(r) => {
                let a = acc.clone();
                self.store.read(move |reader| reader.units_record(&a, &r)).await?
            }
            None => None,
        };
        let registered = |r: &str| held.clone().filter(|_| named.as_deref() == Some(r));
        match registration::submission_row(body, &self.node, crate::clock::today(), "", registered) {
            Ok((asked, _)) => Ok(asked),
            Err(e) => Err(Refused::Invalid(e)),
        }
    }

    /// Adds evidence sent as raw bytes.
    pub async fn add_attachment(&self, acc: &Account, id: &str, ty: &str, name: &str, bytes: Vec<u8>) -> Result<Value, Refused> {
        screen(&Map::new(), &[name])?;
        let a: NewAttachment = evidence::check(ty, name, bytes).map_err(|e| Refused::Invalid(vec![e]))?;
        let answer = json!({"type": a.ty, "name": a.name, "size": a.bytes.len(), "sha256": a.sha256});
        let (i, acc) = (id.to_string(), acc.clone());
        self.store.run(move |w| w.add_attachment(&i, &acc, a)).await?.map_err(Refused::from)?;
        Ok(answer)
    }

    /// Submits a draft or a returned submission for review (a member's to its unit's
    /// check first).
    pub async fn submit(&self, acc: &Account, id: &str) -> Result<Submission, Refused> {
        let (i, a, regions, today, now) =
            (id.to_string(), acc.clone(), self.regions.clone(), crate::clock::today(), crate::clock::now_ms());
        self.store.run(move |w| w.submit(&i, &a, &regions, today, now)).await?.map_err(Refused::from)?;
        self.submission(Some(acc), id).await
    }

    /// The 登记证书 of a registered submission (with `acc`, only one it sees): its
    /// record as it stands now, with its check code.
    pub async fn certificate(&self, acc: Option<&Account>, id: &str) -> Result<certificate::Certificate, Refused> {
        let sub = self.submission(acc, id).await?;
        let reg_no = match (&sub.state, &sub.reg_no) {
            (State::Registered, Some(r)) => r.clone(),
            _ => {
                return Err(Refused::Conflict(format!(
                    "a certificate is issued once the submission is registered; it is {}",
                    sub.state.as_str()
                )))
            }
        };
        let (versions, withdrawn) = self.store.read(move |r| r.record_versions(&reg_no)).await?;
        let Some((version, record)) = versions.last().filter(|_| !withdrawn) else { return Err(Refused::NotFound) };
        let key = certificate::key(&self.data_dir).map_err(Refused::Internal)?;
        Ok(certificate::issue(&key, record, *version, &self.office))
    }

    /// What `/verify` confirms: the certificate `code` names among the versions of
    /// `reg_no`, and whether the record has been withdrawn since; `None` otherwise.
    pub async fn verify(&self, reg_no: &str, code: &str) -> Result<Option<(certificate::Certificate, bool)>, Refused> {
        let r = reg_no.trim().to_ascii_uppercase();
        if r.is_empty() || r.len() > 30 || code.len() > 64 {
            return Ok(None);
        }
        let (versions, withdrawn) = self.store.read(move |reader| reader.record_versions(&r)).await?;
        let key = certificate::key(&self.data_dir).map_err(Refused::Internal)?;
        Ok(certificate::verify(&key, code, &versions, &self.office).map(|c| (c, withdrawn)))
    }

    /// One submission; with `acc`, only one that account sees.
    pub async fn submission(&self, acc: Option<&Account>, id: &str) -> Result<Submission, Refused> {
        let (i, a) = (id.to_string(), acc.cloned());
        self.store.read(move |r| r.submission(&i, a.as_ref())).await?.ok_or(Refused::NotFound)
    }

    /// Submissions an account sees, or in a state.
    pub async fn submissions(&self, acc: Option<&Account>, state: Option<State>) -> Result<Vec<Submission>, Refused> {
        let a = acc.cloned();
        Ok(self.store.read(move |r| r.submissions(a.as_ref(), state, 1000)).await?)
    }

    /// Approves a submission: its 登记号 and the record's version.
    pub async fn approve(&self, id: &str, reviewer: &str) -> Result<(String, i64), Refused> {
        let reviewer = who(reviewer)?;
        let (i, r, regions, today, now) =
            (id.to_string(), reviewer.clone(), self.regions.clone(), crate::clock::today(), crate::clock::now_ms());
        let (reg_no, version) = self.store.run(move |w| w.approve(&i, &r, &regions, today, now)).await?.map_err(Refused::from)?;
        tracing::info!(submission = %id, reg_no = %reg_no, version, reviewer = %reviewer, "submission approved");
        Ok((reg_no, version))
    }

    /// Returns a submission to its unit with a reason.
    pub async fn return_to_unit(&self, id: &str, reviewer: &str, reason: &str) -> Result<State, Refused> {
        let reviewer = who(reviewer)?;
        let reason = reason.trim().to_string();
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(Refused::BadRequest("a return needs a reason of 1 to 2000 characters".into()));
        }
        if secrecy::file_text_is_marked(&reason) {
            return Err(Refused::Invalid(vec![secrecy::classified_error(1)]));
        }
        let (i, r, now) = (id.to_string(), reviewer.clone(), crate::clock::now_ms());
        let state = self.store.run(move |w| w.return_submission(&i, &r, &reason, now)).await?.map_err(Refused::from)?;
        tracing::info!(submission = %id, reviewer = %reviewer, "submission returned");
        Ok(state)
    }
}

/// The refusal of a new password that breaks the rule (`why`, Chinese and English).
pub(crate) fn weak_password(why: String) -> Refused {
    Refused::Invalid(vec![RowError {
        row: 1,
        reg_no: None,
        field: Some("new_password".into()),
        code: "weak_password".into(),
        message: why,
    }])
}

/// Who decided: a reviewer's name, 1 to 100 characters.
fn who(reviewer: &str) -> Result<String, Refused> {
    let r = reviewer.trim();
    if r.is_empty() || r.chars().count() > 100 || r.chars().any(char::is_control) {
        return Err(Refused::BadRequest("reviewer: the name of who decides, 1 to 100 characters".into()));
    }
    Ok(r.to_string())
}

/// The whole-file screen of spec §3 over a submission, and its 密级: a classified one
/// (or one whose 密级 is no level) is refused with one error naming only the field.
fn screen(body: &Map<String, Value>, names: &[&str]) -> Result<(), Refused> {
    if registration::marked(body, names) {
        tracing::warn!("a submission was refused: it carries a secrecy marking (nothing of it kept)");
        return Err(Refused::Invalid(vec![secrecy::classified_error(1)]));
    }
    let secret = body.get("secret").map(|v| match v {
        Value::String(s) => RawValue::Text(s.clone()),
        Value::Null => RawValue::Empty,
        _ => RawValue::Invalid("value"),
    });
    match secret.as_ref().map(|s| secrecy::judge([s])) {
        Some(secrecy::Verdict::Classified) => Err(Refused::Invalid(vec![secrecy::classified_error(1)])),
        Some(secrecy::Verdict::Bad) => Err(Refused::Invalid(vec![secrecy::bad_secret_error(1)])),
        _ => Ok(()),
    }
}

/// An opaque submission id.
fn new_id() -> String {
    crate::web::session::random_hex()[..20].to_string()
}

/// A hash of a password nobody knows: an unknown unit is checked against it, so an
/// answer takes as long whether the unit exists or not.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| auth::hash_now(&crate::web::session::random_hex()).unwrap_or_default()).clone()
}

/// A submission as the API shows it (spec §6.4).
pub fn submission_json(s: &Submission) -> Value {
    json!({
        "id": s.id,
        "state": s.state.as_str(),
        "reg_no": s.reg_no,
        "reason": s.reason,
        "record": s.body,
        "attachments": s.attachments,
        "unit": {"uscc": s.uscc, "name": s.unit_name},
        "member": s.member.as_ref().map(|m| json!({"login": m, "name": s.member_name})),
        "created_at": crate::clock::rfc3339_china(s.created_at),
        "updated_at": crate::clock::rfc3339_china(s.updated_at),
        "submitted_at": s.submitted_at.map(crate::clock::rfc3339_china),
        "submitted_at_ms": s.submitted_at,
        "decisions": s.decisions.iter().map(|d| json!({
            "at": crate::clock::rfc3339_china(d.at), "who": d.who, "action": d.action,
            "reason": d.reason, "reg_no": d.reg_no, "version": d.version,
        })).collect::<Vec<_>>(),
    })
}

/// The message of a refusal, Chinese then English, for the pages.
impl Refused {
    /// The HTTP status a page answers this refusal with.
    pub fn page_status(&self) -> u16 {
        match self {
            Refused::NotFound => 404,
            Refused::Conflict(_) => 409,
            Refused::Invalid(_) => 422,
            Refused::BadRequest(_) => 400,
            Refused::Unavailable(_) => 503,
            Refused::Unauthorized => 401,
            Refused::Forbidden(..) => 403,
            Refused::TooMany(_) => 429,
            _ => 500,
        }
    }
}

pub fn zh_message(r: &Refused) -> String {
    match r {
        Refused::Invalid(e) => {
            e.iter().map(|e| format!("{}：{}", e.field.as_deref().unwrap_or("—"), e.message)).collect::<Vec<_>>().join("；")
        }
        Refused::Conflict(m) => zh_en("当前状态不允许此操作", m),
        Refused::NotFound => zh_en("没有这份登记", "no such submission"),
        Refused::Unavailable(m) => zh_en("暂不能审批：须先运行 huijiao recover", m),
        Refused::BadRequest(m) => zh_en("请求不完整", m),
        _ => zh_en("操作失败", "the operation failed"),
    }
}

/// What the office asks of the service from the command line (through the daemon's
/// admin socket, or on the store itself when the daemon is not running).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    UnitAdd { uscc: String, name: String },
    UnitList,
    UnitReset { uscc: String },
    UnitDisable { uscc: String, disabled: bool },
    ReviewList { state: Option<State> },
    ReviewShow { id: String },
    ReviewApprove { id: String, reviewer: String },
    ReviewReturn { id: String, reviewer: String, reason: String },
    ReviewerAdd { login: String, name: String },
    ReviewerList,
    ReviewerDisable { login: String, disabled: bool },
}

impl Registration {
    /// Carries out an office's command; its answer as JSON.
    pub async fn command(&self, c: Command) -> Result<Value, Refused> {
        Ok(match c {
            Command::UnitAdd { uscc, name } => json!(self.add_unit(&uscc, &name).await?),
            Command::UnitList => json!({"units": self.store.read(|r| r.units()).await?}),
            Command::UnitReset { uscc } => json!(self.reset_unit(&uscc).await?),
            Command::UnitDisable { uscc, disabled } => {
                self.set_disabled(&uscc, disabled).await?;
                json!({"uscc": uscc, "disabled": disabled})
            }
            Command::ReviewList { state } => {
                json!({"submissions": self.submissions(None, state).await?.iter().map(submission_json).collect::<Vec<_>>()})
            }
            Command::ReviewShow { id } => submission_json(&self.submission(None, &id).await?),
            Command::ReviewApprove { id, reviewer } => {
                let (reg_no, version) = self.approve(&id, &reviewer).await?;
                json!({"reg_no": reg_no, "version": version})
            }
            Command::ReviewReturn { id, reviewer, reason } => {
                json!({"state": self.return_to_unit(&id, &reviewer, &reason).await?.as_str()})
            }
            Command::ReviewerAdd { login, name } => json!(self.add_reviewer(&login, &name).await?),
            Command::ReviewerList => json!({"reviewers": self.reviewers().await?}),
            Command::ReviewerDisable { login, disabled } => {
                self.set_reviewer_disabled(&login, disabled).await?;
                json!({"login": login, "disabled": disabled})
            }
        })
    }
}

/// A refusal as the admin socket carries it: an HTTP-like status, a message, and the
/// §5 errors of an invalid submission.
pub fn refusal_json(r: &Refused) -> Value {
    let (status, message) = match r {
        Refused::BadRequest(m) => (400, m.clone()),
        Refused::Unauthorized => (401, "not signed in".into()),
        Refused::Forbidden(_, m) => (403, m.clone()),
        Refused::NotFound => (404, "no such unit or submission".into()),
        Refused::Conflict(m) => (409, m.clone()),
        Refused::Invalid(_) => (422, "it breaks a rule".into()),
        Refused::TooMany(s) => (429, format!("too many failures; retry in {s} s")),
        Refused::Unavailable(m) => (503, m.clone()),
        Refused::Store(e) => (500, format!("{e:#}")),
        Refused::Internal(e) => (500, format!("{e:#}")),
    };
    let errors = match r {
        Refused::Invalid(e) => json!(e),
        _ => Value::Null,
    };
    json!({"status": status, "message": message, "errors": errors})
}
