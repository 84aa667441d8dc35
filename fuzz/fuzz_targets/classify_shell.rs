//! The shell classifier must never panic or overflow its stack, whatever the input.
#![no_main]

use jitgate::policy::Class;
use jitgate::policy::shell::classify_shell;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let c = classify_shell(text);
    assert!(c.tables.is_empty() && c.functions.is_empty());
    assert!(
        c.commands.windows(2).all(|w| w[0] < w[1]),
        "commands sorted and unique"
    );
    assert!(!matches!(c.class, Class::Shell | Class::PortForward));
});
