//! Names as the target resolves them: what a read calls, checked against the objects that
//! exist on the target outside `pg_catalog` (a snapshot read by `pg/target_catalog.rs`).
//!
//! A catalogued pure function is pure only if the name resolves to the built-in. On a
//! target where someone created `public.lower(integer)`, `SELECT lower(1)` runs that
//! function; `CREATE OPERATOR public.= (integer, text)` makes `WHERE id = '1'` run user
//! code; a cast to a domain runs its CHECK, a cast to a user type its input function, and a
//! user-created cast (`CREATE CAST … WITH FUNCTION`) its function.
//!
//! Invariants (the check is by name collision, never by overload resolution):
//! - A read stays `read` only if none of the names it resolves unqualified (or qualified
//!   outside `pg_catalog`) collides with a user object of the same name in any schema other
//!   than `pg_catalog` and `information_schema`: function names (and type names, since
//!   `d('1')` is a cast when `d` is a type), operator symbols (including the ones the
//!   grammar implies: `IN`, `BETWEEN`, `CASE x WHEN`, `JOIN … USING`, …), cast target type
//!   names, and attribute names of `x.name` (`t.f` calls `f(t)` when `t` has no column `f`).
//! - If a user-created cast exists, any cast is not read; if an implicit or assignment one
//!   exists, any function call or operator is not read either (the server may insert it
//!   while resolving arguments).
//! - Fail closed: without a snapshot ([`TargetCatalog::Unavailable`]) a read that calls any
//!   function, operator or cast is not read.
//! - [`TargetCatalog::NotConsulted`] is for analyses made with no target at all (the
//!   `jitgate classify` dry run, unit tests and benches); the relay's caches always hold a
//!   snapshot or `Unavailable`.
//! - Names configured as trusted functions are exempt from the function check (the operator
//!   vouched for them, wherever they live).

use std::collections::HashSet;
use std::sync::Arc;

use super::analysis::SqlOptions;
use super::names::NameSet;

/// The objects of one target that live outside `pg_catalog` and `information_schema`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetObjects {
    /// `pg_proc.proname` (functions, procedures, aggregates, window functions).
    pub functions: HashSet<String>,
    /// `pg_operator.oprname`.
    pub operators: HashSet<String>,
    /// `pg_type.typname` (domains, enums, composite and range types, table row types, and
    /// their array types).
    pub types: HashSet<String>,
    /// Some `pg_cast` row was created after initdb (`CREATE CAST`, an extension).
    pub user_casts: bool,
    /// One of those casts is implicit or applies on assignment.
    pub user_implicit_casts: bool,
}

/// What a target's classifications are judged against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetCatalog {
    /// No target: names are judged by the catalogue alone.
    NotConsulted,
    /// The snapshot could not be read, or a schema change has not been re-read yet: the
    /// reason is shown with the verdict.
    Unavailable(String),
    Known(Arc<TargetObjects>),
}

/// What a read resolves by name, as PostgreSQL's parse tree shows it (collected by the
/// walk in `server_grammar/tree.rs`).
#[derive(Debug, Default)]
pub struct CalledNames {
    /// Functions called unqualified or with a schema other than `pg_catalog` (bare names).
    pub functions: NameSet,
    /// Operator symbols, unqualified ones and the ones the grammar implies.
    pub operators: NameSet,
    /// Type names of casts and other `TypeName`s not qualified with `pg_catalog`.
    pub types: NameSet,
    /// Field names of `a.b` column references and `(x).b` indirections.
    pub attributes: NameSet,
    /// The tree holds a `TypeCast`.
    pub casts: bool,
}

impl CalledNames {
    /// Whether anything is resolved by name at all (a cast, a function, an operator, an
    /// attribute that may be a function).
    pub fn any(&self) -> bool {
        self.casts
            || !self.functions.is_empty()
            || !self.operators.is_empty()
            || !self.types.is_empty()
            || !self.attributes.is_empty()
    }
}

/// `Err` says which name (or the missing snapshot) keeps the read from being proven.
pub(super) fn check(
    called: &CalledNames,
    catalog: &TargetCatalog,
    opts: &SqlOptions,
) -> Result<(), String> {
    let objects = match catalog {
        TargetCatalog::NotConsulted => return Ok(()),
        TargetCatalog::Unavailable(why) if called.any() => {
            return Err(format!(
                "the target's own functions, operators and types are not known ({why})"
            ));
        }
        TargetCatalog::Unavailable(_) => return Ok(()),
        TargetCatalog::Known(o) => o,
    };
    let trusted = |f: &String| {
        let t = opts.trusted_functions;
        t.contains(f) || t.contains(&format!("public.{f}"))
    };
    if let Some(f) = called
        .functions
        .iter()
        .find(|f| !trusted(f) && (objects.functions.contains(*f) || objects.types.contains(*f)))
    {
        return Err(format!(
            "on this target, {f} is also defined outside pg_catalog and may resolve there"
        ));
    }
    if let Some(a) = called
        .attributes
        .iter()
        .find(|a| !trusted(a) && objects.functions.contains(*a))
    {
        return Err(format!(
            "on this target, .{a} may call the function {a} defined outside pg_catalog"
        ));
    }
    if let Some(o) = called
        .operators
        .iter()
        .find(|o| objects.operators.contains(*o))
    {
        return Err(format!(
            "on this target, operator {o} is also defined outside pg_catalog"
        ));
    }
    if let Some(t) = called.types.iter().find(|t| objects.types.contains(*t)) {
        return Err(format!(
            "on this target, type {t} is defined outside pg_catalog (a cast to it may run \
             user code)"
        ));
    }
    if objects.user_casts && called.casts {
        return Err("on this target, a user-created cast exists: a cast may run it".into());
    }
    if objects.user_implicit_casts && called.any() {
        return Err(
            "on this target, a user-created implicit cast exists: resolving a call may run it"
                .into(),
        );
    }
    Ok(())
}
