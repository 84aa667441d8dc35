//! The class of one statement by its kind (its own class only: nested statements,
//! functions and relations are the walk's business, see [`super::walk`]).
//!
//! Invariant: only statement kinds listed here get a class below `unknown`; every other
//! kind sqlparser knows (many are other dialects') is `unknown`.

use std::borrow::Cow;

use sqlparser::ast::{
    CommentObject, CopySource, CopyTarget, DescribeAlias, Expr, FromTable, GrantObjects,
    ObjectName, ObjectType, Reset, Set, Statement, TableFactor, TableObject, UtilityOption, Value,
};

use super::catalog::{Pinned, harmless_setting, pinned_setting};
use super::names::ident;
use crate::policy::Class;

type Why = Cow<'static, str>;

fn is(class: Class, why: &'static str) -> (Class, Why) {
    (class, Cow::Borrowed(why))
}

/// The statement's own class and a one-line reason.
pub(super) fn statement_class(s: &Statement) -> (Class, Why) {
    use Class::*;
    match s {
        Statement::Query(_) => is(Read, "SELECT is read"),
        Statement::Insert(i) if matches!(i.table, TableObject::TableFunction(_)) => {
            is(Unknown, "INSERT INTO TABLE FUNCTION is not recognised")
        }
        Statement::Insert(_) => is(Write, "INSERT is write"),
        Statement::Update(_) => is(Write, "UPDATE is write"),
        Statement::Delete(_) => is(Write, "DELETE is write"),
        Statement::Merge(_) => is(Write, "MERGE is write"),
        Statement::Copy { to, target, .. } => match (to, target) {
            (_, CopyTarget::Program { .. }) => is(Code, "COPY … PROGRAM runs a shell command"),
            (_, CopyTarget::File { .. }) => is(Admin, "COPY to or from a server file is admin"),
            (true, CopyTarget::Stdout) => is(Read, "COPY … TO STDOUT is read"),
            (false, CopyTarget::Stdin) => is(Write, "COPY … FROM is write"),
            _ => is(Unknown, "COPY with this direction is not recognised"),
        },
        Statement::Set(set) => set_class(set),
        Statement::Reset(r) => match &r.reset {
            Reset::ALL => is(Read, "RESET ALL is read"),
            Reset::SessionAuthorization => {
                is(Privilege, "RESET SESSION AUTHORIZATION is privilege")
            }
            Reset::ConfigurationParameter(name) => setting_class("RESET", name),
        },
        Statement::ShowVariable { .. } => is(Read, "SHOW is read"),
        Statement::StartTransaction {
            statements,
            exception,
            ..
        } if statements.is_empty() && exception.is_none() => is(Read, "BEGIN is read"),
        Statement::Commit { .. } => is(Read, "COMMIT is read"),
        Statement::Rollback { .. } => is(Read, "ROLLBACK is read"),
        Statement::Savepoint { .. } => is(Read, "SAVEPOINT is read"),
        Statement::ReleaseSavepoint { .. } => is(Read, "RELEASE is read"),
        Statement::LISTEN { .. } => is(Read, "LISTEN is read"),
        Statement::UNLISTEN { .. } => is(Read, "UNLISTEN is read"),
        Statement::NOTIFY { .. } => is(Write, "NOTIFY signals other sessions: write"),
        Statement::Discard { .. } => is(Read, "DISCARD is read"),
        Statement::Declare { stmts, .. }
            if stmts.iter().all(|d| {
                d.for_query.is_some()
                    && matches!(d.declare_type, Some(sqlparser::ast::DeclareType::Cursor))
            }) =>
        {
            is(Read, "DECLARE CURSOR takes the class of its query")
        }
        Statement::Fetch { into: None, .. } => is(Read, "FETCH is read"),
        Statement::Close { .. } => is(Read, "CLOSE is read"),
        Statement::Prepare { .. } => is(Read, "PREPARE takes the class of its statement"),
        Statement::Execute {
            immediate: false,
            into,
            using,
            output: false,
            default: false,
            ..
        } if into.is_empty() && using.is_empty() => is(Read, "EXECUTE of a prepared statement"),
        Statement::Deallocate { .. } => is(Read, "DEALLOCATE is read"),
        Statement::Explain {
            describe_alias: DescribeAlias::Explain,
            ..
        } => is(Read, "EXPLAIN is read"),
        Statement::Lock(_) => is(Write, "LOCK is write"),
        Statement::Vacuum(_) => is(Admin, "VACUUM is admin"),
        Statement::Analyze(_) => is(Admin, "ANALYZE is admin"),
        Statement::Grant(_) => is(Privilege, "GRANT is privilege"),
        Statement::Revoke(_) => is(Privilege, "REVOKE is privilege"),
        Statement::GrantRole(_) => is(Privilege, "GRANT of a role is privilege"),
        Statement::RevokeRole(_) => is(Privilege, "REVOKE of a role is privilege"),
        Statement::AlterDefaultPrivileges(_) => {
            is(Privilege, "ALTER DEFAULT PRIVILEGES is privilege")
        }
        Statement::CreateRole(_) | Statement::CreateUser(_) => {
            is(Privilege, "role DDL is privilege")
        }
        Statement::AlterRole { .. } | Statement::AlterUser(_) => {
            is(Privilege, "role DDL is privilege")
        }
        Statement::Drop {
            object_type: ObjectType::Role | ObjectType::User | ObjectType::Group,
            ..
        } => is(Privilege, "role DDL is privilege"),
        Statement::CreatePolicy(_) | Statement::AlterPolicy(_) | Statement::DropPolicy(_) => {
            is(Privilege, "row-level security policies are privilege")
        }
        Statement::CreateFunction(_) => is(Code, "CREATE FUNCTION is code"),
        Statement::CreateProcedure { .. } => is(Code, "CREATE PROCEDURE is code"),
        Statement::AlterFunction(_) => is(Code, "ALTER FUNCTION is code"),
        Statement::Call(_) => is(Code, "CALL is code"),
        Statement::CreateExtension(_) => is(Code, "CREATE EXTENSION runs its install script: code"),
        Statement::Load { .. } => is(Code, "LOAD loads a shared library: code"),
        Statement::CreateRule(_) => is(Code, "CREATE RULE rewrites other statements: code"),
        Statement::CreateServer(_) | Statement::CreateForeignDataWrapper(_) => {
            is(Admin, "foreign servers reach other systems: admin")
        }
        Statement::CreateUserMapping(_) => is(Admin, "user mappings hold credentials: admin"),
        Statement::RefreshMaterializedView(_) => is(Write, "REFRESH MATERIALIZED VIEW is write"),
        Statement::Truncate(_) => is(Ddl, "TRUNCATE is ddl"),
        Statement::Comment { .. } => is(Ddl, "COMMENT is ddl"),
        Statement::CreateTable(_)
        | Statement::CreateView(_)
        | Statement::CreateIndex(_)
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateSequence { .. }
        | Statement::CreateType { .. }
        | Statement::CreateDomain(_)
        | Statement::CreateCollation(_)
        | Statement::CreateForeignTable(_)
        | Statement::CreateTextSearch(_)
        | Statement::CreateOperator(_)
        | Statement::CreateOperatorFamily(_)
        | Statement::CreateOperatorClass(_)
        | Statement::CreateAggregate(_)
        | Statement::CreateTrigger(_)
        | Statement::AlterTable(_)
        | Statement::AlterSchema(_)
        | Statement::AlterIndex { .. }
        | Statement::AlterView(_)
        | Statement::AlterType(_)
        | Statement::AlterCollation(_)
        | Statement::AlterOperator(_)
        | Statement::AlterOperatorFamily(_)
        | Statement::AlterOperatorClass(_)
        | Statement::AlterTextSearch(_)
        | Statement::AlterTrigger(_)
        | Statement::Drop { .. }
        | Statement::DropFunction(_)
        | Statement::DropDomain(_)
        | Statement::DropProcedure { .. }
        | Statement::DropRule(_)
        | Statement::DropTrigger(_)
        | Statement::DropExtension(_)
        | Statement::DropOperator(_)
        | Statement::DropOperatorFamily(_)
        | Statement::DropOperatorClass(_) => is(Ddl, "schema change: ddl"),
        _ => is(Unknown, "this statement kind is not recognised"),
    }
}

