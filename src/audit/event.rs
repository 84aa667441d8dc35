//! What the proxy records ([`EventKind`]) and what reading the store gives back
//! ([`EventRecord`], [`SessionRecord`]).
//!
//! Invariant: building an [`EventKind`] need not copy a statement. Every string field is a
//! [`Text`], which holds an `Arc<str>`, a `Bytes` slice of a wire frame, a `&'static str` or
//! an owned `String`, so the relay hands over what it already has. Capping, hashing and JSON
//! encoding happen on the writer thread ([`super::encode`]), never on the caller's.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::policy::{Class, Decision};
use crate::request::State;

/// Longest statement text kept in an event, in bytes.
pub const TEXT_CAP: usize = 16 * 1024;
/// Longest Bind parameter value kept, in bytes.
pub const PARAM_CAP: usize = 1024;
/// Bytes of parameter values kept per Bind; the rest keep only their sizes.
pub const PARAMS_BUDGET: usize = 16 * 1024;

/// A string field of an event, cheap to hand over: cloning an `Arc<str>` or slicing a frame's
/// `Bytes` costs a reference count, not a copy. Bytes that are not UTF-8 are stored lossily.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(String),
    Bytes(Bytes),
    /// A short copied string (a command tag, a rule name), kept in the `Text` itself: no
    /// allocation, and no free on the writer thread. The first `len` bytes are UTF-8.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
}

/// Strings of up to this many bytes are copied into the `Text` itself; it fits in the
/// space the `Bytes` variant already takes.
const INLINE: usize = 30;
const _: () = assert!(std::mem::size_of::<Text>() == 40);

impl Text {
    /// A compile-time string: no allocation at all.
    pub const fn from_static(s: &'static str) -> Text {
        Text(Repr::Static(s))
    }

    /// The raw bytes (for hashing and lengths).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Static(s) => s.as_bytes(),
            Repr::Shared(s) => s.as_bytes(),
            Repr::Owned(s) => s.as_bytes(),
            Repr::Bytes(b) => b,
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
        }
    }

    /// The text, replacing invalid UTF-8 (only possible for `Bytes`).
    pub fn as_str(&self) -> Cow<'_, str> {
        match &self.0 {
            Repr::Static(s) => Cow::Borrowed(s),
            Repr::Shared(s) => Cow::Borrowed(s),
            Repr::Owned(s) => Cow::Borrowed(s),
            Repr::Bytes(b) => String::from_utf8_lossy(b),
            Repr::Inline { len, bytes } => String::from_utf8_lossy(&bytes[..usize::from(*len)]),
        }
    }

    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.as_str(), f)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl From<&str> for Text {
    /// Copies: into the `Text` itself when short, else into a new `String`. On the hot path
    /// pass an `Arc<str>` or `Bytes` (a reference count) for anything longer, or use
    /// [`Text::from_static`] for literals.
    fn from(s: &str) -> Text {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            // `s.len() <= INLINE < 256`.
            let len = s.len() as u8;
            Text(Repr::Inline { len, bytes })
        } else {
            Text(Repr::Owned(s.to_owned()))
        }
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Repr::Owned(s))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text::from(s.as_str())
    }
}

impl From<Arc<str>> for Text {
    fn from(s: Arc<str>) -> Text {
        Text(Repr::Shared(s))
    }
}

impl From<&Arc<str>> for Text {
    fn from(s: &Arc<str>) -> Text {
        Text(Repr::Shared(s.clone()))
    }
}

