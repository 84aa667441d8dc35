//! Session threads: one OS thread per core, each running a current-thread tokio runtime, on
//! which the accept loop places whole sessions.
//!
//! Why: a relayed statement is four socket operations (read the client, write the server,
//! read the server, write the client), and on a work-stealing runtime the wake-up of each
//! can land on another worker thread than the one that last ran the session, which costs
//! cross-thread notifications, futex wake-ups and cache misses per round trip. A session that
//! lives on one current-thread runtime has both its sockets registered with that thread's
//! reactor and its relay task polled by that thread only: a readiness event is handled where
//! it arrives, without waking anyone.
//!
//! Invariants:
//! - A session placed on a thread stays there: its sockets are registered with that thread's
//!   reactor (the accept loop hands over a deregistered `std` socket, see
//!   [`SessionThreads::spawn`]), and everything it spawns runs there too.
//! - A new session goes to the thread with the fewest sessions now ([`SessionThread::load`]
//!   counts them, each placement holds one count until its future ends).
//! - What the sessions share (the app state, the Gate, the audit writer, approvals, budgets
//!   and limits) is `Send + Sync` and lives on the main runtime or in plain memory; nothing
//!   here is specific to a protocol.
//! - [`SessionThreads::stop`] ends the threads; a session still running then is dropped
//!   (the server only stops them after draining, see `crate::server`).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

/// One session thread: its runtime's handle and how many sessions it runs.
struct SessionThread {
    handle: Handle,
    load: Arc<AtomicUsize>,
    /// Taken by [`SessionThreads::stop`].
    stop: Mutex<Option<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>>,
}

/// The session threads of one server.
pub struct SessionThreads {
    threads: Vec<SessionThread>,
}

/// One session's count on its thread, given back when the session's future ends.
struct Placed(Arc<AtomicUsize>);

impl Drop for Placed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionThreads {
    /// As many threads as the machine has cores (`available_parallelism`), or as the
    /// environment variable `JITGATE_SESSION_THREADS` says (a whole number ≥ 1; anything
    /// else is ignored with a warning).
    pub fn per_core(name: &str) -> std::io::Result<SessionThreads> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let count = match std::env::var("JITGATE_SESSION_THREADS") {
            Err(_) => cores,
            Ok(v) => match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    tracing::warn!("JITGATE_SESSION_THREADS={v:?} is not a number >= 1: ignored");
                    cores
                }
            },
        };
        SessionThreads::start(count, name)
    }

    /// `count` threads (at least one), named `name-0`, `name-1`…
    pub fn start(count: usize, name: &str) -> std::io::Result<SessionThreads> {
        let mut threads = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let join = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    // Runs the sessions spawned on it until told to stop (or the server's
                    // end drops the sender); dropping the runtime then drops what is left.
                    let _ = runtime.block_on(stopped);
                })?;
            threads.push(SessionThread {
                handle,
                load: Arc::default(),
                stop: Mutex::new(Some((stop, join))),
            });
        }
        Ok(SessionThreads { threads })
    }

    /// How many threads there are.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Sessions running on each thread now.
    pub fn loads(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|t| t.load.load(Ordering::Relaxed))
            .collect()
    }

    /// Run the future `make` builds on the least loaded thread, tracked by `tracker`. `make`
    /// is called on that thread, inside its runtime, so the sockets it registers (e.g.
    /// `TcpStream::from_std`) belong to that thread's reactor.
    pub fn spawn<M, F>(&self, tracker: &TaskTracker, make: M)
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(thread) = self
            .threads
            .iter()
            .min_by_key(|t| t.load.load(Ordering::Relaxed))
        else {
            return;
        };
        thread.load.fetch_add(1, Ordering::Relaxed);
        let placed = Placed(thread.load.clone());
        tracker.spawn_on(
            async move {
                let _placed = placed;
                make().await;
            },
            &thread.handle,
        );
    }

    /// End every thread: the sessions still on them are dropped. Waits at most `grace` for
    /// the threads to finish (it blocks: call it from a blocking context). A second call
    /// does nothing.
    pub fn stop(&self, grace: std::time::Duration) {
        let stopping: Vec<_> = self
            .threads
            .iter()
            .filter_map(|t| t.stop.lock().unwrap_or_else(|p| p.into_inner()).take())
            .map(|(stop, join)| {
                let _ = stop.send(());
                join
            })
            .collect();
        let deadline = std::time::Instant::now() + grace;
        for join in stopping {
            while !join.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if join.is_finished() {
                let _ = join.join();
            }
        }
    }
}

impl std::fmt::Debug for SessionThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionThreads")
            .field("loads", &self.loads())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Spawns a session that reports the thread it runs on, then waits for `release`.
    /// Returns `release` and where the session ran (once it has).
    fn session(
        threads: &SessionThreads,
        tracker: &TaskTracker,
    ) -> (oneshot::Sender<()>, impl Fn() -> String) {
        let (release, released) = oneshot::channel::<()>();
        let (ran_on, name) = std::sync::mpsc::sync_channel(1);
        threads.spawn(tracker, move || async move {
            let name = std::thread::current().name().unwrap_or("?").to_string();
            let _ = ran_on.send(name);
            let _ = released.await;
        });
        let ran_on = move || {
            name.recv_timeout(Duration::from_secs(5))
                .expect("the session ran")
        };
        (release, ran_on)
    }

    fn wait_for_loads(threads: &SessionThreads, want: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while threads.loads() != want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(threads.loads(), want);
    }

    #[test]
    fn sessions_go_to_the_least_loaded_thread_and_run_there() {
        let threads = SessionThreads::start(2, "test-session").expect("threads start");
        let tracker = TaskTracker::new();
        let (first, first_on) = session(&threads, &tracker);
        let (second, second_on) = session(&threads, &tracker);
        let (a, b) = (first_on(), second_on());
        assert!(a.starts_with("test-session-") && b.starts_with("test-session-"));
        assert_ne!(a, b, "two sessions on two idle threads");
        wait_for_loads(&threads, &[1, 1]);
        // The first ends: the next session goes where it was.
        let _ = first.send(());
        wait_for_loads(&threads, &[0, 1]);
        let (third, third_on) = session(&threads, &tracker);
        assert_eq!(
            third_on(),
            a,
            "the third session runs where the first ended"
        );
        wait_for_loads(&threads, &[1, 1]);
        drop(third);
        let _ = second.send(());
        wait_for_loads(&threads, &[0, 0]);
        tracker.close();
        threads.stop(Duration::from_secs(5));
        assert!(tracker.is_empty(), "every session ended");
    }

    #[test]
    fn stop_drops_sessions_still_running() {
        let threads = SessionThreads::start(1, "test-stop").expect("threads start");
        let tracker = TaskTracker::new();
        let (_forever, ran_on) = session(&threads, &tracker);
        ran_on();
        tracker.close();
        assert!(!tracker.is_empty());
        threads.stop(Duration::from_secs(5));
        assert!(
            tracker.is_empty(),
            "stopping the threads drops their sessions"
        );
        assert_eq!(threads.loads(), [0]);
        threads.stop(Duration::from_secs(1));
    }
}
