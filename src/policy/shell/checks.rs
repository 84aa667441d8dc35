//! Argument checks of the programs that are read only with some options, each an
//! allow-list [`Spec`] read with the one getopt model (`options.rs`).
//!
//! Invariant: [`checked`] returns `Read` only when every option is named in the program's
//! spec as keeping it a read and its operands are read-only too; an option the spec does
//! not name, an ambiguous abbreviation or an argument not known now is `unknown`; options
//! known to write or change state carry their class (`sort -o` write, `dmesg -c` admin).

use super::options::{Parsed, Spec, Value, flag, optional, parse, value};
use super::sed::sed_script_class;
use super::words::Arg;
use crate::policy::Class;
use Class::{Admin, Unknown, Write};

/// The class of `name` with `args`, when `name` is a checked program; the reason comes
/// with an `unknown`.
pub fn checked(name: &str, args: &[Arg]) -> Option<Result<Class, String>> {
    let spec = match name {
        "find" => return Some(find(args)),
        "sed" => &SED,
        "sort" => &SORT,
        "uniq" => &UNIQ,
        "journalctl" => &JOURNALCTL,
        "date" => &DATE,
        "hostname" => &HOSTNAME,
        "dmesg" => &DMESG,
        "sysctl" => &SYSCTL,
        "ss" => &SS,
        "file" => &FILE,
        "printf" => &PRINTF,
        "zcat" => &ZCAT,
        "bzcat" => &BZCAT,
        "xzcat" => &XZCAT,
        "zstdcat" => &ZSTDCAT,
        "tree" => &TREE,
        "blkid" => &BLKID,
        "lsof" => return Some(lsof(args)),
        _ => return None,
    };
    Some(parse(name, spec, args).and_then(|p| operands(name, &p).map(|c| c.max(p.class))))
}

/// The class the operands give, once the options are read.
fn operands(name: &str, p: &Parsed) -> Result<Class, String> {
    Ok(match name {
        "sed" => sed(p)?,
        "uniq" if p.operands.len() > 1 => Write,
        "date" => {
            let format = |a: &&Arg| a.literal().is_some_and(|s| s.starts_with('+'));
            if p.operands.iter().all(format) {
                Class::Read
            } else {
                Admin
            }
        }
        "hostname" if !p.operands.is_empty() => Admin,
        "sysctl" => {
            if p.operands
                .iter()
                .all(|a| a.literal().is_some_and(|s| !s.contains('=')))
            {
                Class::Read
            } else {
                Admin
            }
        }
        _ => Class::Read,
    })
}

fn sed(p: &Parsed) -> Result<Class, String> {
    if p.has("sandbox") && p.class == Class::Read {
        return Ok(Class::Read);
    }
    let mut scripts: Vec<Option<Value>> = p.values("e").collect::<Vec<_>>();
    if scripts.is_empty() {
        scripts.push(p.operands.first().map(|a| match a.literal() {
            Some(s) => Value::Literal(s),
            None => Value::Opaque,
        }));
    }
    let mut class = Class::Read;
    for script in scripts {
        match script {
            Some(Value::Literal(s)) => class = class.max(sed_script_class(s)),
            _ => return Err("a sed script not known now".into()),
        }
    }
    Ok(class)
}

static SED: Spec = Spec::gnu(&[
    flag('n', "quiet"),
    flag('\0', "silent"),
    flag('\0', "debug"),
    value('e', "expression"),
    value('f', "file").is(Unknown),
    flag('\0', "follow-symlinks"),
    optional('i', "in-place").is(Write),
    value('l', "line-length"),
    flag('\0', "posix"),
    flag('E', "regexp-extended"),
    flag('r', ""),
    flag('s', "separate"),
    flag('\0', "sandbox"),
    flag('u', "unbuffered"),
    flag('z', "null-data"),
    flag('b', "binary"),
    flag('\0', "help"),
    flag('\0', "version"),
]);

