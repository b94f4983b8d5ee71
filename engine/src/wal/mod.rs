//! The write-ahead log: segment files of checksummed, hash-chained command records.
//!
//! Layout (specified in `docs/FORMAT.md`):
//! - segment header (64 bytes): magic `VLRW`, version, first sequence number, the chain value
//!   before the first record, and a 16-byte BLAKE3 check of those 48 bytes;
//! - record: a 24-byte header (magic `VLRR`, payload length, sequence number, an 8-byte BLAKE3
//!   check of the first 16 bytes), the payload (an encoded command), and the 32-byte chain
//!   value `BLAKE3(previous chain ‖ header[0..16] ‖ payload)`, the header's fence flag taken
//!   as clear (version 3).
//!
//! The chain value is the record's checksum and links it to everything before it, so any
//! change, removal or reordering of records is detected. Since version 3 it depends on the
//! commands and their sequence numbers alone, not on when the writer synced: every replica of
//! a log has the same chain value at every sequence number.

mod reader;
mod writer;

pub(crate) use reader::{
    damage_is_tail, parse_segment, Segment, SegmentStream, StreamRecord, Tail,
};
pub use reader::{read_replica_record, ReplicaDamage};
pub(crate) use writer::{chain_value, FlushError, Writer};
pub use writer::{
    encode_record, encode_record_fenced, replica_record, segment_header, LogStats, FSYNC_BUCKETS,
};

/// Segment file magic.
pub const SEGMENT_MAGIC: [u8; 4] = *b"VLRW";
/// Record magic.
pub const RECORD_MAGIC: [u8; 4] = *b"VLRR";
/// Version of the WAL layout written (versions 1 and 2 are still read). Version 3 leaves the
/// fence flag out of the chain value.
pub const WAL_VERSION: u32 = 3;
/// Version 2 record flag, bit 31 of the length word: every byte before this record in its
/// segment was durable (fsynced) when the record was written. Recovery uses it to tell a torn
/// tail from damage to durable data (`docs/FORMAT.md` §8, §10).
pub const RECORD_FENCE: u32 = 1 << 31;
/// Bytes of a segment header.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Bytes of a record header.
pub const RECORD_HEADER_LEN: usize = 24;
/// Bytes of a record's chain value.
pub const CHAIN_LEN: usize = 32;
/// Largest payload accepted (1 GiB); a larger length is damage, not a reason to allocate.
pub const MAX_PAYLOAD: u32 = 1 << 30;
/// Largest sequence number a record or snapshot may carry. `u64::MAX` is never used, so that
/// "one past the last" (the next record, the end of a segment) is always representable; a
/// file that claims it is damaged, and a database whose log reached it refuses writes.
pub const MAX_SEQ: u64 = u64::MAX - 1;
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

/// Checks a whole segment file's bytes the way recovery reads them: the number of intact
/// records and whether the file ends inside a record, or the first damage as `(offset,
/// reason)`. For tools and fuzzing; recovery itself uses the full parse.
pub fn check_segment(bytes: &[u8]) -> Result<(u64, bool), (u64, &'static str)> {
    check_segment_inner(bytes)
}

/// The records [`check_segment`] accepts before the first damage or incomplete record.
pub fn intact_records(bytes: &[u8]) -> u64 {
    match parse_segment(bytes) {
        Ok(seg) => seg.records.len() as u64,
        Err((damage, _)) => damage.intact as u64,
    }
}

/// Reads a segment with the streaming reader `valori verify` uses: the records it reads
/// before it stops, and whether it stopped at a clean end of the bytes. It must agree with
/// [`check_segment`] and [`intact_records`] (the `wal_segment` fuzz target holds them equal).
pub fn stream_segment(bytes: &[u8]) -> (u64, bool) {
    let Some(mut stream) = SegmentStream::open(bytes) else {
        return (0, false);
    };
    let mut n = 0;
    let mut payload = Vec::new();
    loop {
        payload.clear();
        match stream.next(&mut payload) {
            Ok(Some(_)) => n += 1,
            Ok(None) => return (n, true),
            Err(()) => return (n, false),
        }
    }
}

fn check_segment_inner(bytes: &[u8]) -> Result<(u64, bool), (u64, &'static str)> {
    match parse_segment(bytes) {
        Ok(seg) => Ok((seg.records.len() as u64, seg.tail != Tail::Clean)),
        Err((damage, _)) => Err((damage.offset, damage.reason)),
    }
}
