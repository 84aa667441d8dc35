//! Bounds checked before any text reaches brush-parser.
//!
//! brush-parser 0.4 recurses once per nesting level, backtracks exponentially on some
//! shapes and `unwrap`s a few number parses; its tokenizer can loop forever on some here
//! documents. Each limit below names the shape it guards against (most were found by
//! fuzzing, see `fuzz/`). Invariant: text passing [`precheck`] (and every `sh -c` string
//! passing [`here_document`]) parses in bounded time and stack without panicking.

/// Longest command analysed.
pub const MAX_LEN: usize = 16 * 1024;
/// Most `(`, `{`, `` ` ``, `!` and compound keywords allowed in one command.
pub const MAX_OPENERS: usize = 48;
/// Most `(` allowed: brush-parser backtracks exponentially on unbalanced runs of them
/// (20 take ~50 ms, each one more doubles it); 12 keep the worst case near 1 ms.
pub const MAX_PARENS: usize = 12;
/// Most `${` allowed in a command that also holds a `[`: brush-parser backtracks
/// exponentially (about ×20 each) on `${name[` expansions inside an array-element
/// assignment word such as `a[${x[}${x[}…` (found by fuzzing).
pub const MAX_BRACED: usize = 2;
/// Deepest nesting of `sh -c` strings and command substitutions.
pub const MAX_DEPTH: u32 = 4;

/// Why `command` must be `unknown` without parsing, if it must.
pub fn precheck(command: &str) -> Option<String> {
    if command.len() > MAX_LEN {
        return Some(format!("command longer than {MAX_LEN} bytes"));
    }
    if openers(command) > MAX_OPENERS || command.matches('(').count() > MAX_PARENS {
        return Some("command too deeply nested to analyse".into());
    }
    if command.contains('[') && command.matches("${").count() > MAX_BRACED {
        return Some("too many ${…} expansions to analyse".into());
    }
    if overflowing_number(command) {
        return Some("a number too long to analyse".into());
    }
    None
}

/// An upper bound on the nesting depth the parser could reach.
fn openers(s: &str) -> usize {
    let chars = s
        .chars()
        .filter(|c| matches!(c, '(' | '{' | '`' | '!' | '['))
        .count();
    let words = s
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| {
            matches!(
                *w,
                "if" | "while" | "until" | "for" | "case" | "select" | "function" | "coproc"
            )
        })
        .count();
    chars + words
}

/// brush-parser 0.4 `unwrap`s number parses in its grammar: an I/O number (`123>`) that
/// overflows `i32`, a tilde index or brace-sequence bound that overflows 64 bits. Such
/// inputs are refused before parsing.
fn overflowing_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let run = i - start;
            if run >= 19 || (run >= 10 && matches!(b.get(i), Some(b'<' | b'>'))) {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

/// Whether the text may hold a here-document operator (`<<`, `<<-`): any run of exactly
/// two or more than three `<`, an escaped `<<<`, or a `<` continued on the next line.
/// brush-parser 0.4's tokenizer can loop forever, allocating, on some here documents
/// (an empty or vanishing tag inside `$(…)`; found by fuzzing), so they are never parsed.
pub fn here_document(s: &str) -> bool {
    if s.contains("<\\\n") || s.contains("<\\\r\n") {
        return true;
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' {
            let start = i;
            while b.get(i) == Some(&b'<') {
                i += 1;
            }
            let run = i - start;
            let escaped = start > 0 && b[start - 1] == b'\\';
            if run == 2 || run > 3 || (run == 3 && escaped) {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}
