//! The life of listeners and sessions: which protocol a connection speaks, the shutdown
//! phases, the one accept loop both front ends use, and draining.
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
//!   exactly those tasks to end, without polling.

//! - [`LiveSessions`] knows every session in progress and its user, so one session can be
//!   ended alone (a reload that removes its user): its [`Shutdown`] then reads as `Force`,
//!   exactly as if the whole server were stopping.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// When `admission` is not [`Admission::admitted`], the front end refuses the connection
    /// in its protocol's way; otherwise it calls [`Admission::authenticated`] once the user
    /// has proven who they are.
    fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        admission: Admission,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// How many connections a front end admits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Authenticated sessions.
    pub sessions: usize,
    /// Connections still negotiating or authenticating.
    pub unauthenticated: usize,
    /// Of those, from one source address.
    pub unauthenticated_per_source: usize,
}

/// Unauthenticated connections per source address; an address with none has no entry.
#[derive(Default)]
struct SourceCounts(Mutex<HashMap<IpAddr, usize>>);

impl SourceCounts {
    fn take(self: &Arc<Self>, source: IpAddr, limit: usize) -> Option<SourcePlace> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(source).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(SourcePlace {
            counts: self.clone(),
            source,
        })
    }
}

/// One unauthenticated connection's place in its source's count.
struct SourcePlace {
    counts: Arc<SourceCounts>,
    source: IpAddr,
}

impl Drop for SourcePlace {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

/// A connection's standing from accept until it authenticates, and its one count in
/// `jitgate_connections_total`.
pub struct Admission {
    /// The unauthenticated places it holds; `None` when it was over a limit at accept or
    /// has authenticated.
    waiting: Option<(OwnedSemaphorePermit, SourcePlace)>,
    slots: Arc<Semaphore>,
    counted: bool,
    counter: prometheus::IntCounterVec,
    protocol: Protocol,
}

impl Admission {
    /// False when the connection was over the unauthenticated limits at accept.
    pub fn admitted(&self) -> bool {
        self.waiting.is_some()
    }

    /// The user has authenticated: frees the connection's unauthenticated places and takes a
    /// session slot, `None` when `max_connections` sessions are open (refuse the session).
    /// Call it once.
    pub fn authenticated(&mut self) -> Option<Slot> {
        // Dropping the places frees them for the next connection.
        let _places = self.waiting.take()?;
        let slot = self.slots.clone().try_acquire_owned().ok();
        self.count(if slot.is_some() {
            "accepted"
        } else {
            "refused"
        });
        slot
    }

    fn count(&mut self, result: &str) {
        if !self.counted {
            self.counted = true;
            self.counter
                .with_label_values(&[self.protocol.as_str(), result])
                .inc();
        }
    }
}

impl Drop for Admission {
    /// A connection that never authenticated was accepted to try.
    fn drop(&mut self) {
        self.count("accepted");
    }
}

/// Bytes of incomplete large messages buffered across every session, bounded: a client that
/// starts a message it does not finish holds memory only within this budget.
#[derive(Clone)]
pub struct MessageBudget {
    used: Arc<AtomicUsize>,
    limit: usize,
}

/// Bytes of the budget held by one incomplete message; given back when dropped.
pub struct Reserved {
    used: Arc<AtomicUsize>,
    pub bytes: usize,
}

impl MessageBudget {
    pub fn new(limit: usize) -> MessageBudget {
        MessageBudget {
            used: Arc::default(),
            limit,
        }
    }