fn set_class(set: &Set) -> (Class, Why) {
    match set {
        Set::SingleAssignment {
            variable,
            hivevar: false,
            values,
            ..
        } => match pinned_violation(variable, values) {
            Some(refused) => refused,
            None => setting_class("SET", variable),
        },
        Set::ParenthesizedAssignments { variables, .. } => {
            // No PostgreSQL form: whatever it sets, a pinned setting is not proven kept.
            match variables.iter().find_map(pinned_of) {
                Some(p) => pinned_unknown(p, "in a tuple assignment"),
                None => settings_class(variables.iter()),
            }
        }
        Set::MultipleAssignments { assignments } => assignments
            .iter()
            .map(
                |a| match pinned_violation(&a.name, std::slice::from_ref(&a.value)) {
                    Some(refused) => refused,
                    None => setting_class("SET", &a.name),
                },
            )
            .max_by_key(|(c, _)| *c)
            .unwrap_or_else(|| is(Class::Read, "SET is read")),
        Set::SetRole { .. } => is(Class::Privilege, "SET ROLE is privilege"),
        Set::SetSessionAuthorization(_) => {
            is(Class::Privilege, "SET SESSION AUTHORIZATION is privilege")
        }
        Set::SetTimeZone { .. } => is(Class::Read, "SET TIME ZONE is read"),
        Set::SetNames { charset_name, .. } => {
            match Pinned::ClientEncoding.holds(&charset_name.value) {
                true => is(Class::Read, "SET NAMES UTF8 is read"),
                false => pinned_unknown(Pinned::ClientEncoding, "by SET NAMES"),
            }
        }
        // The default is the value of the start-up packet, which the proxy sets to UTF8.
        Set::SetNamesDefault {} => is(Class::Read, "SET NAMES DEFAULT is read"),
        Set::SetTransaction { .. } => is(Class::Read, "SET TRANSACTION is read"),
        _ => is(Class::Unknown, "this SET form is not recognised"),
    }
}

