//! Client → server: cut frames, track statements, and stop at the Gate.

use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};

use super::tracker::Stmt;
use super::{Fatal, Held, HeldKind, REFUSAL_MARKER, Relay, Waiting};
use crate::audit::{EventKind, Text};
use crate::gate::{Action, Hold, Permit, Refusal, Verdict};
use crate::pg::msg::{self, Fields};
use crate::policy::sql::{self, SqlAnalysis, SqlEffect};
use crate::policy::{Class, Classification};

fn unknown(reason: &str) -> Classification {
    Classification {
        class: Class::Unknown,
        tables: Vec::new(),
        functions: Vec::new(),
        commands: Vec::new(),
        reason: reason.to_string(),
    }
}

/// The text of a NUL-terminated string field; `Err` on a missing terminator. Text that is not
/// UTF-8 (a non-UTF-8 client_encoding) comes back lossily converted and flagged, so it is
/// classified `unknown`.
fn text_field(b: &[u8]) -> Result<(std::borrow::Cow<'_, str>, bool, &[u8]), Fatal> {
    let nul = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| Fatal(Fields::new("FATAL", "08P01", "invalid string in message")))?;
    let (s, rest) = (&b[..nul], &b[nul + 1..]);
    Ok(match std::str::from_utf8(s) {
        Ok(t) => (std::borrow::Cow::Borrowed(t), true, rest),
        Err(_) => (String::from_utf8_lossy(s), false, rest),
    })
}

impl Relay {
    /// Proxy-made message for the client, placed at the next frame boundary of the server
    /// stream.
    pub(super) fn inject(&mut self, f: impl FnOnce(&mut BytesMut)) {
        if self.s_pass == 0 {
            f(&mut self.cout);
        } else {
            f(&mut self.inject_pending);
        }
    }

    pub(super) fn process_client(&mut self) -> Result<(), Fatal> {
        let mut cin = std::mem::take(&mut self.cin);
        let r = self.process_client_buf(&mut cin);
        self.cin = cin;
        r
    }

    fn process_client_buf(&mut self, cin: &mut BytesMut) -> Result<(), Fatal> {
        self.c_want = 0;
        while self.held.is_none() && !self.terminated {
            if self.c_pass > 0 {
                if cin.is_empty() {
                    break;
                }
                let n = self.c_pass.min(cin.len());
                if !self.discard_until_sync {
                    self.sout.extend_from_slice(&cin[..n]);
                }
                cin.advance(n);
                self.c_pass -= n;
                continue;
            }
            if cin.len() < 5 {
                break;
            }
            let tag = cin[0];
            let len = i32::from_be_bytes([cin[1], cin[2], cin[3], cin[4]]);
            if len < 4 {
                return Err(Fatal(Fields::new(
                    "FATAL",
                    "08P01",
                    "invalid message length",
                )));
            }
            let total = len as usize + 1;
            match tag {
                // COPY data streams through; outside COPY the server ignores it.
                b'd' | b'c' | b'f' => {
                    if tag != b'd' && !self.discard_until_sync {
                        self.tracker.copy_end();
                    }
                    self.c_pass = total;
                    continue;
                }
                b'Q' | b'P' | b'B' | b'E' | b'C' | b'D' | b'S' | b'H' | b'X' | b'F' => {}
                _ => {
                    return Err(Fatal(Fields::new(
                        "FATAL",
                        "08P01",
                        format!("invalid frontend message type {tag}"),
                    )));
                }
            }
            if total - 5 > self.max_message {
                return Err(Fatal(Fields::new(
                    "FATAL",
                    "54000",
                    format!(
                        "jitgate: message of {} bytes exceeds max_message_bytes ({})",
                        total - 1,
                        self.max_message
                    ),
                )));
            }
            if cin.len() < total {
                self.c_want = total;
                cin.reserve(total - cin.len());
                break;
            }
            let frame = cin.split_to(total);
            self.client_frame(tag, frame)?;
        }
        Ok(())
    }

