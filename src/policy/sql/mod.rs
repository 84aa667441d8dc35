//! SQL classification with sqlparser's `PostgreSqlDialect` and its `Visitor`.
//!
//! [`analyze_sql`] is context-free: the same text always gives the same [`SqlAnalysis`], so
//! it is cached by text ([`crate::policy::cache`]). What depends on the session (which
//! names it has prepared) is resolved afterwards by [`resolve_class`].
//!
//! Invariants:
//! - Fail closed: a parse failure, an unrecognised statement kind, an unrecognised
//!   expression or `FROM` item, or a function in neither catalogue (nor trusted) makes the
//!   class `unknown`. Doubt is never `read`.
//! - Every statement of a multi-statement string counts; the most sensitive class wins.
//! - Functions and relations are found by walking the whole tree (subqueries, CTEs,
//!   defaults, `VALUES`, `ORDER BY`, …), never by matching text.
//! - `classification.class` is `unknown` whenever the text runs `EXECUTE name`, because
//!   its class depends on the session; [`resolve_class`] gives the real one.
//! - Bounded work and stack: inputs whose expression chains are too long (see
//!   [`MAX_OPEN_TOKENS`]) are `unknown` before parsing, so a 1 MB input can neither blow the
//!   stack (sqlparser's AST drop is recursive) nor take quadratic time. sqlparser's own
//!   recursion limit (50 nested levels, its default) is kept: deeper nesting is `unknown`.
//!
//! - A read is `read` on a target only if what it resolves by name (functions, operators,
//!   cast types, as PostgreSQL's tree shows them) collides with nothing the target defines
//!   outside `pg_catalog` ([`analyze_sql_on`], [`target`]); the snapshot is fixed per cache.
//!
//! Known limits (syntax cannot see them): a view, rule or trigger can run functions the
//! statement does not name; unqualified names are reported as `public.` here, and the
//! Postgres relay lists them under the schemas of the session's `search_path`
//! (`pg/relay/settings.rs`, [`session`] reads the changes from the text).
//!
//! Files, each using only the ones listed before it (no cycles):
//! - [`catalog`]: the reviewed function / setting / relation lists.
//! - `analysis.rs`: what goes in and comes out: [`SqlOptions`], [`SqlAnalysis`],
//!   [`SqlEffect`].
//! - `names.rs`: identifier and relation-name normalisation (`schema.table`).
//! - `depth.rs`: the bound on the tokens checked before parsing ([`MAX_OPEN_TOKENS`]).
//! - `statement.rs`: a statement's own class by its kind, and the relations it names.
//! - `walk.rs`: the one `Visitor` pass over the whole tree (statements, functions,
//!   operators, `FROM` items, CTE scopes).
//! - this file: [`analyze_sql`] (tokenize, bound, parse, walk) and [`resolve_class`].
//! - [`target`]: what a read resolves by name, checked against the target's own objects
//!   (functions, operators, types and casts outside `pg_catalog`).
//! - [`shape`]: a statement with its value literals blanked, the cache's second key and a
//!   grant's default scope (it uses only [`catalog`]).
//! - `tests/`: the unit tests; `tests/testdata/` holds the texts psql and pgbench send.

use sqlparser::ast::{Statement, Visit};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{TokenWithSpan, Tokenizer, TokenizerError};

use crate::policy::{Class, Classification, clip};
use depth::check_depth;
use walk::Walk;

pub mod catalog;
pub mod session;
pub mod shape;
pub mod target;

mod analysis;
mod depth;
mod functions;
mod names;
mod server_grammar;
mod statement;
mod walk;

pub use analysis::{SqlAnalysis, SqlEffect, SqlOptions};
pub use depth::MAX_OPEN_TOKENS;
pub use names::{NAME_MAX_BYTES, truncate_identifier};
pub use target::{TargetCatalog, TargetObjects};

/// Analyses one query string as a Postgres simple-query message would carry it, with no
/// target (names are judged by the catalogue alone: see [`analyze_sql_on`]).
pub fn analyze_sql(text: &str, opts: &SqlOptions) -> SqlAnalysis {
    analyze_sql_on(text, opts, &TargetCatalog::NotConsulted)
}

/// [`analyze_sql`] for a target whose own objects are `catalog`: a read that resolves a
/// name the target also defines outside `pg_catalog` is `unknown` (see [`target`]).
pub fn analyze_sql_on(text: &str, opts: &SqlOptions, catalog: &TargetCatalog) -> SqlAnalysis {
    analyze_tokens_on(text, tokenize(text), opts, catalog)
}

