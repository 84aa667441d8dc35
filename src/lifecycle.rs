//! The life of listeners and sessions: which protocol a connection speaks, the shutdown
//! phases, the one accept loop both front ends use, and draining.
//!
//! Invariants:
//! - Shutdown phases only move forward: [`Phase::Running`] → [`Phase::Draining`] (stop
//!   accepting, idle sessions close, held requests are cancelled) → [`Phase::Force`] (every
//!   session closes now). A [`Shutdown`] whose sender is gone reads as `Force`.
//! - At most `max_connections` connections per front end hold a session [`Slot`]; the accept
//!   loop counts each connection as `accepted` or `refused` in `jitgate_connections_total`
//!   and hands it to the front end either way (PostgreSQL tells an over-limit client 53300,
//!   SSH just closes it).
//! - Every connection that holds a slot runs on the listener's task tracker, so draining
//!   waits for exactly those tasks to end, without polling.
//! - [`LiveSessions`] knows every session in progress and its user, so one session can be
//!   ended alone (a reload that removes its user): its [`Shutdown`] then reads as `Force`,
//!   exactly as if the whole server were stopping.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::task::TaskTracker;

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

/// A session slot: held for as long as a connection counts against `max_connections`.
pub type Slot = OwnedSemaphorePermit;

/// A protocol front end: what happens to one accepted TCP connection.
pub trait FrontEnd: Send + Sync + 'static {
    /// `slot` is `None` when `max_connections` are in use: the front end refuses the
    /// connection in its protocol's way.
    fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        slot: Option<Slot>,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// One protocol's listener state: its slots and the tasks that hold them.
pub struct Listener {
    protocol: Protocol,
    slots: Arc<Semaphore>,
    max: usize,
    sessions: TaskTracker,
    /// `jitgate_connections_total`, by protocol and result.
    connections: prometheus::IntCounterVec,
}

impl Listener {
    pub fn new(
        protocol: Protocol,
        max_connections: usize,
        connections: prometheus::IntCounterVec,
    ) -> Listener {
        Listener {
            protocol,
            slots: Arc::new(Semaphore::new(max_connections)),
            max: max_connections,
            sessions: TaskTracker::new(),
            connections,
        }
    }

    /// Accept connections for `front` until the shutdown phase reaches `Draining`.
    pub async fn serve<F: FrontEnd>(
        &self,
        listener: TcpListener,
        front: Arc<F>,
        mut shutdown: Shutdown,
    ) {
        let protocol = self.protocol.as_str();
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!("{protocol} accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.reached(Phase::Draining) => break,
            };
            let _ = tcp.set_nodelay(true);
            let slot = self.slots.clone().try_acquire_owned().ok();
            let holds_slot = slot.is_some();
            let result = if holds_slot { "accepted" } else { "refused" };
            self.connections
                .with_label_values(&[protocol, result])
                .inc();
            let connection = front.clone().connection(tcp, peer, slot);
            if holds_slot {
                self.sessions.spawn(connection);
            } else {
                tokio::spawn(connection);
            }
        }
        self.sessions.close();
    }

    /// Connections holding a slot now.
    pub fn active(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Resolves once every connection that held a slot has ended (accepting has stopped).
    pub async fn drained(&self) {
        self.sessions.close();
        self.sessions.wait().await;
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
