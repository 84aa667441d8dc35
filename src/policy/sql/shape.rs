//! Statement shapes: the token stream of a statement with every literal's value blanked.
//!
//! Clients of the simple protocol (psql scripts, `pgbench -M simple`, most ORMs without
//! server-side prepares) send the same statement again and again with different literals,
//! so caching by exact text would miss every time and re-parse. The classification never
//! depends on a literal's value — only on statement kinds, relations, functions and
//! keywords — so two texts with the same shape classify the same, and the cache keys its
//! second level by shape.
//!
//! Soundness rests on using the very tokenizer the classifier parses with (sqlparser's,
//! PostgreSQL dialect): two texts with equal shapes are equal token for token except inside
//! literals. A text that does not tokenize has no shape (it is analysed on its own and fails
//! closed). Identifiers, quoted identifiers, keywords, operators and placeholders are kept
//! verbatim; whitespace and comments are dropped (they carry no meaning).

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Separates tokens in a shape so that token boundaries survive.
const SEP: char = '\u{1}';

/// The shape of `text`, or `None` when it does not tokenize or has no literal (then the
/// exact text is as good a key).
pub fn shape(text: &str) -> Option<String> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize()
        .ok()?;
    let mut out = String::with_capacity(text.len());
    let mut literals = 0usize;
    for t in &tokens {
        let blank = match t {
            Token::Whitespace(_) => continue,
            Token::Number(..) => "0",
            Token::SingleQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::DollarQuotedString(_) => "''",
            other => {
                out.push_str(&other.to_string());
                out.push(SEP);
                continue;
            }
        };
        literals += 1;
        // The literal's kind stays in the shape (E'' vs '' vs $$ vs a number), only its
        // value goes.
        out.push_str(kind(t));
        out.push_str(blank);
        out.push(SEP);
    }
    (literals > 0).then_some(out)
}

fn kind(t: &Token) -> &'static str {
    match t {
        Token::Number(..) => "n:",
        Token::SingleQuotedString(_) => "s:",
        Token::EscapedStringLiteral(_) => "e:",
        Token::NationalStringLiteral(_) => "N:",
        Token::HexStringLiteral(_) => "x:",
        Token::SingleQuotedByteStringLiteral(_) => "b:",
        Token::UnicodeStringLiteral(_) => "u:",
        Token::DollarQuotedString(_) => "d:",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::policy::sql::{SqlOptions, analyze_sql};

    #[test]
    fn literals_are_blanked_and_everything_else_kept() {
        let a = shape("SELECT abalance FROM pgbench_accounts WHERE aid = 4711;").unwrap();
        let b = shape("select abalance from pgbench_accounts where aid = 12;").unwrap();
        assert_ne!(a, b, "keywords keep their spelling; only literals go");
        assert_eq!(
            shape("SELECT a FROM t WHERE x = 'one' AND y = 2").unwrap(),
            shape("SELECT a FROM t WHERE x = 'two'   AND y = 99 -- note").unwrap()
        );
        assert_ne!(shape("SELECT 'x' FROM t"), shape("SELECT \"x\" FROM t"));
        assert_ne!(shape("SELECT 1 FROM t"), shape("SELECT 1 FROM u"));
        assert_ne!(shape("SELECT E'a' FROM t"), shape("SELECT 'a' FROM t"));
        assert_eq!(shape("SELECT a FROM t"), None, "no literal: no shape");
        assert_eq!(shape("SELECT 'unterminated"), None);
    }

    /// The property the cache relies on: texts of one shape classify identically.
    #[test]
    fn same_shape_same_classification() {
        let trusted = HashSet::new();
        let opts = SqlOptions {
            trusted_functions: &trusted,
        };
        let pairs = [
            (
                "SELECT * FROM t WHERE id = 1",
                "SELECT * FROM t WHERE id = 2",
            ),
            (
                "UPDATE t SET v = 'a' WHERE id = 1",
                "UPDATE t SET v = 'b' WHERE id = 9",
            ),
            ("SELECT setval('a', 1)", "SELECT setval('pg_authid', 99)"),
            ("SELECT nextval('s')", "SELECT nextval('t')"),
            ("COPY t FROM '/tmp/a'", "COPY t FROM '/etc/passwd'"),
            ("SET search_path = 'a'", "SET search_path = 'b'"),
            ("DO $$ BEGIN END $$", "DO $$ BEGIN PERFORM 1; END $$"),
            (
                "SELECT pg_read_file('/etc/hosts')",
                "SELECT pg_read_file('/etc/shadow')",
            ),
            ("SELECT 'x'::regclass", "SELECT 'pg_class'::regclass"),
            (
                "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
                "INSERT INTO t VALUES (3, 'c'), (4, 'd')",
            ),
            (
                "SELECT set_config('a', 'b', false)",
                "SELECT set_config('role', 'x', false)",
            ),
            (
                "SELECT now() - interval '1 day'",
                "SELECT now() - interval '2 hours'",
            ),
            ("SELECT E'\\x41'", "SELECT E'\\\\'"),
        ];
        for (a, b) in pairs {
            assert_eq!(shape(a), shape(b), "{a} / {b} should share a shape");
            let (x, y) = (analyze_sql(a, &opts), analyze_sql(b, &opts));
            assert_eq!(x.classification.class, y.classification.class, "{a} / {b}");
            assert_eq!(
                x.classification.tables, y.classification.tables,
                "{a} / {b}"
            );
            assert_eq!(
                x.classification.functions, y.classification.functions,
                "{a} / {b}"
            );
            assert_eq!(x.effects, y.effects, "{a} / {b}");
        }
    }
}
