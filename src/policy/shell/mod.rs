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
//! - this file: [`classify_shell`], the walk over brush-parser's AST.
//! - `tests/`: the unit tests (the case table, hostile inputs and fuzzer findings, words,
//!   `sed` scripts).

use std::collections::BTreeSet;

use arithmetic::{integer_literal, variable_name};
use brush_parser::Parser;
use brush_parser::ast::{
    Assignment, AssignmentValue, BinaryPredicate, Command, CommandPrefixOrSuffixItem,
    CompoundCommand, CompoundList, ExtendedTestExpr, IoFileRedirectKind, IoFileRedirectTarget,
    IoRedirect, SimpleCommand, UnaryPredicate,
};

use crate::policy::{Class, Classification, Worst, clip};
pub use guard::{MAX_BRACED, MAX_DEPTH, MAX_LEN, MAX_OPENERS, MAX_PARENS};
use guard::{here_document, precheck};
use programs::{INTERPRETERS, program};
use verdict::Verdict;
use words::{Arg, Word, analyse, heredoc_substitutions, options};
use wrappers::env_assignment_ok;

mod arithmetic;
mod checks;
mod guard;
mod options;
mod programs;
mod sed;
mod specs;
mod verdict;
mod words;
mod wrappers;

const MAX_TEST_DEPTH: u32 = 64;

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
        tables: Vec::new(),
        functions: Vec::new(),
        commands: w.commands.into_iter().collect(),
        paths: Vec::new(),
        reason,
    }
}

struct Walk {
    worst: Worst,
    commands: BTreeSet<String>,
    simple: usize,
    file_transfer: bool,
}

impl Walk {
    fn raise(&mut self, class: Class, reason: impl FnOnce() -> String) {
        self.worst.raise(class, reason);
    }

    fn unknown(&mut self, why: &str) {
        self.raise(Class::Unknown, || why.to_string());
    }

    fn script(&mut self, text: &str, depth: u32) {
        if depth > MAX_DEPTH {
            return self.unknown("commands nested too deeply to analyse");
        }
        if here_document(text) {
            return self.unknown("a here document (not analysed: see the module docs)");
        }
        let parsed = Parser::new(text.as_bytes(), &options()).parse_program();
        match parsed {
            Ok(p) => {
                for cc in &p.complete_commands {
                    self.list(cc, depth);
                }
            }
            Err(e) => {
                self.raise(Class::Unknown, || clip(format!("cannot parse: {e}"), 200));
            }
        }
    }

    fn list(&mut self, l: &CompoundList, depth: u32) {
        for item in &l.0 {
            for (_, pipeline) in item.0.iter() {
                for (i, c) in pipeline.seq.iter().enumerate() {
                    self.command(c, i > 0, depth);
                }
            }
        }
    }

    fn word(&mut self, raw: &str, depth: u32) -> Arg {
        let w = analyse(raw);
        self.substitutions(&w, depth);
        w.arg
    }

    fn substitutions(&mut self, w: &Word, depth: u32) {
        if let Some(why) = w.opaque_reason {
            self.unknown(why);
        }
        for s in &w.substitutions {
            self.script(s, depth + 1);
        }
    }

    fn command(&mut self, c: &Command, piped_into: bool, depth: u32) {
        match c {
            Command::Simple(s) => self.simple(s, piped_into, depth),
            Command::Compound(cc, redirects) => {
                self.compound(cc, depth);
                for r in redirects.iter().flat_map(|r| r.0.iter()) {
                    self.redirect(r, depth);
                }
            }
            Command::Function(_) => self.unknown("defining a shell function"),
            Command::ExtendedTest(t, redirects) => {
                self.test(&t.expr, depth, 0);
                for r in redirects.iter().flat_map(|r| r.0.iter()) {
                    self.redirect(r, depth);
                }
            }
        }
    }

