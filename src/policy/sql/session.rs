//! What a text does to the session's `search_path`: the changes a front end tracks so that
//! unqualified names resolve as the server resolves them (ParameterStatus does not report
//! `search_path`, so it is read from the statements themselves).
//!
//! Invariants: read from the text itself, never from a cached analysis (two texts of one
//! shape set different paths); anything that may change the path in a way this module
//! cannot evaluate (`set_config` with a computed name or value) is
//! [`PathChange::Unknowable`]; a text that does not parse changes nothing here (the server
//! rejects it too, or it is `unknown` and reviewed).

use std::ops::ControlFlow;

use sqlparser::ast::{
    ContextModifier, DiscardObject, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    ObjectName, Reset, Set, Statement, Value, visit_expressions,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::names::{ident, parts};

/// One change to `search_path`, in text order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathChange {
    /// `SET search_path …`, `set_config('search_path', '…', is_local)`: the schemas as the
    /// server reads the list (folded unless double-quoted; `$user` kept as written).
    Set { schemas: Vec<String>, local: bool },
    /// `RESET search_path`, `SET search_path TO DEFAULT`, `RESET ALL`, `DISCARD ALL`.
    Reset,
    /// A change whose value the proxy cannot know.
    Unknowable,
}

/// Whether `text` may touch `search_path` at all (a cheap test before parsing).
pub fn may_change_search_path(text: &str) -> bool {
    let bytes = text.as_bytes();
    ["search_path", "set_config", "reset", "discard"]
        .iter()
        .any(|w| {
            bytes
                .windows(w.len())
                .any(|window| window.eq_ignore_ascii_case(w.as_bytes()))
        })
}

/// The `search_path` changes of `text`, in order.
pub fn search_path_changes(text: &str) -> Vec<PathChange> {
    if !may_change_search_path(text) {
        return Vec::new();
    }
    let Ok(statements) = Parser::parse_sql(&PostgreSqlDialect {}, text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in &statements {
        statement_change(s, &mut out);
        let _ = visit_expressions(s, |e| {
            if let Some(c) = set_config_change(e) {
                out.push(c);
            }
            ControlFlow::<()>::Continue(())
        });
    }
    out
}

fn is_search_path(name: &ObjectName) -> bool {
    parts(name).is_some_and(|p| p.len() == 1 && p[0] == "search_path")
}

fn statement_change(s: &Statement, out: &mut Vec<PathChange>) {
    match s {
        Statement::Set(Set::SingleAssignment {
            variable,
            values,
            scope,
            ..
        }) if is_search_path(variable) => {
            let local = matches!(scope, Some(ContextModifier::Local));
            out.push(set_values(values, local));
        }
        Statement::Set(Set::MultipleAssignments { assignments }) => {
            for a in assignments.iter().filter(|a| is_search_path(&a.name)) {
                out.push(set_values(std::slice::from_ref(&a.value), false));
            }
        }
        Statement::Set(Set::ParenthesizedAssignments { variables, .. })
            if variables.iter().any(is_search_path) =>
        {
            out.push(PathChange::Unknowable)
        }
        Statement::Reset(r) => match &r.reset {
            Reset::ALL => out.push(PathChange::Reset),
            Reset::ConfigurationParameter(n) if is_search_path(n) => out.push(PathChange::Reset),
            _ => {}
        },
        Statement::Discard {
            object_type: DiscardObject::ALL,
        } => out.push(PathChange::Reset),
        _ => {}
    }
}

/// The value list of `SET search_path`: identifiers are schema names, a string is itself a
/// list (`'a, "B"'`), `DEFAULT` resets.
fn set_values(values: &[Expr], local: bool) -> PathChange {
    let mut schemas = Vec::new();
    for v in values {
        match v {
            Expr::Identifier(i)
                if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default") =>
            {
                if values.len() == 1 {
                    return PathChange::Reset;
                }
                return PathChange::Unknowable;
            }
            Expr::Identifier(i) => schemas.push(ident(i)),
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => match split_path(s) {
                    Some(list) => schemas.extend(list),
                    None => return PathChange::Unknowable,
                },
                _ => return PathChange::Unknowable,
            },
            _ => return PathChange::Unknowable,
        }
    }
    PathChange::Set { schemas, local }
}

