//! Cancel keys. Each client gets the upstream backend's real pid (so notifications,
//! `pg_backend_pid()` and `pg_terminate_backend` mean what they mean directly) and a secret of
//! the proxy's own; a CancelRequest carrying them either withdraws the session's held request
//! or is forwarded to the upstream backend with the upstream's secret, which never leaves
//! the proxy. Unknown keys are ignored silently, as PostgreSQL does.
//!
//! Invariant: a (pid, secret) pair names at most one session. Two targets may have backends
//! with the same pid; a new session then draws another secret, never another pid.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use subtle::ConstantTimeEq;
use tokio::sync::watch;

struct Entry {
    secret: i32,
    upstream_address: String,
    upstream_pid: i32,
    upstream_secret: i32,
    holding: Arc<AtomicBool>,
    cancel: watch::Sender<u64>,
}

/// Live sessions by their pid (usually one per pid; more when targets share pids).
#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<i32, Vec<Entry>>>,
}

/// A session's side of its key: removes the entry when dropped.
pub struct Key<'a> {
    registry: &'a Registry,
    pub pid: i32,
    pub secret: i32,
    /// Set while the session holds a statement; the canceller then withdraws it instead.
    pub holding: Arc<AtomicBool>,
    pub cancelled: watch::Receiver<u64>,
}

impl Drop for Key<'_> {
    fn drop(&mut self) {
        let mut map = self.registry.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entries) = map.get_mut(&self.pid) {
            entries.retain(|e| e.secret != self.secret);
            if entries.is_empty() {
                map.remove(&self.pid);
            }
        }
    }
}

impl Registry {
    pub fn register(
        &self,
        upstream_address: &str,
        upstream_pid: i32,
        upstream_secret: i32,
    ) -> Key<'_> {
        let pid = upstream_pid;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let entries = map.entry(pid).or_default();
        let secret = loop {
            let s: i32 = rand::random();
            if entries.iter().all(|e| e.secret != s) {
                break s;
            }
        };
        let holding = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel(0u64);
        entries.push(Entry {
            secret,
            upstream_address: upstream_address.to_string(),
            upstream_pid,
            upstream_secret,
            holding: holding.clone(),
            cancel: tx,
        });
        Key {
            registry: self,
            pid,
            secret,
            holding,
            cancelled: rx,
        }
    }

    /// Handle a CancelRequest.
    pub async fn cancel(&self, pid: i32, secret: i32) {
        let forward = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            let Some(entries) = map.get(&pid) else {
                return;
            };
            let Some(e) = entries
                .iter()
                .find(|e| bool::from(e.secret.to_be_bytes().ct_eq(&secret.to_be_bytes())))
            else {
                return;
            };
            if e.holding.load(Ordering::Acquire) {
                e.cancel.send_modify(|n| *n += 1);
                None
            } else {
                Some((
                    e.upstream_address.clone(),
                    e.upstream_pid,
                    e.upstream_secret,
                ))
            }
        };
        if let Some((addr, upid, usecret)) = forward
            && let Err(e) = super::upstream::cancel(&addr, upid, usecret).await
        {
            tracing::warn!("forwarding a cancel request to {addr} failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_targets_with_one_pid_get_two_secrets_and_the_same_pid() {
        let registry = Registry::default();
        let first = registry.register("127.0.0.1:1", 4242, 7);
        let second = registry.register("127.0.0.1:2", 4242, 8);
        assert_eq!(
            (first.pid, second.pid),
            (4242, 4242),
            "the real pid, always"
        );
        assert_ne!(first.secret, second.secret);
        // Each key withdraws only its own session's hold.
        first.holding.store(true, Ordering::Release);
        second.holding.store(true, Ordering::Release);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(registry.cancel(4242, second.secret));
        assert!(second.cancelled.has_changed().unwrap_or(false));
        assert!(!first.cancelled.has_changed().unwrap_or(true));
        let (pid, secret) = (first.pid, first.secret);
        drop(second);
        runtime.block_on(registry.cancel(pid, secret));
        assert!(
            first.cancelled.has_changed().unwrap_or(false),
            "still registered"
        );
        drop(first);
        assert!(registry.map.lock().map(|m| m.is_empty()).unwrap_or(false));
    }
}
