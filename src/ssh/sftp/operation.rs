//! What one SFTP request asks of the target, in the Gate's terms.
//!
//! Invariants:
//! - Every request that names a path is decided: opening for reading, stat, lstat, opendir,
//!   realpath, readlink, statvfs and expand-path are `read`; opening with any of WRITE,
//!   APPEND, CREAT, TRUNC, EXCL (or a flag jitgate does not know), remove, rename, mkdir,
//!   rmdir, setstat, symlink, hardlink and posix-rename are `write`. An extended request
//!   jitgate does not know is `unknown` (fail closed).
//! - Requests on a handle pass without a decision (the handle came from a decided open),
//!   except those that change the file whatever mode it was opened in: fsetstat and
//!   copy-data are `write` on the path the handle was opened with.
//! - Paths are cut at a NUL (as the target's C code reads them), `.` and repeated slashes
//!   are dropped; a path with a `..` component cannot be matched soundly by a glob, so its
//!   request is `unknown` (realpath excepted: it only names).
//! - Bounded: at most [`MAX_HANDLES`] handles and [`MAX_HANDLES`] opens in flight are
//!   remembered; past that a handle's path shows as `<unknown-handle>` (relative, so no
//!   absolute glob matches it).

use std::collections::HashMap;

use super::packet::{self as p, PacketError, Reader};
use crate::policy::Class;

/// Handles (and opens awaiting their handle) remembered per channel.
pub const MAX_HANDLES: usize = 1024;

/// Open flags (`SSH_FXF_*`) that leave a file unchanged.
const READ_ONLY_FLAGS: u32 = 0x1;

/// A request the Gate must decide.
#[derive(Debug, PartialEq, Eq)]
pub struct Operation {
    pub id: u32,
    pub class: Class,
    /// `sftp VERB PATH…`, what approvers and the audit trail see.
    pub statement: String,
    pub paths: Vec<String>,
    /// An open or opendir: the path its handle will stand for.
    pub opens: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Ask {
    /// Goes to the target without a decision.
    Pass,
    Decide(Operation),
}

/// The handles the target gave out on this channel and the path each was opened with.
#[derive(Default)]
pub struct Handles {
    open: HashMap<Vec<u8>, String>,
    awaiting: HashMap<u32, String>,
}

const UNKNOWN_HANDLE: &str = "<unknown-handle>";

impl Handles {
    /// Request `id` (an allowed open) will name `path` once the target answers.
    pub fn expect(&mut self, id: u32, path: String) {
        if self.awaiting.len() < MAX_HANDLES {
            self.awaiting.insert(id, path);
        }
    }

    /// A reply from the target (a whole packet): a HANDLE ties its handle to the path.
    pub fn reply(&mut self, packet: &[u8]) -> Result<(), PacketError> {
        let (kind, mut r) = p::open(packet)?;
        match kind {
            p::VERSION => {
                let v = r.u32()?;
                if v != p::SUPPORTED_VERSION {
                    return Err(PacketError::Version(v));
                }
            }
            p::HANDLE => {
                let id = r.u32()?;
                let handle = r.string()?;
                if let Some(path) = self.awaiting.remove(&id)
                    && self.open.len() < MAX_HANDLES
                {
                    self.open.insert(handle.to_vec(), path);
                }
            }
            p::STATUS => {
                let id = r.u32()?;
                self.awaiting.remove(&id);
            }
            _ => {}
        }
        Ok(())
    }

    fn path(&self, handle: &[u8]) -> String {
        self.open
            .get(handle)
            .cloned()
            .unwrap_or_else(|| UNKNOWN_HANDLE.into())
    }

