//! Statement texts stored once per session: a text that a session repeats is stored whole the
//! first time (its **definition**) and later as `"text_ref"`, the hex of the first 16 bytes of
//! its SHA-256 (its [`TextKey`]).
//!
//! Invariants:
//! - **Only what a reader can resolve.** The writer ([`Defined`]) references a text only if
//!   one of its session's last [`PER_SESSION`] definitions (events committed earlier in the
//!   chain that store a text whole) stores it, less than [`REFERENCE_WINDOW`] ago; otherwise
//!   the event is a definition. A reader ([`Resolver`]) keeps the same last [`PER_SESSION`]
//!   definitions per session (every `statement` or `parse` event with a `text_len` of at
//!   least [`MIN_REFERENCED`] is one, for both), so its memory is bounded however long a
//!   session runs. Pruning keeps one window more than the retention asks (see
//!   `Audit::prune`), so a reference whose definition was pruned belongs to an event that
//!   was itself past its retention.
//! - **The key is the hash of what a definition stores.** For a text stored whole, SHA-256 of
//!   the stored string (the same bytes a reader gets back, even for input that was not
//!   UTF-8); for a text cut at [`super::TEXT_CAP`], its `text_sha256` (of the full text). A
//!   reader recomputes it from the definition, so an edited definition no longer resolves,
//!   and the chain, which hashes both events, names the edit.
//! - **Readers see no difference.** [`Resolver`] puts back `text`, `text_len` and
//!   `text_sha256` exactly as the definition has them; a reference it cannot resolve stays
//!   `text_ref`.
//! - **Bounded.** The writer keeps 16 bytes and a time per definition, at most
//!   [`PER_SESSION`] per session, forgets a session at its end, and forgets every session
//!   past [`MAX_SESSIONS`] (texts are then defined again). Only `statement` and `parse` texts
//!   are referenced.

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::event::{EventKind, TEXT_CAP, Text};

/// How a text is referenced: the first 16 bytes of its SHA-256.
pub type TextKey = [u8; 16];

/// A text is referenced only if its definition is at most this old (µs): one hour.
pub const REFERENCE_WINDOW: u64 = 3_600 * 1_000_000;
/// Definitions a session's events may reference: its latest ones.
pub const PER_SESSION: usize = 256;
/// Sessions the writer remembers texts of before it forgets them all.
const MAX_SESSIONS: usize = 1 << 16;
/// A text shorter than this (in bytes) is always stored whole (a reference would not be
/// smaller).
pub const MIN_REFERENCED: usize = 40;

/// A session's latest [`PER_SESSION`] definitions, the same for the writer and a reader.
struct Recent<V> {
    order: VecDeque<TextKey>,
    values: HashMap<TextKey, V>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent {
            order: VecDeque::new(),
            values: HashMap::new(),
        }
    }
}

impl<V> Recent<V> {
    fn get(&self, key: &TextKey) -> Option<&V> {
        self.values.get(key)
    }

    /// A definition of `key`: it becomes the latest; the oldest beyond the bound goes.
    fn define(&mut self, key: TextKey, value: V) {
        if self.values.insert(key, value).is_some()
            && let Some(i) = self.order.iter().position(|k| *k == key)
        {
            self.order.remove(i);
        }
        self.order.push_back(key);
        if self.order.len() > PER_SESSION
            && let Some(oldest) = self.order.pop_front()
        {
            self.values.remove(&oldest);
        }
    }
}

/// The statement text of an event that may be referenced, if it has one.
pub fn referable(ev: &EventKind) -> Option<&Text> {
    match ev {
        EventKind::Statement { text, .. } | EventKind::Parse { text, .. }
            if text.len() >= MIN_REFERENCED =>
        {
            Some(text)
        }
        _ => None,
    }
}

fn truncate(full: &[u8]) -> TextKey {
    let mut k = [0; 16];
    k.copy_from_slice(&full[..16]);
    k
}

