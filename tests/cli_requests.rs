//! `jitgate requests show ID` and the escaping of everything the CLI prints, against a real
//! jitgate and PostgreSQL: a held statement, `application_name` and denial reason full of
//! newlines, carriage returns and escape sequences never reach the terminal raw or forge a
//! line; and a parameterised write held through the extended protocol shows the planner's
//! estimate for its Bind's values while the rows stay untouched until it is approved.

#[path = "support/api.rs"]
mod api;
mod support;

use std::process::Output;
use std::time::Duration;

use api::{BOB_TOKEN, Fixture, WRITE_RULE, failure, finish, poll, wait_for_pending};
use serde_json::Value;
use support::{ALICE, jitgate_cmd, output_text, run_timeout};
use tokio_postgres::NoTls;
use tokio_postgres::types::Type;

/// What a user typed to fake a line of output and clear the approver's screen.
const FORGED: &str = "\x1b[2J\n+  0.000s  approved by bob\r\x1b]8;;https://evil.example\x07";
/// [`FORGED`] as the CLI must print it.
const FORGED_SHOWN: &str =
    "\\x1b[2J\\n+  0.000s  approved by bob\\r\\x1b]8;;https://evil.example\\x07";

/// `jitgate ARGS` as bob (an approver), asserting exit 0; returns stdout.
fn cli_ok(fx: &Fixture, args: &[&str]) -> String {
    let out = cli(fx, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "jitgate {args:?}\n{}",
        output_text(&out)
    );
    String::from_utf8(out.stdout).expect("the CLI prints UTF-8")
}

fn cli(fx: &Fixture, args: &[&str]) -> Output {
    let mut cmd = jitgate_cmd();
    cmd.env("JITGATE_URL", fx.env.jg.api_url())
        .env("JITGATE_TOKEN", BOB_TOKEN)
        .args(args);
    run_timeout(&mut cmd, None, Duration::from_secs(60))
}

/// No byte a terminal interprets: C0 controls but the line feed, DEL, C1 controls, and the
/// bidirectional/invisible formatting characters.
fn assert_terminal_safe(what: &str, out: &str) {
    let bad = out.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    });
    assert_eq!(bad, None, "{what} prints a raw control character:\n{out:?}");
}

/// The value of `label` in `requests show` output (`label  value` lines).
fn field<'a>(shown: &'a str, label: &str) -> &'a str {
    shown
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(label)?;
            rest.starts_with("  ").then(|| rest.trim_start())
        })
        .unwrap_or_else(|| panic!("no {label:?} line in\n{shown}"))
}

/// The labels `requests show` prints, each at the start of its own line.
const LABELS: &[&str] = &[
    "request",
    "state",
    "statement",
    "class",
    "tables",
    "impact",
    "rule",
    "requester",
    "source",
    "application",
    "target",
    "session",
    "age",
    "expires",
    "approvals",
    "  approved by",
    "decided by",
    "reason",
    "grant",
];

