//! Statement shapes: a statement's text with the values of some literals blanked.
//!
//! Clients of the simple protocol (psql scripts, `pgbench -M simple`, most ORMs without
//! server-side prepares) send the same statement again and again with different values, so
//! caching by exact text would miss every time and re-parse. The cache keys its second level
//! by shape, and a grant covers statements of the approved statement's shape.
//!
//! Invariant (what the cache and grants rely on): two texts with the same shape are equal
//! byte for byte except inside blanked literals, and every blanked literal is a *value*: its
//! value can change neither the class, the tables, the functions nor how either parser
//! (sqlparser's or PostgreSQL's) cuts the text into tokens. A literal is blanked only when
//! all of these hold, and otherwise kept verbatim:
//! - every statement of the text begins with a data keyword (`SELECT`, `INSERT`, `UPDATE`,
//!   `DELETE`, `WITH`, `VALUES`, `TABLE`, `(`) or a transaction keyword: option lists
//!   (`EXPLAIN (ANALYZE 1)`, `VACUUM (FULL 0)`, `COPY … WITH (FREEZE 1)`), `SET` values
//!   and other utility statements are never blanked;
//! - the token before it is an operator, `(`, `,`, `[` or a keyword that introduces a value
//!   (`SELECT`, `WHERE`, `AND`, …), never an option name;
//! - it is not inside the arguments of a function of the dangerous catalogue
//!   (`setval('s', …)`, `set_config('role', …)`): there a literal names what is changed;
//! - it is a plain number (`[0-9]+` or `[0-9]+.[0-9]+`) or a plain `'…'` string without a
//!   backslash (so `standard_conforming_strings` and escapes cannot change where it ends),
//!   bordered by characters that cannot join it to a neighbouring token; its text in the
//!   statement is checked against the token, so a tokenizer position error cannot blank
//!   anything else.
//!
//! Everything else — keywords, identifiers, whitespace, comments, other literals — stays
//! byte for byte. A text that does not tokenize has no shape (it is analysed on its own and
//! fails closed). The property test in `tests/shape.rs` checks the invariant over the whole
//! SQL test corpus with literal values mutated.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::catalog::{FunctionKind, function_kind};

/// Marks a blanked literal in a shape. A text containing it has no shape, so a marker can
/// never come from the text itself.
const MARK: char = '\u{1}';

/// Statement openers whose literals may be values.
const DATA_STATEMENTS: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE", "BEGIN", "START", "COMMIT",
    "END", "ROLLBACK", "ABORT",
];

/// Keywords after which a literal is an expression operand in a data statement.
const VALUE_KEYWORDS: &[&str] = &[
    "SELECT",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "WHEN",
    "THEN",
    "ELSE",
    "BETWEEN",
    "LIKE",
    "ILIKE",
    "LIMIT",
    "OFFSET",
    "HAVING",
    "RETURNING",
];

/// The shape of `text`, or `None` when it does not tokenize or no literal was blanked (then
/// the exact text is as good a key).
pub fn shape(text: &str) -> Option<String> {
    let (key, blanked) = key(text)?;
    (blanked > 0).then_some(key)
}

/// The shape of `text` even when nothing was blanked (then the text itself), for a grant:
/// `None` only when it does not tokenize.
pub fn grant_shape(text: &str) -> Option<String> {
    key(text).map(|(k, _)| k)
}

/// [`shape`] from the tokens sqlparser's tokenizer (`PostgreSqlDialect`) made of `text`, so
/// a cache miss tokenizes once for the shape and the analysis.
pub fn shape_of_tokens(text: &str, tokens: &[TokenWithSpan]) -> Option<String> {
    let (key, blanked) = key_of_tokens(text, tokens)?;
    (blanked > 0).then_some(key)
}

/// The key and how many literals it blanked.
fn key(text: &str) -> Option<(String, usize)> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .ok()?;
    key_of_tokens(text, &tokens)
}

