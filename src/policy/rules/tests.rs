//! Tests for rule compilation, validation and matching: every condition gets one.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn known() -> (Vec<String>, Vec<String>, Vec<String>) {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    (
        s(&["app-db", "app-db-replica", "web-1", "web-2"]),
        s(&["dev", "sre", "dba"]),
        s(&["alice", "bob", "carol"]),
    )
}

fn compile_toml(toml_text: &str) -> Result<Vec<Rule>, Vec<String>> {
    #[derive(serde::Deserialize)]
    struct File {
        rules: Vec<RuleSpec>,
    }
    let f: File = toml::from_str(toml_text).map_err(|e| vec![e.to_string()])?;
    let (t, g, u) = known();
    compile(
        &f.rules,
        &Known {
            targets: &t,
            groups: &g,
            users: &u,
        },
    )
}

fn rules(toml_text: &str) -> Vec<Rule> {
    match compile_toml(toml_text) {
        Ok(r) => r,
        Err(e) => panic!("rules do not compile: {e:?}"),
    }
}

/// 2024-01-01 was a Monday.
fn monday_at(h: u64, m: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_704_067_200 + h * 3600 + m * 60)
}

struct Ask<'a> {
    user: &'a str,
    groups: Vec<String>,
    target: &'a str,
    source: &'a str,
    now: SystemTime,
}

fn ask<'a>(user: &'a str, groups: &[&str], target: &'a str) -> Ask<'a> {
    Ask {
        user,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        target,
        source: "10.1.2.3",
        now: monday_at(10, 0),
    }
}

fn sql(class: Class, tables: &[&str]) -> Classification {
    Classification {
        tables: tables.iter().map(|t| t.to_string()).collect(),
        ..Classification::bare(class, "test")
    }
}

fn shell(class: Class, commands: &[&str]) -> Classification {
    Classification {
        commands: commands.iter().map(|t| t.to_string()).collect(),
        ..Classification::bare(class, "test")
    }
}

/// (action, rule name) for the request.
fn decide(rules: &[Rule], a: &Ask, c: &Classification) -> (Action, String) {
    let source: IpAddr = a.source.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let s = Subject {
        user: a.user,
        groups: &a.groups,
        target: a.target,
        source,
        now: a.now,
    };
    let e = evaluate(rules, &s, c);
    (e.action, e.rule.map(|r| r.name.clone()).unwrap_or_default())
}

const BASE: &str = r#"
[[rules]]
name = "reads pass"
classes = ["read"]
action = "allow"

[[rules]]
name = "no port forwarding"
classes = ["port_forward"]
action = "deny"

[[rules]]
name = "writes need one SRE"
groups = ["dev"]
classes = ["write"]
action = "review"
approvers = ["group:sre"]
max_grant = "30m"
"#;

#[test]
fn first_match_wins_and_no_match_denies() {
    let r = rules(BASE);
    let a = ask("alice", &["dev"], "app-db");
    assert_eq!(
        decide(&r, &a, &sql(Class::Read, &["public.t"])),
        (Action::Allow, "reads pass".into())
    );
    assert_eq!(
        decide(&r, &a, &sql(Class::Write, &[])),
        (Action::Review, "writes need one SRE".into())
    );
    assert_eq!(
        decide(&r, &a, &sql(Class::Ddl, &[])),
        (Action::Deny, String::new())
    );
    assert_eq!(
        decide(&r, &a, &shell(Class::PortForward, &[])),
        (Action::Deny, "no port forwarding".into())
    );
    let b = ask("bob", &[], "app-db");
    assert_eq!(
        decide(&r, &b, &sql(Class::Write, &[])).0,
        Action::Deny,
        "bob is not in dev"
    );
    let s = Subject {
        user: "x",
        groups: &[],
        target: "app-db",
        source: IpAddr::from([1, 1, 1, 1]),
        now: SystemTime::now(),
    };
    let e = evaluate(&r, &s, &sql(Class::Code, &[]));
    assert_eq!(e.reason, "no rule matched");
}

