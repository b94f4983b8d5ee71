//! Buffers from Python: the pure-Python layer hands vectors and tags over as the bytes of
//! contiguous numpy arrays in this process's native byte order. They are decoded here (copied,
//! so the bytes need no alignment) and converted to Q16.16 by the kernel's one conversion
//! (`valori_kernel::fxp::to_vec`), never by code of this crate.

use crate::errors::Fail;
use valori_kernel::{fxp, Fxp};

/// Decoded float components, as the caller gave them.
pub(crate) enum Floats {
    /// From a float32 array.
    F32(Vec<f32>),
    /// From a float64 array (converted directly, never through `f32`).
    F64(Vec<f64>),
}

impl Floats {
    /// Decodes a native-order buffer of `dtype` `"f32"` or `"f64"`.
    pub(crate) fn decode(data: &[u8], dtype: &str) -> Result<Floats, Fail> {
        match dtype {
            "f32" => words(data, "float32", f32_ne).map(Floats::F32),
            "f64" => words(data, "float64", f64_ne).map(Floats::F64),
            _ => Err(Fail::internal(format!(
                "unknown dtype '{dtype}': use 'f32' or 'f64'"
            ))),
        }
    }

    /// The components in Q16.16 (the kernel's conversion: errors name the component).
    pub(crate) fn to_fxp(&self) -> Result<Vec<Fxp>, Fail> {
        Ok(match self {
            Floats::F32(v) => fxp::to_vec(v)?,
            Floats::F64(v) => fxp::to_vec(v)?,
        })
    }
}

/// Decodes a buffer straight to Q16.16.
pub(crate) fn fxps(data: &[u8], dtype: &str) -> Result<Vec<Fxp>, Fail> {
    Floats::decode(data, dtype)?.to_fxp()
}

/// Decodes a native-order uint64 buffer (tags).
pub(crate) fn u64s(data: &[u8]) -> Result<Vec<u64>, Fail> {
    words(data, "uint64", u64_ne)
}

// The buffers come from numpy in this process, in native byte order: they are not an
// encoding (nothing here is stored, hashed or sent to another machine).
#[allow(
    clippy::host_endian_bytes,
    reason = "decodes a native-order numpy buffer of this process, not an encoding"
)]
fn f32_ne(b: [u8; 4]) -> f32 {
    f32::from_ne_bytes(b)
}

#[allow(
    clippy::host_endian_bytes,
    reason = "decodes a native-order numpy buffer of this process, not an encoding"
)]
fn f64_ne(b: [u8; 8]) -> f64 {
    f64::from_ne_bytes(b)
}

#[allow(
    clippy::host_endian_bytes,
    reason = "decodes a native-order numpy buffer of this process, not an encoding"
)]
fn u64_ne(b: [u8; 8]) -> u64 {
    u64::from_ne_bytes(b)
}

/// Splits `data` into `N`-byte words and decodes each; a length that is not a whole number
/// of words is refused (the Python layer never produces one).
fn words<const N: usize, T>(
    data: &[u8],
    what: &str,
    decode: fn([u8; N]) -> T,
) -> Result<Vec<T>, Fail> {
    let chunks = data.chunks_exact(N);
    if !chunks.remainder().is_empty() {
        return Err(Fail::invalid(format!(
            "a buffer of {} bytes is not a whole number of {what} values",
            data.len()
        )));
    }
    chunks
        .map(|c| {
            <[u8; N]>::try_from(c)
                .map(decode)
                .map_err(|_| Fail::internal("chunks_exact gave a chunk of another size"))
        })
        .collect()
}