    fn compound(&mut self, c: &CompoundCommand, depth: u32) {
        match c {
            CompoundCommand::BraceGroup(b) => self.list(&b.list, depth),
            CompoundCommand::Subshell(s) => self.list(&s.list, depth),
            CompoundCommand::IfClause(i) => {
                self.list(&i.condition, depth);
                self.list(&i.then, depth);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c, depth);
                    }
                    self.list(&e.body, depth);
                }
            }
            CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
                self.list(&w.0, depth);
                self.list(&w.1.list, depth);
            }
            CompoundCommand::ForClause(f) => {
                for v in f.values.iter().flatten() {
                    self.word(&v.value, depth);
                }
                self.list(&f.body.list, depth);
            }
            CompoundCommand::CaseClause(c) => {
                self.word(&c.value.value, depth);
                for item in &c.cases {
                    for p in &item.patterns {
                        self.word(&p.value, depth);
                    }
                    if let Some(cmd) = &item.cmd {
                        self.list(cmd, depth);
                    }
                }
            }
            CompoundCommand::Arithmetic(_)
            | CompoundCommand::ArithmeticForClause(_)
            | CompoundCommand::Coprocess(_) => self.unknown("arithmetic commands and coprocesses"),
        }
    }

    fn test(&mut self, e: &ExtendedTestExpr, depth: u32, nesting: u32) {
        if nesting > MAX_TEST_DEPTH {
            return self.unknown("a [[ … ]] test nested too deeply");
        }
        match e {
            ExtendedTestExpr::And(a, b) | ExtendedTestExpr::Or(a, b) => {
                self.test(a, depth, nesting + 1);
                self.test(b, depth, nesting + 1);
            }
            ExtendedTestExpr::Not(a) | ExtendedTestExpr::Parenthesized(a) => {
                self.test(a, depth, nesting + 1)
            }
            ExtendedTestExpr::UnaryTest(predicate, w) => {
                let operand = self.word(&w.value, depth);
                let names_variable = matches!(
                    predicate,
                    UnaryPredicate::ShellVariableIsSetAndAssigned
                        | UnaryPredicate::ShellVariableIsSetAndNameRef
                );
                if names_variable && !operand.literal().is_some_and(variable_name) {
                    self.unknown("[[ -v ]] on something other than a plain variable name (a subscript is code)");
                }
            }
            ExtendedTestExpr::BinaryTest(predicate, a, b) => {
                let left = self.word(&a.value, depth);
                let right = self.word(&b.value, depth);
                let arithmetic = matches!(
                    predicate,
                    BinaryPredicate::ArithmeticEqualTo
                        | BinaryPredicate::ArithmeticNotEqualTo
                        | BinaryPredicate::ArithmeticLessThan
                        | BinaryPredicate::ArithmeticLessThanOrEqualTo
                        | BinaryPredicate::ArithmeticGreaterThan
                        | BinaryPredicate::ArithmeticGreaterThanOrEqualTo
                );
                let integers = [left, right]
                    .iter()
                    .all(|operand| operand.literal().is_some_and(integer_literal));
                if arithmetic && !integers {
                    self.unknown("a [[ ]] numeric comparison whose operand is not an integer (evaluated as code)");
                }
            }
        }
    }

    fn redirect(&mut self, r: &IoRedirect, depth: u32) {
        let harmless_sink = |a: &Arg| {
            matches!(
                a.literal(),
                Some("/dev/null" | "/dev/stdout" | "/dev/stderr")
            )
        };
        let fd_like = |a: &Arg| {
            a.literal().is_some_and(|s| {
                s == "-" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            })
        };
        match r {
            IoRedirect::File(_, kind, target) => {
                let writes = !matches!(
                    kind,
                    IoFileRedirectKind::Read | IoFileRedirectKind::DuplicateInput
                );
                match target {
                    IoFileRedirectTarget::Filename(w) | IoFileRedirectTarget::Duplicate(w) => {
                        let a = self.word(&w.value, depth);
                        let dup = matches!(
                            kind,
                            IoFileRedirectKind::DuplicateInput
                                | IoFileRedirectKind::DuplicateOutput
                        );
                        if (writes || dup) && !harmless_sink(&a) && !(dup && fd_like(&a)) {
                            let to = a.literal().unwrap_or("a computed file name").to_string();
                            self.raise(Class::Write, || {
                                format!("output redirection to {to}: write")
                            });
                        }
                    }
                    IoFileRedirectTarget::Fd(_) => {}
                    IoFileRedirectTarget::ProcessSubstitution(_, s) => self.list(&s.list, depth),
                }
            }
            IoRedirect::HereDocument(_, doc) => {
                if doc.requires_expansion {
                    let w = heredoc_substitutions(&doc.doc.value);
                    self.substitutions(&w, depth);
                }
            }
            IoRedirect::HereString(_, w) => {
                self.word(&w.value, depth);
            }
            IoRedirect::OutputAndError(w, _) => {
                let a = self.word(&w.value, depth);
                if !harmless_sink(&a) {
                    let to = a.literal().unwrap_or("a computed file name").to_string();
                    self.raise(Class::Write, || {
                        format!("output redirection to {to}: write")
                    });
                }
            }
        }
    }

    fn assignment(&mut self, a: &Assignment, standalone: bool, depth: u32) {
        let value = match &a.value {
            AssignmentValue::Scalar(w) => Some(self.word(&w.value, depth)),
            AssignmentValue::Array(items) => {
                for (k, v) in items {
                    if let Some(k) = k {
                        self.word(&k.value, depth);
                    }
                    self.word(&v.value, depth);
                }
                None
            }
        };
        let (name, element) = match &a.name {
            brush_parser::ast::AssignmentName::VariableName(n) => (n.as_str(), false),
            brush_parser::ast::AssignmentName::ArrayElementName(n, _) => (n.as_str(), true),
        };
        let literal = value.as_ref().and_then(Arg::literal);
        if element || !env_assignment_ok(name, literal) || a.append {
            let what = if standalone {
                "shell variable"
            } else {
                "environment variable"
            };
            self.raise(Class::Unknown, || {
                format!("setting the {what} {name} can change what later commands run")
            });
        }
    }

    fn simple(&mut self, s: &SimpleCommand, piped_into: bool, depth: u32) {
        self.simple += 1;
        let prefix = s.prefix.iter().flat_map(|p| p.0.iter());
        let suffix = s.suffix.iter().flat_map(|p| p.0.iter());
        let standalone = s.word_or_name.is_none();
        let mut args = Vec::new();
        for item in prefix.chain(suffix) {
            match item {
                CommandPrefixOrSuffixItem::IoRedirect(r) => self.redirect(r, depth),
                CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                    self.list(&sub.list, depth);
                    args.push(Arg::Opaque {
                        dash_safe: true,
                        single: true,
                    });
                }
                CommandPrefixOrSuffixItem::AssignmentWord(a, w) => {
                    if s.word_or_name.is_some() && args_started(s, item) {
                        args.push(self.word(&w.value, depth));
                    } else {
                        self.assignment(a, standalone, depth);
                    }
                }
                CommandPrefixOrSuffixItem::Word(w) => args.push(self.word(&w.value, depth)),
            }
        }
        let Some(name_word) = &s.word_or_name else {
            return;
        };
        let name = match self.word(&name_word.value, depth) {
            Arg::Literal(n) => n,
            Arg::Opaque { .. } => {
                return self.unknown("a variable, glob or substitution in command position");
            }
        };
        self.run(&name, &args, piped_into, depth, Class::Read);
    }

    /// Classifies running `name` with `args` (after any wrapper), at least `floor`.
    fn run(&mut self, name: &str, args: &[Arg], piped_into: bool, depth: u32, floor: Class) {
        let Some(base) = program_name(name) else {
            self.commands.insert(name.to_string());
            return self.raise(Class::Unknown, || {
                format!("{name} is not run from a system directory")
            });
        };
        self.commands.insert(base.to_string());
        if piped_into && INTERPRETERS.contains(&base) {
            return self.raise(Class::Unknown, || {
                format!("pipe into the interpreter {base}")
            });
        }
        self.raise(floor, || format!("{base} is {floor}"));
        match program(base, args) {
            Verdict::Class(c, why) => self.raise(c, || why),
            Verdict::FileTransfer => self.file_transfer = true,
            Verdict::Wrap {
                at,
                floor: f,
                extra,
                why,
            } => {
                self.raise(f, || why);
                let mut inner: Vec<Arg> = args.get(at..).unwrap_or_default().to_vec();
                if inner.is_empty() {
                    if !extra {
                        return;
                    }
                    // xargs without a command runs echo (found by the fuzzed bash oracle).
                    inner.push(Arg::Literal("echo".into()));
                }
                let first = inner.remove(0);
                if extra {
                    inner.push(Arg::Opaque {
                        dash_safe: false,
                        single: false,
                    });
                }
                match first {
                    Arg::Literal(n) => self.run(&n, &inner, piped_into, depth, floor.max(f)),
                    Arg::Opaque { .. } => {
                        self.unknown("a variable, glob or substitution as the wrapped command")
                    }
                }
            }
            Verdict::Script { script, floor: f } => {
                self.raise(f, || format!("{base} is {f}"));
                self.script(&script, depth + 1);
            }
        }
    }
}

/// Whether a suffix assignment word comes after the command name (then it is an argument).
fn args_started(s: &SimpleCommand, item: &CommandPrefixOrSuffixItem) -> bool {
    s.suffix
        .as_ref()
        .is_some_and(|suf| suf.0.iter().any(|i| std::ptr::eq(i, item)))
}

/// The base name of a program; `None` when it is a path outside the system directories.
fn program_name(name: &str) -> Option<&str> {
    match name.rsplit_once('/') {
        None => Some(name),
        Some((dir, base)) => {
            let system = matches!(
                dir,
                "/bin"
                    | "/usr/bin"
                    | "/sbin"
                    | "/usr/sbin"
                    | "/usr/lib/openssh"
                    | "/usr/libexec/openssh"
                    | "/usr/lib/ssh"
                    | "/usr/libexec"
            );
            (system && !base.is_empty()).then_some(base)
        }
    }
}

#[cfg(test)]
mod tests;
