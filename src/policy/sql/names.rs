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

/// NAMEDATALEN − 1: the most bytes of a name PostgreSQL keeps.
pub const NAME_MAX_BYTES: usize = 63;

/// An identifier as PostgreSQL's lexer truncates it (`truncate_identifier`, quoted or not):
/// the longest prefix of at most [`NAME_MAX_BYTES`] bytes that ends on a character boundary
/// (`pg_mbcliplen` in the server encoding, UTF8 upstream).
pub fn truncate_identifier(s: &str) -> &str {
    crate::policy::char_prefix(s, NAME_MAX_BYTES)
}

/// A prepared statement's name from `PREPARE`, `EXECUTE` or `DEALLOCATE`: folded, then
/// truncated, so names the server takes for one statement are one name here.
pub(super) fn stmt_name(i: &Ident) -> String {
    truncate_identifier(&ident(i)).to_string()
}

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
    relation_from_parts(&parts(name)?)
}

/// [`relation`] for a name already split into normalised parts (as PostgreSQL's parse tree
/// gives them: catalog, schema, relation).
pub(super) fn relation_from_parts(p: &[String]) -> Option<String> {
    match p {
        [t] if catalog_relation(t) => Some(format!("pg_catalog.{t}")),
        [t] => Some(format!("public.{t}")),
        [.., s, t] => Some(format!("{s}.{t}")),
        [] => None,
    }
}
