//! Server → client: stream frames through, read only ReadyForQuery, ErrorResponse, the
//! completions, CopyInResponse and ParameterStatus (pinned settings, see `settings.rs`), and
//! turn the failure of a refused statement into the
//! refusal the client should see.
//!
//! Every answer that ends something the client sent pops the tracker's queue (see
//! `tracker.rs` for which answer pops what): completions confirm names, an ErrorResponse
//! drops what the server skips, ReadyForQuery ends a Query, FunctionCall or Sync and carries
//! the transaction status. CommandComplete and ErrorResponse are recorded in the audit trail
//! as the result of the oldest statement awaiting the server, with its duration, joined to
//! that statement's event when the audit writer has not taken it yet (see
//! [`crate::audit::Audit::record_result_in`]; exactly once either way). Proxy-made
//! messages for the client (the hold notice) go in only between two server frames.

use bytes::BytesMut;

use super::client::REFUSAL_MARKER;
use super::framer::{Cut, Side};
use super::{Fatal, Relay};
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

/// The server's side of the framer: the frames the proxy reads whole; everything else,
/// and anything too large to read, streams through.
struct FromServer<'a>(&'a mut Relay);

impl Side for FromServer<'_> {
    fn cut(&self, tag: u8) -> Cut {
        match tag {
            b'Z' | b'E' | b'1' | b'2' | b'3' | b'G' | b'C' | b'I' | b's' | b'S' => Cut::Whole,
            _ => Cut::Stream,
        }
    }

    fn oversized(&mut self, _len: usize, _max_message: usize) -> Result<(), Fatal> {
        // Too large to read: the client gets it as it is.
        Ok(())
    }

    fn unknown(&mut self, tag: u8) -> Fatal {
        // Never asked: every tag has a cut.
        Fatal(Fields::new(
            "FATAL",
            "08P01",
            format!("invalid backend message type {tag}"),
        ))
    }

    fn bad_length(&mut self, rest: &mut BytesMut) -> Result<(), Fatal> {
        // A broken server stream cannot be framed any further: pass the bytes on and let
        // the client's parser report it.
        self.0.to_client.extend_from_slice(rest);
        rest.clear();
        self.0.upstream_fatal = true;
        Ok(())
    }

    fn boundary(&mut self) {
        if !self.0.injected.is_empty() {
            let injected = std::mem::take(&mut self.0.injected);
            self.0.to_client.extend_from_slice(&injected);
        }
    }

    fn stream(&mut self, bytes: &[u8]) {
        self.0.to_client.extend_from_slice(bytes);
    }

    fn frame(&mut self, tag: u8, frame: BytesMut) -> Result<(), Fatal> {
        self.0.server_frame(tag, frame);
        Ok(())
    }
}

impl Relay {
    /// Handle what the server sent.
    pub(super) fn process_server(&mut self) {
        let mut framer = std::mem::take(&mut self.server);
        // The server's side never refuses.
        let _ = framer.cut(&mut FromServer(self));
        self.server = framer;
    }

    fn server_frame(&mut self, tag: u8, frame: BytesMut) {
        match tag {
            b'Z' => {
                let status = frame.get(5).copied().unwrap_or(b'I');
                self.tracker.ready(status);
                // Nothing sent or waiting to be sent after this point: the status is current.
                let settled = !self.tracker.in_flight() && self.held.is_none();
                self.txn.ready(status, settled);
                if status == b'I' && settled {
                    // A schema change's transaction is over: the catalog is read again.
                    self.schema_change = None;
                }
                self.settings.ready(status, settled);
                if !self.tracker.busy() {
                    self.refusals.clear();
                }
            }
            b'E' => {
                let fields = msg::fields(&frame[5..]).unwrap_or_default();
                if matches!(msg::field(&fields, b'S'), Some("FATAL" | "PANIC")) {
                    self.upstream_fatal = true;
                }
                self.settings.error();
                if let Some(out) = self.rewrite_refusal(&fields) {
                    self.tracker.error();
                    self.to_client.extend_from_slice(&out);
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
            b'S' => self.settings.parameter_status(&frame[5..]),
            _ => {}
        }
        self.to_client.extend_from_slice(&frame);
    }

    /// Record the result of the oldest statement awaiting the server: inside that
    /// statement's event if the audit writer has not taken it yet, else on its own.
    fn result(&mut self, tag: Option<Text>, sqlstate: Option<Text>, message: Option<Text>) {
        let sent = self.tracker.result(tag.is_some());
        let rows = tag.as_ref().and_then(|t| tag_rows(&t.as_str()));
        let ev = EventKind::Result {
            command_tag: tag,
            rows,
            sqlstate,
            message,
            duration_us: sent
                .as_ref()
                .map_or(0, |s| s.at.elapsed().as_micros() as u64),
        };
        let statement = sent.map(|s| s.statement).unwrap_or_default();
        // A failed store is the Gate's concern, statement by statement.
        let _ = self.app.audit.record_result_in(
            &self.ctx.backlog,
            Text::from(&self.sid),
            &statement,
            ev,
        );
    }

    /// If this error is the failure of an injected refusal, the message to send instead.
    fn rewrite_refusal(&mut self, fields: &[(u8, String)]) -> Option<BytesMut> {
        let m = msg::field(fields, b'M')?;
        let at = m.find(REFUSAL_MARKER)? + REFUSAL_MARKER.len();
        let digits: String = m[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
        let seq: u64 = digits.parse().ok()?;
        let r = self.refusals.take(seq)?;
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
