//! Parsing a segment: every byte is checked; damage is reported with its offset.

use super::{
    chain_value, Chain, CHAIN_LEN, MAX_PAYLOAD, RECORD_HEADER_LEN, RECORD_MAGIC,
    SEGMENT_HEADER_LEN, SEGMENT_MAGIC, WAL_VERSION,
};
use std::ops::Range;

/// How a segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// The last record ends exactly at the end of the file.
    Clean,
    /// The file ends inside a record (or header) starting at this offset: an interrupted
    /// append. Acceptable only at the very end of the log.
    Torn(u64),
}

/// One record of a parsed segment.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) offset: u64,
    pub(crate) payload: Range<usize>,
    /// The chain value before this record.
    pub(crate) prev: Chain,
    /// The chain value after this record.
    pub(crate) after: Chain,
}

/// A segment whose records all passed their checks.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) first_seq: u64,
    pub(crate) records: Vec<Record>,
    /// Chain value after the last record (or `chain_in`).
    pub(crate) chain_out: Chain,
    /// Bytes of intact data (header + whole records).
    pub(crate) valid_len: u64,
    pub(crate) tail: Tail,
}

/// Where and why a segment is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub(crate) offset: u64,
    pub(crate) reason: &'static str,
    /// The records before the damage (for salvage).
    pub(crate) intact: usize,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.try_into().ok().map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)?.try_into().ok().map(u64::from_le_bytes)
}

/// Parses a whole segment. A file shorter than its header is `Torn(0)` with no records.
pub(crate) fn parse_segment(bytes: &[u8]) -> Result<Segment, (Damage, Option<Segment>)> {
    let damage = |offset: usize, reason, intact| Damage {
        offset: offset as u64,
        reason,
        intact,
    };
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Ok(Segment {
            first_seq: 0,
            records: Vec::new(),
            chain_out: [0; 32],
            valid_len: 0,
            tail: Tail::Torn(0),
        });
    }
    let head = bytes.get(..SEGMENT_HEADER_LEN).unwrap_or_default();
    if head.get(0..4) != Some(&SEGMENT_MAGIC[..]) {
        return Err((damage(0, "not a WAL segment (bad magic)", 0), None));
    }
    if blake3::hash(head.get(0..48).unwrap_or_default())
        .as_bytes()
        .get(..16)
        != head.get(48..64)
    {
        return Err((damage(0, "segment header checksum mismatch", 0), None));
    }
    if u32_at(head, 4) != Some(WAL_VERSION) {
        return Err((damage(4, "unsupported WAL version", 0), None));
    }
    let first_seq = u64_at(head, 8).unwrap_or(0);
    let mut chain_in = [0u8; 32];
    chain_in.copy_from_slice(head.get(16..48).unwrap_or(&[0; 32]));

    let mut seg = Segment {
        first_seq,
        records: Vec::new(),
        chain_out: chain_in,
        valid_len: SEGMENT_HEADER_LEN as u64,
        tail: Tail::Clean,
    };
    let mut pos = SEGMENT_HEADER_LEN;
    let mut seq = first_seq;
    while pos < bytes.len() {
        let rest = bytes.len() - pos;
        let n = seg.records.len();
        if rest < RECORD_HEADER_LEN {
            seg.tail = Tail::Torn(pos as u64);
            break;
        }
        let h = bytes.get(pos..pos + RECORD_HEADER_LEN).unwrap_or_default();
        if h.get(0..4) != Some(&RECORD_MAGIC[..]) {
            return Err((damage(pos, "bad record magic", n), Some(seg)));
        }
        if blake3::hash(h.get(0..16).unwrap_or_default())
            .as_bytes()
            .get(..8)
            != h.get(16..24)
        {
            return Err((damage(pos, "record header checksum mismatch", n), Some(seg)));
        }
        let len = u32_at(h, 4).unwrap_or(u32::MAX);
        if len > MAX_PAYLOAD {
            return Err((
                damage(pos + 4, "payload length over the limit", n),
                Some(seg),
            ));
        }
        if u64_at(h, 8) != Some(seq) {
            return Err((
                damage(pos + 8, "sequence number out of order (gap)", n),
                Some(seg),
            ));
        }
        let len = len as usize;
        if rest < RECORD_HEADER_LEN + len + CHAIN_LEN {
            seg.tail = Tail::Torn(pos as u64);
            break;
        }
        let payload = pos + RECORD_HEADER_LEN..pos + RECORD_HEADER_LEN + len;
        let stored = bytes
            .get(payload.end..payload.end + CHAIN_LEN)
            .unwrap_or_default();
        let computed = chain_value(
            &seg.chain_out,
            h.get(0..16).unwrap_or_default(),
            bytes.get(payload.clone()).unwrap_or_default(),
        );
        if stored != computed {
            return Err((
                damage(
                    payload.end,
                    "record checksum mismatch (damaged payload or broken chain)",
                    n,
                ),
                Some(seg),
            ));
        }
        seg.records.push(Record {
            seq,
            offset: pos as u64,
            payload,
            prev: seg.chain_out,
            after: computed,
        });
        seg.chain_out = computed;
        seq += 1;
        pos += RECORD_HEADER_LEN + len + CHAIN_LEN;
        seg.valid_len = pos as u64;
    }
    Ok(seg)
}
