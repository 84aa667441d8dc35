//! bash as the oracle, fuzzed: the input picks a shell command from a grammar of issue 13's
//! cases (programs, short and abbreviated long options, quotes, command substitutions,
//! arithmetic, subscripts, `${…@P}`, environment assignments, lists and pipes); every
//! command `classify_shell` calls `read` runs under the real bash in the read-only,
//! traced sandbox of `tests/oracle/` and must attempt no write, no unlisted exec and no
//! signal. Needs root, unshare, setpriv and strace (see fuzz/README.md).
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/oracle/mod.rs"]
mod oracle;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use jitgate::policy::Class;
use jitgate::policy::shell::classify_shell;
use libfuzzer_sys::fuzz_target;
use oracle::{Sandbox, allowed_programs, violations};

const PROGRAMS: &[&str] = &[
    "ls", "cat", "sort", "date", "dmesg", "journalctl", "ss", "sysctl", "file", "test", "[",
    "[[", "echo", "printf", "sed", "find", "uniq", "zcat", "zstdcat", "tree", "head", "tail",
    "grep", "env", "timeout 1", "nice", "xargs", "stdbuf -oL", "bash -c", "sh -c", "systemctl",
    "hostname", "blkid", "lsof", "ps", "wc", "cut", "jq", "od", "exit", "cd", "wait", "type",
];

const OPTIONS: &[&str] = &[
    "-o", "--o=", "--out", "--output=", "--comp=", "--co=", "--s=", "--se", "--cl", "--rea",
    "--rot", "--flu", "--vac=1", "--ki", "--wr", "--lo", "-v", "-eq", "-lt", "-ge", "-n", "-c",
    "-C", "-i", "-e", "--in", "--expr=", "-f", "--fi=", "--cursor-f=", "-p", "-w", "-D", "-K",
    "-s", "-u", "-z", "-k", "-t", "-l", "-L", "-r", "-a", "-x", "-nk2", "-no", "-us", "-Tc",
    "--", "-", "-1", "--sandbox", "--help", "-exec", "-delete", "-fprint", "-name", "-newer",
    "-R", "-H", "-d", "-E", "--d", "--u", "-ko",
];

const OPERANDS: &[&str] = &[
    "/tmp/fz",
    "'a[$(touch /tmp/fz)]'",
    "\"a[$(touch /tmp/fz)]\"",
    "a[$(touch /tmp/fz)]",
    "\"$(touch /tmp/fz)\"",
    "`touch /tmp/fz`",
    "$((LC_A))",
    "$((1+2))",
    "$[LC_A]",
    "\"${TERM@P}\"",
    "\"${TERM@Q}\"",
    "${a[$(touch /tmp/fz)]}",
    "${a[1]}",
    "${!LC_A}",
    "${s:LC_A}",
    "0",
    "1",
    "-1",
    "+2",
    "x",
    "HOME",
    "file",
    "/etc/hostname",
    "'s/a/b/w /tmp/fz'",
    "'1e touch /tmp/fz'",
    "p",
    "\\;",
    "+%F",
    "'ls'",
    "'touch /tmp/fz'",
    "\"$LC_A\"",
    "$LC_A",
    "*",
];

const PREFIXES: &[&str] = &[
    "",
    "LC_A='a[$(touch /tmp/fz)]'; ",
    "TERM='$(touch /tmp/fz)'; ",
    "LC_A=1 ",
    "LANG=C ",
    "TZ=UTC ",
    "LC_A='a[$(touch /tmp/fz)]' ",
];

const JOINERS: &[&str] = &[" ", " ", " ", "; ", " && ", " | ", " || "];

/// Reads choices from the fuzz input, one byte each.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn pick<'t>(&mut self, from: &[&'t str]) -> Option<&'t str> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        from.get(usize::from(*first) % from.len()).copied()
    }
}

/// A command from the grammar: [prefix] program (option|operand)* [joiner …]…
fn generate(data: &[u8]) -> String {
    let mut choices = Choices(data);
    let mut out = String::new();
    let mut words = 0;
    out.push_str(choices.pick(PREFIXES).unwrap_or(""));
    out.push_str(choices.pick(PROGRAMS).unwrap_or("ls"));
    let mut program_open = true;
    while let Some(kind) = choices.pick(&["option", "operand", "operand", "join", "option+"]) {
        words += 1;
        if words > 12 {
            break;
        }
        match kind {
            "option" => {
                out.push(' ');
                out.push_str(choices.pick(OPTIONS).unwrap_or("-n"));
            }
            "option+" => {
                // An option glued to its value: --o=/tmp/fz, -o/tmp/fz.
                out.push(' ');
                out.push_str(choices.pick(OPTIONS).unwrap_or("-o"));
                out.push_str(choices.pick(OPERANDS).unwrap_or("x"));
            }
            "operand" => {
                out.push(' ');
                out.push_str(choices.pick(OPERANDS).unwrap_or("x"));
            }
            _ => {
                if program_open && out.contains('[') {
                    out.push_str(if out.contains("[[") { " ]]" } else { " ]" });
                }
                out.push_str(choices.pick(JOINERS).unwrap_or("; "));
                out.push_str(choices.pick(PROGRAMS).unwrap_or("ls"));
                program_open = true;
                continue;
            }
        }
        program_open = true;
    }
    if out.contains("[[") && !out.ends_with("]]") {
        out.push_str(" ]]");
    } else if out.contains("[ ") && !out.ends_with(']') {
        out.push_str(" ]");
    }
    out
}

fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new("fuzz"))
}

fuzz_target!(|data: &[u8]| {
    let command = generate(data);
    if classify_shell(&command).class != Class::Read {
        return;
    }
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let index = RUNS.fetch_add(1, Ordering::Relaxed);
    let trace = sandbox().run(index, &command);
    let seen = violations(&trace, &allowed_programs(&command));
    assert!(
        seen.is_empty(),
        "{command:?} is classified read but under bash:\n{}",
        seen.join("\n")
    );
});
