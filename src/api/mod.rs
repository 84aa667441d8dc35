//! The control API: JSON over HTTP with bearer tokens.
//!
//! Every handler that needs a bearer token takes a `visibility::Viewer`, which answers 401
//! without a valid one (`auth`) and is the one place that decides who may see what: own
//! items, what one may decide, everything for `[api] auditors`. Every error body is
//! `{"error":"…"}`.
//!
//! - `auth`: the bearer token to the user.
//! - `visibility`: who may see which request, grant and session; 404 alike for "not yours"
//!   and "does not exist".
//! - `requests`: requests and grants (list, stream, approve, deny, revoke).
//! - `sessions`: the audit trail (sessions, events, recordings, export, verify).
//! - [`console`]: the web console at `/` (embedded assets) and its cookie sessions, which the
//!   `Viewer` accepts in place of a bearer token (with a CSRF token on POST and DELETE).
//! - [`openapi`]: the OpenAPI document and the schemas only the document needs.
//!
//! Every route is registered in [`routes`] through `utoipa_axum::routes!`, which adds the
//! handler and its `#[utoipa::path]` description together: the OpenAPI document served at
//! `GET /v1/openapi.json` ([`openapi`]) is the router's own list of routes.

mod auth;
pub mod console;
pub mod openapi;
mod requests;
mod sessions;
mod visibility;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::approval::DecideError;

#[derive(Clone)]
pub struct Api {
    pub app: Arc<AppState>,
    /// Set once every listener is bound.
    pub ready: Arc<AtomicBool>,
    /// The web console's signed-in browsers.
    pub console: Arc<console::Sessions>,
}

pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn err(code: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(code, msg.into())
}

impl From<DecideError> for ApiError {
    fn from(e: DecideError) -> Self {
        let code = match e {
            DecideError::NotFound => StatusCode::NOT_FOUND,
            DecideError::NotPending(_) => StatusCode::CONFLICT,
            DecideError::OwnRequest | DecideError::NotApprover => StatusCode::FORBIDDEN,
            DecideError::AlreadyApproved => StatusCode::CONFLICT,
            DecideError::StateStore(_) => StatusCode::SERVICE_UNAVAILABLE,
            DecideError::GrantTooLong(..)
            | DecideError::GrantZero
            | DecideError::ScopeTooWide(_) => StatusCode::BAD_REQUEST,
        };
        err(code, e.to_string())
    }
}

/// Every route of the API with its OpenAPI description. This is the only place routes are
/// added, and only through `routes!` (which registers handler and description together), so
/// the served document cannot miss a route. The path and method of each come from the
/// handler's `#[utoipa::path]`.
pub fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(requests::list_requests))
        .routes(routes!(requests::stream_requests))
        .routes(routes!(requests::get_request))
        .routes(routes!(requests::approve))
        .routes(routes!(requests::deny))
        .routes(routes!(requests::list_grants))
        .routes(routes!(requests::revoke_grant))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::get_session))
        .routes(routes!(sessions::session_events))
        .routes(routes!(sessions::session_recording))
        .routes(routes!(sessions::session_recordings))
        .routes(routes!(sessions::export_events))
        .routes(routes!(sessions::verify_chain))
        .routes(routes!(console::index))
        .routes(routes!(console::console_css))
        .routes(routes!(console::app_js))
        .routes(routes!(console::render_js))
        .routes(routes!(console::player_js))
        .routes(routes!(
            console::sign_in,
            console::current_session,
            console::sign_out
        ))
}

/// The API's router: [`routes`], a JSON 404 for anything else, and the state.
pub fn router(api: Api) -> Router {
    let (router, _document) = routes().split_for_parts();
    router
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::map_response(json_errors))
        .with_state(api)
}

/// Errors made by axum itself (a query string or path it cannot parse: 400, a wrong method:
/// 405) come as plain text; give them the API's `{"error":"…"}` body too.
async fn json_errors(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if resp.status().as_u16() < 400 || is_json {
        return resp;
    }
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let msg = String::from_utf8_lossy(&body).trim().to_string();
    let msg = if msg.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase()
    } else {
        msg
    };
    err(status, msg).into_response()
}

/// The OpenAPI 3 document of this API.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document of the control API (no token needed)",
               content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::document_json(),
    )
        .into_response()
}

/// Ready once every listener is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    responses(
        (status = 200, description = "Every listener is up (no token needed)", body = openapi::Health),
        (status = 503, description = "Still starting", body = openapi::ErrorBody),
    )
)]
async fn healthz(State(api): State<Api>) -> Response {
    if api.ready.load(Ordering::Acquire) {
        let audit = if api.app.audit.healthy() {
            "ok"
        } else {
            "failed"
        };
        let mut body = json!({"status": "ok", "audit": audit});
        // With [cluster]: whether the state store is connected and this replica's view of it
        // current.
        if let Some(current) = api.app.approvals.shared_state_current() {
            body["state"] = json!(if current { "ok" } else { "unreachable" });
            body["shipping_lag_events"] = json!(api.app.metrics.cluster_shipping_lag.get());
        }
        (StatusCode::OK, Json(body)).into_response()
    } else {
        err(StatusCode::SERVICE_UNAVAILABLE, "starting").into_response()
    }
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4 (no token needed)",
               content_type = "text/plain; version=0.0.4; charset=utf-8", body = String))
)]
async fn metrics(State(api): State<Api>) -> Response {
    api.app.refresh_metrics();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.app.metrics.render(),
    )
        .into_response()
}

/// A point in time as users write it: unix seconds, an RFC 3339 time
/// (`2026-11-30T12:00:00Z`), or a duration ago (`90m`, `2h`, `7days`).
pub fn parse_since(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(crate::approval::unix_secs(t));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        let now = crate::approval::unix_secs(std::time::SystemTime::now());
        return Ok(now.saturating_sub(d.as_secs()));
    }
    Err(format!(
        "cannot read {s:?} as a time: give unix seconds, an RFC 3339 time, or a duration ago such as 2h"
    ))
}

/// Run a read of the store off the async workers.
async fn read<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("read failed: {e}"),
        )
    })
}
