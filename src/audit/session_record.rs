//! Session records (the `s` keys) kept in step with the chain's SessionStart and SessionEnd
//! events: by the writer as it commits them, and by [`super::recover`] from the stored JSON
//! of blocks it indexes again after a crash. Both go through [`SessionChange`], so a record
//! rebuilt on open is the record the commit would have written.

use std::collections::HashMap;

use super::event::{EventKind, SessionRecord, Text};
use super::store::Store;

/// What a SessionStart or SessionEnd changes in its session's record (from the event the
/// writer commits, or from its JSON when [`super::recover`] indexes a block again).
pub enum SessionChange {
    Start {
        protocol: String,
        user: String,
        target: String,
        client: String,
        application: Option<String>,
    },
    End {
        reason: String,
        bytes_in: u64,
        bytes_out: u64,
    },
}

impl SessionChange {
    /// The change an event makes, if it is a SessionStart or SessionEnd.
    pub fn of(ev: &EventKind) -> Option<SessionChange> {
        let s = |t: &Text| t.as_str().into_owned();
        Some(match ev {
            EventKind::SessionStart {
                protocol,
                user,
                target,
                client,
                application,
                ..
            } => SessionChange::Start {
                protocol: s(protocol),
                user: s(user),
                target: s(target),
                client: s(client),
                application: application.as_ref().map(s),
            },
            EventKind::SessionEnd {
                reason,
                bytes_in,
                bytes_out,
            } => SessionChange::End {
                reason: s(reason),
                bytes_in: *bytes_in,
                bytes_out: *bytes_out,
            },
            _ => return None,
        })
    }

    /// The session record change a stored SessionStart / SessionEnd makes, from its JSON.
    pub fn of_json(json: &[u8]) -> Option<SessionChange> {
        let start = json.starts_with(b"{\"kind\":\"session_start\"");
        if !start && !json.starts_with(b"{\"kind\":\"session_end\"") {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(json).ok()?;
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let number = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        Some(if start {
            SessionChange::Start {
                protocol: text("protocol").unwrap_or_default(),
                user: text("user").unwrap_or_default(),
                target: text("target").unwrap_or_default(),
                client: text("client").unwrap_or_default(),
                application: text("application"),
            }
        } else {
            SessionChange::End {
                reason: text("reason").unwrap_or_default(),
                bytes_in: number("bytes_in"),
                bytes_out: number("bytes_out"),
            }
        })
    }

    /// Apply to `sessions` (this commit's records, by id; a record not there yet is read
    /// from `store`).
    pub fn apply(
        self,
        store: &Store,
        sessions: &mut HashMap<String, SessionRecord>,
        id: String,
        at_us: u64,
    ) {
        let at = at_us as f64 / 1e6;
        match self {
            SessionChange::Start {
                protocol,
                user,
                target,
                client,
                application,
            } => {
                sessions.insert(
                    id.clone(),
                    SessionRecord {
                        id,
                        protocol,
                        user,
                        target,
                        client,
                        application,
                        started_at: at,
                        ended_at: None,
                        end_reason: None,
                        bytes_in: 0,
                        bytes_out: 0,
                    },
                );
            }
            SessionChange::End {
                reason,
                bytes_in,
                bytes_out,
            } => {
                let rec = match sessions.remove(&id) {
                    Some(r) => r,
                    None => store.session(&id).unwrap_or_else(|| SessionRecord {
                        id: id.clone(),
                        protocol: String::new(),
                        user: String::new(),
                        target: String::new(),
                        client: String::new(),
                        application: None,
                        started_at: at,
                        ended_at: None,
                        end_reason: None,
                        bytes_in: 0,
                        bytes_out: 0,
                    }),
                };
                sessions.insert(
                    id,
                    SessionRecord {
                        ended_at: Some(at),
                        end_reason: Some(reason),
                        bytes_in: rec.bytes_in.max(bytes_in),
                        bytes_out: rec.bytes_out.max(bytes_out),
                        ..rec
                    },
                );
            }
        }
    }
}
