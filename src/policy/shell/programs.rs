//! Reviewed program lists and argument checks for shell classification.
//!
//! Invariant: only programs listed in [`READ_ANY_ARGS`] or handled by a checker in
//! [`program`] can be `read`; a checker says `read` only when every argument is known to
//! keep the program read-only. Programs on no list are `unknown`.

use super::sed::sed_script_class;
use super::verdict::Verdict;
use super::words::Arg;
use crate::policy::Class;

/// Read-only whatever their arguments (none can write, run commands or change state).
#[rustfmt::skip]
pub const READ_ANY_ARGS: &[&str] = &[
    "cat", "tac", "nl", "head", "tail", "ls", "dir", "vdir", "stat", "wc", "du", "df", "free",
    "uptime", "uname", "id", "whoami", "groups", "who", "w", "last", "lastb", "users",
    "logname", "echo", "pwd", "true", "false", ":", "basename", "dirname",
    "realpath", "readlink", "md5sum", "sha1sum", "sha224sum", "sha256sum", "sha384sum",
    "sha512sum", "b2sum", "cksum", "sum", "grep", "egrep", "fgrep", "zgrep", "zcat", "bzcat",
    "xzcat", "zstdcat", "cut", "tr", "paste", "join", "comm", "diff", "cmp", "column", "fold",
    "fmt", "expand", "unexpand", "rev", "seq", "yes", "sleep", "ps", "pgrep", "pidof", "lsof",
    "netstat", "lsblk", "blkid", "findmnt", "printenv", "locale", "getent", "nproc", "lscpu",
    "lsmem", "lspci", "lsusb", "vmstat", "iostat", "mpstat", "tree", "jq", "od", "hexdump",
    "strings", "type", "which", "whereis", "hostid", "arch", "tty", "getconf", "numfmt",
    "factor", "expr", "tsort", "base64", "base32", "basenc", "cal", "cd", "exit", "wait",
    "sync",
];

/// Programs that change files.
#[rustfmt::skip]
const WRITE: &[&str] = &[
    "rm", "rmdir", "mv", "cp", "touch", "mkdir", "ln", "chmod", "chown", "chgrp", "truncate",
    "dd", "install", "shred", "tee", "unlink", "mkfifo", "mknod", "rsync", "tar", "unzip",
    "gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "zstd", "split", "csplit", "patch",
    "setfacl", "chattr", "fallocate", "mktemp", "logger", "wall", "write",
];

/// Programs that change system state: services, processes, packages, users, kernel, network.
#[rustfmt::skip]
const ADMIN: &[&str] = &[
    "kill", "pkill", "killall", "reboot", "shutdown", "poweroff", "halt", "init", "telinit",
    "service", "apt", "apt-get", "aptitude", "dpkg", "yum", "dnf", "rpm", "apk", "zypper",
    "pacman", "snap", "flatpak", "pip", "pip3", "npm", "gem", "useradd", "userdel", "usermod",
    "groupadd", "groupdel", "groupmod", "passwd", "chpasswd", "chage", "visudo", "mount",
    "umount", "swapon", "swapoff", "modprobe", "insmod", "rmmod", "iptables", "ip6tables",
    "nft", "ufw", "firewall-cmd", "hostnamectl", "timedatectl", "localectl", "loginctl",
    "update-alternatives", "update-rc.d", "chkconfig",
];

/// Interpreters: anything piped into them (or given a script) is code we cannot see.
#[rustfmt::skip]
pub const INTERPRETERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "ash", "busybox",
    "python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "luajit",
    "tclsh", "wish", "awk", "gawk", "mawk", "nawk", "R", "Rscript", "irb", "pwsh", "expect",
    "deno", "bun", "psql", "mysql", "sqlite3", "redis-cli", "bc", "dc",
];

/// Builtins that run text as code.
const EVALUATORS: &[&str] = &["eval", "exec", "source", ".", "trap", "alias", "coproc"];