/// The pinned setting a `SET` name denotes (one plain part), if any.
fn pinned_of(name: &ObjectName) -> Option<Pinned> {
    match name.0.as_slice() {
        [p] => p.as_ident().and_then(|i| pinned_setting(&ident(i))),
        _ => None,
    }
}

/// `unknown`, naming the pinned setting a statement would change.
fn pinned_unknown(p: Pinned, how: &str) -> (Class, Why) {
    (
        Class::Unknown,
        format!(
            "{} may only be {} (the proxy reads SQL with that value; another one would let \
             the server read a different statement): not changed {how}",
            p.name(),
            p.value()
        )
        .into(),
    )
}

/// A `SET name = value` that moves a pinned setting off its value, as `unknown`. `DEFAULT`
/// goes back to the start-up value, which the proxy pinned (client_encoding) or watches
/// (standard_conforming_strings, see the relay's ParameterStatus watch).
fn pinned_violation(name: &ObjectName, values: &[Expr]) -> Option<(Class, Why)> {
    let p = pinned_of(name)?;
    let value = match values {
        [Expr::Value(v)] => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            Value::Number(n, _) => Some(n.clone()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        [Expr::Identifier(i)]
            if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default") =>
        {
            return None;
        }
        [Expr::Identifier(i)] => Some(i.value.clone()),
        _ => None,
    };
    match value {
        Some(v) if p.holds(&v) => None,
        Some(v) => Some(pinned_unknown(p, &format!("to {v:?}"))),
        None => Some(pinned_unknown(p, "to a value the proxy cannot read")),
    }
}

/// `SET` of several parameters at once: the most sensitive of them (`read` when none).
fn settings_class<'a>(names: impl Iterator<Item = &'a ObjectName>) -> (Class, Why) {
    names
        .map(|n| setting_class("SET", n))
        .max_by_key(|(c, _)| *c)
        .unwrap_or_else(|| is(Class::Read, "SET is read"))
}

