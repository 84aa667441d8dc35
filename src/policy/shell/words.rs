//! What a shell word can expand to, from brush-parser's word pieces.
//!
//! Invariants: a word is [`Arg::Literal`] only when every piece is quoted or plain text with
//! no unquoted glob or brace characters, so its value after quote removal is exactly one
//! argument, known now. Everything else is [`Arg::Opaque`]; `dash_safe` says whether each
//! word it expands to certainly does not start with `-` (so it cannot become an option).
//! Command substitutions found anywhere in the word (also inside double quotes and here
//! documents) are returned for classification.

use brush_parser::ParserOptions;

use super::arithmetic::{braced_reason, expression_ok};
use brush_parser::word::{WordPiece, WordPieceWithSource};

/// One argument as the program will (or may) see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Literal(String),
    /// `single`: certainly exactly one word (a quoted expansion, no globbing or splitting).
    Opaque {
        dash_safe: bool,
        single: bool,
    },
}

impl Arg {
    pub fn literal(&self) -> Option<&str> {
        match self {
            Arg::Literal(s) => Some(s),
            Arg::Opaque { .. } => None,
        }
    }

    /// Certainly one argument (a literal, or an expansion that cannot split or glob).
    pub fn single_word(&self) -> bool {
        match self {
            Arg::Literal(_) => true,
            Arg::Opaque { single, .. } => *single,
        }
    }

    /// Cannot turn into an option: a literal not starting with `-`, or a dash-safe opaque word.
    pub fn not_option(&self) -> bool {
        match self {
            Arg::Literal(s) => !s.starts_with('-'),
            Arg::Opaque { dash_safe, .. } => *dash_safe,
        }
    }
}

/// The analysis of one word.
#[derive(Debug)]
pub struct Word {
    pub arg: Arg,
    /// Command substitution scripts (`$(…)`, backquotes) to classify.
    pub substitutions: Vec<String>,
    /// Set when the word holds something that cannot be analysed (the reason).
    pub opaque_reason: Option<&'static str>,
}

impl Word {
    /// A word whose value is not known now and may start with `-`, with no substitution
    /// found in it.
    fn opaque(reason: Option<&'static str>) -> Word {
        Word {
            arg: Arg::Opaque {
                dash_safe: false,
                single: false,
            },
            substitutions: Vec::new(),
            opaque_reason: reason,
        }
    }
}

pub fn options() -> ParserOptions {
    ParserOptions {
        enable_extended_globbing: false,
        ..ParserOptions::default()
    }
}

const GLOB: &[char] = &['*', '?', '[', '{', '}'];

/// Whether unquoted text is subject to pathname or brace expansion. A `[` only starts a
/// pattern when a `]` follows it (`[` alone, the test command, is literal).
fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '{', '}']) || s.find('[').is_some_and(|i| s[i..].contains(']'))
}

/// brush-parser 0.4's word parser backtracks exponentially on `${…}` expansions with
/// unbalanced subscripts (`${s[}` five times takes ~1 s; found by fuzzing). A word holding
/// `${` is therefore never parsed: it is opaque, may start with `-`, and is unknown when it
/// also holds a substitution (which then cannot be located exactly).
/// Such a word is also checked for evaluating contexts (`arithmetic::braced_reason`);
/// it is one word only when it is a single double-quoted string.
fn braced_expansion(raw: &str) -> Option<Word> {
    if !raw.contains("${") && !raw.contains("$[") {
        return None;
    }
    let substitution = ["$(", "`", "<(", ">(", "$(("]
        .iter()
        .any(|s| raw.contains(s));
    let mut word = Word::opaque(braced_reason(raw).or(
        substitution.then_some("a command or arithmetic substitution beside a ${…} expansion"),
    ));
    let quoted = raw.len() >= 2
        && raw.starts_with('"')
        && raw.ends_with('"')
        && raw[1..raw.len() - 1].find(['"', '\\']).is_none();
    word.arg = Arg::Opaque {
        dash_safe: false,
        single: quoted,
    };
    Some(word)
}

/// Analyses a word as written in the command (quotes included).
pub fn analyse(raw: &str) -> Word {
    analyse_with(
        raw,
        brush_parser::word::parse,
        "a word that cannot be parsed",
    )
}