fn key_of_tokens(text: &str, tokens: &[TokenWithSpan]) -> Option<(String, usize)> {
    if text.contains(MARK) {
        return None;
    }
    if !every_statement_is_data(tokens) {
        return Some((text.to_string(), 0));
    }
    let mut cursor = Cursor::new(text);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0usize;
    let mut blanked = 0usize;
    let mut previous: Option<&Token> = None;
    // One entry per open parenthesis: whether it opens a dangerous function's arguments.
    let mut open: Vec<bool> = Vec::new();
    for t in tokens {
        if matches!(t.token, Token::Whitespace(_)) {
            continue;
        }
        match &t.token {
            Token::LParen => open.push(previous.is_some_and(dangerous_function)),
            Token::RParen => {
                open.pop();
            }
            _ => {}
        }
        let candidate = matches!(t.token, Token::Number(..) | Token::SingleQuotedString(_))
            && previous.is_some_and(introduces_value)
            && !open.contains(&true);
        previous = Some(&t.token);
        if !candidate {
            continue;
        }
        let (Some(start), Some(end)) = (cursor.byte(t.span.start), cursor.byte(t.span.end)) else {
            continue;
        };
        let Some(mark) = plain_value(text, start, end, &t.token) else {
            continue;
        };
        out.push_str(&text[copied..start]);
        out.push(MARK);
        out.push(mark);
        copied = end;
        blanked += 1;
    }
    out.push_str(&text[copied..]);
    Some((out, blanked))
}

/// Whether each statement of the text opens with a data or transaction keyword.
fn every_statement_is_data(tokens: &[TokenWithSpan]) -> bool {
    let mut at_start = true;
    for t in tokens {
        match &t.token {
            Token::Whitespace(_) => {}
            Token::SemiColon => at_start = true,
            other if at_start => {
                at_start = false;
                let ok = match other {
                    Token::LParen => true,
                    Token::Word(w) => {
                        w.quote_style.is_none()
                            && DATA_STATEMENTS
                                .iter()
                                .any(|k| w.value.eq_ignore_ascii_case(k))
                    }
                    _ => false,
                };
                if !ok {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// Whether `t`, followed by `(`, names a function of the dangerous catalogue.
fn dangerous_function(t: &Token) -> bool {
    let Token::Word(w) = t else {
        return false;
    };
    let name = match w.quote_style {
        Some(_) => w.value.clone(),
        None => w.value.to_ascii_lowercase(),
    };
    matches!(function_kind(&name), FunctionKind::Dangerous(_))
}

/// Whether a literal right after `t` is an expression operand.
fn introduces_value(t: &Token) -> bool {
    match t {
        Token::Eq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::StringConcat
        | Token::LParen
        | Token::Comma
        | Token::LBracket => true,
        Token::Word(w) => {
            w.quote_style.is_none()
                && VALUE_KEYWORDS
                    .iter()
                    .any(|k| w.value.eq_ignore_ascii_case(k))
        }
        _ => false,
    }
}

/// The marker for the literal `token` at `text[start..end]` if it is a plain value whose
/// text is exactly what the token says and that cannot join a neighbouring token.
fn plain_value(text: &str, start: usize, end: usize, token: &Token) -> Option<char> {
    let raw = text.get(start..end)?;
    let joins = |c: Option<char>| {
        c.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '.' | '\'' | '&' | '\\'))
    };
    if joins(text[..start].chars().next_back()) || joins(text[end..].chars().next()) {
        return None;
    }
    match token {
        Token::Number(n, false) if raw == n && plain_number(raw) => Some('n'),
        Token::SingleQuotedString(s)
            if !s.contains('\\')
                && raw.len() == s.len() + 2 + s.matches('\'').count()
                && raw.starts_with('\'')
                && raw.ends_with('\'')
                && raw[1..raw.len() - 1].replace("''", "'") == *s =>
        {
            Some('s')
        }
        _ => None,
    }
}

/// `[0-9]+` or `[0-9]+.[0-9]+`.
fn plain_number(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('.') {
        None => digits(s),
        Some((a, b)) => digits(a) && digits(b),
    }
}

/// Turns the tokenizer's line/column locations (1-based, columns in characters, lines cut
/// at `\n`) into byte offsets, moving forward only: tokens come in text order.
struct Cursor<'a> {
    text: &'a str,
    line: u64,
    column: u64,
    byte: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor {
            text,
            line: 1,
            column: 1,
            byte: 0,
        }
    }

    fn byte(&mut self, at: Location) -> Option<usize> {
        if (at.line, at.column) < (self.line, self.column) {
            return None;
        }
        let mut chars = self.text[self.byte..].chars();
        while (self.line, self.column) < (at.line, at.column) {
            let c = chars.next()?;
            self.byte += c.len_utf8();
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        Some(self.byte)
    }
}
