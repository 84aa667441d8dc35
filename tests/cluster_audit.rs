//! Issue 17, the audit half, against real processes: one PostgreSQL 15 serving as the state
//! database and the target, two jitgate replicas (`jg-a`, `jg-b`) with `[cluster]`.
//!
//! - proof 6: a session on A is listed, replayed and verified through B's API and CLI, and
//!   through the CLI reading the state database directly; an SSH session's recording made on
//!   A plays back through B;
//! - tampering with one shipped row: `audit verify` names the node and the event;
//! - (`cluster_audit_outage.rs`: A killed and restarted, and the state database away.)
//!
//! Every check against jitgate's answers is also made against the source: the rows in the
//! state database and the replica's own sled trail, read offline once it has stopped.

#[path = "support/api.rs"]
mod api;
#[path = "cluster_audit/replicas.rs"]
mod replicas;
mod support;

use api::{AUDITOR_TOKEN, poll};
use replicas::{ALICE_TOKEN, Replicas, api, cli, local_trail, stop};
use serde_json::Value;
use support::clients::psql_script;
use support::{ALICE, ALICE_PASSWORD, APP_TARGET, output_text};

/// A statement long enough that its second run is stored as a reference to the first.
const LONG_SELECT: &str =
    "SELECT n, n * 2 AS twice, 'a fairly long statement text' AS label FROM ok_rows ORDER BY n";

/// Run alice's session on `jg`: a table, two rows, the long select twice.
fn alice_session(jg: &support::Jitgate) {
    let script = format!(
        "CREATE TABLE ok_rows (n int);\nINSERT INTO ok_rows VALUES (1), (2);\n\
         {LONG_SELECT};\n{LONG_SELECT};\n"
    );
    let out = psql_script(
        &jg.conninfo(ALICE, APP_TARGET),
        ALICE_PASSWORD,
        &[],
        &script,
    );
    assert!(
        out.status.success(),
        "alice's session: {}",
        output_text(&out)
    );
}

/// The one ended session `who` sees through `jg`'s API, once it is there.
fn ended_session(jg: &support::Jitgate, token: &str) -> Value {
    poll("the ended session in the other replica's list", || {
        let (status, v) = api(jg, token).get("/v1/sessions");
        match v.as_array() {
            Some(list) if status == 200 && list.len() == 1 && list[0]["ended_at"].is_f64() => {
                Ok(list[0].clone())
            }
            _ => Err(format!("{status} {v}")),
        }
    })
}