    /// `bytes` of the budget, or `None` when they would take it over its limit.
    pub fn reserve(&self, bytes: usize) -> Option<Reserved> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .ok()?;
        Some(Reserved {
            used: self.used.clone(),
            bytes,
        })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// One protocol's listener state: its limits and the tasks of the connections it admitted.
pub struct Listener {
    protocol: Protocol,
    slots: Arc<Semaphore>,
    max: usize,
    unauthenticated: Arc<Semaphore>,
    sources: Arc<SourceCounts>,
    per_source: usize,
    sessions: TaskTracker,
    /// `jitgate_connections_total`, by protocol and result.
    connections: prometheus::IntCounterVec,
}

impl Listener {
    pub fn new(
        protocol: Protocol,
        limits: Limits,
        connections: prometheus::IntCounterVec,
    ) -> Listener {
        Listener {
            protocol,
            slots: Arc::new(Semaphore::new(limits.sessions)),
            max: limits.sessions,
            unauthenticated: Arc::new(Semaphore::new(limits.unauthenticated)),
            sources: Arc::default(),
            per_source: limits.unauthenticated_per_source,
            sessions: TaskTracker::new(),
            connections,
        }
    }

    /// The admission of a connection from `source`, accepted now.
    fn admit(&self, source: IpAddr) -> Admission {
        let waiting = self
            .unauthenticated
            .clone()
            .try_acquire_owned()
            .ok()
            .and_then(|permit| Some((permit, self.sources.take(source, self.per_source)?)));
        let mut admission = Admission {
            waiting,
            slots: self.slots.clone(),
            counted: false,
            counter: self.connections.clone(),
            protocol: self.protocol,
        };
        if !admission.admitted() {
            admission.count("refused");
        }
        admission
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
            let admission = self.admit(peer.ip());
            let admitted = admission.admitted();
            let connection = front.clone().connection(tcp, peer, admission);
            if admitted {
                self.sessions.spawn(connection);
            } else {
                tokio::spawn(connection);
            }
        }
        self.sessions.close();
    }

    /// Connections holding a session slot now.
    pub fn active(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Resolves once every admitted connection has ended (accepting has stopped).
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

    fn listener(sessions: usize, unauthenticated: usize, per_source: usize) -> Listener {
        let counter = prometheus::IntCounterVec::new(
            prometheus::Opts::new("connections_total", "test"),
            &["protocol", "result"],
        )
        .expect("a valid metric");
        Listener::new(
            Protocol::Postgres,
            Limits {
                sessions,
                unauthenticated,
                unauthenticated_per_source: per_source,
            },
            counter,
        )
    }

    fn count(l: &Listener, result: &str) -> u64 {
        l.connections.with_label_values(&["postgres", result]).get()
    }

    #[test]
    fn unauthenticated_places_are_bounded_per_source_and_in_all() {
        let l = listener(1, 3, 2);
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = l.admit(a);
        let a2 = l.admit(a);
        assert!(a1.admitted() && a2.admitted());
        assert!(!l.admit(a).admitted(), "a third from one source");
        let b1 = l.admit(b);
        assert!(b1.admitted());
        assert!(!l.admit(b).admitted(), "a fourth in all");
        assert_eq!(count(&l, "refused"), 2);
        drop(a1);
        assert!(
            l.admit(b).admitted(),
            "a freed place is usable by any source"
        );
    }

    #[test]
    fn only_authentication_takes_a_session_slot_and_frees_the_place() {
        let l = listener(1, 2, 1);
        let source = "10.0.0.1".parse().unwrap();
        let mut first = l.admit(source);
        assert_eq!(l.active(), 0, "an unauthenticated connection holds no slot");
        let slot = first.authenticated().expect("a free slot");
        assert_eq!(l.active(), 1);
        assert!(first.authenticated().is_none(), "authenticated only once");
        // Its place among the unauthenticated is free again, but the one slot is taken.
        let mut second = l.admit(source);
        assert!(second.admitted());
        assert!(second.authenticated().is_none(), "over max_connections");
        assert_eq!((count(&l, "accepted"), count(&l, "refused")), (1, 1));
        drop((first, second));
        // A connection that never authenticates counts as accepted when it ends.
        drop(l.admit(source));
        assert_eq!((count(&l, "accepted"), count(&l, "refused")), (2, 1));
        drop(slot);
        assert_eq!(l.active(), 0);
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
