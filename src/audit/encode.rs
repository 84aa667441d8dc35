//! The canonical JSON of an event: what is stored, hashed and shown, written on the writer
//! thread.
//!
//! Invariants:
//! - Statement texts (Statement, Parse, RequestCreated, Command) are stored up to
//!   [`TEXT_CAP`] bytes, cut on a character boundary, with `<field>_len` (bytes of the full
//!   text) always and `<field>_sha256` (of the full text) when the stored text was cut; a
//!   Statement or Parse text its session stored before is `"text_ref"` instead
//!   ([`super::texts`]).
//! - Bind parameters are stored as `null` (SQL NULL) or `{"len":N}` plus, unless
//!   `redact_parameters`, `"text"` (UTF-8 without control characters) or `"base64"` holding
//!   at most [`PARAM_CAP`] bytes of the value; past [`PARAMS_BUDGET`] bytes per Bind only
//!   sizes are kept.
//! - `None` fields are left out; the object starts with `"kind"`.
//! - A statement's result joined to it ([`super::joined`]) is its `"result"` object, with the
//!   fields a `result` event has (without `kind`).

use crate::policy::Decision;
use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use sha2::{Digest, Sha256};

use super::event::{EventKind, PARAM_CAP, PARAMS_BUDGET, TEXT_CAP, Text};
use super::texts::TextKey;

/// The stored form of an event: `ev` with the store's options applied.
pub struct Canonical<'a> {
    pub ev: &'a EventKind,
    /// The statement's result joined to it ([`super::joined`]): stored as `"result"`.
    pub result: Option<&'a EventKind>,
    pub redact_parameters: bool,
    /// The statement text is stored as this reference to its session's earlier definition
    /// ([`super::texts`]) instead of whole.
    pub text_ref: Option<TextKey>,
}

/// The fields of a `Result` event, as a JSON object of their own (a joined result).
struct ResultFields<'a>(&'a EventKind);

impl Serialize for ResultFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        result_fields(&mut m, self.0)?;
        m.end()
    }
}

/// Write a `Result` event's fields (nothing for another kind).
fn result_fields<M: SerializeMap>(m: &mut M, ev: &EventKind) -> Result<(), M::Error> {
    if let EventKind::Result {
        command_tag,
        rows,
        sqlstate,
        message,
        duration_us,
    } = ev
    {
        if let Some(v) = command_tag {
            m.serialize_entry("command_tag", v)?;
        }
        if let Some(v) = rows {
            m.serialize_entry("rows", v)?;
        }
        if let Some(v) = sqlstate {
            m.serialize_entry("sqlstate", v)?;
        }
        if let Some(v) = message {
            m.serialize_entry("message", v)?;
        }
        m.serialize_entry("duration_us", duration_us)?;
    }
    Ok(())
}

/// Write `name` (and `name_len`, and `name_sha256` when cut) for a statement text.
fn capped<M: SerializeMap>(m: &mut M, name: &str, t: &Text) -> Result<(), M::Error> {
    let (len, sha) = match name {
        "text" => ("text_len", "text_sha256"),
        "command" => ("command_len", "command_sha256"),
        _ => ("statement_len", "statement_sha256"),
    };
    let raw = t.as_bytes();
    if raw.len() <= TEXT_CAP {
        m.serialize_entry(name, &*t.as_str())?;
        return m.serialize_entry(len, &raw.len());
    }
    let cut = &raw[..utf8_floor(raw, TEXT_CAP)];
    m.serialize_entry(name, &*String::from_utf8_lossy(cut))?;
    m.serialize_entry(len, &raw.len())?;
    m.serialize_entry(sha, &hex(&Sha256::digest(raw)))
}

/// The largest index ≤ `max` that does not split a UTF-8 sequence (for valid UTF-8; for
/// other bytes any index is as good as another).
fn utf8_floor(b: &[u8], max: usize) -> usize {
    let mut i = max.min(b.len());
    while i > 0 && i < b.len() && (b[i] & 0xC0) == 0x80 && max - i < 4 {
        i -= 1;
    }
    i
}

pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

struct Params<'a> {
    params: &'a [Option<Bytes>],
    redact: bool,
}

struct Param<'a> {
    value: &'a [u8],
    keep: usize,
}

impl Serialize for Param<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("len", &self.value.len())?;
        if self.keep > 0 || self.value.is_empty() {
            let v = &self.value[..self.keep];
            let textual = |t: &str| {
                !t.chars()
                    .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            };
            match std::str::from_utf8(v) {
                Ok(t) if textual(t) => m.serialize_entry("text", t)?,
                // A cut may split a UTF-8 sequence of an otherwise textual value.
                Err(e)
                    if e.error_len().is_none()
                        && self.keep < self.value.len()
                        && textual(&String::from_utf8_lossy(&v[..e.valid_up_to()])) =>
                {
                    m.serialize_entry("text", &String::from_utf8_lossy(&v[..e.valid_up_to()]))?
                }
                _ => m.serialize_entry(
                    "base64",
                    &base64::engine::general_purpose::STANDARD.encode(v),
                )?,
            }
        }
        m.end()
    }
}

