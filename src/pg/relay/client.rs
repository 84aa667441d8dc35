//! Client → server: read the frames the proxy must understand, track statements, and stop
//! every Query, Execute and FunctionCall at the Gate.
//!
//! Invariant: no statement reaches the upstream without a [`Permit`]: a Query, Execute or
//! FunctionCall frame is appended to `to_server` only by [`Relay::forward`], which takes
//! one. A Deny or a refused hold sends a statement that fails instead ([`Relay::refuse`]),
//! and the client's messages up to Sync after a refused extended-protocol message are
//! dropped, as the server would skip them. Parse and Close go on at once: they only name
//! statements, which are classified when an Execute runs them. A Bind, Execute or Query
//! that names a statement or portal whose redefinition the server has not answered yet is
//! parked (`Relay::parked`) and handled again once it has (see `resolve.rs`).

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};

use super::framer::{Cut, Side};
use super::hold::{Held, HeldKind, Waiting};
use super::resolve::{Resolution, effects, own_class};
use super::tracker::{Name, Sent};
use super::{Fatal, Relay};
use crate::audit::Text;
use crate::gate::{Action, Hold, Permit, Refusal, Verdict};
use crate::pg::impact::Parameters;
use crate::pg::msg::{self, Fields};
use crate::policy::sql::SqlAnalysis;
use crate::policy::{Class, Classification};

/// The text a refused statement's failure carries, followed by its sequence number.
pub(super) const REFUSAL_MARKER: &str = "jitgate_refused_";

/// The text of a NUL-terminated string field; `Err` on a missing terminator. Text that is not
/// UTF-8 (a non-UTF-8 client_encoding) comes back lossily converted and flagged, so it is
/// classified `unknown`.
pub(super) fn text_field(b: &[u8]) -> Result<(std::borrow::Cow<'_, str>, bool, &[u8]), Fatal> {
    let (s, rest) = c_string(b)?;
    Ok(match std::str::from_utf8(s) {
        Ok(t) => (std::borrow::Cow::Borrowed(t), true, rest),
        Err(_) => (String::from_utf8_lossy(s), false, rest),
    })
}

/// A NUL-terminated string field's bytes and what follows; `Err` on a missing terminator.
fn c_string(b: &[u8]) -> Result<(&[u8], &[u8]), Fatal> {
    let nul = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| Fatal(Fields::new("FATAL", "08P01", "invalid string in message")))?;
    Ok((&b[..nul], &b[nul + 1..]))
}

/// A statement or portal name field: the key the server stores it under (its bytes, cut at
/// 63), and its text for the audit trail (lossy if not UTF-8).
pub(super) fn name_field(b: &[u8]) -> Result<(Name, Text, &[u8]), Fatal> {
    let (s, rest) = c_string(b)?;
    Ok((
        Name::wire(s),
        Text::from(String::from_utf8_lossy(s).as_ref()),
        rest,
    ))
}

/// The client's side of the framer: which frames are read whole, what is refused.
struct FromClient<'a>(&'a mut Relay);

impl Side for FromClient<'_> {
    fn cut(&self, tag: u8) -> Cut {
        match tag {
            // COPY data streams through; outside COPY the server ignores it.
            b'd' | b'c' | b'f' => Cut::Stream,
            b'Q' | b'P' | b'B' | b'E' | b'C' | b'D' | b'S' | b'H' | b'X' | b'F' => Cut::Whole,
            _ => Cut::Unknown,
        }
    }

    fn oversized(&mut self, len: usize, max_message: usize) -> Result<(), Fatal> {
        Err(Fatal(Fields::new(
            "FATAL",
            "54000",
            format!("jitgate: message of {len} bytes exceeds max_message_bytes ({max_message})"),
        )))
    }

    fn unknown(&mut self, tag: u8) -> Fatal {
        Fatal(Fields::new(
            "FATAL",
            "08P01",
            format!("invalid frontend message type {tag}"),
        ))
    }

    fn bad_length(&mut self, _rest: &mut BytesMut) -> Result<(), Fatal> {
        Err(Fatal(Fields::new(
            "FATAL",
            "08P01",
            "invalid message length",
        )))
    }

    fn stop(&self) -> bool {
        self.0.held.is_some() || self.0.parked.is_some() || self.0.terminated
    }

    fn stream_starts(&mut self, tag: u8) {
        if tag != b'd' && !self.0.discard_until_sync {
            // CopyDone or CopyFail.
            self.0.tracker.copy_end();
        }
    }

    fn stream(&mut self, bytes: &[u8]) {
        if !self.0.discard_until_sync {
            self.0.to_server.extend_from_slice(bytes);
        }
    }

    fn frame(&mut self, tag: u8, frame: BytesMut) -> Result<(), Fatal> {
        self.0.client_frame(tag, frame)
    }
}

