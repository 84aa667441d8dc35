//! The life of listeners and sessions: which protocol a connection speaks, the shutdown
//! phases, the one accept loop both front ends use (`listener.rs`: admission and limits),
//! the threads sessions run on (`threads.rs`: one current-thread runtime per core), the
//! sessions in progress (`sessions.rs`), the shared memory budget of large messages
//! (`budget.rs`), and draining.
//!
//! Invariants:
//! - Shutdown phases only move forward: [`Phase::Running`] → [`Phase::Draining`] (stop
//!   accepting, idle sessions close, held requests are cancelled) → [`Phase::Force`] (every
//!   session closes now). A [`Shutdown`] whose sender is gone reads as `Force`.
//! - A connection that has not authenticated yet holds a place among at most
//!   `max_unauthenticated` such connections per front end, and among at most
//!   `max_unauthenticated_per_source` from its source address. Only authentication turns that
//!   place into a session [`Slot`] (at most `max_connections`), so idle or slow sockets can
//!   never take the slots of users who log in.
//! - Every connection is counted exactly once in `jitgate_connections_total`: `refused` when
//!   it is over the unauthenticated limits at accept or over `max_connections` once
//!   authenticated, `accepted` otherwise. Over-limit connections are still handed to the
//!   front end, which refuses them in its protocol's way (PostgreSQL says 53300, SSH closes).
//! - Incomplete large messages of all sessions together hold at most a [`MessageBudget`]
//!   of memory; a message that would go over it is refused (PostgreSQL's 53200).
//! - Every admitted connection runs on the listener's task tracker, so draining waits for
//!   exactly those tasks to end, without polling, whichever thread runs them.
//! - An admitted connection runs wholly on one session thread when the listener has them
//!   ([`Listener::with_threads`]; the server gives them to the PostgreSQL listener): the
//!   accept loop only admits it and hands its socket over.
//! - [`LiveSessions`] knows every session in progress and its user, so one session can be
//!   ended alone (a reload that removes its user): its [`Shutdown`] then reads as `Force`,
//!   exactly as if the whole server were stopping.

use tokio::sync::watch;

mod budget;
mod listener;
mod sessions;
mod threads;

pub use budget::{MessageBudget, Reserved};
pub use listener::{Admission, FrontEnd, Limits, Listener, Slot};
pub use sessions::LiveSessions;
pub use threads::SessionThreads;

/// The protocol a front end speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Postgres,
    Ssh,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Postgres, Protocol::Ssh];

    /// The name used in metrics labels and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Ssh => "ssh",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Shutdown phases, in the only order they happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// No new connections; idle sessions close, busy ones may finish until `drain_timeout`.
    Draining,
    /// Every session closes now.
    Force,
}

/// The server's end of the shutdown signal.
pub struct ShutdownSignal {
    sender: watch::Sender<Phase>,
}

impl ShutdownSignal {
    pub fn new() -> ShutdownSignal {
        ShutdownSignal {
            sender: watch::channel(Phase::Running).0,
        }
    }

    /// A receiver for one listener or session.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            receiver: self.sender.subscribe(),
            ended: None,
        }
    }

    /// Move to `phase`; a phase already passed is ignored.
    pub fn advance(&self, phase: Phase) {
        self.sender.send_if_modified(|current| {
            let later = phase > *current;
            if later {
                *current = phase;
            }
            later
        });
    }
}

impl Default for ShutdownSignal {
    fn default() -> Self {
        Self::new()
    }
}

/// What sessions and listeners watch to learn the shutdown phase.
#[derive(Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<Phase>,
    /// This session alone was ended (see [`LiveSessions`]): reads as `Force`.
    ended: Option<watch::Receiver<Option<String>>>,
}

impl Shutdown {
    /// The phase now.
    pub fn phase(&self) -> Phase {
        if self.receiver.has_changed().is_err() || self.is_ended() {
            return Phase::Force;
        }
        *self.receiver.borrow()
    }

    /// Why this session alone was ended, if it was.
    pub fn ended_reason(&self) -> Option<String> {
        self.ended.as_ref().and_then(|e| e.borrow().clone())
    }

    fn is_ended(&self) -> bool {
        self.ended.as_ref().is_some_and(|e| e.borrow().is_some())
    }

    /// Resolves once this session alone is ended; never if it cannot be.
    async fn session_ended(ended: &mut Option<watch::Receiver<Option<String>>>) {
        match ended {
            Some(e) => {
                if e.wait_for(Option::is_some).await.is_err() {
                    // The registry forgot the session: it can no longer be ended alone.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }

    /// Resolves once the phase is at least `phase`.
    pub async fn reached(&mut self, phase: Phase) {
        tokio::select! {
            _ = self.receiver.wait_for(|p| *p >= phase) => {}
            _ = Self::session_ended(&mut self.ended) => {}
        }
    }

    /// [`Self::reached`] as a future that owns its receiver.
    pub async fn reached_owned(mut self, phase: Phase) {
        self.reached(phase).await
    }

    /// [`Self::next`] as a future that owns its receivers and hands them back: a loop can
    /// keep one such future across its turns instead of registering with the watch anew
    /// on every turn (a lock shared by every session).
    pub async fn next_owned(mut self) -> (Phase, Shutdown) {
        let phase = self.next().await;
        (phase, self)
    }

    /// Waits for the next change and returns the new phase.
    pub async fn next(&mut self) -> Phase {
        tokio::select! {
            r = self.receiver.changed() => match r {
                Ok(()) => *self.receiver.borrow_and_update(),
                Err(_) => Phase::Force,
            },
            _ = Self::session_ended(&mut self.ended) => Phase::Force,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn phases_only_move_forward_and_a_lost_sender_reads_as_force() {
        let signal = ShutdownSignal::new();
        let mut shutdown = signal.subscribe();
        assert_eq!(shutdown.phase(), Phase::Running);
        signal.advance(Phase::Draining);
        assert_eq!(shutdown.next().await, Phase::Draining);
        signal.advance(Phase::Running);
        assert_eq!(shutdown.phase(), Phase::Draining);
        signal.advance(Phase::Force);
        shutdown.reached(Phase::Force).await;
        let mut late = signal.subscribe();
        drop(signal);
        assert_eq!(late.phase(), Phase::Force);
        assert_eq!(late.next().await, Phase::Force);
    }
}