impl From<Bytes> for Text {
    fn from(b: Bytes) -> Text {
        Text(Repr::Bytes(b))
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

/// One audit event. Stored (see [`super::encode::Canonical`]) as
/// `{"kind":"snake_case_name", ...fields}`.
#[derive(Clone, Debug)]
pub enum EventKind {
    SessionStart {
        /// `postgres` or `ssh`.
        protocol: Text,
        user: Text,
        target: Text,
        /// The client's address, `ip:port`.
        client: Text,
        /// Postgres `application_name`, SSH client version string.
        application: Option<Text>,
        /// Postgres: the start-up parameters forwarded to the target, in order (empty for
        /// SSH; omitted from the record when empty).
        parameters: Arc<[(String, String)]>,
        /// The replica serving the session (`[cluster] node`); omitted for a single jitgate.
        node: Option<Text>,
    },
    Statement {
        text: Text,
        class: Class,
        tables: Arc<[String]>,
        decision: Decision,
        rule: Option<Text>,
        request: Option<Text>,
        grant: Option<Text>,
        /// The values of the Bind whose portal the statement's Execute ran, when that Bind has
        /// no event of its own (it came just before; see `pg::relay::folded`). As in
        /// [`EventKind::Bind`].
        params: Option<Vec<Option<Bytes>>>,
    },
    Parse {
        statement_name: Text,
        text: Text,
    },
    Bind {
        portal: Text,
        statement_name: Text,
        /// Values as sent (text or binary format); `None` is SQL NULL.
        params: Vec<Option<Bytes>>,
    },
    Result {
        /// `CommandComplete` tag (`SELECT 1`, `UPDATE 3`); `None` on error.
        command_tag: Option<Text>,
        rows: Option<u64>,
        /// SQLSTATE of an ErrorResponse.
        sqlstate: Option<Text>,
        /// The error's message, if any.
        message: Option<Text>,
        duration_us: u64,
    },
    /// An SSH exec request (or shell, sftp, forward).
    Command {
        command: Text,
        class: Class,
        decision: Decision,
        rule: Option<Text>,
        request: Option<Text>,
        grant: Option<Text>,
    },
    ExitStatus {
        status: i32,
    },
    RequestCreated {
        request: Text,
        class: Class,
        statement: Text,
        rule: Text,
    },
    /// The planner's estimate for a held write, as approvers see it beside the request
    /// (`pg::impact`): recorded when it arrives, before the decision it may inform.
    RequestImpact {
        request: Text,
        estimated_rows: Option<f64>,
        /// Why there is no estimate (EXPLAIN failed or timed out).
        error: Option<Text>,
    },
    RequestDecided {
        request: Text,
        state: State,
        by: Option<Text>,
        reason: Option<Text>,
    },
    GrantCreated {
        grant: Text,
        request: Text,
        expires_at: u64,
    },
    GrantUsed {
        grant: Text,
        request: Text,
    },
    GrantRevoked {
        grant: Text,
    },
    /// A piece of an SSH session's terminal stream: `o` output, `i` input, `r` resize
    /// (`data` = `"COLSxROWS"`).
    Recording {
        channel: u32,
        /// Seconds since the session started.
        t: f64,
        stream: char,
        data: Text,
    },
    SessionEnd {
        reason: Text,
        bytes_in: u64,
        bytes_out: u64,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::SessionStart { .. } => "session_start",
            EventKind::Statement { .. } => "statement",
            EventKind::Parse { .. } => "parse",
            EventKind::Bind { .. } => "bind",
            EventKind::Result { .. } => "result",
            EventKind::Command { .. } => "command",
            EventKind::ExitStatus { .. } => "exit_status",
            EventKind::RequestCreated { .. } => "request_created",
            EventKind::RequestImpact { .. } => "request_impact",
            EventKind::RequestDecided { .. } => "request_decided",
            EventKind::GrantCreated { .. } => "grant_created",
            EventKind::GrantUsed { .. } => "grant_used",
            EventKind::GrantRevoked { .. } => "grant_revoked",
            EventKind::Recording { .. } => "recording",
            EventKind::SessionEnd { .. } => "session_end",
        }
    }
}

/// One stored event as read back: `{"seq","at","session","kind",...fields,"hash"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub seq: u64,
    /// Unix seconds, microsecond resolution.
    pub at: f64,
    pub session: String,
    /// The event's fields as stored, `kind` included.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Hex SHA-256 chain hash of this event.
    pub hash: String,
}

impl EventRecord {
    pub fn kind(&self) -> &str {
        self.str("kind").unwrap_or("")
    }

    pub fn get(&self, field: &str) -> Option<&serde_json::Value> {
        self.fields.get(field)
    }

    pub fn str(&self, field: &str) -> Option<&str> {
        self.fields.get(field).and_then(|v| v.as_str())
    }

    pub fn u64(&self, field: &str) -> Option<u64> {
        self.fields.get(field).and_then(|v| v.as_u64())
    }
}

impl Serialize for EventRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.fields.len() + 4))?;
        m.serialize_entry("seq", &self.seq)?;
        m.serialize_entry("at", &self.at)?;
        m.serialize_entry("session", &self.session)?;
        if let Some(k) = self.fields.get("kind") {
            m.serialize_entry("kind", k)?;
        }
        for (k, v) in &self.fields {
            if k != "kind" {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("hash", &self.hash)?;
        m.end()
    }
}

/// A session as the audit trail knows it, kept up to date by SessionStart and SessionEnd.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub protocol: String,
    pub user: String,
    pub target: String,
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Unix seconds.
    pub started_at: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Which sessions to list. Every field narrows; `Default` lists all.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    pub user: Option<String>,
    pub target: Option<String>,
    /// Unix seconds: sessions still running at or started after this time.
    pub since: Option<u64>,
    /// At most this many, the most recent.
    pub limit: Option<usize>,
}

impl SessionFilter {
    pub fn matches(&self, s: &SessionRecord) -> bool {
        self.user.as_ref().is_none_or(|u| *u == s.user)
            && self.target.as_ref().is_none_or(|t| *t == s.target)
            && self.since.is_none_or(|t| {
                let t = t as f64;
                s.started_at >= t || s.ended_at.is_none_or(|e| e >= t)
            })
    }
}

#[cfg(test)]
mod text_tests {
    use super::Text;

    #[test]
    fn short_and_long_copies_read_back_the_same_bytes_and_json() {
        for s in [
            "",
            "SELECT 1",
            &"é".repeat(15),
            &"x".repeat(30),
            &"x".repeat(31),
        ] {
            let t = Text::from(s);
            assert_eq!(t.as_bytes(), s.as_bytes());
            assert_eq!(t.as_str(), s);
            assert_eq!(t.len(), s.len());
            assert_eq!(t, Text::from(std::sync::Arc::<str>::from(s)));
            assert_eq!(
                serde_json::to_string(&t).expect("encodes"),
                serde_json::to_string(s).expect("encodes")
            );
        }
    }
}
