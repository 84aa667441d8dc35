//! Requests and grants kept across restarts, and the store's upkeep: closing what a crash
//! left open, and retention.
//!
//! Requests live outside the chain (they are mutable state, upserted on every change); their
//! history is in the chain as RequestCreated / RequestDecided / Grant* events.

use super::{Audit, EventKind, SessionFilter, SessionRecord, Text};

impl Audit {
    /// Upsert a request (call on every change). Written at once, flushed with the next commit.
    pub fn put_request(&self, r: &crate::request::RequestView) {
        if !self.inner.opts.enabled {
            return;
        }
        let res = serde_json::to_vec(r)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                self.inner
                    .store
                    .put_request(&r.id, v)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = res {
            self.inner
                .shared
                .fail(format!("cannot store request {}: {e}", r.id));
        }
    }

    /// One persisted request (as the API shows it).
    pub fn request(&self, id: &str) -> Option<serde_json::Value> {
        self.inner.store.request(id)
    }

    /// Every persisted request (as the API shows them), oldest first.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.inner.store.requests()
    }

    /// At start-up: every request still `pending` becomes `cancelled` ("jitgate restarted"),
    /// with a RequestDecided event in its session. Returns how many.
    pub fn close_stale_requests(&self) -> usize {
        let mut n = 0;
        for mut r in self.requests() {
            if r.get("state").and_then(|v| v.as_str()) != Some("pending") {
                continue;
            }
            let Some(obj) = r.as_object_mut() else {
                continue;
            };
            obj.insert("state".into(), "cancelled".into());
            obj.insert("reason".into(), "jitgate restarted".into());
            let id = obj
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let session = obj
                .get("session")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let res = serde_json::to_vec(&r)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    self.inner
                        .store
                        .put_request(&id, v)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = res {
                self.inner
                    .shared
                    .fail(format!("cannot store request {id}: {e}"));
                continue;
            }
            let _ = self.record(
                session,
                EventKind::RequestDecided {
                    request: id.into(),
                    state: crate::request::State::Cancelled,
                    by: Some(Text::from_static("jitgate")),
                    reason: Some(Text::from_static("jitgate restarted")),
                },
            );
            n += 1;
        }
        n
    }

    /// At start-up: every session without an end (the proxy died under it) gets a
    /// SessionEnd "jitgate restarted". Returns how many.
    pub fn close_stale_sessions(&self) -> usize {
        let open: Vec<SessionRecord> = self
            .sessions(&SessionFilter::default())
            .into_iter()
            .filter(|s| s.ended_at.is_none())
            .collect();
        for s in &open {
            let _ = self.record(
                s.id.clone(),
                EventKind::SessionEnd {
                    reason: Text::from_static("jitgate restarted"),
                    bytes_in: s.bytes_in,
                    bytes_out: s.bytes_out,
                },
            );
        }
        open.len()
    }

    /// Delete what is older than `retention_days` (nothing without it): the chain's oldest
    /// blocks (moving the anchor), sessions that ended before the cutoff and decided
    /// requests created before it. Returns how many sessions went. Blocking (sled scans);
    /// call it from `spawn_blocking` or a timer thread.
    pub fn prune(&self, now_unix_secs: u64) -> usize {
        let Some(days) = self.inner.opts.retention_days else {
            return 0;
        };
        let cutoff = now_unix_secs.saturating_sub(u64::from(days) * 86_400);
        match self.inner.store.prune(cutoff.saturating_mul(1_000_000)) {
            Ok(n) => n,
            Err(e) => {
                self.inner.shared.fail(format!("pruning failed: {e}"));
                0
            }
        }
    }
}
