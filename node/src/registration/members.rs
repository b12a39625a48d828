//! A unit's member accounts (填报人, spec §6.1): the unit account creates them and
//! disables them; each signs in with the login its unit gave it (or the node made up:
//! the unit's code and a number, `91350100m000100y43-1`) and a one-time password it
//! changes first; a member sees only its own submissions, and what it submits waits for
//! the unit account's check (`unit_review`) before it reaches the office.

use super::{auth, Account, Refused, Registration};
use crate::store::accounts::Member;
use crate::store::registration::{Denied, Submission};
use huijiao_protocol::registration::{self, State};
use huijiao_protocol::secrecy;

/// A new member and its one-time password (shown once to its unit, never kept).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewMember {
    pub login: String,
    pub name: String,
    pub password: String,
}

/// Whether `s` can be a member's login: 2 to 40 of a–z, 0–9, `.`, `_`, `-`, and not
/// a unit's code (so that what someone types to sign in names one account only).
pub fn login_ok(s: &str) -> bool {
    (2..=40).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !registration::uscc_ok(&s.to_ascii_uppercase())
}

/// What someone typed to sign in, as the account it names: a valid 统一社会信用代码 is
/// a unit, anything else a member's login (logins ignore case).
pub fn account_named(typed: &str) -> SignInName {
    let t = typed.trim();
    if registration::uscc_ok(&t.to_ascii_uppercase()) {
        SignInName::Unit(t.to_ascii_uppercase())
    } else {
        SignInName::Member(t.to_ascii_lowercase())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInName {
    Unit(String),
    Member(String),
}

fn lock_key(login: &str) -> String {
    format!("member:{login}")
}

/// The refusal of what only the unit account may do.
fn unit_only(acc: &Account) -> Result<&str, Refused> {
    match acc.member {
        None => Ok(&acc.uscc),
        Some(_) => Err(Refused::Forbidden("unit_account_required", "only the unit account may do this (a member may not)".into())),
    }
}

impl Registration {
    /// The unit account creates a member named `name`, with `login` or one made up.
    pub async fn add_member(&self, acc: &Account, name: &str, login: Option<&str>) -> Result<NewMember, Refused> {
        let uscc = unit_only(acc)?.to_string();
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 50 || name.chars().any(char::is_control) {
            return Err(Refused::BadRequest("a member's name is 1 to 50 characters".into()));
        }
        if secrecy::file_text_is_marked(&name) {
            return Err(Refused::Invalid(vec![secrecy::classified_error(1)]));
        }
        let given = login.map(|l| l.trim().to_ascii_lowercase()).filter(|l| !l.is_empty());
        if let Some(l) = &given {
            if !login_ok(l) {
                return Err(Refused::BadRequest(
                    "a member's login is 2 to 40 of a–z, 0–9, . _ - (not a unit's code); leave it out and the node makes one".into(),
                ));
            }
        }
        let password = auth::one_time_password();
        let hash = auth::hash(password.clone()).await.map_err(Refused::Internal)?;
        let u = uscc.clone();
        let mut n = self.store.read(move |r| r.member_count(&u)).await? + 1;
        loop {
            let login = given.clone().unwrap_or_else(|| format!("{}-{n}", uscc.to_ascii_lowercase()));
            let (u, l, nm, h, now) = (uscc.clone(), login.clone(), name.clone(), hash.clone(), crate::clock::now_ms());
            match self.store.run(move |w| w.add_member(&u, &l, &nm, &h, now)).await? {
                Ok(()) => {
                    tracing::info!(uscc = %uscc, login = %login, "member account created");
                    return Ok(NewMember { login, name, password });
                }
                // A made-up login someone already took (its own choice): the next number.
                Err(Denied::Exists) if given.is_none() && n < 100_000 => n += 1,
                Err(Denied::Exists) => return Err(Refused::Conflict("this login is taken; choose another".into())),
                Err(d) => return Err(d.into()),
            }
        }
    }

    /// The unit's members (the unit account only).
    pub async fn members(&self, acc: &Account) -> Result<Vec<Member>, Refused> {
        let uscc = unit_only(acc)?.to_string();
        Ok(self.store.read(move |r| r.unit_members(&uscc)).await?)
    }

    /// Disables or enables one of the unit's members (its tokens end).
    pub async fn set_member_disabled(&self, acc: &Account, login: &str, disabled: bool) -> Result<(), Refused> {
        let (u, l, now) = (unit_only(acc)?.to_string(), login.trim().to_ascii_lowercase(), crate::clock::now_ms());
        let key = l.clone();
        self.store.run(move |w| w.set_member_disabled(&u, &l, disabled, now)).await?.map_err(Refused::from)?;
        if disabled {
            self.auth.revoke_member(&key);
        }
        tracing::info!(uscc = %acc.uscc, login = %key, disabled, "member account changed");
        Ok(())
    }

    /// A new one-time password for one of the unit's members (its tokens end).
    pub async fn reset_member(&self, acc: &Account, login: &str) -> Result<NewMember, Refused> {
        let uscc = unit_only(acc)?.to_string();
        let l = login.trim().to_ascii_lowercase();
        let key = l.clone();
        let member = self.store.read(move |r| r.member_credentials(&key)).await?.map(|m| m.0).filter(|m| m.uscc == uscc);
        let Some(member) = member else { return Err(Refused::NotFound) };
        let password = auth::one_time_password();
        let hash = auth::hash(password.clone()).await.map_err(Refused::Internal)?;
        let (lg, now) = (member.login.clone(), crate::clock::now_ms());
        self.store.run(move |w| w.set_member_password(&lg, &hash, true, now)).await?.map_err(Refused::from)?;
        self.auth.revoke_member(&member.login);
        Ok(NewMember { login: member.login, name: member.name, password })
    }

    /// Checks a member's password (failures counted per member as a unit's are).
    async fn check_member(&self, login: &str, password: &str) -> Result<(Member, String), Refused> {
        let login = login.trim().to_ascii_lowercase();
        self.not_locked(&lock_key(&login))?;
        let l = login.clone();
        let found = self.store.read(move |r| r.member_credentials(&l)).await?.map(|(m, hash, unit_disabled)| ((m, unit_disabled), hash));
        let ((member, unit_disabled), hash) = self.verify_sign_in(&lock_key(&login), found, password).await?;
        if unit_disabled {
            return Err(Refused::Forbidden("unit_disabled", "this member's unit account is disabled; ask the registering office".into()));
        }
        if member.disabled {
            return Err(Refused::Forbidden("member_disabled", "this member account is disabled; ask your unit".into()));
        }
        Ok((member, hash))
    }

    /// Signs a member in: a bearer token and its lifetime in seconds.
    pub async fn member_token(&self, login: &str, password: &str) -> Result<(String, u64), Refused> {
        let (member, _) = self.check_member(login, password).await?;
        if member.must_change {
            return Err(Refused::Forbidden(
                "password_change_required",
                "the one-time password must be changed first (POST /api/v1/unit/password)".into(),
            ));
        }
        let acc = Account { uscc: member.uscc, member: Some(member.login) };
        Ok((self.auth.issue(&acc), auth::token_lifetime().as_secs()))
    }

    /// Signs a member in to the pages: its account and the secret its session is tied to.
    pub async fn member_sign_in(&self, login: &str, password: &str) -> Result<(Account, String), Refused> {
        let (member, hash) = self.check_member(login, password).await?;
        if member.must_change {
            return Err(Refused::Forbidden("password_change_required", "the one-time password must be changed first".into()));
        }
        let secret = member_secret(&member.login, &hash);
        Ok((Account { uscc: member.uscc, member: Some(member.login) }, secret))
    }

    /// Changes a member's password (≥ 10 characters, containing neither its unit's code
    /// nor its login).
    pub async fn change_member_password(&self, login: &str, password: &str, new_password: &str) -> Result<(), Refused> {
        let (member, _) = self.check_member(login, password).await?;
        let why = registration::password_refusal(&member.uscc, new_password).or_else(|| {
            new_password
                .to_ascii_lowercase()
                .contains(&member.login)
                .then(|| huijiao_protocol::report::zh_en("新密码不能包含登录账号", "a new password must not contain the login"))
        });
        if let Some(why) = why {
            return Err(super::weak_password(why));
        }
        let hash = auth::hash(new_password.to_string()).await.map_err(Refused::Internal)?;
        let (l, now) = (member.login.clone(), crate::clock::now_ms());
        self.store.run(move |w| w.set_member_password(&l, &hash, false, now)).await?.map_err(Refused::from)?;
        self.auth.revoke_member(&member.login);
        tracing::info!(login = %member.login, "member password changed");
        Ok(())
    }

    /// The secret a page session of `acc` must have been opened with, while the account
    /// may sign in at all (it and its unit not disabled, its password changed).
    pub async fn account_secret(&self, acc: &Account) -> Result<Option<String>, Refused> {
        let Some(login) = &acc.member else { return self.page_secret(&acc.uscc).await };
        let l = login.clone();
        let found = self.store.read(move |r| r.member_credentials(&l)).await?;
        Ok(found
            .filter(|(m, _, unit_disabled)| !unit_disabled && !m.disabled && !m.must_change && m.uscc == acc.uscc)
            .map(|(m, hash, _)| member_secret(&m.login, &hash)))
    }

    /// The unit account passes a member's submission on to the office (checked again).
    pub async fn unit_pass(&self, acc: &Account, id: &str) -> Result<Submission, Refused> {
        self.unit_decide(acc, id, None).await
    }

    /// The unit account returns a member's submission to it with a reason.
    pub async fn unit_return(&self, acc: &Account, id: &str, reason: &str) -> Result<Submission, Refused> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(Refused::BadRequest("a return needs a reason of 1 to 2000 characters".into()));
        }
        if secrecy::file_text_is_marked(reason) {
            return Err(Refused::Invalid(vec![secrecy::classified_error(1)]));
        }
        self.unit_decide(acc, id, Some(reason)).await
    }

    async fn unit_decide(&self, acc: &Account, id: &str, reason: Option<&str>) -> Result<Submission, Refused> {
        let uscc = unit_only(acc)?.to_string();
        let (i, u, r, regions, today, now) =
            (id.to_string(), uscc.clone(), reason.map(str::to_string), self.regions.clone(), crate::clock::today(), crate::clock::now_ms());
        let state = self
            .store
            .run(move |w| w.unit_decide(&i, &u, r.is_none(), r.as_deref(), &regions, today, now))
            .await?
            .map_err(Refused::from)?;
        tracing::info!(submission = %id, uscc = %uscc, passed = state == State::Submitted, "unit checked a member's submission");
        self.submission(Some(acc), id).await
    }
}

fn member_secret(login: &str, hash: &str) -> String {
    format!("member\0{login}\0{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_name_is_a_unit_only_when_it_is_a_valid_code() {
        assert_eq!(account_named(" 91350100m000100y43 "), SignInName::Unit("91350100M000100Y43".into()));
        assert_eq!(account_named("91350100M000100Y43-1"), SignInName::Member("91350100m000100y43-1".into()));
        assert_eq!(account_named("ZhangSan"), SignInName::Member("zhangsan".into()));
        assert!(login_ok("zhangsan") && login_ok("91350100m000100y43-12"));
        assert!(!login_ok("91350100m000100y43"), "a unit's code is not a login");
        assert!(!login_ok("张三") && !login_ok("a") && !login_ok("a b"));
    }
}
