//! The walk over brush-parser's AST: every simple command, redirection, substitution,
//! arithmetic and test expression of a script, each raising the worst class met.
//!
//! Invariant: whatever the walk does not understand raises the class to `unknown` (fail
//! closed); a nested script (a substitution, `bash -c`) is walked as one, and nesting
//! deeper than the guard's `MAX_DEPTH` (scripts) or [`MAX_TEST_DEPTH`] (`[[ … ]]`
//! expressions) is `unknown`.

use std::collections::BTreeSet;

use brush_parser::Parser;
use brush_parser::ast::{
    Assignment, AssignmentValue, BinaryPredicate, Command, CommandPrefixOrSuffixItem,
    CompoundCommand, CompoundList, ExtendedTestExpr, IoFileRedirectKind, IoFileRedirectTarget,
    IoRedirect, SimpleCommand, UnaryPredicate,
};

use super::arithmetic::{integer_literal, variable_name};
use super::guard::{MAX_DEPTH, here_document};
use super::programs::{INTERPRETERS, program};
use super::verdict::Verdict;
use super::words::{Arg, Word, analyse, heredoc_substitutions, options};
use super::wrappers::env_assignment_ok;
use crate::policy::{Class, Worst, clip};

/// How deeply a `[[ … ]]` expression may nest.
const MAX_TEST_DEPTH: u32 = 64;

/// The walk's findings so far: the worst class met, the programs named, how many simple
/// commands, and whether one is a file transfer's server side.
pub(super) struct Walk {
    pub worst: Worst,
    pub commands: BTreeSet<String>,
    pub simple: usize,
    pub file_transfer: bool,
}

impl Walk {
    fn raise(&mut self, class: Class, reason: impl FnOnce() -> String) {
        self.worst.raise(class, reason);
    }

    fn unknown(&mut self, why: &str) {
        self.raise(Class::Unknown, || why.to_string());
    }

    pub(super) fn script(&mut self, text: &str, depth: u32) {
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
