//! The control API from a test's point of view: a small JSON client with bearer tokens, polling
//! helpers, and the approvals fixture (alice, bob, carol, dave; read/write/ddl rules).
//!
//! Include it next to the shared support: `mod support;` and
//! `#[path = "support/api.rs"] mod api;`. Every call is blocking: in a `#[tokio::test]` run the
//! held statement on a spawned task and drive the API from the test body.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::jitgate::{hash_password, toml_str};
#[allow(unused_imports)] // each test binary uses some of them
pub use session::{RequestStream, Session, SimpleResult, affected, failure, finish};

#[path = "api_session.rs"]
mod session;
use crate::support::{
    ALICE, ALICE_PASSWORD, APP_TARGET, Env, JitgateBuilder, PgCluster, PgTarget,
    pg_connect_with_messages,
};

/// How long a poll waits before failing the test (a hang fails instead of blocking CI).
pub const POLL: Duration = Duration::from_secs(60);

pub const ALICE_TOKEN: &str = "alice-token";
pub const BOB_TOKEN: &str = "bob-token";
pub const CAROL_TOKEN: &str = "carol-token";
pub const DAVE_TOKEN: &str = "dave-token";
pub const AUDITOR_TOKEN: &str = "audrey-token";

/// The rule names of the fixture, as the hold notice quotes them.
pub const WRITE_RULE: &str = "writes need an SRE";
pub const DDL_RULE: &str = "two for ddl";

/// A client of the control API acting with one bearer token (or none).
#[derive(Clone, Debug)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl Api {
    pub fn new(addr: SocketAddr, token: &str) -> Api {
        Api {
            addr,
            token: Some(token.to_string()),
        }
    }

    /// The same API with another token (`None`: no Authorization header).
    pub fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            addr: self.addr,
            token: token.map(str::to_string),
        }
    }

    /// One request; the body is JSON text (or raw text for bad-input checks). Returns the
    /// status and the body parsed as JSON (`Value::String` of the raw text if it is not JSON,
    /// `Value::Null` if empty).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let mut last_err = None;
        // A refused connect is retried; a request that may have been sent never is.
        for _ in 0..3 {
            match crate::support::http::request(self.addr, "http", method, path, &headers, body) {
                Ok(r) => {
                    let v = if r.body.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&r.body).unwrap_or(Value::String(r.body))
                    };
                    return (r.status, v);
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last_err = Some(e);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{method} {path} on {}: {e}", self.addr),
            }
        }
        panic!("{method} {path} on {}: {:?}", self.addr, last_err)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(&body.to_string()))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None)
    }

    /// `GET`, asserting 200.
    pub fn get_ok(&self, path: &str) -> Value {
        let (status, v) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// Every event of the only session of `user`, once it has ended.
    pub fn ended_session(&self, user: &str) -> (Value, Vec<Value>) {
        poll("the session to end in the audit trail", || {
            let list = self.get_ok(&format!("/v1/sessions?user={user}"));
            let s = list
                .as_array()
                .and_then(|l| l.last())
                .cloned()
                .ok_or("no session yet")?;
            if s.get("ended_at").is_none() {
                return Err(format!("session still open: {s}"));
            }
            let id = s["id"].as_str().unwrap().to_string();
            let events = self.get_ok(&format!("/v1/sessions/{id}/events"));
            let events = events.as_array().cloned().unwrap_or_default();
            if events
                .last()
                .map(|e| e["kind"] != "session_end")
                .unwrap_or(true)
            {
                return Err("session_end not visible yet".into());
            }
            Ok((s, events))
        })
    }

    /// `POST /v1/requests/{id}/approve` with a reason and optionally `grant_secs`.
    pub fn approve(&self, id: &str, reason: &str, grant_secs: Option<u64>) -> (u16, Value) {
        let mut body = json!({ "reason": reason });
        if let Some(s) = grant_secs {
            body["grant_secs"] = json!(s);
        }
        self.post(&format!("/v1/requests/{id}/approve"), &body)
    }

    /// Approve, asserting 200; returns the request as the API shows it afterwards.
    pub fn approve_ok(&self, id: &str, reason: &str, grant_secs: Option<u64>) -> Value {
        let (status, v) = self.approve(id, reason, grant_secs);
        assert_eq!(status, 200, "approve {id}: {v}");
        v
    }

    pub fn deny(&self, id: &str, reason: &str) -> (u16, Value) {
        self.post(
            &format!("/v1/requests/{id}/deny"),
            &json!({ "reason": reason }),
        )
    }

    pub fn deny_ok(&self, id: &str, reason: &str) -> Value {
        let (status, v) = self.deny(id, reason);
        assert_eq!(status, 200, "deny {id}: {v}");
        v
    }

    /// `GET /v1/requests/{id}`, asserting 200.
    pub fn request(&self, id: &str) -> Value {
        self.get_ok(&format!("/v1/requests/{id}"))
    }

    /// Pending requests of `user` (all users when `None`).
    pub fn pending(&self, user: Option<&str>) -> Vec<Value> {
        let v = self.get_ok("/v1/requests?state=pending");
        let all = v
            .as_array()
            .unwrap_or_else(|| panic!("GET /v1/requests: not an array: {v}"));
        all.iter()
            .filter(|r| user.is_none_or(|u| r["user"] == u))
            .cloned()
            .collect()
    }

    /// Live grants (`GET /v1/grants`).
    pub fn grants(&self) -> Vec<Value> {
        let v = self.get_ok("/v1/grants");
        v.as_array()
            .unwrap_or_else(|| panic!("GET /v1/grants: not an array: {v}"))
            .clone()
    }

    /// Polls until request `id` is in `state`; returns it.
    pub fn wait_state(&self, id: &str, state: &str) -> Value {
        poll(&format!("request {id} to be {state}"), || {
            let r = self.request(id);
            if r["state"] == state {
                Ok(r)
            } else {
                Err(format!("last seen: {r}"))
            }
        })
    }
}

