//! Verifying a chain: the checks every event passes, in chain order ([`Links`]), and the walk
//! of a whole store ([`walk`]) that `verify` runs. A copy of the chain kept elsewhere (the
//! cluster's shipped trail, [`super::shipped`]) is checked with the same [`Links`].
//!
//! Invariants: an event's seq follows the last one's; its hash is `SHA-256(last hash ‖ its
//! stored bytes)`; a statement's `text_ref` names a text its session stored whole earlier in
//! the chain; the chain ends exactly at the head its store recorded. The first check that
//! fails is reported with the seq of the event it concerns ([`Broken`]).

use super::chain::{Broken, Link, RawEvent, broken, decode, link, unpack};
use super::keys;

/// Statement texts referenced by later events of their session ([`super::texts`]), checked
/// as the walk goes: each reference must name a text its session stored whole earlier in
/// the chain, so a definition edited and re-hashed with everything after it still shows.
/// After pruning, events within one reference window of the first one kept may name a
/// definition that was pruned.
#[derive(Default)]
struct References {
    resolver: super::texts::Resolver,
    first_at: Option<u64>,
}

impl References {
    fn check(&mut self, e: &RawEvent<'_>, anchored: bool) -> Result<(), Broken> {
        let first_at = *self.first_at.get_or_insert(e.at_us);
        // Canonical JSON starts with its kind: only these can define, reference or end.
        let relevant = [
            &b"{\"kind\":\"statement\""[..],
            b"{\"kind\":\"parse\"",
            b"{\"kind\":\"session_end\"",
        ]
        .iter()
        .any(|p| e.json.starts_with(p));
        if !relevant {
            return Ok(());
        }
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(e.json) else {
            return Err(broken(e.seq, "its content is not a JSON object"));
        };
        let session = String::from_utf8_lossy(e.session);
        let pruned_before =
            anchored && e.at_us < first_at.saturating_add(super::texts::REFERENCE_WINDOW);
        if self.resolver.read(&session, &mut fields) || pruned_before {
            return Ok(());
        }
        Err(broken(
            e.seq,
            "its text_ref names no text its session stored before",
        ))
    }
}

/// The checks every event of a chain passes, one event at a time and in chain order, from
/// an anchor: the seq follows the last one, the hash links the stored bytes to the last hash,
/// and a text reference names a text its session stored before. [`walk`] runs it over the
/// blocks of a store; a trail shipped elsewhere is checked with the same rules.
pub struct Links {
    at: Link,
    anchored: bool,
    texts: References,
    walked: u64,
}

impl Links {
    /// A chain continuing after `anchor` ([`Link::START`] for a chain never pruned).
    pub fn after(anchor: Link) -> Links {
        Links {
            at: anchor,
            anchored: anchor != Link::START,
            texts: References::default(),
            walked: 0,
        }
    }

    /// The last event checked (the anchor before any).
    pub fn last(&self) -> Link {
        self.at
    }

    /// Check the next event; on success it becomes the last one.
    pub fn check(&mut self, e: &RawEvent<'_>) -> Result<(), Broken> {
        let expect = self.at.seq + 1;
        if e.seq != expect {
            return Err(broken(
                expect,
                if e.seq > expect {
                    format!(
                        "event {expect} is missing (the next one stored is event {})",
                        e.seq
                    )
                } else {
                    format!(
                        "found event {} where event {expect} belongs (events were inserted or reordered)",
                        e.seq
                    )
                },
            ));
        }
        if link(&self.at.hash, e.record) != e.hash {
            return Err(broken(
                e.seq,
                format!(
                    "its hash does not match its content and the hash of event {}",
                    self.at.seq
                ),
            ));
        }
        self.texts.check(e, self.anchored)?;
        self.at = Link {
            seq: e.seq,
            hash: e.hash,
        };
        self.walked += 1;
        Ok(())
    }

    /// After the last event: the chain must end exactly at `head`, the last event its store
    /// recorded (`None`: no head was recorded, so there must be no events either).
    pub fn finish(self, head: Option<Link>) -> Result<u64, Broken> {
        let at = self.at;
        let Some(head) = head else {
            if self.walked > 0 {
                return Err(broken(at.seq, "the store's head record is missing"));
            }
            return Ok(0);
        };
        if head.seq > at.seq {
            return Err(broken(
                at.seq + 1,
                format!(
                    "the chain ends at event {} but the store recorded events up to {} (events at the end were removed)",
                    at.seq, head.seq
                ),
            ));
        }
        if head.seq < at.seq {
            return Err(broken(
                head.seq + 1,
                format!(
                    "the store recorded events up to {} but the chain goes on to event {} (events were appended)",
                    head.seq, at.seq
                ),
            ));
        }
        if head.hash != at.hash {
            return Err(broken(
                at.seq,
                "the store's head records this event with another hash",
            ));
        }
        Ok(self.walked)
    }
}

/// The head the store recorded ([`keys::HEAD`], written with each checkpoint and by recovery),
/// if any: where the chain of a store that is not being written must end.
pub fn recorded_head(tree: &sled::Tree) -> Result<Option<Link>, Broken> {
    match tree
        .get(keys::HEAD)
        .map_err(|e| broken(0, format!("cannot read the store: {e}")))?
    {
        None => Ok(None),
        Some(v) => Link::decode(&v)
            .map(Some)
            .ok_or_else(|| broken(0, "the store's head record is malformed")),
    }
}

/// Walk the whole chain of `tree` (from its anchor) and `blocks` (every stored block in
/// chain order, see [`super::store::Store::blocks`]) from the anchor (or the genesis) to
/// `head` (`None`: no head was recorded, so there must be no events): `Ok(events walked)`
/// or the first broken link (of the chain, or a text reference that resolves to nothing).
pub fn walk(
    tree: &sled::Tree,
    blocks: impl Iterator<Item = super::store::StoredBlock>,
    head: Option<Link>,
) -> Result<u64, Broken> {
    let read = |k: &[u8]| {
        tree.get(k)
            .map_err(|e| broken(0, format!("cannot read the store: {e}")))
    };
    let anchor = match read(keys::ANCHOR)? {
        None => Link::START,
        Some(v) => Link::decode(&v).ok_or_else(|| broken(0, "the pruning anchor is malformed"))?,
    };
    let mut links = Links::after(anchor);
    for item in blocks {
        let at = links.last();
        let (key_seq, v) = item.map_err(|e| broken(at.seq + 1, e))?;
        let expect = at.seq + 1;
        let raw = unpack(&v);
        let block = raw.as_deref().and_then(decode).ok_or_else(|| {
            broken(
                expect.min(key_seq.max(1)),
                format!("the block stored at event {key_seq} cannot be decoded"),
            )
        })?;
        let Some(first) = block.events.first() else {
            return Err(broken(key_seq, "an empty block"));
        };
        if first.seq != key_seq {
            return Err(broken(
                expect.min(key_seq),
                format!(
                    "the block stored at event {key_seq} starts with event {}",
                    first.seq
                ),
            ));
        }
        if block.prev != at.hash && first.seq == expect {
            return Err(broken(
                expect,
                format!("its block does not link to event {}", at.seq),
            ));
        }
        for e in &block.events {
            links.check(e)?;
        }
    }
    links.finish(head)
}
