//! Engine errors: the kernel's, plus files, locks and durability.

use std::fmt;
use std::io;
use std::path::PathBuf;
use valori_kernel::ErrorCode;

/// Everything an engine call can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused the command or query; nothing changed.
    Kernel(valori_kernel::Error),
    /// An operating-system call failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A file is damaged: the database refuses to open rather than lose or invent data.
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another handle (in this or another process) holds the database.
    Busy {
        /// The database directory.
        path: PathBuf,
    },
    /// An earlier write or fsync failed; the handle refuses further work until reopened.
    Poisoned,
    /// The handle refuses writes: opened read-only (salvage), or a follower ([`crate::Options::follower`]).
    ReadOnly,
    /// The directory holds no database, and the options do not create one.
    NoDatabase {
        /// The directory.
        path: PathBuf,
    },
    /// A command is larger than one log record may be; nothing changed.
    TooLarge {
        /// Bytes the command encodes to (at least).
        bytes: u64,
        /// The largest record the log accepts.
        limit: u64,
    },
    /// The log has used every sequence number ([`crate::wal::MAX_SEQ`]); nothing changed.
    /// Unreachable by counting (one write per nanosecond for 584 years); a database whose files
    /// claim it refuses writes instead of wrapping around.
    SequenceExhausted,
    /// The options do not match the existing database, or cannot create one.
    Mismatch(String),
    /// A past state was asked for that the retained snapshots and log do not reach.
    NotRetained {
        /// The sequence number asked for.
        seq: u64,
        /// The oldest reachable sequence number, if known.
        first: Option<u64>,
        /// The newest reachable sequence number, if known.
        last: Option<u64>,
    },
    /// No tag has this name.
    NoTag {
        /// The name asked for.
        name: String,
    },
    /// A new database was to be written where one already is.
    Exists {
        /// The directory.
        path: PathBuf,
    },
    /// Bad input to an engine call (e.g. a tag name); nothing changed.
    Invalid(String),
    /// A bug in valori: an invariant did not hold.
    Internal(String),
}

impl Error {
    /// The stable error class (shared with C, Python and HTTP).
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Kernel(e) => e.code(),
            Error::Io { .. } => ErrorCode::Io,
            Error::Corrupt { .. } => ErrorCode::Corrupt,
            Error::Busy { .. } => ErrorCode::Busy,
            Error::Poisoned => ErrorCode::Poisoned,
            Error::ReadOnly => ErrorCode::Misuse,
            Error::NoDatabase { .. } => ErrorCode::NotFound,
            Error::TooLarge { .. } => ErrorCode::InvalidInput,
            Error::SequenceExhausted => ErrorCode::Full,
            Error::Mismatch(_) => ErrorCode::InvalidInput,
            Error::NotRetained { .. } | Error::NoTag { .. } => ErrorCode::NotFound,
            Error::Exists { .. } | Error::Invalid(_) => ErrorCode::InvalidInput,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }
}

impl From<valori_kernel::Error> for Error {
    fn from(e: valori_kernel::Error) -> Self {
        Error::Kernel(e)
    }
}

/// What the caller can do about an error, named in each binding's own terms (Rust's are in
/// [`Hint::rust`]; C and Python render their own), so a message never names another
/// language's API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hint {
    /// Open the database in salvage mode (read-only) to read the intact prefix.
    Salvage,
    /// Give a dimension, with creation enabled, to create a database.
    Create,
}

impl Hint {
    /// The hint in Rust terms.
    pub fn rust(self) -> &'static str {
        match self {
            Hint::Salvage => "open with `Options::salvage()` to read the intact prefix",
            Hint::Create => "open with `Options::new(dim, metric)` to create one",
        }
    }
}

impl Error {
    /// What the caller can do, if the error has a standard remedy.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Error::Corrupt { .. } => Some(Hint::Salvage),
            Error::NoDatabase { .. } => Some(Hint::Create),
            _ => None,
        }
    }

    /// The message without the hint (a binding appends the hint in its own terms).
    pub fn detail(&self) -> String {
        match self {
            Error::Kernel(e) => e.to_string(),
            Error::Io { op, path, source } => {
                format!("I/O error while {op} {}: {source}", path.display())
            }
            Error::Corrupt {
                file,
                offset,
                reason,
            } => format!("{} is damaged at byte {offset}: {reason}", file.display()),
            Error::Busy { path } => format!(
                "{} is in use by another handle or process; close it first",
                path.display()
            ),
            Error::Poisoned => "an earlier write or fsync failed, so this handle stopped; close and re-open the database".into(),
            Error::ReadOnly => "this handle is read-only: a salvage open, or a follower, which takes only its leader's records (write to the leader)".into(),
            Error::NoDatabase { path } => format!("no database in {}", path.display()),
            Error::TooLarge { bytes, limit } => format!(
                "the command is {bytes} bytes, over the limit of {limit} bytes for one log record; nothing was written: insert the batch in smaller parts"
            ),
            Error::SequenceExhausted => format!(
                "the log has used its last sequence number ({}); nothing was written",
                crate::wal::MAX_SEQ
            ),
            Error::Mismatch(what) => format!("options do not match the database: {what}"),
            Error::NotRetained { seq, first, last } => match (first, last) {
                (Some(f), Some(l)) => format!(
                    "the state at sequence number {seq} is not retained: the snapshots and log kept reach {f}..={l}"
                ),
                _ => format!("the state at sequence number {seq} is not retained"),
            },
            Error::NoTag { name } => format!("no tag named {name:?}"),
            Error::Exists { path } => format!("{} already holds a database", path.display()),
            Error::Invalid(what) => what.clone(),
            Error::Internal(what) => format!("internal error (please report): {what}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail())?;
        match self.hint() {
            Some(h) => write!(f, "; {}", h.rust()),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Kernel(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand for engine results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