/// Every line of `requests show` output is one of its own fields: none is forged.
fn assert_only_own_lines(shown: &str) {
    for line in shown.lines() {
        assert!(
            LABELS
                .iter()
                .any(|l| line.strip_prefix(l).is_some_and(|r| r.starts_with("  "))),
            "a line that is no field: {line:?}\n{shown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_text_is_shown_whole_and_escaped_never_raw() {
    let fx = Fixture::new("60s", 10);
    let application = format!("app{FORGED}");
    let mut config: tokio_postgres::Config = fx.env.alice_tokio().parse().expect("conninfo");
    config.application_name(&application);
    let (client, connection) = config.connect(NoTls).await.expect("alice connects");
    tokio::spawn(connection);
    let statement = format!(
        "UPDATE t SET v = 7 WHERE id = 1 AND '{FORGED}' <> '{}'",
        "long ".repeat(30)
    );
    let held = {
        let statement = statement.clone();
        tokio::spawn(async move { client.simple_query(&statement).await })
    };
    let id = wait_for_pending(&fx.bob, ALICE)["id"]
        .as_str()
        .expect("request id")
        .to_string();

    let shown = cli_ok(&fx, &["requests", "show", &id]);
    assert_terminal_safe("requests show", &shown);
    assert_only_own_lines(&shown);
    assert_eq!(field(&shown, "request"), id);
    assert_eq!(field(&shown, "state"), "pending");
    assert_eq!(
        field(&shown, "statement"),
        format!(
            "UPDATE t SET v = 7 WHERE id = 1 AND '{FORGED_SHOWN}' <> '{}'",
            "long ".repeat(30)
        ),
        "the statement whole, escaped"
    );
    assert_eq!(field(&shown, "application"), format!("app{FORGED_SHOWN}"));
    assert_eq!(field(&shown, "class"), "write");
    assert_eq!(field(&shown, "tables"), "public.t");
    assert_eq!(field(&shown, "rule"), WRITE_RULE);
    assert_eq!(field(&shown, "requester"), ALICE);
    assert_eq!(field(&shown, "source"), "127.0.0.1");
    assert_eq!(field(&shown, "target"), "app-db (postgres)");
    assert_eq!(field(&shown, "approvals"), "0 of 1");
    assert!(field(&shown, "expires").starts_with("in "), "{shown}");
    assert!(field(&shown, "age").ends_with("s ago"), "{shown}");
    assert!(field(&shown, "session").starts_with('s'), "{shown}");

    // The list: one line per request, the long statement cut, nothing raw.
    let table = cli_ok(&fx, &["requests", "--state", "pending"]);
    assert_terminal_safe("requests", &table);
    assert_eq!(table.lines().count(), 2, "header and one row:\n{table}");
    let row = table.lines().nth(1).expect("a row");
    assert!(row.starts_with(&id) && row.ends_with("..."), "{table}");
    assert!(
        row.contains("'\\x1b[2J + 0.000s app..."),
        "escaped, still visible, on the request's own row: {row}"
    );

    // --json: the same value, with no raw control character either.
    let json = cli_ok(&fx, &["requests", "show", &id, "--json"]);
    assert_terminal_safe("requests show --json", &json);
    let v: Value = serde_json::from_str(&json).expect("requests show --json prints JSON");
    assert_eq!(v["statement"], statement.as_str());
    assert_eq!(v["application"], application.as_str());

    // A denial reason is user text too: shown escaped; the statement never ran.
    let reason = format!("no{FORGED}");
    let denied = cli_ok(&fx, &["deny", &id, "--reason", &reason]);
    assert_terminal_safe("deny", &denied);
    assert_eq!(failure(finish(held).await).0, "42501");
    let shown = cli_ok(&fx, &["requests", "show", &id]);
    assert_terminal_safe("requests show (denied)", &shown);
    assert_only_own_lines(&shown);
    assert_eq!(field(&shown, "state"), "denied");
    assert_eq!(field(&shown, "reason"), format!("no{FORGED_SHOWN}"));
    assert_eq!(field(&shown, "decided by"), "bob");
    assert_eq!(fx.row("t", 1), Some(0), "a denied UPDATE changed the row");

    // The server's own log names the application escaped too.
    let log = fx.env.jg.log();
    assert!(log.contains(&format!("app{FORGED_SHOWN}")), "{log}");
    assert!(!log.contains("\n+  0.000s  approved by bob"), "{log}");
}

/// Polls request `id` until its impact preview is in; returns the estimate, or the preview's
/// error as a failure.
fn estimate(fx: &Fixture, id: &str) -> f64 {
    poll(&format!("the impact preview of {id}"), || {
        let r = fx.bob.request(id);
        let impact = &r["impact"];
        if let Some(e) = impact["error"].as_str() {
            panic!("the preview failed: {e}");
        }
        impact["estimated_rows"]
            .as_f64()
            .ok_or_else(|| format!("no estimate yet: {r}"))
    })
}

fn changed_rows(fx: &Fixture) -> String {
    fx.sql("SELECT count(*) FROM t WHERE v <> 0;")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parameterised_write_is_estimated_with_its_bind_values() {
    let fx = Fixture::new("60s", 10_000);
    let s = fx.alice_session().await;

    // Inferred parameter type, binary int4 value: 1,000 rows match (a generic plan would
    // guess a third of the table, 3,333).
    let client = s.client.clone();
    let held = tokio::spawn(async move {
        client
            .execute("UPDATE t SET v = v + 1 WHERE id > $1", &[&9000i32])
            .await
    });
    let id = wait_for_pending(&fx.bob, ALICE)["id"]
        .as_str()
        .expect("request id")
        .to_string();
    let rows = estimate(&fx, &id);
    assert!(
        (800.0..=1200.0).contains(&rows),
        "estimate {rows} for 1000 rows"
    );
    let shown = cli_ok(&fx, &["requests", "show", &id]);
    assert_eq!(
        field(&shown, "impact"),
        format!("about {} rows (planner estimate)", rows.round())
    );
    assert_eq!(
        changed_rows(&fx),
        "0",
        "the held UPDATE ran before approval"
    );
    fx.bob.approve_ok(&id, "ok", None);
    assert_eq!(finish(held).await.expect("approved UPDATE"), 1000);
    assert_eq!(changed_rows(&fx), "1000");

    // A declared int8 parameter (Parse with types), binary value: 500 rows; denied, untouched.
    let statement = s
        .client
        .prepare_typed("UPDATE t SET v = v + 1 WHERE id > $1", &[Type::INT8])
        .await
        .expect("prepare through jitgate");
    let client = s.client.clone();
    let held = tokio::spawn(async move { client.execute(&statement, &[&9500i64]).await });
    let id = poll("the second hold", || {
        fx.bob
            .pending(Some(ALICE))
            .first()
            .map(|r| r["id"].as_str().expect("id").to_string())
            .ok_or_else(|| "none pending".to_string())
    });
    let rows = estimate(&fx, &id);
    assert!(
        (400.0..=600.0).contains(&rows),
        "estimate {rows} for 500 rows"
    );
    fx.bob.deny_ok(&id, "not now");
    assert_eq!(failure(finish(held).await).0, "42501");
    assert_eq!(changed_rows(&fx), "1000", "a denied UPDATE changed rows");
}
