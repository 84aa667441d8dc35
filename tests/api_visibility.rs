//! Who may see what through the control API (issue 18), against a real jitgate and a real
//! PostgreSQL: every route × {owner, approver, auditor, other user, no token}.
//!
//! The cast: alice (dev) owns a session with an approved request (and its grant) and a pending
//! DDL request, and a second session with reads only; frank (dev) owns a session with a pending
//! DELETE; bob (sre) approves both rules; audrey (security) is the only auditor; dave (dev) owns
//! nothing. An item the caller may not see must be answered exactly like one that does not
//! exist, and lists must leave it out before any limit.

#[path = "support/api.rs"]
mod api;
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use api::{
    Api, BOB_TOKEN, Fixture, RequestStream, Session, affected, assert_error, failure, finish,
    held_id, ids, poll, sha256_hex,
};
use support::jitgate::{hash_password, toml_str};
use support::{ALICE, APP_TARGET, pg_connect_with_messages};

const FRANK_PASSWORD: &str = "frank-pw-3Lk";
const FRANK_TOKEN: &str = "frank-token";
const MISSING: &str = "does-not-exist";

/// The ids every expectation below is written in.
struct Items {
    /// alice's first session: `approved` (with `grant`) and `pending_ddl`.
    alice_held: String,
    /// alice's second session: reads only.
    alice_reads: String,
    /// frank's session: `frank_pending`.
    frank: String,
    approved: String,
    pending_ddl: String,
    frank_pending: String,
    grant: String,
}

/// One caller of the matrix and what it must see.
struct Caller {
    name: &'static str,
    api: Api,
    requests: Vec<String>,
    grants: Vec<String>,
    sessions: Vec<String>,
    auditor: bool,
}

fn set(items: &[String]) -> BTreeSet<String> {
    items.iter().cloned().collect()
}

async fn frank_session(fx: &Fixture) -> Session {
    let conninfo = format!(
        "{} password={FRANK_PASSWORD}",
        fx.env.jg.conninfo("frank", APP_TARGET)
    );
    let (client, messages) = pg_connect_with_messages(&conninfo)
        .await
        .expect("tokio-postgres connect as frank through jitgate");
    Session {
        client: Arc::new(client),
        messages,
    }
}

