//! Requests and grants: list, stream, approve, deny, revoke.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::visibility::{Viewer, known_requests, no_such_grant};
use super::{Api, ApiError, err, openapi, read};
use crate::approval::{
    Answer, Event, Grant, RequestView, RevokeError, ScopeKind, State as ReqState,
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only requests in this state: pending, approved, denied, expired or cancelled.
    #[param(value_type = Option<ReqState>)]
    state: Option<String>,
}

/// Requests the caller sees, oldest first (at most the 1000 most recent): their own, those
/// they may decide, or every one for an auditor.
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
    viewer: Viewer,
) -> Result<Response, ApiError> {
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            ReqState::parse(s)
                .ok_or_else(|| err(StatusCode::BAD_REQUEST, format!("unknown state {s:?}")))?,
        ),
    };
    let mut list: Vec<serde_json::Value> = if state == Some(ReqState::Pending) {
        // Pending requests live in memory only.
        api.app
            .approvals
            .list(state)
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect()
    } else {
        let want = state.map(|s| s.as_str());
        known_requests(&api)
            .await?
            .into_iter()
            .filter(|r| want.is_none_or(|w| r.get("state").and_then(|v| v.as_str()) == Some(w)))
            .collect()
    };
    // Filter before truncating, so the length says nothing about other people's requests.
    list.retain(|r| viewer.sees_request(r));
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

/// One request the caller sees, with its session's application.
#[utoipa::path(
    get,
    path = "/v1/requests/{id}",
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request", body = RequestDetail),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 404, description = "No such request, or not one the caller sees (the same answer)", body = openapi::ErrorBody),
    )
)]
pub(super) async fn get_request(
    State(api): State<Api>,
    Path(id): Path<String>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    let mut request = viewer.request(&api, &id).await?;
    let audit = api.app.audit.clone();
    let session = request
        .get("session")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let application = match session {
        Some(session) => read(move || audit.session(&session).and_then(|s| s.application)).await?,
        None => None,
    };
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

/// Approve or deny request `id` as `viewer` with `body` (a [`Decision`]): a request the
/// caller does not see is answered as missing; then the body is checked against the verdict
/// (a grant's scope needs the grant; a denial needs a reason and takes no grant), then the
/// approvals decide.
async fn decide(
    api: &Api,
    id: &str,
    viewer: &Viewer,
    body: &axum::body::Bytes,
    verdict: Verdict,
) -> Result<Response, ApiError> {
    viewer.request(api, id).await?;
    let user = &viewer.user;
    let d = decision_body(body)?;
    let r = match verdict {
        Verdict::Approve => {
            if d.scope.is_some() && d.grant_secs.is_none() {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "scope applies to a grant: give grant_secs too",
                ));
            }
            let decision = Answer::Approve {
                reason: d.reason,
                grant_secs: d.grant_secs,
                scope: d.scope.unwrap_or_default(),
            };
            api.app.approvals.decide(id, user, decision).await?
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
            let decision = Answer::Deny { reason: d.reason };
            api.app.approvals.decide(id, user, decision).await?
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
        (status = 404, description = "No such request, or not one the caller sees (the same answer)", body = openapi::ErrorBody),
        (status = 409, description = "The request is no longer pending, or the caller already approved it", body = openapi::ErrorBody),
    )
)]
pub(super) async fn approve(
    State(api): State<Api>,
    Path(id): Path<String>,
    viewer: Viewer,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    decide(&api, &id, &viewer, &body, Verdict::Approve).await
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
        (status = 404, description = "No such request, or not one the caller sees (the same answer)", body = openapi::ErrorBody),
        (status = 409, description = "The request is no longer pending", body = openapi::ErrorBody),
    )
)]
pub(super) async fn deny(
    State(api): State<Api>,
    Path(id): Path<String>,
    viewer: Viewer,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    decide(&api, &id, &viewer, &body, Verdict::Deny).await
}

/// Live grants the caller sees: their own, those they may revoke, or every one for an auditor.
#[utoipa::path(
    get,
    path = "/v1/grants",
    tag = "grants",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Grants in force that the caller sees, oldest first", body = [Grant]),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
    )
)]
pub(super) async fn list_grants(
    State(api): State<Api>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    let mut grants = api.app.approvals.grants();
    grants.retain(|g| viewer.sees_grant(g));
    Ok(Json(grants).into_response())
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
        (status = 403, description = "The caller sees the grant (an auditor) but is neither its grantee nor an approver of its rule", body = openapi::ErrorBody),
        (status = 404, description = "No such live grant, or not one the caller sees (the same answer)", body = openapi::ErrorBody),
    )
)]
pub(super) async fn revoke_grant(
    State(api): State<Api>,
    Path(id): Path<String>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    let seen = api
        .app
        .approvals
        .grants()
        .iter()
        .any(|g| g.id == id && viewer.sees_grant(g));
    if !seen {
        return Err(no_such_grant());
    }
    let g = api
        .app
        .approvals
        .revoke_as(&id, &viewer.user)
        .await
        .map_err(|e| {
            let code = match e {
                RevokeError::NotFound => StatusCode::NOT_FOUND,
                RevokeError::NotAllowed => StatusCode::FORBIDDEN,
                RevokeError::StateStore(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            err(code, e.to_string())
        })?;
    Ok(Json(g).into_response())
}

/// Server-Sent Events: one `request` event per change of a request the caller sees (judged
/// under the config in force at each change), so approvers need not poll.
#[utoipa::path(
    get,
    path = "/v1/requests/stream",
    tag = "requests",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An event stream: `event: request` with the request as JSON data on every creation or decision; `event: lagged` when changes were missed, with their number for an auditor (empty for others: the count includes other people's changes)",
         content_type = "text/event-stream", body = RequestView),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
    )
)]
pub(super) async fn stream_requests(
    State(api): State<Api>,
    viewer: Viewer,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let rx = api.app.approvals.subscribe();
    let state = (rx, api, viewer);
    let stream = futures_util::stream::unfold(state, |(mut rx, api, viewer)| async move {
        loop {
            match rx.recv().await {
                Ok(Event::Created(r)) | Ok(Event::Decided(r)) => {
                    // A user removed by a reload hears nothing more.
                    let now = viewer.current(&api)?;
                    let seen = serde_json::to_value(&r).is_ok_and(|v| now.sees_request(&v));
                    if !seen {
                        continue;
                    }
                    let ev = SseEvent::default()
                        .event("request")
                        .json_data(&r)
                        .unwrap_or_else(|_| SseEvent::default().comment("encode error"));
                    return Some((Ok(ev), (rx, api, viewer)));
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    // The count includes other people's changes: auditors only.
                    let missed = if viewer.is_auditor() {
                        n.to_string()
                    } else {
                        String::new()
                    };
                    let ev = SseEvent::default().event("lagged").data(missed);
                    return Some((Ok(ev), (rx, api, viewer)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
