//! Server → client: stream frames through, read only ReadyForQuery, ErrorResponse and the
//! Parse/Bind/Close completions, and turn the failure of a refused statement into the
//! refusal the client should see.

use bytes::{Buf, BytesMut};

use super::{REFUSAL_MARKER, Relay};
use crate::audit::{EventKind, Text};
use crate::gate::RefusalKind;
use crate::pg::msg::{self, Fields};

/// Rows from a CommandComplete tag (`INSERT 0 5`, `UPDATE 3`, `SELECT 7`), when it has them.
fn tag_rows(tag: &str) -> Option<u64> {
    let verb = tag.split(' ').next()?;
    if !matches!(
        verb,
        "INSERT" | "UPDATE" | "DELETE" | "SELECT" | "MOVE" | "FETCH" | "COPY" | "MERGE"
    ) {
        return None;
    }
    tag.rsplit(' ').next()?.parse().ok()
}

impl Relay {
    pub(super) fn process_server(&mut self) {
        let mut sin = std::mem::take(&mut self.sin);
        self.process_server_buf(&mut sin);
        self.sin = sin;
    }

    fn process_server_buf(&mut self, sin: &mut BytesMut) {
        self.s_want = 0;
        loop {
            if self.s_pass > 0 {
                if sin.is_empty() {
                    break;
                }
                let n = self.s_pass.min(sin.len());
                self.cout.extend_from_slice(&sin[..n]);
                sin.advance(n);
                self.s_pass -= n;
                continue;
            }
            if !self.inject_pending.is_empty() {
                let pending = std::mem::take(&mut self.inject_pending);
                self.cout.extend_from_slice(&pending);
            }
            if sin.len() < 5 {
                break;
            }
            let tag = sin[0];
            let len = i32::from_be_bytes([sin[1], sin[2], sin[3], sin[4]]);
            if len < 4 {
                // A broken server stream cannot be framed any further: pass the bytes on
                // and let the client's parser report it.
                self.cout.extend_from_slice(sin);
                sin.clear();
                self.upstream_fatal = true;
                break;
            }
            let total = len as usize + 1;
            match tag {
                b'Z' | b'E' | b'1' | b'2' | b'3' | b'G' | b'C' | b'I' | b's'
                    if total <= self.max_message + 5 =>
                {
                    if sin.len() < total {
                        self.s_want = total;
                        sin.reserve(total - sin.len());
                        break;
                    }
                    let frame = sin.split_to(total);
                    self.server_frame(tag, frame);
                }
                _ => self.s_pass = total,
            }
        }
    }

    fn server_frame(&mut self, tag: u8, frame: BytesMut) {
        match tag {
            b'Z' => {
                let status = frame.get(5).copied().unwrap_or(b'I');
                self.status = status;
                self.tracker.ready(status);
                if !self.tracker.in_flight() && self.held.is_none() {
                    // Nothing sent or waiting to be sent after this point: the status is
                    // current.
                    self.may_commit = false;
                }
                if !self.tracker.busy() {
                    self.refusals.clear();
                }
            }
            b'E' => {
                let fields = msg::fields(&frame[5..]).unwrap_or_default();
                if matches!(msg::field(&fields, b'S'), Some("FATAL" | "PANIC")) {
                    self.upstream_fatal = true;
                }
                if let Some(out) = self.rewrite_refusal(&fields) {
                    self.tracker.error();
                    self.cout.extend_from_slice(&out);
                    return;
                }
                // The result first: the error then drops what the server skips.
                self.result(
                    None,
                    msg::field(&fields, b'C').map(Text::from),
                    msg::field(&fields, b'M').map(Text::from),
                );
                self.tracker.error();
            }
            b'C' => {
                let end = frame[5..].iter().position(|&c| c == 0).unwrap_or(0);
                let tag = String::from_utf8_lossy(&frame[5..5 + end]);
                self.result(Some(Text::from(tag.as_ref())), None, None);
            }
            b'I' | b's' => self.tracker.portal_done(),
            b'1' => self.tracker.parse_complete(),
            b'2' => self.tracker.bind_complete(),
            b'3' => self.tracker.close_complete(),
            b'G' => self.tracker.copy_in_started(),
            _ => {}
        }
        self.cout.extend_from_slice(&frame);
    }

    /// Record the result of the oldest statement awaiting the server.
    fn result(&mut self, tag: Option<Text>, sqlstate: Option<Text>, message: Option<Text>) {
        let started = self.tracker.result();
        let rows = tag.as_ref().and_then(|t| tag_rows(&t.as_str()));
        let ev = EventKind::Result {
            command_tag: tag,
            rows,
            sqlstate,
            message,
            duration_us: started.map_or(0, |t| t.elapsed().as_micros() as u64),
        };
        self.gate.audit().record(Text::from(&self.sid), ev).ok();
    }

    /// If this error is the failure of an injected refusal, the message to send instead.
    fn rewrite_refusal(&mut self, fields: &[(u8, String)]) -> Option<BytesMut> {
        let m = msg::field(fields, b'M')?;
        let at = m.find(REFUSAL_MARKER)? + REFUSAL_MARKER.len();
        let digits: String = m[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
        let seq: u64 = digits.parse().ok()?;
        let i = self.refusals.iter().position(|(s, _)| *s == seq)?;
        let (_, r) = self.refusals.swap_remove(i);
        let f = match r.kind {
            RefusalKind::Denied => Fields::new("ERROR", "42501", r.message),
            RefusalKind::TimedOut => Fields::new("ERROR", "57014", r.message),
            RefusalKind::Cancelled => {
                Fields::new("ERROR", "57014", "canceling statement due to user request")
                    .detail(r.message)
            }
        };
        let f = match r.request {
            Some(id) => f.hint(format!("jitgate request {id}")),
            None => f,
        };
        let mut out = BytesMut::new();
        msg::error(&mut out, f);
        Some(out)
    }
}
