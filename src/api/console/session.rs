//! Console sessions: an API token traded once for an opaque cookie, and the CSRF token that
//! must accompany every state-changing request made with that cookie.
//!
//! Invariants:
//! - the cookie value is 32 random bytes (hex); the table is keyed by its SHA-256, so a lookup
//!   never compares the secret itself, and the CSRF token is compared in constant time;
//! - a session ends at the latest [`LIFETIME`] after sign-in (the server checks, whatever the
//!   browser keeps), at sign-out, or as soon as its user is gone from the config or their API
//!   token changed (the session remembers the token's digest and re-checks it on every use);
//! - the table holds at most [`MAX_SESSIONS`], and at most [`MAX_PER_USER`] of one user: a
//!   sign-in over the user's cap ends that user's oldest session, one into a full table first
//!   drops expired sessions, then the one closest to expiry; so memory stays bounded and one
//!   token holder cannot sign everyone else out;
//! - sessions live in memory only: a restart of jitgate signs every browser out;
//! - the cookie is `HttpOnly; SameSite=Strict; Path=/` with a `Max-Age`, and `Secure` when the
//!   request reached jitgate over TLS (a TLS-terminating proxy in front that says so with
//!   `X-Forwarded-Proto: https` or `Forwarded: proto=https`; the API listener itself is plain
//!   HTTP).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::{ApiError, err};
use crate::config::{Config, User};

/// The cookie's name.
pub const COOKIE: &str = "jitgate_console";
/// The header a cookie-authenticated POST or DELETE must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a console session lives after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Console sessions held at once, across all users.
pub const MAX_SESSIONS: usize = 4096;
/// Console sessions one user holds at once.
pub const MAX_PER_USER: usize = 16;

/// One signed-in browser.
struct Session {
    user: String,
    /// SHA-256 of the API token signed in with: a changed token ends the session.
    token_digest: [u8; 32],
    csrf: String,
    expires: Instant,
}

/// What a signed-in browser is told about its session.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user: String,
    pub csrf: String,
    /// Seconds until the session ends.
    pub expires_in: u64,
}

/// Every console session of this process.
#[derive(Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic elsewhere while holding the lock leaves a consistent map: keep serving.
        self.by_digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session for `user`, who proved `token`; returns the cookie value and the session.
    pub fn sign_in(&self, user: &User, token: &str, now: Instant) -> (String, SignedIn) {
        let cookie = random_hex();
        let session = Session {
            user: user.name.clone(),
            token_digest: digest(token),
            csrf: random_hex(),
            expires: now + LIFETIME,
        };
        let signed_in = SignedIn {
            user: session.user.clone(),
            csrf: session.csrf.clone(),
            expires_in: LIFETIME.as_secs(),
        };
        let mut table = self.lock();
        let oldest = |table: &HashMap<[u8; 32], Session>, of: Option<&str>| {
            table
                .iter()
                .filter(|(_, s)| of.is_none_or(|name| s.user == name))
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k)
        };
        let own = table.values().filter(|s| s.user == user.name).count();
        if own >= MAX_PER_USER
            && let Some(key) = oldest(&table, Some(&user.name))
        {
            table.remove(&key);
        }
        if table.len() >= MAX_SESSIONS {
            table.retain(|_, s| s.expires > now);
        }
        if table.len() >= MAX_SESSIONS
            && let Some(key) = oldest(&table, None)
        {
            table.remove(&key);
        }
        table.insert(digest(&cookie), session);
        (cookie, signed_in)
    }

    /// The live session named by `cookie`, judged under `config`: its user, and what the
    /// browser may know of it. An expired session, or one whose user is gone or whose token
    /// changed, is removed and answers `None`.
    pub fn find(
        &self,
        cookie: &str,
        config: &Config,
        now: Instant,
    ) -> Option<(Arc<User>, SignedIn)> {
        let key = digest(cookie);
        let mut table = self.lock();
        let session = table.get(&key)?;
        let user = config.user(&session.user).filter(|u| {
            u.api_token_sha256
                .is_some_and(|d| bool::from(d.ct_eq(&session.token_digest)))
        });
        match user {
            Some(user) if session.expires > now => {
                let signed_in = SignedIn {
                    user: session.user.clone(),
                    csrf: session.csrf.clone(),
                    expires_in: session.expires.saturating_duration_since(now).as_secs(),
                };
                Some((user.clone(), signed_in))
            }
            _ => {
                table.remove(&key);
                None
            }
        }
    }

    /// Ends the session named by `cookie`; whether there was one.
    pub fn sign_out(&self, cookie: &str) -> bool {
        self.lock().remove(&digest(cookie)).is_some()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The console cookie's value in `headers`, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Whether a request's method changes state (and so needs the CSRF header with a cookie).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// 403 unless `headers` carry the session's CSRF token (compared in constant time).
pub fn check_csrf(headers: &HeaderMap, session: &SignedIn) -> Result<(), ApiError> {
    let given = headers
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let expected = session.csrf.as_bytes();
    // ct_eq on slices of different lengths is false (and says only the length).
    if bool::from(given.ct_eq(expected)) {
        Ok(())
    } else {
        Err(err(
            StatusCode::FORBIDDEN,
            "a console request that changes something needs the session's X-CSRF-Token header",
        ))
    }
}

/// Whether the request reached jitgate over TLS (terminated by a proxy in front that says so).
pub fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split([';', ','])
                .filter_map(|p| p.trim().split_once('='))
                .any(|(k, val)| {
                    k.eq_ignore_ascii_case("proto")
                        && val.trim_matches('"').eq_ignore_ascii_case("https")
                })
        });
    forwarded_proto || forwarded
}