static SORT: Spec = Spec::gnu(&[
    flag('b', "ignore-leading-blanks"),
    flag('d', "dictionary-order"),
    flag('f', "ignore-case"),
    flag('g', "general-numeric-sort"),
    flag('i', "ignore-nonprinting"),
    flag('M', "month-sort"),
    flag('h', "human-numeric-sort"),
    flag('n', "numeric-sort"),
    flag('R', "random-sort"),
    value('\0', "random-source"),
    flag('r', "reverse"),
    value('\0', "sort"),
    flag('V', "version-sort"),
    value('\0', "batch-size"),
    optional('c', "check"),
    flag('C', ""),
    value('\0', "compress-program").is(Unknown),
    flag('\0', "debug"),
    value('\0', "files0-from"),
    value('k', "key"),
    flag('m', "merge"),
    value('o', "output").is(Write),
    flag('s', "stable"),
    value('S', "buffer-size"),
    value('t', "field-separator"),
    // Temporary files, removed when sort ends: what sort does in $TMPDIR anyway.
    value('T', "temporary-directory"),
    value('\0', "parallel"),
    flag('u', "unique"),
    flag('z', "zero-terminated"),
    flag('\0', "help"),
    flag('\0', "version"),
]);

static UNIQ: Spec = Spec::gnu(&[
    flag('c', "count"),
    flag('d', "repeated"),
    flag('D', ""),
    optional('\0', "all-repeated"),
    value('f', "skip-fields"),
    optional('\0', "group"),
    flag('i', "ignore-case"),
    value('s', "skip-chars"),
    flag('u', "unique"),
    flag('z', "zero-terminated"),
    value('w', "check-chars"),
    flag('\0', "help"),
    flag('\0', "version"),
]);

/// journalctl also takes `-b -1` (a negative boot offset as the next word): `-NUM` words
/// are accepted as numbers.
static JOURNALCTL: Spec = Spec {
    numeric: true,
    ..Spec::gnu(&[
        flag('\0', "system"),
        flag('\0', "user"),
        value('M', "machine"),
        flag('m', "merge"),
        value('D', "directory"),
        value('i', "file"),
        value('\0', "root"),
        value('\0', "image").is(Unknown),
        value('\0', "image-policy").is(Unknown),
        value('\0', "namespace"),
        flag('\0', "list-namespaces"),
        value('S', "since"),
        value('U', "until"),
        value('c', "cursor"),
        value('\0', "after-cursor"),
        value('\0', "cursor-file").is(Write),
        optional('b', "boot"),
        value('u', "unit"),
        value('\0', "user-unit"),
        value('t', "identifier"),
        value('T', "exclude-identifier"),
        value('p', "priority"),
        value('\0', "facility"),
        value('g', "grep"),
        optional('\0', "case-sensitive"),
        flag('k', "dmesg"),
        value('o', "output"),
        value('\0', "output-fields"),
        optional('n', "lines"),
        flag('r', "reverse"),
        flag('\0', "show-cursor"),
        flag('\0', "utc"),
        flag('x', "catalog"),
        flag('\0', "no-hostname"),
        flag('\0', "no-full"),
        flag('l', "full"),
        flag('a', "all"),
        flag('f', "follow"),
        flag('\0', "no-tail"),
        flag('q', "quiet"),
        flag('e', "pager-end"),
        flag('\0', "no-pager"),
        flag('\0', "list-boots"),
        flag('\0', "disk-usage"),
        value('\0', "vacuum-size").is(Admin),
        value('\0', "vacuum-files").is(Admin),
        value('\0', "vacuum-time").is(Admin),
        flag('\0', "verify"),
        value('\0', "verify-key"),
        flag('\0', "sync").is(Admin),
        flag('\0', "relinquish-var").is(Admin),
        flag('\0', "smart-relinquish-var").is(Admin),
        flag('\0', "flush").is(Admin),
        flag('\0', "rotate").is(Admin),
        flag('\0', "header"),
        flag('\0', "list-catalog"),
        flag('\0', "dump-catalog"),
        flag('\0', "update-catalog").is(Admin),
        flag('\0', "setup-keys").is(Admin),
        value('\0', "interval").is(Admin),
        flag('\0', "force").is(Admin),
        value('F', "field"),
        flag('N', "fields"),
        flag('\0', "new-id128"),
        flag('h', "help"),
        flag('\0', "version"),
    ])
};

static DATE: Spec = Spec::gnu(&[
    value('d', "date"),
    flag('\0', "debug"),
    value('f', "file"),
    optional('I', "iso-8601"),
    flag('R', "rfc-email"),
    flag('\0', "rfc-2822"),
    value('\0', "rfc-3339"),
    value('r', "reference"),
    flag('\0', "resolution"),
    value('s', "set").is(Admin),
    flag('u', "utc"),
    flag('\0', "universal"),
    flag('\0', "uct"),
    flag('\0', "help"),
    flag('\0', "version"),
]);