/// sqlparser's tokens of `text` (`PostgreSqlDialect`), for [`analyze_tokens_on`] and
/// [`shape::shape_of_tokens`].
pub fn tokenize(text: &str) -> Result<Vec<TokenWithSpan>, TokenizerError> {
    Tokenizer::new(&PostgreSqlDialect {}, text).tokenize_with_location()
}

/// [`analyze_sql_on`] with `text` already tokenized by [`tokenize`].
pub fn analyze_tokens_on(
    text: &str,
    tokens: Result<Vec<TokenWithSpan>, TokenizerError>,
    opts: &SqlOptions,
    catalog: &TargetCatalog,
) -> SqlAnalysis {
    let dialect = PostgreSqlDialect {};
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => return failed(format!("cannot parse: {e}")),
    };
    if let Err(why) = check_depth(&tokens) {
        return failed(why);
    }
    let statements = match Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
    {
        Ok(s) => s,
        Err(e) => return failed(format!("cannot parse: {e}")),
    };
    let analysis = classify_statements(&statements, opts);
    if analysis.base_class != Class::Read {
        return analysis;
    }
    match server_grammar::confirm_read(text, &statements, opts) {
        Ok(view) => match target::check(&view.called, catalog, opts) {
            Ok(()) => analysis,
            Err(why) => not_proven(analysis, why),
        },
        Err(why) => not_proven(
            analysis,
            format!("sqlparser: read; PostgreSQL grammar: {why}"),
        ),
    }
}

/// A read that could not be proven (the grammars disagree, or the target defines a name it
/// calls): the text is `unknown`, and so is every statement it prepares (a later `EXECUTE`
/// must not inherit the read).
fn not_proven(mut analysis: SqlAnalysis, why: String) -> SqlAnalysis {
    analysis.classification.class = Class::Unknown;
    analysis.base_class = Class::Unknown;
    analysis.classification.reason = clip(why, 200);
    for effect in &mut analysis.effects {
        if let SqlEffect::Prepare { class, .. } = effect {
            *class = Class::Unknown;
        }
    }
    analysis
}

fn classify_statements(statements: &[Statement], opts: &SqlOptions) -> SqlAnalysis {
    let mut walk = Walk::new(opts);
    for s in statements {
        // The walk never breaks early: every node is seen.
        let _ = s.visit(&mut walk);
    }
    let out = walk.finish();
    let mut classification = Classification {
        class: out.worst.class,
        tables: out.tables.into_iter().collect(),
        functions: out.functions.into_iter().collect(),
        commands: Vec::new(),
        paths: Vec::new(),
        reason: out.worst.reason,
    };
    if statements.is_empty() {
        classification.reason = "empty query".into();
    }
    let base_class = classification.class;
    if let Some(name) = out.effects.iter().find_map(|e| match e {
        SqlEffect::Execute { name } => Some(name),
        _ => None,
    }) {
        classification.class = Class::Unknown;
        classification.reason =
            format!("EXECUTE {name}: its class depends on what the session prepared");
    }
    SqlAnalysis {
        classification,
        base_class,
        effects: out.effects,
    }
}

fn failed(reason: String) -> SqlAnalysis {
    SqlAnalysis {
        classification: Classification::bare(Class::Unknown, clip(reason, 200)),
        base_class: Class::Unknown,
        effects: Vec::new(),
    }
}

/// Resolves `EXECUTE` references against what the session has prepared: the final class is
/// the maximum of the analysis's own class and each executed statement's remembered class.
/// Names prepared or deallocated earlier in the same text are honoured in order. An unknown
/// name makes the class `unknown`.
pub fn resolve_class(analysis: &SqlAnalysis, prepared: &dyn Fn(&str) -> Option<Class>) -> Class {
    let mut class = analysis.base_class;
    // Names this text itself prepares (Some) or deallocates (None), most recent last.
    let mut local: Vec<(Option<&str>, Option<Class>)> = Vec::new();
    for e in &analysis.effects {
        match e {
            SqlEffect::Prepare { name, class: c } => local.push((Some(name), Some(*c))),
            SqlEffect::Deallocate { name } => local.push((name.as_deref(), None)),
            SqlEffect::Execute { name } => {
                let mut found = None;
                let mut shadowed = false;
                for (n, c) in local.iter().rev() {
                    match n {
                        Some(n) if *n == name => {
                            found = *c;
                            shadowed = true;
                            break;
                        }
                        None => {
                            shadowed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                let c = if shadowed { found } else { prepared(name) };
                class = class.max(c.unwrap_or(Class::Unknown));
            }
        }
    }
    class
}

#[cfg(test)]
mod tests;
