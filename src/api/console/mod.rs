//! The web console: a page, its scripts and style, embedded in the binary and served on the
//! API listener (`GET /` and `GET /console/…`), and the console session it signs in with.
//!
//! The console is a client of the same API as the CLI: it reads and acts through the `/v1`
//! routes, so every answer it gets went through the one `visibility::Viewer` decision. What
//! differs is how it authenticates: the browser trades the user's API token once
//! (`POST /console/session`) for an HttpOnly cookie ([`session`]), which the `Viewer` accepts
//! in place of a bearer token, with the session's CSRF token required on every request that
//! changes something (a cookie-authenticated POST or DELETE without it is 403).
//!
//! Invariants:
//! - assets are compiled in (`include_str!`): nothing is fetched from elsewhere at run time;
//! - every console response carries [`security_headers`]: a Content-Security-Policy that
//!   allows only this origin's scripts and styles (no inline script, no framing),
//!   `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`;
//! - the scripts never put user data into `innerHTML`: they build DOM nodes with
//!   `textContent`, and show control characters as visible escapes.

pub mod session;

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::visibility::Viewer;
use super::{Api, ApiError, auth, err, openapi};
use crate::config::{Config, User};
pub use session::Sessions;

const INDEX_HTML: &str = include_str!("assets/index.html");
const CONSOLE_CSS: &str = include_str!("assets/console.css");
const APP_JS: &str = include_str!("assets/app.js");
const RENDER_JS: &str = include_str!("assets/render.js");
const PLAYER_JS: &str = include_str!("assets/player.js");

/// The policy every console response carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers of every console response.
fn security_headers() -> [(header::HeaderName, HeaderValue); 5] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        security_headers(),
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// The user a console cookie in `parts` stands for, and the cookie, for the `Viewer`:
/// `Ok(None)` when the request carries a bearer token (which then decides) or no console
/// cookie; 401 for a cookie that names no live session; 403 for a request that changes
/// something without the session's CSRF token.
pub(super) fn cookie_user(
    api: &Api,
    config: &Config,
    parts: &axum::http::request::Parts,
) -> Result<Option<(std::sync::Arc<User>, String)>, ApiError> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return Ok(None);
    }
    let Some(cookie) = session::cookie_value(&parts.headers) else {
        return Ok(None);
    };
    let (user, signed_in) = api
        .console
        .find(cookie, config, Instant::now())
        .ok_or_else(|| {
            err(
                StatusCode::UNAUTHORIZED,
                "the console session has ended: sign in again",
            )
        })?;
    if session::changes_state(&parts.method) {
        session::check_csrf(&parts.headers, &signed_in)?;
    }
    Ok(Some((user, cookie.to_string())))
}

/// The console's page.
#[utoipa::path(
    get,
    path = "/",
    tag = "console",
    responses((status = 200, description = "The web console (no token needed; it signs in with one)",
               content_type = "text/html; charset=utf-8", body = String))
)]
pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// The console's style sheet.
#[utoipa::path(
    get,
    path = "/console/console.css",
    tag = "console",
    responses((status = 200, description = "Style sheet", content_type = "text/css; charset=utf-8", body = String))
)]
pub(super) async fn console_css() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}

/// The console's application script.
#[utoipa::path(
    get,
    path = "/console/app.js",
    tag = "console",
    responses((status = 200, description = "Script", content_type = "text/javascript; charset=utf-8", body = String))
)]
pub(super) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The console's rendering helpers (escaping, highlighting).
#[utoipa::path(
    get,
    path = "/console/render.js",
    tag = "console",
    responses((status = 200, description = "Script", content_type = "text/javascript; charset=utf-8", body = String))
)]
pub(super) async fn render_js() -> Response {
    asset("text/javascript; charset=utf-8", RENDER_JS)
}

/// The console's terminal player for SSH recordings.
#[utoipa::path(
    get,
    path = "/console/player.js",
    tag = "console",
    responses((status = 200, description = "Script", content_type = "text/javascript; charset=utf-8", body = String))
)]
pub(super) async fn player_js() -> Response {
    asset("text/javascript; charset=utf-8", PLAYER_JS)
}

/// Sign-in: the user's API token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignIn {
    token: String,
}

