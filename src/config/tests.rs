use super::target::valid_host_port;
use super::*;

#[test]
fn host_port_forms() {
    assert!(valid_host_port("127.0.0.1:5432"));
    assert!(valid_host_port("[::1]:5432"));
    assert!(valid_host_port("db.internal:5432"));
    assert!(!valid_host_port("db.internal"));
    assert!(!valid_host_port("db:0"));
    assert!(!valid_host_port("db:99999"));
    assert!(!valid_host_port("bad host:1"));
}

#[test]
fn reports_every_problem_at_once() {
    let text = r#"
[server]
api_listen = "nope"
postgres_listen = "also nope"
data_dir = "/tmp/x"
startup_timeout = "soon"

[[targets]]
name = "db"
kind = "postgres"
address = "127.0.0.1:5432"
database = "app"
user = "app"
password_file = "/nonexistent/pw"
"#;
    let errs = Config::parse(text, Path::new("/")).unwrap_err().0;
    assert!(errs.iter().any(|e| e.contains("api_listen")), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("postgres_listen")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("startup_timeout")),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| e.contains("password_file")), "{errs:?}");
}

#[test]
fn unknown_keys_are_rejected() {
    let text = "[server]\napi_listen = \"127.0.0.1:1\"\ndata_dir = \"/tmp\"\nbogus = 1\n";
    let errs = Config::parse(text, Path::new("/")).unwrap_err().0;
    assert!(errs[0].contains("bogus"), "{errs:?}");
}

#[test]
fn target_password_is_not_in_debug_output() {
    let text = r#"
[server]
api_listen = "127.0.0.1:1"
data_dir = "/tmp"
[[targets]]
name = "db"
kind = "postgres"
address = "127.0.0.1:5432"
database = "app"
user = "app"
password_file = "PW"
"#;
    let dir = std::env::temp_dir().join(format!("jitgate-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("PW"), "s3cr3t-value\n").unwrap();
    let cfg = Config::parse(text, &dir).unwrap();
    let t = cfg.target("db").unwrap();
    assert_eq!(t.password.as_ref().unwrap().expose(), "s3cr3t-value");
    assert!(!format!("{cfg:?}").contains("s3cr3t"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn recording_limit_has_a_default_and_a_minimum() {
    let base = "[server]\napi_listen = \"127.0.0.1:1\"\ndata_dir = \"/tmp\"\n";
    let cfg = Config::parse(base, Path::new("/")).unwrap();
    assert_eq!(
        cfg.audit.recording_limit_bytes,
        DEFAULT_RECORDING_LIMIT_BYTES
    );
    let set = format!("{base}[audit]\nrecording_limit_bytes = 1048576\n");
    let cfg = Config::parse(&set, Path::new("/")).unwrap();
    assert_eq!(cfg.audit.recording_limit_bytes, 1 << 20);
    let tiny = format!("{base}[audit]\nrecording_limit_bytes = 100\n");
    let errs = Config::parse(&tiny, Path::new("/")).unwrap_err().0;
    assert!(
        errs.iter().any(|e| e.contains("recording_limit_bytes")),
        "{errs:?}"
    );
}

#[test]
fn api_auditors_name_known_users_and_groups() {
    let base = "[server]\napi_listen = \"127.0.0.1:8080\"\ndata_dir = \"/tmp/x\"\n\n\
                [[users]]\nname = \"erin\"\ngroups = [\"security\"]\n\n\
                [[users]]\nname = \"dave\"\ngroups = [\"dev\"]\n\n";
    let ok = format!("{base}[api]\nauditors = [\"group:security\", \"user:dave\"]\n");
    let config = Config::parse(&ok, Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
    let erin = config.user("erin").expect("erin is configured");
    let dave = config.user("dave").expect("dave is configured");
    assert!(config.api.is_auditor(erin));
    assert!(config.api.is_auditor(dave));

    let none = Config::parse(base, Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !none.api.is_auditor(erin),
        "no [api] section: nobody is an auditor"
    );

    let bad =
        format!("{base}[api]\nauditors = [\"group:nobody\", \"user:zed\", \"erin\", \"user:\"]\n");
    let errs = Config::parse(&bad, Path::new("/")).unwrap_err().0;
    assert_eq!(errs.len(), 4, "every bad entry is reported: {errs:?}");
    assert!(errs[0].contains("api.auditors[0]") && errs[0].contains("no known"));
    assert!(errs[1].contains("api.auditors[1]") && errs[1].contains("no known"));
    assert!(errs[2].contains("api.auditors[2]") && errs[2].contains("is not"));
    assert!(errs[3].contains("api.auditors[3]") && errs[3].contains("is not"));

    let unknown_key = format!("{base}[api]\nauditor = [\"user:erin\"]\n");
    assert!(Config::parse(&unknown_key, Path::new("/")).is_err());
}

const SERVER: &str = "[server]\napi_listen = \"127.0.0.1:1\"\ndata_dir = \"/tmp\"\n";

#[test]
fn no_cluster_section_means_no_cluster() {
    let config = Config::parse(SERVER, Path::new("/")).expect("valid");
    assert!(config.cluster.is_none());
}

#[test]
fn cluster_section_defaults() {
    let text = format!(
        "{SERVER}[cluster]\nnode = \"jg-a\"\nstate_url = \"host=10.0.0.5 port=5432 dbname=jitgate user=jitgate\"\n"
    );
    let c = Config::parse(&text, Path::new("/"))
        .expect("valid")
        .cluster
        .expect("cluster");
    assert_eq!(c.node, "jg-a");
    assert_eq!(c.state_tls, UpstreamTls::Prefer);
    assert_eq!(c.node_timeout, DEFAULT_NODE_TIMEOUT);
    assert_eq!(c.heartbeat_interval, DEFAULT_HEARTBEAT_INTERVAL);
    assert_eq!(c.state.get_dbname(), Some("jitgate"));
    assert!(c.state_password.is_none());
}

#[test]
fn cluster_section_reports_every_problem() {
    let text = format!(
        r#"{SERVER}[cluster]
node = "jg a"
state_url = "host=db dbname=jitgate user=jitgate password=oops"
state_password_file = "/nonexistent/pw"
state_password_env = "JITGATE_TEST_UNSET_VAR"
state_tls = "maybe"
node_timeout = "2s"
heartbeat_interval = "1s"
"#
    );
    let errs = Config::parse(&text, Path::new("/")).unwrap_err().0;
    for want in [
        "cluster.node",
        "holds a password",
        "not both",
        "cluster.state_tls",
        "at least three heartbeat_interval",
    ] {
        assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:?}");
    }
    let bad_url = format!("{SERVER}[cluster]\nnode = \"a\"\nstate_url = \"host=\"\"\n");
    assert!(Config::parse(&bad_url, Path::new("/")).is_err());
    let no_user = format!("{SERVER}[cluster]\nnode = \"a\"\nstate_url = \"host=db\"\n");
    let errs = Config::parse(&no_user, Path::new("/")).unwrap_err().0;
    assert!(errs.iter().any(|e| e.contains("names no user")), "{errs:?}");
    let unknown =
        format!("{SERVER}[cluster]\nnode = \"a\"\nstate_url = \"host=db user=u\"\nfoo = 1\n");
    let errs = Config::parse(&unknown, Path::new("/")).unwrap_err().0;
    assert!(errs[0].contains("foo"), "{errs:?}");
}
