//! Exports: the newest snapshot's state and the commands logged after it, so another machine
//! can rebuild the state and compare hashes; their byte format (`docs/FORMAT.md` §12) and the
//! replay that checks them.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::pin::LogPin;
use valori_kernel::{Command, Kernel};

/// Magic of an encoded export.
pub const EXPORT_MAGIC: [u8; 4] = *b"VLRX";
/// Version of the export format.
pub const EXPORT_VERSION: u32 = 1;

/// Everything another machine needs to rebuild this database's state and compare hashes:
/// the newest snapshot's kernel encoding and the commands logged after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// Kernel state encoding (`docs/FORMAT.md` §3) at `base_seq`.
    pub base_state: Vec<u8>,
    /// Sequence number the base state includes.
    pub base_seq: u64,
    /// Encoded commands `base_seq + 1 ..= seq`, in order.
    pub commands: Vec<Vec<u8>>,
    /// The current state hash, which replay must reproduce.
    pub state_hash: [u8; 32],
}

pub(crate) const EXPORT_NAME: &str = "<export>";

impl Export {
    /// The export's bytes (`docs/FORMAT.md` §12).
    pub fn encode(&self) -> Vec<u8> {
        let commands: usize = self.commands.iter().map(|c| 4 + c.len()).sum();
        let mut out = Vec::with_capacity(32 + self.base_state.len() + commands + 32);
        encode_head(
            &mut out,
            self.base_seq,
            &self.base_state,
            self.commands.len() as u64,
        );
        for c in &self.commands {
            encode_command(&mut out, c);
        }
        out.extend_from_slice(&self.state_hash);
        out
    }

    /// Decodes an export's bytes; `Corrupt` (with the offset) unless they are exactly one
    /// export. Lengths are checked against the bytes present before anything is allocated.
    pub fn decode(bytes: &[u8]) -> Result<Export> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != EXPORT_MAGIC {
            return Err(Error::corrupt(EXPORT_NAME, 0, "not an export (bad magic)"));
        }
        if r.u32()? != EXPORT_VERSION {
            return Err(Error::corrupt(EXPORT_NAME, 4, "unsupported export version"));
        }
        let base_seq = r.u64()?;
        let base_len = r.len64()?;
        let base_state = r.take(base_len)?.to_vec();
        let count = r.u64()?;
        let mut commands = Vec::new();
        for _ in 0..count {
            let len = r.u32()? as usize;
            commands.push(r.take(len)?.to_vec());
        }
        let mut state_hash = [0u8; 32];
        state_hash.copy_from_slice(r.take(32)?);
        if r.pos != bytes.len() {
            return Err(Error::corrupt(
                EXPORT_NAME,
                r.pos as u64,
                "bytes after the end of the export",
            ));
        }
        Ok(Export {
            base_state,
            base_seq,
            commands,
            state_hash,
        })
    }

    /// Rebuilds the state (base state, then the commands) and checks that its hash is the one
    /// the export recorded; `Corrupt` otherwise.
    pub fn replay(&self) -> Result<Kernel<'static>> {
        let k = replay_export(self)?;
        if k.state_hash() != self.state_hash {
            return Err(Error::corrupt(
                EXPORT_NAME,
                0,
                "the replayed state hash differs from the one the export recorded",
            ));
        }
        Ok(k)
    }
}

/// Everything before the commands: magic, version, base sequence number, base state, count.
fn encode_head(out: &mut Vec<u8>, base_seq: u64, base_state: &[u8], count: u64) {
    out.extend_from_slice(&EXPORT_MAGIC);
    out.extend_from_slice(&EXPORT_VERSION.to_le_bytes());
    out.extend_from_slice(&base_seq.to_le_bytes());
    out.extend_from_slice(&(base_state.len() as u64).to_le_bytes());
    out.extend_from_slice(base_state);
    out.extend_from_slice(&count.to_le_bytes());
}

/// One command: its length, then its bytes.
fn encode_command(out: &mut Vec<u8>, command: &[u8]) {
    out.extend_from_slice(&(command.len() as u32).to_le_bytes());
    out.extend_from_slice(command);
}

/// An export read a piece at a time ([`Engine::export_reader`]): the concatenation of its
/// pieces is exactly [`Export::encode`] of the export [`Engine::export`] gives at the same
/// point. The commands are read back from the log page by page, held against retention by the
/// reader's pin until it is dropped.
#[derive(Debug)]
pub struct ExportReader {
    base_state: Option<Vec<u8>>,
    base_seq: u64,
    last: u64,
    state_hash: [u8; 32],
    pin: LogPin,
    done: bool,
}