    fn closed(&mut self, handle: &[u8]) {
        self.open.remove(handle);
    }
}

/// What the client's `packet` (a whole packet) asks.
pub fn classify(packet: &[u8], handles: &mut Handles) -> Result<Ask, PacketError> {
    let (kind, mut r) = p::open(packet)?;
    if kind == p::INIT {
        return Ok(Ask::Pass);
    }
    let id = r.u32()?;
    let decide =
        |class, verb: &str, raw: &[&[u8]]| Ok(Ask::Decide(operation(id, class, verb, raw)));
    match kind {
        p::OPEN => {
            let path = r.string()?;
            let flags = r.u32()?;
            let (class, verb) = if flags & !READ_ONLY_FLAGS == 0 {
                (Class::Read, "open-read")
            } else {
                (Class::Write, "open-write")
            };
            Ok(Ask::Decide(opening(operation(id, class, verb, &[path]))))
        }
        p::OPENDIR => Ok(Ask::Decide(opening(operation(
            id,
            Class::Read,
            "opendir",
            &[r.string()?],
        )))),
        p::CLOSE => {
            handles.closed(r.string()?);
            Ok(Ask::Pass)
        }
        p::READ | p::WRITE | p::FSTAT | p::READDIR => Ok(Ask::Pass),
        p::STAT => decide(Class::Read, "stat", &[r.string()?]),
        p::LSTAT => decide(Class::Read, "lstat", &[r.string()?]),
        p::REALPATH => decide(Class::Read, "realpath", &[r.string()?]),
        p::READLINK => decide(Class::Read, "readlink", &[r.string()?]),
        p::SETSTAT => decide(Class::Write, "setstat", &[r.string()?]),
        p::REMOVE => decide(Class::Write, "remove", &[r.string()?]),
        p::MKDIR => decide(Class::Write, "mkdir", &[r.string()?]),
        p::RMDIR => decide(Class::Write, "rmdir", &[r.string()?]),
        p::RENAME => decide(Class::Write, "rename", &[r.string()?, r.string()?]),
        p::SYMLINK => decide(Class::Write, "symlink", &[r.string()?, r.string()?]),
        p::FSETSTAT => {
            let path = handles.path(r.string()?);
            decide(Class::Write, "fsetstat", &[path.as_bytes()])
        }
        p::EXTENDED => extended(id, r, handles),
        _ => decide(Class::Unknown, &format!("request-type-{kind}"), &[]),
    }
}

/// `SSH_FXP_EXTENDED`: the OpenSSH extensions by name; any other is `unknown`.
fn extended(id: u32, mut r: Reader<'_>, handles: &Handles) -> Result<Ask, PacketError> {
    let name = r.string()?;
    let name_text = String::from_utf8_lossy(name);
    let decide = |class, raw: &[&[u8]]| Ok(Ask::Decide(operation(id, class, &name_text, raw)));
    match name {
        b"posix-rename@openssh.com" | b"hardlink@openssh.com" => {
            decide(Class::Write, &[r.string()?, r.string()?])
        }
        b"lsetstat@openssh.com" => decide(Class::Write, &[r.string()?]),
        b"statvfs@openssh.com" | b"expand-path@openssh.com" => decide(Class::Read, &[r.string()?]),
        b"home-directory" => {
            let user = r.string()?;
            let named = [b"~".as_slice(), user].concat();
            decide(Class::Read, &[named.as_slice()])
        }
        b"copy-data" => {
            let from = handles.path(r.string()?);
            let (_, _) = (r.u64()?, r.u64()?);
            let to = handles.path(r.string()?);
            decide(Class::Write, &[from.as_bytes(), to.as_bytes()])
        }
        // Handles already decided, or no file at all.
        b"fstatvfs@openssh.com"
        | b"fsync@openssh.com"
        | b"limits@openssh.com"
        | b"users-groups-by-id@openssh.com" => Ok(Ask::Pass),
        _ => decide(Class::Unknown, &[]),
    }
}

/// An open: its handle will stand for its path.
fn opening(mut op: Operation) -> Operation {
    op.opens = op.paths.first().cloned();
    op
}

fn operation(id: u32, class: Class, verb: &str, raw: &[&[u8]]) -> Operation {
    let paths: Vec<String> = raw.iter().map(|b| clean(b)).collect();
    let class = if verb != "realpath" && paths.iter().any(|x| has_parent(x)) {
        Class::Unknown
    } else {
        class
    };
    let mut statement = format!("sftp {verb}");
    for x in &paths {
        statement.push(' ');
        statement.push_str(&shown(x));
    }
    Operation {
        id,
        class,
        statement,
        paths,
        opens: None,
    }
}

/// The path as the target will read it: cut at a NUL, `.` and repeated slashes dropped.
fn clean(raw: &[u8]) -> String {
    let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
    let text = String::from_utf8_lossy(raw);
    let absolute = text.starts_with('/');
    let parts: Vec<&str> = text
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn has_parent(path: &str) -> bool {
    path.split('/').any(|c| c == "..")
}

/// A path in a statement: quoted when it holds spaces, quotes or control characters.
fn shown(path: &str) -> String {
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'' || c == '\\')
    {
        format!("{path:?}")
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests;
