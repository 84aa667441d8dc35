//! One protocol's listener: the accept loop, the limits on connections that have not
//! authenticated (in all and per source), and the session slots only authentication takes.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::{Phase, Protocol, SessionThreads, Shutdown};

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

/// One protocol's listener state: its limits and the tasks of the connections it admitted.
pub struct Listener {
    protocol: Protocol,
    slots: Arc<Semaphore>,
    max: usize,
    unauthenticated: Arc<Semaphore>,
    sources: Arc<SourceCounts>,
    per_source: usize,
    sessions: TaskTracker,
    /// Where admitted connections run: the session threads, or (`None`) the runtime of the
    /// accept loop.
    threads: Option<Arc<SessionThreads>>,
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
            threads: None,
            connections,
        }
    }

    /// Run admitted connections on `threads` (each on the least loaded one) instead of the
    /// accept loop's runtime.
    pub fn with_threads(mut self, threads: Arc<SessionThreads>) -> Listener {
        self.threads = Some(threads);
        self
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
            let front = front.clone();
            match &self.threads {
                // Over a limit: refused where it was accepted.
                _ if !admission.admitted() => {
                    tokio::spawn(front.connection(tcp, peer, admission));
                }
                None => {
                    self.sessions.spawn(front.connection(tcp, peer, admission));
                }
                // The socket leaves this runtime's reactor and joins the session thread's.
                Some(threads) => match tcp.into_std() {
                    Ok(tcp) => threads.spawn(&self.sessions, move || async move {
                        match TcpStream::from_std(tcp) {
                            Ok(tcp) => front.connection(tcp, peer, admission).await,
                            Err(e) => tracing::warn!("{protocol}: cannot register a socket: {e}"),
                        }
                    }),
                    Err(e) => tracing::warn!("{protocol}: cannot hand a socket over: {e}"),
                },
            }
        }
        self.sessions.close();
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
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
}
