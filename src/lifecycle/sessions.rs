//! The sessions in progress and their users (see [`LiveSessions`]).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use super::Shutdown;

/// The sessions in progress and their users, so that one user's sessions can be ended
/// alone. A session is registered at its start and forgotten at its end; ending it makes
/// the [`Shutdown`] it got from [`LiveSessions::shutdown`] read `Force`, and remembers why
/// for its audit record.
#[derive(Default)]
pub struct LiveSessions {
    by_id: Mutex<HashMap<String, LiveSession>>,
}

struct LiveSession {
    user: String,
    /// `Some(reason)` once the session must end.
    ended: watch::Sender<Option<String>>,
}

impl LiveSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveSession>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register session `id` of `user`.
    pub fn register(&self, id: &str, user: &str) {
        self.lock().insert(
            id.to_string(),
            LiveSession {
                user: user.to_string(),
                ended: watch::channel(None).0,
            },
        );
    }

    /// Forget session `id`; returns why it was ended, if it was.
    pub fn forget(&self, id: &str) -> Option<String> {
        self.lock()
            .remove(id)
            .and_then(|s| s.ended.borrow().clone())
    }

    /// `global` that also reads `Force` once session `id` is ended.
    pub fn shutdown(&self, id: &str, global: Shutdown) -> Shutdown {
        Shutdown {
            ended: self.ended(id),
            ..global
        }
    }

    /// A receiver that holds `Some(reason)` once session `id` is ended (`None` if it is not
    /// registered). Its sender goes when the session is forgotten.
    pub fn ended(&self, id: &str) -> Option<watch::Receiver<Option<String>>> {
        self.lock().get(id).map(|s| s.ended.subscribe())
    }

    /// End every session whose user `gone` selects; returns how many.
    pub fn end_where(&self, gone: impl Fn(&str) -> bool, reason: &str) -> usize {
        let sessions = self.lock();
        sessions
            .values()
            .filter(|s| gone(&s.user))
            .filter(|s| {
                s.ended.send_if_modified(|r| {
                    let first = r.is_none();
                    if first {
                        *r = Some(reason.to_string());
                    }
                    first
                })
            })
            .count()
    }

    /// Sessions in progress.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{Phase, ShutdownSignal};

    #[tokio::test]
    async fn one_users_sessions_end_alone() {
        let signal = ShutdownSignal::new();
        let live = LiveSessions::default();
        live.register("s1", "alice");
        live.register("s2", "bob");
        let mut alice = live.shutdown("s1", signal.subscribe());
        let bob = live.shutdown("s2", signal.subscribe());
        assert_eq!(alice.phase(), Phase::Running);
        assert_eq!(live.end_where(|u| u == "alice", "removed"), 1);
        assert_eq!(alice.phase(), Phase::Force);
        assert_eq!(alice.next().await, Phase::Force);
        alice.reached(Phase::Force).await;
        assert_eq!(bob.phase(), Phase::Running);
        assert_eq!(live.end_where(|u| u == "alice", "again"), 0, "ended once");
        assert_eq!(live.forget("s1").as_deref(), Some("removed"));
        assert_eq!(live.forget("s2"), None);
        assert!(live.is_empty());
        // A forgotten session's Shutdown still follows the server's.
        let mut bob = bob;
        signal.advance(Phase::Draining);
        assert_eq!(bob.next().await, Phase::Draining);
    }
}
