//! Unit sign-in: passwords only as Argon2id hashes (computed on the blocking pool, a
//! few at a time, so a burst of sign-ins cannot take every core), one-time passwords,
//! bearer tokens kept server-side with their expiry, and the limit on failures (spec
//! §6.4: five for one account within 15 minutes close it for 15 minutes).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bearer token lives this long (spec §6.4: at most an hour).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// [`TOKEN_LIFETIME`], or the shorter one the test hook `HUIJIAO_TEST_TOKEN_SECS`
/// sets (tests of an expired token cannot wait an hour).
pub fn token_lifetime() -> Duration {
    static SECS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    SECS.get_or_init(|| std::env::var("HUIJIAO_TEST_TOKEN_SECS").ok().and_then(|s| s.parse().ok()))
        .map_or(TOKEN_LIFETIME, |s| Duration::from_secs(s).min(TOKEN_LIFETIME))
}
/// Failures within [`FAILURE_WINDOW`] that close an account for [`LOCKOUT`].
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Hashes computed at once.
const CONCURRENT_HASHES: usize = 2;
/// Tokens and failure records held at most (the oldest go first).
const MAX_ENTRIES: usize = 20_000;

/// The Argon2id hash (PHC string) of `password`, on the blocking pool.
pub async fn hash(password: String) -> anyhow::Result<String> {
    let _permit = HASHING.acquire().await?;
    tokio::task::spawn_blocking(move || hash_now(&password)).await?
}

/// Whether `password` matches `phc`, on the blocking pool.
pub async fn verify(password: String, phc: String) -> bool {
    let Ok(_permit) = HASHING.acquire().await else { return false };
    tokio::task::spawn_blocking(move || verify_now(&password, &phc)).await.unwrap_or(false)
}

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_HASHES);

/// The hash, here and now (the CLI, which has no async pool to spare).
pub fn hash_now(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("the operating system's random source: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("a salt: {e}"))?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?.to_string())
}

pub fn verify_now(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A one-time password: 16 characters of an alphabet without look-alikes (no 0/O,
/// 1/l/I), in four groups a person can read out on the phone.
pub fn one_time_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random source");
    let chars: Vec<char> = b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// Who a token belongs to: a unit account or one of its members.
pub type Bearer = crate::store::registration::Account;

struct TokenEntry {
    bearer: Bearer,
    expires: Instant,
}

/// The server's tokens and failure counts.
#[derive(Default)]
pub struct Auth {
    tokens: Mutex<HashMap<[u8; 32], TokenEntry>>,
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Default)]
struct Failures {
    at: Vec<Instant>,
    locked_until: Option<Instant>,
}

impl Auth {
    /// A new token for `account` (its fingerprint kept, never the token).
    pub fn issue(&self, account: &Bearer) -> String {
        let token = crate::web::session::random_hex();
        let mut map = self.tokens.lock().expect("tokens lock");
        let now = Instant::now();
        map.retain(|_, e| e.expires > now);
        if map.len() >= MAX_ENTRIES {
            if let Some(k) = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k) {
                map.remove(&k);
            }
        }
        map.insert(fingerprint(&token), TokenEntry { bearer: account.clone(), expires: now + token_lifetime() });
        token
    }

    /// Who `token` belongs to, while it lives.
    pub fn bearer(&self, token: &str) -> Option<Bearer> {
        let map = self.tokens.lock().expect("tokens lock");
        map.get(&fingerprint(token)).filter(|e| e.expires > Instant::now()).map(|e| e.bearer.clone())
    }

    /// Ends every token of `uscc` and its members (a new password, a disabled unit).
    pub fn revoke(&self, uscc: &str) {
        self.tokens.lock().expect("tokens lock").retain(|_, e| e.bearer.uscc != uscc);
    }

    /// Ends every token of one member.
    pub fn revoke_member(&self, login: &str) {
        self.tokens.lock().expect("tokens lock").retain(|_, e| e.bearer.member.as_deref() != Some(login));
    }

    /// Seconds until `account` may try again, if it is closed.
    pub fn locked(&self, account: &str) -> Option<u64> {
        let map = self.failures.lock().expect("failures lock");
        let until = map.get(account)?.locked_until?;
        let now = Instant::now();
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    /// Counts a failed sign-in of `account`; closes it at the fifth within the window.
    pub fn failed(&self, account: &str) {
        let mut map = self.failures.lock().expect("failures lock");
        let now = Instant::now();
        if map.len() >= MAX_ENTRIES && !map.contains_key(account) {
            map.retain(|_, f| f.locked_until.is_some_and(|u| u > now) || f.at.iter().any(|t| now - *t < FAILURE_WINDOW));
        }
        let f = map.entry(account.to_string()).or_default();
        f.at.retain(|t| now - *t < FAILURE_WINDOW);
        f.at.push(now);
        if f.at.len() >= MAX_FAILURES {
            f.locked_until = Some(now + LOCKOUT);
            f.at.clear();
        }
    }

    /// A successful sign-in clears the account's failures.
    pub fn succeeded(&self, account: &str) {
        self.failures.lock().expect("failures lock").remove(account);
    }
}

fn fingerprint(token: &str) -> [u8; 32] {
    huijiao_protocol::record::sha256(format!("huijiao-unit-token\0{token}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_argon2id_hashes_that_verify() {
        let h = hash_now("一个足够长的密码abc").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_now("一个足够长的密码abc", &h));
        assert!(!verify_now("一个足够长的密码abd", &h));
        assert_ne!(hash_now("一个足够长的密码abc").unwrap(), h, "salted");
        assert!(!verify_now("x", "not a hash"));
    }

    #[test]
    fn one_time_passwords_are_random_and_readable() {
        let (a, b) = (one_time_password(), one_time_password());
        assert_ne!(a, b);
        assert_eq!(a.len(), 19);
        assert!(!a.chars().any(|c| "0O1lI".contains(c)), "{a}");
    }

    #[test]
    fn tokens_belong_to_their_unit_until_revoked() {
        let auth = Auth::default();
        let unit = Bearer::unit("91350100M000100Y43");
        let member = Bearer { member: Some("91350100m000100y43-1".into()), ..unit.clone() };
        let t = auth.issue(&unit);
        let m = auth.issue(&member);
        assert_eq!(auth.bearer(&t).unwrap(), unit);
        assert_eq!(auth.bearer(&m).unwrap(), member);
        assert!(auth.bearer("guess").is_none());
        auth.revoke_member("91350100m000100y43-1");
        assert!(auth.bearer(&m).is_none());
        assert!(auth.bearer(&t).is_some(), "the unit's token stays");
        let m = auth.issue(&member);
        auth.revoke("91350100M000100Y43");
        assert!(auth.bearer(&t).is_none());
        assert!(auth.bearer(&m).is_none(), "a unit's revocation ends its members' tokens");
    }

    #[test]
    fn five_failures_close_an_account_and_a_success_clears_them() {
        let auth = Auth::default();
        for _ in 0..4 {
            auth.failed("a");
        }
        assert_eq!(auth.locked("a"), None);
        auth.succeeded("a");
        for _ in 0..4 {
            auth.failed("a");
        }
        assert_eq!(auth.locked("a"), None, "the success started the count again");
        auth.failed("a");
        assert!(auth.locked("a").is_some_and(|s| s > 14 * 60));
        assert_eq!(auth.locked("b"), None, "per account");
    }
}