static HOSTNAME: Spec = Spec::gnu(&[
    flag('a', "alias"),
    flag('A', "all-fqdns"),
    flag('b', "boot").is(Admin),
    flag('d', "domain"),
    flag('f', "fqdn"),
    flag('\0', "long"),
    value('F', "file").is(Admin),
    flag('i', "ip-address"),
    flag('I', "all-ip-addresses"),
    flag('s', "short"),
    flag('y', "yp"),
    flag('\0', "nis"),
    flag('v', "verbose"),
    flag('h', "help"),
    flag('V', "version"),
]);

static DMESG: Spec = Spec::gnu(&[
    flag('C', "clear").is(Admin),
    flag('c', "read-clear").is(Admin),
    flag('D', "console-off").is(Admin),
    flag('E', "console-on").is(Admin),
    value('n', "console-level").is(Admin),
    value('F', "file"),
    value('f', "facility"),
    flag('H', "human"),
    flag('k', "kernel"),
    optional('L', "color"),
    value('l', "level"),
    flag('\0', "noescape"),
    flag('P', "nopager"),
    flag('p', "force-prefix"),
    flag('r', "raw"),
    flag('S', "syslog"),
    value('s', "buffer-size"),
    flag('T', "ctime"),
    flag('t', "notime"),
    value('\0', "time-format"),
    flag('u', "userspace"),
    flag('w', "follow"),
    flag('W', "follow-new"),
    flag('x', "decode"),
    flag('J', "json"),
    flag('d', "show-delta"),
    flag('e', "reltime"),
    value('\0', "since"),
    value('\0', "until"),
    flag('h', "help"),
    flag('V', "version"),
]);

static SYSCTL: Spec = Spec::gnu(&[
    flag('a', "all"),
    flag('A', ""),
    flag('X', ""),
    flag('b', "binary"),
    flag('e', "ignore"),
    flag('N', "names"),
    flag('n', "values"),
    optional('p', "load").is(Admin),
    optional('f', "").is(Admin),
    flag('\0', "system").is(Admin),
    value('r', "pattern"),
    flag('q', "quiet"),
    flag('w', "write").is(Admin),
    flag('o', ""),
    flag('x', ""),
    flag('d', ""),
    flag('h', "help"),
    flag('V', "version"),
]);

static SS: Spec = Spec::gnu(&[
    flag('h', "help"),
    flag('V', "version"),
    flag('H', "no-header"),
    flag('n', "numeric"),
    flag('r', "resolve"),
    flag('a', "all"),
    flag('l', "listening"),
    flag('o', "options"),
    flag('e', "extended"),
    flag('m', "memory"),
    flag('p', "processes"),
    flag('T', "threads"),
    flag('i', "info"),
    flag('\0', "tos"),
    flag('\0', "cgroup"),
    flag('\0', "tipcinfo"),
    flag('K', "kill").is(Admin),
    flag('s', "summary"),
    flag('E', "events"),
    flag('Z', "context"),
    flag('z', "contexts"),
    value('N', "net"),
    flag('b', "bpf"),
    flag('\0', "bpf-maps"),
    value('\0', "bpf-map-id"),
    flag('4', "ipv4"),
    flag('6', "ipv6"),
    flag('0', "packet"),
    flag('t', "tcp"),
    flag('M', "mptcp"),
    flag('S', "sctp"),
    flag('u', "udp"),
    flag('d', "dccp"),
    flag('w', "raw"),
    flag('x', "unix"),
    flag('\0', "tipc"),
    flag('\0', "vsock"),
    flag('\0', "xdp"),
    flag('\0', "inet-sockopt"),
    value('f', "family"),
    value('A', "query"),
    value('\0', "socket"),
    value('D', "diag").is(Write),
    value('F', "filter"),
    flag('O', "oneline"),
]);

