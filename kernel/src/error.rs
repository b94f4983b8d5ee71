//! The error vocabulary shared by every layer (kernel, engine, C, Python, HTTP).
//!
//! [`ErrorCode`] is the stable table: each code has a number (the C value) and a name (the
//! Python exception stem; C and HTTP spell it in capitals with underscores). [`Error`] is the
//! kernel's error, with the detail a user needs to fix the input.

use core::fmt;

/// Defines [`ErrorCode`] and everything derived from it from one table: each row is the
/// code's documentation, its variant, its C value and its `valori_errstr` description. Every
/// binding derives its view from [`ErrorCode::ALL`] (C constants are checked against it at
/// compile time, Python's exception classes at import and in a test), so a new row that a
/// binding lacks fails that binding's build or tests.
macro_rules! error_table {
    ($( $(#[doc = $doc:literal])* $variant:ident = $value:literal, $description:literal; )*) => {
        /// A stable error class. The numeric values are part of the C ABI and never change.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        #[repr(u32)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant = $value, )*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The stable name of the code, e.g. `"InvalidInput"` (the Python exception is
            /// named after it; C's constant and the HTTP `code` field spell it
            /// `INVALID_INPUT`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => stringify!($variant), )*
                }
            }

            /// A short static English description (what C's `valori_errstr` returns).
            pub const fn description(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $description, )*
                }
            }

            /// [`ErrorCode::description`] as a NUL-terminated string (C's `valori_errstr`).
            pub const fn description_c(self) -> &'static core::ffi::CStr {
                let bytes: &'static [u8] = match self {
                    $( ErrorCode::$variant => concat!($description, "\0").as_bytes(), )*
                };
                match core::ffi::CStr::from_bytes_with_nul(bytes) {
                    Ok(s) => s,
                    // Unreachable: each description is a literal without NUL bytes.
                    Err(_) => c"",
                }
            }

            /// The code with this numeric value, if there is one.
            pub const fn from_value(value: u32) -> Option<ErrorCode> {
                match value {
                    $( $value => Some(ErrorCode::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

error_table! {
    /// An internal error (a bug in valori).
    Internal = 1, "internal error";
    /// An API was used in a way its contract forbids (NULL pointer, closed handle, a write
    /// on a read-only handle).
    Misuse = 2, "API misuse (NULL pointer, closed or read-only handle)";
    /// A value was not acceptable (NaN, out of range, k = 0, oversize metadata, options that
    /// do not match the database).
    InvalidInput = 3, "invalid input";
    /// A vector's length differs from the store's dimension.
    Dimension = 4, "wrong vector dimension";
    /// A fixed capacity (records, nodes, edges, bytes, id space) is exhausted.
    Full = 5, "capacity exhausted";
    /// The referenced record, node, edge or database does not exist.
    NotFound = 6, "not found";
    /// An id supplied by the caller is already in use.
    Exists = 7, "id already exists";
    /// An output buffer is too small; the needed size is reported.
    InsufficientSize = 8, "output buffer too small";
    /// Stored or received bytes are damaged or not a valori encoding.
    Corrupt = 9, "damaged data";
    /// The database is held by another handle or process.
    Busy = 10, "database in use by another handle or process";
    /// An operating-system I/O error.
    Io = 11, "I/O error";
    /// The handle refuses writes after an earlier write or fsync failed.
    Poisoned = 12, "handle stopped after a failed write; reopen the database";
}

impl ErrorCode {
    /// The numeric value (the C `VALORI_*` code).
    pub const fn value(self) -> u32 {
        self as u32
    }
}

/// What kind of object an id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// A vector record.
    Record,
    /// A graph node.
    Node,
    /// A graph edge.
    Edge,
}

impl Object {
    fn name(self) -> &'static str {
        match self {
            Object::Record => "record",
            Object::Node => "node",
            Object::Edge => "edge",
        }
    }
}

/// Which bounded resource ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Record slots.
    Records,
    /// Graph node slots.
    Nodes,
    /// Graph edge slots.
    Edges,
    /// Bytes for record metadata.
    MetadataBytes,
    /// Bytes for node labels.
    LabelBytes,
    /// Ids: the next automatic id would be `u64::MAX`, which is reserved.
    Ids,
    /// The allocator refused to grow a store.
    Memory,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Records => "record capacity",
            Resource::Nodes => "node capacity",
            Resource::Edges => "edge capacity",
            Resource::MetadataBytes => "metadata byte capacity",
            Resource::LabelBytes => "label byte capacity",
            Resource::Ids => "id space",
            Resource::Memory => "memory",
        }
    }
}

