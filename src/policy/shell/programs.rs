//! Reviewed program lists and argument checks for shell classification.
//!
//! Invariant: only programs listed in [`READ_ANY_ARGS`] or handled by a checker
//! (`checks.rs`, the `systemctl`/`ip` verb checks) can be `read`; a checker says `read` only when every argument is known to
//! keep the program read-only. Programs on no list are `unknown`.

use super::checks;
use super::verdict::Verdict;
use super::words::Arg;
use crate::policy::Class;

/// Read-only whatever their arguments: none has an option that writes a file, runs a
/// program or changes state (reviewed against each program's option table, issue 13).
/// Programs with such an option are checked instead (`checks.rs`: `zcat` and friends,
/// `tree -o`, `blkid` (its cache), `lsof -D`, `journalctl --cursor-file`, `test -v`…).
/// - coreutils readers: cat tac nl head tail ls dir vdir stat wc du df basename dirname
///   realpath readlink cut tr paste join comm fold fmt expand unexpand seq yes sleep
///   printenv nproc tty numfmt factor expr tsort base64 base32 basenc md5sum sha*sum b2sum
///   cksum sum uname id whoami groups who users logname pwd hostid arch (their file
///   arguments are read; `--files0-from` reads a list; none has an output-file option);
/// - `echo`, `true`, `false`, `:`, `cd`, `exit`, `wait`, `type`, `pwd`: bash builtins that
///   change nothing outside the shell (`exit`/`wait` read numbers with `legal_number`,
///   never arithmetic evaluation, checked with bash 5.2);
/// - `sync`: flushes buffers already written; it changes no data;
/// - text tools: `grep`/`egrep`/`fgrep` (`-f` reads patterns), `diff`, `cmp`, `column`,
///   `rev`, `od`, `hexdump`, `strings`, `jq` (jq has no file-writing builtin);
/// - system readers (procfs/sysfs/utmp/NSS): `free`, `uptime`, `w`, `last`, `lastb`,
///   `ps` (procps parses its own BSD/UNIX/GNU syntax; `ps aux` included; none of its
///   options writes), `pgrep` (never signals), `pidof`, `netstat`, `lsblk`, `findmnt`,
///   `locale`, `getent`, `lscpu`, `lsmem`, `lspci`, `lsusb`, `vmstat`, `iostat`,
///   `mpstat`, `getconf`, `cal`, `which`, `whereis`.
///
/// Removed in issue 13: `zgrep` (a shell script feeding file names to sed: CVE-2022-1271
/// wrote files through crafted names), `zcat`/`bzcat`/`xzcat`/`zstdcat`, `tree`, `blkid`,
/// `lsof` (checked now), `test`/`[` (arithmetic operands are code).
#[rustfmt::skip]
pub const READ_ANY_ARGS: &[&str] = &[
    "cat", "tac", "nl", "head", "tail", "ls", "dir", "vdir", "stat", "wc", "du", "df", "free",
    "uptime", "uname", "id", "whoami", "groups", "who", "w", "last", "lastb", "users",
    "logname", "echo", "pwd", "true", "false", ":", "basename", "dirname",
    "realpath", "readlink", "md5sum", "sha1sum", "sha224sum", "sha256sum", "sha384sum",
    "sha512sum", "b2sum", "cksum", "sum", "grep", "egrep", "fgrep",
    "cut", "tr", "paste", "join", "comm", "diff", "cmp", "column", "fold",
    "fmt", "expand", "unexpand", "rev", "seq", "yes", "sleep", "ps", "pgrep", "pidof",
    "netstat", "lsblk", "findmnt", "printenv", "locale", "getent", "nproc", "lscpu",
    "lsmem", "lspci", "lsusb", "vmstat", "iostat", "mpstat", "jq", "od", "hexdump",
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
        "systemctl" => Some(super::wrappers::systemctl(args)),
        "ip" => Some(Ok(super::wrappers::ip(args))),
        _ => checks::checked(name, args),
    };
    if let Some(result) = checked {
        if args
            .iter()
            .any(|a| !a.not_option() && a.literal().is_none())
        {
            return Verdict::unknown(format!("the arguments of {name} cannot be checked"));
        }
        return match result {
            Ok(c) => Verdict::class(c, format!("{name} with these arguments is {c}")),
            Err(why) => Verdict::unknown(why),
        };
    }
    if READ_ANY_ARGS.contains(&name) {
        return Verdict::class(Class::Read, format!("{name} is read"));
    }
    Verdict::unknown(format!("program {name} is not on a reviewed list"))
}

/// The single-letter options of `sh`/`bash` that change nothing but how the script runs
/// (`o`/`O` take a shell option name).
const SHELL_FLAGS: &str = "ceuxvfnhBCEHPTabkmproO";

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
            if !matches!(s, "--norc" | "--noprofile" | "--posix" | "--noediting") {
                return Verdict::unknown(format!("{name} {s}"));
            }
        } else if let Some(flags) = s.strip_prefix(['-', '+']) {
            if flags.is_empty() {
                break;
            }
            // -l/--login and -i read profile and rc files (code we cannot see: the bash
            // oracle caught `bash -lc` running /etc/profile); -s reads the script from stdin.
            if let Some(other) = flags.chars().find(|c| !SHELL_FLAGS.contains(*c)) {
                return Verdict::unknown(format!("{name} -{other} is not a reviewed option"));
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
