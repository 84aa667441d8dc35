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

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
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
}

impl Shutdown {
    /// The phase now.
    pub fn phase(&self) -> Phase {
        if self.receiver.has_changed().is_err() {
            return Phase::Force;
        }
        *self.receiver.borrow()
    }

    /// Resolves once the phase is at least `phase`.
    pub async fn reached(&mut self, phase: Phase) {
        let _ = self.receiver.wait_for(|p| *p >= phase).await;
    }

    /// [`Self::reached`] as a future that owns its receiver.
    pub async fn reached_owned(mut self, phase: Phase) {
        self.reached(phase).await
    }

    /// Waits for the next change and returns the new phase.
    pub async fn next(&mut self) -> Phase {
        match self.receiver.changed().await {
            Ok(()) => *self.receiver.borrow_and_update(),
            Err(_) => Phase::Force,
        }
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
}