/// Builds the cast's items; opens the event streams before the first request so they can be
/// checked for what they carried.
async fn setup(
    fx: &Fixture,
    alice_stream: &mut RequestStream,
    bob_stream: &mut RequestStream,
) -> Items {
    let mut alice = fx.alice_session().await;
    let h = alice.spawn_simple("DELETE FROM t WHERE id = 1");
    let approved = held_id(&alice.notice().await).expect("request id");
    let grant = fx.bob.approve_ok(&approved, "window", Some(600))["grant"]
        .as_str()
        .expect("a grant id")
        .to_string();
    assert_eq!(affected(&finish(h).await.expect("approved")), Some(1));
    let alice_ddl = alice.spawn_simple("CREATE TABLE made_by_alice (i int)");
    let pending_ddl = held_id(&alice.notice().await).expect("request id");

    let alice_reads = fx.alice_session().await;
    assert_eq!(alice_reads.value("SELECT count(*) FROM t").await, "9");

    let mut frank = frank_session(fx).await;
    let frank_delete = frank.spawn_simple("DELETE FROM t WHERE id = 5");
    let frank_pending = held_id(&frank.notice().await).expect("request id");

    // Streams: bob hears frank's request; alice hears her own DDL request (created before
    // frank's) and, after it, nothing about frank's.
    bob_stream.read_until(&frank_pending);
    bob_stream.read_until(&pending_ddl);
    alice_stream.read_until(&pending_ddl);

    let session_of = |id: &str| {
        fx.audrey.request(id)["session"]
            .as_str()
            .expect("a session id")
            .to_string()
    };
    let alice_held = session_of(&approved);
    let frank_session_id = session_of(&frank_pending);
    let alice_reads_id = poll("alice's read-only session in the trail", || {
        let list = fx.audrey.get_ok(&format!("/v1/sessions?user={ALICE}"));
        ids(&list, "sessions")
            .into_iter()
            .find(|id| *id != alice_held)
            .ok_or_else(|| format!("{list}"))
    });
    poll("frank's session in the trail", || {
        let all = ids(&fx.audrey.get_ok("/v1/sessions"), "sessions");
        if all.contains(&frank_session_id) {
            Ok(())
        } else {
            Err(format!("{all:?}"))
        }
    });
    // Events are written behind the statements: wait until the last one is in.
    poll("frank's request in the exported trail", || {
        let (status, body) = fx.audrey.get("/v1/audit/export?since=0");
        match body.as_str() {
            Some(text) if status == 200 && text.contains(&frank_pending) => Ok(()),
            _ => Err(format!("{status} {body}")),
        }
    });
    // Keep the held statements running: the ddl is denied and frank's approved at the end.
    tokio::spawn(async move {
        let _ = (
            alice_ddl.await,
            frank_delete.await,
            alice_reads,
            alice,
            frank,
        );
    });
    Items {
        alice_held,
        alice_reads: alice_reads_id,
        frank: frank_session_id,
        approved,
        pending_ddl,
        frank_pending,
        grant,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_each_caller_with_only_what_they_may_see() {
    let frank = format!(
        "[[users]]\nname = \"frank\"\ngroups = [\"dev\"]\npassword = {}\napi_token_sha256 = \"{}\"\n",
        toml_str(&hash_password(FRANK_PASSWORD)),
        sha256_hex(FRANK_TOKEN),
    );
    let fx = Fixture::with_auditors("120s", 10, &["group:security"], |b| b.raw_toml(&frank));
    let addr = fx.env.jg.api_addr();
    let mut alice_stream = RequestStream::open(addr, api::ALICE_TOKEN);
    let mut bob_stream = RequestStream::open(addr, BOB_TOKEN);
    let it = setup(&fx, &mut alice_stream, &mut bob_stream).await;

    let all_requests = vec![
        it.approved.clone(),
        it.pending_ddl.clone(),
        it.frank_pending.clone(),
    ];
    let all_sessions = vec![
        it.alice_held.clone(),
        it.alice_reads.clone(),
        it.frank.clone(),
    ];
    let callers = [
        Caller {
            name: "alice (owner)",
            api: fx.alice.clone(),
            requests: vec![it.approved.clone(), it.pending_ddl.clone()],
            grants: vec![it.grant.clone()],
            sessions: vec![it.alice_held.clone(), it.alice_reads.clone()],
            auditor: false,
        },
        Caller {
            name: "frank (owner of his own only)",
            api: fx.alice.with_token(Some(FRANK_TOKEN)),
            requests: vec![it.frank_pending.clone()],
            grants: vec![],
            sessions: vec![it.frank.clone()],
            auditor: false,
        },
        Caller {
            name: "bob (approver)",
            api: fx.bob.clone(),
            requests: all_requests.clone(),
            grants: vec![it.grant.clone()],
            sessions: vec![it.alice_held.clone(), it.frank.clone()],
            auditor: false,
        },
        Caller {
            name: "audrey (auditor)",
            api: fx.audrey.clone(),
            requests: all_requests.clone(),
            grants: vec![it.grant.clone()],
            sessions: all_sessions.clone(),
            auditor: true,
        },
        Caller {
            name: "dave (other user)",
            api: fx.dave.clone(),
            requests: vec![],
            grants: vec![],
            sessions: vec![],
            auditor: false,
        },
    ];

    for c in &callers {
        let who = c.name;
        // Lists: exactly what the caller may see, whatever the filters.
        let got = ids(&c.api.get_ok("/v1/requests"), who);
        assert_eq!(got, set(&c.requests), "{who}: GET /v1/requests");
        let pending: Vec<String> = c
            .requests
            .iter()
            .filter(|id| **id != it.approved)
            .cloned()
            .collect();
        let got = ids(&c.api.get_ok("/v1/requests?state=pending"), who);
        assert_eq!(got, set(&pending), "{who}: pending requests");
        let got = ids(&c.api.get_ok("/v1/grants"), who);
        assert_eq!(got, set(&c.grants), "{who}: GET /v1/grants");
        let got = ids(&c.api.get_ok("/v1/sessions"), who);
        assert_eq!(got, set(&c.sessions), "{who}: GET /v1/sessions");
        let got = ids(&c.api.get_ok("/v1/sessions?user=frank"), who);
        let franks: Vec<String> = c
            .sessions
            .iter()
            .filter(|s| **s == it.frank)
            .cloned()
            .collect();
        assert_eq!(got, set(&franks), "{who}: sessions of frank");
        // The limit applies to what the caller sees: the newest of theirs, not an empty page
        // because someone else's session is newer (frank's is the newest of all).
        let newest = c.sessions.iter().find(|s| {
            **s == it.frank || (**s == it.alice_reads && !c.sessions.contains(&it.frank))
        });
        let got = ids(&c.api.get_ok("/v1/sessions?limit=1"), who);
        assert_eq!(
            got,
            newest.into_iter().cloned().collect(),
            "{who}: sessions?limit=1"
        );

        // Single items: 200 when seen, else the very answer a missing id gets.
        let missing_request = c.api.get(&format!("/v1/requests/{MISSING}"));
        assert_error(&format!("{who}: missing request"), &missing_request, 404);
        for id in &all_requests {
            let got = c.api.get(&format!("/v1/requests/{id}"));
            if c.requests.contains(id) {
                assert_eq!(got.0, 200, "{who}: GET request {id}: {}", got.1);
                assert_eq!(got.1["id"], id.as_str());
            } else {
                assert_eq!(got, missing_request, "{who}: GET request {id} (not theirs)");
            }
        }
        let missing_session = c.api.get(&format!("/v1/sessions/{MISSING}"));
        assert_error(&format!("{who}: missing session"), &missing_session, 404);
        for id in &all_sessions {
            let seen = c.sessions.contains(id);
            for route in ["", "/events", "/recording"] {
                let got = c.api.get(&format!("/v1/sessions/{id}{route}"));
                let what = format!("{who}: GET session {id}{route}");
                if !seen {
                    assert_eq!(got, missing_session, "{what} (not theirs)");
                } else if route == "/recording" {
                    // Postgres sessions have no terminal recording: the answer says so,
                    // which only a caller who sees the session may learn.
                    assert_error(&what, &got, 404);
                    assert!(
                        got.1["error"]
                            .as_str()
                            .is_some_and(|e| e.contains("recording")),
                        "{what}: {}",
                        got.1
                    );
                } else {
                    assert_eq!(got.0, 200, "{what}: {}", got.1);
                }
            }
        }
        let events = c.api.get(&format!("/v1/sessions/{}/events", it.alice_held));
        if c.sessions.contains(&it.alice_held) {
            let text = events.1.to_string();
            assert!(text.contains(&it.approved), "{who}: events: {text}");
        }

        // The whole trail: auditors only.
        let export = c.api.get("/v1/audit/export?since=0");
        let verify = c.api.get("/v1/audit/verify");
        if c.auditor {
            assert_eq!(export.0, 200, "{who}: export");
            let text = export.1.as_str().unwrap_or_default().to_string();
            assert!(
                text.contains(&it.frank) && text.contains(&it.alice_held),
                "{who}: the export holds everyone's sessions: {text}"
            );
            assert_eq!(verify.0, 200, "{who}: verify: {}", verify.1);
            assert_eq!(verify.1["ok"], true);
        } else {
            assert_error(&format!("{who}: export"), &export, 403);
            assert_error(&format!("{who}: verify"), &verify, 403);
        }
    }

    // No token: 401 on every route that needs one.
    let anonymous = fx.bob.with_token(None);
    let mut routes: Vec<(&str, String)> = [
        "/v1/requests",
        "/v1/requests/stream",
        "/v1/grants",
        "/v1/sessions",
        "/v1/audit/export",
        "/v1/audit/verify",
    ]
    .iter()
    .map(|p| ("GET", p.to_string()))
    .collect();
    routes.push(("GET", format!("/v1/requests/{}", it.approved)));
    routes.push(("POST", format!("/v1/requests/{}/approve", it.frank_pending)));
    routes.push(("POST", format!("/v1/requests/{}/deny", it.frank_pending)));
    routes.push(("DELETE", format!("/v1/grants/{}", it.grant)));
    for route in ["", "/events", "/recording"] {
        routes.push(("GET", format!("/v1/sessions/{}{route}", it.alice_held)));
    }
    for (method, path) in &routes {
        let body = (*method == "POST").then_some("{\"reason\":\"x\"}");
        let got = anonymous.call(method, path, body);
        assert_error(&format!("no token: {method} {path}"), &got, 401);
    }

    // Deciding: a request one does not see is missing; one seen but not one's to decide is
    // 403; nothing reaches the database until an approver decides.
    let approve = |a: &Api| a.approve(&it.frank_pending, "let me", None);
    assert_error("alice approves frank's", &approve(&fx.alice), 404);
    assert_error("dave approves frank's", &approve(&fx.dave), 404);
    assert_error("auditor approves", &approve(&fx.audrey), 403);
    let frank_api = fx.alice.with_token(Some(FRANK_TOKEN));
    assert_error("frank approves his own", &approve(&frank_api), 403);
    assert_error(
        "dave denies alice's",
        &fx.dave.deny(&it.pending_ddl, "no"),
        404,
    );
    assert_error(
        "frank denies alice's",
        &frank_api.deny(&it.pending_ddl, "no"),
        404,
    );
    assert_error(
        "auditor denies",
        &fx.audrey.deny(&it.pending_ddl, "no"),
        403,
    );
    assert_error(
        "alice denies her own",
        &fx.alice.deny(&it.pending_ddl, "no"),
        403,
    );
    assert_eq!(
        fx.row("t", 5),
        Some(0),
        "refused decisions left frank's row"
    );
    assert_eq!(fx.bob.request(&it.frank_pending)["state"], "pending");
    fx.bob.approve_ok(&it.frank_pending, "ok", None);
    poll("frank's DELETE to run", || match fx.row("t", 5) {
        None => Ok(()),
        Some(v) => Err(format!("row 5 still there ({v})")),
    });
    fx.carol.deny_ok(&it.pending_ddl, "not today");
    assert_eq!(
        fx.sql("SELECT count(*) FROM pg_class WHERE relname = 'made_by_alice'"),
        "0",
        "the denied DDL never ran"
    );

    // Revoking: only the grantee or an approver; others do not even see the grant.
    let path = format!("/v1/grants/{}", it.grant);
    assert_error("dave revokes", &fx.dave.delete(&path), 404);
    assert_error("frank revokes", &frank_api.delete(&path), 404);
    assert_error("auditor revokes", &fx.audrey.delete(&path), 403);
    assert_error(
        "missing grant",
        &fx.dave.delete(&format!("/v1/grants/{MISSING}")),
        404,
    );
    assert_eq!(fx.bob.grants().len(), 1, "refused revokes left the grant");
    let mut alice = fx.alice_session().await;
    let r = finish(alice.spawn_simple("DELETE FROM t WHERE id = 2")).await;
    assert_eq!(
        affected(&r.expect("the grant still covers alice's delete")),
        Some(1)
    );
    let (status, body) = fx.alice.delete(&path);
    assert_eq!(status, 200, "the grantee revokes: {body}");
    let h = alice.spawn_simple("DELETE FROM t WHERE id = 3");
    let again = held_id(&alice.notice().await).expect("held again after the revoke");
    assert_eq!(fx.row("t", 3), Some(0), "nothing ran while held");
    // alice's stream carried her own new request, and nothing of frank's (created and
    // approved before it, so it would have come first).
    let heard = alice_stream.read_until(&again);
    assert!(
        !heard.contains(&it.frank_pending) && heard.contains(&it.pending_ddl),
        "alice's stream:\n{heard}"
    );
    assert!(bob_stream.read_until(&again).contains(&it.frank_pending));
    fx.bob.deny_ok(&again, "done");
    let (state, _) = failure(finish(h).await);
    assert_eq!(state, "42501");
}
