//! Arithmetic and other evaluating contexts: text bash runs as code whatever its quoting.
//!
//! bash evaluates array subscripts inside arithmetic, and runs any `$(…)` found there, even
//! when the text came from a single-quoted word or from a variable's value (set by the
//! command, by the SSH client through `SendEnv`, or by the target's profile). So every
//! operand of an arithmetic context is code, and the only operand accepted is a plain
//! integer literal, optionally signed. The contexts, and where each is checked:
//! - `$(( … ))` and the old `$[ … ]`: [`expression_ok`] (digits and operators only: a name
//!   is a variable whose value would be evaluated) and [`braced_reason`] (`$[`).
//! - `${…}`: subscripts (`${a[x]}`), substring offsets (`${s:x}`), indirection (`${!x}`,
//!   whose value may be `a[$(…)]`) and the `@P` prompt transformation (which runs
//!   command substitutions): [`braced_reason`]. The other transformations (`@Q`, `@E`,
//!   `@A`, `@K`, `@k`, `@a`, `@U`, `@u`, `@L`) quote or case-map text and evaluate nothing
//!   (bash manual, "Shell Parameter Expansion"), so they are accepted.
//! - `[[ … -eq/-ne/-lt/-le/-gt/-ge … ]]` and `[[ -v/-R … ]]`: `mod.rs` with
//!   [`integer_literal`] and [`variable_name`].
//! - `test`/`[`: [`test_arguments`] (numeric comparisons and `-v`/`-R`; bash's `test` reads
//!   numbers with `legal_number` today, but the check does not rely on that).
//! - `(( ))`, `for ((;;))`, `let`, `declare -i`/`typeset -i`/`local -i`: never `read`
//!   (the compound commands are `unknown` in `mod.rs`; the builtins are on no list).
//! - array-element assignments (`a[x]=…`): `unknown` in `mod.rs`.

use super::words::Arg;

/// A plain decimal integer, optionally signed: the only arithmetic operand accepted.
pub fn integer_literal(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A shell variable name (no subscript): what `-v`/`-R` may test without evaluating.
pub fn variable_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An arithmetic expression made of integer literals and operators only (no names, no
/// expansions, no subscripts, no base prefixes).
pub fn expression_ok(expression: &str) -> bool {
    expression.chars().all(|c| {
        c.is_ascii_digit()
            || matches!(
                c,
                ' ' | '\t'
                    | '\n'
                    | '+'
                    | '-'
                    | '*'
                    | '/'
                    | '%'
                    | '('
                    | ')'
                    | '<'
                    | '>'
                    | '='
                    | '!'
                    | '&'
                    | '|'
                    | '^'
                    | '~'
                    | '?'
                    | ':'
                    | ','
            )
    })
}

/// Why the raw text of a word evaluates code in a `${…}` expansion or a `$[…]`, if it may.
/// The scan ignores quoting (a single-quoted `${a[x]}` is refused too): failing closed on
/// text bash would leave alone is the safe error.
pub fn braced_reason(raw: &str) -> Option<&'static str> {
    if raw.contains("$[") {
        return Some("an old-style $[…] arithmetic expansion");
    }
    let mut rest = raw;
    while let Some(at) = rest.find("${") {
        rest = &rest[at + 2..];
        if let Some(why) = one_braced(rest) {
            return Some(why);
        }
    }
    None
}

/// Checks the start of one `${…}` (the text after `${`).
fn one_braced(text: &str) -> Option<&'static str> {
    let text = text.strip_prefix('#').unwrap_or(text);
    if text.starts_with('!') {
        return Some(
            "an indirect ${!…} expansion (the named variable's value may hold a subscript)",
        );
    }
    let name_len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let name_len = if name_len == 0 && text.starts_with(['@', '*', '#', '?', '-', '$', '!']) {
        1
    } else {
        name_len
    };
    let mut after = &text[name_len..];
    if let Some(subscript) = after.strip_prefix('[') {
        let Some(end) = subscript.find(']') else {
            return Some("an array subscript (arithmetic, evaluated as code)");
        };
        let index = &subscript[..end];
        if !(matches!(index, "@" | "*") || integer_literal(index)) {
            return Some("an array subscript (arithmetic, evaluated as code)");
        }
        after = &subscript[end + 1..];
    }
    if let Some(offset) = after.strip_prefix(':')
        && !offset.starts_with(['-', '=', '?', '+'])
    {
        let end = offset.find('}').unwrap_or(offset.len());
        let ok = offset[..end]
            .split(':')
            .all(|part| integer_literal(part.trim()));
        if !ok {
            return Some("a substring offset (arithmetic, evaluated as code)");
        }
    }
    if let Some(op) = after.strip_prefix('@')
        && !op.starts_with(['Q', 'E', 'A', 'K', 'k', 'a', 'U', 'u', 'L'])
    {
        return Some("a ${…@P} prompt expansion (runs command substitutions)");
    }
    None
}

/// The arguments of `test` (or of `[` without its closing `]`): `Err` with the reason when
/// an operand is evaluated as code or when bash's reading of the arguments cannot be known.
/// An expansion is accepted only where it is an operand by position (one to three
/// arguments, as POSIX and bash fix them) and when it expands to exactly one word; with
/// more arguments every one must be a literal.
pub fn test_arguments(args: &[Arg]) -> Result<(), &'static str> {
    let literal = |i: usize| args.get(i).and_then(Arg::literal);
    let single = |i: usize| args.get(i).is_some_and(Arg::single_word);
    match args.len() {
        0 => Ok(()),
        1 => single(0).then_some(()).ok_or(SPLITS),
        2 => match literal(0) {
            Some("!") => single(1).then_some(()).ok_or(SPLITS),
            Some("-v" | "-R") => match literal(1) {
                Some(name) if variable_name(name) => Ok(()),
                _ => Err(VARIABLE),
            },
            Some(_) => single(1).then_some(()).ok_or(SPLITS),
            None => Err(SPLITS),
        },
        3 => match literal(1) {
            Some(op) if NUMERIC.contains(&op) => match (literal(0), literal(2)) {
                (Some(a), Some(b)) if integer_literal(a) && integer_literal(b) => Ok(()),
                _ => Err(NUMBER),
            },
            Some(_) if literal(0) == Some("!") => test_arguments(&args[1..]),
            Some(_) => (single(0) && single(2)).then_some(()).ok_or(SPLITS),
            None => Err(SPLITS),
        },
        4 if literal(0) == Some("!") => test_arguments(&args[1..]),
        _ => {
            let mut words = Vec::with_capacity(args.len());
            for a in args {
                words.push(a.literal().ok_or(SPLITS)?);
            }
            for (i, w) in words.iter().enumerate() {
                if NUMERIC.contains(w) {
                    let neighbours = [i.checked_sub(1), Some(i + 1)];
                    let numbers = neighbours
                        .iter()
                        .flatten()
                        .filter_map(|&j| words.get(j))
                        .all(|n| integer_literal(n));
                    if !numbers {
                        return Err(NUMBER);
                    }
                }
                if matches!(*w, "-v" | "-R") && words.get(i + 1).is_some_and(|n| !variable_name(n))
                {
                    return Err(VARIABLE);
                }
            }
            Ok(())
        }
    }
}

const NUMERIC: &[&str] = &["-eq", "-ne", "-lt", "-le", "-gt", "-ge"];
const SPLITS: &str = "test with an expansion that may become several words or an operator";
const NUMBER: &str = "a numeric comparison whose operand is not an integer (evaluated as code)";
const VARIABLE: &str =
    "test -v on something other than a plain variable name (a subscript is code)";
