//! One model of getopt/getopt_long, as the programs parse their own options.
//!
//! A program's [`Spec`] names each option once: its short letter and long name, whether it
//! takes an argument, and the class using it gives the command. It is an allow-list: an
//! option it does not name makes the command `unknown`. [`parse`] reads the arguments as
//! glibc's getopt_long does:
//! - short clusters `-abc`; an option taking an argument takes the rest of the cluster
//!   (`-oFILE`) or the next word (`-o FILE`); an optional argument only the rest (`-i.bak`);
//! - `--name=value` and `--name value` (required arguments), `--name=value` only (optional);
//! - a long name may be abbreviated to any prefix: an exact match wins, a prefix matching
//!   one option resolves to it, a prefix matching several is ambiguous (`unknown`). A
//!   prefix the program finds ambiguous but a spec resolves only makes the program fail;
//!   the one misreading that matters is an option of the program whose whole name is a
//!   proper prefix of a named one (`--user` beside `--user-unit`), which the program takes
//!   exactly: so a spec must name every such option (the specs list whole option tables
//!   where they can);
//! - `--` ends the options; `-` alone is an operand;
//! - GNU permutation: with [`Spec::permute`], options after operands still count (the
//!   programs' default unless `POSIXLY_CORRECT` is set; counting them is the cautious
//!   reading either way, since each word is then checked as an option). Without it (the
//!   wrappers' `+` optstrings and bash builtins), the first operand ends the options.
//!
//! A word whose value is not known now (an expansion) is an operand only when it cannot
//! start with `-` (see `words.rs`); otherwise the command is `unknown`.

use super::words::Arg;
use crate::policy::Class;

/// Whether an option takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takes {
    Nothing,
    Required,
    Optional,
}

/// One option of a program: `short` is `'\0'` when it has no short form, `long` is empty
/// when it has no long form.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    pub short: char,
    pub long: &'static str,
    pub takes: Takes,
    /// The class using this option gives the command (`Read` keeps it a read).
    pub class: Class,
}

/// An option without an argument that keeps the command a read.
pub const fn flag(short: char, long: &'static str) -> Opt {
    Opt {
        short,
        long,
        takes: Takes::Nothing,
        class: Class::Read,
    }
}

/// An option with a required argument that keeps the command a read.
pub const fn value(short: char, long: &'static str) -> Opt {
    Opt {
        short,
        long,
        takes: Takes::Required,
        class: Class::Read,
    }
}

/// An option with an optional argument that keeps the command a read.
pub const fn optional(short: char, long: &'static str) -> Opt {
    Opt {
        short,
        long,
        takes: Takes::Optional,
        class: Class::Read,
    }
}

impl Opt {
    /// The same option, giving the command `class` (write, admin, unknown).
    pub const fn is(self, class: Class) -> Opt {
        Opt { class, ..self }
    }

    /// Whether this is the option with short letter or long name `name`.
    pub fn named(&self, name: &str) -> bool {
        (!self.long.is_empty() && self.long == name)
            || (self.short != '\0' && name.chars().eq([self.short]))
    }
}

/// A program's options.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub options: &'static [Opt],
    /// GNU permutation: options may follow operands.
    pub permute: bool,
    /// Short options taking an argument may sit inside a cluster and take its rest
    /// (getopt). When false (tree's own parser), such an option must stand alone.
    pub attached: bool,
    /// `-NUM` is accepted as an option (head, tail, nice's old spellings).
    pub numeric: bool,
}

impl Spec {
    /// A getopt_long program with GNU permutation.
    pub const fn gnu(options: &'static [Opt]) -> Spec {
        Spec {
            options,
            permute: true,
            attached: true,
            numeric: false,
        }
    }

    /// A program whose options end at the first operand (`+` optstrings, builtins).
    pub const fn posix(options: &'static [Opt]) -> Spec {
        Spec {
            permute: false,
            ..Spec::gnu(options)
        }
    }
}

/// An option's argument as the program receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Literal(&'a str),
    /// An expansion whose value is not known now.
    Opaque,
}

/// The options found, in order, with their arguments, and the operands.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub found: Vec<(&'static Opt, Option<Value<'a>>)>,
    pub operands: Vec<&'a Arg>,
    /// Index in the arguments of the first operand (where options stopped without
    /// permutation), or the number of arguments.
    pub first_operand: usize,
    /// The greatest class of the options found (`Read` when none raises it).
    pub class: Class,
}

