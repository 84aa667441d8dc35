//! Who may see an SSH session's terminal recording (issue 18), through a real sshd and
//! jitgate: its owner, the approver of its request and `[api] auditors`; another user gets the
//! answer of a missing id. The other routes are in `api_visibility.rs`.

#[path = "support/api.rs"]
mod api;
mod support;

use api::{Api, assert_error, poll, sha256_hex};
use support::ALICE;
use support::sshd::{BOB_TOKEN as SSH_BOB_TOKEN, SshEnv};

const MISSING: &str = "does-not-exist";

/// An SSH session's terminal recording, through the real sshd: its owner, the approver of its
/// request and an auditor get the asciicast; another user gets the answer of a missing id;
/// no token, 401.
#[test]
fn a_recording_is_served_to_its_owner_its_approver_and_auditors_only() {
    let env = SshEnv::new();
    let bob = Api::new(env.jg.api_addr(), SSH_BOB_TOKEN);
    let marker = format!("/tmp/jg-visibility-{}", std::process::id());
    let _ = std::fs::remove_file(&marker);
    let child = env
        .ssh()
        .arg(format!("echo jg-$((40 + 2)) | tee {marker}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ssh");
    let request = api::wait_for_pending(&bob, ALICE);
    let id = request["id"].as_str().expect("request id").to_string();
    assert!(
        !std::path::Path::new(&marker).exists(),
        "nothing ran while held"
    );
    bob.approve_ok(&id, "ok", None);
    let out = child.wait_with_output().expect("ssh ends");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("jg-42"),
        "{}",
        support::output_text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&marker).expect("the approved command wrote its file"),
        "jg-42\n"
    );
    let _ = std::fs::remove_file(&marker);
    let session = bob.request(&id)["session"]
        .as_str()
        .expect("a session id")
        .to_string();
    // The recording is written behind the session: wait for it (bob is an auditor here).
    poll("the recording in the audit trail", || {
        let (status, body) = bob.get(&format!("/v1/sessions/{session}/recording"));
        match body.as_str() {
            Some(cast) if status == 200 && cast.contains("jg-42") => Ok(()),
            _ => Err(format!("{status} {body}")),
        }
    });

    // bob stops being an auditor; alice gets a token; audrey (an auditor) and dave join.
    let jg = &env.jg;
    let text = std::fs::read_to_string(jg.config_path()).expect("read the config");
    let edited = text
        .replace(
            "auditors = [\"user:bob\"]",
            "auditors = [\"group:security\"]",
        )
        .replace(
            "name = \"alice\"\n",
            &format!(
                "name = \"alice\"\napi_token_sha256 = \"{}\"\n",
                sha256_hex(api::ALICE_TOKEN)
            ),
        );
    let edited = format!(
        "{edited}\n[[users]]\nname = \"audrey\"\ngroups = [\"security\"]\napi_token_sha256 = \"{}\"\n\n\
         [[users]]\nname = \"dave\"\ngroups = [\"dev\"]\napi_token_sha256 = \"{}\"\n",
        sha256_hex(api::AUDITOR_TOKEN),
        sha256_hex(api::DAVE_TOKEN),
    );
    assert!(
        edited.contains("group:security") && edited.matches("api_token_sha256").count() == 4,
        "the edit took: {edited}"
    );
    std::fs::write(jg.config_path(), edited).expect("write the config");
    jg.kill("HUP");
    poll("the reload", || {
        if jg.log().contains("config reloaded") {
            Ok(())
        } else if jg.log().contains("config reload failed") {
            panic!("reload rejected: {}", jg.log_tail(10))
        } else {
            Err(jg.log_tail(5))
        }
    });

    let path = format!("/v1/sessions/{session}/recording");
    let missing = bob.get(&format!("/v1/sessions/{MISSING}/recording"));
    for (who, token, sees) in [
        ("alice (owner)", api::ALICE_TOKEN, true),
        ("bob (approver)", SSH_BOB_TOKEN, true),
        ("audrey (auditor)", api::AUDITOR_TOKEN, true),
        ("dave (other user)", api::DAVE_TOKEN, false),
    ] {
        let caller = bob.with_token(Some(token));
        let got = caller.get(&path);
        if sees {
            assert_eq!(got.0, 200, "{who}: {}", got.1);
            let cast = got.1.as_str().unwrap_or_default();
            assert!(
                cast.contains("\"version\":2") && cast.contains("jg-42"),
                "{who}: {cast}"
            );
        } else {
            assert_eq!(
                got,
                bob.with_token(Some(token))
                    .get(&format!("/v1/sessions/{MISSING}/recording")),
                "{who}: answered like a missing session"
            );
            assert_error(who, &got, 404);
        }
    }
    assert_error("bob: missing", &missing, 404);
    assert_error("no token", &bob.with_token(None).get(&path), 401);
    assert_error("bob exports", &bob.get("/v1/audit/export"), 403);
}