impl Relay {
    /// Handle what the client sent, up to a held or parked statement.
    pub(super) fn process_client(&mut self) -> Result<(), Fatal> {
        if let Some((tag, frame)) = self.parked.take() {
            self.client_frame(tag, frame)?;
            if self.parked.is_some() || self.held.is_some() {
                return Ok(());
            }
        }
        let mut framer = std::mem::take(&mut self.client);
        let r = framer.cut(&mut FromClient(self));
        self.client = framer;
        r
    }

    fn client_frame(&mut self, tag: u8, frame: BytesMut) -> Result<(), Fatal> {
        // What was held back for an Execute is recorded before anything else happens; a
        // Bind records an earlier Bind itself.
        if !matches!(tag, b'E' | b'D' | b'H' | b'B') {
            self.record_folded();
        }
        if self.discard_until_sync && tag != b'S' {
            // After an error the server ignores everything up to Sync; so do we.
            return Ok(());
        }
        match tag {
            b'Q' => self.on_query(frame),
            b'P' => self.on_parse(frame),
            b'B' => self.on_bind(frame),
            b'E' => self.on_execute(frame),
            b'C' => self.on_close(frame),
            b'F' => self.on_function_call(frame),
            b'S' => {
                self.discard_until_sync = false;
                // The server ignores a Sync in copy-in mode: no ReadyForQuery answers it.
                self.tracker.sync();
                self.to_server.extend_from_slice(&frame);
                Ok(())
            }
            b'X' => {
                self.terminated = true;
                self.to_server.extend_from_slice(&frame);
                Ok(())
            }
            _ => {
                self.to_server.extend_from_slice(&frame);
                Ok(())
            }
        }
    }

    pub(super) fn decide(
        &mut self,
        frame: BytesMut,
        kind: HeldKind,
        verdict: Verdict,
        preview: impl FnOnce() -> Option<(Class, Arc<str>, Parameters)>,
        deferrable: bool,
        decided_at: Option<Instant>,
    ) {
        // Until the next ReadyForQuery, the transaction may have ended.
        self.txn.decided(deferrable);
        let verdict = match verdict {
            Verdict::Allow(p) if self.txn.needs_flush(deferrable) => self.app.gate.after_flush(p),
            Verdict::Allow(p) => {
                // Recorded, not yet on disk: flushed before anything that may commit.
                self.txn.ran(p.class, &p.statement);
                Verdict::Allow(p)
            }
            other => other,
        };
        match verdict {
            Verdict::Allow(p) => self.forward(frame, &kind, p, decided_at),
            Verdict::Deny(r) => self.refuse(r, matches!(kind, HeldKind::Execute(_))),
            Verdict::Hold(h) => self.start_hold(h, frame, kind, preview()),
            Verdict::Commit(c) => {
                self.held = Some(Held {
                    hold: Waiting::Audit(c),
                    frame,
                    kind,
                })
            }
        }
    }

    fn on_query(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let started = Instant::now();
        let (text, utf8, _) = text_field(&frame[5..])?;
        let analysis = self.app.cache.analyze(&self.ctx.target.name, &text);
        let (class, shown) = match self.resolve_runs(&analysis, own_class(&analysis, utf8), &text) {
            Resolution::Ready { class, shown } => (class, shown),
            Resolution::Wait => {
                self.parked = Some((b'Q', frame));
                return Ok(());
            }
        };
        let statement: Arc<str> = Arc::from(shown.as_deref().unwrap_or(&text));
        let deferrable = utf8 && self.txn.deferrable(&text);
        let seen = self.settings.view(&analysis.classification, class);
        let (classification, class) = match &seen {
            Some(c) => (c, c.class),
            None => (&analysis.classification, class),
        };
        let verdict = self.app.gate.check(
            &self.ctx,
            Action {
                statement: &statement,
                classification,
                class,
                runs_prepared: analysis.has_execute(),
                deferrable,
                params: None,
            },
        );
        // Only a hold needs its own copy of the text.
        let preview =
            matches!(verdict, Verdict::Hold(_)).then(|| (class, statement, Parameters::default()));
        let decided_at = self.observe(started);
        self.decide(
            frame,
            HeldKind::Query(analysis),
            verdict,
            move || preview,
            deferrable,
            Some(decided_at),
        );
        Ok(())
    }

    /// Time the decision that began at `started`; returns its end, which is also when an
    /// allowed statement is forwarded (one clock pair per statement).
    pub(super) fn observe(&self, started: Instant) -> Instant {
        let now = Instant::now();
        self.latency
            .observe(now.saturating_duration_since(started).as_secs_f64());
        now
    }

