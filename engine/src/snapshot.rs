//! Snapshot files: the kernel state at a sequence number, with the WAL chain value and state
//! hash at that point, checksummed section by section.
//!
//! ```text
//! header (120 bytes): magic "VLRSNAP\0", u32 version, u32 section count, u64 sequence number,
//!                     chain value [32], state hash [32], BLAKE3 of the previous 88 bytes [32]
//! section:            u32 kind, u32 reserved (0), u64 length L, L bytes, BLAKE3(kind‖0‖L‖bytes) [32]
//! ```
//! Section kind 1 is the kernel state encoding (`docs/FORMAT.md` §3); an optional second
//! section, kind 2, is the approximate index's encoding (§15). Identical states (and indexes)
//! at the same sequence number give identical files.

use crate::error::{Error, Result};
use crate::wal::{Chain, MAX_SEQ};
use valori_kernel::Kernel;

/// Snapshot magic.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"VLRSNAP\0";
/// Snapshot layout version.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Bytes of the snapshot header.
pub const SNAPSHOT_HEADER_LEN: usize = 120;
/// Section kind: the kernel state encoding.
pub const SECTION_KERNEL: u32 = 1;
/// Section kind: the approximate index's encoding (present when one is configured).
pub const SECTION_INDEX: u32 = 2;

/// The dimension and metric of the snapshot file at `path`, from its first bytes alone (the
/// file header's magic, the kernel section's kind and the state encoding's header): nothing
/// else is read or verified.
pub(crate) fn read_config(
    storage: &dyn crate::storage::Storage,
    path: &std::path::Path,
) -> crate::error::Result<valori_kernel::Config> {
    use std::io::Read as _;
    let corrupt = |at: u64, why: &str| crate::error::Error::corrupt(path, at, why);
    let at = SNAPSHOT_HEADER_LEN + 16;
    let mut head = Vec::new();
    storage
        .open_read(path)
        .and_then(|f| {
            f.take((at + valori_kernel::ENCODING_HEADER_LEN) as u64)
                .read_to_end(&mut head)
        })
        .map_err(crate::error::Error::io("reading", path))?;
    if head.get(..8) != Some(&SNAPSHOT_MAGIC[..]) {
        return Err(corrupt(0, "not a snapshot (bad magic)"));
    }
    let kind = head
        .get(SNAPSHOT_HEADER_LEN..SNAPSHOT_HEADER_LEN + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes);
    if kind != Some(SECTION_KERNEL) {
        return Err(corrupt(
            SNAPSHOT_HEADER_LEN as u64,
            "the first section is not the kernel state",
        ));
    }
    valori_kernel::Kernel::encoding_config(head.get(at..).unwrap_or_default())
        .map_err(|e| corrupt(at as u64, &e.to_string()))
}

/// Snapshot file name for sequence number `seq`.
pub fn snapshot_name(seq: u64) -> String {
    format!("snap-{seq:020}.vsnap")
}

/// The sequence number in a snapshot file name.
pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".vsnap")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A decoded, verified snapshot.
#[derive(Debug)]
pub struct Snapshot {
    /// Last sequence number the state includes.
    pub seq: u64,
    /// WAL chain value after that record.
    pub chain: Chain,
    /// State hash recorded (and verified) at that point.
    pub state_hash: [u8; 32],
    /// The state.
    pub kernel: Kernel<'static>,
}

fn section_check(kind: u32, body: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(&kind.to_le_bytes());
    h.update(&0u32.to_le_bytes());
    h.update(&(body.len() as u64).to_le_bytes());
    h.update(body);
    h.finalize()
}

/// Encodes a snapshot of `kernel` at `seq` / `chain` into memory (see [`write`]).
pub fn encode(seq: u64, chain: &Chain, kernel: &Kernel<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = out.try_reserve(SNAPSHOT_HEADER_LEN + 48 + kernel.encoded_len_hint() as usize);
    let result = write(seq, chain, kernel, &mut |b: &[u8]| {
        out.extend_from_slice(b);
        Ok(())
    });
    debug_assert!(result.is_ok(), "writing to memory cannot fail");
    out
}

/// Bytes of encoding gathered before each `put` of [`write`].
const WRITE_CHUNK: usize = 1 << 20;

