//! The control API and its CLI around live holds: grants (scope, expiry, revoke), two-of-two
//! approval, every refusal status with its JSON error body, and `jitgate requests | approve |
//! deny | grants | revoke`.

#[path = "support/api.rs"]
mod api;
mod support;

use std::process::Output;
use std::time::Duration;

use api::{
    ALICE_TOKEN, BOB_TOKEN, DDL_RULE, Fixture, affected, assert_error, failure, finish, held_id,
    held_notice, held_or_ran, poll, wait_for_pending,
};
use serde_json::{Value, json};
use support::{ALICE, free_port, jitgate_cmd, output_text, run_timeout};

/// A request held for alice: spawns `sql`, returns the task and the request id.
macro_rules! hold {
    ($s:expr, $sql:expr) => {{
        let h = $s.spawn_simple($sql);
        let id = held_id(&$s.notice().await).expect("request id in the hold notice");
        (h, id)
    }};
}

fn request_count(fx: &Fixture) -> usize {
    fx.bob.get_ok("/v1/requests").as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn grant_lets_matching_statements_pass_until_revoked_or_expired() {
    let fx = Fixture::new("20s", 10);
    let mut s = fx.alice_session().await;
    let (h, id) = hold!(s, "DELETE FROM t WHERE id = 1");
    // Longer than the rule's max_grant (30m): refused, still pending.
    assert_error(
        "grant over max_grant",
        &fx.bob.approve(&id, "long", Some(3600)),
        400,
    );
    // Scope tables: any write to t (the default, the same statement shape, is in
    // tests/pg_grant_scope.rs).
    let (status, approved) = fx.bob.post(
        &format!("/v1/requests/{id}/approve"),
        &json!({"reason": "window", "grant_secs": 600, "scope": "tables"}),
    );
    assert_eq!(status, 200, "{approved}");
    let grant = approved["grant"].as_str().expect("grant id").to_string();
    assert_eq!(affected(&finish(h).await.expect("approved")), Some(1));
    let grants = fx.bob.grants();
    assert_eq!(grants.len(), 1, "{grants:?}");
    let g = &grants[0];
    assert_eq!(g["id"], grant.as_str(), "{g}");
    assert_eq!(g["user"], ALICE, "{g}");
    assert_eq!(g["target"], "app-db", "{g}");
    assert_eq!(g["class"], "write", "{g}");
    assert_eq!(g["tables"], json!(["public.t"]), "{g}");
    assert_eq!(g["scope"], "tables", "{g}");
    assert_eq!(g["request"], id.as_str(), "{g}");

    // Same user, target, class and table: no hold, no new request.
    let r = finish(s.spawn_simple("DELETE FROM t WHERE id = 2")).await;
    assert_eq!(affected(&r.expect("granted DELETE")), Some(1));
    let r = finish(s.spawn_simple("UPDATE t SET v = 9 WHERE id = 3")).await;
    assert_eq!(affected(&r.expect("granted UPDATE")), Some(1));
    assert_eq!(s.notices_so_far(), Vec::<String>::new());
    assert_eq!(request_count(&fx), 1);
    assert_eq!(fx.row("t", 2), None);
    assert_eq!(fx.row("t", 3), Some(9));

    // Another table is outside the grant.
    let (h, other) = hold!(s, "DELETE FROM t2 WHERE id = 1");
    fx.bob.deny_ok(&other, "not t2");
    assert_eq!(failure(finish(h).await).0, "42501");

    // Revoke: at once, the next DELETE is held again.
    let (status, revoked) = fx.bob.delete(&format!("/v1/grants/{grant}"));
    assert_eq!(status, 200, "{revoked}");
    assert!(fx.bob.grants().is_empty());
    let (h, again) = hold!(s, "DELETE FROM t WHERE id = 4");
    fx.bob.deny_ok(&again, "revoked");
    assert_eq!(failure(finish(h).await).0, "42501");
    assert_eq!(fx.row("t", 4), Some(0));
    assert_error(
        "revoke twice",
        &fx.bob.delete(&format!("/v1/grants/{grant}")),
        404,
    );

    // Expiry: a 1-second grant; once it is no longer listed, the same DELETE is held.
    let (h, short) = hold!(s, "DELETE FROM t WHERE id = 5");
    let g = fx.bob.approve_ok(&short, "briefly", Some(1))["grant"].clone();
    assert!(g.is_string(), "no grant made: {g}");
    finish(h).await.expect("approved");
    poll("the 1 s grant to expire", || {
        let live = fx.bob.grants();
        if live.is_empty() {
            Ok(())
        } else {
            Err(format!("live: {live:?}"))
        }
    });
    let (h, after) = hold!(s, "DELETE FROM t WHERE id = 6");
    fx.bob.deny_ok(&after, "expired");
    assert_eq!(failure(finish(h).await).0, "42501");
    assert_eq!(fx.row("t", 6), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_needs_two_distinct_approvers() {
    let fx = Fixture::new("20s", 10);
    let mut s = fx.alice_session().await;
    let h = s.spawn_simple("CREATE TABLE newt (a int)");
    let notice = s.notice().await;
    let id = held_id(&notice).expect("request id");
    assert_eq!(notice, held_notice(&id, DDL_RULE));
    let req = wait_for_pending(&fx.bob, ALICE);
    assert_eq!(req["class"], "ddl", "{req}");
    assert_eq!(req["approvals_required"], 2, "{req}");

    let one = fx.bob.approve_ok(&id, "one", None);
    assert_eq!(one["state"], "pending", "{one}");
    assert_eq!(one["approvals"].as_array().map(Vec::len), Some(1), "{one}");
    assert_error(
        "same approver twice",
        &fx.bob.approve(&id, "again", None),
        409,
    );
    assert_eq!(fx.bob.request(&id)["state"], "pending");
    assert!(!h.is_finished(), "the statement ran after one approval");
    assert_eq!(fx.sql("SELECT to_regclass('public.newt') IS NULL;"), "t");

    let two = fx.carol.approve_ok(&id, "two", None);
    assert_eq!(two["state"], "approved", "{two}");
    finish(h).await.expect("approved DDL");
    assert_eq!(fx.sql("SELECT to_regclass('public.newt') IS NULL;"), "f");

    // One denial ends a two-of-two request.
    let h = s.spawn_simple("DROP TABLE newt");
    let id = held_id(&s.notice().await).expect("request id");
    fx.bob.approve_ok(&id, "fine by me", None);
    let denied = fx.carol.deny_ok(&id, "not by me");
    assert_eq!(denied["state"], "denied", "{denied}");
    let (code, msg) = failure(finish(h).await);
    assert_eq!(code, "42501");
    assert!(msg.contains("not by me"), "{msg}");
    assert_eq!(fx.sql("SELECT to_regclass('public.newt') IS NULL;"), "f");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_have_the_right_status_and_a_json_error() {
    let fx = Fixture::new("20s", 10);
    let mut s = fx.alice_session().await;
    let (h, id) = hold!(s, "DELETE FROM t WHERE id = 1");
    let approve = format!("/v1/requests/{id}/approve");
    let deny = format!("/v1/requests/{id}/deny");
    let body = json!({"reason": "x"});

    let none = fx.bob.with_token(None);
    let wrong = fx.bob.with_token(Some("not-a-token"));
    for (who, api) in [("no token", &none), ("wrong token", &wrong)] {
        assert_error(who, &api.get("/v1/requests?state=pending"), 401);
        assert_error(who, &api.get(&format!("/v1/requests/{id}")), 401);
        assert_error(who, &api.post(&approve, &body), 401);
        assert_error(who, &api.post(&deny, &body), 401);
        assert_error(who, &api.get("/v1/grants"), 401);
        assert_error(who, &api.delete("/v1/grants/gnothing"), 401);
    }
    // A token's hash is not a token.
    let hash = fx.bob.with_token(Some(
        "d0cb2d9e10fd3c7c0e3bfa5cfe2a22ea41e6c1a5bdb7c84c4e2bd1a62c41ab11",
    ));
    assert_error("hash as token", &hash.get("/v1/requests"), 401);
    // No token needed for health.
    assert_eq!(none.get("/healthz").0, 200);

    assert_error("self-approval", &fx.alice.approve(&id, "me", None), 403);
    assert_error("self-denial", &fx.alice.deny(&id, "me"), 403);
    // dave may not see alice's request: answered as if it did not exist.
    assert_error("non-approver", &fx.dave.approve(&id, "dave", None), 404);
    assert_error("non-approver deny", &fx.dave.deny(&id, "dave"), 404);
    assert_eq!(fx.bob.request(&id)["state"], "pending");
    assert!(
        fx.bob.request(&id)["approvals"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );

    for path in [
        "/v1/requests/rnosuchthing",
        "/v1/requests/rnosuchthing/approve",
        "/v1/requests/rnosuchthing/deny",
        "/v1/grants/gnosuchthing",
    ] {
        let got = match path {
            p if p.ends_with("/approve") || p.ends_with("/deny") => fx.bob.post(p, &body),
            p if p.starts_with("/v1/grants") => fx.bob.delete(p),
            p => fx.bob.get(p),
        };
        assert_error(path, &got, 404);
    }

    fx.bob.approve_ok(&id, "ok", None);
    finish(h).await.expect("approved");
    assert_error("second decision", &fx.carol.deny(&id, "late"), 409);
    assert_error("second approval", &fx.carol.approve(&id, "late", None), 409);
    assert_error("approver again", &fx.bob.approve(&id, "again", None), 409);
    assert_eq!(fx.bob.request(&id)["state"], "approved");
}

/// `jitgate ARGS` with JITGATE_URL / JITGATE_TOKEN set (token `None`: unset).
fn cli(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = jitgate_cmd();
    cmd.env("JITGATE_URL", url).args(args);
    if let Some(t) = token {
        cmd.env("JITGATE_TOKEN", t);
    }
    run_timeout(&mut cmd, None, Duration::from_secs(60))
}

fn cli_ok(url: &str, args: &[&str]) -> String {
    let out = cli(url, Some(BOB_TOKEN), args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "jitgate {args:?}\n{}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_drives_holds_and_grants() {
    let fx = Fixture::new("20s", 10);
    let url = fx.env.jg.api_url();
    let mut s = fx.alice_session().await;

    let (h, id) = hold!(s, "DELETE FROM t WHERE id = 1");
    wait_for_pending(&fx.bob, ALICE);
    let table = cli_ok(&url, &["requests", "--state", "pending"]);
    let row = table
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{table}"));
    assert!(table.lines().next().unwrap().contains("ID"), "{table}");
    for cell in ["pending", "alice", "app-db", "write"] {
        assert!(row.contains(cell), "{cell} missing in {row:?}");
    }
    let json: Value = serde_json::from_str(&cli_ok(&url, &["requests", "--json"]))
        .expect("requests --json prints JSON");
    assert!(
        json.as_array()
            .is_some_and(|a| a.iter().any(|r| r["id"] == id.as_str()))
    );

    let out = cli_ok(&url, &["approve", &id, "--reason", "cli ok"]);
    assert!(out.contains(&id) && out.contains("approved"), "{out}");
    finish(h).await.expect("approved by the CLI");
    assert_eq!(fx.row("t", 1), None);
    let again = cli(
        &url,
        Some(BOB_TOKEN),
        &["approve", &id, "--reason", "again"],
    );
    assert_eq!(again.status.code(), Some(1), "{}", output_text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("409"),
        "{}",
        output_text(&again)
    );

    let (h, id) = hold!(s, "DELETE FROM t WHERE id = 2");
    let out = cli_ok(&url, &["deny", &id, "--reason", "cli says no"]);
    assert!(out.contains(&id) && out.contains("denied"), "{out}");
    let (code, msg) = failure(finish(h).await);
    assert_eq!(code, "42501");
    assert!(msg.contains("cli says no"), "{msg}");

    let (h, id) = hold!(s, "DELETE FROM t WHERE id = 3");
    let out = cli_ok(
        &url,
        &["approve", &id, "--grant", "10m", "--reason", "window"],
    );
    finish(h).await.expect("approved with a grant");
    let grant = fx.bob.request(&id)["grant"]
        .as_str()
        .expect("the CLI made a grant")
        .to_string();
    assert!(out.contains(&grant), "{out}");
    let listed = cli_ok(&url, &["grants"]);
    assert!(
        listed.contains(&grant) && listed.contains("public.t"),
        "{listed}"
    );
    let out = cli_ok(&url, &["revoke", &grant]);
    assert!(out.contains(&grant), "{out}");
    assert!(fx.bob.grants().is_empty());
    assert!(!cli_ok(&url, &["grants"]).contains(&grant));
    let gone = cli(&url, Some(BOB_TOKEN), &["revoke", &grant]);
    assert_eq!(gone.status.code(), Some(1), "{}", output_text(&gone));

    // Self-approval and a missing token are HTTP errors (1); no server at all is 2.
    let (h, id) = hold!(s, "DELETE FROM t WHERE id = 4");
    let own = cli(&url, Some(ALICE_TOKEN), &["approve", &id]);
    assert_eq!(own.status.code(), Some(1), "{}", output_text(&own));
    assert!(
        String::from_utf8_lossy(&own.stderr).contains("403"),
        "{}",
        output_text(&own)
    );
    let anon = cli(&url, None, &["requests"]);
    assert_eq!(anon.status.code(), Some(1), "{}", output_text(&anon));
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let down = cli(
        &nowhere,
        Some(BOB_TOKEN),
        &["requests", "--state", "pending"],
    );
    assert_eq!(down.status.code(), Some(2), "{}", output_text(&down));
    fx.bob.deny_ok(&id, "done");
    assert_eq!(failure(finish(h).await).0, "42501");
}

/// A live write grant for alice on `public.t` (approving a DELETE on t with grant_secs).
async fn grant_on_t(fx: &Fixture, s: &mut api::Session) -> String {
    let (h, id) = hold!(s, "DELETE FROM t WHERE id = 10");
    let g = fx.bob.approve_ok(&id, "window on t", Some(600))["grant"].clone();
    finish(h).await.expect("approved");
    g.as_str().expect("grant id").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn grant_does_not_cover_execute_of_a_statement_on_another_table() {
    let fx = Fixture::new("20s", 10);
    let mut s = fx.alice_session().await;
    // PREPARE runs nothing; an approver lets it through once (no grant).
    let (h, prep) = hold!(s, "PREPARE del_t2 AS DELETE FROM t2 WHERE id = 1");
    assert_eq!(fx.bob.request(&prep)["tables"], json!(["public.t2"]));
    fx.bob.approve_ok(&prep, "prepare only", None);
    finish(h).await.expect("PREPARE");
    grant_on_t(&fx, &mut s).await;
    // EXECUTE del_t2 deletes from public.t2: outside the grant's tables, so it must be held.
    let r = held_or_ran(&fx, &mut s, "EXECUTE del_t2").await;
    assert!(
        r.is_ok(),
        "EXECUTE of a DELETE on public.t2 ran without a hold under a grant for public.t \
         ({:?}); t2 row 1 now {:?}",
        r.err().map(|e| e.map(|m| affected(&m))),
        fx.row("t2", 1)
    );
    assert_eq!(fx.row("t2", 1), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn grant_does_not_cover_sequence_changes() {
    let fx = Fixture::new("20s", 10);
    fx.sql("CREATE SEQUENCE other_seq; ALTER SEQUENCE other_seq OWNER TO app;");
    let mut s = fx.alice_session().await;
    // Without a grant, setval is a held write.
    let held = held_or_ran(&fx, &mut s, "SELECT setval('other_seq', 42)").await;
    assert!(held.is_ok(), "setval was not held: {held:?}");
    grant_on_t(&fx, &mut s).await;
    // A grant for DELETEs on public.t says nothing about other_seq.
    let r = held_or_ran(&fx, &mut s, "SELECT setval('other_seq', 42)").await;
    assert!(
        r.is_ok(),
        "setval on another sequence ran without a hold under a grant for public.t; \
         other_seq is now {}",
        fx.sql("SELECT last_value FROM other_seq;")
    );
}
