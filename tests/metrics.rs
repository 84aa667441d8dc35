//! `GET /metrics` after real traffic: each counter, gauge and histogram moves by what the
//! traffic did, the exposition follows Prometheus conventions, and no label carries user input.

#[path = "support/api.rs"]
mod api;
mod support;

use std::collections::{BTreeMap, BTreeSet};

use api::{Fixture, failure, finish, held_id, poll};
use support::clients::sqlstate;
use support::{ALICE, ALICE_PASSWORD, APP_TARGET, PgTarget, free_port, pg_connect};

/// A target whose address nothing listens on.
const DEAD_TARGET: &str = "dead-db";
/// Strings a client chose; none may appear anywhere in /metrics.
const SQL_MARKER: &str = "zq_sql_marker_4711";
const UNKNOWN_USER: &str = "mallory_zq9";
const UNKNOWN_DB: &str = "nosuchdb_zq9";

/// One scrape, parsed.
#[derive(Debug, Default)]
struct Scrape {
    text: String,
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    /// (sample name, labels) → value.
    samples: BTreeMap<(String, BTreeMap<String, String>), f64>,
}

impl Scrape {
    /// The value of `name` with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), want)).copied()
    }

    /// Like [`Scrape::get`], absent = 0 (a labelled counter appears on first use).
    fn val(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// The value, which must be present.
    fn must(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("{name}{labels:?} missing from /metrics:\n{}", self.text))
    }
}

/// Label values in the text format: `"` `\` and newline are escaped.
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label=\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(name.trim().to_string(), value);
        rest = after[end..].trim_start_matches(',').trim();
    }
    out
}

fn parse(text: &str) -> Scrape {
    let mut s = Scrape {
        text: text.to_string(),
        ..Scrape::default()
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            s.help.insert(name.to_string(), help.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("# TYPE name type");
            s.types.insert(name.to_string(), ty.to_string());
        } else if line.starts_with('#') {
            continue;
        } else {
            let (head, value) = line.rsplit_once(' ').expect("sample value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match head.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.strip_suffix('}').expect("}"))),
                None => (head, BTreeMap::new()),
            };
            s.samples.insert((name.to_string(), labels), value);
        }
    }
    s
}

fn scrape(fx: &Fixture) -> Scrape {
    let r = support::http::request(fx.env.jg.api_addr(), "http", "GET", "/metrics", &[], None)
        .expect("GET /metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    let ct = r
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "content type {ct:?}");
    parse(&r.body)
}

/// The family a sample belongs to (`x_bucket` / `x_sum` / `x_count` of histogram `x`).
fn family_of<'a>(s: &'a Scrape, sample: &'a str) -> &'a str {
    if s.types.contains_key(sample) {
        return sample;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && s.types.get(base).is_some_and(|t| t == "histogram")
        {
            return base;
        }
    }
    sample
}

