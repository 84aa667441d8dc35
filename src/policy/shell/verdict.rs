//! What classifying one program with its arguments decides ([`Verdict`]), shared by the
//! program lists and the wrappers.
//!
//! Invariant: a verdict never lowers a class. [`Verdict::Class`] carries the program's class
//! and the one-line reason shown for it; [`Verdict::Wrap`] and [`Verdict::Script`] carry a
//! floor that the wrapped command or the script is classified at least at.

use crate::policy::Class;

/// The decision for one program with its arguments.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Class(Class, String),
    /// A wrapper: classify `args[at..]` as a command, at least `floor`. `extra`: the wrapped
    /// program receives more arguments we cannot see (xargs).
    Wrap {
        at: usize,
        floor: Class,
        extra: bool,
        why: String,
    },
    /// `sh -c SCRIPT`: classify the script (at least `floor`).
    Script {
        script: String,
        floor: Class,
    },
    /// scp -t/-f, sftp-server, rsync --server: a file transfer.
    FileTransfer,
}

impl Verdict {
    /// The program's own class, with a reason.
    pub fn class(class: Class, why: impl Into<String>) -> Verdict {
        Verdict::Class(class, why.into())
    }

    /// `unknown`, with a reason.
    pub fn unknown(why: impl Into<String>) -> Verdict {
        Verdict::class(Class::Unknown, why)
    }
}