/// Polls `f` every 20 ms until it returns `Ok`; after [`POLL`] panics with `what` and the
/// last `Err` (what was seen instead).
pub fn poll<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + POLL;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {POLL:?} waiting for {what}; {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Polls `GET /v1/requests?state=pending` until `user` has a pending request; returns it
/// (the oldest, if there are several).
pub fn wait_for_pending(api: &Api, user: &str) -> Value {
    wait_for_pending_n(api, user, 1).remove(0)
}

/// Polls until `user` has at least `n` pending requests; returns them all, oldest first.
pub fn wait_for_pending_n(api: &Api, user: &str, n: usize) -> Vec<Value> {
    poll(&format!("{n} pending request(s) of {user}"), || {
        let p = api.pending(Some(user));
        if p.len() >= n {
            Ok(p)
        } else {
            Err(format!("{} pending", p.len()))
        }
    })
}

/// The `id`s of a JSON list (requests, grants, sessions); panics naming `what` if `v` is not
/// a list.
pub fn ids(v: &Value, what: &str) -> std::collections::BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: not an array: {v}"))
        .iter()
        .map(|item| item["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Asserts an API error: the status, and a JSON body `{"error": "<non-empty text>"}`.
pub fn assert_error(what: &str, got: &(u16, Value), status: u16) {
    let (code, body) = got;
    assert_eq!(
        *code, status,
        "{what}: expected HTTP {status}, got {code}: {body}"
    );
    let msg = body.get("error").and_then(Value::as_str);
    assert!(
        body.is_object() && msg.is_some_and(|m| !m.is_empty()),
        "{what}: error body is not {{\"error\":\"…\"}}: {body}"
    );
}

/// The request id in a hold notice `jitgate: held for approval, request <ID> (rule "<name>")`.
pub fn held_id(notice: &str) -> Option<String> {
    let rest = notice.split("held for approval, request ").nth(1)?;
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The exact notice text for request `id` held by `rule`.
pub fn held_notice(id: &str, rule: &str) -> String {
    format!("jitgate: held for approval, request {id} (rule \"{rule}\")")
}

/// Runs `sql` as alice and reports whether it was held (a new pending request, which bob
/// then denies) or finished without one.
pub async fn held_or_ran(fx: &Fixture, s: &mut Session, sql: &str) -> Result<String, SimpleResult> {
    let h = s.spawn_simple(sql);
    let held = poll(&format!("{sql} to be held or to finish"), || {
        if let Some(r) = fx.bob.pending(Some(ALICE)).first() {
            Ok(Some(r["id"].as_str().unwrap().to_string()))
        } else if h.is_finished() {
            Ok(None)
        } else {
            Err("neither held nor finished".into())
        }
    });
    match held {
        Some(id) => {
            assert_eq!(held_id(&s.notice().await).as_deref(), Some(id.as_str()));
            fx.bob.deny_ok(&id, "outside the grant");
            assert_eq!(failure(finish(h).await).0, "42501");
            Ok(id)
        }
        None => Err(finish(h).await),
    }
}

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `[[users]]` table with optional password and token.
fn user_toml(name: &str, group: &str, password: Option<&str>, token: Option<&str>) -> String {
    let mut t = format!(
        "[[users]]\nname = {}\ngroups = [{}]\n",
        toml_str(name),
        toml_str(group)
    );
    if let Some(p) = password {
        t.push_str(&format!("password = {}\n", toml_str(&hash_password(p))));
    }
    if let Some(tok) = token {
        t.push_str(&format!("api_token_sha256 = \"{}\"\n", sha256_hex(tok)));
    }
    t
}

/// The approvals fixture: a fresh database with tables `t(id, v)` (rows 1..=`rows`, v = 0),
/// `t2` (same) and `log(n)`, all owned by `app`; and a jitgate with users alice (dev, password
/// and token), bob and carol (sre, tokens), dave (dev, token), audrey (security, token), with
/// `[api] auditors = ["group:sre"]` unless [`Fixture::with_auditors`] says otherwise, and the
/// rules
/// - "reads pass": read → allow;
/// - "log writes pass": writes touching only `public.log` → allow;
/// - "two for ddl": ddl → review by group:sre, 2 approvals;
/// - "writes need an SRE": write → review by group:sre, `hold_timeout`, max_grant 30m.
pub struct Fixture {
    pub env: Env,
    /// bob's view of the API (an approver).
    pub bob: Api,
    pub carol: Api,
    pub alice: Api,
    pub dave: Api,
    /// audrey (group security): an auditor only when `with_auditors` names her.
    pub audrey: Api,
}

impl Fixture {
    pub fn new(hold_timeout: &str, rows: u32) -> Fixture {
        Fixture::with(hold_timeout, rows, |b| b)
    }

    /// Like [`Fixture::new`], letting the test add server keys or raw TOML (webhooks).
    pub fn with(
        hold_timeout: &str,
        rows: u32,
        adjust: impl FnOnce(JitgateBuilder) -> JitgateBuilder,
    ) -> Fixture {
        Fixture::with_auditors(hold_timeout, rows, &["group:sre"], adjust)
    }

    /// Like [`Fixture::with`], with `[api] auditors` set to `auditors`.
    pub fn with_auditors(
        hold_timeout: &str,
        rows: u32,
        auditors: &[&str],
        adjust: impl FnOnce(JitgateBuilder) -> JitgateBuilder,
    ) -> Fixture {
        let (db, builder) = Fixture::builder(hold_timeout, rows, auditors);
        Fixture::around(adjust(builder).start(), db)
    }

    /// The fixture's fresh database and its jitgate's builder, not started (replicas start
    /// several from one).
    pub fn builder(hold_timeout: &str, rows: u32, auditors: &[&str]) -> (String, JitgateBuilder) {
        let cluster = PgCluster::shared();
        let db = cluster.fresh_database("app");
        cluster.superuser_psql_db(
            &db,
            &format!(
                "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);\n\
                 CREATE TABLE t2 (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);\n\
                 CREATE TABLE log (n int);\n\
                 INSERT INTO t SELECT g FROM generate_series(1, {rows}) g;\n\
                 INSERT INTO t2 SELECT g FROM generate_series(1, {rows}) g;\n\
                 ALTER TABLE t OWNER TO app; ALTER TABLE t2 OWNER TO app;\n\
                 ALTER TABLE log OWNER TO app;\n\
                 ANALYZE t; ANALYZE t2;"
            ),
        );
        let users = [
            user_toml(ALICE, "dev", Some(ALICE_PASSWORD), Some(ALICE_TOKEN)),
            user_toml("bob", "sre", None, Some(BOB_TOKEN)),
            user_toml("carol", "sre", None, Some(CAROL_TOKEN)),
            user_toml("dave", "dev", None, Some(DAVE_TOKEN)),
            user_toml("audrey", "security", None, Some(AUDITOR_TOKEN)),
            format!(
                "[api]\nauditors = [{}]\n",
                auditors
                    .iter()
                    .map(|a| toml_str(a))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ]
        .join("\n");
        let builder = JitgateBuilder::new()
            .target(PgTarget::on_cluster(APP_TARGET, cluster, &db, "app"))
            .rule("name = \"reads pass\"\nclasses = [\"read\"]\naction = \"allow\"")
            .rule(
                "name = \"log writes pass\"\nclasses = [\"write\"]\ntables = [\"public.log\"]\n\
                 action = \"allow\"",
            )
            .rule(&format!(
                "name = \"{DDL_RULE}\"\nclasses = [\"ddl\"]\naction = \"review\"\n\
                 approvers = [\"group:sre\"]\napprovals_required = 2"
            ))
            .rule(&format!(
                "name = \"{WRITE_RULE}\"\nclasses = [\"write\"]\naction = \"review\"\n\
                 approvers = [\"group:sre\"]\nhold_timeout = {}\nmax_grant = \"30m\"",
                toml_str(hold_timeout)
            ))
            .raw_toml(&users);
        (db, builder)
    }

    /// The fixture around a started jitgate whose target database is `db`.
    pub fn around(jg: crate::support::Jitgate, db: String) -> Fixture {
        let addr = jg.api_addr();
        Fixture {
            env: Env {
                cluster: PgCluster::shared(),
                db,
                jg,
            },
            bob: Api::new(addr, BOB_TOKEN),
            carol: Api::new(addr, CAROL_TOKEN),
            alice: Api::new(addr, ALICE_TOKEN),
            dave: Api::new(addr, DAVE_TOKEN),
            audrey: Api::new(addr, AUDITOR_TOKEN),
        }
    }

    /// Superuser query in the fixture's database (bypasses the proxy); trimmed output.
    pub fn sql(&self, sql: &str) -> String {
        self.env.cluster.superuser_psql_db(&self.env.db, sql)
    }

    /// `v` of row `id` in `table`, or `None` if the row is gone.
    pub fn row(&self, table: &str, id: i32) -> Option<i32> {
        let out = self.sql(&format!("SELECT v FROM {table} WHERE id = {id};"));
        (!out.is_empty()).then(|| out.parse().expect("an int"))
    }
}

impl Fixture {
    /// Connects alice with tokio-postgres (no TLS).
    pub async fn alice_session(&self) -> Session {
        let (client, messages) = pg_connect_with_messages(&self.env.alice_tokio())
            .await
            .expect("tokio-postgres connect as alice through jitgate");
        Session {
            client: Arc::new(client),
            messages,
        }
    }
}