#[test]
fn review_carries_approval_settings_and_defaults() {
    let r = rules(BASE);
    let rule = &r[2];
    assert_eq!(rule.approvers, vec![Approver::Group("sre".into())]);
    assert_eq!(rule.approvals_required, 1);
    assert_eq!(rule.hold_timeout, Duration::from_secs(300));
    assert_eq!(rule.max_grant, Duration::from_secs(1800));
    assert_eq!(r[0].max_grant, Duration::from_secs(3600));
    let r = rules(
        r#"
[[rules]]
name = "r"
action = "review"
approvers = ["user:carol", "group:dba"]
approvals_required = 2
hold_timeout = "1h30m"
max_grant = "24h"
"#,
    );
    assert_eq!(r[0].approvals_required, 2);
    assert_eq!(r[0].hold_timeout, Duration::from_secs(5400));
    assert_eq!(r[0].max_grant, MAX_GRANT_CEILING);
    assert_eq!(r[0].approvers[0].to_string(), "user:carol");
    assert_eq!(
        serde_json::to_string(&r[0].approvers).unwrap_or_default(),
        r#"["user:carol","group:dba"]"#
    );
}

#[test]
fn targets_are_globs() {
    let r = rules("[[rules]]\nname = \"dbs\"\ntargets = [\"app-db*\"]\naction = \"allow\"\n");
    let c = sql(Class::Read, &["public.t"]);
    assert_eq!(
        decide(&r, &ask("alice", &[], "app-db"), &c).0,
        Action::Allow
    );
    assert_eq!(
        decide(&r, &ask("alice", &[], "app-db-replica"), &c).0,
        Action::Allow
    );
    assert_eq!(decide(&r, &ask("alice", &[], "web-1"), &c).0, Action::Deny);
    let r =
        rules("[[rules]]\nname = \"web\"\ntargets = [\"web-?\", \"app-db\"]\naction = \"allow\"\n");
    assert_eq!(decide(&r, &ask("alice", &[], "web-2"), &c).0, Action::Allow);
    assert_eq!(
        decide(&r, &ask("alice", &[], "app-db-replica"), &c).0,
        Action::Deny
    );
}

#[test]
fn users_and_groups() {
    let r = rules("[[rules]]\nname = \"u\"\nusers = [\"alice\"]\naction = \"allow\"\n");
    let c = sql(Class::Read, &[]);
    assert_eq!(decide(&r, &ask("alice", &[], "web-1"), &c).0, Action::Allow);
    assert_eq!(
        decide(&r, &ask("bob", &["alice"], "web-1"), &c).0,
        Action::Deny
    );
    let r = rules("[[rules]]\nname = \"g\"\ngroups = [\"dba\", \"sre\"]\naction = \"allow\"\n");
    assert_eq!(
        decide(&r, &ask("bob", &["sre"], "web-1"), &c).0,
        Action::Allow
    );
    assert_eq!(
        decide(&r, &ask("bob", &["dev"], "web-1"), &c).0,
        Action::Deny
    );
    let r = rules(
        "[[rules]]\nname = \"either\"\nusers = [\"carol\"]\ngroups = [\"dba\"]\naction = \"allow\"\n",
    );
    assert_eq!(decide(&r, &ask("carol", &[], "web-1"), &c).0, Action::Allow);
    assert_eq!(
        decide(&r, &ask("bob", &["dba"], "web-1"), &c).0,
        Action::Allow
    );
    assert_eq!(
        decide(&r, &ask("bob", &["dev"], "web-1"), &c).0,
        Action::Deny
    );
}

#[test]
fn source_cidrs() {
    let r = rules(
        "[[rules]]\nname = \"lan\"\nsource = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.168.1.7\"]\naction = \"allow\"\n",
    );
    let c = sql(Class::Read, &[]);
    let mut a = ask("alice", &[], "web-1");
    for (ip, want) in [
        ("10.1.2.3", Action::Allow),
        ("11.0.0.1", Action::Deny),
        ("::ffff:10.9.9.9", Action::Allow),
        ("2001:db8::1", Action::Allow),
        ("2001:db9::1", Action::Deny),
        ("192.168.1.7", Action::Allow),
        ("192.168.1.8", Action::Deny),
    ] {
        a.source = ip;
        assert_eq!(decide(&r, &a, &c).0, want, "{ip}");
    }
}