    fn client_frame(&mut self, tag: u8, frame: BytesMut) -> Result<(), Fatal> {
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
                self.sout.extend_from_slice(&frame);
                Ok(())
            }
            b'X' => {
                self.terminated = true;
                self.sout.extend_from_slice(&frame);
                Ok(())
            }
            _ => {
                self.sout.extend_from_slice(&frame);
                Ok(())
            }
        }
    }

    /// Whether a statement with this text, decided now, stays inside an open transaction
    /// block without ending it (see [`Action::deferrable`]). Conservative: one statement,
    /// not `COMMIT`/`END`/`PREPARE`, in a block as of the last ReadyForQuery, with nothing
    /// since that may have ended it.
    fn deferrable(&self, text: &str) -> bool {
        matches!(self.status, b'T' | b'E') && !self.may_commit && stays_in_transaction(text)
    }

    fn decide(
        &mut self,
        frame: BytesMut,
        kind: HeldKind,
        verdict: Verdict,
        preview: impl FnOnce() -> Option<(Class, Arc<str>)>,
        deferrable: bool,
    ) {
        if !deferrable {
            // Until the next ReadyForQuery, the transaction may have ended.
            self.may_commit = true;
        }
        let verdict = match verdict {
            Verdict::Allow(p) if self.dirty && !deferrable => self.gate.after_flush(p),
            Verdict::Allow(p) => {
                if p.class != Class::Read {
                    // Recorded, not yet on disk: flushed before anything that may commit.
                    self.dirty = true;
                }
                Verdict::Allow(p)
            }
            other => other,
        };
        match verdict {
            Verdict::Allow(p) => self.forward(frame, &kind, p),
            Verdict::Deny(r) => self.refuse(r, matches!(kind, HeldKind::Execute)),
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
        let started = std::time::Instant::now();
        let (text, utf8, _) = text_field(&frame[5..])?;
        let deferrable = utf8 && self.deferrable(&text);
        let analysis = self.gate.cache.analyze(&text);
        let class = if utf8 {
            sql::resolve_class(&analysis, &|n| self.tracker.stmt(n).map(|s| s.class))
        } else {
            Class::Unknown
        };
        let verdict = self.gate.check(
            &self.ctx,
            Action {
                statement: &text,
                classification: &analysis.classification,
                class,
                runs_prepared: analysis.has_execute(),
                deferrable,
            },
        );
        // Only a hold needs its own copy of the text.
        let preview =
            matches!(verdict, Verdict::Hold(_)).then(|| (class, Arc::from(text.as_ref())));
        self.observe(started);
        self.decide(
            frame,
            HeldKind::Query(analysis),
            verdict,
            move || preview,
            deferrable,
        );
        Ok(())
    }

    fn observe(&self, started: std::time::Instant) {
        self.latency.observe(started.elapsed().as_secs_f64());
    }

    fn on_parse(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let (name, _, rest) = text_field(&frame[5..])?;
        let (text, utf8, _) = text_field(rest)?;
        let analysis = self.gate.cache.analyze(&text);
        let class = if utf8 {
            sql::resolve_class(&analysis, &|n| self.tracker.stmt(n).map(|s| s.class))
        } else {
            Class::Unknown
        };
        let text: Arc<str> = Arc::from(text.as_ref());
        // The text once: a re-Parse of the same text under the same name is not repeated.
        if self.tracker.stmt(&name).is_none_or(|s| s.text != text) {
            self.gate
                .audit()
                .record(
                    Text::from(&self.sid),
                    EventKind::Parse {
                        statement_name: Text::from(name.as_ref()),
                        text: Text::from(&text),
                    },
                )
                .ok();
        }
        let stmt = Arc::new(Stmt {
            text,
            analysis,
            class,
        });
        self.tracker.parse(&name, stmt);
        self.sout.extend_from_slice(&frame);
        Ok(())
    }

    fn on_bind(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let (portal, _, rest) = text_field(&frame[5..])?;
        let (stmt, _, _) = text_field(rest)?;
        self.tracker.bind(&portal, &stmt);
        let (portal, statement_name) = (Text::from(portal.as_ref()), Text::from(stmt.as_ref()));
        self.sout.extend_from_slice(&frame);
        let ev = EventKind::Bind {
            portal,
            statement_name,
            params: msg::bind_params(frame.freeze()),
        };
        self.gate.audit().record(Text::from(&self.sid), ev).ok();
        Ok(())
    }

    fn on_close(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let kind = frame.get(5).copied().unwrap_or(0);
        let (name, _, _) = text_field(frame.get(6..).unwrap_or_default())?;
        if kind != b'S' && kind != b'P' {
            return Err(Fatal(Fields::new(
                "FATAL",
                "08P01",
                "invalid CLOSE message subtype",
            )));
        }
        self.tracker.close(kind, &name);
        self.sout.extend_from_slice(&frame);
        Ok(())
    }

    fn on_execute(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let started = std::time::Instant::now();
        let (portal, _, _) = text_field(&frame[5..])?;
        let stmt = self.tracker.portal(&portal);
        let fallback;
        let (statement, classification, class, runs_prepared) = match &stmt {
            Some(s) => (
                &*s.text,
                &s.analysis.classification,
                s.class,
                s.analysis.has_execute(),
            ),
            None => {
                fallback = unknown("Execute of a portal the proxy did not see bound");
                ("<unknown portal>", &fallback, Class::Unknown, false)
            }
        };
        let verdict = self.gate.check(
            &self.ctx,
            Action {
                statement,
                classification,
                class,
                runs_prepared,
                deferrable: self.deferrable(statement),
            },
        );
        self.observe(started);
        let deferrable = stmt.as_ref().is_some_and(|s| self.deferrable(&s.text));
        let preview = || stmt.as_ref().map(|s| (s.class, s.text.clone()));
        self.decide(frame, HeldKind::Execute, verdict, preview, deferrable);
        Ok(())
    }

    fn on_function_call(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let oid = msg::i32_at(&frame, 5).unwrap_or(0);
        let statement = format!("<fast-path function call, oid {oid}>");
        let mut c = unknown("fast-path FunctionCall: any function by OID");
        c.functions.push(format!("oid:{oid}"));
        let verdict = self.gate.check(
            &self.ctx,
            Action {
                statement: &statement,
                classification: &c,
                class: Class::Unknown,
                runs_prepared: false,
                deferrable: false,
            },
        );
        self.decide(frame, HeldKind::FunctionCall, verdict, || None, false);
        Ok(())
    }

    /// The Gate said yes: send it upstream.
    fn forward(&mut self, frame: BytesMut, kind: &HeldKind, _permit: Permit) {
        let now = std::time::Instant::now();
        match kind {
            HeldKind::Query(a) => self.track_query(a, now),
            HeldKind::FunctionCall => self.tracker.function_call(),
            HeldKind::Execute => self.tracker.execute(now),
        }
        self.sout.extend_from_slice(&frame);
    }

    fn track_query(&mut self, a: &Arc<SqlAnalysis>, started: std::time::Instant) {
        let mut prepares = Vec::new();
        let mut deallocates = Vec::new();
        for e in &a.effects {
            match e {
                SqlEffect::Prepare { name, class } => prepares.push((
                    name.clone(),
                    Arc::new(Stmt {
                        text: Arc::from(format!("EXECUTE {name}").as_str()),
                        analysis: a.clone(),
                        class: *class,
                    }),
                )),
                SqlEffect::Deallocate { name } => deallocates.push(name.clone()),
                SqlEffect::Execute { .. } => {}
            }
        }
        self.tracker.query(prepares, &deallocates, started);
    }

    fn start_hold(
        &mut self,
        hold: Hold,
        frame: BytesMut,
        kind: HeldKind,
        preview: Option<(Class, Arc<str>)>,
    ) {
        if let Some((Class::Write, statement)) = preview {
            let approvals = self.gate.approvals.clone();
            let target = self.ctx.target.clone();
            let tls = self.upstream_tls.clone();
            let id = hold.request.clone();
            tokio::spawn(async move {
                let impact = crate::pg::impact::preview(&target, tls.as_ref(), &statement).await;
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
            self.dirty = false;
        }
        match r {
            Ok(p) => self.forward(held.frame, &held.kind, p),
            Err(refusal) => self.refuse(refusal, matches!(held.kind, HeldKind::Execute)),
        }
    }

    /// Replace a refused message with one that fails upstream, and remember to rewrite the
    /// failure into the refusal.
    pub(super) fn refuse(&mut self, refusal: Refusal, extended: bool) {
        self.refusal_seq += 1;
        let seq = self.refusal_seq;
        let marker = format!("{REFUSAL_MARKER}{seq}");
        let mut body = BytesMut::with_capacity(64);
        if extended {
            // A named statement: an unnamed Parse would destroy the client's unnamed one.
            body.put_slice(b"jitgate_refused\0");
            body.put_slice(marker.as_bytes());
            body.put_u8(0);
            body.put_i16(0);
            msg::frame(&mut self.sout, b'P', &body);
            self.discard_until_sync = true;
        } else {
            body.put_slice(marker.as_bytes());
            body.put_u8(0);
            self.tracker.refused();
            msg::frame(&mut self.sout, b'Q', &body);
        }
        self.refusals.push((seq, refusal));
    }
}

/// One statement that cannot end the transaction it runs in: no `;` but a trailing one, no
/// leading comment, and not `COMMIT`, `END`, `PREPARE [TRANSACTION]`, `ROLLBACK` (but
/// `ROLLBACK TO`) or `ABORT`. Anything else (or anything unclear) is `false`.
fn stays_in_transaction(text: &str) -> bool {
    let t = text.trim_start();
    let body = t.trim_end().trim_end_matches(';');
    if body.contains(';') || t.starts_with("--") || t.starts_with("/*") || body.is_empty() {
        return false;
    }
    let word: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    let rollback_to = || {
        let mut w = body.split_whitespace().skip(1);
        let next = w.next().map(str::to_ascii_uppercase);
        next.as_deref() == Some("TO")
            || (matches!(next.as_deref(), Some("WORK" | "TRANSACTION"))
                && w.next().map(str::to_ascii_uppercase).as_deref() == Some("TO"))
    };
    match word.as_str() {
        "" | "COMMIT" | "END" | "PREPARE" | "ABORT" => false,
        // ROLLBACK ends the block (what follows may autocommit); ROLLBACK TO does not.
        "ROLLBACK" => rollback_to(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::stays_in_transaction as stays;

    #[test]
    fn only_plain_single_statements_stay_in_the_transaction() {
        assert!(stays("UPDATE t SET v = 1 WHERE id = 2;"));
        assert!(stays("  insert into t values (1)"));
        assert!(stays("SELECT 1"));
        assert!(stays("ROLLBACK TO SAVEPOINT a"));
        assert!(stays("rollback to a;"));
        assert!(stays("ROLLBACK WORK TO a"));
        for s in [
            "COMMIT",
            "commit;",
            "ROLLBACK",
            "rollback work",
            "ABORT",
            "END",
            "end transaction",
            "PREPARE TRANSACTION 'x'",
            "UPDATE t SET v = 1; COMMIT",
            "-- c\nCOMMIT",
            "/* x */ COMMIT",
            "",
            ";",
            "(SELECT 1)",
        ] {
            assert!(!stays(s), "{s:?}");
        }
    }
}
