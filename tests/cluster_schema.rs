//! The state database of `[cluster]`: connecting (plain and TLS with a verified CA) and the
//! versioned schema, which replicas starting at the same moment apply exactly once.

mod support;

use jitgate::cluster::schema::{MIGRATIONS, latest_version};
use jitgate::config::{Cluster, Config};
use support::{PgCluster, TempDir};

/// The `[cluster]` of a config whose state database is `db` on the test cluster, as `role`.
fn cluster_config(dir: &TempDir, node: &str, db: &str, role: &str, tls: &str) -> Cluster {
    let pg = PgCluster::shared();
    let password_file = dir.join(&format!("{node}.password"));
    std::fs::write(&password_file, support::cluster::role_password(role))
        .expect("write the password file");
    let ca = match tls {
        "disable" => String::new(),
        _ => format!(
            "state_ca_file = {:?}\n",
            pg.ca_pem_path().display().to_string()
        ),
    };
    let text = format!(
        r#"
[server]
api_listen = "127.0.0.1:0"
data_dir = {data:?}

[cluster]
node = "{node}"
state_url = "host=localhost port={port} dbname={db} user={role}"
state_password_file = {password:?}
state_tls = "{tls}"
{ca}"#,
        data = dir.path().display().to_string(),
        port = pg.port(),
        password = password_file.display().to_string(),
    );
    let config = Config::parse(&text, dir.path()).expect("a valid [cluster] config");
    config.cluster.expect("the [cluster] section")
}

fn migrations_table(db: &str) -> String {
    PgCluster::shared().superuser_psql_db(
        db,
        "SELECT string_agg(version::text, ',' ORDER BY version) FROM jitgate_schema_migrations;",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_at_once_migrate_exactly_once() {
    let pg = PgCluster::shared();
    let dir = TempDir::new("cluster-schema");
    let expected: Vec<String> = MIGRATIONS.iter().map(|m| m.version.to_string()).collect();
    // Several rounds: the race is real only if both transactions overlap, which they do most
    // of the time on a fresh database (both connect first, then both migrate).
    for round in 0..4 {
        let db = pg.fresh_database("app");
        let a = cluster_config(&dir, "jg-a", &db, "app", "disable");
        let b = cluster_config(&dir, "jg-b", &db, "app", "disable");
        let (ra, rb) = tokio::join!(
            async {
                let (_, mut c) = jitgate::cluster::prepare(&a).await.expect("replica a");
                // Migrating again finds nothing left to do.
                jitgate::cluster::schema::migrate(&mut c)
                    .await
                    .expect("again")
            },
            async {
                let (_, mut c) = jitgate::cluster::prepare(&b).await.expect("replica b");
                jitgate::cluster::schema::migrate(&mut c)
                    .await
                    .expect("again")
            },
        );
        assert!(
            ra.is_empty() && rb.is_empty(),
            "round {round}: {ra:?} {rb:?}"
        );
        assert_eq!(migrations_table(&db), expected.join(","), "round {round}");
        let tables = pg.superuser_psql_db(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename IN \
             ('jitgate_nodes','jitgate_requests','jitgate_approvals','jitgate_grants');",
        );
        assert_eq!(tables, "4", "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let pg = PgCluster::shared();
    let dir = TempDir::new("cluster-schema-newer");
    let db = pg.fresh_database("app");
    let a = cluster_config(&dir, "jg-a", &db, "app", "disable");
    jitgate::cluster::prepare(&a).await.expect("first start");
    let newer = latest_version() + 1;
    pg.superuser_psql_db(
        &db,
        &format!("INSERT INTO jitgate_schema_migrations (version, name) VALUES ({newer}, 'from the future');"),
    );
    let err = jitgate::cluster::prepare(&a)
        .await
        .err()
        .expect("a schema from a newer jitgate is refused");
    assert!(
        err.to_string().contains(&format!("schema version {newer}")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_tls_require_verifies_the_certificate_and_encrypts() {
    let pg = PgCluster::shared();
    let dir = TempDir::new("cluster-schema-tls");
    // app_tls may only come in over TLS (pg_hba hostssl).
    let db = pg.fresh_database("app_tls");
    let c = cluster_config(&dir, "jg-tls", &db, "app_tls", "require");
    let (_, client) = jitgate::cluster::prepare(&c).await.expect("TLS connect");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the state connection is encrypted");
    // With TLS disabled, the hostssl-only role is turned away: the mode is honoured.
    let plain = cluster_config(&dir, "jg-plain", &db, "app_tls", "disable");
    let err = jitgate::cluster::prepare(&plain)
        .await
        .err()
        .expect("no plain text for a hostssl role");
    assert!(err.to_string().contains("state store"), "{err}");
}

#[test]
fn the_example_replica_configs_pass_check_config() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy-config/cluster");
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        let path = dir.join(format!("jitgate-{n}.toml"));
        let out = support::run_timeout(
            support::jitgate_cmd()
                .arg("check-config")
                .arg("--config")
                .arg(&path)
                .env("JITGATE_STATE_PASSWORD", "example")
                .env("JITGATE_APP_DB_PASSWORD", "example"),
            None,
            std::time::Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            support::output_text(&out)
        );
        let text = std::fs::read_to_string(&path).expect("read the example");
        nodes.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("node = \""))
                .filter_map(|l| l.split('"').next())
                .map(str::to_string),
        );
    }
    // One config shape, three node names.
    assert_eq!(nodes, ["jg-a", "jg-b", "jg-c"]);
}
