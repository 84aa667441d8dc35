//! The command line around the relay: `hash-password`, `check-config`, `serve` with a bad
//! config, and `GET /healthz`.

mod support;

use std::time::Duration;

use support::jitgate::{check_config, toml_str};
use support::proc::{output_text, run_timeout};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET, Env, JitgateBuilder, TempDir, jitgate_cmd};

fn combined(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A config that is valid apart from the problems a test splices in.
fn good_builder() -> JitgateBuilder {
    let target = support::PgTarget {
        name: APP_TARGET.into(),
        address: "127.0.0.1:5432".into(),
        database: "app".into(),
        user: "app".into(),
        password: Some("not-used".into()),
        password_env: None,
        tls: "disable".into(),
        ca_file: None,
        extra: Vec::new(),
    };
    JitgateBuilder::new()
        .user(ALICE, &["dev"], ALICE_PASSWORD)
        .target(target)
        .allow_all()
}

#[test]
fn hash_password_prints_a_fresh_scram_verifier() {
    let hash = || {
        let out = run_timeout(
            jitgate_cmd().arg("hash-password"),
            Some(b"correct horse\n"),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "{}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (a, b) = (hash(), hash());
    // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, as Postgres stores it.
    let rest = a
        .strip_prefix("SCRAM-SHA-256$")
        .unwrap_or_else(|| panic!("{a}"));
    let (iter_salt, keys) = rest.split_once('$').unwrap_or_else(|| panic!("{a}"));
    let (iterations, salt) = iter_salt.split_once(':').unwrap_or_else(|| panic!("{a}"));
    assert!(iterations.parse::<u32>().unwrap() >= 4096, "{a}");
    assert!(!salt.is_empty() && keys.split(':').count() == 2, "{a}");
    assert_ne!(
        a, b,
        "two verifiers of one password must differ (random salt)"
    );
}

#[test]
fn check_config_accepts_a_good_config() {
    let dir = TempDir::new("cfg");
    let path = good_builder().write_config(dir.path(), 16432, 18080);
    let out = check_config(&path);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn check_config_lists_every_semantic_problem() {
    let dir = TempDir::new("cfg");
    let missing = dir.join("no-such.password");
    let mut bad_target = good_builder();
    bad_target = bad_target
        .server("ssh_listen", &toml_str("also-nope"))
        .target(support::PgTarget {
            name: "broken-db".into(),
            address: "127.0.0.1:5432".into(),
            database: "app".into(),
            user: "app".into(),
            password: None,
            password_env: None,
            tls: "disable".into(),
            ca_file: None,
            extra: vec![format!(
                "password_file = {}",
                toml_str(&missing.display().to_string())
            )],
        })
        .rule("name = \"points nowhere\"\ntargets = [\"no-such-target\"]\naction = \"allow\"")
        .rule("name = \"nobody\"\ngroups = [\"no-such-group\"]\naction = \"allow\"");
    let path = bad_target.write_config(dir.path(), 16432, 18080);
    // Make postgres_listen unparsable too.
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "postgres_listen = \"127.0.0.1:16432\"",
        "postgres_listen = \"nope\"",
    );
    std::fs::write(&path, text).unwrap();

    let out = check_config(&path);
    let all = combined(&out);
    assert!(
        !out.status.success(),
        "bad config accepted\n{}",
        output_text(&out)
    );
    for needle in [
        "nope",
        "also-nope",
        "no-such.password",
        "no-such-target",
        "no-such-group",
    ] {
        let hits = all.lines().filter(|l| l.contains(needle)).count();
        assert!(hits >= 1, "no line names {needle:?}\n{}", output_text(&out));
    }
    let problem_lines = all.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(problem_lines >= 5, "expected one line per problem\n{all}");
    assert!(!all.lines().any(|l| l.trim() == "ok"), "{all}");
}

#[test]
fn check_config_rejects_unknown_keys() {
    let dir = TempDir::new("cfg");
    let path = good_builder()
        .server("colour", "\"blue\"")
        .write_config(dir.path(), 16432, 18080);
    let out = check_config(&path);
    assert!(
        !out.status.success(),
        "unknown key accepted\n{}",
        output_text(&out)
    );
    assert!(combined(&out).contains("colour"), "{}", output_text(&out));
}

#[test]
fn serve_refuses_a_bad_config_with_a_reason() {
    let dir = TempDir::new("cfg");
    let path = good_builder().write_config(dir.path(), 16432, 18080);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("127.0.0.1:16432", "nope")).unwrap();
    let out = run_timeout(
        jitgate_cmd().arg("serve").arg("--config").arg(&path),
        None,
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "serve ran with a bad config");
    assert!(combined(&out).contains("nope"), "{}", output_text(&out));
}

#[test]
fn healthz_answers_200_once_listening() {
    let env = Env::new();
    assert_eq!(env.jg.healthz(), Some(200));
    // The Postgres listener is up at that moment too.
    std::net::TcpStream::connect(env.jg.pg_addr()).expect("postgres listener");
    env.assert_still_serving();
}
