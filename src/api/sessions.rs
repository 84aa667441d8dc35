//! The audit trail: sessions, their events and recordings, export and verify.
//!
//! Every read goes through the app's [`crate::cluster::History`]: this process's store, or in
//! cluster mode the trail every replica shipped to the state database, so any replica
//! answers for any session. Who sees what is `visibility`'s, the same in both.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::visibility::Viewer;
use super::visibility::no_such_session;
use super::{Api, ApiError, err, openapi, parse_since};
use crate::cluster::HistoryError;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SessionQuery {
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

/// Sessions in the audit trail that the caller sees: their own and those their decidable
/// requests came from, or every one for an auditor.
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
        (status = 503, description = "The history cannot be read (cluster mode: the state store is unreachable)", body = openapi::ErrorBody),
    )
)]
pub(super) async fn list_sessions(
    State(api): State<Api>,
    Query(q): Query<SessionQuery>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
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
        limit: None,
    };
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let scope = viewer.session_scope(&api).await?;
    // The limit applies after the caller's view, so the length says nothing about others.
    let mut list = api.app.history.sessions(f).await.map_err(unreadable)?;
    list.retain(|s| scope.sees(s));
    list.drain(..list.len().saturating_sub(limit));
    Ok(Json(list).into_response())
}

/// One session the caller sees.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}",
    tag = "audit",
    params(("id" = String, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session", body = openapi::SessionRecord),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 503, description = "The history cannot be read (cluster mode: the state store is unreachable)", body = openapi::ErrorBody),
        (status = 404, description = "No such session, or not one the caller sees (the same answer)", body = openapi::ErrorBody),
    )
)]
pub(super) async fn get_session(
    State(api): State<Api>,
    Path(id): Path<String>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    let s = viewer
        .session(&api, &id)
        .await?
        .ok_or_else(no_such_session)?;
    Ok(Json(s).into_response())
}

