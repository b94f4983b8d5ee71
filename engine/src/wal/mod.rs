//! The write-ahead log: segment files of checksummed, hash-chained command records.
//!
//! Layout (specified in `docs/FORMAT.md`):
//! - segment header (64 bytes): magic `VLRW`, version, first sequence number, the chain value
//!   before the first record, and a 16-byte BLAKE3 check of those 48 bytes;
//! - record: a 24-byte header (magic `VLRR`, payload length, sequence number, an 8-byte BLAKE3
//!   check of the first 16 bytes), the payload (an encoded command), and the 32-byte chain
//!   value `BLAKE3(previous chain ‖ header[0..16] ‖ payload)`.
//!
//! The chain value is the record's checksum and links it to everything before it, so any
//! change, removal or reordering of records is detected.

mod reader;

pub(crate) use reader::{parse_segment, Segment, Tail};

/// Segment file magic.
pub const SEGMENT_MAGIC: [u8; 4] = *b"VLRW";
/// Record magic.
pub const RECORD_MAGIC: [u8; 4] = *b"VLRR";
/// Version of the WAL layout.
pub const WAL_VERSION: u32 = 1;
/// Bytes of a segment header.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Bytes of a record header.
pub const RECORD_HEADER_LEN: usize = 24;
/// Bytes of a record's chain value.
pub const CHAIN_LEN: usize = 32;
/// Largest payload accepted (1 GiB); a larger length is damage, not a reason to allocate.
pub const MAX_PAYLOAD: u32 = 1 << 30;
/// The chain value before the first record of a new database.
pub fn genesis_chain() -> [u8; 32] {
    *blake3::hash(b"valori-wal-genesis-v1").as_bytes()
}

/// A 32-byte chain value.
pub type Chain = [u8; 32];

/// Segment file name for a segment whose first record is `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("wal-{first_seq:020}.log")
}

/// The first sequence number in a segment file name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The 64-byte header of a segment.
pub fn segment_header(first_seq: u64, chain_in: &Chain) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..8].copy_from_slice(&WAL_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&first_seq.to_le_bytes());
    h[16..48].copy_from_slice(chain_in);
    let check = blake3::hash(&h[0..48]);
    h[48..64].copy_from_slice(&check.as_bytes()[..16]);
    h
}

/// Appends one record to `out`; returns the new chain value.
pub fn encode_record(seq: u64, prev: &Chain, payload: &[u8], out: &mut Vec<u8>) -> Chain {
    let mut head = [0u8; RECORD_HEADER_LEN];
    head[0..4].copy_from_slice(&RECORD_MAGIC);
    head[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    head[8..16].copy_from_slice(&seq.to_le_bytes());
    let check = blake3::hash(&head[0..16]);
    head[16..24].copy_from_slice(&check.as_bytes()[..8]);
    let chain = chain_value(prev, &head[0..16], payload);
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    out.extend_from_slice(&chain);
    chain
}

pub(crate) fn chain_value(prev: &Chain, head16: &[u8], payload: &[u8]) -> Chain {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(head16);
    h.update(payload);
    *h.finalize().as_bytes()
}
