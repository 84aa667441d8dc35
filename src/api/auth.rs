//! Who is calling: [`authenticate`] turns a request's bearer token into the user it belongs
//! to, or answers 401. Handlers never call it themselves: they take a `visibility::Viewer`,
//! the one extractor, which authenticates and then decides what the caller may see, so no
//! handler can forget either check. The one other caller is the web console's sign-in,
//! which checks the token it is given with [`user_for_token`] before it opens a session.
//!
//! A token is checked by hashing it (SHA-256) and comparing with every user's
//! `api_token_sha256` in constant time, without stopping at the first match.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, err};
use crate::config::{Config, User};

/// The user a bearer token belongs to, under `config`.
pub(super) fn authenticate(config: &Config, headers: &HeaderMap) -> Result<Arc<User>, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
    user_for_token(config, token)
}

/// The user whose API token is `token`, under `config` (the console's sign-in uses it too).
pub(super) fn user_for_token(config: &Config, token: &str) -> Result<Arc<User>, ApiError> {
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found = None;
    // Compare against every user, without stopping early, so timing says nothing.
    for u in config.users.values() {
        if let Some(h) = &u.api_token_sha256
            && bool::from(h.ct_eq(&digest))
        {
            found = Some(u.clone());
        }
    }
    found.ok_or_else(|| err(StatusCode::UNAUTHORIZED, "invalid token"))
}