/// The key of `t` as the writer stores it (see the module's invariants).
pub fn key(t: &Text) -> TextKey {
    let raw = t.as_bytes();
    if raw.len() > TEXT_CAP {
        truncate(&Sha256::digest(raw))
    } else {
        truncate(&Sha256::digest(t.as_str().as_bytes()))
    }
}

/// The writer's memory of which texts each session has defined, and when.
#[derive(Default)]
pub struct Defined {
    sessions: HashMap<Box<[u8]>, Recent<u64>>,
}

impl Defined {
    /// Whether the event at `at_us` in `session` may store `key` as a reference.
    pub fn may_reference(&self, session: &[u8], key: &TextKey, at_us: u64) -> bool {
        self.sessions
            .get(session)
            .and_then(|texts| texts.get(key))
            .is_some_and(|&defined| at_us.saturating_sub(defined) < REFERENCE_WINDOW)
    }

    /// An event at `at_us` of `session` stored the text with `key` whole (committed with it).
    pub fn define(&mut self, session: &[u8], key: TextKey, at_us: u64) {
        let texts = match self.sessions.get_mut(session) {
            Some(t) => t,
            None => {
                if self.sessions.len() >= MAX_SESSIONS {
                    self.sessions.clear();
                }
                self.sessions.entry(Box::from(session)).or_default()
            }
        };
        texts.define(key, at_us);
    }

    /// The session ended: none of its texts will be referenced again.
    pub fn end(&mut self, session: &[u8]) {
        self.sessions.remove(session);
    }
}

/// The fields a definition stores for its text, put back in place of a reference.
#[derive(Clone)]
struct Whole {
    text: Value,
    len: Option<Value>,
    sha256: Option<Value>,
}

/// Resolves references while reading a session (or the chain) in order.
#[derive(Default)]
pub struct Resolver {
    sessions: HashMap<String, Recent<Whole>>,
}

/// The key a definition's stored fields give (see the module's invariants).
fn stored_key(fields: &Map<String, Value>) -> Option<TextKey> {
    if let Some(sha) = fields.get("text_sha256").and_then(Value::as_str) {
        return parse_key(sha.get(..32)?);
    }
    let text = fields.get("text")?.as_str()?;
    Some(truncate(&Sha256::digest(text.as_bytes())))
}

fn parse_key(hex: &str) -> Option<TextKey> {
    if hex.len() != 32 {
        return None;
    }
    let mut k = [0; 16];
    for (i, byte) in k.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

impl Resolver {
    /// Read one event of `session` (in chain order): remember the text it defines, or put
    /// back the text it references. Returns false for a reference it cannot resolve (its
    /// definition is not among the events read so far).
    pub fn read(&mut self, session: &str, fields: &mut Map<String, Value>) -> bool {
        let kind = fields.get("kind").and_then(Value::as_str).unwrap_or("");
        match kind {
            "statement" | "parse" => {}
            "session_end" => {
                self.sessions.remove(session);
                return true;
            }
            _ => return true,
        }
        if let Some(r) = fields.get("text_ref").and_then(Value::as_str) {
            let Some(whole) = parse_key(r)
                .and_then(|k| self.sessions.get(session)?.get(&k))
                .cloned()
            else {
                return false;
            };
            fields.remove("text_ref");
            fields.insert("text".into(), whole.text);
            if let Some(v) = whole.len {
                fields.insert("text_len".into(), v);
            }
            if let Some(v) = whole.sha256 {
                fields.insert("text_sha256".into(), v);
            }
            return true;
        }
        // The writer's test, on the full text's length (what `text_len` records).
        let long = fields
            .get("text_len")
            .and_then(Value::as_u64)
            .is_some_and(|n| n >= MIN_REFERENCED as u64);
        if let Some(text) = fields.get("text")
            && long
            && let Some(k) = stored_key(fields)
        {
            let whole = Whole {
                text: text.clone(),
                len: fields.get("text_len").cloned(),
                sha256: fields.get("text_sha256").cloned(),
            };
            match self.sessions.get_mut(session) {
                Some(texts) => texts.define(k, whole),
                None => self
                    .sessions
                    .entry(session.to_string())
                    .or_default()
                    .define(k, whole),
            }
        }
        true
    }
}
