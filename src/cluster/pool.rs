//! A small pool of connections to the state database for the work that needs one of its own
//! (a transaction) or that should not queue behind the notifications' connection.
//!
//! Invariants: at most [`POOL_SIZE`] connections at once (a semaphore); the mutex guards only
//! the push and pop of idle connections, never an await; a closed connection is dropped, not
//! reused, so one outage costs one failed call per connection at most.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::Client;

use super::{Connector, StateError};

/// Connections to the state database per replica, at most (besides the LISTEN one).
pub const POOL_SIZE: usize = 8;

pub struct Pool {
    connector: Connector,
    idle: Mutex<Vec<Client>>,
    slots: Arc<Semaphore>,
}

/// A connection lent by the [`Pool`]; back to it on drop unless it closed.
pub struct Pooled {
    client: Option<Client>,
    pool: Arc<Pool>,
    _slot: OwnedSemaphorePermit,
}

impl Pool {
    pub fn new(connector: Connector, first: Client) -> Arc<Pool> {
        Arc::new(Pool {
            connector,
            idle: Mutex::new(vec![first]),
            slots: Arc::new(Semaphore::new(POOL_SIZE)),
        })
    }

    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    fn pop_idle(&self) -> Option<Client> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(c) = idle.pop() {
            if !c.is_closed() {
                return Some(c);
            }
        }
        None
    }

    /// An open connection: an idle one, or a new one.
    pub async fn get(self: &Arc<Self>) -> Result<Pooled, StateError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StateError::Unreachable("the connection pool is closed".into()))?;
        let client = match self.pop_idle() {
            Some(c) => c,
            None => self.connector.client().await?,
        };
        Ok(Pooled {
            client: Some(client),
            pool: self.clone(),
            _slot: slot,
        })
    }
}

impl Pooled {
    /// The connection (present until the `Pooled` is dropped).
    pub fn client(&mut self) -> Result<&mut Client, StateError> {
        self.client
            .as_mut()
            .ok_or_else(|| StateError::Unreachable("connection already returned".into()))
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(c) = self.client.take()
            && !c.is_closed()
        {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(c);
        }
    }
}
