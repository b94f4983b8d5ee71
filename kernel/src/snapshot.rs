//! Portable snapshots: the byte strings a kernel hands out to be restored later, maybe on
//! another device. The canonical state encoding (`docs/FORMAT.md` §3) framed so that restore
//! refuses any damaged one: a magic, a version, the encoding's length, the encoding, and the
//! state hash (`BLAKE3(STATE_HASH_DOMAIN ‖ encoding)`, `docs/FORMAT.md` §4), which restore
//! recomputes before it decodes anything. A changed bit in the frame breaks the magic, the
//! version, the length or the hash; a changed bit in the encoding changes the hash it must
//! match. The encoding and the state hash themselves are unchanged.
//!
//! ```text
//! "VLRP"  u32 version = 1  u64 encoding length L  L bytes (state encoding)  state hash [32]
//! ```

use crate::codec::STATE_HASH_DOMAIN;
use crate::error::{Error, Result};
use crate::memory::Capacity;
use crate::state::Kernel;

/// Magic of a portable snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"VLRP";
/// Version of the portable snapshot frame.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Bytes the frame adds to the state encoding.
pub const SNAPSHOT_OVERHEAD: usize = 4 + 4 + 8 + 32;

const HEAD: usize = 16;

fn hash_of(encoding: &[u8]) -> [u8; 32] {
    let mut h = crate::hash::Hasher::new();
    h.update(&STATE_HASH_DOMAIN);
    h.update(encoding);
    h.finalize()
}

/// The verified state encoding inside a snapshot.
// Not inlined: the hasher's frame is then gone before decoding builds the kernel, and a
// restore's peak stack is the larger of the two, not their sum.
#[inline(never)]
fn unframe(bytes: &[u8]) -> Result<&[u8]> {
    let corrupt = |at: usize, why| Err(Error::corrupt(at, why));
    if bytes.len() < SNAPSHOT_OVERHEAD {
        return corrupt(bytes.len(), "shorter than a snapshot frame");
    }
    if bytes.get(0..4) != Some(&SNAPSHOT_MAGIC[..]) {
        return corrupt(0, "not a valori snapshot (bad magic)");
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes.get(at..at + 8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(b)
    };
    if word(0) >> 32 != u64::from(SNAPSHOT_VERSION) {
        return corrupt(4, "unsupported snapshot version");
    }
    let len = bytes.len() - SNAPSHOT_OVERHEAD;
    if word(8) != len as u64 {
        return corrupt(8, "snapshot length does not match its frame");
    }
    let encoding = bytes.get(HEAD..HEAD + len).unwrap_or_default();
    if bytes.get(HEAD + len..) != Some(&hash_of(encoding)[..]) {
        return corrupt(HEAD + len, "snapshot hash mismatch (damaged)");
    }
    Ok(encoding)
}

impl<'m> Kernel<'m> {
    /// Length of this kernel's portable snapshot.
    pub fn snapshot_len(&self) -> u64 {
        self.encoded_len() + SNAPSHOT_OVERHEAD as u64
    }

    /// Writes the portable snapshot to `out`; returns its length. If `out` is too small,
    /// `InsufficientSize` names the length needed and `out` is not written.
    pub fn write_snapshot(&self, out: &mut [u8]) -> Result<usize> {
        let needed = self.snapshot_len();
        let total = match usize::try_from(needed) {
            Ok(n) if n <= out.len() => n,
            _ => return Err(Error::InsufficientSize { needed }),
        };
        // `total` (at least the frame) fits `out`, so these splits are in range.
        let (head, rest) = out.split_at_mut(HEAD);
        let n = self.encode(rest)?;
        let (encoding, tail) = rest.split_at_mut(n);
        let hash = hash_of(encoding);
        let (version, len) = (SNAPSHOT_VERSION.to_le_bytes(), (n as u64).to_le_bytes());
        let frame = SNAPSHOT_MAGIC.iter().chain(&version).chain(&len);
        for (dst, src) in head.iter_mut().zip(frame) {
            *dst = *src;
        }
        for (dst, src) in tail.iter_mut().zip(&hash) {
            *dst = *src;
        }
        Ok(total)
    }

    /// The portable snapshot as a new vector.
    #[cfg(feature = "alloc")]
    pub fn snapshot(&self) -> alloc::vec::Vec<u8> {
        let encoding = self.to_bytes();
        let mut out = alloc::vec::Vec::with_capacity(encoding.len() + SNAPSHOT_OVERHEAD);
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&(encoding.len() as u64).to_le_bytes());
        out.extend_from_slice(&encoding);
        out.extend_from_slice(&hash_of(&encoding));
        out
    }

    /// Restores a portable snapshot into a new growable kernel; `Corrupt` if it is damaged.
    #[cfg(feature = "alloc")]
    pub fn from_snapshot(bytes: &[u8]) -> Result<Kernel<'static>> {
        Kernel::from_bytes(unframe(bytes)?).map_err(|e| shift(e, HEAD))
    }

    /// Restores a portable snapshot into a new kernel in caller memory; `Corrupt` if it is
    /// damaged, `Full` if it does not fit `cap`.
    pub fn from_snapshot_in(bytes: &[u8], cap: Capacity, mem: &'m mut [u8]) -> Result<Kernel<'m>> {
        Kernel::from_bytes_in(unframe(bytes)?, cap, mem).map_err(|e| shift(e, HEAD))
    }
}

/// An error offset inside the encoding, as an offset in the snapshot.
fn shift(e: Error, by: usize) -> Error {
    match e {
        Error::Corrupt { offset, reason } => Error::Corrupt {
            offset: offset + by as u64,
            reason,
        },
        other => other,
    }
}
