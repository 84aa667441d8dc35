//! Live reload: SIGHUP re-reads the config file. New users, rules and webhooks apply to what
//! starts afterwards; open sessions and held requests carry on untouched; a broken file is
//! rejected with an ERROR naming its problems and the running config stays.

#[path = "support/api.rs"]
mod api;
mod support;

use std::sync::Arc;

use api::{Api, Session, failure, finish, held_id, poll};
use sha2::{Digest, Sha256};
use support::jitgate::toml_str;
use support::webhooks::webhook_receiver;
use support::{
    ALICE, ALICE_PASSWORD, APP_TARGET, Env, Jitgate, JitgateBuilder, PgCluster, PgTarget, TestCa,
    pg_connect_with_messages, psql, psql_query,
};

const BOB: &str = "bob";
const BOB_PASSWORD: &str = "bob-pw-R4z";
const CAROL_TOKEN: &str = "carol-reload-token";
const WRITE_RULE: &str = "writes need an SRE";

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// alice (dev, password) and carol (sre, API token); reads pass, writes to `t2` get `t2_rule`,
/// other writes wait for an SRE.
fn builder(cluster: &PgCluster, db: &str, t2_rule: &str) -> JitgateBuilder {
    JitgateBuilder::new()
        .user(ALICE, &["dev"], ALICE_PASSWORD)
        .target(PgTarget::on_cluster(APP_TARGET, cluster, db, "app"))
        .rule("name = \"reads pass\"\nclasses = [\"read\"]\naction = \"allow\"")
        .rule(t2_rule)
        .rule(&format!(
            "name = \"{WRITE_RULE}\"\nclasses = [\"write\"]\naction = \"review\"\n\
             approvers = [\"group:sre\"]\nhold_timeout = \"5m\""
        ))
        .raw_toml(&format!(
            "[[users]]\nname = \"carol\"\ngroups = [\"sre\"]\napi_token_sha256 = \"{}\"",
            sha256_hex(CAROL_TOKEN)
        ))
}

const T2_DENIED: &str = "name = \"t2 writes denied\"\nclasses = [\"write\"]\n\
                         tables = [\"public.t2\"]\naction = \"deny\"";
const T2_ALLOWED: &str = "name = \"t2 writes pass\"\nclasses = [\"write\"]\n\
                          tables = [\"public.t2\"]\naction = \"allow\"";

/// Rewrites jitgate's own config file (same path, ports and data_dir) from `b`.
fn rewrite(jg: &Jitgate, b: &JitgateBuilder) {
    let path = b.write_config(jg.dir(), jg.pg_port(), jg.api_addr().port());
    assert_eq!(path, jg.config_path());
}

/// Sends SIGHUP and waits for the `n`th log line containing `needle`; returns that line.
fn hup_and_wait(jg: &Jitgate, needle: &str, n: usize) -> String {
    jg.kill("HUP");
    poll(&format!("log line #{n} with {needle:?}"), || {
        let lines: Vec<String> = jg
            .log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect();
        lines.get(n - 1).cloned().ok_or_else(|| jg.log_tail(20))
    })
}

