//! Compiling and validating [`RuleSpec`]s into [`Rule`]s. Every problem is reported, one
//! human line each, prefixed with `rules[i] "name": `.

use std::collections::HashSet;
use std::time::Duration;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use ipnet::IpNet;

use super::hours;
use super::{
    Approver, DEFAULT_GRANT, DEFAULT_HOLD, Hours, Known, MAX_GRANT_CEILING, Rule, RuleSpec,
};
use crate::policy::{Class, Decision};

/// Compiles and validates every rule; returns every problem, not just the first.
pub fn compile(specs: &[RuleSpec], known: &Known) -> Result<Vec<Rule>, Vec<String>> {
    let mut errs = Vec::new();
    let mut rules = Vec::new();
    let mut names = HashSet::new();
    for (i, spec) in specs.iter().enumerate() {
        let mut e = Errs {
            prefix: format!("rules[{i}] {:?}: ", spec.name),
            list: &mut errs,
        };
        if spec.name.trim().is_empty() {
            e.push("name is empty".into());
        } else if !names.insert(spec.name.as_str()) {
            e.push("another rule has the same name".into());
        }
        if let Some(rule) = compile_one(i, spec, known, &mut e) {
            rules.push(rule);
        }
    }
    if errs.is_empty() {
        Ok(rules)
    } else {
        Err(errs)
    }
}

struct Errs<'a> {
    prefix: String,
    list: &'a mut Vec<String>,
}

impl Errs<'_> {
    fn push(&mut self, msg: String) {
        self.list.push(format!("{}{msg}", self.prefix));
    }
}

/// A list condition: `None` when absent; an error when present but empty.
fn list<'a>(e: &mut Errs, field: &str, v: &'a Option<Vec<String>>) -> Option<&'a [String]> {
    let v = v.as_deref()?;
    if v.is_empty() {
        e.push(format!(
            "{field} is empty (leave it out to match everything)"
        ));
    }
    Some(v)
}

fn duration(e: &mut Errs, field: &str, v: &Option<String>, default: Duration) -> Duration {
    let Some(s) = v else { return default };
    match humantime::parse_duration(s.trim()) {
        Ok(d) => d,
        Err(err) => {
            e.push(format!(
                "{field} {s:?} is not a duration like \"5m\" or \"1h30m\": {err}"
            ));
            default
        }
    }
}

