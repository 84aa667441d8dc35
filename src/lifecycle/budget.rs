//! The memory budget that incomplete large messages of every session share.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
