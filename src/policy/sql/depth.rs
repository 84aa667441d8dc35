//! The bound checked on the tokens before sqlparser parses them.
//!
//! sqlparser's AST drop and traversal recurse once per nesting level, and long expression
//! chains nest as deeply as parentheses do. Invariant: a token stream [`check_depth`]
//! accepts parses into an AST no deeper than [`MAX_OPEN_TOKENS`], so it can be built,
//! walked and dropped on a 2 MiB stack, in time linear in its length.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan};

/// Upper bound on the tokens of all still-open expression segments at any point (a segment
/// is what lies between commas at one parenthesis level; set operators are never reset by
/// commas). It bounds the depth of the AST, whose drop and traversal recurse.
pub const MAX_OPEN_TOKENS: usize = 4096;

/// Rejects token streams whose expression chains could make the AST deeper than the stack
/// can drop. Linear in the number of tokens.
pub(super) fn check_depth(tokens: &[TokenWithSpan]) -> Result<(), String> {
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
