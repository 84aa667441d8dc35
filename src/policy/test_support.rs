//! Test scaffolding shared by the SQL and shell tests: one-letter names for the classes in
//! case tables, and the check that runs such a table.

use super::{Class, Classification};

pub const R: Class = Class::Read;
pub const W: Class = Class::Write;
pub const D: Class = Class::Ddl;
pub const P: Class = Class::Privilege;
pub const A: Class = Class::Admin;
pub const C: Class = Class::Code;
pub const U: Class = Class::Unknown;
pub const F: Class = Class::FileTransfer;

/// Classifies every case, then fails once listing every case whose class is not the one
/// wanted, with the class and reason it got.
pub fn assert_classes<'a>(
    cases: impl IntoIterator<Item = (&'a str, Class)>,
    classify: impl Fn(&str) -> Classification,
) {
    let mut failures = Vec::new();
    for (text, want) in cases {
        let got = classify(text);
        if got.class != want {
            failures.push(format!(
                "{text:?}: want {want}, got {} ({})",
                got.class, got.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
