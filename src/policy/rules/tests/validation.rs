//! Rule compilation: defaults, the approval settings a rule carries, and validation that
//! reports every problem.

use super::*;

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
paths = ["var/log/*", "/x/[y"]
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
        r#"rules[0] "bad one": paths: "var/log/*" is not absolute"#,
        r#"rules[0] "bad one": paths: bad glob "/x/[y""#,
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
