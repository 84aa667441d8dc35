//! The one catalogue check for a called function, shared by the sqlparser walk
//! ([`super::walk`]) and the PostgreSQL-grammar judge ([`super::server_grammar`]).
//!
//! Invariant: a function is below `unknown` only when it is a catalogued built-in (called
//! bare or as `pg_catalog.name`) or named in `[policy] trusted_functions`; a dangerous
//! built-in raises the class it is catalogued with, and trusting it never lowers that.

use super::analysis::SqlOptions;
use super::catalog::{FunctionKind, function_kind};
use crate::policy::Class;

/// How one call is judged: the name as listed (`name` for a built-in, `schema.name`
/// otherwise) and the class it raises the statement to (`None`: harmless).
pub(super) struct FunctionVerdict {
    pub shown: String,
    pub class: Option<Class>,
}

/// Judges a call by its normalised name parts (`[name]` or `[schema, name]`). `Err` names
/// what is wrong with the name itself.
pub(super) fn function_verdict(
    parts: &[String],
    opts: &SqlOptions,
) -> Result<FunctionVerdict, &'static str> {
    let (schema, bare) = match parts {
        [f] => (None, f.as_str()),
        [s, f] => (Some(s.as_str()), f.as_str()),
        _ => return Err("a function name with more than two parts"),
    };
    let builtin = matches!(schema, None | Some("pg_catalog"));
    let shown = if builtin {
        bare.to_string()
    } else {
        parts.join(".")
    };
    let kind = if builtin {
        function_kind(bare)
    } else {
        FunctionKind::Unlisted
    };
    let trusted = || {
        let t = opts.trusted_functions;
        t.contains(&shown) || (schema.is_none() && t.contains(&format!("public.{bare}")))
    };
    let class = match kind {
        FunctionKind::Dangerous(c) => Some(c),
        FunctionKind::Pure => None,
        FunctionKind::Unlisted if trusted() => None,
        FunctionKind::Unlisted => Some(Class::Unknown),
    };
    Ok(FunctionVerdict { shown, class })
}