fn metric(jg: &Jitgate, series: &str) -> Option<u64> {
    let (_, body) = jg.http_get("http", "/metrics").expect("GET /metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
}

fn bob_query(jg: &Jitgate, sql: &str) -> String {
    psql_query(&jg.conninfo(BOB, APP_TARGET), BOB_PASSWORD, sql)
}

async fn alice_session(jg: &Jitgate) -> Session {
    let conn = format!(
        "{} password={ALICE_PASSWORD}",
        jg.conninfo(ALICE, APP_TARGET)
    );
    let (client, messages) = pg_connect_with_messages(&conn)
        .await
        .expect("alice connects through jitgate");
    Session {
        client: Arc::new(client),
        messages,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_users_rules_and_webhooks_while_sessions_and_holds_carry_on() {
    let cluster = PgCluster::shared();
    let db = cluster.fresh_database("app");
    cluster.superuser_psql_db(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);\n\
         CREATE TABLE t2 (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);\n\
         INSERT INTO t VALUES (1, 0); INSERT INTO t2 VALUES (1, 0);\n\
         ALTER TABLE t OWNER TO app; ALTER TABLE t2 OWNER TO app;",
    );
    let row = |table: &str| cluster.superuser_psql_db(&db, &format!("SELECT v FROM {table};"));
    let jg = builder(cluster, &db, T2_DENIED).start();
    let carol = Api::new(jg.api_addr(), CAROL_TOKEN);

    // Before: bob is unknown, writes to t2 are denied, a write to t is held.
    let out = psql(
        &jg.conninfo(BOB, APP_TARGET),
        BOB_PASSWORD,
        &["-Atc", "select 1"],
    );
    assert!(!out.status.success(), "bob logged in before he existed");
    let mut holder = alice_session(&jg).await;
    let other = alice_session(&jg).await;
    let (code, _) = failure(other.client.simple_query("UPDATE t2 SET v = 1").await);
    assert_eq!(code, "42501");
    let held = holder.spawn_simple("UPDATE t SET v = 7 WHERE id = 1");
    let id = held_id(&holder.notice().await).expect("request id in the hold notice");

    // The new file: bob exists, t2 writes pass, a webhook, and a setting that needs a restart.
    let (hook_url, hooks) = webhook_receiver();
    let next = builder(cluster, &db, T2_ALLOWED)
        .user(BOB, &["dev"], BOB_PASSWORD)
        .server("max_connections", "77")
        .raw_toml(&format!("[[webhooks]]\nurl = {}", toml_str(&hook_url)));
    rewrite(&jg, &next);
    let reloaded = hup_and_wait(&jg, "config reloaded", 1);
    assert!(reloaded.contains("INFO"), "{reloaded}");
    let kept = jg
        .log()
        .lines()
        .find(|l| l.contains("cannot change without a restart"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no warning about max_connections\n{}", jg.log_tail(20)));
    assert!(kept.contains("server.max_connections"), "{kept}");

    // New login, new rule in a new session and in an old one.
    assert_eq!(bob_query(&jg, "select 40 + 2"), "42");
    assert_eq!(
        bob_query(
            &jg,
            "WITH u AS (UPDATE t2 SET v = 2 RETURNING v) SELECT v FROM u"
        ),
        "2"
    );
    other
        .client
        .simple_query("UPDATE t2 SET v = 3")
        .await
        .expect("the rule now allows t2 writes in a session opened before the reload");
    assert_eq!(row("t2"), "3");

    // The held request survived the reload: still pending, and approving it runs it.
    assert_eq!(carol.request(&id)["state"], "pending");
    assert!(
        !held.is_finished(),
        "the held statement returned during the reload"
    );
    assert_eq!(row("t"), "0");
    carol.approve_ok(&id, "after the reload", None);
    finish(held).await.expect("approved UPDATE runs");
    assert_eq!(row("t"), "7");
    // The webhook added by the reload heard the decision (the creation predates it).
    let events = poll("request.approved at the new webhook", || {
        let seen = hooks.lock().unwrap().clone();
        seen.iter()
            .find(|v| v["event"] == "request.approved" && v["request"]["id"] == id.as_str())
            .cloned()
            .ok_or(format!("{seen:?}"))
    });
    assert_eq!(events["request"]["user"], ALICE);
    assert_eq!(
        metric(&jg, "jitgate_config_reloads_total{result=\"ok\"}"),
        Some(1)
    );

    // A broken file: rejected with its problems named, the running config stays.
    let path = jg.config_path().to_path_buf();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[[users]]\nname = \"eve\"\npassword = \"not-a-verifier\"\n\n\
         [[rules]]\nname = \"points nowhere\"\ntargets = [\"no-such-target\"]\naction = \"allow\"\n",
    );
    std::fs::write(&path, text).unwrap();
    let failed = hup_and_wait(&jg, "config reload failed", 1);
    assert!(failed.contains("ERROR"), "{failed}");
    for needle in ["eve", "no-such-target", "keeping the running config"] {
        assert!(failed.contains(needle), "{needle:?} not in {failed}");
    }
    assert_eq!(bob_query(&jg, "select 'still here'"), "still here");
    other
        .client
        .simple_query("UPDATE t2 SET v = 4")
        .await
        .expect("the reloaded rules are still in force");
    assert_eq!(row("t2"), "4");
    assert_eq!(
        metric(&jg, "jitgate_config_reloads_total{result=\"error\"}"),
        Some(1)
    );
    assert_eq!(jg.log().matches("config reloaded").count(), 1);
    assert!(jg.is_running());
}

/// `psql` over TLS with `sslmode=verify-full` against the CA in `ca_pem`: did it get in?
fn verify_full(jg: &Jitgate, ca_pem: &std::path::Path) -> bool {
    let conninfo = format!(
        "{} sslmode=verify-full sslrootcert={}",
        jg.conninfo_base(ALICE, APP_TARGET),
        ca_pem.display()
    );
    psql(&conninfo, ALICE_PASSWORD, &["-Atc", "select 1"])
        .status
        .success()
}

#[test]
fn sighup_serves_a_renewed_certificate_and_refuses_a_broken_one() {
    let env = Env::with(|b| b.proxy_tls());
    let jg = &env.jg;
    let old_ca = jg.ca_pem_path();
    let new_ca = jg.dir().join("rotated-ca.crt");
    let rotated = TestCa::new("rotated CA");
    rotated.write_cert(&new_ca);
    assert!(verify_full(jg, &old_ca), "{}", jg.log_tail(20));
    assert!(!verify_full(jg, &new_ca));

    // Renew in place (same paths, as a certbot deploy hook would), then reload.
    rotated.write_localhost_leaf(jg.dir(), "proxy");
    hup_and_wait(jg, "config reloaded", 1);
    assert!(verify_full(jg, &new_ca), "{}", jg.log_tail(20));
    assert!(
        !verify_full(jg, &old_ca),
        "the old certificate is still served"
    );

    // A key that does not match the certificate rejects the whole reload.
    let (_, other_key) = rotated.leaf(&["127.0.0.1"]);
    std::fs::write(jg.dir().join("proxy.key"), other_key).unwrap();
    let failed = hup_and_wait(jg, "config reload failed", 1);
    assert!(failed.contains("tls"), "{failed}");
    assert!(verify_full(jg, &new_ca), "{}", jg.log_tail(20));
    assert_eq!(env.query("select 'plain still works'"), "plain still works");
}
