//! The office's named reviewers (spec §6.3, §6.4): accounts the operators create, each
//! signing in to the review pages with a password of its own, so that every decision
//! records who made it. The operators' token stays for machines and the command line.
//! A signed-in reviewer's page session is tied to the account's password hash, kept
//! here in memory after sign-in (sessions themselves live in memory too): a new
//! password or disabling the account ends it.

use super::{auth, Refused, Registration};
use crate::store::accounts::Reviewer;

/// A new reviewer and its one-time password (shown once, never kept).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewReviewer {
    pub login: String,
    pub name: String,
    pub password: String,
}

/// Whether `s` can be a reviewer's login: 2 to 32 of a–z, 0–9, `.`, `_`, `-`.
pub fn login_ok(s: &str) -> bool {
    (2..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn account(login: &str) -> String {
    format!("reviewer:{login}")
}

impl Registration {
    /// Creates a reviewer; its one-time password.
    pub async fn add_reviewer(&self, login: &str, name: &str) -> Result<NewReviewer, Refused> {
        let login = login.trim().to_ascii_lowercase();
        if !login_ok(&login) {
            return Err(Refused::BadRequest("a reviewer's login is 2 to 32 of a–z, 0–9, . _ -".into()));
        }
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 50 {
            return Err(Refused::BadRequest("a reviewer's name is 1 to 50 characters".into()));
        }
        let password = auth::one_time_password();
        let hash = auth::hash(password.clone()).await.map_err(Refused::Internal)?;
        let (l, n, now) = (login.clone(), name.clone(), crate::clock::now_ms());
        self.store.run(move |w| w.add_reviewer(&l, &n, &hash, now)).await?.map_err(Refused::from)?;
        tracing::info!(login = %login, "reviewer account created");
        Ok(NewReviewer { login, name, password })
    }

    pub async fn reviewers(&self) -> Result<Vec<Reviewer>, Refused> {
        Ok(self.store.read(|r| r.reviewers()).await?)
    }

    /// Disables or enables a reviewer (a disabled one's sessions end).
    pub async fn set_reviewer_disabled(&self, login: &str, disabled: bool) -> Result<(), Refused> {
        let (l, now) = (login.to_string(), crate::clock::now_ms());
        self.store.run(move |w| w.set_reviewer_disabled(&l, disabled, now)).await?.map_err(Refused::from)?;
        self.reviewer_keys.lock().expect("reviewer keys").remove(login);
        tracing::info!(login, disabled, "reviewer account changed");
        Ok(())
    }

    /// Checks a reviewer's password (failures counted as a unit's are).
    async fn check_reviewer(&self, login: &str, password: &str) -> Result<(Reviewer, String), Refused> {
        let login = login.trim().to_ascii_lowercase();
        self.not_locked(&account(&login))?;
        let l = login.clone();
        let found = self.store.read(move |r| r.reviewer_credentials(&l)).await?;
        let (reviewer, hash) = self.verify_sign_in(&account(&login), found, password).await?;
        if reviewer.disabled {
            return Err(Refused::Forbidden("reviewer_disabled", "this reviewer account is disabled".into()));
        }
        Ok((reviewer, hash))
    }

    /// Signs a reviewer in to the pages: the account and the secret its session is tied to.
    pub async fn reviewer_sign_in(&self, login: &str, password: &str) -> Result<(Reviewer, String), Refused> {
        let (reviewer, hash) = self.check_reviewer(login, password).await?;
        if reviewer.must_change {
            return Err(Refused::Forbidden("password_change_required", "the one-time password must be changed first".into()));
        }
        let secret = format!("reviewer\0{}\0{hash}", reviewer.login);
        self.reviewer_keys.lock().expect("reviewer keys").insert(reviewer.login.clone(), secret.clone());
        Ok((reviewer, secret))
    }

    /// Changes a reviewer's password (at least 10 characters, not the login).
    pub async fn change_reviewer_password(&self, login: &str, password: &str, new_password: &str) -> Result<(), Refused> {
        let (reviewer, _) = self.check_reviewer(login, password).await?;
        let weak = new_password.chars().count() < 10 || new_password.to_ascii_lowercase().contains(&reviewer.login);
        if weak {
            return Err(super::weak_password(
                "新密码至少 10 个字符，且不含登录名 (at least 10 characters, not containing the login)".into(),
            ));
        }
        let hash = auth::hash(new_password.to_string()).await.map_err(Refused::Internal)?;
        let (l, now) = (reviewer.login.clone(), crate::clock::now_ms());
        self.store.run(move |w| w.set_reviewer_password(&l, &hash, false, now)).await?.map_err(Refused::from)?;
        self.reviewer_keys.lock().expect("reviewer keys").remove(&reviewer.login);
        tracing::info!(login = %reviewer.login, "reviewer password changed");
        Ok(())
    }

    /// The secret a signed-in reviewer's session must have, while it holds.
    pub fn reviewer_key(&self, login: &str) -> Option<String> {
        self.reviewer_keys.lock().expect("reviewer keys").get(login).cloned()
    }

    /// A reviewer's name as decisions record it: `name (login)`.
    pub async fn reviewer_label(&self, login: &str) -> String {
        let l = login.to_string();
        match self.store.read(move |r| r.reviewer_credentials(&l)).await {
            Ok(Some((r, _))) => format!("{}（{}）", r.name, r.login),
            _ => login.to_string(),
        }
    }
}
