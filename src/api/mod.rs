//! The control API: JSON over HTTP with bearer tokens.
//!
//! A token is checked by hashing it (SHA-256) and comparing with every user's
//! `api_token_sha256` in constant time. Every error body is `{"error":"…"}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::approval::{DecideError, Event, State as ReqState};
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

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/requests", get(list_requests))
        .route("/v1/requests/stream", get(stream_requests))
        .route("/v1/requests/{id}", get(get_request))
        .route("/v1/requests/{id}/approve", post(approve))
        .route("/v1/requests/{id}/deny", post(deny))
        .route("/v1/grants", get(list_grants))
        .route("/v1/grants/{id}", delete(revoke_grant))
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session))
        .route("/v1/sessions/{id}/events", get(session_events))
        .route("/v1/sessions/{id}/recording", get(session_recording))
        .route("/v1/audit/export", get(export_events))
        .route("/v1/audit/verify", get(verify_chain))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(api)
}

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

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
}

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    #[serde(default)]
    reason: String,
    grant_secs: Option<u64>,
}

fn decision_body(body: &axum::body::Bytes) -> Result<Decision, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

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

async fn list_grants(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    Ok(Json(api.gate.approvals.grants()).into_response())
}

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

#[derive(Deserialize)]
struct SessionQuery {
    user: Option<String>,
    target: Option<String>,
    since: Option<String>,
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

#[derive(Deserialize)]
struct ExportQuery {
    since: Option<String>,
}

/// Every event since a time, one JSON object per line (for a SIEM).
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
