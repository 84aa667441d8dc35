//! The session settings that change how the server reads a statement or resolves its names,
//! as the relay knows them, and the classification they make of an analysis.
//!
//! Pinned settings (`client_encoding`, `standard_conforming_strings`, see
//! [`Pinned`]): the server reports them in ParameterStatus, at start-up and whenever they
//! change (a SET, `ALTER ROLE … SET`, a function's SET clause). While one is reported off
//! its pinned value, every statement of the session classifies `unknown`, with a reason
//! naming it, because the proxy may read the text differently from the server.
//!
//! `search_path` (not reported by the server) is read from the statements the relay
//! forwards ([`crate::policy::sql::session`]). The relay keeps every path the session may
//! have now: a change is added when it is sent, and the older paths are dropped only when a
//! lone, non-LOCAL change sent with nothing else in flight outside a transaction reaches an
//! idle ReadyForQuery without an error (then it certainly took effect and commits). SET
//! LOCAL paths end with the transaction. Everything else (a change inside a transaction
//! block, which a rollback may undo; a pipelined one; one over the extended protocol) only
//! adds. A relation reported `public.x` (the analysis' name for an unqualified `x`, and for
//! an explicit `public.x`: it cannot tell them apart) is then listed under `public` and
//! under every schema of every possible path; a path the proxy cannot know (`set_config`
//! with a computed value) lists it as `?.x`, a schema no rule names (only a `*` glob for
//! the schema matches it, meaning "any schema"). So an allow rule or grant that names
//! `public.x` does not cover a statement that may touch `secret.x`, and a review or deny
//! rule that names either still matches.
//!
//! The starting path is the server's (`upstream.rs` asks `SHOW search_path` before the
//! client's first statement: role and database settings, the client's start-up parameter),
//! and RESET goes back to it. Assumption (a documented limit): PostgreSQL's default
//! `"$user", public` resolves as `public.` (no schema named after the target's user;
//! PostgreSQL skips `$user` when there is none). An explicit `$user` in any other path is
//! the target's user. `pg_catalog` and
//! `pg_temp` are left out of candidates (system relations are named as before; temporary
//! tables are the session's own). `SET ROLE` (privilege, reviewed) does not change what
//! `$user` is taken for.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::BytesMut;

use super::Relay;
use super::hold::HeldKind;
use super::tracker::Name;
use crate::policy::sql::catalog::{Pinned, pinned_setting};
use crate::policy::sql::session::{PathChange, search_path_changes, split_path};
use crate::policy::{Class, Classification};

/// PostgreSQL's default `search_path`, as `SHOW` prints it.
pub(super) const DEFAULT_SEARCH_PATH: &str = "\"$user\", public";

/// Beyond this many possible paths the session's path counts as unknowable.
const MAX_PATHS: usize = 8;

/// One `search_path` the session may have.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Path {
    /// PostgreSQL's default, `"$user", public`: unqualified names are `public.`.
    Default,
    /// These schemas, in order (`$user` substituted, `pg_catalog` and `pg_temp` left out).
    Known(Vec<String>),
    /// Set to something the proxy cannot evaluate.
    Unknowable,
}

pub(super) struct SessionSettings {
    target_user: String,
    /// The path RESET goes back to.
    startup: Path,
    /// Pinned settings the server last reported with another value, and that value.
    off_pin: Vec<(Pinned, String)>,
    /// Every session-level path the session may have now, oldest first.
    paths: Vec<Path>,
    /// Paths set by SET LOCAL in the current transaction.
    local: Vec<Path>,
    /// Index in `paths` of a lone change sent with nothing in flight and outside a block.
    pending: Option<usize>,
    /// An error came since `pending` was sent.
    error_since: bool,
    /// A statement that may change a pinned setting without naming it (class `unknown`,
    /// `admin` or `code`: `set_config`, a function, an approved SET) was sent, and the
    /// server has not yet reported the settings that hold after it (it does so just before
    /// ReadyForQuery).
    unsettled: bool,
}

