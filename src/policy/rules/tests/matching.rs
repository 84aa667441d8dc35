//! Rule evaluation: first match wins, and every condition (targets, users and groups,
//! source, hours, classes, tables, commands) gets a test.

use super::*;

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
    let c = sql(Class::Code, &[]);
    let e = evaluate(&r, &s, &c);
    assert_eq!(e.reason(&c), "no rule matched");
}

/// Asserts the action the rules of `toml_text` take on `c` for each `(user, groups,
/// target)` request.
fn assert_actions(toml_text: &str, c: &Classification, cases: &[(&str, &[&str], &str, Action)]) {
    let r = rules(toml_text);
    for &(user, groups, target, want) in cases {
        assert_eq!(
            decide(&r, &ask(user, groups, target), c).0,
            want,
            "{user} in {groups:?} on {target}"
        );
    }
}

#[test]
fn targets_are_globs() {
    let c = sql(Class::Read, &["public.t"]);
    assert_actions(
        "[[rules]]\nname = \"dbs\"\ntargets = [\"app-db*\"]\naction = \"allow\"\n",
        &c,
        &[
            ("alice", &[], "app-db", Action::Allow),
            ("alice", &[], "app-db-replica", Action::Allow),
            ("alice", &[], "web-1", Action::Deny),
        ],
    );
    assert_actions(
        "[[rules]]\nname = \"web\"\ntargets = [\"web-?\", \"app-db\"]\naction = \"allow\"\n",
        &c,
        &[
            ("alice", &[], "web-2", Action::Allow),
            ("alice", &[], "app-db-replica", Action::Deny),
        ],
    );
}

#[test]
fn users_and_groups() {
    let c = sql(Class::Read, &[]);
    assert_actions(
        "[[rules]]\nname = \"u\"\nusers = [\"alice\"]\naction = \"allow\"\n",
        &c,
        &[
            ("alice", &[], "web-1", Action::Allow),
            ("bob", &["alice"], "web-1", Action::Deny),
        ],
    );
    assert_actions(
        "[[rules]]\nname = \"g\"\ngroups = [\"dba\", \"sre\"]\naction = \"allow\"\n",
        &c,
        &[
            ("bob", &["sre"], "web-1", Action::Allow),
            ("bob", &["dev"], "web-1", Action::Deny),
        ],
    );
    assert_actions(
        "[[rules]]\nname = \"either\"\nusers = [\"carol\"]\ngroups = [\"dba\"]\naction = \"allow\"\n",
        &c,
        &[
            ("carol", &[], "web-1", Action::Allow),
            ("bob", &["dba"], "web-1", Action::Allow),
            ("bob", &["dev"], "web-1", Action::Deny),
        ],
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
    let check = |r: &[Rule], cases: &[(SystemTime, Action, &str)]| {
        for &(now, want, when) in cases {
            let a = Ask {
                now,
                ..ask("alice", &[], "web-1")
            };
            assert_eq!(decide(r, &a, &c).0, want, "{when}");
        }
    };
    check(
        &r,
        &[
            (at(0, 9, 0), Action::Allow, "Monday 09:00"),
            (at(0, 19, 0), Action::Deny, "Monday 19:00"),
            (at(5, 9, 0), Action::Deny, "Saturday"),
        ],
    );
    let r = rules(
        "[[rules]]\nname = \"night\"\nhours = [\"Sun 22:00-02:00\", \"Wed 12:00-13:00\"]\naction = \"allow\"\n",
    );
    check(
        &r,
        &[
            (at(0, 1, 0), Action::Allow, "Sunday night into Monday"),
            (at(2, 12, 30), Action::Allow, "Wednesday 12:30"),
            (at(0, 3, 0), Action::Deny, "Monday 03:00"),
        ],
    );
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
fn paths_all_for_allow_any_for_deny_and_star_stops_at_slash() {
    let r = rules(
        r#"
[[rules]]
name = "no keys"
paths = ["/home/*/.ssh/**"]
action = "deny"

[[rules]]
name = "logs"
paths = ["/var/log/*"]
classes = ["read"]
action = "allow"
"#,
    );
    let a = ask("alice", &[], "web-1");
    let d = |class, paths: &[&str]| {
        let c = Classification {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            ..Classification::bare(class, "test")
        };
        decide(&r, &a, &c).1
    };
    assert_eq!(d(Class::Read, &["/var/log/syslog"]), "logs");
    assert_eq!(
        d(Class::Read, &["/var/log/nginx/access.log"]),
        "",
        "* stops at /"
    );
    assert_eq!(
        d(Class::Read, &["/var/log/syslog", "/etc/shadow"]),
        "",
        "allow: every path"
    );
    assert_eq!(d(Class::Write, &["/var/log/syslog"]), "");
    assert_eq!(d(Class::Read, &[]), "", "allow: at least one path");
    assert_eq!(
        d(Class::Write, &["/tmp/a", "/home/x/.ssh/authorized_keys"]),
        "no keys"
    );
    assert_eq!(
        d(Class::Read, &["var/log/syslog"]),
        "",
        "relative never matches"
    );
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
