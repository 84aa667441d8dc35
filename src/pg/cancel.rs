//! Cancel keys. Each client gets the proxy's own BackendKeyData; a CancelRequest carrying it
//! either withdraws the session's held request or is forwarded to the upstream backend.
//! Unknown keys are ignored silently, as PostgreSQL does.

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

#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<i32, Entry>>,
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
        self.registry
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.pid);
    }
}

impl Registry {
    pub fn register(
        &self,
        upstream_address: &str,
        upstream_pid: i32,
        upstream_secret: i32,
    ) -> Key<'_> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let pid = loop {
            let p = rand::random::<i32>() & 0x3fff_ffff;
            if p != 0 && !map.contains_key(&p) {
                break p;
            }
        };
        let secret: i32 = rand::random();
        let holding = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel(0u64);
        map.insert(
            pid,
            Entry {
                secret,
                upstream_address: upstream_address.to_string(),
                upstream_pid,
                upstream_secret,
                holding: holding.clone(),
                cancel: tx,
            },
        );
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
            let Some(e) = map.get(&pid) else {
                return;
            };
            if !bool::from(e.secret.to_be_bytes().ct_eq(&secret.to_be_bytes())) {
                return;
            }
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