/// The `Set-Cookie` value that stores `value` for `max_age` seconds (0: deletes it).
pub fn set_cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A config whose users are `(name, token)`.
    fn config_with(users: &[(&str, &str)]) -> Config {
        let mut text =
            String::from("[server]\napi_listen = \"127.0.0.1:8080\"\ndata_dir = \"/tmp/x\"\n\n");
        for (name, token) in users {
            text.push_str(&format!(
                "[[users]]\nname = \"{name}\"\napi_token_sha256 = \"{}\"\n\n",
                hex(digest(token))
            ));
        }
        Config::parse(&text, std::path::Path::new("/")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn bob_in(config: &Config) -> Arc<User> {
        config.user("bob").expect("bob is configured").clone()
    }

    #[test]
    fn a_session_lives_until_its_expiry_and_no_longer() {
        let sessions = Sessions::default();
        let config = config_with(&[("bob", "bob-token")]);
        let bob = bob_in(&config);
        let t0 = Instant::now();
        let (cookie, signed_in) = sessions.sign_in(&bob, "bob-token", t0);
        assert_eq!(cookie.len(), 64);
        assert_ne!(cookie, signed_in.csrf);
        let (who, seen) = sessions
            .find(&cookie, &config, t0 + LIFETIME - Duration::from_secs(1))
            .expect("live just before expiry");
        assert_eq!(who.name, "bob");
        assert_eq!(seen.csrf, signed_in.csrf);
        assert_eq!(seen.expires_in, 1);
        assert!(sessions.find(&cookie, &config, t0 + LIFETIME).is_none());
        assert!(sessions.is_empty(), "an expired session is removed");
        assert!(sessions.find("not-a-cookie", &config, t0).is_none());
    }

    #[test]
    fn a_changed_token_or_a_removed_user_ends_the_session() {
        let sessions = Sessions::default();
        let bob = bob_in(&config_with(&[("bob", "bob-token")]));
        let t0 = Instant::now();
        let (cookie, _) = sessions.sign_in(&bob, "bob-token", t0);
        let rotated = config_with(&[("bob", "new-token")]);
        assert!(sessions.find(&cookie, &rotated, t0).is_none());
        let (cookie, _) = sessions.sign_in(&bob, "bob-token", t0);
        assert!(sessions.find(&cookie, &config_with(&[]), t0).is_none());
        assert!(sessions.is_empty());
    }

    #[test]
    fn sign_out_ends_the_session() {
        let sessions = Sessions::default();
        let config = config_with(&[("bob", "bob-token")]);
        let bob = bob_in(&config);
        let t0 = Instant::now();
        let (cookie, _) = sessions.sign_in(&bob, "bob-token", t0);
        assert!(sessions.sign_out(&cookie));
        assert!(!sessions.sign_out(&cookie));
        assert!(sessions.find(&cookie, &config, t0).is_none());
    }

    #[test]
    fn one_user_holds_a_bounded_number_and_loses_their_oldest_first() {
        let sessions = Sessions::default();
        let config = config_with(&[("bob", "bob-token"), ("carol", "carol-token")]);
        let bob = bob_in(&config);
        let carol = config.user("carol").expect("carol").clone();
        let t0 = Instant::now();
        let (carols, _) = sessions.sign_in(&carol, "carol-token", t0);
        let (first, _) = sessions.sign_in(&bob, "bob-token", t0);
        let (second, _) = sessions.sign_in(&bob, "bob-token", t0 + Duration::from_millis(1));
        for i in 2..MAX_PER_USER + 2 {
            sessions.sign_in(&bob, "bob-token", t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(sessions.len(), MAX_PER_USER + 1);
        let later = t0 + Duration::from_secs(10);
        assert!(
            sessions.find(&first, &config, later).is_none(),
            "oldest gone"
        );
        assert!(sessions.find(&second, &config, later).is_none());
        assert!(
            sessions.find(&carols, &config, later).is_some(),
            "others keep theirs"
        );
    }

    #[test]
    fn the_whole_table_is_bounded_and_drops_the_oldest_first() {
        let sessions = Sessions::default();
        let users: Vec<(String, String)> = (0..=MAX_SESSIONS / MAX_PER_USER)
            .map(|i| (format!("u{i}"), format!("token-{i}")))
            .collect();
        let pairs: Vec<(&str, &str)> = users
            .iter()
            .map(|(u, t)| (u.as_str(), t.as_str()))
            .collect();
        let config = config_with(&pairs);
        let t0 = Instant::now();
        let mut first = None;
        let mut tick = 0;
        for (name, token) in &pairs[..pairs.len() - 1] {
            let u = config.user(name).expect("user").clone();
            for _ in 0..MAX_PER_USER {
                tick += 1;
                let (cookie, _) = sessions.sign_in(&u, token, t0 + Duration::from_millis(tick));
                first.get_or_insert(cookie);
            }
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        let (name, token) = pairs[pairs.len() - 1];
        let last = config.user(name).expect("user").clone();
        let later = t0 + Duration::from_secs(10);
        let (newest, _) = sessions.sign_in(&last, token, later);
        assert_eq!(sessions.len(), MAX_SESSIONS);
        let first = first.expect("a first session");
        assert!(
            sessions.find(&first, &config, later).is_none(),
            "oldest gone"
        );
        assert!(sessions.find(&newest, &config, later).is_some());
    }

    #[test]
    fn csrf_needs_the_exact_token() {
        let signed_in = SignedIn {
            user: "bob".into(),
            csrf: "abc123".into(),
            expires_in: 10,
        };
        let with = |v: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = v {
                h.insert(CSRF_HEADER, v.parse().expect("header value"));
            }
            check_csrf(&h, &signed_in).is_ok()
        };
        assert!(with(Some("abc123")));
        assert!(!with(None));
        assert!(!with(Some("")));
        assert!(!with(Some("abc12")));
        assert!(!with(Some("abc1234")));
        assert!(!with(Some("abc124")));
    }

    #[test]
    fn cookies_and_tls_are_read_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; jitgate_console=xyz ; b=2".parse().expect("header"),
        );
        assert_eq!(cookie_value(&h), Some("xyz"));
        assert!(!over_tls(&h));
        h.insert("x-forwarded-proto", "https".parse().expect("header"));
        assert!(over_tls(&h));
        let mut h = HeaderMap::new();
        h.insert(
            header::FORWARDED,
            "for=1.2.3.4;proto=https".parse().expect("header"),
        );
        assert!(over_tls(&h));
        assert_eq!(cookie_value(&h), None);
        assert!(set_cookie("v", 5, true).ends_with("; Secure"));
        assert!(!set_cookie("v", 5, false).contains("Secure"));
    }
}
