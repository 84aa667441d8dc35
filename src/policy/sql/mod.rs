//! SQL classification with sqlparser's `PostgreSqlDialect` and its `Visitor`.
//!
//! [`analyze_sql`] is context-free: the same text always gives the same [`SqlAnalysis`], so
//! it is cached by text ([`crate::policy::cache`]). What depends on the session (which names it has
//! prepared) is resolved afterwards by [`resolve_class`].
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
//! Known limits (syntax cannot see them): a view, rule or trigger can run functions the
//! statement does not name; unqualified names are reported as `public.` whatever the
//! session's `search_path` is, so rules about other schemas should use `*.table` globs.

use std::collections::{BTreeSet, HashSet};

use sqlparser::ast::{Statement, Visit};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::policy::{Class, Classification, clip};
use walk::Walk;

mod statement;
mod walk;

/// Upper bound on the tokens of all still-open expression segments at any point (a segment
/// is what lies between commas at one parenthesis level; set operators are never reset by
/// commas). It bounds the depth of the AST, whose drop and traversal recurse.
pub const MAX_OPEN_TOKENS: usize = 4096;

/// Options that come from the config.
pub struct SqlOptions<'a> {
    /// Function names (lower-case; `name` or `schema.name`) the operator declared pure.
    pub trusted_functions: &'a HashSet<String>,
}

/// Context-free analysis of one query string (possibly several statements).
#[derive(Clone, Debug)]
pub struct SqlAnalysis {
    pub classification: Classification,
    /// The class of everything except what `EXECUTE` runs. Equal to
    /// `classification.class` when the text has no `EXECUTE`.
    pub base_class: Class,
    /// `PREPARE` / `DEALLOCATE` / `EXECUTE` references, in text order.
    pub effects: Vec<SqlEffect>,
}

/// What a statement does to the session's prepared statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlEffect {
    Prepare {
        name: String,
        class: Class,
    },
    /// `None` = `DEALLOCATE ALL` (also `DISCARD ALL`).
    Deallocate {
        name: Option<String>,
    },
    Execute {
        name: String,
    },
}

impl SqlAnalysis {
    /// Whether the text runs a prepared statement by name.
    pub fn has_execute(&self) -> bool {
        self.effects
            .iter()
            .any(|e| matches!(e, SqlEffect::Execute { .. }))
    }
}

/// Analyses one query string as a Postgres simple-query message would carry it.
pub fn analyze_sql(text: &str, opts: &SqlOptions) -> SqlAnalysis {
    let dialect = PostgreSqlDialect {};
    let tokens = match Tokenizer::new(&dialect, text).tokenize_with_location() {
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
    classify_statements(&statements, opts)
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

/// Rejects token streams whose expression chains could make the AST deeper than the stack
/// can drop. Linear in the number of tokens.
fn check_depth(tokens: &[TokenWithSpan]) -> Result<(), String> {
    // Per open parenthesis level: tokens since the last comma, and set operators seen.
    let mut levels: Vec<(usize, usize)> = vec![(0, 0)];
    let mut open = 0usize; // sum over `levels` of both counters, plus the depth
    for t in tokens {
        match &t.token {
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket | Token::LBrace => {
                bump(&mut levels, &mut open, false);
                levels.push((0, 0));
                open += 1;
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                if levels.len() > 1
                    && let Some((seg, ops)) = levels.pop()
                {
                    open = open.saturating_sub(seg + ops + 1);
                }
                bump(&mut levels, &mut open, false);
            }
            Token::Comma => {
                if let Some(top) = levels.last_mut() {
                    open = open.saturating_sub(top.0);
                    top.0 = 0;
                }
            }
            Token::SemiColon if levels.len() == 1 => {
                levels = vec![(0, 0)];
                open = 0;
            }
            Token::Word(w)
                if matches!(
                    w.keyword,
                    Keyword::UNION | Keyword::EXCEPT | Keyword::INTERSECT
                ) =>
            {
                bump(&mut levels, &mut open, true);
            }
            _ => bump(&mut levels, &mut open, false),
        }
        if open > MAX_OPEN_TOKENS {
            return Err(format!(
                "statement too deeply nested or too long an expression chain to analyse \
                 (more than {MAX_OPEN_TOKENS} open tokens)"
            ));
        }
    }
    Ok(())
}

fn bump(levels: &mut [(usize, usize)], open: &mut usize, set_op: bool) {
    if let Some(top) = levels.last_mut() {
        if set_op {
            top.1 += 1;
        } else {
            top.0 += 1;
        }
        *open += 1;
    }
}

/// Normalises identifier parts the way Postgres does: lower-case unless quoted.
pub(crate) fn ident(i: &sqlparser::ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

/// Sorted, deduplicated strings.
pub(crate) type NameSet = BTreeSet<String>;

#[cfg(test)]
mod tests;