fn compile_one(i: usize, spec: &RuleSpec, known: &Known, e: &mut Errs) -> Option<Rule> {
    let errors_before = e.list.len();

    let mut target_globs = Vec::new();
    let targets = list(e, "targets", &spec.targets).map(<[String]>::to_vec);
    for t in targets.unwrap_or_else(|| vec!["*".into()]) {
        match glob(&t, false) {
            Ok(g) => {
                let m = g.compile_matcher();
                if !known.targets.iter().any(|k| m.is_match(k)) {
                    e.push(format!("targets: {t:?} matches no known target"));
                }
                target_globs.push(g);
            }
            Err(err) => e.push(format!("targets: {err}")),
        }
    }

    let users = list(e, "users", &spec.users).map(<[String]>::to_vec);
    for u in users.iter().flatten() {
        if !known.users.contains(u) {
            e.push(format!("users: unknown user {u:?}"));
        }
    }
    let groups = list(e, "groups", &spec.groups).map(<[String]>::to_vec);
    for g in groups.iter().flatten() {
        if !known.groups.contains(g) {
            e.push(format!("groups: unknown group {g:?}"));
        }
    }

    let source = list(e, "source", &spec.source).map(|nets| {
        let mut out = Vec::new();
        for n in nets {
            let parsed = n
                .trim()
                .parse::<IpNet>()
                .or_else(|_| n.trim().parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => out.push(net),
                Err(_) => e.push(format!("source: {n:?} is not a CIDR like \"10.0.0.0/8\"")),
            }
        }
        out
    });

    let hours = spec.hours.as_ref().map(|h| {
        let specs: Vec<&String> = match h {
            Hours::One(s) => vec![s],
            Hours::Many(v) => v.iter().collect(),
        };
        if specs.is_empty() {
            e.push("hours is empty (leave it out to match every hour)".into());
        }
        let mut out = Vec::new();
        for s in specs {
            match hours::parse(s) {
                Ok(mut w) => out.append(&mut w),
                Err(err) => e.push(format!("hours: {err}")),
            }
        }
        out
    });

    let classes = list(e, "classes", &spec.classes).map(|cl| {
        let mut out = Vec::new();
        for c in cl {
            match Class::parse(c) {
                Some(c) => out.push(c),
                None => e.push(format!(
                    "classes: unknown class {c:?} (one of {})",
                    Class::ALL.map(Class::as_str).join(", ")
                )),
            }
        }
        out
    });

    let tables = list(e, "tables", &spec.tables).map(|t| {
        let mut out = Vec::new();
        for p in t {
            if !p.contains('.') {
                e.push(format!(
                    "tables: {p:?} has no schema (tables are schema.table: write \"public.{p}\" \
                     or \"*.{p}\")"
                ));
            }
            match glob(p, true) {
                Ok(g) => out.push(g),
                Err(err) => e.push(format!("tables: {err}")),
            }
        }
        out
    });

    let commands = list(e, "commands", &spec.commands).map(|c| {
        let mut out = Vec::new();
        for p in c {
            if p.contains('/') {
                e.push(format!(
                    "commands: {p:?} is a path; name the program (\"rm\")"
                ));
            }
            match glob(p, false) {
                Ok(g) => out.push(g),
                Err(err) => e.push(format!("commands: {err}")),
            }
        }
        out
    });

    let paths = list(e, "paths", &spec.paths).map(|c| {
        let mut out = Vec::new();
        for p in c {
            if !p.starts_with('/') {
                e.push(format!("paths: {p:?} is not absolute (\"/var/log/*\")"));
            }
            match path_glob(p) {
                Ok(g) => out.push(g),
                Err(err) => e.push(format!("paths: {err}")),
            }
        }
        out
    });

    let mut approvers = Vec::new();
    for a in &spec.approvers {
        let parsed = match a.split_once(':') {
            Some(("user", n)) if !n.is_empty() => Some((Approver::User(n.into()), known.users)),
            Some(("group", n)) if !n.is_empty() => Some((Approver::Group(n.into()), known.groups)),
            _ => None,
        };
        match parsed {
            Some((ap, names)) => {
                let name = match &ap {
                    Approver::User(n) | Approver::Group(n) => n,
                };
                if names.contains(name) {
                    approvers.push(ap);
                } else {
                    e.push(format!("approvers: {a:?} names no known user or group"));
                }
            }
            None => e.push(format!(
                "approvers: {a:?} is not \"user:NAME\" or \"group:NAME\""
            )),
        }
    }

    let approvals_required = spec.approvals_required.unwrap_or(1);
    let hold_timeout = duration(e, "hold_timeout", &spec.hold_timeout, DEFAULT_HOLD);
    let max_grant = duration(e, "max_grant", &spec.max_grant, DEFAULT_GRANT);
    if hold_timeout.is_zero() {
        e.push("hold_timeout is zero: a held statement would fail at once".into());
    }
    if max_grant > MAX_GRANT_CEILING {
        e.push(format!(
            "max_grant {} is over the ceiling of {}",
            humantime::format_duration(max_grant),
            humantime::format_duration(MAX_GRANT_CEILING)
        ));
    }
    if spec.action == Decision::Review {
        if approvers.is_empty() {
            e.push("a review rule needs at least one approver who exists (\"group:NAME\")".into());
        }
        if approvals_required == 0 {
            e.push("approvals_required is 0 on a review rule".into());
        }
    }

    if e.list.len() > errors_before {
        return None;
    }
    let set = |g: Vec<Glob>| globset(g).ok();
    Some(Rule {
        name: spec.name.as_str().into(),
        index: i,
        targets: globset(target_globs).ok()?,
        users,
        groups,
        source,
        hours,
        classes,
        tables: match tables {
            Some(t) => Some(set(t)?),
            None => None,
        },
        commands: match commands {
            Some(c) => Some(set(c)?),
            None => None,
        },
        paths: match paths {
            Some(p) => Some(set(p)?),
            None => None,
        },
        action: spec.action,
        approvers,
        approvals_required,
        hold_timeout,
        max_grant,
    })
}

fn glob(pattern: &str, case_insensitive: bool) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .literal_separator(false)
        .build()
        .map_err(|e| format!("bad glob {pattern:?}: {}", e.kind()))
}

/// A glob on file paths: `*` and `?` stop at `/`, `**` crosses it.
fn path_glob(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("bad glob {pattern:?}: {}", e.kind()))
}

fn globset(globs: Vec<Glob>) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(g);
    }
    b.build().map_err(|e| e.to_string())
}