/// Streams a snapshot of `kernel` at `seq` / `chain` to `put`, a megabyte at a time, never
/// holding the whole encoding: one pass computes the state hash (the header needs it), a
/// second encodes the body into `put` and its section checksum.
pub fn write(
    seq: u64,
    chain: &Chain,
    kernel: &Kernel<'_>,
    put: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let body_len = kernel.encoded_len_hint();
    let index = kernel.index_bytes();
    let sections = if index.is_some() { 2u32 } else { 1 };
    let mut head = Vec::with_capacity(SNAPSHOT_HEADER_LEN + 16);
    head.extend_from_slice(&SNAPSHOT_MAGIC);
    head.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    head.extend_from_slice(&sections.to_le_bytes());
    head.extend_from_slice(&seq.to_le_bytes());
    head.extend_from_slice(chain);
    head.extend_from_slice(&kernel.state_hash());
    let check = blake3::hash(&head);
    head.extend_from_slice(check.as_bytes());
    let section = [
        &SECTION_KERNEL.to_le_bytes()[..],
        &0u32.to_le_bytes(),
        &body_len.to_le_bytes(),
    ]
    .concat();
    head.extend_from_slice(&section);
    put(&head)?;

    struct Body<'a> {
        buf: Vec<u8>,
        check: blake3::Hasher,
        put: &'a mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        written: u64,
        error: Option<std::io::Error>,
    }
    impl Body<'_> {
        fn flush(&mut self) {
            if self.error.is_none() && !self.buf.is_empty() {
                self.check.update(&self.buf);
                self.written += self.buf.len() as u64;
                if let Err(e) = (self.put)(&self.buf) {
                    self.error = Some(e);
                }
            }
            self.buf.clear();
        }
    }
    impl valori_kernel::Sink for Body<'_> {
        fn put(&mut self, bytes: &[u8]) {
            self.buf.extend_from_slice(bytes);
            if self.buf.len() >= WRITE_CHUNK {
                self.flush();
            }
        }
    }
    let mut check = blake3::Hasher::new();
    check.update(&section);
    let mut body = Body {
        buf: Vec::with_capacity(WRITE_CHUNK + (64 << 10)),
        check,
        put,
        written: 0,
        error: None,
    };
    kernel.encode_into(&mut body);
    body.flush();
    if let Some(e) = body.error {
        return Err(e);
    }
    if body.written != body_len {
        return Err(std::io::Error::other(format!(
            "the state encoded to {} bytes, not the {body_len} announced",
            body.written
        )));
    }
    let check = body.check.finalize();
    (body.put)(check.as_bytes())?;
    if let Some(index) = index {
        let section = [
            &SECTION_INDEX.to_le_bytes()[..],
            &0u32.to_le_bytes(),
            &(index.len() as u64).to_le_bytes(),
        ]
        .concat();
        (body.put)(&section)?;
        (body.put)(&index)?;
        (body.put)(section_check(SECTION_INDEX, &index).as_bytes())?;
    }
    Ok(())
}

/// From this many bytes of state on, a snapshot's decoding checks and hashes on two threads.
const PARALLEL_FROM: usize = 8 << 20;

/// The state hash ([`Kernel::state_hash`], the same value) on two threads: this one encodes
/// the state into 4 MiB blocks while another hashes the previous block. For large states: the
/// history's `verify`, and a snapshot's decoding.
pub(crate) fn parallel_state_hash(kernel: &Kernel<'_>) -> [u8; 32] {
    const BLOCK: usize = 4 << 20;
    struct Blocks {
        buf: Vec<u8>,
        full: std::sync::mpsc::SyncSender<Vec<u8>>,
        empty: std::sync::mpsc::Receiver<Vec<u8>>,
    }
    impl valori_kernel::Sink for Blocks {
        fn put(&mut self, bytes: &[u8]) {
            self.buf.extend_from_slice(bytes);
            if self.buf.len() >= BLOCK {
                let next = self
                    .empty
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BLOCK + (64 << 10)));
                let block = std::mem::replace(&mut self.buf, next);
                // The hasher only stops receiving by finishing, after this sender is gone.
                let _ = self.full.send(block);
            }
        }
    }
    let (full, blocks) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    let (recycle, empty) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    std::thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let mut h = blake3::Hasher::new();
            for mut block in blocks {
                h.update(&block);
                block.clear();
                let _ = recycle.try_send(block);
            }
            *h.finalize().as_bytes()
        });
        let mut sink = Blocks {
            buf: Vec::with_capacity(BLOCK + (64 << 10)),
            full,
            empty,
        };
        kernel.state_hash_input(&mut sink);
        let Blocks { buf, full, .. } = sink;
        let _ = full.send(buf);
        drop(full);
        // A panic in the hasher thread is a bug; hashing on this thread gives the value.
        hasher.join().unwrap_or_else(|_| kernel.state_hash())
    })
}

