//! Hostile shell inputs: deep nesting, huge inputs, and everything the fuzzer found.

use crate::policy::shell::classify_shell;
use crate::policy::test_support::{R, U, W};

#[test]
fn hostile_inputs_fail_closed_without_overflowing() {
    let run = || {
        for (kind, text) in [
            (
                "subshells",
                format!("{}ls{}", "(".repeat(5000), ")".repeat(5000)),
            ),
            (
                "braces",
                format!("{}ls;{}", "{ ".repeat(5000), " }".repeat(5000)),
            ),
            (
                "ifs",
                format!("{}ls{}", "if true; then ".repeat(1000), "; fi".repeat(1000)),
            ),
            (
                "substitutions",
                format!("echo {}x{}", "$(echo ".repeat(1000), ")".repeat(1000)),
            ),
            ("backquotes", format!("echo {}", "`".repeat(2000))),
            (
                "params",
                format!("echo {}x{}", "${a:-".repeat(1000), "}".repeat(1000)),
            ),
            ("nots", format!("{}ls", "! ".repeat(5000))),
            ("long", "ls ".repeat(1_000_000)),
            ("test chain", format!("[[ a{} ]]", " && a".repeat(3000))),
            ("sh -c nesting", {
                let mut s = "ls".to_string();
                for _ in 0..8 {
                    s = format!("sh -c {}", shell_quote(&s));
                }
                s
            }),
        ] {
            let c = classify_shell(&text);
            assert_eq!(c.class, U, "{kind}: {}", c.reason);
        }
        // Long but flat commands stay classifiable up to the length limit.
        let pipes = format!("ls{}", " | grep x".repeat(1000));
        assert_eq!(classify_shell(&pipes).class, R);
        let lists = format!("ls{}", " && pwd".repeat(1000));
        assert_eq!(classify_shell(&lists).class, R);
    };
    let t = std::thread::Builder::new().stack_size(2 << 20).spawn(run);
    assert!(t.is_ok_and(|t| t.join().is_ok()));
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Inputs the fuzzer found (brush-parser panics or backtracks exponentially on them).
#[test]
fn fuzz_findings() {
    for s in [
        "dl-s 7777777777777777777777777> >(",
        "ls 2147483648>x",
        "echo ~+99999999999999999999999",
        "echo ~-99999999999999999999999",
        "echo {1..99999999999999999999}",
        "(($0 x ((((((((((((((((((((((((((( 1\u{1}9= ))",
        "((((((((((((((((((((((((((((((((((((((((",
        "( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( (",
        "$(<<  s ",
        "<<\"\"\t\\",
        "$(<<-\t)$(",
        "})$(\n\\<<<\\\n  ",
        "ls <\\\n< x",
        "cat <<<<x",
        "${s[}${s[}${s[}${s[}${s[}${s[}${s[}${s[}",
        "echo \"${IF[a[.${IF[_}}l${IF[I[.S.${IF[I_}ls\"",
        "a[${a[${F[}${F[}${F[I_}ls\0\0\0}",
        "a[${F[}${F[}${F[}${F[}${F[}${F[} x",
    ] {
        let t = std::time::Instant::now();
        assert_eq!(classify_shell(s).class, U, "{s:?}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{s:?} took {:?}",
            t.elapsed()
        );
    }
    assert_eq!(
        classify_shell("date -d @1700000000").class,
        R,
        "ordinary long numbers are fine"
    );
    assert_eq!(classify_shell("ls 2>/dev/null").class, R);
    assert_eq!(
        classify_shell("cat <<< hello").class,
        R,
        "here-strings are analysed"
    );
    assert_eq!(classify_shell("cat <<< \"$(rm x)\"").class, W);
}

#[test]
fn long_parse_errors_are_clipped_on_char_boundaries() {
    let s = format!("echo '{}", "é".repeat(300));
    let c = classify_shell(&s);
    assert_eq!(c.class, U);
    assert!(c.reason.len() <= 204, "{}", c.reason.len());
}

#[test]
fn never_panics_on_odd_bytes() {
    for s in [
        "\0",
        "\\",
        "'",
        "\"",
        "$",
        "$(",
        "`",
        "<<",
        "<<EOF",
        "&&",
        "||",
        ";;",
        "|",
        "\u{1F600}",
        "a\u{0}b",
        "$'\\x00'",
        "${",
        "${!x}",
        "$((",
        "<(",
        ">(",
        "~",
        "!",
        "[[",
        "]]",
        "case",
        "esac",
        "fi",
    ] {
        let c = classify_shell(s);
        assert!(matches!(c.class, R | U), "{s:?}: {c:?}");
    }
}