/// The audit events of a session the caller sees, in order.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/events",
    tag = "audit",
    params(("id" = String, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Events in order", body = [openapi::Event]),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 503, description = "The history cannot be read (cluster mode: the state store is unreachable)", body = openapi::ErrorBody),
        (status = 404, description = "No such session, or not one the caller sees (the same answer)", body = openapi::ErrorBody),
    )
)]
pub(super) async fn session_events(
    State(api): State<Api>,
    Path(id): Path<String>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    let session = viewer.session(&api, &id).await?;
    let events = api.app.history.events(&id).await.map_err(unreadable)?;
    if session.is_none() && events.is_empty() {
        return Err(no_such_session());
    }
    Ok(Json(events).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RecordingQuery {
    /// The channel whose recording to return (see `GET /v1/sessions/{id}/recordings`);
    /// may be left out when the session recorded one channel.
    channel: Option<u32>,
}

/// One recorded channel of an SSH session: the schema of
/// [`crate::audit::ChannelRecording`].
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(super) struct ChannelRecording {
    /// The SSH channel id.
    channel: u32,
    /// The start request: a command, `<interactive shell>` or `subsystem NAME`.
    #[schema(required = false)]
    command: Option<String>,
    /// Unix seconds when the channel's recording started.
    started_at: f64,
    /// Bytes the client sent.
    input_bytes: u64,
    /// Bytes the target sent on stdout and stderr.
    output_bytes: u64,
}

/// The recorded channels of an SSH session the caller sees (each channel is recorded on its own, with its
/// input and output).
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/recordings",
    tag = "audit",
    params(("id" = String, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recorded channels, by channel id", body = [ChannelRecording]),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 503, description = "The history cannot be read (cluster mode: the state store is unreachable)", body = openapi::ErrorBody),
        (status = 404, description = "No such session, not one the caller sees (the same answer), or it has no recording", body = openapi::ErrorBody),
    )
)]
pub(super) async fn session_recordings(
    State(api): State<Api>,
    Path(id): Path<String>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    viewer.session(&api, &id).await?;
    let (session, recordings) = api.app.history.recordings(&id).await.map_err(unreadable)?;
    let channels = recordings.channels();
    if session.is_none() && channels.is_empty() {
        return Err(no_such_session());
    }
    Ok(Json(channels).into_response())
}

/// The terminal recording of one channel of an SSH session: input (`i`) and output (`o`).
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/recording",
    tag = "audit",
    params(("id" = String, Path, description = "Session id"), RecordingQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "asciicast v2 of the channel", content_type = "application/x-asciicast", body = String),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 503, description = "The history cannot be read (cluster mode: the state store is unreachable)", body = openapi::ErrorBody),
        (status = 404, description = "No such session, not one the caller sees (the same answer), or no recording of that channel", body = openapi::ErrorBody),
        (status = 409, description = "The session recorded several channels and none was named", body = openapi::ErrorBody),
    )
)]
pub(super) async fn session_recording(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<RecordingQuery>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    viewer.session(&api, &id).await?;
    let (_, recordings) = api.app.history.recordings(&id).await.map_err(unreadable)?;
    let cast = match q.channel {
        Some(c) => Ok(recordings.cast(c)),
        None => {
            let channels = recordings.channels();
            if channels.len() > 1 {
                let ids: Vec<String> = channels.iter().map(|c| c.channel.to_string()).collect();
                Err(ids.join(", "))
            } else {
                Ok(recordings.only())
            }
        }
    };
    let cast = match cast {
        Ok(c) => c,
        Err(ids) => {
            return Err(err(
                StatusCode::CONFLICT,
                format!("this session recorded channels {ids}: name one with ?channel=N"),
            ));
        }
    };
    let cast = cast.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "no recording for this session or channel (only SSH shell, exec and subsystem channels other than sftp are recorded)",
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
pub(super) struct ExportQuery {
    /// Events at or after: unix seconds, an RFC 3339 time, or a duration ago (`2h`).
    since: Option<String>,
}

/// Every event since a time, one JSON object per line (for a SIEM). Auditors only.
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
        (status = 503, description = "The history cannot be read (cluster mode: the state store is unreachable)", body = openapi::ErrorBody),
        (status = 403, description = "The caller is not an auditor (config `[api] auditors`)", body = openapi::ErrorBody),
    )
)]
pub(super) async fn export_events(
    State(api): State<Api>,
    Query(q): Query<ExportQuery>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    viewer.require_auditor()?;
    let since = match q.since.as_deref() {
        Some(s) if !s.is_empty() => parse_since(s).map_err(|e| err(StatusCode::BAD_REQUEST, e))?,
        _ => 0,
    };
    let batches = api.app.history.export(since);
    // A read that fails after the answer has begun ends the body with an error, so the
    // client sees a cut transfer, never a short export that looks complete.
    let stream = futures_util::stream::unfold(batches, |mut rx| async move {
        let item = match rx.recv().await? {
            Ok(batch) => {
                let mut chunk = Vec::with_capacity(64 * 1024);
                for ev in &batch {
                    if serde_json::to_writer(&mut chunk, ev).is_ok() {
                        chunk.push(b'\n');
                    }
                }
                Ok(chunk)
            }
            Err(e) => Err(e),
        };
        Some((item, rx))
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Walk the chain of the running store (in cluster mode: every replica's shipped chain, naming
/// the node and event of each break). Auditors only.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "audit",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every link holds", body = openapi::Verified),
        (status = 401, description = "No valid bearer token", body = openapi::ErrorBody),
        (status = 503, description = "The history cannot be read (cluster mode: the state store is unreachable)", body = openapi::ErrorBody),
        (status = 403, description = "The caller is not an auditor (config `[api] auditors`)", body = openapi::ErrorBody),
        (status = 409, description = "A broken link (`ok` false, `error` names it)", body = openapi::Verified),
    )
)]
pub(super) async fn verify_chain(
    State(api): State<Api>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    viewer.require_auditor()?;
    let verified = api.app.history.verify().await.map_err(unreadable)?;
    let status = if verified.ok() {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok((status, Json(verified.to_json())).into_response())
}

/// The answer when the history cannot be read (in cluster mode: the state database is
/// unreachable), naming what failed.
pub(super) fn unreadable(e: HistoryError) -> ApiError {
    err(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}
