//! The C ABI of Valori (`libvalori.a`, `libvalori.so`, `include/valori.h`).
//!
//! Every exported function goes through one entry pattern ([`boundary`]): pointers are checked
//! before anything else (NULL where not allowed is `VALORI_MISUSE`), a panic becomes
//! `VALORI_INTERNAL` instead of unwinding into C, and outputs are written only on success.
//! The hosted API (feature `hosted`, default) is the durable database; the embedded API is
//! the kernel alone in caller memory and builds for bare metal without an allocator.

#![cfg_attr(not(feature = "std"), no_std)]
#![allow(non_camel_case_types)]
// The exports are C entry points: their callers are C code bound by the header's contract,
// and every pointer is checked before use (see `ffi`). Marking them `unsafe fn` would change
// nothing for C and only obscure that contract for Rust callers of the rlib.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
// The C ABI is where raw pointers enter: every module here dereferences them (after the checks
// in `ffi`), so unsafe code is allowed crate-wide; each block says why it is sound.
#![allow(unsafe_code)]

#[cfg(feature = "hosted")]
mod db_api;
mod entry;
mod ffi;
mod kernel_api;
#[cfg(feature = "hosted")]
mod messages;

#[cfg(feature = "hosted")]
pub use db_api::*;
pub use kernel_api::*;

use core::ffi::{c_char, c_int, CStr};
use vk::{Error, ErrorCode, Invalid, Object, Resource};

/// Major version (header and run time agree; a test holds them equal to Cargo.toml).
pub const VALORI_VERSION_MAJOR: u32 = 0;
/// Minor version.
pub const VALORI_VERSION_MINOR: u32 = 1;
/// Patch version.
pub const VALORI_VERSION_PATCH: u32 = 0;
/// `MAJOR * 1000000 + MINOR * 1000 + PATCH`.
pub const VALORI_VERSION_NUMBER: u32 =
    VALORI_VERSION_MAJOR * 1_000_000 + VALORI_VERSION_MINOR * 1_000 + VALORI_VERSION_PATCH;

const VERSION_CSTR: &[u8] = b"0.1.0\0";

/// Success.
pub const VALORI_OK: c_int = 0;
/// An internal error (a bug in valori, or a caught panic).
pub const VALORI_INTERNAL: c_int = 1;
/// The API was misused: a NULL pointer where one is required, a closed handle.
pub const VALORI_MISUSE: c_int = 2;
/// A value was refused (NaN, out of range, k = 0, oversize metadata). Nothing changed.
pub const VALORI_INVALID_INPUT: c_int = 3;
/// A vector's length differs from the dimension. Nothing changed.
pub const VALORI_DIMENSION: c_int = 4;
/// A capacity is exhausted. Nothing changed.
pub const VALORI_FULL: c_int = 5;
/// The record, node or edge does not exist. Nothing changed.
pub const VALORI_NOT_FOUND: c_int = 6;
/// A caller-chosen id is in use. Nothing changed.
pub const VALORI_EXISTS: c_int = 7;
/// An output buffer is too small; the needed size was written to the `out_len` parameter.
pub const VALORI_INSUFFICIENT_SIZE: c_int = 8;
/// Stored or received bytes are damaged.
pub const VALORI_CORRUPT: c_int = 9;
/// The database is held by another handle or process.
pub const VALORI_BUSY: c_int = 10;
/// An operating-system I/O error.
pub const VALORI_IO: c_int = 11;
/// An earlier write or fsync failed; close and reopen the database.
pub const VALORI_POISONED: c_int = 12;