impl<'a> Parsed<'a> {
    /// The arguments of every occurrence of the option named `name`.
    pub fn values(&self, name: &str) -> impl Iterator<Item = Option<Value<'a>>> + '_ {
        let name = name.to_string();
        self.found
            .iter()
            .filter(move |(o, _)| o.named(&name))
            .map(|(_, v)| *v)
    }

    /// Whether the option named `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }
}

/// Parses `args` of `program` with `spec`: `Err` with the reason for `unknown` when an
/// option is not in the spec, ambiguous, missing its argument, or cannot be known now.
pub fn parse<'a>(program: &str, spec: &Spec, args: &'a [Arg]) -> Result<Parsed<'a>, String> {
    let mut parsed = Parsed {
        found: Vec::new(),
        operands: Vec::new(),
        first_operand: args.len(),
        class: Class::Read,
    };
    let mut i = 0;
    let mut options_end = false;
    while let Some(arg) = args.get(i) {
        i += 1;
        let word = match arg.literal() {
            _ if options_end => None,
            Some(w) => Some(w),
            None if arg.not_option() => None,
            None => return Err(format!("an option of {program} cannot be known now")),
        };
        let Some(word) = word.filter(|w| w.starts_with('-') && *w != "-") else {
            parsed.first_operand = parsed.first_operand.min(i - 1);
            parsed.operands.push(arg);
            if !spec.permute {
                options_end = true;
            }
            continue;
        };
        if word == "--" {
            options_end = true;
            parsed.first_operand = parsed.first_operand.min(i);
            continue;
        }
        if spec.numeric && word[1..].bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let option = resolve_long(program, spec, name)?;
            let value = match (option.takes, attached) {
                (Takes::Nothing, Some(_)) => {
                    return Err(format!("{program} --{} takes no argument", option.long));
                }
                (Takes::Nothing, None) | (Takes::Optional, None) => None,
                (_, Some(v)) => Some(Value::Literal(v)),
                (Takes::Required, None) => {
                    let next = next_value(program, args.get(i), option)?;
                    i += 1;
                    Some(next)
                }
            };
            parsed.add(option, value);
            continue;
        }
        let cluster = &word[1..];
        for (at, letter) in cluster.char_indices() {
            let option = spec
                .options
                .iter()
                .find(|o| o.short == letter && letter != '\0')
                .ok_or_else(|| format!("{program} -{letter} is not a reviewed option"))?;
            let rest = &cluster[at + letter.len_utf8()..];
            if option.takes == Takes::Nothing {
                parsed.add(option, None);
                continue;
            }
            let alone = at == 0 && rest.is_empty();
            if !(spec.attached || alone) {
                return Err(format!(
                    "{program} -{letter} must stand alone (its parser differs from getopt)"
                ));
            }
            let value = match (option.takes, rest.is_empty()) {
                (_, false) => Some(Value::Literal(rest)),
                (Takes::Optional, true) => None,
                _ => {
                    let next = next_value(program, args.get(i), option)?;
                    i += 1;
                    Some(next)
                }
            };
            parsed.add(option, value);
            break;
        }
    }
    Ok(parsed)
}

impl<'a> Parsed<'a> {
    fn add(&mut self, option: &'static Opt, value: Option<Value<'a>>) {
        self.class = self.class.max(option.class);
        self.found.push((option, value));
    }
}

fn next_value<'a>(program: &str, next: Option<&'a Arg>, option: &Opt) -> Result<Value<'a>, String> {
    match next {
        Some(Arg::Literal(s)) => Ok(Value::Literal(s)),
        Some(a) if a.single_word() || a.not_option() => Ok(Value::Opaque),
        Some(_) => Err(format!(
            "the argument of {program} {} may be several words",
            display(option)
        )),
        None => Err(format!("{program} {} lacks its argument", display(option))),
    }
}

fn display(option: &Opt) -> String {
    if option.long.is_empty() {
        format!("-{}", option.short)
    } else {
        format!("--{}", option.long)
    }
}

/// getopt_long's lookup: an exact name wins; else the one option the prefix starts.
fn resolve_long(program: &str, spec: &Spec, name: &str) -> Result<&'static Opt, String> {
    let options: &'static [Opt] = spec.options;
    if name.is_empty() {
        return Err(format!("{program} -- with a value"));
    }
    if let Some(exact) = options
        .iter()
        .find(|o| !o.long.is_empty() && o.long == name)
    {
        return Ok(exact);
    }
    let mut matches = options
        .iter()
        .filter(|o| !o.long.is_empty() && o.long.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(one), None) => Ok(one),
        (Some(_), Some(_)) => Err(format!("{program} --{name} is ambiguous")),
        (None, _) => Err(format!("{program} --{name} is not a reviewed option")),
    }
}