/// Decodes and verifies a snapshot: header and section checksums, the kernel encoding, and the
/// recomputed state hash against the recorded one. Errors give `(offset, reason)`.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, (u64, String)> {
    let err = |at: usize, why: &str| (at as u64, why.to_string());
    let head = bytes
        .get(..SNAPSHOT_HEADER_LEN)
        .ok_or_else(|| err(bytes.len(), "file shorter than a snapshot header"))?;
    if head.get(0..8) != Some(&SNAPSHOT_MAGIC[..]) {
        return Err(err(0, "not a snapshot (bad magic)"));
    }
    if blake3::hash(head.get(..88).unwrap_or_default())
        .as_bytes()
        .get(..)
        != head.get(88..120)
    {
        return Err(err(0, "snapshot header checksum mismatch"));
    }
    let u32_at = |at: usize| {
        head.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    if u32_at(8) != Some(SNAPSHOT_VERSION) {
        return Err(err(8, "unsupported snapshot version"));
    }
    let sections = u32_at(12).unwrap_or(0);
    if !(1..=2).contains(&sections) {
        return Err(err(12, "unsupported section count"));
    }
    let seq = head
        .get(16..24)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0);
    if seq > MAX_SEQ {
        return Err(err(16, "sequence number out of range"));
    }
    let mut chain = [0u8; 32];
    chain.copy_from_slice(head.get(24..56).unwrap_or(&[0; 32]));
    let mut state_hash = [0u8; 32];
    state_hash.copy_from_slice(head.get(56..88).unwrap_or(&[0; 32]));

    let at = SNAPSHOT_HEADER_LEN;
    let sec = bytes
        .get(at..at + 16)
        .ok_or_else(|| err(at, "snapshot truncated before its section"))?;
    let kind = sec
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes);
    if kind != Some(SECTION_KERNEL) || sec.get(4..8) != Some(&[0, 0, 0, 0][..]) {
        return Err(err(at, "unknown snapshot section"));
    }
    let len = sec
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(u64::MAX);
    let body_at = at + 16;
    let remaining = (bytes.len() - body_at) as u64;
    let fits = match sections {
        1 => len.checked_add(32) == Some(remaining),
        // The index section (at least its 16-byte header and checksum) follows.
        _ => len.checked_add(32 + 48).is_some_and(|n| n <= remaining),
    };
    if !fits {
        return Err(err(at + 8, "section length does not match the file size"));
    }
    let body = bytes
        .get(body_at..body_at + len as usize)
        .unwrap_or_default();
    let stored = bytes
        .get(body_at + len as usize..body_at + len as usize + 32)
        .unwrap_or_default();
    let checked = |check: blake3::Hash| {
        if check.as_bytes().get(..) == Some(stored) {
            Ok(())
        } else {
            Err(err(body_at + len as usize, "section checksum mismatch"))
        }
    };
    // A large body is checked on another thread while it is decoded (the decoder takes any
    // bytes without harm); a checksum mismatch is reported before any decoding error. A
    // small one is decoded only once its checksum holds.
    let large = body.len() >= PARALLEL_FROM;
    let decoded = if large {
        let (check, decoded) = std::thread::scope(|s| {
            let check = s.spawn(|| section_check(SECTION_KERNEL, body));
            let decoded = Kernel::from_bytes(body);
            let check = check
                .join()
                .unwrap_or_else(|_| section_check(SECTION_KERNEL, body));
            (check, decoded)
        });
        checked(check)?;
        decoded
    } else {
        checked(section_check(SECTION_KERNEL, body))?;
        Kernel::from_bytes(body)
    };
    let mut kernel = decoded.map_err(|e| match e {
        valori_kernel::Error::Corrupt { offset, reason } => {
            (body_at as u64 + offset, reason.to_string())
        }
        other => (body_at as u64, other.to_string()),
    })?;
    let recomputed = if large {
        parallel_state_hash(&kernel)
    } else {
        kernel.state_hash()
    };
    if recomputed != state_hash {
        return Err(err(
            56,
            "recomputed state hash differs from the recorded one",
        ));
    }
    if sections == 2 {
        let at = body_at + len as usize + 32;
        let sec = bytes.get(at..at + 16).unwrap_or_default();
        let word = |r: core::ops::Range<usize>| sec.get(r).unwrap_or_default();
        if word(0..4) != SECTION_INDEX.to_le_bytes() || word(4..8) != [0, 0, 0, 0] {
            return Err(err(at, "unknown snapshot section"));
        }
        let ilen = word(8..16)
            .try_into()
            .map(u64::from_le_bytes)
            .unwrap_or(u64::MAX);
        let index_at = at + 16;
        if ilen.checked_add(32) != Some((bytes.len() - index_at) as u64) {
            return Err(err(at + 8, "section length does not match the file size"));
        }
        let index = bytes
            .get(index_at..index_at + ilen as usize)
            .unwrap_or_default();
        let stored = bytes.get(index_at + ilen as usize..).unwrap_or_default();
        if section_check(SECTION_INDEX, index).as_bytes().get(..) != Some(stored) {
            return Err(err(index_at + ilen as usize, "section checksum mismatch"));
        }
        kernel.load_index(index).map_err(|e| match e {
            valori_kernel::Error::Corrupt { offset, reason } => {
                (index_at as u64 + offset, reason.to_string())
            }
            other => (index_at as u64, other.to_string()),
        })?;
    }
    Ok(Snapshot {
        seq,
        chain,
        state_hash,
        kernel,
    })
}

/// Decodes a snapshot file's bytes (for tools): the recorded sequence number and the kernel.
pub fn decode_file(bytes: &[u8]) -> Result<(u64, Kernel<'static>)> {
    decode(bytes)
        .map(|s| (s.seq, s.kernel))
        .map_err(|(offset, reason)| Error::corrupt("<snapshot>", offset, reason))
}