/// Classifies program `name` (a base name) run with `args`.
pub fn program(name: &str, args: &[Arg]) -> Verdict {
    if EVALUATORS.contains(&name) {
        return Verdict::unknown(format!("{name} runs text as code"));
    }
    if matches!(name, "scp")
        && args
            .iter()
            .any(|a| matches!(a.literal(), Some("-t" | "-f")))
    {
        return Verdict::FileTransfer;
    }
    if matches!(name, "sftp-server" | "internal-sftp")
        || (name == "rsync" && args.first().and_then(Arg::literal) == Some("--server"))
    {
        return Verdict::FileTransfer;
    }
    if INTERPRETERS.contains(&name) {
        if matches!(
            name,
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash"
        ) {
            return shell_c(name, args);
        }
        return Verdict::unknown(format!("{name} is an interpreter"));
    }
    if let Some(v) = super::wrappers::wrapper(name, args) {
        return v;
    }
    if WRITE.contains(&name) {
        return Verdict::class(Class::Write, format!("{name} changes files: write"));
    }
    if ADMIN.contains(&name) {
        return Verdict::class(Class::Admin, format!("{name} is admin"));
    }
    if matches!(name, "test" | "[") {
        let args = match (name, args.split_last()) {
            ("[", Some((last, rest))) if last.literal() == Some("]") => rest,
            ("[", _) => return Verdict::unknown("[ without its closing ]"),
            _ => args,
        };
        return match super::arithmetic::test_arguments(args) {
            Ok(()) => Verdict::class(Class::Read, format!("{name} is read")),
            Err(why) => Verdict::unknown(why),
        };
    }
    let checked = match name {
        "find" => Some(find(args)),
        "sed" => Some(sed(args)),
        "sort" => Some(sort(args)),
        "uniq" => Some(uniq(args)),
        "systemctl" => Some(super::wrappers::systemctl(args)),
        "journalctl" => Some(journalctl(args)),
        "date" => Some(date(args)),
        "hostname" => Some(hostname(args)),
        "dmesg" => Some(dmesg(args)),
        "sysctl" => Some(sysctl(args)),
        "ss" => Some(flags_forbid(
            args,
            &["-K", "--kill"],
            'K',
            Class::Admin,
            "ss --kill",
        )),
        "file" => Some(flags_forbid(
            args,
            &["-C", "--compile"],
            'C',
            Class::Write,
            "file --compile",
        )),
        "printf" => Some(flags_forbid(
            args,
            &["-v"],
            'v',
            Class::Unknown,
            "printf -v",
        )),
        "ip" => Some(super::wrappers::ip(args)),
        _ => None,
    };
    if let Some(c) = checked {
        if args
            .iter()
            .any(|a| !a.not_option() && a.literal().is_none())
        {
            return Verdict::unknown(format!("the arguments of {name} cannot be checked"));
        }
        return match c {
            Class::Read => {
                Verdict::class(Class::Read, format!("{name} with these arguments is read"))
            }
            c => Verdict::class(c, format!("{name} with these arguments is {c}")),
        };
    }
    if READ_ANY_ARGS.contains(&name) {
        return Verdict::class(Class::Read, format!("{name} is read"));
    }
    Verdict::unknown(format!("program {name} is not on a reviewed list"))
}

/// `sh -c SCRIPT [ARG0 ARGS…]`; any other use of a shell is unknown.
fn shell_c(name: &str, args: &[Arg]) -> Verdict {
    let mut has_c = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let Some(s) = a.literal() else {
            return Verdict::unknown(format!("the options of {name} cannot be checked"));
        };
        if s == "--" {
            i += 1;
            break;
        }
        if s.starts_with("--") {
            if !matches!(
                s,
                "--norc" | "--noprofile" | "--login" | "--posix" | "--noediting"
            ) {
                return Verdict::unknown(format!("{name} {s}"));
            }
        } else if let Some(flags) = s.strip_prefix(['-', '+']) {
            if flags.is_empty() {
                break;
            }
            has_c |= flags.contains('c');
            if flags.ends_with(['o', 'O']) {
                i += 1;
            }
        } else {
            break;
        }
        i += 1;
    }
    if !has_c {
        return Verdict::unknown(format!("{name} without -c runs code we cannot see"));
    }
    match args.get(i).map(Arg::literal) {
        Some(Some(script)) => Verdict::Script {
            script: script.to_string(),
            floor: Class::Read,
        },
        _ => Verdict::unknown(format!(
            "{name} -c with a script that is not a literal string"
        )),
    }
}

