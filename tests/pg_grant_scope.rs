//! A grant covers what the approver saw (issue 12, finding 7): by default the approved
//! statement with other literal values on the same tables; `--scope tables` widens it to the
//! class on those tables, but never to a sequence named in a literal. Checked on the
//! database: after each refused attempt the rows and the sequence are as they were.

#[path = "support/api.rs"]
mod api;
mod support;

use std::time::Duration;

use api::{BOB_TOKEN, Fixture, affected, finish, held_id, held_or_ran};
use serde_json::json;
use support::{jitgate_cmd, output_text, run_timeout};

/// The balances of accounts 1..=10, in id order.
fn balances(fx: &Fixture) -> String {
    fx.sql("SELECT string_agg(balance::text, ',' ORDER BY id) FROM accounts;")
}

fn sequence(fx: &Fixture) -> String {
    fx.sql("SELECT last_value FROM s;")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_covers_the_approved_shape_and_scope_tables_the_tables() {
    let fx = Fixture::new("20s", 10);
    fx.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);\n\
         INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g;\n\
         CREATE SEQUENCE s; ALTER TABLE accounts OWNER TO app; ALTER SEQUENCE s OWNER TO app;",
    );
    let mut s = fx.alice_session().await;

    // Approved with a 10-minute grant, default scope.
    let h = s.spawn_simple("UPDATE accounts SET balance = 1 WHERE id = 2");
    let id = held_id(&s.notice().await).expect("request id");
    fx.bob.approve_ok(&id, "fix row 2", Some(600));
    assert_eq!(affected(&finish(h).await.expect("approved")), Some(1));
    let grants = fx.bob.grants();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["scope"], "shape", "{}", grants[0]);
    assert_eq!(
        grants[0]["statement"],
        "UPDATE accounts SET balance = 1 WHERE id = 2"
    );

    // The same statement with other values runs without a request.
    let r = finish(s.spawn_simple("UPDATE accounts SET balance = 7 WHERE id = 3")).await;
    assert_eq!(affected(&r.expect("covered by the grant")), Some(1));
    assert_eq!(balances(&fx), "100,1,7,100,100,100,100,100,100,100");

    // Another statement on the same table, and a sequence change, are held (bob denies).
    let before = (balances(&fx), sequence(&fx));
    for attempt in [
        "DELETE FROM accounts WHERE id = 5",
        "SELECT setval('s', 424242) FROM accounts",
    ] {
        let r = held_or_ran(&fx, &mut s, attempt).await;
        assert!(
            r.is_ok(),
            "{attempt} ran under a grant for an UPDATE of one shape; accounts now {}, s = {}",
            balances(&fx),
            sequence(&fx)
        );
    }
    assert_eq!(
        (balances(&fx), sequence(&fx)),
        before,
        "rows and sequence intact"
    );

    // A grant with --scope tables (through the CLI) covers another write on accounts…
    let h = s.spawn_simple("UPDATE accounts SET balance = 2 WHERE id = 4 AND balance = 100");
    let id = held_id(&s.notice().await).expect("request id");
    let mut cli = jitgate_cmd();
    cli.env("JITGATE_URL", fx.env.jg.api_url())
        .env("JITGATE_TOKEN", BOB_TOKEN)
        .args(["approve", &id, "--grant", "10m", "--scope", "tables"]);
    let out = run_timeout(&mut cli, None, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(affected(&finish(h).await.expect("approved")), Some(1));
    let tables_grant = fx
        .bob
        .grants()
        .into_iter()
        .find(|g| g["request"] == id.as_str())
        .expect("the CLI made a grant");
    assert_eq!(tables_grant["scope"], "tables", "{tables_grant}");
    let mut cli = jitgate_cmd();
    cli.env("JITGATE_URL", fx.env.jg.api_url())
        .env("JITGATE_TOKEN", BOB_TOKEN)
        .arg("grants");
    let listed = output_text(&run_timeout(&mut cli, None, Duration::from_secs(60)));
    assert!(
        listed.contains("SCOPE") && listed.contains("tables") && listed.contains("shape"),
        "{listed}"
    );
    let r = finish(s.spawn_simple("UPDATE accounts SET balance = balance + 1 WHERE id IN (9, 10)"))
        .await;
    assert_eq!(affected(&r.expect("covered by the tables grant")), Some(2));
    assert_eq!(balances(&fx), "100,1,7,2,100,100,100,100,101,101");

    // …but never a sequence named in a literal.
    let r = held_or_ran(&fx, &mut s, "SELECT setval('s', 424242) FROM accounts").await;
    assert!(
        r.is_ok(),
        "setval ran under a tables grant; s = {}",
        sequence(&fx)
    );
    assert_eq!(sequence(&fx), before.1, "the sequence is untouched");

    // scope tables on a statement no table list can bound is refused at approval (400).
    let h = s.spawn_simple("SELECT setval('s', 5) FROM accounts");
    let id = held_id(&s.notice().await).expect("request id");
    let (status, body) = fx.bob.post(
        &format!("/v1/requests/{id}/approve"),
        &json!({"reason": "x", "grant_secs": 60, "scope": "tables"}),
    );
    assert_eq!(status, 400, "{body}");
    fx.bob.deny_ok(&id, "no");
    assert!(finish(h).await.is_err());
    assert_eq!(sequence(&fx), before.1);
}