/// Extended code: a vector component is NaN or infinite.
pub const VALORI_INVALID_INPUT_NOT_FINITE: c_int = VALORI_INVALID_INPUT | (1 << 8);
/// Extended code: a vector component is outside [-32768.0, 32767.99998].
pub const VALORI_INVALID_INPUT_OUT_OF_RANGE: c_int = VALORI_INVALID_INPUT | (2 << 8);
/// Extended code: k was 0.
pub const VALORI_INVALID_INPUT_ZERO_K: c_int = VALORI_INVALID_INPUT | (3 << 8);
/// Extended code: metadata or label too long.
pub const VALORI_INVALID_INPUT_TOO_LONG: c_int = VALORI_INVALID_INPUT | (4 << 8);
/// Extended code: record capacity exhausted.
pub const VALORI_FULL_RECORDS: c_int = VALORI_FULL | (1 << 8);
/// Extended code: node capacity exhausted.
pub const VALORI_FULL_NODES: c_int = VALORI_FULL | (2 << 8);
/// Extended code: edge capacity exhausted.
pub const VALORI_FULL_EDGES: c_int = VALORI_FULL | (3 << 8);
/// Extended code: metadata or label bytes exhausted.
pub const VALORI_FULL_BYTES: c_int = VALORI_FULL | (4 << 8);
/// Extended code: the record does not exist.
pub const VALORI_NOT_FOUND_RECORD: c_int = VALORI_NOT_FOUND | (1 << 8);
/// Extended code: the node does not exist.
pub const VALORI_NOT_FOUND_NODE: c_int = VALORI_NOT_FOUND | (2 << 8);
/// Extended code: the edge does not exist.
pub const VALORI_NOT_FOUND_EDGE: c_int = VALORI_NOT_FOUND | (3 << 8);

/// Metric: squared Euclidean distance.
pub const VALORI_METRIC_L2: u32 = 0;
/// Metric: negated inner product.
pub const VALORI_METRIC_INNER_PRODUCT: u32 = 1;
/// Metric: one minus cosine similarity (vectors normalised on insert).
pub const VALORI_METRIC_COSINE: u32 = 2;

/// Direction for neighbours and traversal: edges out of the node.
pub const VALORI_DIRECTION_OUT: u32 = 0;
/// Direction: edges into the node.
pub const VALORI_DIRECTION_IN: u32 = 1;
/// Direction: both.
pub const VALORI_DIRECTION_BOTH: u32 = 2;

/// The library's version string, e.g. `"0.1.0"` (static; never NULL).
#[no_mangle]
pub extern "C" fn valori_libversion() -> *const c_char {
    VERSION_CSTR.as_ptr().cast()
}

/// The library's version number (`VALORI_VERSION_NUMBER` of the build).
#[no_mangle]
pub extern "C" fn valori_libversion_number() -> u32 {
    VALORI_VERSION_NUMBER
}

/// A static English description of a result code (primary or extended); never NULL.
#[no_mangle]
pub extern "C" fn valori_errstr(rc: c_int) -> *const c_char {
    let s: &CStr = match rc & 0xff {
        VALORI_OK => c"not an error",
        primary => u32::try_from(primary)
            .ok()
            .and_then(ErrorCode::from_value)
            .map_or(c"unknown result code", ErrorCode::description_c),
    };
    s.as_ptr()
}

/// Every primary constant beside the row of the shared table it stands for. The assertion
/// below fails the build if the table gains a code this list (and so the header) lacks, or
/// if a constant's value differs from its row.
const PRIMARY_CODES: [(c_int, ErrorCode); 12] = [
    (VALORI_INTERNAL, ErrorCode::Internal),
    (VALORI_MISUSE, ErrorCode::Misuse),
    (VALORI_INVALID_INPUT, ErrorCode::InvalidInput),
    (VALORI_DIMENSION, ErrorCode::Dimension),
    (VALORI_FULL, ErrorCode::Full),
    (VALORI_NOT_FOUND, ErrorCode::NotFound),
    (VALORI_EXISTS, ErrorCode::Exists),
    (VALORI_INSUFFICIENT_SIZE, ErrorCode::InsufficientSize),
    (VALORI_CORRUPT, ErrorCode::Corrupt),
    (VALORI_BUSY, ErrorCode::Busy),
    (VALORI_IO, ErrorCode::Io),
    (VALORI_POISONED, ErrorCode::Poisoned),
];

// Indexing in a const block: an out-of-range index is a compile error, never a panic.
#[allow(clippy::indexing_slicing)]
const _: () = {
    assert!(PRIMARY_CODES.len() == ErrorCode::ALL.len());
    let mut i = 0;
    while i < PRIMARY_CODES.len() {
        let (value, code) = PRIMARY_CODES[i];
        assert!(value as u32 == code.value());
        assert!(code.value() == ErrorCode::ALL[i].value());
        i += 1;
    }
};