static FILE: Spec = Spec::gnu(&[
    flag('b', "brief"),
    flag('C', "compile").is(Write),
    flag('c', "checking-printout"),
    flag('d', ""),
    flag('E', ""),
    value('e', "exclude"),
    value('\0', "exclude-quiet"),
    value('F', "separator"),
    value('f', "files-from"),
    flag('h', "no-dereference"),
    flag('i', "mime"),
    flag('\0', "apple"),
    flag('\0', "extension"),
    flag('\0', "mime-type"),
    flag('\0', "mime-encoding"),
    flag('k', "keep-going"),
    flag('l', "list"),
    flag('L', "dereference"),
    value('m', "magic-file"),
    flag('N', "no-pad"),
    flag('n', "no-buffer"),
    flag('0', "print0"),
    // Restores access times after reading: a change of metadata.
    flag('p', "preserve-date").is(Write),
    value('P', "parameter"),
    flag('r', "raw"),
    flag('s', "special-files"),
    flag('S', "no-sandbox").is(Unknown),
    // Runs external decompressors.
    flag('z', "uncompress").is(Unknown),
    flag('Z', "uncompress-noreport").is(Unknown),
    flag('v', "version"),
    flag('\0', "help"),
]);

/// bash's builtin: `-v NAME` assigns a variable, so it is never a read.
static PRINTF: Spec = Spec::posix(&[value('v', "").is(Unknown)]);

/// `zcat` is `gzip -cd`: only options that keep the output on stdout.
static ZCAT: Spec = Spec::gnu(&[
    flag('f', "force"),
    flag('q', "quiet"),
    flag('v', "verbose"),
    flag('l', "list"),
    flag('L', "license"),
    flag('t', "test"),
    value('S', "suffix"),
    flag('h', "help"),
    flag('V', "version"),
]);

/// `bzcat` is `bzip2 -dc`.
static BZCAT: Spec = Spec::gnu(&[
    flag('f', "force"),
    flag('q', "quiet"),
    flag('v', "verbose"),
    flag('s', "small"),
    flag('h', "help"),
    flag('V', "version"),
]);

/// `xzcat` is `xz --decompress --stdout`.
static XZCAT: Spec = Spec::gnu(&[
    flag('f', "force"),
    flag('q', "quiet"),
    flag('v', "verbose"),
    flag('Q', "no-warn"),
    flag('\0', "single-stream"),
    flag('h', "help"),
    flag('V', "version"),
]);

/// `zstdcat` is `zstd -dcf`; `-o FILE` writes a file.
static ZSTDCAT: Spec = Spec::gnu(&[
    flag('f', "force"),
    flag('q', "quiet"),
    flag('v', "verbose"),
    value('o', "").is(Write),
    flag('h', "help"),
    flag('V', "version"),
]);

/// tree's own parser: an option with an argument takes the next word and must stand alone.
static TREE: Spec = Spec {
    attached: false,
    ..Spec::gnu(&[
        flag('a', ""),
        flag('d', ""),
        flag('l', ""),
        flag('f', ""),
        flag('x', ""),
        value('L', ""),
        value('P', ""),
        value('I', ""),
        flag('\0', "gitignore"),
        value('\0', "gitfile"),
        flag('\0', "ignore-case"),
        flag('\0', "matchdirs"),
        flag('\0', "metafirst"),
        flag('\0', "prune"),
        flag('\0', "info"),
        value('\0', "infofile"),
        flag('\0', "noreport"),
        value('\0', "charset"),
        value('\0', "filelimit"),
        flag('q', ""),
        flag('N', ""),
        flag('Q', ""),
        flag('p', ""),
        flag('u', ""),
        flag('g', ""),
        flag('s', ""),
        flag('h', ""),
        flag('\0', "si"),
        flag('\0', "du"),
        flag('D', ""),
        value('\0', "timefmt"),
        flag('F', ""),
        flag('\0', "inodes"),
        flag('\0', "device"),
        flag('v', ""),
        flag('t', ""),
        flag('c', ""),
        flag('U', ""),
        flag('r', ""),
        flag('\0', "dirsfirst"),
        flag('\0', "filesfirst"),
        value('\0', "sort"),
        flag('i', ""),
        flag('A', ""),
        flag('S', ""),
        flag('n', ""),
        flag('C', ""),
        flag('X', ""),
        flag('J', ""),
        value('H', ""),
        value('T', ""),
        flag('\0', "nolinks"),
        flag('\0', "fromfile"),
        flag('\0', "fromtabfile"),
        flag('\0', "fflinks"),
        value('o', "").is(Write),
        // With -H and -L, writes 00Tree.html into every directory.
        flag('R', "").is(Write),
        flag('\0', "help"),
        flag('\0', "version"),
    ])
};