/// Names, HELP and TYPE, and label values that come from a closed set.
fn check_conventions(s: &Scrape, targets: &[&str]) {
    let classes = [
        "read",
        "write",
        "ddl",
        "privilege",
        "admin",
        "code",
        "unknown",
        "shell",
        "file_transfer",
        "port_forward",
    ];
    let allowed: BTreeMap<&str, Vec<&str>> = [
        ("protocol", vec!["postgres", "ssh"]),
        ("class", classes.to_vec()),
        ("decision", vec!["allow", "review", "deny"]),
        (
            "state",
            vec!["pending", "approved", "denied", "expired", "cancelled"],
        ),
        ("result", vec!["accepted", "refused", "ok", "error"]),
        ("target", targets.to_vec()),
    ]
    .into_iter()
    .collect();
    for (name, ty) in &s.types {
        assert!(name.starts_with("jitgate_"), "{name}: no jitgate_ prefix");
        let help = s.help.get(name).map(String::as_str).unwrap_or_default();
        assert!(!help.trim().is_empty(), "{name} has no HELP");
        match ty.as_str() {
            "counter" => assert!(name.ends_with("_total"), "counter {name} lacks _total"),
            "histogram" => assert!(
                name.ends_with("_seconds"),
                "histogram {name} lacks _seconds"
            ),
            "gauge" => assert!(!name.ends_with("_total"), "gauge {name} ends in _total"),
            other => panic!("{name}: unexpected type {other}"),
        }
    }
    for name in s.help.keys() {
        assert!(s.types.contains_key(name), "{name} has HELP but no TYPE");
    }
    for (sample, labels) in s.samples.keys() {
        let family = family_of(s, sample);
        assert!(
            s.types.contains_key(family),
            "sample {sample} has no TYPE line"
        );
        for (k, v) in labels {
            if k == "le" {
                assert!(
                    v == "+Inf" || v.parse::<f64>().is_ok(),
                    "{sample}: le={v:?}"
                );
                continue;
            }
            match allowed.get(k.as_str()) {
                Some(values) => assert!(
                    values.contains(&v.as_str()),
                    "{sample}: label {k}={v:?} is not one of {values:?}"
                ),
                None => assert!(
                    v.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{sample}: unexpected label {k}={v:?}"
                ),
            }
        }
    }
    for needle in [
        SQL_MARKER,
        UNKNOWN_USER,
        UNKNOWN_DB,
        ALICE,
        "bob",
        "public.t",
    ] {
        assert!(
            !s.text.contains(needle),
            "/metrics contains client input {needle:?}:\n{}",
            s.text
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_follow_real_traffic() {
    let dead_port = free_port();
    let fx = Fixture::with("20s", 10, |b| {
        b.server("max_connections", "2").target(PgTarget {
            address: format!("127.0.0.1:{dead_port}"),
            ..PgTarget::on_cluster(DEAD_TARGET, support::PgCluster::shared(), "app", "app")
        })
    });
    let before = scrape(&fx);
    check_conventions(&before, &[APP_TARGET, DEAD_TARGET]);
    let pg = |result: &'static str| [("protocol", "postgres"), ("result", result)];
    let stmt = |class: &'static str, decision: &'static str| {
        [
            ("protocol", "postgres"),
            ("class", class),
            ("decision", decision),
        ]
    };
    let state = |s: &'static str| [("state", s)];

    let mut s = fx.alice_session().await;
    // A read, allowed; the second time its classification comes from the cache.
    let read = format!("SELECT '{SQL_MARKER}' AS m, v FROM t WHERE id = 1");
    assert_eq!(s.value(&read).await, SQL_MARKER);
    assert_eq!(s.value(&read).await, SQL_MARKER);
    let open = scrape(&fx);
    assert_eq!(
        open.must("jitgate_active_sessions", &[("protocol", "postgres")]),
        1.0
    );

    // A write held, then approved with a grant.
    let h = s.spawn_simple("UPDATE t SET v = 1 WHERE id = 1");
    let approved = held_id(&s.notice().await).expect("request id");
    fx.bob.approve_ok(&approved, "go", Some(600));
    finish(h).await.expect("approved UPDATE");
    // A write held, then denied by an approver.
    let h = s.spawn_simple("DELETE FROM t2 WHERE id = 1");
    let denied = held_id(&s.notice().await).expect("request id");
    fx.bob.deny_ok(&denied, "no");
    assert_eq!(failure(finish(h).await).0, "42501");
    // Denied by policy: no rule allows privilege statements.
    let r = s.client.simple_query("GRANT SELECT ON t TO PUBLIC").await;
    assert_eq!(failure(r).0, "42501");

    // Over max_connections (2): a second session fits, a third is refused.
    let second = fx.alice_session().await;
    let third = pg_connect(&fx.env.alice_tokio()).await;
    let e = third.expect_err("a third connection over max_connections");
    assert_eq!(sqlstate(&e).as_deref(), Some("53300"), "{e}");
    drop(second);
    poll("the second session to close", || {
        let active = scrape(&fx).val("jitgate_active_sessions", &[("protocol", "postgres")]);
        if active == 1.0 {
            Ok(())
        } else {
            Err(format!("{active} active"))
        }
    });
    let conn =
        |user: &str, db: &str, pw: &str| format!("{} password={pw}", fx.env.jg.conninfo(user, db));
    // A wrong password, an unknown user, an unknown target: accepted, then refused at start-up.
    for c in [
        conn(ALICE, APP_TARGET, "wrong-password"),
        conn(UNKNOWN_USER, APP_TARGET, ALICE_PASSWORD),
        conn(ALICE, UNKNOWN_DB, ALICE_PASSWORD),
    ] {
        let e = pg_connect(&c).await.expect_err("refused");
        let code = sqlstate(&e);
        assert!(
            matches!(code.as_deref(), Some("28P01" | "3D000" | "28000")),
            "{c}: {e}"
        );
    }
    // A target that does not listen.
    let e = pg_connect(&conn(ALICE, DEAD_TARGET, ALICE_PASSWORD))
        .await
        .expect_err("the dead target cannot be reached");
    assert_eq!(sqlstate(&e).as_deref(), Some("08006"), "{e}");

    let during = scrape(&fx);
    assert_eq!(during.must("jitgate_live_grants", &[]), 1.0);
    drop(s);
    let after = poll("the sessions to close", || {
        let m = scrape(&fx);
        let active = m.val("jitgate_active_sessions", &[("protocol", "postgres")]);
        if active == 0.0 {
            Ok(m)
        } else {
            Err(format!("{active} active"))
        }
    });
    check_conventions(&after, &[APP_TARGET, DEAD_TARGET]);
    let d =
        |name: &str, labels: &[(&str, &str)]| after.val(name, labels) - before.val(name, labels);

    // Connections: alice twice, the refused third, three failed logins, the dead target.
    assert_eq!(d("jitgate_connections_total", &pg("accepted")), 6.0);
    assert_eq!(d("jitgate_connections_total", &pg("refused")), 1.0);
    // Statements by class and decision.
    assert_eq!(d("jitgate_statements_total", &stmt("read", "allow")), 2.0);
    assert_eq!(d("jitgate_statements_total", &stmt("write", "review")), 2.0);
    assert_eq!(
        d("jitgate_statements_total", &stmt("privilege", "deny")),
        1.0
    );
    assert_eq!(d("jitgate_statements_total", &stmt("write", "allow")), 0.0);
    // Requests by state, and how long they waited.
    assert_eq!(d("jitgate_requests_total", &state("pending")), 2.0);
    assert_eq!(d("jitgate_requests_total", &state("approved")), 1.0);
    assert_eq!(d("jitgate_requests_total", &state("denied")), 1.0);
    assert_eq!(d("jitgate_requests_total", &state("expired")), 0.0);
    assert_eq!(after.must("jitgate_pending_requests", &[]), 0.0);
    assert_eq!(d("jitgate_approval_wait_seconds_count", &[]), 2.0);
    assert!(after.must("jitgate_approval_wait_seconds_sum", &[]) > 0.0);
    // The latency the proxy adds, per statement it relays.
    assert!(
        d(
            "jitgate_proxy_latency_seconds_count",
            &[("protocol", "postgres")]
        ) >= 4.0,
        "{}",
        after.text
    );
    // The audit trail.
    assert!(after.must("jitgate_audit_flush_seconds_count", &[]) > 0.0);
    assert!(d("jitgate_audit_events_total", &[]) > 0.0);
    assert!(after.must("jitgate_audit_queue_depth", &[]) >= 0.0);
    assert_eq!(after.must("jitgate_audit_healthy", &[]), 1.0);
    // The classification cache: the repeated read was a hit.
    assert!(d("jitgate_classification_cache_hits_total", &[]) >= 1.0);
    assert!(d("jitgate_classification_cache_misses_total", &[]) >= 4.0);
    // Upstream failures, labelled with the configured target name.
    assert_eq!(
        d(
            "jitgate_upstream_connect_failures_total",
            &[("protocol", "postgres"), ("target", DEAD_TARGET)]
        ),
        1.0
    );
    assert_eq!(
        after.val(
            "jitgate_upstream_connect_failures_total",
            &[("protocol", "postgres"), ("target", APP_TARGET)]
        ),
        0.0
    );
    // Grants: revoking the one live grant brings the gauge back to 0.
    let grants = fx.bob.grants();
    assert_eq!(grants.len(), 1, "{grants:?}");
    let id = grants[0]["id"].as_str().expect("grant id");
    assert_eq!(fx.bob.delete(&format!("/v1/grants/{id}")).0, 200);
    assert_eq!(scrape(&fx).must("jitgate_live_grants", &[]), 0.0);
    // Histograms are consistent: buckets are cumulative and +Inf equals the count.
    for name in [
        "jitgate_approval_wait_seconds",
        "jitgate_audit_flush_seconds",
    ] {
        let buckets: BTreeSet<u64> = after
            .samples
            .iter()
            .filter(|((n, l), _)| n == &format!("{name}_bucket") && l.get("le").is_some())
            .map(|(_, v)| *v as u64)
            .collect();
        let count = after.must(&format!("{name}_count"), &[]);
        assert_eq!(
            after.must(&format!("{name}_bucket"), &[("le", "+Inf")]),
            count,
            "{name}"
        );
        assert!(buckets.iter().all(|b| (*b as f64) <= count), "{name}");
    }
}