/// The result code of a kernel error, extended where a detail is known.
pub(crate) fn kernel_code(e: &Error) -> c_int {
    match e {
        Error::InvalidInput(Invalid::NotFinite { .. }) => VALORI_INVALID_INPUT_NOT_FINITE,
        Error::InvalidInput(Invalid::OutOfRange { .. }) => VALORI_INVALID_INPUT_OUT_OF_RANGE,
        Error::InvalidInput(Invalid::ZeroK) => VALORI_INVALID_INPUT_ZERO_K,
        Error::InvalidInput(Invalid::MetadataTooLong { .. } | Invalid::LabelTooLong { .. }) => {
            VALORI_INVALID_INPUT_TOO_LONG
        }
        Error::Full(Resource::Records) => VALORI_FULL_RECORDS,
        Error::Full(Resource::Nodes) => VALORI_FULL_NODES,
        Error::Full(Resource::Edges) => VALORI_FULL_EDGES,
        Error::Full(Resource::MetadataBytes | Resource::LabelBytes) => VALORI_FULL_BYTES,
        Error::NotFound(Object::Record, _) => VALORI_NOT_FOUND_RECORD,
        Error::NotFound(Object::Node, _) => VALORI_NOT_FOUND_NODE,
        Error::NotFound(Object::Edge, _) => VALORI_NOT_FOUND_EDGE,
        other => primary(other.code()),
    }
}

/// The primary result code of an error class.
pub(crate) fn primary(code: ErrorCode) -> c_int {
    code.value() as c_int
}

/// Runs an export's body; a panic (hosted builds) becomes `VALORI_INTERNAL`.
#[cfg(feature = "std")]
pub(crate) fn boundary(body: impl FnOnce() -> c_int) -> c_int {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(VALORI_INTERNAL)
}

/// Runs an export's body (bare metal: panics abort, through the firmware's handler).
#[cfg(not(feature = "std"))]
pub(crate) fn boundary(body: impl FnOnce() -> c_int) -> c_int {
    body()
}

#[cfg(all(feature = "panic-handler", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    extern "C" {
        /// Provided by the firmware: called if valori ever panics (a bug); must not return.
        fn valori_on_panic() -> !;
    }
    // SAFETY: the firmware contract (docs/embedded-quickstart.md) is that this symbol exists
    // and never returns.
    unsafe { valori_on_panic() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_agree_with_cargo() {
        let want = |s: &str| s.parse::<u32>().unwrap_or(u32::MAX);
        assert_eq!(VALORI_VERSION_MAJOR, want(env!("CARGO_PKG_VERSION_MAJOR")));
        assert_eq!(VALORI_VERSION_MINOR, want(env!("CARGO_PKG_VERSION_MINOR")));
        assert_eq!(VALORI_VERSION_PATCH, want(env!("CARGO_PKG_VERSION_PATCH")));
        assert_eq!(
            VERSION_CSTR,
            format!("{}\0", env!("CARGO_PKG_VERSION")).as_bytes()
        );
        assert_eq!(valori_libversion_number(), 1_000);
    }

    #[test]
    fn errstr_comes_from_the_shared_table() {
        let text = |rc: c_int| {
            // SAFETY: valori_errstr returns a static NUL-terminated string.
            unsafe { CStr::from_ptr(valori_errstr(rc)) }
        };
        for (rc, code) in PRIMARY_CODES {
            assert_eq!(primary(code), rc);
            assert_eq!(text(rc), code.description_c());
            assert_eq!(text(rc | (7 << 8)), code.description_c());
        }
        assert_eq!(text(VALORI_OK), c"not an error");
        assert_eq!(
            text(ErrorCode::ALL.len() as c_int + 1),
            c"unknown result code"
        );
        assert_eq!(text(-1), c"unknown result code");
        assert_eq!(VALORI_FULL_EDGES & 0xff, VALORI_FULL);
    }
}