/// blkid; run as root without `-p` it refreshes its cache (/run/blkid/blkid.tab), which
/// is accepted as a cache, not state. The options naming a cache file write it.
static BLKID: Spec = Spec::gnu(&[
    value('c', "cache-file").is(Write),
    flag('d', "no-encoding"),
    flag('D', "no-part-details"),
    flag('g', "garbage-collect").is(Write),
    value('H', "hint"),
    flag('i', "info"),
    flag('k', "list-filesystems"),
    flag('l', "list-one"),
    value('L', "label"),
    value('n', "match-types"),
    value('o', "output"),
    value('O', "offset"),
    flag('p', "probe"),
    value('s', "match-tag"),
    value('S', "size"),
    value('t', "match-token"),
    value('u', "usages"),
    value('U', "uuid"),
    value('w', "write-cache").is(Write),
    flag('h', "help"),
    flag('V', "version"),
]);

/// lsof has its own option syntax (`-i [ADDR]`, `+D DIR`, `-F [FIELDS]`). None of its
/// options writes except `-D` (device cache; absent from Debian's build): a word starting
/// with `-D` is `unknown`, everything else is a read.
fn lsof(args: &[Arg]) -> Result<Class, String> {
    for a in args {
        match a.literal() {
            Some(s) if s.starts_with("-D") => return Err("lsof -D writes a device cache".into()),
            Some(_) => {}
            None if a.not_option() => {}
            None => return Err("an option of lsof cannot be known now".into()),
        }
    }
    Ok(Class::Read)
}

/// find's expression: an allow-list of its global options, tests, actions and operators.
fn find(args: &[Arg]) -> Result<Class, String> {
    let mut class = Class::Read;
    let mut i = 0;
    // Global options before the paths.
    while let Some(s) = args.get(i).and_then(Arg::literal) {
        match s {
            "-H" | "-L" | "-P" => i += 1,
            "-D" => i += 2,
            _ if s.starts_with("-O") => i += 1,
            _ => break,
        }
    }
    while let Some(a) = args.get(i) {
        i += 1;
        let Some(s) = a.literal() else {
            if a.not_option() {
                continue;
            }
            return Err("a find expression not known now".into());
        };
        if !s.starts_with('-') || s == "-" {
            continue;
        }
        let takes = match s {
            "-name" | "-iname" | "-path" | "-ipath" | "-wholename" | "-iwholename" | "-regex"
            | "-iregex" | "-lname" | "-ilname" | "-type" | "-xtype" | "-size" | "-mtime"
            | "-mmin" | "-atime" | "-amin" | "-ctime" | "-cmin" | "-newer" | "-anewer"
            | "-cnewer" | "-user" | "-group" | "-uid" | "-gid" | "-perm" | "-links" | "-inum"
            | "-samefile" | "-fstype" | "-used" | "-maxdepth" | "-mindepth" | "-regextype"
            | "-files0-from" | "-printf" | "-context" => 1,
            _ if s.len() == 8 && s.starts_with("-newer") => 1,
            "-empty"
            | "-readable"
            | "-writable"
            | "-executable"
            | "-nouser"
            | "-nogroup"
            | "-true"
            | "-false"
            | "-depth"
            | "-d"
            | "-xdev"
            | "-mount"
            | "-follow"
            | "-noleaf"
            | "-ignore_readdir_race"
            | "-noignore_readdir_race"
            | "-daystart"
            | "-warn"
            | "-nowarn"
            | "-print"
            | "-print0"
            | "-ls"
            | "-prune"
            | "-quit"
            | "-not"
            | "-a"
            | "-and"
            | "-o"
            | "-or"
            | "-help"
            | "--help"
            | "-version"
            | "--version" => 0,
            "-delete" => {
                class = class.max(Write);
                0
            }
            "-fprint" | "-fprint0" | "-fls" => {
                class = class.max(Write);
                1
            }
            "-fprintf" => {
                class = class.max(Write);
                2
            }
            _ => return Err(format!("find {s} is not a reviewed predicate")),
        };
        for value in args.iter().skip(i).take(takes) {
            if !(value.single_word() || value.not_option()) {
                return Err(format!("the argument of find {s} may be several words"));
            }
        }
        i += takes;
    }
    Ok(class)
}
