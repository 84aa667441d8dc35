//! The web console in a real headless Chromium (issue 18's proof), against the real binary,
//! PostgreSQL with psql, and sshd: an approver sees a held DELETE appear without reloading
//! and approves it (psql prints `DELETE 1`, the row is gone, the audit trail names him);
//! another denies (psql gets 42501 with her reason, the row stays); alice sees only her own
//! requests and sessions; an SSH recording plays in the browser's terminal. Screenshots at
//! 390 and 1280 px wide are saved under `<target>/console-screenshots/`.
//!
//! The browser steps run in tests/console/drive.py (Selenium), one JSON command per line; the
//! scenario and every check stay here. It needs `JITGATE_CONSOLE_PYTHON`, a Python with
//! selenium (tests/run.sh makes one), and Debian's chromium and chromium-driver: without them
//! the test fails, it never skips.

#[path = "support/api.rs"]
mod api;
#[path = "console/browser.rs"]
mod browser;
mod support;

use std::process::{Child, Stdio};

use api::{ALICE_TOKEN, BOB_TOKEN, CAROL_TOKEN, Fixture, poll};
use browser::Browser;
use serde_json::{Value, json};
use support::sshd::{BOB_TOKEN as SSH_BOB_TOKEN, SshEnv};
use support::{ALICE, ALICE_PASSWORD, output_text};

/// `[data-request-id="ID"]`, and a selector inside it.
fn card(id: &str, inner: &str) -> String {
    format!("[data-request-id=\"{id}\"] {inner}")
        .trim()
        .to_string()
}