#[test]
fn hours_windows() {
    let r = rules(
        "[[rules]]\nname = \"office\"\nhours = \"Mon-Fri 08:00-18:00\"\naction = \"allow\"\n",
    );
    let c = sql(Class::Read, &[]);
    let mut a = ask("alice", &[], "web-1");
    a.now = monday_at(9, 0);
    assert_eq!(decide(&r, &a, &c).0, Action::Allow);
    a.now = monday_at(19, 0);
    assert_eq!(decide(&r, &a, &c).0, Action::Deny);
    a.now = monday_at(24 * 5 + 9, 0);
    assert_eq!(decide(&r, &a, &c).0, Action::Deny, "Saturday");
    let r = rules(
        "[[rules]]\nname = \"night\"\nhours = [\"Sun 22:00-02:00\", \"Wed 12:00-13:00\"]\naction = \"allow\"\n",
    );
    a.now = monday_at(1, 0);
    assert_eq!(
        decide(&r, &a, &c).0,
        Action::Allow,
        "Sunday night into Monday"
    );
    a.now = monday_at(24 * 2 + 12, 30);
    assert_eq!(decide(&r, &a, &c).0, Action::Allow);
    a.now = monday_at(3, 0);
    assert_eq!(decide(&r, &a, &c).0, Action::Deny);
}

#[test]
fn classes_condition() {
    let r = rules(
        "[[rules]]\nname = \"ssh kinds\"\nclasses = [\"shell\", \"file_transfer\"]\naction = \"review\"\napprovers = [\"group:sre\"]\n",
    );
    let a = ask("alice", &[], "web-1");
    assert_eq!(decide(&r, &a, &shell(Class::Shell, &[])).0, Action::Review);
    assert_eq!(
        decide(&r, &a, &shell(Class::FileTransfer, &[])).0,
        Action::Review
    );
    assert_eq!(decide(&r, &a, &shell(Class::Read, &["ls"])).0, Action::Deny);
}

#[test]
fn tables_all_for_allow_any_for_review_and_deny() {
    let r = rules(
        r#"
[[rules]]
name = "never accounts"
tables = ["public.accounts", "billing.*"]
action = "deny"

[[rules]]
name = "reports"
tables = ["reports.*", "public.Daily_*"]
classes = ["read"]
action = "allow"

[[rules]]
name = "pii"
tables = ["*.users"]
action = "review"
approvers = ["user:carol"]
"#,
    );
    let a = ask("alice", &[], "app-db");
    let d = |tables: &[&str], class| decide(&r, &a, &sql(class, tables)).1;
    assert_eq!(d(&["public.accounts"], Class::Read), "never accounts");
    assert_eq!(
        d(&["public.x", "billing.invoices"], Class::Read),
        "never accounts",
        "any table"
    );
    assert_eq!(d(&["reports.a", "reports.b"], Class::Read), "reports");
    assert_eq!(
        d(&["reports.a", "public.daily_sales"], Class::Read),
        "reports",
        "case-insensitive"
    );
    assert_eq!(
        d(&["reports.a", "public.secrets"], Class::Read),
        "",
        "allow needs every table"
    );
    assert_eq!(d(&[], Class::Read), "", "allow needs at least one table");
    assert_eq!(
        d(&["reports.a"], Class::Write),
        "",
        "class condition still applies"
    );
    assert_eq!(
        d(&["public.x", "app.users"], Class::Write),
        "pii",
        "review: any table"
    );
}

#[test]
fn commands_all_for_allow_any_for_deny() {
    let r = rules(
        r#"
[[rules]]
name = "no package managers"
commands = ["apt*", "dpkg"]
action = "deny"

[[rules]]
name = "service status"
commands = ["systemctl", "journalctl"]
action = "allow"
"#,
    );
    let a = ask("alice", &[], "web-1");
    let d = |cmds: &[&str]| decide(&r, &a, &shell(Class::Admin, cmds)).1;
    assert_eq!(d(&["apt-get", "ls"]), "no package managers");
    assert_eq!(d(&["systemctl"]), "service status");
    assert_eq!(d(&["journalctl", "systemctl"]), "service status");
    assert_eq!(d(&["systemctl", "rm"]), "");
    assert_eq!(d(&[]), "");
}

#[test]
fn absent_conditions_match_everything() {
    let r = rules("[[rules]]\nname = \"all\"\naction = \"allow\"\n");
    let mut a = ask("nobody", &[], "web-2");
    a.source = "203.0.113.9";
    a.now = UNIX_EPOCH;
    assert_eq!(
        decide(&r, &a, &shell(Class::Unknown, &["x"])).0,
        Action::Allow
    );
}

