//! Tests for rules: evaluation in `matching.rs`, compilation and validation in
//! `validation.rs`, hour windows in `hours.rs`; the config and request helpers they share
//! here.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    Approver, Known, MAX_GRANT_CEILING, PolicySpec, Rule, RuleSpec, Subject, compile, evaluate,
};
use crate::policy::Decision as Action;
use crate::policy::{Class, Classification};

mod hours;
mod matching;
mod validation;

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

/// `day` days, `h` hours and `m` minutes after Monday 2024-01-01 00:00 UTC.
fn at(day: u64, h: u64, m: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_704_067_200 + day * 86_400 + h * 3600 + m * 60)
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
        now: at(0, 10, 0),
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
    (
        e.action,
        e.rule.map(|r| r.name.to_string()).unwrap_or_default(),
    )
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
