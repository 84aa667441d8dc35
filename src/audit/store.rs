//! The sled keyspace and every read of it. Only the writer thread appends blocks and writes
//! requests (but for the start-up clean-up, before it starts); reads go straight to sled and
//! see what has been committed (flushed or not).
//!
//! The blocks themselves live in segment files ([`super::segment`]); stores written before
//! those kept them in sled (`b` keys), and those are still read, first, in chain order.
//!
//! Keys (one tree; what a commit writes and when it is flushed: [`super::index`]):
//! - `l` ‖ seq (u64 BE) → the [`Location`] of a block whose first event is `seq`
//! - `b` ‖ seq (u64 BE) → such a block itself ([`super::chain`]; older stores only)
//! - `x` ‖ len (u16 BE) ‖ session ‖ seq → `""`: the block at `seq` holds events of `session`
//!   (put in by the checkpoint thread; until then in [`Store::pending`], which reads consult)
//! - `s` ‖ session → [`SessionRecord`] JSON
//! - `r` ‖ request id → the request as the API shows it (JSON)
//! - `m:head` → seq ‖ hash of the last committed event as of the last checkpoint (or recovery);
//!   the writer's own head, in memory, is the live one
//! - `m:anchor` → seq ‖ hash of the last pruned event (absent until the first prune)

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::AuditError;
use super::chain::{self, Link, RawEvent};
use super::encode::hex;
use super::event::{EventRecord, SessionFilter, SessionRecord};
use super::index::PendingIndex;
use super::keys;
use super::segment::{self, Location, Segments};
use super::texts::Resolver;

/// The sled database behind the audit trail, and the segment files beside it.
#[derive(Clone)]
pub struct Store {
    pub db: sled::Db,
    pub segments: Segments,
    /// Session index entries committed and not yet in sled ([`super::index`]).
    pub pending: Arc<PendingIndex>,
}

/// A stored block as read: the seq its key names and its stored bytes, or why it could not
/// be read.
pub type StoredBlock = Result<(u64, Vec<u8>), String>;