/// Short-option clusters: `-abc` → `['a','b','c']`; long options and words → None.
fn cluster(s: &str) -> Option<&str> {
    s.strip_prefix('-')
        .filter(|r| !r.is_empty() && !r.starts_with('-'))
}

fn flags_forbid(args: &[Arg], long: &[&str], short: char, c: Class, _what: &str) -> Class {
    let bad = args.iter().filter_map(Arg::literal).any(|s| {
        long.iter()
            .any(|l| s == *l || (l.starts_with("--") && s.starts_with(&format!("{l}="))))
            || cluster(s).is_some_and(|f| f.contains(short))
    });
    if bad { c } else { Class::Read }
}

fn find(args: &[Arg]) -> Class {
    let mut c = Class::Read;
    for s in args.iter().filter_map(Arg::literal) {
        match s {
            "-exec" | "-execdir" | "-ok" | "-okdir" => return Class::Unknown,
            "-delete" | "-fls" => c = c.max(Class::Write),
            _ if s.starts_with("-fprint") => c = c.max(Class::Write),
            _ => {}
        }
    }
    c
}

fn sed(args: &[Arg]) -> Class {
    let mut scripts: Vec<&str> = Vec::new();
    let mut positional = Vec::new();
    let mut sandbox = false;
    let mut i = 0;
    let mut rest_positional = false;
    while let Some(a) = args.get(i) {
        i += 1;
        let Some(s) = a.literal() else {
            positional.push(None);
            continue;
        };
        if rest_positional || s == "-" || !s.starts_with('-') {
            positional.push(Some(s));
            continue;
        }
        if s == "--" {
            rest_positional = true;
        } else if let Some(long) = s.strip_prefix("--") {
            let (key, value) = long
                .split_once('=')
                .map_or((long, None), |(k, v)| (k, Some(v)));
            match key {
                "in-place" => return Class::Write,
                "file" => return Class::Unknown,
                "sandbox" => sandbox = true,
                "expression" => match value {
                    Some(v) => scripts.push(v),
                    None => match args.get(i).and_then(Arg::literal) {
                        Some(v) => {
                            scripts.push(v);
                            i += 1;
                        }
                        None => return Class::Unknown,
                    },
                },
                "line-length" if value.is_some() => {}
                "quiet" | "silent" | "regexp-extended" | "separate" | "unbuffered"
                | "null-data" | "zero-terminated" | "posix" | "debug" | "follow-symlinks" => {}
                _ => return Class::Unknown,
            }
        } else if let Some(flags) = cluster(s) {
            for (at, f) in flags.char_indices() {
                let rest = &flags[at + f.len_utf8()..];
                match f {
                    'i' => return Class::Write,
                    'f' => return Class::Unknown,
                    'e' | 'l' => {
                        let v = if rest.is_empty() {
                            i += 1;
                            args.get(i - 1).and_then(Arg::literal)
                        } else {
                            Some(rest)
                        };
                        match (f, v) {
                            ('e', Some(v)) => scripts.push(v),
                            ('l', Some(_)) => {}
                            _ => return Class::Unknown,
                        }
                        break;
                    }
                    'n' | 'E' | 'r' | 's' | 'u' | 'z' | 'b' => {}
                    _ => return Class::Unknown,
                }
            }
        } else {
            return Class::Unknown;
        }
    }
    if scripts.is_empty() {
        match positional.first() {
            Some(Some(s)) => scripts.push(s),
            _ => return Class::Unknown,
        }
    }
    if sandbox {
        return Class::Read;
    }
    scripts
        .into_iter()
        .map(sed_script_class)
        .max()
        .unwrap_or(Class::Unknown)
}