/// Analyses the body of a here document that undergoes expansion.
pub fn heredoc_substitutions(body: &str) -> Word {
    analyse_with(
        body,
        brush_parser::word::parse_heredoc,
        "a here document that cannot be parsed",
    )
}

/// Parses `text` into word pieces with `parse` (never when it holds `${`, see
/// [`braced_expansion`]) and analyses them; text that does not parse is opaque, for
/// `unparsable`.
fn analyse_with<E>(
    text: &str,
    parse: fn(&str, &ParserOptions) -> Result<Vec<WordPieceWithSource>, E>,
    unparsable: &'static str,
) -> Word {
    if let Some(w) = braced_expansion(text) {
        return w;
    }
    match parse(text, &options()) {
        Ok(pieces) => from_pieces(text, &pieces),
        Err(_) => Word::opaque(Some(unparsable)),
    }
}

struct State {
    text: String,
    literal: bool,
    /// An unquoted expansion or glob can split into several words.
    splits: bool,
    /// An unquoted glob can become several words.
    globbed: bool,
    first: Option<bool>,
    substitutions: Vec<String>,
    opaque_reason: Option<&'static str>,
}

fn from_pieces(raw: &str, pieces: &[WordPieceWithSource]) -> Word {
    let mut st = State {
        text: String::new(),
        literal: true,
        splits: false,
        globbed: false,
        first: None,
        substitutions: Vec::new(),
        opaque_reason: None,
    };
    walk(raw, pieces, false, &mut st);
    let arg = if st.literal {
        Arg::Literal(st.text)
    } else {
        Arg::Opaque {
            dash_safe: st.first == Some(true) && !st.splits,
            single: !st.splits && !st.globbed,
        }
    };
    Word {
        arg,
        substitutions: st.substitutions,
        opaque_reason: st.opaque_reason,
    }
}

/// `first`: whether the start of the word is known not to be `-` (set by the first piece).
fn walk(raw: &str, pieces: &[WordPieceWithSource], quoted: bool, st: &mut State) {
    for p in pieces {
        let starts_safe = |s: &str| {
            s.chars()
                .next()
                .is_some_and(|c| c != '-' && !GLOB.contains(&c))
        };
        match &p.piece {
            WordPiece::Text(s) => {
                if !quoted && is_pattern(s) {
                    st.literal = false;
                    st.globbed = true;
                    st.splits |= s.contains(['{', '}']) && st.first.is_none();
                }
                if st.first.is_none() && !s.is_empty() {
                    st.first = Some(starts_safe(s));
                }
                st.text.push_str(s);
            }
            WordPiece::SingleQuotedText(s) => {
                if st.first.is_none() && !s.is_empty() {
                    st.first = Some(!s.starts_with('-'));
                }
                st.text.push_str(s);
            }
            WordPiece::EscapeSequence(s) => {
                let c: String = s.chars().skip(1).collect();
                if st.first.is_none() && !c.is_empty() {
                    st.first = Some(!c.starts_with('-'));
                }
                st.text.push_str(&c);
            }
            WordPiece::AnsiCQuotedText(s) => {
                if s.contains('\\') {
                    st.literal = false;
                }
                if st.first.is_none() && !s.is_empty() {
                    st.first = Some(!s.starts_with(['-', '\\']));
                }
                st.text.push_str(s);
            }
            WordPiece::DoubleQuotedSequence(inner)
            | WordPiece::GettextDoubleQuotedSequence(inner) => walk(raw, inner, true, st),
            WordPiece::TildeExpansion(_) => {
                st.literal = false;
                st.first.get_or_insert(true);
            }
            WordPiece::ParameterExpansion(_) => {
                st.literal = false;
                st.splits |= !quoted;
                st.first.get_or_insert(false);
                let src = raw.get(p.start_index..p.end_index).unwrap_or(raw);
                if src.contains("$(") || src.contains('`') || src.contains("<(") {
                    st.opaque_reason = Some("a command substitution inside a parameter expansion");
                }
            }
            WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                st.literal = false;
                st.splits |= !quoted;
                st.first.get_or_insert(false);
                st.substitutions.push(s.clone());
            }
            WordPiece::ArithmeticExpression(e) => {
                st.literal = false;
                st.first.get_or_insert(false);
                st.splits |= !quoted;
                if !expression_ok(&e.value) {
                    st.opaque_reason =
                        Some("an arithmetic expansion with names, expansions or subscripts (code)");
                }
            }
        }
    }
}