fn io_error(dir: &Path, e: sled::Error) -> AuditError {
    let msg = e.to_string();
    if msg.contains("could not acquire lock") {
        AuditError::Locked(dir.display().to_string())
    } else {
        AuditError::Open {
            dir: dir.display().to_string(),
            reason: msg,
        }
    }
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, AuditError> {
        std::fs::create_dir_all(dir).map_err(|e| AuditError::Open {
            dir: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        // sled writes a tree node bigger than a quarter segment as a separate blob file; 8 MiB
        // segments keep a node of ~17 compressed blocks inline. sled refuses to reopen a
        // store with another segment size, so this is part of the store's format.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 << 20)
            .segment_size(8 << 20)
            .open()
            .map_err(|e| io_error(dir, e))?;
        Ok(Store {
            db,
            segments: Segments::new(dir),
            pending: Arc::default(),
        })
    }

    /// Every block in chain order: those sled holds itself (older stores), then those in
    /// segment files. Read lazily, one block at a time.
    pub fn blocks(&self) -> impl Iterator<Item = StoredBlock> + Send + use<> {
        self.blocks_from(0)
    }

    /// The blocks from the one holding event `seq` on (the last block whose first event is
    /// at or before `seq`, else the first one), in chain order, like [`Self::blocks`].
    pub fn blocks_from(&self, seq: u64) -> impl Iterator<Item = StoredBlock> + Send + use<> {
        let legacy = self.keys_from(keys::BLOCK, keys::block(seq)).map(|kv| {
            let (k, v) = kv.map_err(|e| format!("cannot read the store: {e}"))?;
            Ok((keys::block_seq(&k).unwrap_or(0), v.to_vec()))
        });
        let mut reader = self.segments.reader();
        let located = self
            .keys_from(keys::LOCATED, keys::located(seq))
            .map(move |kv| {
                let (k, v) = kv.map_err(|e| format!("cannot read the store: {e}"))?;
                let seq = keys::block_seq(&k).unwrap_or(0);
                let at = Location::decode(&v).ok_or_else(|| {
                    format!("the location of the block at event {seq} is malformed")
                })?;
                let block = reader.read(&at).map_err(|e| {
                    format!(
                        "the block at event {seq} cannot be read from segment {}: {e}",
                        at.segment
                    )
                })?;
                Ok((seq, block))
            });
        legacy.chain(located)
    }

    /// The keys of `prefix` from the last one at or before `key` (else from the first).
    fn keys_from(
        &self,
        prefix: &'static [u8],
        key: [u8; 9],
    ) -> impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + Send + use<> {
        let start = self
            .db
            .range(prefix..=&key[..])
            .next_back()
            .and_then(Result::ok)
            .map_or_else(|| prefix.to_vec(), |(k, _)| k.to_vec());
        self.db
            .range(start..)
            .take_while(move |kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
    }

    /// The stored block whose first event is `seq`, if any.
    fn block(&self, reader: &mut segment::Reader, seq: u64) -> Option<Vec<u8>> {
        if let Some(v) = self.db.get(keys::located(seq)).ok()? {
            return reader.read(&Location::decode(&v)?).ok();
        }
        self.db.get(keys::block(seq)).ok()?.map(|v| v.to_vec())
    }

    /// The location of the last block in a segment file whose first event is at or before
    /// `seq`, if any.
    pub fn location_through(&self, seq: u64) -> Result<Option<Location>, sled::Error> {
        Ok(self
            .db
            .range(keys::located(0)..=keys::located(seq))
            .next_back()
            .transpose()?
            .and_then(|(_, v)| Location::decode(&v)))
    }

    /// The last committed event: the head record, else the last block, else the anchor.
    pub fn head(&self) -> Result<Link, sled::Error> {
        if let Some(v) = self.db.get(keys::HEAD)?
            && let Some(l) = Link::decode(&v)
        {
            return Ok(l);
        }
        let mut reader = self.segments.reader();
        let last = match self.db.scan_prefix(keys::LOCATED).next_back().transpose()? {
            Some((k, _)) => keys::block_seq(&k).and_then(|seq| self.block(&mut reader, seq)),
            None => self
                .db
                .scan_prefix(keys::BLOCK)
                .next_back()
                .transpose()?
                .map(|(_, v)| v.to_vec()),
        };
        if let Some(v) = last
            && let Some(raw) = chain::unpack(&v)
            && let Some(b) = chain::decode(&raw)
            && let Some(e) = b.events.last()
        {
            return Ok(Link {
                seq: e.seq,
                hash: e.hash,
            });
        }
        Ok(self.anchor()?.unwrap_or(Link::START))
    }

    pub fn anchor(&self) -> Result<Option<Link>, sled::Error> {
        Ok(self.db.get(keys::ANCHOR)?.and_then(|v| Link::decode(&v)))
    }

    pub fn session(&self, id: &str) -> Option<SessionRecord> {
        let v = self.db.get(keys::session(id.as_bytes())).ok()??;
        serde_json::from_slice(&v).ok()
    }

    pub fn sessions(&self, f: &SessionFilter) -> Vec<SessionRecord> {
        let mut out: Vec<SessionRecord> = self
            .db
            .scan_prefix(keys::SESSION)
            .filter_map(|kv| serde_json::from_slice(&kv.ok()?.1).ok())
            .filter(|s| f.matches(s))
            .collect();
        out.sort_by(|a, b| {
            a.started_at
                .total_cmp(&b.started_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        if let Some(n) = f.limit {
            out.drain(..out.len().saturating_sub(n));
        }
        out
    }

    /// The events of one session, in order, with referenced texts put back.
    pub fn events(&self, session: &str) -> Vec<EventRecord> {
        let mut texts = Resolver::default();
        let mut out = Vec::new();
        self.session_events(session, u64::MAX, |mut r| {
            texts.read(session, &mut r.fields);
            out.push(r);
        });
        out
    }

    /// Each event of `session` before seq `before`, in order, as stored.
    fn session_events(&self, session: &str, before: u64, mut each: impl FnMut(EventRecord)) {
        let mut reader = self.segments.reader();
        // The pending entries first: one leaves them only once it is in sled. Only blocks
        // before `before` are gathered.
        let mut blocks: BTreeSet<u64> = self
            .pending
            .blocks_of(session.as_bytes())
            .into_iter()
            .filter(|&seq| seq < before)
            .collect();
        for kv in self.db.scan_prefix(keys::index_prefix(session.as_bytes())) {
            let Ok((k, v)) = kv else { continue };
            blocks.extend(keys::index_blocks(&k, &v).filter(|&seq| seq < before));
        }
        for seq in blocks {
            // A block pruned after the index scan started is simply gone.
            let Some(v) = self.block(&mut reader, seq) else {
                continue;
            };
            let Some(raw) = chain::unpack(&v) else {
                continue;
            };
            let Some(b) = chain::decode(&raw) else {
                continue;
            };
            b.events
                .iter()
                .filter(|e| e.session == session.as_bytes() && e.seq < before)
                .for_each(|e| each(record(e)));
        }
    }

    /// Every event at or after `since_us`, in chain order, read block by block, with
    /// referenced texts put back. A reference whose definition precedes `since_us` is
    /// resolved from its session's earlier events (read once per such session).
    pub fn export(&self, since_us: u64) -> impl Iterator<Item = EventRecord> + Send + use<> {
        let store = self.clone();
        let mut texts = Resolver::default();
        let mut looked_back: HashSet<String> = HashSet::new();
        self.blocks().flat_map(move |kv| {
            let Ok((_, v)) = kv else { return Vec::new() };
            let Some(b) = chain::unpack(&v)
                .as_deref()
                .and_then(chain::decode)
                .map(|b| {
                    b.events
                        .iter()
                        .filter(|e| e.at_us >= since_us)
                        .map(record)
                        .collect::<Vec<_>>()
                })
            else {
                return Vec::new();
            };
            let mut b = b;
            for r in &mut b {
                if !texts.read(&r.session, &mut r.fields) && looked_back.insert(r.session.clone()) {
                    store.session_events(&r.session, r.seq, |mut earlier| {
                        texts.read(&earlier.session, &mut earlier.fields);
                    });
                    texts.read(&r.session, &mut r.fields);
                }
            }
            b
        })
    }

    pub fn put_request(&self, id: &str, json: Vec<u8>) -> Result<(), sled::Error> {
        self.db
            .insert(keys::request(id.as_bytes()), json)
            .map(|_| ())
    }

    pub fn request(&self, id: &str) -> Option<serde_json::Value> {
        let v = self.db.get(keys::request(id.as_bytes())).ok()??;
        serde_json::from_slice(&v).ok()
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        let mut out: Vec<serde_json::Value> = self
            .db
            .scan_prefix(keys::REQUEST)
            .filter_map(|kv| serde_json::from_slice(&kv.ok()?.1).ok())
            .collect();
        out.sort_by_key(|r| r.get("created_at").and_then(|v| v.as_u64()).unwrap_or(0));
        out
    }

    /// Drop every block whose events are all older than `cutoff_us` and none after seq
    /// `keep_after` (a prefix of the chain), moving the anchor to the last event dropped, and
    /// every segment file all of whose blocks are gone (but the last); then the sessions that
    /// ended before the cutoff (but those with events `keep_after` kept) or started before it
    /// and have no events left, and requests created before it that are no longer pending.
    /// Returns how many sessions went.
    pub fn prune(&self, cutoff_us: u64, keep_after: u64) -> Result<usize, sled::Error> {
        const BLOCKS_PER_BATCH: usize = 256;
        // Whether an old block stays for `keep_after`: then so do the sessions it indexes.
        let mut held = false;
        loop {
            let mut batch = sled::Batch::default();
            let mut anchor = None;
            let mut n = 0;
            for kv in self.blocks() {
                let Ok((block_seq, v)) = kv else { break };
                let Some(raw) = chain::unpack(&v) else { break };
                let Some(b) = chain::decode(&raw) else { break };
                let (Some(last), Some(newest)) =
                    (b.events.last(), b.events.iter().map(|e| e.at_us).max())
                else {
                    break;
                };
                if newest < cutoff_us && last.seq > keep_after {
                    held = true;
                }
                if newest >= cutoff_us || last.seq > keep_after || n == BLOCKS_PER_BATCH {
                    break;
                }
                let mut seen: Vec<&[u8]> = Vec::new();
                for e in &b.events {
                    if !seen.contains(&e.session) {
                        seen.push(e.session);
                        batch.remove(keys::index(e.session, block_seq));
                    }
                }
                batch.remove(&keys::block(block_seq));
                batch.remove(&keys::located(block_seq));
                anchor = Some(Link {
                    seq: last.seq,
                    hash: last.hash,
                });
                n += 1;
            }
            let Some(anchor) = anchor else { break };
            batch.insert(keys::ANCHOR, &anchor.encode()[..]);
            self.db.apply_batch(batch)?;
            if n < BLOCKS_PER_BATCH {
                break;
            }
        }
        self.remove_pruned_segments()?;

        let cutoff = cutoff_us as f64 / 1e6;
        let mut batch = sled::Batch::default();
        let mut gone = 0;
        for kv in self.db.scan_prefix(keys::SESSION) {
            let (k, v) = kv?;
            let Ok(s) = serde_json::from_slice::<SessionRecord>(&v) else {
                continue;
            };
            let has_events = || {
                !self.pending.blocks_of(s.id.as_bytes()).is_empty()
                    || self
                        .db
                        .scan_prefix(keys::index_prefix(s.id.as_bytes()))
                        .next()
                        .is_some()
            };
            let old = match s.ended_at {
                Some(end) => end < cutoff && !(held && has_events()),
                None => s.started_at < cutoff && !has_events(),
            };
            if old {
                for ik in self
                    .db
                    .scan_prefix(keys::index_prefix(s.id.as_bytes()))
                    .keys()
                {
                    batch.remove(ik?);
                }
                batch.remove(k);
                gone += 1;
            }
        }
        let cutoff_secs = cutoff_us / 1_000_000;
        for kv in self.db.scan_prefix(keys::REQUEST) {
            let (k, v) = kv?;
            let Ok(r) = serde_json::from_slice::<serde_json::Value>(&v) else {
                continue;
            };
            let created = r
                .get("created_at")
                .and_then(|v| v.as_u64())
                .unwrap_or(u64::MAX);
            let pending = r.get("state").and_then(|v| v.as_str()) == Some("pending");
            if created < cutoff_secs && !pending {
                batch.remove(k);
            }
        }
        self.db.apply_batch(batch)?;
        Ok(gone)
    }
}

impl Store {
    /// Remove every segment file but the last whose blocks are all pruned: the next segment
    /// starts at or before the first event kept.
    fn remove_pruned_segments(&self) -> Result<(), sled::Error> {
        let Some(anchor) = self.anchor()? else {
            return Ok(());
        };
        let ids = self.segments.list()?;
        for pair in ids.windows(2) {
            if pair[1] <= anchor.seq + 1 {
                self.segments.remove(pair[0])?;
            }
        }
        Ok(())
    }
}

/// A stored event as the API shows it.
pub fn record(e: &RawEvent<'_>) -> EventRecord {
    let fields = match serde_json::from_slice::<serde_json::Value>(e.json) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => {
            let mut m = serde_json::Map::new();
            m.insert("kind".into(), "unreadable".into());
            m
        }
    };
    EventRecord {
        seq: e.seq,
        at: e.at_us as f64 / 1e6,
        session: String::from_utf8_lossy(e.session).into_owned(),
        fields,
        hash: hex(&e.hash),
    }
}