fn setting_class(verb: &'static str, name: &ObjectName) -> (Class, Why) {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) => ident(i),
            None => String::from("?"),
        })
        .collect();
    let n = parts.join(".");
    match n.as_str() {
        "role" | "session_authorization" => {
            (Class::Privilege, format!("{verb} {n} is privilege").into())
        }
        _ if harmless_setting(&n) => (Class::Read, format!("{verb} {n} is read").into()),
        _ => (
            Class::Admin,
            format!("{verb} {n} is admin (not a reviewed session parameter)").into(),
        ),
    }
}

/// Whether an `EXPLAIN` runs its statement: `ANALYZE` given and not explicitly false.
pub(super) fn explain_runs(analyze: bool, options: Option<&[UtilityOption]>) -> bool {
    analyze
        || options.unwrap_or_default().iter().any(|o| {
            o.name.value.eq_ignore_ascii_case("analyze") && !o.arg.as_ref().is_some_and(is_false)
        })
}

fn is_false(e: &Expr) -> bool {
    let word = |s: &str| {
        matches!(
            s.to_ascii_lowercase().as_str(),
            "false" | "off" | "0" | "no"
        )
    };
    match e {
        Expr::Value(v) => match &v.value {
            Value::Boolean(b) => !b,
            Value::Number(n, _) => n == "0",
            Value::SingleQuotedString(s) => word(s),
            _ => false,
        },
        Expr::Identifier(i) => word(&i.value),
        _ => false,
    }
}

fn factor_name(f: &TableFactor) -> Option<&ObjectName> {
    match f {
        TableFactor::Table { name, .. } => Some(name),
        _ => None,
    }
}

/// Relations a statement names outside the places the visitor reports (COPY, DROP, GRANT,
/// COMMENT, VACUUM) and the targets of data-modifying statements (always listed, even when
/// a CTE shares the name).
pub(super) fn statement_tables(s: &Statement) -> Vec<&ObjectName> {
    let mut out = Vec::new();
    match s {
        Statement::Insert(i) => {
            if let TableObject::TableName(n) = &i.table {
                out.push(n);
            }
        }
        Statement::Update(u) => out.extend(factor_name(&u.table.relation)),
        Statement::Delete(d) => {
            out.extend(d.tables.iter());
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
            out.extend(from.iter().filter_map(|t| factor_name(&t.relation)));
        }
        Statement::Merge(m) => out.extend(factor_name(&m.table)),
        Statement::Copy {
            source: CopySource::Table { table_name, .. },
            ..
        } => out.push(table_name),
        Statement::Drop {
            object_type: ObjectType::Table | ObjectType::View | ObjectType::MaterializedView,
            names,
            ..
        } => out.extend(names.iter()),
        Statement::Grant(g) => {
            if let Some(GrantObjects::Tables(t)) = &g.objects {
                out.extend(t.iter());
            }
        }
        Statement::Revoke(r) => {
            if let Some(GrantObjects::Tables(t)) = &r.objects {
                out.extend(t.iter());
            }
        }
        Statement::Comment {
            object_type: CommentObject::Table,
            object_name,
            ..
        } => out.push(object_name),
        Statement::Vacuum(v) => out.extend(v.table_name.iter()),
        _ => {}
    }
    out
}