impl Serialize for Params<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.params.len()))?;
        let mut budget = if self.redact { 0 } else { PARAMS_BUDGET };
        for p in self.params {
            match p {
                None => seq.serialize_element(&None::<()>)?,
                Some(v) => {
                    let keep = v.len().min(PARAM_CAP).min(budget);
                    budget -= keep;
                    seq.serialize_element(&Param { value: v, keep })?
                }
            }
        }
        seq.end()
    }
}

/// Name/value pairs as a JSON object, in their order.
struct Pairs<'a>(&'a [(String, String)]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'a> Canonical<'a> {
    /// Bind values as stored: capped, or only their sizes when redacted.
    fn params(&self, params: &'a [Option<Bytes>]) -> Params<'a> {
        Params {
            params,
            redact: self.redact_parameters,
        }
    }

    /// A statement's `text`: whole, or as `text_ref` when its session defined it before.
    fn text<M: SerializeMap>(&self, m: &mut M, t: &Text) -> Result<(), M::Error> {
        match &self.text_ref {
            Some(k) => m.serialize_entry("text_ref", &hex(k)),
            None => capped(m, "text", t),
        }
    }
}

impl Serialize for Canonical<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", self.ev.name())?;
        macro_rules! opt {
            ($name:literal, $v:expr) => {
                if let Some(v) = $v {
                    m.serialize_entry($name, v)?;
                }
            };
        }
        match self.ev {
            EventKind::SessionStart {
                protocol,
                user,
                target,
                client,
                application,
                parameters,
                node,
            } => {
                m.serialize_entry("protocol", protocol)?;
                m.serialize_entry("user", user)?;
                m.serialize_entry("target", target)?;
                m.serialize_entry("client", client)?;
                opt!("application", application);
                if !parameters.is_empty() {
                    m.serialize_entry("parameters", &Pairs(parameters))?;
                }
                opt!("node", node);
            }
            EventKind::Statement {
                text,
                class,
                tables,
                decision,
                rule,
                request,
                grant,
                params,
            } => {
                self.text(&mut m, text)?;
                m.serialize_entry("class", class)?;
                m.serialize_entry("tables", &**tables)?;
                m.serialize_entry("decision", trail_name(*decision))?;
                opt!("rule", rule);
                opt!("request", request);
                opt!("grant", grant);
                opt!("params", &params.as_ref().map(|p| self.params(p)));
                opt!("result", &self.result.map(ResultFields));
            }
            EventKind::Parse {
                statement_name,
                text,
            } => {
                m.serialize_entry("statement_name", statement_name)?;
                self.text(&mut m, text)?;
            }
            EventKind::Bind {
                portal,
                statement_name,
                params,
            } => {
                m.serialize_entry("portal", portal)?;
                m.serialize_entry("statement_name", statement_name)?;
                m.serialize_entry("params", &self.params(params))?;
            }
            EventKind::Result { .. } => result_fields(&mut m, self.ev)?,
            EventKind::Command {
                command,
                class,
                decision,
                rule,
                request,
                grant,
            } => {
                capped(&mut m, "command", command)?;
                m.serialize_entry("class", class)?;
                m.serialize_entry("decision", trail_name(*decision))?;
                opt!("rule", rule);
                opt!("request", request);
                opt!("grant", grant);
            }
            EventKind::ExitStatus { status } => m.serialize_entry("status", status)?,
            EventKind::RequestCreated {
                request,
                class,
                statement,
                rule,
            } => {
                m.serialize_entry("request", request)?;
                m.serialize_entry("class", class)?;
                capped(&mut m, "statement", statement)?;
                m.serialize_entry("rule", rule)?;
            }
            EventKind::RequestImpact {
                request,
                estimated_rows,
                error,
            } => {
                m.serialize_entry("request", request)?;
                opt!("estimated_rows", estimated_rows);
                opt!("error", error);
            }
            EventKind::RequestDecided {
                request,
                state,
                by,
                reason,
            } => {
                m.serialize_entry("request", request)?;
                m.serialize_entry("state", state)?;
                opt!("by", by);
                opt!("reason", reason);
            }
            EventKind::GrantCreated {
                grant,
                request,
                expires_at,
            } => {
                m.serialize_entry("grant", grant)?;
                m.serialize_entry("request", request)?;
                m.serialize_entry("expires_at", expires_at)?;
            }
            EventKind::GrantUsed { grant, request } => {
                m.serialize_entry("grant", grant)?;
                m.serialize_entry("request", request)?;
            }
            EventKind::GrantRevoked { grant } => m.serialize_entry("grant", grant)?,
            EventKind::Recording {
                channel,
                t,
                stream,
                data,
            } => {
                m.serialize_entry("channel", channel)?;
                m.serialize_entry("t", t)?;
                m.serialize_entry("stream", stream)?;
                m.serialize_entry("data", data)?;
            }
            EventKind::SessionEnd {
                reason,
                bytes_in,
                bytes_out,
            } => {
                m.serialize_entry("reason", reason)?;
                m.serialize_entry("bytes_in", bytes_in)?;
                m.serialize_entry("bytes_out", bytes_out)?;
            }
        }
        m.end()
    }
}

/// How the trail names a decision: a statement the rules sent for review is `held`, and its
/// outcome follows as a `request_decided` event.
fn trail_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Review => "held",
        other => other.as_str(),
    }
}
