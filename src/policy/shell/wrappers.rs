//! Wrappers (programs that run another program) and the verb checks of `systemctl` and `ip`.
//!
//! Invariant: a wrapper's options are parsed with the exact set of options that take a
//! value; any option not known here makes the command `unknown`, because misreading an
//! option's value as the wrapped program (or the verb) could hide what really runs.

use super::options::{Spec, flag, optional, parse, value};
use super::verdict::Verdict;
use super::words::Arg;
use crate::policy::Class;

fn wrap(at: usize, floor: Class, extra: bool, name: &str) -> Verdict {
    Verdict::Wrap {
        at,
        floor,
        extra,
        why: match floor {
            Class::Read => format!("{name} runs the command it wraps"),
            _ => format!("{name} is {floor}"),
        },
    }
}

/// Environment variables an assignment may set without changing what programs run, with a
/// plain value: a later arithmetic context or `${…@P}` would run code found in the value
/// (`LC_A='a[$(…)]'; echo $((LC_A))`), so a value holding `$`, a backquote, `[`, `]` or `(`
/// is refused, as is a value not known now. Pager variables are accepted only as empty or
/// `cat`.
pub fn env_assignment_ok(name: &str, value: Option<&str>) -> bool {
    let Some(value) = value else {
        return false;
    };
    if value.contains(['$', '`', '[', ']', '(']) {
        return false;
    }
    match name {
        "PAGER" | "SYSTEMD_PAGER" | "MANPAGER" | "GIT_PAGER" => matches!(value, "" | "cat"),
        "LANG"
        | "LANGUAGE"
        | "TZ"
        | "TERM"
        | "COLUMNS"
        | "LINES"
        | "NO_COLOR"
        | "SYSTEMD_COLORS"
        | "SYSTEMD_PAGERSECURE"
        | "SYSTEMD_URLIFY" => true,
        _ => name.starts_with("LC_"),
    }
}

/// Where the wrapped command starts: the first operand after the wrapper's options, read
/// with the one getopt model (the wrappers' optstrings start with `+`: no permutation).
fn operand(name: &str, spec: &Spec, args: &[Arg]) -> Result<usize, Verdict> {
    parse(name, spec, args)
        .map(|p| p.first_operand)
        .map_err(Verdict::unknown)
}

/// Like [`operand`], also giving the greatest class of the options found.
fn operand_and_class(name: &str, spec: &Spec, args: &[Arg]) -> Result<(usize, Class), Verdict> {
    parse(name, spec, args)
        .map(|p| (p.first_operand, p.class))
        .map_err(Verdict::unknown)
}

static TIMEOUT: Spec = Spec::posix(&[
    value('s', "signal"),
    value('k', "kill-after"),
    flag('v', "verbose"),
    flag('\0', "preserve-status"),
    flag('\0', "foreground"),
]);

static NICE: Spec = Spec {
    numeric: true,
    ..Spec::posix(&[value('n', "adjustment")])
};

static XARGS: Spec = Spec::posix(&[
    value('a', "arg-file"),
    value('d', "delimiter"),
    value('n', "max-args"),
    value('P', "max-procs"),
    optional('i', "replace"),
    value('I', ""),
    optional('l', "max-lines"),
    value('L', ""),
    value('s', "max-chars"),
    optional('e', "eof"),
    value('E', ""),
    value('\0', "process-slot-var"),
    flag('0', "null"),
    flag('r', "no-run-if-empty"),
    flag('t', "verbose"),
    flag('p', "interactive"),
    flag('x', "exit"),
    flag('o', "open-tty"),
    flag('\0', "show-limits"),
]);

static STDBUF: Spec = Spec::posix(&[
    value('i', "input"),
    value('o', "output"),
    value('e', "error"),
]);

static TIME: Spec = Spec::posix(&[
    value('f', "format"),
    value('o', "output").is(Class::Write),
    flag('a', "append"),
    flag('p', "portability"),
    flag('v', "verbose"),
    flag('q', "quiet"),
]);

static SUDO: Spec = Spec::posix(&[
    value('u', "user"),
    value('g', "group"),
    value('C', "close-from"),
    value('D', "chdir"),
    optional('h', "host"),
    value('p', "prompt"),
    value('r', "role"),
    value('t', "type"),
    value('T', "command-timeout"),
    value('U', "other-user"),
    value('R', "chroot"),
    flag('A', "askpass"),
    flag('b', "background"),
    optional('E', "preserve-env"),
    flag('H', "set-home"),
    flag('K', "remove-timestamp"),
    flag('k', "reset-timestamp"),
    flag('l', "list"),
    flag('n', "non-interactive"),
    flag('P', "preserve-groups"),
    flag('S', "stdin"),
    flag('V', "version"),
    flag('v', "validate"),
    flag('B', "bell"),
    flag('N', "no-update"),
]);

