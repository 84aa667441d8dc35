//! The control API: JSON over HTTP with bearer tokens.
//!
//! A token is checked by hashing it (SHA-256) and comparing with every user's
//! `api_token_sha256` in constant time. Every error body is `{"error":"…"}`.
//!
//! Every route is registered in [`routes`] through `utoipa_axum::routes!`, which adds the
//! handler and its `#[utoipa::path]` description together: the OpenAPI document served at
//! `GET /v1/openapi.json` ([`openapi`]) is the router's own list of routes.

pub mod openapi;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::approval::{DecideError, Event, Grant, RequestView, State as ReqState};
use crate::config::User;
use crate::gate::Gate;

#[derive(Clone)]
pub struct Api {
    pub gate: Arc<Gate>,
    /// Set once every listener is bound.
    pub ready: Arc<AtomicBool>,
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
            DecideError::GrantTooLong(..) | DecideError::GrantZero => StatusCode::BAD_REQUEST,
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
        .routes(routes!(list_requests))
        .routes(routes!(stream_requests))
        .routes(routes!(get_request))
        .routes(routes!(approve))
        .routes(routes!(deny))
        .routes(routes!(list_grants))
        .routes(routes!(revoke_grant))
        .routes(routes!(list_sessions))
        .routes(routes!(get_session))
        .routes(routes!(session_events))
        .routes(routes!(session_recording))
        .routes(routes!(export_events))
        .routes(routes!(verify_chain))
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
        let audit = if api.gate.audit().healthy() {
            "ok"
        } else {
            "failed"
        };
        (
            StatusCode::OK,
            Json(json!({"status": "ok", "audit": audit})),
        )
            .into_response()
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
    api.gate.refresh_metrics();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.gate.metrics.render(),
    )
        .into_response()
}

/// The user a bearer token belongs to.
fn authenticate(api: &Api, headers: &HeaderMap) -> Result<Arc<User>, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let config = api.gate.config();
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only requests in this state: pending, approved, denied, expired or cancelled.
    #[param(value_type = Option<ReqState>)]
    state: Option<String>,
}

/// Requests, oldest first (at most the 1000 most recent).
#[utoipa::path(
    get,
    path = "/v1/requests",
    tag = "requests",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Requests", body = [RequestView]),
        (status = 400, description = "Unknown state", body = openapi::ErrorBody),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
    )
)]
async fn list_requests(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            ReqState::parse(s)
                .ok_or_else(|| err(StatusCode::BAD_REQUEST, format!("unknown state {s:?}")))?,
        ),
    };
    if state == Some(ReqState::Pending) {
        return Ok(Json(api.gate.approvals.list(state)).into_response());
    }
    // Decided requests outlive the process in the audit store; live ones are fresher in
    // memory (impact previews are not persisted).
    let live = api.gate.approvals.list(None);
    let audit = api.gate.audit().clone();
    let stored = read(move || audit.requests()).await?;
    let mut by_id: std::collections::BTreeMap<String, serde_json::Value> = stored
        .into_iter()
        .filter_map(|r| Some((r.get("id")?.as_str()?.to_string(), r)))
        .collect();
    for r in live {
        if let Ok(v) = serde_json::to_value(&r) {
            by_id.insert(r.id.clone(), v);
        }
    }
    let want = state.map(|s| s.as_str());
    let mut list: Vec<serde_json::Value> = by_id
        .into_values()
        .filter(|r| want.is_none_or(|w| r.get("state").and_then(|v| v.as_str()) == Some(w)))
        .collect();
    list.sort_by_key(|r| r.get("created_at").and_then(|v| v.as_u64()).unwrap_or(0));
    let excess = list.len().saturating_sub(MAX_LISTED);
    list.drain(..excess);
    Ok(Json(list).into_response())
}

/// At most this many requests in one list (the most recent).
const MAX_LISTED: usize = 1000;

/// One request.
#[utoipa::path(
    get,
    path = "/v1/requests/{id}",
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request", body = RequestView),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 404, description = "No such request", body = openapi::ErrorBody),
    )
)]
async fn get_request(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    if let Some(r) = api.gate.approvals.get(&id) {
        return Ok(Json(r).into_response());
    }
    let audit = api.gate.audit().clone();
    let r = read(move || audit.request(&id))
        .await?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such request"))?;
    Ok(Json(r).into_response())
}

