//! bash as the oracle of the shell classifier: every command of the corpus
//! (`src/policy/shell/tests/testdata/commands.txt`, plus the files of the directory named
//! by `ORACLE_CORPUS_DIR`, e.g. a fuzz corpus) that `classify_shell` calls `read` runs
//! under the real bash, as `nobody`, in a sandbox where nothing can be written and every
//! attempt is seen:
//! - a mount and PID namespace (`unshare`) with every mount remounted read-only, except a
//!   root-only directory holding the trace; the namespace dies with its first process, so
//!   `tail -f` and friends end at the timeout;
//! - `strace -f` records opens, file changes, `execve` and signals. The test fails, naming
//!   the command, on an open for writing (`O_WRONLY`/`O_RDWR`/`O_CREAT`/`O_TRUNC`) of
//!   anything but `/dev/null`, the terminal or the standard streams, any unlink, rename,
//!   mkdir, rmdir, chmod, chown, truncate, link, mknod or utime call, an `execve` of a
//!   program the classifier did not list for the command, or a signal sent outside the
//!   command's own processes. A timeout is not a failure.
//!
//! Needs root (namespaces; CI runs as root), `unshare`, `setpriv`, `strace` (installed by
//! `tests/run.sh`) and a kernel that allows ptrace: a self-check proves the sandbox sees a
//! write before the corpus runs. No jitgate server is involved.

mod oracle;

use std::collections::BTreeSet;
use std::sync::Mutex;

use jitgate::policy::Class;
use jitgate::policy::shell::classify_shell;
use oracle::{Sandbox, allowed_programs, require_root, violations};

const CORPUS: &str = include_str!("../src/policy/shell/tests/testdata/commands.txt");
const WORKERS: usize = 4;

fn corpus() -> Vec<String> {
    let mut commands = Vec::new();
    for line in CORPUS.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (_, command): (String, String) =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        commands.push(command);
    }
    if let Ok(dir) = std::env::var("ORACLE_CORPUS_DIR") {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
        for entry in entries.flatten() {
            if let Ok(bytes) = std::fs::read(entry.path())
                && let Ok(text) = String::from_utf8(bytes)
            {
                commands.push(text);
            }
        }
    }
    commands
}

#[test]
fn the_sandbox_sees_writes() {
    require_root();
    let sandbox = Sandbox::new("self-check");
    let probe = sandbox.root.join("probe");
    let writes = format!("echo x > {}; rm -f /etc/hostname", probe.display());
    let seen = violations(&sandbox.run(0, &writes), &allowed_programs(&writes));
    assert!(
        seen.iter().any(|l| l.contains("O_CREAT")),
        "strace did not see the redirection: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("unlinkat") || l.contains("execve")),
        "strace did not see rm: {seen:?}"
    );
    assert!(
        !probe.exists(),
        "the read-only sandbox let a file be written"
    );
    let reads = "cat /etc/hostname | head -n 1";
    let seen = violations(&sandbox.run(1, reads), &allowed_programs(reads));
    assert!(seen.is_empty(), "a plain read was flagged: {seen:?}");
}

#[test]
fn commands_classified_read_write_nothing_under_bash() {
    require_root();
    let sandbox = Sandbox::new("corpus");
    let commands: Vec<String> = corpus()
        .into_iter()
        .filter(|c| classify_shell(c).class == Class::Read)
        .collect();
    assert!(
        commands.len() >= 150,
        "only {} read commands in the corpus",
        commands.len()
    );
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let index = {
                        let mut n = next.lock().expect("index lock");
                        *n += 1;
                        *n
                    };
                    let Some(command) = commands.get(index - 1) else {
                        return;
                    };
                    let trace = sandbox.run(index + 1, command);
                    let mut seen = violations(&trace, &allowed_programs(command));
                    if !trace.contains("execve(\"/bin/bash\"") {
                        seen.push("bash never ran: the sandbox is broken".to_string());
                    }
                    if !seen.is_empty() {
                        failures.lock().expect("failure lock").push(format!(
                            "{command:?} (classified read):\n  {}",
                            seen.join("\n  ")
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("failures");
    assert!(
        failures.is_empty(),
        "{} commands classified read tried to change something under bash:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_signal_strace_split_in_two_is_judged_by_its_target() {
    let allowed = BTreeSet::new();
    let own = "27 execve(\"/usr/bin/yes\", [\"yes\"], 0x0 /* 1 var */) = 0\n\
               28 read(0, \"\", 1) = 0\n\
               27 kill(28, SIGCONT <unfinished ...>\n";
    assert!(
        violations(own, &allowed)
            .iter()
            .all(|l| !l.contains("kill"))
    );
    let other = "27 kill(1, SIGTERM <unfinished ...>\n";
    assert_eq!(violations(other, &allowed).len(), 1);
}
