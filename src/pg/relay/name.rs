//! Statement and portal names as the server keys them.

use crate::policy::sql;

/// A statement or portal name exactly as PostgreSQL keys it: bytes, at most
/// [`sql::NAME_MAX_BYTES`] (NAMEDATALEN − 1) of them.
///
/// The server keeps prepared statements and portals in hash tables whose keys are copied
/// with `strlcpy` into NAMEDATALEN bytes and compared with `strncmp` over 63 bytes
/// (`string_compare` in dynahash.c): a name from Parse, Bind, Execute, Close or Describe is
/// cut at byte 63, even in the middle of a character, and two names sharing their first 63
/// bytes are the same statement. A name from SQL (`PREPARE`, `EXECUTE`, `DEALLOCATE`) is an
/// identifier the lexer already cut at a character boundary (see
/// [`sql::truncate_identifier`]); the hash table then keys it by its bytes as well.
///
/// The bytes are the client's: exact when client_encoding is UTF8 (the upstream encoding)
/// or SQL_ASCII, which PostgreSQL passes through unconverted.
///
/// Equality is written by hand only to keep the unnamed (empty) name away from `memcmp`:
/// an empty `Box<[u8]>` points at a dangling address, and glibc's AVX-512 `memcmp` reads it
/// with a zero mask, which costs the CPU a fault-suppression assist each time; comparing
/// names of every Bind and Execute with the unnamed one made that ~1 µs per statement.
#[derive(Clone, Debug, Default, Eq)]
pub struct Name(Box<[u8]>);

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.0.len() == other.0.len() && (self.0.is_empty() || self.0 == other.0)
    }
}

/// The bytes' hash, as derived: equal names (equal bytes) hash alike.
impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Name {
    /// A name from a protocol message (Parse, Bind, Execute, Close, Describe): its first 63
    /// bytes.
    pub fn wire(bytes: &[u8]) -> Name {
        Name(bytes[..bytes.len().min(sql::NAME_MAX_BYTES)].into())
    }

    /// A name from SQL text (already case-folded unless quoted): truncated as the lexer
    /// truncates identifiers.
    pub fn sql(ident: &str) -> Name {
        Name(sql::truncate_identifier(ident).as_bytes().into())
    }

    /// The unnamed statement or portal.
    pub fn unnamed() -> Name {
        Name::default()
    }
}

#[cfg(test)]
mod name_tests {
    use super::Name;

    #[test]
    fn wire_names_are_their_first_63_bytes() {
        let a = format!("{}A", "s".repeat(63));
        let b = format!("{}B", "s".repeat(63));
        assert_eq!(Name::wire(a.as_bytes()), Name::wire(b.as_bytes()));
        assert_eq!(
            Name::wire(a.as_bytes()),
            Name::wire("s".repeat(63).as_bytes())
        );
        let c = format!("{}A", "s".repeat(62));
        assert_ne!(Name::wire(c.as_bytes()), Name::wire(a.as_bytes()));
        assert_eq!(Name::wire(b""), Name::unnamed());
    }

    #[test]
    fn wire_names_are_cut_by_bytes_even_inside_a_character() {
        // 62 bytes then "é" (C3 A9) and "è" (C3 A8): the server keeps 62 bytes and C3.
        let e1 = format!("{}é", "s".repeat(62));
        let e2 = format!("{}è", "s".repeat(62));
        assert_eq!(Name::wire(e1.as_bytes()), Name::wire(e2.as_bytes()));
        assert_ne!(
            Name::wire(e1.as_bytes()),
            Name::wire("s".repeat(62).as_bytes())
        );
    }

    #[test]
    fn wire_names_compare_bytes_not_lossy_text() {
        // Two LATIN1 names that decode lossily to the same text.
        assert_ne!(Name::wire(b"n\xe9"), Name::wire(b"n\xe8"));
    }

    #[test]
    fn sql_names_are_cut_on_a_character_boundary() {
        let a = format!("{}a", "s".repeat(63));
        assert_eq!(Name::sql(&a), Name::wire("s".repeat(63).as_bytes()));
        assert_eq!(Name::sql(&a), Name::wire(a.as_bytes()));
        // "é" would straddle bytes 63 and 64: the lexer drops it whole.
        let e = format!("{}éx", "s".repeat(62));
        assert_eq!(Name::sql(&e), Name::wire("s".repeat(62).as_bytes()));
        // A 3-byte character at bytes 62..65.
        let k = format!("{}€", "s".repeat(61));
        assert_eq!(Name::sql(&k), Name::wire("s".repeat(61).as_bytes()));
        let fits = format!("{}€", "s".repeat(60));
        assert_eq!(Name::sql(&fits), Name::wire(fits.as_bytes()));
    }
}