/// An approval or a denial. An empty body approves with no reason and no grant.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct Decision {
    /// Why; required (non-blank) for a denial.
    #[serde(default)]
    reason: String,
    /// Approve only: also grant similar statements for this many seconds (at most the rule's
    /// `max_grant`); absent = this statement once.
    #[schema(minimum = 1)]
    grant_secs: Option<u64>,
}

fn decision_body(body: &axum::body::Bytes) -> Result<Decision, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

/// Approve a pending request (with `grant_secs`: also grant similar statements for a while).
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/approve",
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    request_body(content = Option<Decision>, content_type = "application/json", description = "Optional: an empty body approves this statement once, with no reason"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request after this approval (still pending while more approvals are needed)", body = RequestView),
        (status = 400, description = "Bad body, or grant_secs zero or over the rule's max_grant", body = openapi::ErrorBody),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 403, description = "The caller is not an approver of the request's rule, or is its requester", body = openapi::ErrorBody),
        (status = 404, description = "No such request", body = openapi::ErrorBody),
        (status = 409, description = "The request is no longer pending, or the caller already approved it", body = openapi::ErrorBody),
    )
)]
async fn approve(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let user = authenticate(&api, &headers)?;
    let d = decision_body(&body)?;
    let r = api
        .gate
        .approvals
        .approve(&id, &user, &d.reason, d.grant_secs)?;
    Ok(Json(r).into_response())
}

/// Deny a pending request; the held statement fails with the reason.
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/deny",
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    request_body(content = Decision, content_type = "application/json", description = "`reason` is required; `grant_secs` is refused"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The denied request", body = RequestView),
        (status = 400, description = "Bad body, no reason, or grant_secs given", body = openapi::ErrorBody),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 403, description = "The caller is not an approver of the request's rule, or is its requester", body = openapi::ErrorBody),
        (status = 404, description = "No such request", body = openapi::ErrorBody),
        (status = 409, description = "The request is no longer pending", body = openapi::ErrorBody),
    )
)]
async fn deny(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let user = authenticate(&api, &headers)?;
    let d = decision_body(&body)?;
    if d.grant_secs.is_some() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "grant_secs makes no sense on a denial",
        ));
    }
    if d.reason.trim().is_empty() {
        return Err(err(StatusCode::BAD_REQUEST, "a denial needs a reason"));
    }
    let r = api.gate.approvals.deny(&id, &user, &d.reason)?;
    Ok(Json(r).into_response())
}

/// Live grants.
#[utoipa::path(
    get,
    path = "/v1/grants",
    tag = "grants",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Grants in force, oldest first", body = [Grant]),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
    )
)]
async fn list_grants(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    Ok(Json(api.gate.approvals.grants()).into_response())
}

/// Revoke a live grant at once.
#[utoipa::path(
    delete,
    path = "/v1/grants/{id}",
    tag = "grants",
    params(("id" = String, Path, description = "Grant id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The revoked grant", body = Grant),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 404, description = "No such live grant", body = openapi::ErrorBody),
    )
)]
async fn revoke_grant(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    let g = api
        .gate
        .approvals
        .revoke(&id)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such live grant"))?;
    Ok(Json(g).into_response())
}

