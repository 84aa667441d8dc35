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
//! verbatim; whitespace and comments are dropped (they carry no meaning). Exception: the
//! value of a pinned setting (`client_encoding`, `standard_conforming_strings`) decides its
//! class, so a text naming one has no shape.

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
            // A pinned setting's class depends on its value (see `catalog::Pinned`).
            Token::Word(w) if pins(&w.value) => return None,
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

/// Words that may name a pinned setting (`SET client_encoding`, `SET NAMES`, …): a text
/// holding one has no shape, so it is classified on its own text.
fn pins(word: &str) -> bool {
    ["client_encoding", "names", "standard_conforming_strings"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
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
