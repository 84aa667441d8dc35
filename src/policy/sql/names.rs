//! How SQL names are normalised for classifications and rules.
//!
//! Invariants: identifiers are lower-cased unless quoted (as Postgres folds them); a
//! relation is always `schema.table`: `public.` when unqualified (`pg_catalog.` for a
//! well-known system relation, which Postgres finds first), a database prefix dropped. A
//! name with a part that is not a plain identifier has no normal form (`None`), and the
//! caller fails closed.

use std::collections::BTreeSet;

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use super::catalog::catalog_relation;

/// Sorted, deduplicated strings.
pub(super) type NameSet = BTreeSet<String>;

/// Normalises identifier parts the way Postgres does: lower-case unless quoted.
pub(super) fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

/// Normalised parts of a name, or `None` when a part is not a plain identifier.
pub(super) fn parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(ident(i)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// `schema.table` for a relation name: `public.` (or `pg_catalog.` for a well-known system
/// relation) when unqualified; a database prefix is dropped.
pub(super) fn relation(name: &ObjectName) -> Option<String> {
    let p = parts(name)?;
    match p.as_slice() {
        [t] if catalog_relation(t) => Some(format!("pg_catalog.{t}")),
        [t] => Some(format!("public.{t}")),
        [.., s, t] => Some(format!("{s}.{t}")),
        [] => None,
    }
}
