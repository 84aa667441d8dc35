//! The two SQL grammars must never disagree in jitgate's favour of `read`: whenever
//! jitgate classifies a text `read`, PostgreSQL's own grammar (pg_query) must see exactly
//! as many statements as sqlparser, each of a kind that can be a read (no `COPY … FROM`,
//! no `COPY` to a file or program, no two-phase commit, no `SET ROLE` or
//! `SET SESSION AUTHORIZATION`), and no modifying node, no `EXPLAIN` that analyses a
//! modifying statement, no `SELECT INTO`, no row lock. This checks the judge inside
//! `analyze_sql` from the outside, with pg_query's own node iterator (a different walk).
#![no_main]

use std::collections::HashSet;
use std::sync::LazyLock;

use jitgate::policy::Class;
use jitgate::policy::sql::{SqlOptions, analyze_sql};
use libfuzzer_sys::fuzz_target;
use pg_query::NodeRef;

static TRUSTED: LazyLock<HashSet<String>> = LazyLock::new(HashSet::new);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let analysis = analyze_sql(
        text,
        &SqlOptions {
            trusted_functions: &TRUSTED,
        },
    );
    if analysis.base_class != Class::Read {
        return;
    }
    let tree = match pg_query::parse(text, pg_query::ParserOptions::DEFAULT) {
        Ok(t) => t,
        Err(e) => panic!("read, but PostgreSQL's grammar rejects it ({e}): {text:?}"),
    };
    let sqlparser_statements =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, text)
            .map(|s| s.len())
            .unwrap_or(usize::MAX);
    assert_eq!(
        tree.protobuf.stmts.len(),
        sqlparser_statements,
        "read, but the parsers count statements differently: {text:?}"
    );
    for raw in &tree.protobuf.stmts {
        let statement = raw.stmt.as_ref().and_then(|s| s.node.as_ref());
        assert!(
            can_be_read(statement),
            "read, but PostgreSQL's statement kind is never a read: {text:?}"
        );
    }
    for (node, _, _, _) in tree.protobuf.nodes() {
        let modifying = match node {
            NodeRef::InsertStmt(_)
            | NodeRef::UpdateStmt(_)
            | NodeRef::DeleteStmt(_)
            | NodeRef::MergeStmt(_)
            | NodeRef::CreateTableAsStmt(_)
            | NodeRef::IntoClause(_)
            | NodeRef::LockingClause(_) => !under_plan_only_explain(&tree, text),
            NodeRef::SelectStmt(s) => {
                (s.into_clause.is_some() || !s.locking_clause.is_empty())
                    && !under_plan_only_explain(&tree, text)
            }
            _ => false,
        };
        assert!(!modifying, "read, but PostgreSQL's tree modifies: {text:?}");
    }
});

/// Whether a top-level statement of PostgreSQL's tree is of a kind that can be a read (its
/// parts are checked node by node).
fn can_be_read(statement: Option<&pg_query::NodeEnum>) -> bool {
    use pg_query::NodeEnum as N;
    use pg_query::protobuf::{TransactionStmtKind as T, VariableSetKind};
    match statement {
        Some(
            N::SelectStmt(_)
            | N::ExplainStmt(_)
            | N::VariableShowStmt(_)
            | N::ListenStmt(_)
            | N::UnlistenStmt(_)
            | N::DiscardStmt(_)
            | N::DeclareCursorStmt(_)
            | N::FetchStmt(_)
            | N::ClosePortalStmt(_)
            | N::PrepareStmt(_)
            | N::ExecuteStmt(_)
            | N::DeallocateStmt(_),
        ) => true,
        // Only to the client: not from it, not to a server file or program.
        Some(N::CopyStmt(c)) => !c.is_from && !c.is_program && c.filename.is_empty(),
        Some(N::TransactionStmt(t)) => [
            T::TransStmtBegin,
            T::TransStmtStart,
            T::TransStmtCommit,
            T::TransStmtRollback,
            T::TransStmtSavepoint,
            T::TransStmtRelease,
            T::TransStmtRollbackTo,
        ]
        .iter()
        .any(|k| *k as i32 == t.kind),
        // Settings that change who the session is.
        Some(N::VariableSetStmt(v)) => {
            v.kind != VariableSetKind::VarSetValue as i32
                || !matches!(
                    v.name.as_str(),
                    "role" | "session_authorization" | "session_replication_role"
                )
        }
        _ => false,
    }
}

/// Whether every statement of the text is an `EXPLAIN` without an `analyze` option (a
/// modifying node in the tree is then only planned). Coarse on purpose: a text mixing
/// plan-only EXPLAINs with other statements is not excused.
fn under_plan_only_explain(tree: &pg_query::ParseResult, _text: &str) -> bool {
    tree.protobuf.stmts.iter().all(|raw| {
        let Some(pg_query::NodeEnum::ExplainStmt(e)) =
            raw.stmt.as_ref().and_then(|s| s.node.as_ref())
        else {
            return false;
        };
        e.options.iter().all(|o| match o.node.as_ref() {
            Some(pg_query::NodeEnum::DefElem(d)) => d.defname != "analyze" || analyze_off(d),
            _ => false,
        })
    })
}

/// `analyze` given a value PostgreSQL reads as false.
fn analyze_off(d: &pg_query::protobuf::DefElem) -> bool {
    match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
        Some(pg_query::NodeEnum::Integer(i)) => i.ival == 0,
        Some(pg_query::NodeEnum::String(s)) => {
            s.sval.eq_ignore_ascii_case("false") || s.sval.eq_ignore_ascii_case("off")
        }
        Some(pg_query::NodeEnum::Boolean(b)) => !b.boolval,
        _ => false,
    }
}