fn sort(args: &[Arg]) -> Class {
    for s in args.iter().filter_map(Arg::literal) {
        if s == "--" {
            break;
        }
        if s.starts_with("--output") {
            return Class::Write;
        }
        if s.starts_with("--compress-program") {
            return Class::Unknown;
        }
        if let Some(flags) = cluster(s) {
            for f in flags.chars() {
                match f {
                    'o' => return Class::Write,
                    'k' | 't' | 'S' | 'T' => break,
                    'b' | 'd' | 'f' | 'g' | 'h' | 'i' | 'M' | 'n' | 'R' | 'r' | 's' | 'u' | 'V'
                    | 'c' | 'C' | 'z' | 'm' => {}
                    _ => return Class::Unknown,
                }
            }
        }
    }
    Class::Read
}

fn uniq(args: &[Arg]) -> Class {
    let mut positional = 0;
    let mut skip = false;
    let mut only_positional = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        match a.literal() {
            Some("--") if !only_positional => only_positional = true,
            Some(s) if !only_positional && s.starts_with('-') && s.len() > 1 => {
                if let Some(f) = cluster(s) {
                    skip = f.ends_with(['f', 's', 'w']);
                } else if matches!(s, "--skip-fields" | "--skip-chars" | "--check-chars") {
                    skip = true;
                }
            }
            _ => positional += 1,
        }
    }
    if positional > 1 {
        Class::Write
    } else {
        Class::Read
    }
}

fn journalctl(args: &[Arg]) -> Class {
    let bad = args.iter().filter_map(Arg::literal).any(|s| {
        s.starts_with("--vacuum")
            || matches!(
                s.split('=').next().unwrap_or(s),
                "--rotate"
                    | "--flush"
                    | "--sync"
                    | "--relinquish-var"
                    | "--smart-relinquish-var"
                    | "--setup-keys"
                    | "--update-catalog"
            )
    });
    if bad { Class::Admin } else { Class::Read }
}

fn date(args: &[Arg]) -> Class {
    let mut skip = false;
    for a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        let Some(s) = a.literal() else { continue };
        if s.starts_with("--set") {
            return Class::Admin;
        }
        if let Some(f) = cluster(s) {
            if f.contains('s') {
                return Class::Admin;
            }
            skip = f.ends_with(['d', 'f', 'r']);
        } else if !s.starts_with('-') && !s.starts_with('+') {
            return Class::Admin;
        }
    }
    Class::Read
}

fn hostname(args: &[Arg]) -> Class {
    let sets = args.iter().any(|a| match a.literal() {
        Some(s) => {
            !s.starts_with('-')
                || s.starts_with("--file")
                || cluster(s).is_some_and(|f| f.contains(['F', 'b']))
        }
        None => true,
    });
    if sets { Class::Admin } else { Class::Read }
}

fn dmesg(args: &[Arg]) -> Class {
    let bad = args.iter().filter_map(Arg::literal).any(|s| {
        matches!(
            s.split('=').next().unwrap_or(s),
            "--clear" | "--read-clear" | "--console-off" | "--console-on" | "--console-level"
        ) || cluster(s).is_some_and(|f| f.contains(['c', 'C', 'D', 'E', 'n']))
    });
    if bad { Class::Admin } else { Class::Read }
}

fn sysctl(args: &[Arg]) -> Class {
    let bad = args.iter().filter_map(Arg::literal).any(|s| {
        s.contains('=')
            || matches!(s, "--write" | "--load" | "--system")
            || cluster(s).is_some_and(|f| f.contains(['w', 'p', 'f']))
    });
    if bad { Class::Admin } else { Class::Read }
}
