//! Requests and grants: list, stream, approve, deny, revoke.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::AuthUser;
use super::{Api, ApiError, err, openapi, read};
use crate::approval::{Event, Grant, RequestView, RevokeError, ScopeKind, State as ReqState};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
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
pub(super) async fn list_requests(
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
    _user: AuthUser,
) -> Result<Response, ApiError> {
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            ReqState::parse(s)
                .ok_or_else(|| err(StatusCode::BAD_REQUEST, format!("unknown state {s:?}")))?,
        ),
    };
    if state == Some(ReqState::Pending) {
        return Ok(Json(api.app.approvals.list(state)).into_response());
    }
    // Decided requests outlive the process in the audit store; live ones are fresher in
    // memory (impact previews are not persisted).
    let live = api.app.approvals.list(None);
    let audit = api.app.audit.clone();
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

/// One request, with what an approver decides from: [`RequestView`] and the session's
/// application. Only the API's reader needs this schema; the body is built as JSON.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
pub(super) struct RequestDetail {
    #[serde(flatten)]
    request: RequestView,
    /// The requesting session's Postgres `application_name` or SSH client version, as the
    /// client sent it (absent when it sent none or the audit trail no longer has the session).
    #[schema(required = false)]
    application: Option<String>,
}

/// One request, with its session's application.
#[utoipa::path(
    get,
    path = "/v1/requests/{id}",
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request", body = RequestDetail),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 404, description = "No such request", body = openapi::ErrorBody),
    )
)]
pub(super) async fn get_request(
    State(api): State<Api>,
    Path(id): Path<String>,
    _user: AuthUser,
) -> Result<Response, ApiError> {
    let audit = api.app.audit.clone();
    let live = api
        .app
        .approvals
        .get(&id)
        .and_then(|r| serde_json::to_value(r).ok());
    let (mut request, application) = read(move || {
        let request = live.or_else(|| audit.request(&id))?;
        let application = request
            .get("session")
            .and_then(serde_json::Value::as_str)
            .and_then(|session| audit.session(session))
            .and_then(|s| s.application);
        Some((request, application))
    })
    .await?
    .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such request"))?;
    if let (Some(a), Some(fields)) = (application, request.as_object_mut()) {
        fields.insert("application".into(), serde_json::Value::String(a));
    }
    Ok(Json(request).into_response())
}

/// An approval or a denial. An empty body approves with no reason and no grant.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Decision {
    /// Why; required (non-blank) for a denial.
    #[serde(default)]
    reason: String,
    /// Approve only: also grant similar statements for this many seconds (at most the rule's
    /// `max_grant`); absent = this statement once.
    #[schema(minimum = 1)]
    grant_secs: Option<u64>,
    /// Approve with a grant only: what the grant covers. `shape` (the default): the approved
    /// statement with other literal values, on the same resolved tables; `tables`: any
    /// statement of the same class on (a subset of) the same resolved tables; `exact`: the
    /// identical text only.
    scope: Option<ScopeKind>,
}

fn decision_body(body: &axum::body::Bytes) -> Result<Decision, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

/// Which way a decision goes.
#[derive(Clone, Copy)]
enum Verdict {
    Approve,
    Deny,
}

/// Approve or deny request `id` as `user` with `body` (a [`Decision`]): the body is checked
/// against the verdict (a grant's scope needs the grant; a denial needs a reason and takes
/// no grant), then the approvals decide.
fn decide(
    api: &Api,
    id: &str,
    user: &crate::config::User,
    body: &axum::body::Bytes,
    verdict: Verdict,
) -> Result<Response, ApiError> {
    let d = decision_body(body)?;
    let r = match verdict {
        Verdict::Approve => {
            if d.scope.is_some() && d.grant_secs.is_none() {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "scope applies to a grant: give grant_secs too",
                ));
            }
            let scope = d.scope.unwrap_or_default();
            api.app
                .approvals
                .approve(id, user, &d.reason, d.grant_secs, scope)?
        }
        Verdict::Deny => {
            if d.grant_secs.is_some() || d.scope.is_some() {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "grant_secs and scope make no sense on a denial",
                ));
            }
            if d.reason.trim().is_empty() {
                return Err(err(StatusCode::BAD_REQUEST, "a denial needs a reason"));
            }
            api.app.approvals.deny(id, user, &d.reason)?
        }
    };
    Ok(Json(r).into_response())
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
        (status = 400, description = "Bad body, grant_secs zero or over the rule's max_grant, or scope tables for a statement that cannot be bounded by its tables", body = openapi::ErrorBody),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 403, description = "The caller is not an approver of the request's rule, or is its requester", body = openapi::ErrorBody),
        (status = 404, description = "No such request", body = openapi::ErrorBody),
        (status = 409, description = "The request is no longer pending, or the caller already approved it", body = openapi::ErrorBody),
    )
)]
pub(super) async fn approve(
    State(api): State<Api>,
    Path(id): Path<String>,
    AuthUser(user): AuthUser,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    decide(&api, &id, &user, &body, Verdict::Approve)
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
pub(super) async fn deny(
    State(api): State<Api>,
    Path(id): Path<String>,
    AuthUser(user): AuthUser,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    decide(&api, &id, &user, &body, Verdict::Deny)
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
pub(super) async fn list_grants(
    State(api): State<Api>,
    _user: AuthUser,
) -> Result<Response, ApiError> {
    Ok(Json(api.app.approvals.grants()).into_response())
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
        (status = 403, description = "The caller is neither the grantee nor an approver of the grant's rule", body = openapi::ErrorBody),
        (status = 404, description = "No such live grant", body = openapi::ErrorBody),
    )
)]
pub(super) async fn revoke_grant(
    State(api): State<Api>,
    Path(id): Path<String>,
    AuthUser(user): AuthUser,
) -> Result<Response, ApiError> {
    let g = api.app.approvals.revoke_by(&id, &user).map_err(|e| {
        let code = match e {
            RevokeError::NotFound => StatusCode::NOT_FOUND,
            RevokeError::NotAllowed => StatusCode::FORBIDDEN,
        };
        err(code, e.to_string())
    })?;
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
pub(super) async fn stream_requests(
    State(api): State<Api>,
    _user: AuthUser,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let rx = api.app.approvals.subscribe();
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