/// Why an input value was refused.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Invalid {
    /// A vector component is NaN or infinite.
    NotFinite {
        /// Index of the component in the vector (or flattened batch).
        index: u32,
        /// The value as given.
        value: f64,
    },
    /// A vector component is outside `[-32768.0, 32767.99998]`.
    OutOfRange {
        /// Index of the component in the vector (or flattened batch).
        index: u32,
        /// The value as given.
        value: f64,
    },
    /// `k` was 0.
    ZeroK,
    /// A vector that must be normalised (cosine metric) is all zeros.
    ZeroVector,
    /// Metadata longer than [`crate::MAX_META_LEN`].
    MetadataTooLong {
        /// Length given.
        len: u64,
    },
    /// A node label longer than [`crate::MAX_LABEL_LEN`].
    LabelTooLong {
        /// Length given.
        len: u64,
    },
    /// `u64::MAX` is reserved and cannot be used as an id.
    ReservedId,
    /// A batch has no vectors, or its id/tag lists do not match its vector count.
    BatchShape,
    /// The same id appears twice in one batch.
    DuplicateInBatch {
        /// The repeated id.
        id: u64,
    },
    /// A metric this build leaves out (cosine without the kernel's `cosine` feature).
    MetricNotBuilt {
        /// The metric asked for.
        metric: crate::Metric,
    },
    /// A dimension outside `1..=MAX_DIM`.
    BadDimension {
        /// Dimension given.
        dim: u64,
    },
    /// An encoded vector or id list whose byte length is not a multiple of its word size.
    BadEncoding,
    /// A state was given for a store of another metric (e.g. restoring a snapshot).
    MetricMismatch {
        /// The metric the state was made with.
        stored: crate::Metric,
        /// The metric the caller asked for.
        given: crate::Metric,
    },
    /// An approximate-index parameter (`m`, `ef_construction`, `ef`) out of its range.
    IndexParam {
        /// Which parameter.
        what: &'static str,
        /// The value given.
        value: u64,
    },
    /// An approximate search (or index operation) on a store without an index.
    NoIndex,
}

/// The kernel's error type.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// An input value was refused; nothing changed.
    InvalidInput(Invalid),
    /// A vector has the wrong length; nothing changed.
    Dimension {
        /// The store's dimension.
        expected: u32,
        /// Components given.
        got: u64,
    },
    /// A capacity is exhausted; nothing changed.
    Full(Resource),
    /// The referenced object does not exist; nothing changed.
    NotFound(Object, u64),
    /// A caller-supplied id is already in use; nothing changed.
    Exists(Object, u64),
    /// An output buffer is too small.
    InsufficientSize {
        /// Elements (or bytes, for byte buffers) needed.
        needed: u64,
    },
    /// Bytes being decoded are damaged or not a valori encoding.
    Corrupt {
        /// Offset of the first byte found wrong.
        offset: u64,
        /// What was wrong there.
        reason: &'static str,
    },
}