/// Commands read back per piece.
const PAGE: usize = 4096;

impl ExportReader {
    pub(crate) fn new(
        base_state: Vec<u8>,
        base_seq: u64,
        last: u64,
        state_hash: [u8; 32],
        pin: LogPin,
    ) -> ExportReader {
        ExportReader {
            base_state: Some(base_state),
            base_seq,
            last,
            state_hash,
            pin,
            done: false,
        }
    }

    /// The sequence number the export ends at (its state hash is the state's there).
    pub fn seq(&self) -> u64 {
        self.last
    }

    /// The state hash the export ends with.
    pub fn state_hash(&self) -> [u8; 32] {
        self.state_hash
    }

    /// The next piece of the export's bytes, read from `engine` (the database this reader
    /// came from); `None` after the last. `Corrupt` if the log no longer holds a command it
    /// must.
    pub fn next_piece(&mut self, engine: &Engine) -> Result<Option<Vec<u8>>> {
        if let Some(base) = self.base_state.take() {
            let mut out = Vec::with_capacity(32 + base.len());
            encode_head(&mut out, self.base_seq, &base, self.last - self.base_seq);
            return Ok(Some(out));
        }
        let entries = engine.read_pinned(&mut self.pin, self.last, PAGE)?;
        if entries.is_empty() {
            if self.done {
                return Ok(None);
            }
            self.done = true;
            return Ok(Some(self.state_hash.to_vec()));
        }
        let bytes: usize = entries.iter().map(|e| 4 + e.command.len()).sum();
        let mut out = Vec::with_capacity(bytes);
        for e in &entries {
            encode_command(&mut out, &e.command);
        }
        Ok(Some(out))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end.and_then(|e| self.bytes.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(Error::corrupt(
                EXPORT_NAME,
                self.pos as u64,
                "export ends early (truncated, or a length is damaged)",
            )),
        }
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    /// A 64-bit length, which must fit in what remains.
    fn len64(&mut self) -> Result<usize> {
        let at = self.pos;
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.pos)
            .ok_or_else(|| {
                Error::corrupt(
                    EXPORT_NAME,
                    at as u64,
                    "length beyond the end of the export",
                )
            })
    }
}

/// Replays encoded commands (as exported) into `kernel`; returns how many were applied. A
/// command that does not decode or apply is `Corrupt` naming its index.
pub fn replay_into<'a>(
    kernel: &mut Kernel<'_>,
    commands: impl IntoIterator<Item = &'a [u8]>,
) -> Result<u64> {
    let mut n = 0u64;
    for bytes in commands {
        let cmd = Command::decode(bytes).map_err(|e| {
            Error::corrupt("<commands>", n, format!("command {n} does not decode: {e}"))
        })?;
        kernel.apply(&cmd).map_err(|e| {
            Error::corrupt("<commands>", n, format!("command {n} does not apply: {e}"))
        })?;
        n += 1;
    }
    Ok(n)
}

/// Rebuilds a kernel from an [`Export`]: decode the base state, replay the commands (without
/// checking the recorded hash; [`Export::replay`] checks it).
pub fn replay_export(export: &Export) -> Result<Kernel<'static>> {
    let mut k = Kernel::from_bytes(&export.base_state)?;
    replay_into(&mut k, export.commands.iter().map(Vec::as_slice))?;
    Ok(k)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn sample() -> Export {
        Export {
            base_state: vec![1, 2, 3],
            base_seq: 7,
            commands: vec![vec![9; 5], Vec::new()],
            state_hash: [0xab; 32],
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let ex = sample();
        let bytes = ex.encode();
        assert_eq!(bytes.len(), 4 + 4 + 8 + 8 + 3 + 8 + (4 + 5) + 4 + 32);
        assert_eq!(Export::decode(&bytes).unwrap(), ex);
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            let e = Export::decode(&bytes[..cut]).unwrap_err();
            assert_eq!(e.code(), valori_kernel::ErrorCode::Corrupt, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Export::decode(&longer),
            Err(Error::Corrupt { offset, .. }) if offset == bytes.len() as u64
        ));
    }

    #[test]
    fn a_huge_length_is_damage_not_an_allocation() {
        let mut bytes = sample().encode();
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Export::decode(&bytes),
            Err(Error::Corrupt { offset: 16, .. })
        ));
    }
}