/// A console session as its browser sees it.
#[derive(Serialize, ToSchema)]
pub(super) struct ConsoleSession {
    user: String,
    /// Whether the user is one of `[api] auditors`.
    auditor: bool,
    /// The value of the `X-CSRF-Token` header every POST and DELETE made with the cookie
    /// needs (absent for a bearer-token caller).
    #[schema(required = false)]
    csrf: Option<String>,
    /// Seconds until the session ends (absent for a bearer-token caller).
    #[schema(required = false)]
    expires_in: Option<u64>,
}

/// Sign in to the console with an API token: sets the session cookie.
#[utoipa::path(
    post,
    path = "/console/session",
    tag = "console",
    request_body(content = SignIn, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in; `Set-Cookie` carries the session (HttpOnly, SameSite=Strict, Secure behind TLS)", body = ConsoleSession),
        (status = 400, description = "Not a JSON body `{\"token\": \"…\"}`", body = openapi::ErrorBody),
        (status = 401, description = "No user has this token", body = openapi::ErrorBody),
    )
)]
pub(super) async fn sign_in(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // A JSON content type cannot be sent cross-site without a CORS preflight, which this
    // server never answers: a forged sign-in (login CSRF) cannot come from another site.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "sign in with a JSON body {\"token\": \"…\"} (Content-Type: application/json)",
        ));
    }
    let SignIn { token } = serde_json::from_slice(&body)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))?;
    let config = api.app.config();
    let user = auth::user_for_token(&config, token.trim())?;
    // A browser signing in again replaces its session rather than adding one.
    if let Some(old) = session::cookie_value(&headers) {
        api.console.sign_out(old);
    }
    let (cookie, signed_in) = api.console.sign_in(&user, token.trim(), Instant::now());
    let set = session::set_cookie(&cookie, signed_in.expires_in, session::over_tls(&headers));
    let body = ConsoleSession {
        auditor: config.api.is_auditor(&user),
        user: signed_in.user,
        csrf: Some(signed_in.csrf),
        expires_in: Some(signed_in.expires_in),
    };
    Ok((security_headers(), [(header::SET_COOKIE, set)], Json(body)).into_response())
}

/// Who the caller is: with the console cookie, also the session's CSRF token.
#[utoipa::path(
    get,
    path = "/console/session",
    tag = "console",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller (with the console cookie: the session's CSRF token and time left)", body = ConsoleSession),
        (status = 401, description = "No live console session and no valid bearer token", body = openapi::ErrorBody),
    )
)]
pub(super) async fn current_session(
    State(api): State<Api>,
    headers: HeaderMap,
    viewer: Viewer,
) -> Response {
    let config = api.app.config();
    let signed_in = if headers.contains_key(header::AUTHORIZATION) {
        None
    } else {
        session::cookie_value(&headers)
            .and_then(|c| api.console.find(c, &config, Instant::now()))
            .map(|(_, s)| s)
    };
    let body = ConsoleSession {
        user: viewer.user.name.clone(),
        auditor: viewer.is_auditor(),
        csrf: signed_in.as_ref().map(|s| s.csrf.clone()),
        expires_in: signed_in.map(|s| s.expires_in),
    };
    (security_headers(), Json(body)).into_response()
}

/// Sign out: ends the console session named by the cookie and deletes the cookie.
#[utoipa::path(
    delete,
    path = "/console/session",
    tag = "console",
    responses(
        (status = 200, description = "Signed out (`signed_out` false when there was no live session); `Set-Cookie` deletes the cookie", body = Object),
        (status = 403, description = "A live session's cookie without its X-CSRF-Token header", body = openapi::ErrorBody),
    )
)]
pub(super) async fn sign_out(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let config = api.app.config();
    let mut signed_out = false;
    if let Some(cookie) = session::cookie_value(&headers)
        && let Some((_, signed_in)) = api.console.find(cookie, &config, Instant::now())
    {
        session::check_csrf(&headers, &signed_in)?;
        signed_out = api.console.sign_out(cookie);
    }
    let set = session::set_cookie("", 0, session::over_tls(&headers));
    Ok((
        security_headers(),
        [(header::SET_COOKIE, set)],
        Json(json!({ "signed_out": signed_out })),
    )
        .into_response())
}
