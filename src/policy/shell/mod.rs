//! Shell command classification (the exec string an SSH client sends).
//!
//! ## Parser choice
//! - **brush-parser 0.4** (MIT, part of the actively developed brush shell): a POSIX/bash
//!   tokenizer and PEG parser giving a full AST (lists, pipelines, `&&`/`||`, compound
//!   commands, redirections, here documents, process substitution) plus a word parser that
//!   splits words into quoted text, parameter expansions and command substitutions. Pure
//!   Rust. **Chosen.**
//! - conch-parser: a good AST, but unmaintained since 2018.
//! - yash-syntax: maintained and thorough, but GPL-3.0: not usable in an Apache-2.0 project.
//! - tree-sitter-bash: a C grammar behind a build script, a concrete (not abstract) tree
//!   and error recovery that accepts broken input, which is the wrong default here.
//!
//! ## Rules (fail closed)
//! - `read` only for programs on the reviewed read-only list (`programs.rs`, each entry
//!   with its reason) or whose checked arguments keep them read-only. Options are read with
//!   one getopt_long model (`options.rs`: clusters, `-oVALUE`, `--opt=value`, abbreviated
//!   long options, `--`, GNU permutation) against a per-program allow-list (`specs.rs`):
//!   an option not on it is `unknown` (`find` predicates and `sed` scripts likewise). A
//!   program on no list is `unknown`, so only reviewed programs are ever `read`.
//! - Arithmetic and other evaluating contexts are code whatever their quoting
//!   (`arithmetic.rs`): an operand of `[[ -eq ]]`, `test -v`, `$(( ))`, a subscript, a
//!   substring offset, `${!x}`, `${x@P}` that is not a plain integer is `unknown`;
//!   environment assignments accept only plain values.
//! - `write`: an output redirection to anything but `/dev/null`, `/dev/stdout`,
//!   `/dev/stderr`; `tee`; file-changing programs.
//! - `admin`: sudo, su, doas, state-changing systemctl verbs, kill, reboot, package
//!   managers, … (a wrapped command is classified too; the greater class wins).
//! - Wrappers are classified by what they run: env, nohup, timeout, nice, xargs, stdbuf,
//!   command, builtin, time, `sh -c`/`bash -c` strings (parsed recursively, at most
//!   [`MAX_DEPTH`] levels).
//! - `unknown`: interpreters (also when piped into), eval/exec/source, function
//!   definitions, variables or substitutions in command position, environment assignments
//!   that change how programs run (PATH, LD_*, …), arguments of checked programs that
//!   cannot be known now, anything unparseable, and here documents (`<<`): brush-parser
//!   0.4 can loop forever on some of them (found by fuzzing), so they are never parsed.
//!   Here-strings (`<<<`) are analysed.
//! - Command substitutions anywhere (arguments, redirection targets, here-strings,
//!   assignments, `[[ … ]]`) are classified too; a list takes its most sensitive part.
//! - A lone `scp -t`/`scp -f`, `sftp-server` or `rsync --server` is `file_transfer`.
//! - Bounded: inputs over [`MAX_LEN`] bytes, with more than [`MAX_OPENERS`] nesting
//!   characters/keywords, [`MAX_PARENS`] parentheses or [`MAX_BRACED`] `${` (with a `[`),
//!   or with numbers brush-parser would overflow on, are `unknown` before parsing (brush-parser recurses per nesting level,
//!   backtracks exponentially on unbalanced parentheses and `unwrap`s a few number
//!   parses), so no input can overflow a 2 MiB stack, take long or panic.
//!
//! Known limits: pagers (`systemctl status` through `less` on a pty) can spawn a shell;
//! the SSH front end should run exec channels with `SYSTEMD_PAGER=cat`/`PAGER=cat` or
//! without a pty. PATH on the target is trusted, and so are the profile files a
//! non-login `bash -c` does not read (`BASH_ENV` must not be accepted by the target's
//! sshd; `sh -l`/`-i`, which read profiles, are `unknown`). `tests/ssh_bash_oracle.rs`
//! runs every corpus command classified `read` under the real bash in a traced,
//! read-only sandbox.
//!
//! Files, each using only the ones listed before it (no cycles):
//! - `guard.rs`: the bounds checked before any text reaches brush-parser.
//! - `arithmetic.rs`: evaluating contexts (integer operands, `${…}` forms, `test`).
//! - `words.rs`: what one shell word can expand to (`Arg`), and the command
//!   substitutions inside it.
//! - `sed.rs`: the scanner for `sed` scripts.
//! - `verdict.rs`: the decision for one program with its arguments.
//! - `options.rs`: the getopt_long model; `specs.rs`: the programs' option tables.
//! - `checks.rs`: the argument checks of programs read only with some options.
//! - `wrappers.rs`: programs that run another program (env, sudo, timeout, xargs, …) and
//!   the verb checks of `systemctl` and `ip`.
//! - `programs.rs`: the reviewed program lists, dispatching to the checks.
//! - this file: [`classify_shell`]; `walk.rs`: the walk over brush-parser's AST.
//! - `tests/`: the unit tests (the case table, hostile inputs and fuzzer findings, words,
//!   `sed` scripts).

use std::collections::BTreeSet;

use crate::policy::{Class, Classification, Worst};
use guard::precheck;
pub use guard::{MAX_BRACED, MAX_DEPTH, MAX_LEN, MAX_OPENERS, MAX_PARENS};
use walk::Walk;

mod arithmetic;
mod checks;
mod guard;
mod options;
mod programs;
mod sed;
mod specs;
mod verdict;
mod walk;
mod words;
mod wrappers;

/// Classifies an exec command string as the SSH client sent it.
pub fn classify_shell(command: &str) -> Classification {
    // Only bash's own blanks make a command empty: U+00A0 and the other Unicode spaces are
    // part of a word to bash, so a command of them names a program (or a function).
    if command.trim_matches([' ', '\t', '\n']).is_empty() {
        return Classification::bare(Class::Read, "empty command");
    }
    if let Some(why) = precheck(command) {
        return Classification::bare(Class::Unknown, why);
    }
    let mut w = Walk {
        worst: Worst::new("every command is read"),
        commands: BTreeSet::new(),
        simple: 0,
        file_transfer: false,
    };
    w.script(command, 0);
    let mut class = w.worst.class;
    let mut reason = w.worst.reason;
    if w.file_transfer {
        if w.simple == 1 && class == Class::Read {
            class = Class::FileTransfer;
            reason = "a file transfer (scp/sftp/rsync server side)".into();
        } else {
            class = Class::Unknown;
            reason = "a file transfer mixed with other commands".into();
        }
    }
    Classification {
        class,
        tables: std::sync::Arc::default(),
        functions: Vec::new(),
        commands: w.commands.into_iter().collect(),
        paths: Vec::new(),
        reason,
    }
}

#[cfg(test)]
mod tests;
