//! `[api] auditors` (issue 18) from the config in force, against a real jitgate and
//! PostgreSQL: with none, nobody may export or verify (API and CLI); `jitgate sessions` shows
//! each user what the API allows; a reload that names an auditor applies at once. The full
//! route matrix is in `api_visibility.rs`.

#[path = "support/api.rs"]
mod api;
mod support;

use std::collections::BTreeSet;

use api::{BOB_TOKEN, Fixture, POLL, assert_error, ids, poll};
use serde_json::Value;

/// `jitgate` (the CLI) as the holder of `token`.
fn cli(fx: &Fixture, token: &str, args: &[&str]) -> std::process::Output {
    support::run_timeout(
        support::jitgate_cmd()
            .args(args)
            .env("JITGATE_URL", fx.env.jg.api_url())
            .env("JITGATE_TOKEN", token),
        None,
        POLL,
    )
}

/// A config without `[api] auditors` leaves nobody able to read the whole trail (the CLI
/// says so too), and a reload that names an auditor applies at once.
#[tokio::test(flavor = "multi_thread")]
async fn auditors_come_from_the_config_in_force() {
    let fx = Fixture::with_auditors("60s", 2, &[], |b| b);
    assert_error("bob exports", &fx.bob.get("/v1/audit/export"), 403);
    assert_error("audrey exports", &fx.audrey.get("/v1/audit/verify"), 403);
    assert_eq!(fx.env.query("SELECT count(*) FROM t"), "2");
    let sessions = poll("alice's session in her own list", || {
        let v = fx.alice.get_ok("/v1/sessions");
        if v.as_array().is_some_and(|a| a.len() == 1) {
            Ok(ids(&v, "alice's sessions"))
        } else {
            Err(v.to_string())
        }
    });
    for (who, token, expect) in [
        ("alice", api::ALICE_TOKEN, sessions),
        ("dave", api::DAVE_TOKEN, BTreeSet::new()),
    ] {
        let out = cli(&fx, token, &["sessions", "--json"]);
        assert!(
            out.status.success(),
            "{who}: {}",
            support::output_text(&out)
        );
        let listed: Value = serde_json::from_slice(&out.stdout).expect("sessions --json is JSON");
        assert_eq!(
            ids(&listed, who),
            expect,
            "{who}: jitgate sessions shows what the API allows"
        );
    }
    for args in [&["audit", "verify"][..], &["audit", "export"][..]] {
        let out = cli(&fx, BOB_TOKEN, args);
        assert_eq!(out.status.code(), Some(1), "{}", support::output_text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("auditors"),
            "jitgate {args:?} says why: {}",
            support::output_text(&out)
        );
    }
    let jg = &fx.env.jg;
    let text = std::fs::read_to_string(jg.config_path()).expect("read the config");
    let edited = text.replace("auditors = []", "auditors = [\"user:audrey\"]");
    assert_ne!(text, edited, "the config names no auditors to edit");
    std::fs::write(jg.config_path(), edited).expect("write the config");
    jg.kill("HUP");
    poll("the reload", || {
        if jg.log().contains("config reloaded") {
            Ok(())
        } else {
            Err(jg.log_tail(5))
        }
    });
    let (status, body) = fx.audrey.get("/v1/audit/verify");
    assert_eq!(status, 200, "audrey is an auditor after the reload: {body}");
    assert_eq!(body["ok"], true);
    assert_eq!(fx.audrey.get("/v1/audit/export").0, 200);
    let out = cli(&fx, api::AUDITOR_TOKEN, &["audit", "verify"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("ok "),
        "{}",
        support::output_text(&out)
    );
    assert_error(
        "bob still may not export",
        &fx.bob.get("/v1/audit/export"),
        403,
    );
}