/// `set_config('search_path', value, is_local)` with literal arguments; a `set_config` whose
/// name or value is computed is unknowable; other calls are not a change.
fn set_config_change(e: &Expr) -> Option<PathChange> {
    let Expr::Function(f) = e else { return None };
    let name = parts(&f.name)?;
    let bare = match name.as_slice() {
        [n] => n,
        [s, n] if s == "pg_catalog" => n,
        _ => return None,
    };
    if bare != "set_config" {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return Some(PathChange::Unknowable);
    };
    let literal = |a: &FunctionArg| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        _ => None,
    };
    let args: Vec<Option<String>> = list.args.iter().map(literal).collect();
    match args.as_slice() {
        [Some(n), ..] if !n.eq_ignore_ascii_case("search_path") => None,
        [Some(_), Some(value), Some(is_local)] => {
            let local = super::catalog::parse_bool(is_local);
            match (split_path(value), local) {
                (Some(schemas), Some(local)) => Some(PathChange::Set { schemas, local }),
                _ => Some(PathChange::Unknowable),
            }
        }
        _ => Some(PathChange::Unknowable),
    }
}

/// A `search_path` string as the server splits it (`SplitIdentifierString`): comma-separated
/// identifiers, folded unless double-quoted (`""` inside quotes is one `"`); `None` when it
/// is malformed (the server then rejects the SET).
pub fn split_path(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            // Empty string: an empty path. A trailing comma is malformed.
            return if out.is_empty() { Some(out) } else { None };
        }
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        name.push('"');
                    }
                    '"' => break,
                    c => name.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                name.push(c.to_ascii_lowercase());
                chars.next();
            }
            if name.is_empty() {
                return None;
            }
        }
        out.push(super::truncate_identifier(&name).to_string());
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PathChange::{Reset, Unknowable};
    use super::*;

    fn set(schemas: &[&str], local: bool) -> PathChange {
        PathChange::Set {
            schemas: schemas.iter().map(|s| s.to_string()).collect(),
            local,
        }
    }

    #[test]
    fn set_reset_and_set_config_are_read_from_the_text() {
        let cases: &[(&str, Vec<PathChange>)] = &[
            ("SET search_path = secret", vec![set(&["secret"], false)]),
            (
                "set SEARCH_PATH to Secret, public",
                vec![set(&["secret", "public"], false)],
            ),
            (
                "SET search_path TO \"$user\", public",
                vec![set(&["$user", "public"], false)],
            ),
            ("SET search_path = \"Mixed\"", vec![set(&["Mixed"], false)]),
            (
                "SET search_path = 'a, \"B\"'",
                vec![set(&["a", "B"], false)],
            ),
            ("SET LOCAL search_path = x", vec![set(&["x"], true)]),
            ("SET SESSION search_path = x", vec![set(&["x"], false)]),
            ("SET search_path TO DEFAULT", vec![Reset]),
            ("RESET search_path", vec![Reset]),
            ("RESET ALL", vec![Reset]),
            ("DISCARD ALL", vec![Reset]),
            ("RESET work_mem", vec![]),
            ("SET work_mem = '1MB'", vec![]),
            ("SELECT * FROM accounts", vec![]),
            (
                "SELECT set_config('search_path', 'secret', false)",
                vec![set(&["secret"], false)],
            ),
            (
                "SELECT pg_catalog.set_config('SEARCH_PATH', 'a,b', true)",
                vec![set(&["a", "b"], true)],
            ),
            ("SELECT set_config('work_mem', '1MB', false)", vec![]),
            (
                "SELECT set_config('search_path', current_user, false)",
                vec![Unknowable],
            ),
            (
                "SELECT set_config(name, 'x', false) FROM t",
                vec![Unknowable],
            ),
            (
                "SELECT set_config('search_path', 'a,', false)",
                vec![Unknowable],
            ),
            (
                "BEGIN; SET LOCAL search_path = a; SELECT 1; COMMIT",
                vec![set(&["a"], true)],
            ),
            (
                "SET search_path = a; RESET search_path",
                vec![set(&["a"], false), Reset],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&search_path_changes(text), want, "{text}");
        }
    }

    #[test]
    fn path_strings_split_as_the_server_splits_them() {
        assert_eq!(split_path(""), Some(vec![]));
        assert_eq!(split_path(" A , b "), Some(vec!["a".into(), "b".into()]));
        assert_eq!(split_path("\"a\"\"b\""), Some(vec!["a\"b".into()]));
        assert_eq!(
            split_path("\"$user\", public"),
            Some(vec!["$user".into(), "public".into()])
        );
        assert_eq!(split_path("a,,b"), None);
        assert_eq!(split_path("a b"), None);
        assert_eq!(split_path("\"open"), None);
    }
}
