//! Requests and grants kept across restarts, and the store's upkeep: closing what a crash
//! left open, and retention.
//!
//! Requests live outside the chain (they are mutable state, upserted on every change); their
//! history is in the chain as RequestCreated / RequestDecided / Grant* events.

use super::writer::Msg;
use super::{Audit, EventKind, SessionFilter, SessionRecord, Text, lock};
use crate::request::RequestView;

impl Audit {
    /// Upsert a request (call on every change, in the order of the changes). As cheap as
    /// [`Audit::record`]: a copy of the view into the writer's slot for it and, if the slot was
    /// empty, one non-blocking send that wakes the writer; no encoding, no I/O. The next commit
    /// encodes and writes it, with that commit's events, and flushes it. Never dropped: a
    /// newer view of the same request replaces one not yet written, and a full queue needs
    /// no wake-up (the writer has work, and each commit takes every request waiting).
    pub fn put_request(&self, r: &RequestView) {
        if !self.inner.opts.enabled {
            return;
        }
        let wake = {
            let mut waiting = lock(&self.inner.shared.requests);
            let wake = waiting.is_empty();
            waiting.insert(r.id.clone(), r.clone());
            wake
        };
        if wake {
            // A barrier nobody waits for: it only makes the writer commit (within
            // `commit_interval`, like a routine event). A failure to send is the writer's
            // failure, reported by `send`.
            let _ = self.send(Msg {
                at_us: super::now_us(),
                session: Text::from_static(""),
                ev: None,
                done: None,
                backlog: None,
                result: None,
            });
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

    /// From now on retention keeps every event after `seq`, however old: they have not
    /// reached somewhere else yet (a replica's events not yet shipped to the cluster's state
    /// database). Raise it as they do; until the first call there is no such floor.
    pub fn keep_after(&self, seq: u64) {
        self.inner
            .keep_after
            .store(seq, std::sync::atomic::Ordering::Relaxed);
    }

    /// Events older than this (µs since the epoch) are past retention: `retention_days` plus
    /// one hour before `now_unix_secs`; `None` without `retention_days`. The hour more keeps a
    /// text referenced by an event within the retention stored whole in an event that is
    /// kept (see `texts`). The same cutoff applies to a replica's shipped copy.
    pub fn retention_cutoff_us(&self, now_unix_secs: u64) -> Option<u64> {
        let days = self.inner.opts.retention_days?;
        let cutoff = now_unix_secs.saturating_sub(u64::from(days) * 86_400);
        Some(
            cutoff
                .saturating_mul(1_000_000)
                .saturating_sub(super::texts::REFERENCE_WINDOW),
        )
    }

    /// Delete what is older than `retention_days` plus one hour (nothing without it): the
    /// chain's oldest blocks (moving the anchor) up to [`Audit::keep_after`]'s floor, sessions
    /// that ended before the cutoff and decided requests created before it. Returns how many
    /// sessions went. Blocking (sled scans); call it from `spawn_blocking` or a timer thread.
    pub fn prune(&self, now_unix_secs: u64) -> usize {
        let Some(cutoff_us) = self.retention_cutoff_us(now_unix_secs) else {
            return 0;
        };
        let keep_after = self
            .inner
            .keep_after
            .load(std::sync::atomic::Ordering::Relaxed);
        match self.inner.store.prune(cutoff_us, keep_after) {
            Ok(n) => n,
            Err(e) => {
                self.inner.shared.fail(format!("pruning failed: {e}"));
                0
            }
        }
    }
}
