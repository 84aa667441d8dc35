//! What waits: a statement held until the Gate's answer, and the refusals whose upstream
//! failures are still to be rewritten.
//!
//! A held frame is simply not forwarded, and the client is not read past it, until its
//! [`Waiting`] resolves: into a Permit (the frame goes upstream) or a Refusal (a failing
//! statement goes instead, see `client.rs`, `refuse`). Dropping a hold withdraws its
//! request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;

use crate::gate::{Commit, Hold, Permit, Refusal};

/// What a held frame was, so it can be forwarded or refused correctly later.
pub(super) enum HeldKind {
    Query(Arc<crate::policy::sql::SqlAnalysis>),
    /// What the portal's statement does to prepared-statement names when it runs.
    Execute(Vec<super::tracker::Effect>),
    FunctionCall,
}

/// What a held frame waits for.
pub(super) enum Waiting {
    /// An approval (the client was told).
    Approval(Hold),
    /// A grant's audit record reaching disk.
    Audit(Commit),
}

impl Waiting {
    pub fn cancel(&self, reason: &str) {
        if let Waiting::Approval(h) = self {
            h.cancel(reason);
        }
    }
}

impl Future for Waiting {
    type Output = Result<Permit, Refusal>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Waiting::Approval(h) => Pin::new(h).poll(cx),
            Waiting::Audit(c) => Pin::new(c).poll(cx),
        }
    }
}

pub(super) struct Held {
    pub hold: Waiting,
    pub frame: BytesMut,
    pub kind: HeldKind,
}

/// Refusals sent upstream as failing statements, by the sequence number in their marker.
#[derive(Default)]
pub(super) struct Refusals {
    waiting: Vec<(u64, Refusal)>,
    seq: u64,
}

impl Refusals {
    /// Remember a refusal; its sequence number goes into the failing statement's marker.
    pub fn add(&mut self, refusal: Refusal) -> u64 {
        self.seq += 1;
        self.waiting.push((self.seq, refusal));
        self.seq
    }

    /// The refusal whose marker carries `seq`, once.
    pub fn take(&mut self, seq: u64) -> Option<Refusal> {
        let i = self.waiting.iter().position(|(s, _)| *s == seq)?;
        Some(self.waiting.swap_remove(i).1)
    }

    /// Nothing awaits the server any more: no failure can still come.
    pub fn clear(&mut self) {
        self.waiting.clear();
    }
}