#[test]
fn validation_reports_every_problem() {
    let errs = compile_toml(
        r#"
[[rules]]
name = "bad one"
targets = ["no-such-target", "web-*"]
users = ["mallory"]
groups = ["wizards"]
source = ["10.0.0.0/33", "not-an-ip"]
hours = "Mon-Fri 08:00-25:00"
classes = ["reed"]
tables = ["accounts", "public.[x"]
commands = ["/bin/rm"]
action = "review"
approvers = ["group:nobody", "admin", "user:"]
approvals_required = 0
hold_timeout = "5 parsecs"
max_grant = "48h"

[[rules]]
name = "bad one"
action = "review"

[[rules]]
name = ""
targets = []
action = "allow"
hold_timeout = "0s"
"#,
    )
    .err()
    .unwrap_or_default();
    let want = [
        r#"rules[0] "bad one": targets: "no-such-target" matches no known target"#,
        r#"rules[0] "bad one": users: unknown user "mallory""#,
        r#"rules[0] "bad one": groups: unknown group "wizards""#,
        r#"rules[0] "bad one": source: "10.0.0.0/33" is not a CIDR"#,
        r#"rules[0] "bad one": source: "not-an-ip" is not a CIDR"#,
        r#"rules[0] "bad one": hours: window "Mon-Fri 08:00-25:00""#,
        r#"rules[0] "bad one": classes: unknown class "reed""#,
        r#"rules[0] "bad one": tables: "accounts" has no schema"#,
        r#"rules[0] "bad one": tables: bad glob "public.[x""#,
        r#"rules[0] "bad one": commands: "/bin/rm" is a path"#,
        r#"rules[0] "bad one": approvers: "group:nobody" names no known user or group"#,
        r#"rules[0] "bad one": approvers: "admin" is not "user:NAME" or "group:NAME""#,
        r#"rules[0] "bad one": approvers: "user:" is not"#,
        r#"rules[0] "bad one": hold_timeout "5 parsecs" is not a duration"#,
        r#"rules[0] "bad one": max_grant 2days is over the ceiling of 1day"#,
        r#"rules[0] "bad one": a review rule needs at least one approver who exists"#,
        r#"rules[0] "bad one": approvals_required is 0 on a review rule"#,
        r#"rules[1] "bad one": another rule has the same name"#,
        r#"rules[1] "bad one": a review rule needs at least one approver who exists"#,
        r#"rules[2] "": name is empty"#,
        r#"rules[2] "": targets is empty"#,
        r#"rules[2] "": hold_timeout is zero"#,
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "missing {w:?} in\n{}",
            errs.join("\n")
        );
    }
    assert_eq!(
        errs.len(),
        want.len(),
        "unexpected extra errors:\n{}",
        errs.join("\n")
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let e = compile_toml("[[rules]]\nname = \"x\"\naction = \"allow\"\ncolour = \"red\"\n");
    assert!(e.is_err_and(|e| e[0].contains("unknown field")));
    let e = compile_toml("[[rules]]\nname = \"x\"\naction = \"permit\"\n");
    assert!(e.is_err());
    let e = compile_toml("[[rules]]\nname = \"x\"\n");
    assert!(e.is_err_and(|e| e[0].contains("action")));
    let p: Result<PolicySpec, _> = toml::from_str("trusted_functions = [\"f\"]\nbogus = 1\n");
    assert!(p.is_err());
    let p: Result<PolicySpec, _> = toml::from_str("trusted_functions = [\"my_fn\"]\n");
    assert!(p.is_ok_and(|p| p.trusted_functions == ["my_fn"]));
}

#[test]
fn default_policy_shape_compiles() {
    let r = rules(
        r#"
[[rules]]
name = "reads pass"
targets = ["*"]
classes = ["read"]
action = "allow"

[[rules]]
name = "port forwarding is denied"
classes = ["port_forward"]
action = "deny"

[[rules]]
name = "everything else is reviewed"
classes = ["write", "ddl", "privilege", "admin", "code", "unknown", "shell", "file_transfer"]
action = "review"
approvers = ["group:sre"]
approvals_required = 1
hold_timeout = "5m"
max_grant = "30m"
"#,
    );
    let a = ask("alice", &["dev"], "web-1");
    for c in Class::ALL {
        let want = match c {
            Class::Read => Action::Allow,
            Class::PortForward => Action::Deny,
            _ => Action::Review,
        };
        assert_eq!(decide(&r, &a, &shell(c, &[])).0, want, "{c}");
    }
}
