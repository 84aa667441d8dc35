//! Argument checks of the programs that are read only with some options, each an
//! allow-list `Spec` (`specs.rs`) read with the one getopt model (`options.rs`).
//!
//! Invariant: [`checked`] returns `Read` only when every option is named in the program's
//! spec as keeping it a read and its operands are read-only too; an option the spec does
//! not name, an ambiguous abbreviation or an argument not known now is `unknown`; options
//! known to write or change state carry their class (`sort -o` write, `dmesg -c` admin).

use super::options::{Parsed, Value, parse};
use super::sed::sed_script_class;
use super::specs::{
    BLKID, BZCAT, DATE, DMESG, FILE, HOSTNAME, JOURNALCTL, PRINTF, SED, SORT, SS, SYSCTL, TREE,
    UNIQ, XZCAT, ZCAT, ZSTDCAT,
};
use super::words::Arg;
use crate::policy::Class;
use Class::{Admin, Write};

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
        // Without low-level probing or a /dev/null cache, blkid creates and refreshes its
        // cache (/run/blkid/blkid.tab), even as an unprivileged user (seen by the bash
        // oracle).
        "blkid" => {
            let no_cache = p
                .values("c")
                .all(|v| v == Some(Value::Literal("/dev/null")));
            if no_cache && (p.has("p") || p.has("c")) {
                Class::Read
            } else {
                Write
            }
        }
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
