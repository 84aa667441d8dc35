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
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(api)
}

async fn healthz(State(api): State<Api>) -> Response {
    if api.ready.load(Ordering::Acquire) {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
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
    Ok(Json(api.gate.approvals.list(state)).into_response())
}

async fn get_request(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authenticate(&api, &headers)?;
    let r = api
        .gate
        .approvals
        .get(&id)
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
