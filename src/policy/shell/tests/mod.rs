//! Tests for shell classification: the table of commands here; hostile inputs and the
//! fuzzer's findings in `hostile.rs`; the word and `sed` script analyses' own tests in
//! `words.rs` and `sed.rs`.

use super::classify_shell;
use crate::policy::Class;
use crate::policy::test_support::{F, U, assert_classes};

mod hostile;
mod options;
mod sed;
mod words;

/// The corpus of commands with their expected classes, shared with the bash oracle
/// (`tests/ssh_bash_oracle.rs`).
const CORPUS: &str = include_str!("testdata/commands.txt");

/// The corpus as (command, class) pairs.
fn cases() -> Vec<(String, Class)> {
    CORPUS
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (class, command): (String, String) =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            let class = Class::parse(&class).unwrap_or_else(|| panic!("{l}: class"));
            (command, class)
        })
        .collect()
}

#[test]
fn shell_classes() {
    let cases = cases();
    assert!(cases.len() >= 400, "only {} shell cases", cases.len());
    assert_classes(cases.iter().map(|(c, k)| (c.as_str(), *k)), classify_shell);
}

#[test]
fn commands_are_listed() {
    for (cmd, want) in [
        ("ls -l | grep x", vec!["grep", "ls"]),
        (
            "sudo -u bob timeout 5 /usr/bin/rm -rf x",
            vec!["rm", "sudo", "timeout"],
        ),
        ("echo $(id) `hostname`", vec!["echo", "hostname", "id"]),
        ("sh -c 'cat f | sort'", vec!["cat", "sh", "sort"]),
        ("ls > >(tee out)", vec!["ls", "tee"]),
        (
            "env LANG=C nice -n 5 xargs grep x",
            vec!["env", "grep", "nice", "xargs"],
        ),
        ("ls; ls; ls", vec!["ls"]),
        ("LANG=C xargs; ls", vec!["echo", "ls", "xargs"]),
        ("/tmp/x", vec!["/tmp/x"]),
        ("", vec![]),
    ] {
        assert_eq!(classify_shell(cmd).commands, want, "{cmd}");
    }
}

#[test]
fn reasons_name_the_culprit() {
    assert!(classify_shell("ls; rm x").reason.contains("rm"));
    assert!(
        classify_shell("cat x | sh")
            .reason
            .contains("interpreter sh")
    );
    assert!(
        classify_shell("echo > /etc/motd")
            .reason
            .contains("/etc/motd")
    );
    assert!(classify_shell("frobnicate").reason.contains("frobnicate"));
}

#[test]
fn a_file_transfer_is_one_command_alone() {
    assert_eq!(classify_shell("scp -t /tmp").class, F);
    assert_eq!(classify_shell("scp -t /tmp; ls").class, U);
}