fn psql_as(fx: &Fixture, user: &str, password: &str, sql: &str) -> Child {
    support::psql_cmd(&fx.env.jg.conninfo(user, support::APP_TARGET), password)
        .args(["-v", "VERBOSITY=verbose", "-c", sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql")
}

fn id_of(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_string()
}

/// The user of every session, as an auditor sees them.
fn session_users(fx: &Fixture) -> std::collections::BTreeMap<String, String> {
    let all = fx.audrey.get_ok("/v1/sessions");
    all.as_array()
        .expect("sessions")
        .iter()
        .map(|s| (id_of(s, "id"), id_of(s, "user")))
        .collect()
}

const ERIN_PASSWORD: &str = "erin-pw-4Kd";

#[test]
fn approvers_decide_in_the_browser_and_alice_sees_only_her_own() {
    let fx = Fixture::with_auditors("120s", 3, &["group:security"], |b| {
        b.user("erin", &["dev"], ERIN_PASSWORD)
    });
    let url = format!("{}/", fx.env.jg.api_url());
    let mut browser = Browser::start();
    browser.open(&url, 1280);

    // bob signs in first; alice's DELETE is held afterwards and appears without a reload.
    browser.sign_in(BOB_TOKEN);
    browser.wait("#view-pending[data-loaded]");
    browser.run(json!({"op": "remember", "css": "#view-pending"}));
    let delete = psql_as(&fx, ALICE, ALICE_PASSWORD, "DELETE FROM t WHERE id = 1");
    let held = api::wait_for_pending(&fx.bob, ALICE);
    let id = id_of(&held, "id");
    let text = browser.wait(&card(&id, "[data-action=approve]"));
    assert_eq!(text, "Approve");
    let shown = browser.wait(&card(&id, ""));
    for want in [
        "DELETE",
        "public.t",
        "alice",
        "app-db",
        "writes need an SRE",
        "0 of 1",
        "left",
    ] {
        assert!(shown.contains(want), "card lacks {want:?}:\n{shown}");
    }
    assert_eq!(
        browser.run(json!({"op": "unchanged"}))["unchanged"],
        true,
        "the card came without a page reload"
    );
    let impact = browser.wait_text(&card(&id, "[data-field=impact]"), "planner estimate");
    assert!(impact.contains("about 1 row "), "{impact}");
    assert_eq!(fx.row("t", 1), Some(0), "held: the row is still there");
    assert_eq!(browser.attrs(&card(&id, "[name=grant]"), "name"), ["grant"]);
    assert_eq!(
        browser.attrs(&card(&id, "[data-action=deny]"), "data-action"),
        ["deny"]
    );
    browser.screenshot("pending-1280.png");
    browser.resize(390);
    browser.wait(&card(&id, "[data-action=approve]"));
    browser.screenshot("pending-390.png");
    browser.run(json!({"op": "scroll_to", "css": card(&id, "[data-action=deny]")}));
    browser.screenshot("pending-390-actions.png");
    browser.resize(1280);

    // bob approves with a reason: psql prints DELETE 1, the row is gone, the trail says bob.
    // By keyboard: from the reason field, Tab reaches the approve button, Enter presses it.
    browser.type_into(&card(&id, "[name=reason]"), "ticket OPS-7: stale row");
    let tabs = browser
        .run(json!({"op": "tab_until", "css": card(&id, "[data-action=approve]"), "max": 4}));
    assert_eq!(tabs["presses"], 3, "reason → grant → scope → approve");
    browser.run(json!({"op": "press", "key": "ENTER"}));
    let out = delete.wait_with_output().expect("psql ends");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("DELETE 1"),
        "{}",
        output_text(&out)
    );
    assert_eq!(fx.row("t", 1), None, "approved: the row is gone");
    browser.run(json!({"op": "gone", "css": card(&id, "")}));
    let session = id_of(&held, "session");
    let decided = poll("bob's decision in the audit trail", || {
        let events = fx.audrey.get_ok(&format!("/v1/sessions/{session}/events"));
        events
            .as_array()
            .and_then(|e| e.iter().find(|e| e["kind"] == "request_decided").cloned())
            .ok_or_else(|| format!("{events}"))
    });
    assert_eq!(decided["by"], "bob", "{decided}");
    assert_eq!(decided["reason"], "ticket OPS-7: stale row", "{decided}");

    // erin (another user) has a request pending too; carol will see it, alice must not.
    // Her statement hides a clear-screen escape and a right-to-left override in a comment.
    let erin = psql_as(
        &fx,
        "erin",
        ERIN_PASSWORD,
        "DELETE FROM t WHERE id = 3 /* \u{1b}[2J\u{202e} */",
    );
    let erin_request = api::wait_for_pending(&fx.bob, "erin");
    let erin_id = id_of(&erin_request, "id");
    let erin_session = id_of(&erin_request, "session");

    // carol denies alice's next request: alice gets 42501 with carol's reason.
    browser.click("#sign-out");
    browser.wait("input[name=token]");
    browser.sign_in(CAROL_TOKEN);
    let update = psql_as(
        &fx,
        ALICE,
        ALICE_PASSWORD,
        "UPDATE t SET v = 9 WHERE id = 2",
    );
    let id2 = id_of(&api::wait_for_pending(&fx.bob, ALICE), "id");
    browser.wait(&card(&id2, "[data-action=deny]"));
    browser.wait(&card(&erin_id, "[data-action=deny]"));
    // carol (an approver) sees erin's session too; the filter narrows the list to erin's.
    browser.click("a[data-nav=sessions]");
    browser.wait(&format!("[data-session-id=\"{erin_session}\"]"));
    browser.wait(&format!("[data-session-id=\"{session}\"]"));
    browser.type_into("#session-filter [name=user]", "erin");
    browser.click("#session-filter button[type=submit]");
    browser.run(json!({"op": "gone", "css": format!("[data-session-id=\"{session}\"]")}));
    assert_eq!(
        browser.attrs("[data-session-id]", "data-session-id"),
        std::slice::from_ref(&erin_session)
    );
    browser.click("a[data-nav=pending]");
    let shown = browser.attrs(&card(&erin_id, ".ctl"), "textContent");
    assert_eq!(
        shown,
        ["\\x1b", "\\u202e"],
        "control characters shown visibly"
    );
    let statement = browser.wait(&card(&erin_id, "pre.code"));
    assert!(
        !statement.contains('\u{1b}') && !statement.contains('\u{202e}'),
        "{statement:?}"
    );
    browser.type_into(&card(&id2, "[name=reason]"), "not during the freeze");
    browser.click(&card(&id2, "[data-action=deny]"));
    let out = update.wait_with_output().expect("psql ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        stderr.contains("42501") && stderr.contains("not during the freeze"),
        "{stderr}"
    );
    assert_eq!(fx.row("t", 2), Some(0), "denied: the row is unchanged");
    assert_eq!(fx.bob.request(&id2)["decided_by"], "carol");

    // alice sees her own requests and sessions only, and no buttons.
    browser.click("#sign-out");
    browser.sign_in(ALICE_TOKEN);
    browser.wait("#view-pending[data-loaded]");
    assert!(
        browser
            .attrs("[data-request-id]", "data-request-id")
            .is_empty(),
        "alice has nothing pending; erin's request is not hers to see"
    );
    browser.click("a[data-nav=history]");
    browser.wait(&card(&id, ""));
    browser.wait(&card(&id2, ""));
    let mut history = browser.attrs("#history-list [data-request-id]", "data-request-id");
    history.sort();
    let mut mine = vec![id.clone(), id2.clone()];
    mine.sort();
    assert_eq!(history, mine, "alice's history is her two requests");
    assert!(browser.attrs("[data-action]", "data-action").is_empty());
    browser.click("a[data-nav=sessions]");
    browser.wait("#view-sessions[data-loaded]");
    browser.wait(&format!("[data-session-id=\"{session}\"]"));
    let users = session_users(&fx);
    let rows = browser.attrs("[data-session-id]", "data-session-id");
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(users.get(row).map(String::as_str), Some(ALICE), "row {row}");
    }
    assert!(!rows.contains(&erin_session), "erin's session is hidden");
    browser.screenshot("sessions-1280.png");

    // alice's session timeline: the statement, bob's approval, the result.
    browser.click(&format!("[data-session-id=\"{session}\"] a"));
    browser.wait_text("#session-timeline", "ticket OPS-7");
    let timeline = browser.wait_text("#session-timeline", "DELETE 1");
    for want in ["DELETE FROM t WHERE id = 1", "bob", "approved"] {
        assert!(
            timeline.contains(want),
            "timeline lacks {want:?}:\n{timeline}"
        );
    }
    browser.resize(390);
    browser.screenshot("session-390.png");

    // carol approves erin's request with a 10 minute grant (a longer one is refused in the
    // page), then revokes the grant from the history.
    browser.resize(1280);
    browser.click("#sign-out");
    browser.sign_in(CAROL_TOKEN);
    browser.type_into(&card(&erin_id, "[name=grant]"), "2h");
    browser.click(&card(&erin_id, "[data-action=approve]"));
    browser.wait_text(&card(&erin_id, ".card-status"), "at most 30m");
    assert_eq!(fx.bob.request(&erin_id)["state"], "pending");
    browser.type_into(&card(&erin_id, "[name=grant]"), "10m");
    browser.type_into(&card(&erin_id, "[name=reason]"), "cleanup window");
    browser.click(&card(&erin_id, "[data-action=approve]"));
    let out = erin.wait_with_output().expect("erin's psql ends");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DELETE 1"),
        "{}",
        output_text(&out)
    );
    assert_eq!(fx.row("t", 3), None);
    let grants = fx.carol.grants();
    assert_eq!(grants.len(), 1, "{grants:?}");
    let grant = id_of(&grants[0], "id");
    let left = grants[0]["expires_at"].as_u64().expect("expires_at")
        - grants[0]["created_at"].as_u64().expect("created_at");
    assert_eq!(left, 600, "a 10m grant");
    browser.click("a[data-nav=history]");
    let shown = browser.wait(&format!("[data-grant-id=\"{grant}\"]"));
    assert!(shown.contains("erin") && shown.contains("left"), "{shown}");
    browser.resize(390);
    browser.screenshot("history-390.png");
    browser.resize(1280);
    browser.click(&format!("[data-grant-id=\"{grant}\"] [data-action=revoke]"));
    browser.run(json!({"op": "gone", "css": format!("[data-grant-id=\"{grant}\"]")}));
    assert!(fx.carol.grants().is_empty(), "revoked");
    browser.assert_no_page_errors();
}

