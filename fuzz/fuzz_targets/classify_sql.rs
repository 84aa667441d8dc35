//! The SQL classifier must never panic, overflow its stack or classify a parse failure as
//! anything but `unknown`, whatever the input.
#![no_main]

use std::collections::HashSet;
use std::sync::LazyLock;

use jitgate::policy::Class;
use jitgate::policy::sql::{SqlOptions, analyze_sql, resolve_class};
use libfuzzer_sys::fuzz_target;

static TRUSTED: LazyLock<HashSet<String>> = LazyLock::new(|| ["my_fn".to_string()].into());

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let a = analyze_sql(
        text,
        &SqlOptions {
            trusted_functions: &TRUSTED,
        },
    );
    let c = &a.classification;
    assert!(!matches!(
        c.class,
        Class::Shell | Class::FileTransfer | Class::PortForward
    ));
    assert!(
        c.tables.windows(2).all(|w| w[0] < w[1]),
        "tables sorted and unique"
    );
    assert!(
        c.functions.windows(2).all(|w| w[0] < w[1]),
        "functions sorted and unique"
    );
    if a.has_execute() {
        assert_eq!(c.class, Class::Unknown);
    }
    assert!(resolve_class(&a, &|_| None) >= a.base_class);
});
