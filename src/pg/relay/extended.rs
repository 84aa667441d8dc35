//! Client → server, the extended query protocol: Parse and Close name statements and go on
//! at once, a Bind is tracked (its values held for the event of the Execute that runs it),
//! and an Execute is decided by the Gate like a Query (see `client.rs`).
//!
//! Invariant: an Execute reaches the upstream only through [`Relay::decide`] and so only with
//! a Permit; it is judged by the text of the statement its portal was bound to, under the
//! target's catalog in force when it runs. A Bind or Execute naming a statement or portal
//! whose redefinition the server has not answered yet is parked until it has.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::client::{name_field, text_field};
use super::folded::HeldBind;
use super::hold::HeldKind;
use super::resolve::{Resolution, effects, own_class};
use super::tracker::{Origin, Stmt};
use super::{Fatal, Relay};
use crate::audit::{EventKind, Text};
use crate::gate::Action;
use crate::pg::impact::Parameters;
use crate::pg::msg::{self, Fields};
use crate::policy::{Class, Classification};

/// FirstNormalObjectId: OIDs from here on belong to objects created after initdb.
const FIRST_USER_OID: u32 = 16384;

/// Whether a Parse's parameter type list (after its query string) names a type created after
/// initdb; a malformed list counts as one (fail closed; the server rejects it anyway).
fn declares_user_types(list: &[u8]) -> bool {
    let Some(count) = msg::i16_at(list, 0).and_then(|n| usize::try_from(n).ok()) else {
        return true;
    };
    (0..count).any(|i| msg::i32_at(list, 2 + 4 * i).is_none_or(|oid| oid as u32 >= FIRST_USER_OID))
}

impl Relay {
    pub(super) fn on_parse(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let (name, name_text, rest) = name_field(&frame[5..])?;
        let (text, utf8, after_text) = text_field(rest)?;
        let analysis = self.app.cache.analyze(&self.ctx.target.name, &text);
        // An EXECUTE in it is resolved when it runs. A parameter of a type created after
        // initdb (a domain, an enum, an extension's type) runs that type's input function and
        // checks on the bound value: user code the text does not show.
        let class = match declares_user_types(after_text) {
            false => own_class(&analysis, utf8),
            true => Class::Unknown,
        };
        let same_text = self.tracker.stmt(&name).filter(|s| *s.text == *text);
        let stmt = match same_text {
            // A re-Parse of the same text under the same name (a driver's unnamed statement,
            // sent again for each execution): nothing to record, and when it reads the same,
            // nothing new to keep.
            Some(s)
                if Arc::ptr_eq(&s.analysis, &analysis)
                    && s.class == class
                    && s.origin == Origin::Parse
                    && s.parameters.declares(after_text) =>
            {
                s
            }
            Some(s) => Arc::new(Stmt {
                text: s.text.clone(),
                analysis,
                class,
                parameters: Parameters::declared(after_text),
                origin: Origin::Parse,
            }),
            None => {
                // The text once: a re-Parse of the same text under the same name is not
                // repeated.
                let text: Arc<str> = Arc::from(text.as_ref());
                if name_text.is_empty() {
                    self.folded.parse(Text::from(&text));
                } else {
                    self.record(EventKind::Parse {
                        statement_name: name_text,
                        text: Text::from(&text),
                    });
                }
                Arc::new(Stmt {
                    text,
                    analysis,
                    class,
                    parameters: Parameters::declared(after_text),
                    origin: Origin::Parse,
                })
            }
        };
        self.tracker.parse(name, stmt);
        self.to_server.extend_from_slice(&frame);
        Ok(())
    }

    pub(super) fn on_bind(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let (portal, portal_text, rest) = name_field(&frame[5..])?;
        let (stmt, stmt_text, after_names) = name_field(rest)?;
        if self.tracker.stmt_pending(&stmt) {
            self.parked = Some((b'B', frame));
            return Ok(());
        }
        self.tracker.bind(portal.clone(), &stmt, after_names);
        self.to_server.extend_from_slice(&frame);
        let params = msg::bind_params(frame.freeze());
        let held = HeldBind::new(portal, portal_text, stmt_text, params);
        for earlier in self.folded.bind(held) {
            self.record(earlier);
        }
        Ok(())
    }

    pub(super) fn on_close(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let kind = frame.get(5).copied().unwrap_or(0);
        let (name, _, _) = name_field(frame.get(6..).unwrap_or_default())?;
        if kind != b'S' && kind != b'P' {
            return Err(Fatal(Fields::new(
                "FATAL",
                "08P01",
                "invalid CLOSE message subtype",
            )));
        }
        self.tracker.close(kind, name);
        self.to_server.extend_from_slice(&frame);
        Ok(())
    }

    pub(super) fn on_execute(&mut self, frame: BytesMut) -> Result<(), Fatal> {
        let started = Instant::now();
        let (portal, _, _) = name_field(&frame[5..])?;
        if self.tracker.portal_pending(&portal) {
            self.parked = Some((b'E', frame));
            return Ok(());
        }
        // Judged under the target's catalog as it is now, not as it was at Parse.
        let stmt = self.tracker.portal(&portal).map(|s| self.in_force(s));
        let fallback;
        let (statement, classification, class, runs_prepared) = match &stmt {
            Some(s) => match self.resolve_runs(&s.analysis, s.class, &s.text) {
                Resolution::Wait => {
                    self.parked = Some((b'E', frame));
                    return Ok(());
                }
                Resolution::Ready { class, shown } => (
                    shown.map_or_else(|| s.text.clone(), Arc::from),
                    &s.analysis.classification,
                    class,
                    s.analysis.has_execute(),
                ),
            },
            None => {
                fallback = Classification::bare(
                    Class::Unknown,
                    "Execute of a portal the proxy did not see bound",
                );
                (
                    Arc::from("<unknown portal>"),
                    &fallback,
                    Class::Unknown,
                    false,
                )
            }
        };
        let deferrable = stmt.is_some() && self.txn.deferrable(&statement);
        // The Bind of this portal (and the unnamed Parse it bound) become this statement's
        // event; anything else held back is recorded before it.
        let bound = self.folded.execute(&portal, &statement);
        self.record_folded();
        let seen = self.settings.view(classification, class);
        let (classification, class) = match &seen {
            Some(c) => (c, c.class),
            None => (classification, class),
        };
        let verdict = self.app.gate.check(
            &self.ctx,
            Action {
                statement: &statement,
                classification,
                class,
                runs_prepared,
                deferrable,
                params: bound.as_ref().map(HeldBind::params),
            },
        );
        let decided_at = self.observe(started);
        // The Bind's values belong to the portal's own text, not to a prepared text shown
        // in place of an EXECUTE.
        let preview = || {
            stmt.as_ref().map(|s| {
                let parameters = if Arc::ptr_eq(&s.text, &statement) {
                    s.parameters.clone()
                } else {
                    Parameters::default()
                };
                (class, statement.clone(), parameters)
            })
        };
        let runs = stmt
            .as_ref()
            .map(|s| effects(&s.analysis, &s.text, s.class != Class::Unknown));
        self.decide(
            frame,
            HeldKind::Execute(runs.unwrap_or_default()),
            verdict,
            preview,
            deferrable,
            Some(decided_at),
        );
        Ok(())
    }
}