    fn on_function_call(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let oid = msg::i32_at(&frame, 5).unwrap_or(0);
        let statement: Arc<str> = format!("<fast-path function call, oid {oid}>").into();
        let mut c = Classification::bare(
            Class::Unknown,
            "fast-path FunctionCall: any function by OID",
        );
        c.functions.push(format!("oid:{oid}"));
        let verdict = self.app.gate.check(
            &self.ctx,
            Action {
                statement: &statement,
                classification: &c,
                class: Class::Unknown,
                runs_prepared: false,
                deferrable: false,
                params: None,
            },
        );
        self.decide(frame, HeldKind::FunctionCall, verdict, || None, false, None);
        Ok(())
    }

    /// The Gate said yes: send it upstream. `decided_at`: when the decision ended, if the
    /// clock was read then (the statement's duration runs from its forward).
    fn forward(
        &mut self,
        frame: BytesMut,
        kind: &HeldKind,
        permit: Permit,
        decided_at: Option<Instant>,
    ) {
        self.settings_sent(&frame, kind, permit.class);
        if !matches!(permit.class, Class::Read | Class::Write) && self.schema_change.is_none() {
            self.schema_change = Some(crate::pg::target_catalog::SchemaChange::begin(
                &self.app,
                &self.ctx.target,
                self.upstream.tls.clone(),
            ));
        }
        // The statement's audit record travels with it, for its result to join.
        let sent = Sent {
            at: decided_at.unwrap_or_else(Instant::now),
            statement: permit.statement,
        };
        match kind {
            HeldKind::Query(a) => self.track_query(a, &frame, sent),
            HeldKind::FunctionCall => self.tracker.function_call(),
            HeldKind::Execute(effects) => self.tracker.execute(sent, effects.clone()),
        }
        self.to_server.extend_from_slice(&frame);
    }

    fn track_query(&mut self, a: &Arc<SqlAnalysis>, frame: &[u8], sent: Sent) {
        let effects = if a.effects.is_empty() {
            Vec::new()
        } else {
            // The text again, only for a query that prepares or deallocates.
            let (text, utf8) = text_field(frame.get(5..).unwrap_or_default())
                .map(|(t, utf8, _)| (Arc::<str>::from(t.as_ref()), utf8))
                .unwrap_or_else(|_| (Arc::from(""), false));
            effects(a, &text, utf8)
        };
        self.tracker.query(effects, sent);
    }

    fn start_hold(
        &mut self,
        hold: Hold,
        frame: BytesMut,
        kind: HeldKind,
        preview: Option<(Class, Arc<str>, Parameters)>,
    ) {
        if let Some((Class::Write, statement, parameters)) = preview {
            let approvals = self.app.approvals.clone();
            let target = self.ctx.target.clone();
            let tls = self.upstream.tls.clone();
            let id = hold.request.clone();
            tokio::spawn(async move {
                let impact =
                    crate::pg::impact::preview(&target, tls.as_ref(), &statement, &parameters)
                        .await;
                approvals.set_impact(&id, impact);
            });
        }
        let text = format!(
            "jitgate: held for approval, request {} (rule \"{}\")",
            hold.request, hold.rule
        );
        self.inject(|out| msg::notice(out, Fields::new("NOTICE", "00000", text)));
        self.held = Some(Held {
            hold: Waiting::Approval(hold),
            frame,
            kind,
        });
    }

    /// The held frame's request was decided.
    pub(super) fn resolve(&mut self, r: Result<Permit, Refusal>) {
        let Some(held) = self.held.take() else {
            return;
        };
        if r.is_ok() {
            // Every kind of wait ends with a flush of everything recorded before it.
            self.txn.flushed();
        }
        match r {
            Ok(p) => self.forward(held.frame, &held.kind, p, None),
            Err(refusal) => self.refuse(refusal, matches!(held.kind, HeldKind::Execute(_))),
        }
    }

    /// Replace a refused message with one that fails upstream, and remember to rewrite the
    /// failure into the refusal.
    pub(super) fn refuse(&mut self, refusal: Refusal, extended: bool) {
        let seq = self.refusals.add(refusal);
        let marker = format!("{REFUSAL_MARKER}{seq}");
        let mut body = BytesMut::with_capacity(64);
        if extended {
            // A named statement: an unnamed Parse would destroy the client's unnamed one.
            body.put_slice(b"jitgate_refused\0");
            body.put_slice(marker.as_bytes());
            body.put_u8(0);
            body.put_i16(0);
            msg::frame(&mut self.to_server, b'P', &body);
            self.discard_until_sync = true;
        } else {
            body.put_slice(marker.as_bytes());
            body.put_u8(0);
            self.tracker.refused();
            msg::frame(&mut self.to_server, b'Q', &body);
        }
    }
}
