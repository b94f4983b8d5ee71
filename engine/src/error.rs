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
    /// The handle was opened read-only (salvage) and refuses writes.
    ReadOnly,
    /// The directory holds no database, and the options do not create one.
    NoDatabase {
        /// The directory.
        path: PathBuf,
    },
    /// The options do not match the existing database, or cannot create one.
    Mismatch(String),
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
            Error::Mismatch(_) => ErrorCode::InvalidInput,
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Kernel(e) => e.fmt(f),
            Error::Io { op, path, source } => {
                write!(f, "I/O error while {op} {}: {source}", path.display())
            }
            Error::Corrupt { file, offset, reason } => write!(
                f,
                "{} is damaged at byte {offset}: {reason}; open with `Options::salvage` to read the intact prefix",
                file.display()
            ),
            Error::Busy { path } => write!(
                f,
                "{} is in use by another handle or process; close it first",
                path.display()
            ),
            Error::Poisoned => f.write_str(
                "an earlier write or fsync failed, so this handle stopped; close and re-open the database",
            ),
            Error::ReadOnly => f.write_str("this handle is read-only (opened for salvage)"),
            Error::NoDatabase { path } => write!(
                f,
                "no database in {}; open it with creation enabled and a dimension to create one",
                path.display()
            ),
            Error::Mismatch(what) => write!(f, "options do not match the database: {what}"),
            Error::Internal(what) => write!(f, "internal error (please report): {what}"),
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