static DOAS: Spec = Spec::posix(&[
    value('u', "user"),
    value('C', ""),
    flag('n', ""),
    flag('L', ""),
    flag('\0', "disable-internal-agent"),
    flag('\0', "keep-cwd"),
]);

static ENV: Spec = Spec::posix(&[
    value('u', "unset"),
    value('C', "chdir"),
    flag('i', "ignore-environment"),
    flag('0', "null"),
    flag('v', "debug"),
]);

/// `Some` when `name` is a wrapper.
pub fn wrapper(name: &str, args: &[Arg]) -> Option<Verdict> {
    let v = match name {
        "env" => env(args),
        "nohup" | "builtin" => wrap(0, Class::Read, false, name),
        "command" => {
            let lits: Vec<_> = args.iter().map_while(Arg::literal).collect();
            let at = lits.iter().take_while(|s| **s == "-p").count();
            if lits.iter().take(at + 1).any(|s| matches!(*s, "-v" | "-V")) {
                Verdict::class(Class::Read, "command -v only looks a name up")
            } else {
                wrap(at, Class::Read, false, name)
            }
        }
        // The first operand is the duration; the command follows it.
        "timeout" => match operand(name, &TIMEOUT, args) {
            Ok(i) => wrap(i + 1, Class::Read, false, name),
            Err(v) => v,
        },
        // `nice -10 cmd` is an old spelling of `-n 10`.
        "nice" => match operand(name, &NICE, args) {
            Ok(i) => wrap(i, Class::Read, false, name),
            Err(v) => v,
        },
        "xargs" => match operand(name, &XARGS, args) {
            Ok(i) => wrap(i, Class::Read, true, name),
            Err(v) => v,
        },
        "stdbuf" => match operand(name, &STDBUF, args) {
            Ok(i) => wrap(i, Class::Read, false, name),
            Err(v) => v,
        },
        "time" => match operand_and_class(name, &TIME, args) {
            Ok((i, class)) => wrap(i, class, false, name),
            Err(v) => v,
        },
        "sudo" => match operand(name, &SUDO, args) {
            Ok(i) if i >= args.len() => Verdict::class(Class::Admin, "sudo is admin"),
            Ok(i) => wrap(i, Class::Admin, false, name),
            Err(v) => v,
        },
        "doas" | "pkexec" => match operand(name, &DOAS, args) {
            Ok(i) if i >= args.len() => {
                Verdict::unknown(format!("{name} without a command starts a shell"))
            }
            Ok(i) => wrap(i, Class::Admin, false, name),
            Err(v) => v,
        },
        "su" | "runuser" => su(name, args),
        _ => return None,
    };
    Some(v)
}

fn env(args: &[Arg]) -> Verdict {
    let mut i = match args.first().and_then(Arg::literal) {
        Some("-") => 1,
        _ => match operand("env", &ENV, args) {
            Ok(i) => i,
            Err(v) => return v,
        },
    };
    while let Some(a) = args.get(i) {
        match a.literal().and_then(|s| s.split_once('=')) {
            Some((name, value)) if !name.is_empty() && !name.contains('/') => {
                if !env_assignment_ok(name, Some(value)) {
                    return Verdict::unknown(format!(
                        "env setting {name} can change what programs run"
                    ));
                }
                i += 1;
            }
            _ => break,
        }
    }
    if i >= args.len() {
        return Verdict::class(Class::Read, "env prints the environment");
    }
    wrap(i, Class::Read, false, "env")
}

fn su(name: &str, args: &[Arg]) -> Verdict {
    let mut script = None;
    let mut operands = 0;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        let Some(s) = a.literal() else {
            return Verdict::unknown(format!("the arguments of {name} cannot be checked"));
        };
        match s {
            "-" | "-l" | "--login" | "-m" | "-p" | "--preserve-environment" | "-P" | "--pty" => {}
            "-c" | "--command" => {
                script = Some(
                    args.get(i)
                        .and_then(Arg::literal)
                        .unwrap_or_default()
                        .to_string(),
                );
                i += 1;
            }
            _ if s.starts_with("--command=") => script = Some(s["--command=".len()..].to_string()),
            "-g" | "--group" | "-G" | "--supp-group" | "-u" | "--user" => i += 1,
            _ if s.starts_with('-') => return Verdict::unknown(format!("{name} {s}")),
            _ => operands += 1,
        }
    }
    match script {
        Some(s) if !s.is_empty() && operands <= 1 => Verdict::Script {
            script: s,
            floor: Class::Admin,
        },
        _ => Verdict::unknown(format!("{name} without -c COMMAND starts a shell")),
    }
}