impl SessionSettings {
    /// At start-up: the target's user (for `$user`), the session's `search_path` as the
    /// server showed it (`None`: unknowable) and the frames the server sent.
    pub fn new(target_user: &str, search_path: Option<&str>, reported: &[u8]) -> Self {
        let mut s = SessionSettings {
            target_user: target_user.to_string(),
            startup: Path::Default,
            off_pin: Vec::new(),
            paths: Vec::new(),
            local: Vec::new(),
            pending: None,
            error_since: false,
            unsettled: false,
        };
        s.startup = match search_path.and_then(split_path) {
            Some(schemas) => s.path(schemas),
            None => Path::Unknowable,
        };
        s.paths.push(s.startup.clone());
        for (tag, body) in frames(reported) {
            if tag == b'S' {
                s.parameter_status(body);
            }
        }
        s
    }

    fn path(&self, schemas: Vec<String>) -> Path {
        if schemas == ["$user", "public"] {
            return Path::Default;
        }
        Path::Known(
            schemas
                .into_iter()
                .filter(|s| s != "pg_catalog" && !s.starts_with("pg_temp"))
                .map(|s| match s.as_str() {
                    "$user" => self.target_user.clone(),
                    _ => s,
                })
                .collect(),
        )
    }

    /// A ParameterStatus body (`name\0value\0`) from the server.
    pub fn parameter_status(&mut self, body: &[u8]) {
        let mut parts = body.split(|&b| b == 0);
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            return;
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let Some(p) = pinned_setting(&name) else {
            return;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        self.off_pin.retain(|(q, _)| *q != p);
        if !p.holds(&value) {
            self.off_pin.push((p, value));
        }
    }

    /// A statement of this class was sent upstream.
    pub fn sent_class(&mut self, class: Class) {
        if matches!(class, Class::Unknown | Class::Admin | Class::Code) {
            self.unsettled = true;
        }
    }

    /// A text was sent upstream; `alone`: one statement, sent with nothing in flight and
    /// outside a transaction block.
    pub fn sent(&mut self, text: &str, alone: bool) {
        let changes = search_path_changes(text);
        if changes.is_empty() {
            return;
        }
        self.pending = None;
        for c in &changes {
            let (path, local) = match c {
                PathChange::Set { schemas, local } => (self.path(schemas.clone()), *local),
                PathChange::Reset => (self.startup.clone(), false),
                PathChange::Unknowable => (Path::Unknowable, false),
            };
            let list = if local {
                &mut self.local
            } else {
                &mut self.paths
            };
            if !list.contains(&path) {
                list.push(path.clone());
            }
            if list.len() > MAX_PATHS {
                *list = vec![Path::Unknowable];
            }
            if alone && !local && changes.len() == 1 {
                self.pending = self.paths.iter().position(|p| *p == path);
                self.error_since = false;
            }
        }
    }

    /// The server reported an error.
    pub fn error(&mut self) {
        self.error_since = true;
    }

    /// ReadyForQuery with this status; `settled`: nothing else in flight or held.
    pub fn ready(&mut self, status: u8, settled: bool) {
        if !settled {
            return;
        }
        self.unsettled = false;
        if status == b'I' {
            self.local.clear();
            if let Some(i) = self.pending
                && !self.error_since
                && i < self.paths.len()
            {
                let kept = self.paths.swap_remove(i);
                self.paths = vec![kept];
            }
        }
        self.pending = None;
        self.error_since = false;
    }

    /// The classification this session gives `c` (whose session-resolved class is
    /// `class`), or `None` when it is `c` itself.
    pub fn view(&self, c: &Classification, class: Class) -> Option<Classification> {
        let tables = self.resolve(&c.tables);
        if let Some((p, value)) = self.off_pin.first() {
            return Some(Classification {
                class: Class::Unknown,
                tables: tables.unwrap_or_else(|| c.tables.clone()),
                reason: format!(
                    "the server reports {} = \"{value}\" (ALTER ROLE … SET, a function's SET \
                     clause or an approved SET): until it is {} again, the proxy may read a \
                     statement differently from the server",
                    p.name(),
                    p.value()
                ),
                ..c.clone()
            });
        }
        if self.unsettled {
            return Some(Classification {
                class: Class::Unknown,
                tables: tables.unwrap_or_else(|| c.tables.clone()),
                reason: "sent while an earlier statement that may change client_encoding or \
                         standard_conforming_strings still runs: the proxy cannot yet know how \
                         the server will read it"
                    .into(),
                ..c.clone()
            });
        }
        tables.map(|tables| Classification {
            class,
            tables,
            ..c.clone()
        })
    }

    /// `tables` with every `public.x` listed under each schema it may resolve to; `None`
    /// when that changes nothing.
    fn resolve(&self, tables: &[String]) -> Option<Arc<[String]>> {
        let all = || self.paths.iter().chain(self.local.iter());
        if all().all(|p| *p == Path::Default) || !tables.iter().any(|t| t.starts_with("public.")) {
            return None;
        }
        let mut out = BTreeSet::new();
        for t in tables {
            out.insert(t.clone());
            let Some(bare) = t.strip_prefix("public.") else {
                continue;
            };
            for p in all() {
                match p {
                    Path::Default => {}
                    Path::Known(schemas) => {
                        out.extend(schemas.iter().map(|s| format!("{s}.{bare}")));
                    }
                    Path::Unknowable => {
                        out.insert(format!("?.{bare}"));
                    }
                }
            }
        }
        let out: Vec<String> = out.into_iter().collect();
        (out != tables).then(|| out.into())
    }
}

/// The whole frames of a buffer of backend messages (the start-up frames).
fn frames(mut b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = b.split_first()?;
        let len = usize::try_from(crate::pg::msg::i32_at(rest, 0)?).ok()?;
        let body = rest.get(4..len)?;
        b = rest.get(len..)?;
        Some((tag, body))
    })
}