#[test]
fn an_ssh_recording_plays_in_the_browser_terminal() {
    let env = SshEnv::new();
    let bob = api::Api::new(env.jg.api_addr(), SSH_BOB_TOKEN);
    let marker = format!("/tmp/jg-console-{}", std::process::id());
    let _ = std::fs::remove_file(&marker);
    let mut browser = Browser::start();
    browser.open(&format!("{}/", env.jg.api_url()), 1280);
    browser.sign_in(SSH_BOB_TOKEN);
    browser.wait("#view-pending[data-loaded]");
    // A command that writes (touch) is held; bob approves it in the page.
    let child = env
        .ssh()
        .arg(format!(
            "echo console-$((40 + 2)); printf 'colour-\\033[1;31mred\\033[0m-done\\n'; \
             echo second-line; touch {marker}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ssh");
    let held = api::wait_for_pending(&bob, ALICE);
    let id = id_of(&held, "id");
    let shown = browser.wait(&card(&id, "pre.code"));
    assert!(shown.contains("touch /tmp/jg-console-"), "{shown}");
    let application = browser.wait_text(&card(&id, "[data-field=application]"), "SSH-2.0-");
    assert!(application.contains("OpenSSH"), "{application}");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "nothing ran while held"
    );
    browser.screenshot("ssh-pending-1280.png");
    browser.type_into(&card(&id, "[name=reason]"), "looks harmless");
    browser.click(&card(&id, "[data-action=approve]"));
    let out = child.wait_with_output().expect("ssh output");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("console-42"),
        "{}",
        output_text(&out)
    );
    assert!(
        std::path::Path::new(&marker).exists(),
        "the approved command ran"
    );
    let _ = std::fs::remove_file(&marker);
    let session = id_of(&held, "session");
    poll("the recording", || {
        let (status, body) = bob.get(&format!("/v1/sessions/{session}/recording"));
        match body.as_str() {
            Some(cast) if status == 200 && cast.contains("second-line") => Ok(()),
            _ => Err(format!("{status} {body}")),
        }
    });

    browser.click("a[data-nav=sessions]");
    browser.click(&format!("[data-session-id=\"{session}\"] a"));
    browser.wait(".recording pre.terminal");
    let before = browser.wait(".recording pre.terminal");
    assert!(
        !before.contains("console-42"),
        "nothing played yet: {before}"
    );
    browser.click("[data-player=play]");
    let screen = browser.wait_text(".recording pre.terminal", "second-line");
    let lines: Vec<&str> = screen.lines().collect();
    assert_eq!(
        lines,
        ["console-42", "colour-red-done", "second-line"],
        "the terminal shows the output, colours stripped"
    );
    assert!(
        !screen.contains("\u{1b}"),
        "escapes are not shown raw: {screen:?}"
    );
    browser.wait_text(".player-status", "finished");
    browser.screenshot("recording-1280.png");
    browser.assert_no_page_errors();
}