const SYSTEMCTL_READ_VERBS: &[&str] = &[
    "status",
    "show",
    "cat",
    "is-active",
    "is-enabled",
    "is-failed",
    "is-system-running",
    "list-units",
    "list-unit-files",
    "list-sockets",
    "list-timers",
    "list-jobs",
    "list-dependencies",
    "list-machines",
    "list-automounts",
    "list-paths",
    "get-default",
    "show-environment",
];

/// systemctl's options (getopt_long with permutation); the verb is the first operand.
static SYSTEMCTL: Spec = Spec::gnu(&[
    value('t', "type"),
    value('p', "property"),
    value('P', ""),
    value('s', "signal"),
    value('n', "lines"),
    value('o', "output"),
    value('H', "host"),
    value('M', "machine"),
    flag('a', "all"),
    flag('l', "full"),
    flag('q', "quiet"),
    flag('r', "recursive"),
    flag('f', ""),
    flag('i', ""),
    value('\0', "state"),
    value('\0', "kill-whom"),
    value('\0', "kill-value"),
    value('\0', "root"),
    value('\0', "image"),
    value('\0', "job-mode"),
    value('\0', "what"),
    value('\0', "timestamp"),
    value('\0', "message"),
    value('\0', "when"),
    value('\0', "preset-mode"),
    value('\0', "boot-loader-menu"),
    value('\0', "boot-loader-entry"),
    value('\0', "reboot-argument"),
    value('\0', "drop-in"),
    flag('\0', "reverse"),
    flag('\0', "after"),
    flag('\0', "before"),
    flag('\0', "with-dependencies"),
    flag('\0', "show-types"),
    flag('\0', "value"),
    flag('\0', "failed"),
    flag('\0', "no-pager"),
    flag('\0', "no-legend"),
    flag('\0', "legend"),
    flag('\0', "no-ask-password"),
    flag('\0', "no-block"),
    flag('\0', "wait"),
    flag('\0', "user"),
    flag('\0', "system"),
    flag('\0', "global"),
    flag('\0', "runtime"),
    flag('\0', "now"),
    flag('\0', "force"),
    flag('\0', "no-reload"),
    flag('\0', "no-warn"),
    flag('\0', "plain"),
    flag('\0', "dry-run"),
    flag('\0', "check-inhibitors"),
]);

/// `systemctl` is read only with a read verb (status, show, is-*, list-*, …) or none.
pub fn systemctl(args: &[Arg]) -> Result<Class, String> {
    let parsed = parse("systemctl", &SYSTEMCTL, args)?;
    Ok(match parsed.operands.first() {
        None => Class::Read,
        Some(a) => match a.literal() {
            Some(v) if SYSTEMCTL_READ_VERBS.contains(&v) => Class::Read,
            Some(_) => Class::Admin,
            None => return Err("a systemctl verb not known now".into()),
        },
    })
}

/// `ip [OPTIONS] OBJECT [show|list|ls|lst|get …]` is read; any other verb is admin.
pub fn ip(args: &[Arg]) -> Class {
    let mut i = 0;
    while let Some(s) = args.get(i).and_then(Arg::literal) {
        if !s.starts_with('-') {
            break;
        }
        let o = s.trim_start_matches('-');
        match o.split('=').next().unwrap_or(o) {
            "4" | "6" | "0" | "s" | "stats" | "statistics" | "d" | "details" | "o" | "oneline"
            | "j" | "json" | "p" | "pretty" | "c" | "color" | "colour" | "br" | "brief" | "h"
            | "human" | "human-readable" | "r" | "resolve" | "a" | "all" | "t" | "timestamp"
            | "ts" | "tshort" => i += 1,
            "n" | "netns" | "f" | "family" | "l" | "loops" | "rc" | "rcvbuf" => i += 2,
            _ => return Class::Unknown,
        }
    }
    let Some(object) = args.get(i) else {
        return Class::Read;
    };
    if object.literal().is_none() {
        return Class::Unknown;
    }
    match args.get(i + 1).map(Arg::literal) {
        None => Class::Read,
        Some(Some("show" | "list" | "ls" | "lst" | "get")) => Class::Read,
        Some(Some(_)) => Class::Admin,
        Some(None) => Class::Unknown,
    }
}
