//! Webhooks: POST every new request and every decision to the configured URLs, once across
//! replicas (the replica holding the session posts; see
//! [`crate::approval::Approvals::subscribe_announcements`]).
//!
//! Delivery never blocks or slows a hold: events arrive on a bounded broadcast channel that
//! the Gate writes without waiting; this task delivers them with a timeout and up to three
//! tries each, at most `MAX_IN_FLIGHT` at once. If it falls behind, the oldest events are
//! dropped with a warning rather than queued without bound.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use tracing::warn;

use crate::app::AppState;
use crate::approval::{Event, RequestView, State};

const MAX_IN_FLIGHT: usize = 32;
const TRIES: u32 = 3;

/// One human-readable line (Slack's `text`), with everything a user typed escaped.
pub fn text(event: &Event) -> Option<String> {
    line(event).map(|l| crate::escape::slack(&l))
}

fn line(event: &Event) -> Option<String> {
    let r: &RequestView = match event {
        Event::Created(r) | Event::Decided(r) => r,
        _ => return None,
    };
    let stmt: String = r.statement.split_whitespace().collect::<Vec<_>>().join(" ");
    let stmt = if stmt.chars().count() > 200 {
        stmt.chars().take(197).collect::<String>() + "..."
    } else {
        stmt
    };
    Some(match (event, r.state) {
        (Event::Created(_), _) => format!(
            "jitgate: {} asks to run a {} statement on {}: `{}` (request {}, rule \"{}\")",
            r.user, r.class, r.target, stmt, r.id, r.rule
        ),
        (_, State::Approved) => format!(
            "jitgate: request {} by {} on {} approved by {}{}",
            r.id,
            r.user,
            r.target,
            r.decided_by.as_deref().unwrap_or("?"),
            r.grant
                .as_ref()
                .map(|g| format!(" with grant {g}"))
                .unwrap_or_default()
        ),
        (_, State::Denied) => format!(
            "jitgate: request {} by {} on {} denied by {}: {}",
            r.id,
            r.user,
            r.target,
            r.decided_by.as_deref().unwrap_or("?"),
            r.reason.as_deref().unwrap_or("")
        ),
        (_, State::Pending) => format!(
            "jitgate: request {} has {} of {} approvals",
            r.id,
            r.approvals.len(),
            r.approvals_required
        ),
        (_, s) => format!(
            "jitgate: request {} by {} on {} {}: {}",
            r.id,
            r.user,
            r.target,
            s.as_str(),
            r.reason.as_deref().unwrap_or("")
        ),
    })
}

pub fn spawn(app: Arc<AppState>) {
    let mut rx = app.approvals.subscribe_announcements();
    tokio::spawn(async move {
        let client = match reqwest::Client::builder().build() {
            Ok(c) => c,
            Err(e) => {
                warn!("webhooks disabled: cannot build an HTTP client: {e}");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    warn!("webhooks fell behind; {n} events were not delivered");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let (Some(line), Event::Created(r) | Event::Decided(r)) = (text(&event), &event) else {
                continue;
            };
            let body = json!({ "event": event.name(), "request": r, "text": line });
            for hook in app.config().webhooks.iter().cloned() {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let client = client.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    for attempt in 1..=TRIES {
                        let r = client
                            .post(&hook.url)
                            .timeout(hook.timeout)
                            .json(&body)
                            .send()
                            .await;
                        match r {
                            Ok(resp) if resp.status().is_success() => return,
                            Ok(resp) => {
                                warn!(url = %hook.url, attempt, "webhook answered {}", resp.status())
                            }
                            Err(e) => warn!(url = %hook.url, attempt, "webhook failed: {e}"),
                        }
                        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    }
                });
            }
        }
    });
}