impl Error {
    /// The stable class of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidInput(_) => ErrorCode::InvalidInput,
            Error::Dimension { .. } => ErrorCode::Dimension,
            Error::Full(_) => ErrorCode::Full,
            Error::NotFound(..) => ErrorCode::NotFound,
            Error::Exists(..) => ErrorCode::Exists,
            Error::InsufficientSize { .. } => ErrorCode::InsufficientSize,
            Error::Corrupt { .. } => ErrorCode::Corrupt,
        }
    }

    pub(crate) const fn corrupt(offset: usize, reason: &'static str) -> Error {
        Error::Corrupt {
            offset: offset as u64,
            reason,
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Invalid::NotFinite { index, value } => write!(
                f,
                "component {index} is {value}: vectors must hold finite numbers"
            ),
            Invalid::OutOfRange { index, value } => write!(
                f,
                "component {index} is {value}: outside the Q16.16 range [-32768.0, 32767.99998]; scale the vector down"
            ),
            Invalid::ZeroK => f.write_str("k is 0: ask for at least one result"),
            Invalid::ZeroVector => f.write_str(
                "the vector is all zeros and cannot be normalised for the cosine metric",
            ),
            Invalid::MetadataTooLong { len } => write!(
                f,
                "metadata is {len} bytes; at most {} are allowed",
                crate::MAX_META_LEN
            ),
            Invalid::LabelTooLong { len } => write!(
                f,
                "label is {len} bytes; at most {} are allowed",
                crate::MAX_LABEL_LEN
            ),
            Invalid::ReservedId => f.write_str("id 18446744073709551615 (u64::MAX) is reserved"),
            Invalid::BatchShape => f.write_str(
                "a batch needs at least one vector, and its id and tag lists must be empty or one per vector",
            ),
            Invalid::DuplicateInBatch { id } => write!(f, "id {id} appears twice in the batch"),
            Invalid::MetricNotBuilt { metric } => write!(
                f,
                "metric {metric} is not in this build (it was built without the \"{metric}\" feature)"
            ),
            Invalid::BadDimension { dim } => write!(
                f,
                "dimension {dim} is not supported; use 1..={}",
                crate::MAX_DIM
            ),
            Invalid::MetricMismatch { stored, given } => write!(
                f,
                "the state uses the {stored} metric, but the {given} metric was asked for"
            ),
            Invalid::IndexParam { what, value } => match what {
                "m" => write!(f, "m = {value}: the index keeps 2 to 64 links per node"),
                "ef_construction" => write!(
                    f,
                    "ef_construction = {value}: use m to 65536 candidates"
                ),
                _ => write!(f, "ef = {value}: use 1 to 65536 candidates"),
            },
            Invalid::NoIndex => f.write_str(
                "the store has no approximate index: create it with one, or search exactly",
            ),
            Invalid::BadEncoding => {
                f.write_str("an encoded vector or id list has a length that is not a whole number of words")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InvalidInput(ref why) => write!(f, "invalid input: {why}"),
            Error::Dimension { expected, got } => write!(
                f,
                "wrong dimension: the store holds {expected}-dimensional vectors, got {got} components"
            ),
            Error::Full(r) => write!(
                f,
                "{} exhausted; delete entries or open with a larger capacity",
                r.name()
            ),
            Error::NotFound(o, id) => write!(f, "{} {id} does not exist", o.name()),
            Error::Exists(o, id) => write!(f, "{} {id} already exists", o.name()),
            Error::InsufficientSize { needed } => {
                write!(f, "output buffer too small: {needed} needed")
            }
            Error::Corrupt { offset, reason } => {
                write!(f, "corrupt encoding at byte offset {offset}: {reason}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Shorthand for kernel results.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn the_table_is_numbered_densely_and_round_trips() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.value(), i as u32 + 1, "{code:?}");
            assert_eq!(ErrorCode::from_value(code.value()), Some(*code));
            assert!(!code.description().is_empty());
            assert_eq!(
                code.description_c().to_bytes(),
                code.description().as_bytes()
            );
            assert_eq!(code.name(), format!("{code:?}"));
        }
        assert_eq!(ErrorCode::from_value(0), None);
        assert_eq!(ErrorCode::from_value(ErrorCode::ALL.len() as u32 + 1), None);
    }
}
