//! PostgreSQL's own grammar as the second judge of every read.
//!
//! sqlparser classifies; whatever it classifies `read` is confirmed here against the parse
//! tree of libpg_query (the server's own `gram.y` and lexer, through the `pg_query` crate),
//! because a statement the two grammars read differently is exactly where a bypass hides
//! (`EXPLAIN (ANALYSE) DELETE …`: sqlparser saw an unknown option, the server an analyse).
//!
//! Invariants:
//! - [`confirm_read`] agrees only when PostgreSQL's grammar accepts the text, sees as many
//!   statements as sqlparser, of the same kinds in the same order, and the tree holds only
//!   node kinds reviewed as read (see [`nodes`]), no modifying node outside a plan-only
//!   `EXPLAIN`, only reviewed `SET` parameters, and only functions the catalogue (or the
//!   config's trusted list) calls harmless — the same check the sqlparser walk uses.
//! - Anything else is a disagreement; the caller makes the text `unknown`.
//! - The text is parsed as the server parses it with `standard_conforming_strings = on`
//!   (the relay pins that setting) and UTF-8.

use sqlparser::ast::{DescribeAlias, Statement};

use super::analysis::SqlOptions;
use super::names::NameSet;
use super::target::CalledNames;
use tree::TreeJudge;

mod nodes;
mod serializer;
mod tree;

/// What PostgreSQL's parse tree names, when it confirms a read. Rules, grants and the audit
/// trail still take their tables and functions from sqlparser's walk; a unit test checks
/// over the whole corpus that these agree with them (only the test reads them, hence the
/// `allow`). `called` is what the target resolves by name (`super::target`).
#[derive(Debug)]
pub(super) struct ServerView {
    #[cfg_attr(not(test), allow(dead_code))]
    pub tables: NameSet,
    #[cfg_attr(not(test), allow(dead_code))]
    pub functions: NameSet,
    pub called: CalledNames,
}

/// Confirms sqlparser's `read` for `text` (parsed by sqlparser into `statements`), or says
/// why PostgreSQL's grammar disagrees.
pub(super) fn confirm_read(
    text: &str,
    statements: &[Statement],
    opts: &SqlOptions,
) -> Result<ServerView, String> {
    // pg_query's own summary pass indexes into lists it expects non-empty; a panic there is
    // a rejection, never a crash of the session.
    let parsed =
        std::panic::catch_unwind(|| pg_query::parse(text, pg_query::ParserOptions::DEFAULT));
    let tree = match parsed {
        Ok(Ok(tree)) => tree,
        Ok(Err(e)) => return Err(format!("rejects the text ({})", first_line(&e.to_string()))),
        Err(_) => return Err("its parser failed on the text".into()),
    };
    let mut judge = TreeJudge::new(opts);
    serializer::walk(&tree.protobuf, &mut judge);
    let ours: Vec<Option<&'static str>> = statements.iter().map(server_kind).collect();
    if ours.len() != judge.statements.len() {
        return Err(format!(
            "{} statement(s), not {}",
            judge.statements.len(),
            ours.len()
        ));
    }
    for (i, (mine, theirs)) in ours.iter().zip(&judge.statements).enumerate() {
        if *mine != Some(*theirs) {
            return Err(format!(
                "statement {} is a {theirs}, sqlparser's is a {}",
                i + 1,
                mine.unwrap_or("kind with no read counterpart")
            ));
        }
    }
    if let Some(why) = judge.problem {
        return Err(why);
    }
    Ok(ServerView {
        tables: judge.tables,
        functions: judge.functions,
        called: judge.called,
    })
}

fn first_line(s: &str) -> &str {
    crate::policy::char_prefix(s.lines().next().unwrap_or_default(), 120)
}

/// The parse-tree kind PostgreSQL gives a statement sqlparser may call `read`; `None` for
/// kinds that are never read.
fn server_kind(s: &Statement) -> Option<&'static str> {
    Some(match s {
        Statement::Query(_) => "SelectStmt",
        Statement::Explain {
            describe_alias: DescribeAlias::Explain,
            ..
        } => "ExplainStmt",
        Statement::Set(_) | Statement::Reset(_) => "VariableSetStmt",
        Statement::ShowVariable { .. } => "VariableShowStmt",
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => "TransactionStmt",
        Statement::LISTEN { .. } => "ListenStmt",
        Statement::UNLISTEN { .. } => "UnlistenStmt",
        Statement::Discard { .. } => "DiscardStmt",
        Statement::Declare { .. } => "DeclareCursorStmt",
        Statement::Fetch { .. } => "FetchStmt",
        Statement::Close { .. } => "ClosePortalStmt",
        Statement::Prepare { .. } => "PrepareStmt",
        Statement::Execute { .. } => "ExecuteStmt",
        Statement::Deallocate { .. } => "DeallocateStmt",
        Statement::Copy { .. } => "CopyStmt",
        _ => return None,
    })
}

/// Whether PostgreSQL's grammar writes this `pg_catalog` function for SQL syntax.
#[cfg(test)]
pub(super) fn is_grammar_function(name: &str) -> bool {
    nodes::GRAMMAR_FUNCTIONS.contains(&name)
}