/// Server-Sent Events: one `request` event per change, so approvers need not poll.
#[utoipa::path(
    get,
    path = "/v1/requests/stream",
    tag = "requests",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An event stream: `event: request` with the request as JSON data on every creation or decision; `event: lagged` with the number of missed changes",
         content_type = "text/event-stream", body = RequestView),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
    )
)]
async fn stream_requests(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    authenticate(&api, &headers)?;
    let rx = api.gate.approvals.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(Event::Created(r)) | Ok(Event::Decided(r)) => {
                    let ev = SseEvent::default()
                        .event("request")
                        .json_data(&r)
                        .unwrap_or_else(|_| SseEvent::default().comment("encode error"));
                    return Some((Ok(ev), rx));
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let ev = SseEvent::default().event("lagged").data(n.to_string());
                    return Some((Ok(ev), rx));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SessionQuery {
    /// Only this user's sessions.
    user: Option<String>,
    /// Only sessions to this target.
    target: Option<String>,
    /// Sessions running at or started after: unix seconds, an RFC 3339 time, or a duration
    /// ago (`2h`).
    since: Option<String>,
    /// At most this many, the most recent (default 1000, at most 10000).
    limit: Option<usize>,
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

/// Sessions in the audit trail.
#[utoipa::path(
    get,
    path = "/v1/sessions",
    tag = "audit",
    params(SessionQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Sessions", body = [openapi::SessionRecord]),
        (status = 400, description = "Unreadable `since`", body = openapi::ErrorBody),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
    )
)]
async fn list_sessions(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(q): Query<SessionQuery>,
) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    let since = match q.since.as_deref() {
        Some(s) if !s.is_empty() => {
            Some(parse_since(s).map_err(|e| err(StatusCode::BAD_REQUEST, e))?)
        }
        _ => None,
    };
    let f = crate::audit::SessionFilter {
        user: q.user.filter(|u| !u.is_empty()),
        target: q.target.filter(|t| !t.is_empty()),
        since,
        limit: Some(q.limit.unwrap_or(1000).min(10_000)),
    };
    let audit = api.gate.audit().clone();
    let list = read(move || audit.sessions(&f)).await?;
    Ok(Json(list).into_response())
}

/// One session.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}",
    tag = "audit",
    params(("id" = String, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session", body = openapi::SessionRecord),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 404, description = "No such session", body = openapi::ErrorBody),
    )
)]
async fn get_session(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    let audit = api.gate.audit().clone();
    let s = read(move || audit.session(&id))
        .await?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such session"))?;
    Ok(Json(s).into_response())
}

/// A session's audit events, in order.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/events",
    tag = "audit",
    params(("id" = String, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Events in order", body = [openapi::Event]),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 404, description = "No such session", body = openapi::ErrorBody),
    )
)]
async fn session_events(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    let audit = api.gate.audit().clone();
    let (session, events) = read(move || (audit.session(&id), audit.events(&id))).await?;
    if session.is_none() && events.is_empty() {
        return Err(err(StatusCode::NOT_FOUND, "no such session"));
    }
    Ok(Json(events).into_response())
}

/// The terminal recording of an SSH session.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/recording",
    tag = "audit",
    params(("id" = String, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "asciicast v2", content_type = "application/x-asciicast", body = String),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 404, description = "No such session, or it has no recording", body = openapi::ErrorBody),
    )
)]
async fn session_recording(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    let audit = api.gate.audit().clone();
    let cast = read(move || audit.recording(&id)).await?.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "no recording for this session (only SSH shell and exec channels are recorded)",
        )
    })?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-asciicast")],
        cast,
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// Events at or after: unix seconds, an RFC 3339 time, or a duration ago (`2h`).
    since: Option<String>,
}

/// Every event since a time, one JSON object per line (for a SIEM).
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    tag = "audit",
    params(ExportQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "JSON Lines, one event per line, in order", content_type = "application/x-ndjson", body = openapi::Event),
        (status = 400, description = "Unreadable `since`", body = openapi::ErrorBody),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
    )
)]
async fn export_events(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    let since = match q.since.as_deref() {
        Some(s) if !s.is_empty() => parse_since(s).map_err(|e| err(StatusCode::BAD_REQUEST, e))?,
        _ => 0,
    };
    let audit = api.gate.audit().clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, Infallible>>(16);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(64 * 1024);
        for ev in audit.export(since) {
            if serde_json::to_writer(&mut chunk, &ev).is_ok() {
                chunk.push(b'\n');
            }
            if chunk.len() >= 60 * 1024 && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err()
            {
                return;
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(chunk));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Walk the chain of the running store.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "audit",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every link holds", body = openapi::Verified),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 409, description = "A broken link (`ok` false, `error` names it)", body = openapi::Verified),
    )
)]
async fn verify_chain(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    let audit = api.gate.audit().clone();
    let r = read(move || audit.verify()).await?;
    Ok(match r {
        Ok(n) => Json(json!({"ok": true, "events": n})).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Json(json!({"ok": false, "error": e.to_string()})),
        )
            .into_response(),
    })
}
