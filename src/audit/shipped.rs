//! The trail as it leaves this process, and the reads and checks that work on a copy of it
//! kept elsewhere (the cluster's state database, `crate::cluster::shipping`).
//!
//! Invariants:
//! - **Exactly the hashed bytes.** [`Audit::stored_after`] hands out each event's stored
//!   record (`seq ‖ at ‖ session ‖ JSON`, see [`super::chain`]) with its hash and the hash
//!   before it, in chain order, read from what has been committed. A copy holding these
//!   bytes verifies with the same rules as the local store ([`ShippedChain`]), so a copy
//!   can be checked without trusting whoever kept it.
//! - **Read only.** Nothing here writes the store or touches the writer; reading takes no lock
//!   the hot path takes (sled reads are lock-free for the writer).
//! - **Columns are claims.** A shipped row's columns (seq, time, session, kind, previous hash)
//!   exist for queries; [`ShippedChain::check`] compares each with the record it came with,
//!   so an edited column is named like an edited record.

use super::chain::{self, Broken, Link};
use super::event::EventRecord;
use super::store::record;
use super::walk::Links;
use super::{Audit, AuditError};

pub use super::texts::Resolver as TextResolver;

/// One committed event as stored, for shipping.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    /// Unix µs.
    pub at_us: u64,
    /// The session id (lossy UTF-8; the record holds the exact bytes).
    pub session: String,
    /// The event's kind (`statement`, `session_start`, …).
    pub kind: String,
    /// The hashed bytes.
    pub record: Vec<u8>,
    pub hash: [u8; 32],
    /// The hash of the event before (the genesis or the pruning anchor for the first one).
    pub prev_hash: [u8; 32],
}

impl StoredEvent {
    /// The event's JSON (inside the record).
    pub fn json(&self) -> &[u8] {
        chain::parse_record(&self.record, self.hash)
            .map(|e| e.json)
            .unwrap_or_default()
    }
}

/// The kind a canonical event JSON starts with (`{"kind":"NAME",…`); empty if it does not.
pub fn kind_of(json: &[u8]) -> &str {
    const PREFIX: &[u8] = b"{\"kind\":\"";
    json.strip_prefix(PREFIX)
        .and_then(|rest| {
            let end = rest.iter().position(|&b| b == b'"')?;
            std::str::from_utf8(&rest[..end]).ok()
        })
        .unwrap_or("")
}

impl Audit {
    /// The seq of the last committed event (0 for an empty store).
    pub fn head_seq(&self) -> Result<u64, AuditError> {
        Ok(super::lock(&self.inner.shared.head).seq)
    }

    /// Committed events after seq `after`, in chain order: at most `max_events`, and no more
    /// once `max_bytes` of records are gathered (at least one event if there is any). Events
    /// pruned meanwhile are skipped (the first one returned then has a seq past `after + 1`).
    /// Blocking (sled reads).
    pub fn stored_after(
        &self,
        after: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, AuditError> {
        let failed = |e: String| AuditError::Failed(format!("reading the store: {e}").into());
        let mut out = Vec::new();
        let mut bytes = 0;
        // From the block holding `after + 1`: the last one whose first event is at or before it.
        for item in self.inner.store.blocks_from(after.saturating_add(1)) {
            let (key_seq, v) = item.map_err(failed)?;
            let raw = chain::unpack(&v);
            let Some(block) = raw.as_deref().and_then(chain::decode) else {
                return Err(AuditError::Failed(
                    format!("the block stored at event {key_seq} cannot be decoded").into(),
                ));
            };
            let mut prev = block.prev;
            for e in &block.events {
                if e.seq > after {
                    bytes += e.record.len();
                    out.push(StoredEvent {
                        seq: e.seq,
                        at_us: e.at_us,
                        session: String::from_utf8_lossy(e.session).into_owned(),
                        kind: kind_of(e.json).to_string(),
                        record: e.record.to_vec(),
                        hash: e.hash,
                        prev_hash: prev,
                    });
                    if out.len() >= max_events || bytes >= max_bytes {
                        return Ok(out);
                    }
                }
                prev = e.hash;
            }
        }
        Ok(out)
    }
}

/// A stored record and its hash as readers get it; `None` if the bytes are not one record.
pub fn event_record(stored: &[u8], hash: &[u8]) -> Option<EventRecord> {
    let hash: [u8; 32] = hash.try_into().ok()?;
    chain::parse_record(stored, hash).map(|e| record(&e))
}

/// One shipped row: the record and hash as stored, with the columns kept beside them.
pub struct ShippedRow<'a> {
    pub seq: u64,
    pub at_us: u64,
    pub session: &'a str,
    pub kind: &'a str,
    pub record: &'a [u8],
    pub hash: &'a [u8],
    pub prev_hash: &'a [u8],
}

/// Checks one node's shipped chain, row by row in seq order, with the local store's rules
/// ([`Links`]) plus the agreement of every column with its record.
pub struct ShippedChain(Links);

fn broken(seq: u64, reason: impl Into<String>) -> Broken {
    Broken {
        seq,
        reason: reason.into(),
    }
}

fn hash32(seq: u64, what: &str, h: &[u8]) -> Result<[u8; 32], Broken> {
    h.try_into()
        .map_err(|_| broken(seq, format!("its {what} is not 32 bytes")))
}

impl ShippedChain {
    /// A chain continuing after event `anchor_seq` with hash `anchor_hash` (0 and the
    /// genesis for a chain shipped from its first event).
    pub fn after(anchor_seq: u64, anchor_hash: &[u8]) -> Result<ShippedChain, Broken> {
        let hash = hash32(anchor_seq, "anchor hash", anchor_hash)?;
        Ok(ShippedChain(Links::after(Link {
            seq: anchor_seq,
            hash,
        })))
    }

    /// Check the next row.
    pub fn check(&mut self, row: &ShippedRow<'_>) -> Result<(), Broken> {
        let hash = hash32(row.seq, "hash", row.hash)?;
        let prev = hash32(row.seq, "previous hash", row.prev_hash)?;
        let Some(e) = chain::parse_record(row.record, hash) else {
            return Err(broken(row.seq, "its stored record cannot be decoded"));
        };
        if e.seq != row.seq {
            return Err(broken(
                row.seq,
                format!(
                    "its row says event {} but its record is event {}",
                    row.seq, e.seq
                ),
            ));
        }
        let linked_to = self.0.last().hash;
        self.0.check(&e)?;
        let differs = |what: &str| {
            broken(
                row.seq,
                format!("its {what} column does not match its hashed record"),
            )
        };
        if e.at_us != row.at_us {
            return Err(differs("time"));
        }
        if e.session != row.session.as_bytes() {
            return Err(differs("session"));
        }
        if kind_of(e.json) != row.kind {
            return Err(differs("kind"));
        }
        if prev != linked_to {
            return Err(differs("previous hash"));
        }
        Ok(())
    }

    /// After the last row: the chain must end at the head the shipper recorded.
    pub fn finish(self, head_seq: u64, head_hash: &[u8]) -> Result<u64, Broken> {
        let hash = hash32(head_seq, "head hash", head_hash)?;
        self.0.finish(Some(Link {
            seq: head_seq,
            hash,
        }))
    }
}