/// Statement texts of an event list, in order.
fn statements(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "statement")
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_session_on_a_is_listed_replayed_and_verified_through_b() {
    let r = Replicas::new();
    let mut a = r.start("jg-a");
    let b = r.start("jg-b");
    alice_session(&a);
    assert_eq!(
        r.pg.superuser_psql_db(&r.target_db, "SELECT count(*) FROM ok_rows;"),
        "2",
        "the session ran on the target"
    );

    // Listed through B, for alice (her own) and for the auditor.
    let s = ended_session(&b, ALICE_TOKEN);
    assert_eq!(s, ended_session(&b, AUDITOR_TOKEN));
    let id = s["id"].as_str().expect("a session id").to_string();
    assert_eq!(
        (s["user"].as_str(), s["target"].as_str()),
        (Some(ALICE), Some(APP_TARGET))
    );

    // Its events through B: every one from node jg-a, the repeated text put back whole.
    let events = api(&b, ALICE_TOKEN).get_ok(&format!("/v1/sessions/{id}/events"));
    let events = events.as_array().expect("events").clone();
    assert!(events.iter().all(|e| e["node"] == "jg-a"), "{events:?}");
    assert!(events.iter().all(|e| e["text_ref"].is_null()), "{events:?}");
    let texts = statements(&events);
    let long = format!("{LONG_SELECT};");
    assert_eq!(texts.iter().filter(|t| **t == long).count(), 2, "{texts:?}");
    assert_eq!(
        r.state_sql(
            "SELECT count(*) FROM jitgate_audit_events \
             WHERE node = 'jg-a' AND position('\"text_ref\"'::bytea IN record) > 0;"
        ),
        "1",
        "the second run was shipped as a reference, and read back whole"
    );
    assert_eq!(
        events.first().map(|e| e["kind"].clone()),
        Some("session_start".into())
    );
    assert_eq!(
        events.last().map(|e| e["kind"].clone()),
        Some("session_end".into())
    );

    // The CLI through B: sessions, replay as JSON and verify.
    let out = cli(&b, ALICE_TOKEN, &["sessions", "--json"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&id),
        "{}",
        output_text(&out)
    );
    let out = cli(&b, ALICE_TOKEN, &["replay", &id, "--format", "json"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let replayed: Value = serde_json::from_slice(&out.stdout).expect("replay --format json");
    assert!(
        replayed
            .to_string()
            .contains("a fairly long statement text"),
        "{replayed}"
    );
    let out = cli(&b, AUDITOR_TOKEN, &["audit", "verify"]);
    let shipped = r.shipped("jg-a").len() + r.shipped("jg-b").len();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ok {shipped} events"),
        "every shipped event was checked"
    );
    let verified = api(&b, AUDITOR_TOKEN).get_ok("/v1/audit/verify");
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(
        verified["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["node"] == "jg-a")),
        "{verified}"
    );

    // The export through B: every shipped event, each naming its node.
    let out = cli(&b, AUDITOR_TOKEN, &["audit", "export"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let exported: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an export line is JSON"))
        .collect();
    assert_eq!(
        exported.len(),
        shipped,
        "the export holds every shipped event"
    );
    assert!(
        exported
            .iter()
            .all(|e| e["node"] == "jg-a" || e["node"] == "jg-b"),
        "{exported:?}"
    );
    assert_eq!(
        statements(&exported),
        texts,
        "the export puts referenced texts back too"
    );

    // The CLI reading the state database itself, with B's config (no API, no local store).
    let config = b.config_path().to_str().expect("a UTF-8 path").to_string();
    let out = cli(
        &b,
        "",
        &["replay", &id, "--format", "json", "--config", &config],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let direct: Value = serde_json::from_slice(&out.stdout).expect("replay --config");
    assert_eq!(
        statements(direct["events"].as_array().expect("events")),
        texts,
        "the same history, read directly: {direct}"
    );

    // What B served is exactly A's own trail for that session, byte for byte (hashes).
    stop(&mut a);
    let local = local_trail(&r.data_dir("jg-a"));
    let served: Vec<(u64, String)> = events
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap_or(0),
                e["hash"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert!(
        served.iter().all(|e| local.contains(e)),
        "{served:?} not all in {local:?}"
    );
    assert_eq!(
        r.shipped("jg-a"),
        local,
        "every local event of A is in PostgreSQL"
    );
}

#[test]
fn an_ssh_recording_made_on_a_plays_back_through_b() {
    use support::sshd::{Keys, TARGET, ssh_client};
    let r = Replicas::new().with_ssh();
    let a = r.start("jg-a");
    let b = r.start("jg-b");
    let out = support::run_timeout(
        ssh_client(a.ssh_port(), &Keys::shared().alice, TARGET).arg("echo recorded-on-$((6*7))"),
        None,
        api::POLL,
    );
    assert!(out.status.success(), "ssh through A: {}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "recorded-on-42"
    );

    let s = ended_session(&b, ALICE_TOKEN);
    assert_eq!(s["protocol"], "ssh", "{s}");
    let id = s["id"].as_str().expect("a session id").to_string();
    let channels = api(&b, ALICE_TOKEN).get_ok(&format!("/v1/sessions/{id}/recordings"));
    assert_eq!(channels.as_array().map(Vec::len), Some(1), "{channels}");
    let (status, cast) = api(&b, ALICE_TOKEN).get(&format!("/v1/sessions/{id}/recording"));
    assert_eq!(status, 200, "{cast}");
    let cast = cast
        .as_str()
        .map(str::to_string)
        .unwrap_or(cast.to_string());
    assert!(
        cast.contains("recorded-on-42"),
        "the output, as A recorded it: {cast}"
    );
    let out = cli(&b, ALICE_TOKEN, &["replay", &id, "--format", "cast"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        cast,
        "the CLI plays the same cast"
    );
}

#[test]
fn a_tampered_shipped_row_is_named_by_node_and_event() {
    let r = Replicas::new();
    let a = r.start("jg-a");
    let b = r.start("jg-b");
    alice_session(&a);
    ended_session(&b, AUDITOR_TOKEN);
    let auditor = api(&b, AUDITOR_TOKEN);
    assert_eq!(auditor.get_ok("/v1/audit/verify")["ok"], true);

    // One byte of event 3's JSON (its closing brace), as shipped.
    r.state_sql(
        "UPDATE jitgate_audit_events \
         SET record = set_byte(record, length(record) - 1, get_byte(record, length(record) - 1) # 1) \
         WHERE node = 'jg-a' AND seq = 3;",
    );
    let (status, v) = auditor.get("/v1/audit/verify");
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["ok"], false);
    let error = v["error"].as_str().unwrap_or("");
    assert!(
        error.contains("node jg-a") && error.contains("event 3"),
        "names the node and the event: {error}"
    );
    let node = v["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == "jg-a"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (node["ok"].clone(), node["seq"].clone()),
        (false.into(), 3.into()),
        "{v}"
    );
    let out = cli(&b, AUDITOR_TOKEN, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("node jg-a") && printed.contains("event 3"),
        "{printed}"
    );

    // Undone, it verifies again; a session column edited, or the last row removed, shows.
    r.state_sql(
        "UPDATE jitgate_audit_events \
         SET record = set_byte(record, length(record) - 1, get_byte(record, length(record) - 1) # 1) \
         WHERE node = 'jg-a' AND seq = 3;",
    );
    assert_eq!(auditor.get_ok("/v1/audit/verify")["ok"], true);
    r.state_sql(
        "UPDATE jitgate_audit_events SET session = 'someone-else' WHERE node = 'jg-a' AND seq = 2;",
    );
    let (status, v) = auditor.get("/v1/audit/verify");
    assert_eq!(status, 409, "{v}");
    let error = v["error"].as_str().unwrap_or("");
    assert!(
        error.contains("node jg-a") && error.contains("event 2") && error.contains("session"),
        "{error}"
    );
    let (last, _) = *r.shipped("jg-a").last().expect("rows");
    r.state_sql(&format!(
        "UPDATE jitgate_audit_events SET session = (SELECT session FROM jitgate_audit_events \
         WHERE node = 'jg-a' AND seq = 3) WHERE node = 'jg-a' AND seq = 2;\n\
         DELETE FROM jitgate_audit_events WHERE node = 'jg-a' AND seq = {last};"
    ));
    let (status, v) = auditor.get("/v1/audit/verify");
    assert_eq!(status, 409, "{v}");
    let error = v["error"].as_str().unwrap_or("");
    assert!(
        error.contains("node jg-a") && error.contains(&format!("event {last}")),
        "{error}"
    );
}
