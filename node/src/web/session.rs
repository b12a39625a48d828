//! Sign-in sessions and the guard of every form: the one mechanism the node's pages
//! use for whoever signs in (operators today).
//!
//! A session is a random 256-bit id, given to the browser in an HttpOnly,
//! SameSite=Strict cookie and kept here on the server with what it belongs to. It ends
//! after [`IDLE`] without a request, [`MAX_AGE`] after sign-in in all, at sign-out, and
//! when the secret it was opened with changes (a new operators' token ends every
//! operator session). Each session carries its own form token: every form of a signed-in
//! page holds it in a hidden field, and a POST is taken only with that token and an
//! `Origin` (or, lacking one, a `Referer`) of this very host.

use axum::http::{header, HeaderMap};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, however busy.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at most; past it the one used least recently is dropped.
const MAX_SESSIONS: usize = 1000;

/// The name of the form field holding the session's form token.
pub const FORM_TOKEN: &str = "csrf";

/// 32 random bytes from the operating system, as hex.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source");
    huijiao_protocol::record::hex(&b)
}

/// What a signed-in request knows of its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The token every form of this session must carry.
    pub form_token: String,
    /// Who signed in (for operators: `operator`).
    pub subject: String,
}

struct Entry {
    session: Session,
    /// A fingerprint of the secret the session was opened with.
    secret: [u8; 32],
    created: Instant,
    last_seen: Instant,
}

/// The server's sessions.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
}

/// A fingerprint of a secret (never kept itself).
pub fn fingerprint(secret: &str) -> [u8; 32] {
    huijiao_protocol::record::sha256(format!("huijiao-session\0{secret}").as_bytes())
}

impl Sessions {
    /// Opens a session for `subject`, signed in with `secret`; returns its id.
    pub fn open(&self, subject: &str, secret: &str, now: Instant) -> String {
        let id = random_hex();
        let mut map = self.map.lock().expect("sessions lock");
        map.retain(|_, e| alive(e, now));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.last_seen).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        let session = Session { form_token: random_hex(), subject: subject.to_string() };
        map.insert(id.clone(), Entry { session, secret: fingerprint(secret), created: now, last_seen: now });
        id
    }

    /// The live session `id`, opened with `secret` (the current one), and marks it used.
    /// An expired session, or one opened with another secret, is ended.
    pub fn get(&self, id: &str, secret: &str, now: Instant) -> Option<Session> {
        let mut map = self.map.lock().expect("sessions lock");
        let e = map.get_mut(id)?;
        let same = constant_time_eq(&e.secret, &fingerprint(secret));
        if !same || !alive(e, now) {
            map.remove(id);
            return None;
        }
        e.last_seen = now;
        Some(e.session.clone())
    }

    /// Who session `id` belongs to, without touching it (to find the secret it must
    /// have been opened with).
    pub fn subject(&self, id: &str) -> Option<String> {
        self.map.lock().expect("sessions lock").get(id).map(|e| e.session.subject.clone())
    }

    /// Ends session `id` (sign-out).
    pub fn end(&self, id: &str) {
        self.map.lock().expect("sessions lock").remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

fn alive(e: &Entry, now: Instant) -> bool {
    now.saturating_duration_since(e.last_seen) < IDLE && now.saturating_duration_since(e.created) < MAX_AGE
}

/// The value of cookie `name` in a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for session `id` under `name`, for pages under `path`.
pub fn set_cookie(name: &str, id: &str, path: &str) -> String {
    format!("{name}={id}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={}", MAX_AGE.as_secs())
}

/// A `Set-Cookie` value that removes cookie `name`.
pub fn clear_cookie(name: &str, path: &str) -> String {
    format!("{name}=; HttpOnly; SameSite=Strict; Path={path}; Max-Age=0")
}

/// Whether a POST comes from a page of this host: its `Origin`, or when a browser sent
/// none its `Referer`, names the `Host` it was sent to. Neither: refused.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let from_here = |url: &str| {
        let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
        rest.is_some_and(|r| r == host || r.strip_prefix(host).is_some_and(|p| p.starts_with('/')))
    };
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => from_here(origin),
        None => headers.get(header::REFERER).and_then(|r| r.to_str().ok()).is_some_and(from_here),
    }
}

/// Whether a form posted in `session` is its own: the right form token and the origin.
pub fn form_ok(session: &Session, headers: &HeaderMap, given: &str) -> bool {
    same_origin(headers) && constant_time_eq(given.as_bytes(), session.form_token.as_bytes())
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_are_random_expire_and_end_with_their_secret() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let a = s.open("operator", "secret-token-0123456789", t0);
        let b = s.open("operator", "secret-token-0123456789", t0);
        assert_ne!(a, b, "every sign-in gets its own id");
        assert_eq!(a.len(), 64);
        let sa = s.get(&a, "secret-token-0123456789", t0).unwrap();
        assert_ne!(sa.form_token, s.get(&b, "secret-token-0123456789", t0).unwrap().form_token);
        // Used every 20 minutes it stays, until 12 hours in all.
        let mut t = t0;
        for _ in 0..35 {
            t += Duration::from_secs(20 * 60);
            assert!(s.get(&a, "secret-token-0123456789", t).is_some());
        }
        t += Duration::from_secs(20 * 60);
        assert!(s.get(&a, "secret-token-0123456789", t).is_none(), "12 h in all");
        // 30 minutes idle ends it.
        assert!(s.get(&b, "secret-token-0123456789", t0 + IDLE).is_none());
        // A new secret ends the old sessions; sign-out ends one.
        let c = s.open("operator", "old-secret-0123456789", t0);
        assert!(s.get(&c, "new-secret-0123456789", t0).is_none());
        assert!(s.get(&c, "old-secret-0123456789", t0).is_none(), "ended for good");
        let d = s.open("operator", "x-secret-0123456789", t0);
        s.end(&d);
        assert!(s.get(&d, "x-secret-0123456789", t0).is_none());
        assert!(s.get("not-a-session", "x-secret-0123456789", t0).is_none());
        for _ in 0..MAX_SESSIONS + 10 {
            s.open("operator", "x", t0);
        }
        assert!(s.len() <= MAX_SESSIONS);
    }

    #[test]
    fn forms_need_their_token_and_this_origin() {
        let s = Sessions::default();
        let now = Instant::now();
        let id = s.open("operator", "k", now);
        let session = s.get(&id, "k", now).unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!form_ok(&session, &h, &session.form_token), "no Origin, no Referer");
        h.insert(header::REFERER, HeaderValue::from_static("http://127.0.0.1:8080/admin"));
        assert!(form_ok(&session, &h, &session.form_token));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(form_ok(&session, &h, &session.form_token));
        assert!(!form_ok(&session, &h, "forged"));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080.evil.example"));
        assert!(!form_ok(&session, &h, &session.form_token));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!form_ok(&session, &h, &session.form_token));
        let mut c = HeaderMap::new();
        c.insert(header::COOKIE, HeaderValue::from_static("a=1; hj_admin=abc; b=2"));
        assert_eq!(cookie(&c, "hj_admin"), Some("abc"));
        assert_eq!(cookie(&c, "hj"), None);
    }
}
