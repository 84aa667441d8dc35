//! Wrappers (programs that run another program) and the verb checks of `systemctl` and `ip`.
//!
//! Invariant: a wrapper's options are parsed with the exact set of options that take a
//! value; any option not known here makes the command `unknown`, because misreading an
//! option's value as the wrapped program (or the verb) could hide what really runs.

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

/// Option parsing shared by wrappers: `with_value` options consume the next word (or the
/// rest of a short cluster / the part after `=`); `flags` take none; `stop` options make
/// the whole command unknown. Returns the index of the first operand.
struct Opts<'a> {
    short_value: &'a str,
    short_flags: &'a str,
    long_value: &'a [&'a str],
    long_flags: &'a [&'a str],
}

impl Opts<'_> {
    fn operand(&self, name: &str, args: &[Arg]) -> Result<usize, Verdict> {
        let mut i = 0;
        while let Some(a) = args.get(i) {
            let Some(s) = a.literal() else {
                return if a.not_option() {
                    Ok(i)
                } else {
                    Err(Verdict::unknown(format!(
                        "the options of {name} cannot be checked"
                    )))
                };
            };
            if s == "--" {
                return Ok(i + 1);
            }
            if let Some(long) = s.strip_prefix("--") {
                let key = long.split('=').next().unwrap_or(long);
                if self.long_value.contains(&key) {
                    i += if long.contains('=') { 1 } else { 2 };
                } else if self.long_flags.contains(&key) {
                    i += 1;
                } else {
                    return Err(Verdict::unknown(format!("{name} {s}")));
                }
                continue;
            }
            match s.strip_prefix('-') {
                Some(flags) if !flags.is_empty() => {
                    i += 1;
                    for (at, c) in flags.char_indices() {
                        if self.short_value.contains(c) {
                            if flags.len() == at + c.len_utf8() {
                                i += 1;
                            }
                            break;
                        } else if !self.short_flags.contains(c) {
                            return Err(Verdict::unknown(format!("{name} {s}")));
                        }
                    }
                }
                _ => return Ok(i),
            }
        }
        Ok(i)
    }
}

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
        "timeout" => match (Opts {
            short_value: "sk",
            short_flags: "v",
            long_value: &["signal", "kill-after"],
            long_flags: &["preserve-status", "foreground", "verbose"],
        })
        .operand(name, args)
        {
            // The operand is the duration; the command follows it.
            Ok(i) => wrap(i + 1, Class::Read, false, name),
            Err(v) => v,
        },
        "nice" => {
            // `nice -10 cmd` is an old spelling of `-n 10`.
            let numeric = args.first().and_then(Arg::literal).is_some_and(|s| {
                s.len() > 1 && s.starts_with('-') && s[1..].bytes().all(|b| b.is_ascii_digit())
            });
            let parsed = if numeric {
                Ok(1)
            } else {
                Opts {
                    short_value: "n",
                    short_flags: "",
                    long_value: &["adjustment"],
                    long_flags: &[],
                }
                .operand(name, args)
            };
            match parsed {
                Ok(i) => wrap(i, Class::Read, false, name),
                Err(v) => v,
            }
        }
        "xargs" => match (Opts {
            short_value: "IiLlnPsdEeaa",
            short_flags: "0rtpxo",
            long_value: &[
                "arg-file",
                "delimiter",
                "max-args",
                "max-procs",
                "replace",
                "max-lines",
                "max-chars",
                "eof",
                "process-slot-var",
            ],
            long_flags: &[
                "null",
                "no-run-if-empty",
                "verbose",
                "interactive",
                "exit",
                "open-tty",
                "show-limits",
            ],
        })
        .operand(name, args)
        {
            Ok(i) => wrap(i, Class::Read, true, name),
            Err(v) => v,
        },
        "stdbuf" => match (Opts {
            short_value: "ioe",
            short_flags: "",
            long_value: &["input", "output", "error"],
            long_flags: &[],
        })
        .operand(name, args)
        {
            Ok(i) => wrap(i, Class::Read, false, name),
            Err(v) => v,
        },
        "time" => {
            let writes = args
                .iter()
                .map_while(Arg::literal)
                .take_while(|s| s.starts_with('-'))
                .any(|s| {
                    s == "-o" || s.starts_with("--output") || (s.starts_with("-o") && s.len() > 2)
                });
            match (Opts {
                short_value: "fo",
                short_flags: "apvq",
                long_value: &["format", "output"],
                long_flags: &["append", "portability", "verbose", "quiet"],
            })
            .operand(name, args)
            {
                Ok(i) => wrap(
                    i,
                    if writes { Class::Write } else { Class::Read },
                    false,
                    name,
                ),
                Err(v) => v,
            }
        }
        "sudo" => match (Opts {
            short_value: "ugCDhprtTUR",
            short_flags: "AbEHKklnPSVvBN",
            long_value: &[
                "user",
                "group",
                "close-from",
                "chdir",
                "host",
                "prompt",
                "role",
                "type",
                "command-timeout",
                "other-user",
                "chroot",
            ],
            long_flags: &[
                "askpass",
                "background",
                "preserve-env",
                "set-home",
                "remove-timestamp",
                "reset-timestamp",
                "list",
                "non-interactive",
                "preserve-groups",
                "stdin",
                "version",
                "validate",
                "bell",
            ],
        })
        .operand(name, args)
        {
            Ok(i) if i >= args.len() => Verdict::class(Class::Admin, "sudo is admin"),
            Ok(i) => wrap(i, Class::Admin, false, name),
            Err(v) => v,
        },
        "doas" | "pkexec" => match (Opts {
            short_value: "uC",
            short_flags: "nL",
            long_value: &["user"],
            long_flags: &["disable-internal-agent", "keep-cwd"],
        })
        .operand(name, args)
        {
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
    let opts = Opts {
        short_value: "uC",
        short_flags: "i0v",
        long_value: &["unset", "chdir"],
        long_flags: &["ignore-environment", "null", "debug"],
    };
    let mut i = match args.first().and_then(Arg::literal) {
        Some("-") => 1,
        _ => match opts.operand("env", args) {
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

/// `systemctl` is read only with a read verb (status, show, is-*, list-*, …) or none.
pub fn systemctl(args: &[Arg]) -> Class {
    let opts = Opts {
        short_value: "tpPsnoHM",
        short_flags: "alqrfi",
        long_value: &[
            "type",
            "state",
            "property",
            "signal",
            "kill-whom",
            "kill-value",
            "lines",
            "output",
            "host",
            "machine",
            "root",
            "image",
            "job-mode",
            "what",
            "timestamp",
            "message",
            "when",
            "preset-mode",
            "boot-loader-menu",
            "boot-loader-entry",
            "reboot-argument",
            "drop-in",
        ],
        long_flags: &[
            "all",
            "recursive",
            "reverse",
            "after",
            "before",
            "with-dependencies",
            "show-types",
            "value",
            "failed",
            "full",
            "no-pager",
            "no-legend",
            "legend",
            "no-ask-password",
            "quiet",
            "no-block",
            "wait",
            "user",
            "system",
            "global",
            "runtime",
            "now",
            "force",
            "no-reload",
            "no-warn",
            "plain",
            "dry-run",
            "check-inhibitors",
        ],
    };
    match opts.operand("systemctl", args) {
        Err(_) => Class::Unknown,
        Ok(i) => match args.get(i) {
            None => Class::Read,
            Some(a) => match a.literal() {
                Some(v) if SYSTEMCTL_READ_VERBS.contains(&v) => Class::Read,
                Some(_) => Class::Admin,
                None => Class::Unknown,
            },
        },
    }
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