impl Relay {
    /// The session's settings at start-up: its `search_path` as the server showed it and
    /// the frames the server sent before its first ReadyForQuery.
    pub fn with_settings(mut self, search_path: Option<&str>, reported: &[u8]) -> Relay {
        self.settings = SessionSettings::new(&self.ctx.target.user, search_path, reported);
        self
    }

    /// A Query, Execute or FunctionCall of this class goes upstream: note what it may do
    /// to pinned settings and the `search_path` changes it makes.
    pub(super) fn settings_sent(&mut self, frame: &BytesMut, kind: &HeldKind, class: Class) {
        self.settings.sent_class(class);
        let alone = self.txn.idle() && !self.tracker.in_flight();
        let body = frame.get(5..).unwrap_or_default();
        let cstr = body.split(|&c| c == 0).next().unwrap_or_default();
        match kind {
            HeldKind::Query(_) => {
                if let Ok(text) = std::str::from_utf8(cstr) {
                    let one = !text.trim().trim_end_matches(';').contains(';');
                    self.settings.sent(text, alone && one);
                }
            }
            HeldKind::Execute(_) => {
                if let Some(s) = self.tracker.portal(&Name::wire(cstr)) {
                    self.settings.sent(&s.text, false);
                }
            }
            HeldKind::FunctionCall => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Option<&str> = Some(DEFAULT_SEARCH_PATH);

    fn status(name: &str, value: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for s in [name, value] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        let mut out = BytesMut::new();
        crate::pg::msg::frame(&mut out, b'S', &body);
        out.to_vec()
    }

    fn classified(tables: &[&str]) -> Classification {
        let mut c = Classification::bare(Class::Write, "DELETE is write");
        c.tables = tables.iter().map(|t| t.to_string()).collect();
        c
    }

    fn tables_of(s: &SessionSettings, tables: &[&str]) -> Vec<String> {
        let c = classified(tables);
        s.view(&c, c.class).map_or(c.tables, |v| v.tables).to_vec()
    }

    #[test]
    fn a_pinned_setting_reported_off_makes_everything_unknown_until_it_is_back() {
        let startup = [
            status("client_encoding", "UTF8"),
            status("standard_conforming_strings", "off"),
        ]
        .concat();
        let mut s = SessionSettings::new("app", DEFAULT, &startup);
        let c = Classification::bare(Class::Read, "SELECT is read");
        let v = s.view(&c, Class::Read).expect("tainted from start-up");
        assert_eq!(v.class, Class::Unknown);
        assert!(
            v.reason.contains("standard_conforming_strings"),
            "{}",
            v.reason
        );
        s.parameter_status(&status("standard_conforming_strings", "on")[5..]);
        assert!(s.view(&c, Class::Read).is_none());
        s.parameter_status(&status("client_encoding", "SJIS")[5..]);
        let v = s.view(&c, Class::Read).expect("SJIS");
        assert!(
            v.reason.contains("client_encoding = \"SJIS\""),
            "{}",
            v.reason
        );
        s.parameter_status(&status("client_encoding", "UTF8")[5..]);
        assert!(s.view(&c, Class::Read).is_none());
        // Pipelined after an approved statement that may change one: unknown until the
        // server has answered it.
        s.sent_class(Class::Read);
        s.sent_class(Class::Write);
        assert!(s.view(&c, Class::Read).is_none());
        s.sent_class(Class::Admin);
        let v = s.view(&c, Class::Read).expect("unsettled");
        assert_eq!(v.class, Class::Unknown);
        s.ready(b'I', false);
        assert!(s.view(&c, Class::Read).is_some(), "more still in flight");
        s.ready(b'I', true);
        assert!(s.view(&c, Class::Read).is_none());
    }

    #[test]
    fn search_path_changes_resolve_unqualified_names() {
        let mut s = SessionSettings::new("app", DEFAULT, &[]);
        assert_eq!(tables_of(&s, &["public.accounts"]), ["public.accounts"]);
        s.sent("SET search_path = secret", true);
        // Until the server confirms, either path may hold.
        assert_eq!(
            tables_of(&s, &["public.accounts", "pg_catalog.pg_class"]),
            ["pg_catalog.pg_class", "public.accounts", "secret.accounts"]
        );
        s.ready(b'I', true);
        assert_eq!(
            tables_of(&s, &["public.accounts"]),
            ["public.accounts", "secret.accounts"]
        );
        s.sent("RESET search_path", true);
        s.ready(b'I', true);
        assert_eq!(tables_of(&s, &["public.accounts"]), ["public.accounts"]);
        // A failed SET changes nothing, but is not assumed to have failed either.
        s.sent("SET search_path = a", true);
        s.error();
        s.ready(b'I', true);
        assert_eq!(
            tables_of(&s, &["public.t"]),
            ["a.t", "public.t"],
            "kept as possible"
        );
        s.sent("SET search_path = \"$user\", b, pg_catalog", true);
        s.ready(b'I', true);
        assert_eq!(tables_of(&s, &["public.t"]), ["app.t", "b.t", "public.t"]);
    }

    #[test]
    fn transactions_local_sets_and_unknowable_paths() {
        let mut s = SessionSettings::new("app", DEFAULT, &[]);
        // Inside a block: a rollback may undo it, so both stay possible after COMMIT.
        s.sent("SET search_path = a", false);
        s.ready(b'T', true);
        s.ready(b'I', true);
        assert_eq!(tables_of(&s, &["public.t"]), ["a.t", "public.t"]);
        s.sent("SET search_path = public", true);
        s.ready(b'I', true);
        assert_eq!(tables_of(&s, &["public.t"]), ["public.t"]);
        // SET LOCAL ends with the transaction.
        s.sent("SET LOCAL search_path = l", false);
        s.ready(b'T', true);
        assert_eq!(tables_of(&s, &["public.t"]), ["l.t", "public.t"]);
        s.ready(b'I', true);
        assert_eq!(tables_of(&s, &["public.t"]), ["public.t"]);
        s.sent(
            "SELECT set_config('search_path', current_user, false)",
            true,
        );
        s.ready(b'I', true);
        assert_eq!(tables_of(&s, &["public.t"]), ["?.t", "public.t"]);
        // Not settled (more in flight): nothing is dropped yet.
        s.sent("SET search_path = public", true);
        s.ready(b'I', false);
        assert_eq!(tables_of(&s, &["public.t"]), ["?.t", "public.t"]);
        s.ready(b'I', true);
        assert_eq!(tables_of(&s, &["public.t"]), ["public.t"]);
    }

    #[test]
    fn a_start_up_search_path_is_the_reset_value() {
        let mut s = SessionSettings::new("app", Some("pg_catalog"), &[]);
        assert_eq!(tables_of(&s, &["public.t"]), ["public.t"]);
        s.sent("SET search_path = x", true);
        s.ready(b'I', true);
        s.sent("RESET search_path", true);
        s.ready(b'I', true);
        assert_eq!(tables_of(&s, &["public.t"]), ["public.t"]);
        let s = SessionSettings::new("app", Some("secret"), &[]);
        assert_eq!(tables_of(&s, &["public.t"]), ["public.t", "secret.t"]);
        let s = SessionSettings::new("app", None, &[]);
        assert_eq!(tables_of(&s, &["public.t"]), ["?.t", "public.t"]);
    }
}
