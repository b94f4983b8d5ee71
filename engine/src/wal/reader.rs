//! Parsing a segment: every byte is checked; damage is reported with its offset.

use super::{
    chain_value, Chain, CHAIN_LEN, MAX_PAYLOAD, MAX_SEQ, RECORD_FENCE, RECORD_HEADER_LEN,
    RECORD_MAGIC, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, WAL_VERSION,
};
use std::io::Read as _;
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
    let (version, first_seq, chain_in) =
        check_segment_header(head).map_err(|(at, why)| (damage(at, why, 0), None))?;

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
        let len = check_record_header(h, version, seq)
            .map_err(|(at, why)| (damage(pos + at, why, n), Some(seg.clone())))?;
        if rest < RECORD_HEADER_LEN + len + CHAIN_LEN {
            seg.tail = Tail::Torn(pos as u64);
            break;
        }
        let payload = pos + RECORD_HEADER_LEN..pos + RECORD_HEADER_LEN + len;
        let stored = bytes
            .get(payload.end..payload.end + CHAIN_LEN)
            .unwrap_or_default();
        let computed = chain_value(
            version,
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

/// Checks a segment header: its version, first sequence number and incoming chain value, or
/// the offset and reason of the damage.
fn check_segment_header(head: &[u8]) -> Result<(u32, u64, Chain), (usize, &'static str)> {
    if head.get(0..4) != Some(&SEGMENT_MAGIC[..]) {
        return Err((0, "not a WAL segment (bad magic)"));
    }
    if blake3::hash(head.get(0..48).unwrap_or_default())
        .as_bytes()
        .get(..16)
        != head.get(48..64)
    {
        return Err((0, "segment header checksum mismatch"));
    }
    let version = u32_at(head, 4).unwrap_or(0);
    if !(1..=WAL_VERSION).contains(&version) {
        return Err((4, "unsupported WAL version"));
    }
    let mut chain_in = [0u8; 32];
    chain_in.copy_from_slice(head.get(16..48).unwrap_or(&[0; 32]));
    Ok((version, u64_at(head, 8).unwrap_or(0), chain_in))
}

/// Checks the header of the record expected to carry sequence number `seq`: its payload
/// length, or the offset (within the header) and reason of the damage.
fn check_record_header(h: &[u8], version: u32, seq: u64) -> Result<usize, (usize, &'static str)> {
    if h.get(0..4) != Some(&RECORD_MAGIC[..]) {
        return Err((0, "bad record magic"));
    }
    if blake3::hash(h.get(0..16).unwrap_or_default())
        .as_bytes()
        .get(..8)
        != h.get(16..24)
    {
        return Err((0, "record header checksum mismatch"));
    }
    let len = record_len(version, u32_at(h, 4).unwrap_or(u32::MAX));
    if len > MAX_PAYLOAD {
        return Err((4, "payload length over the limit"));
    }
    if u64_at(h, 8) != Some(seq) {
        return Err((8, "sequence number out of order (gap)"));
    }
    if seq > MAX_SEQ {
        return Err((8, "sequence number out of range"));
    }
    Ok(len as usize)
}

/// One record read by a [`SegmentStream`] (its payload is in the caller's buffer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamRecord {
    pub(crate) seq: u64,
    pub(crate) offset: u64,
    pub(crate) prev: Chain,
    pub(crate) after: Chain,
}

/// Reads a segment's records one at a time from a reader, with [`parse_segment`]'s checks,
/// in bounded memory. It stops at the first problem of any kind (damage, an incomplete record,
/// an I/O error) without judging it: the caller settles that with [`parse_segment`] over the
/// whole file, since the tail rule needs the bytes after the problem.
pub(crate) struct SegmentStream<R> {
    r: R,
    version: u32,
    /// First sequence number and incoming chain value, from the header.
    pub(crate) first_seq: u64,
    pub(crate) chain_in: Chain,
    seq: u64,
    chain: Chain,
    pos: u64,
}

impl<R: std::io::Read> SegmentStream<R> {
    /// Reads and checks the segment header; `None` on any problem.
    pub(crate) fn open(mut r: R) -> Option<SegmentStream<R>> {
        let mut head = [0u8; SEGMENT_HEADER_LEN];
        r.read_exact(&mut head).ok()?;
        let (version, first_seq, chain_in) = check_segment_header(&head).ok()?;
        Some(SegmentStream {
            r,
            version,
            first_seq,
            chain_in,
            seq: first_seq,
            chain: chain_in,
            pos: SEGMENT_HEADER_LEN as u64,
        })
    }

    /// Continues reading a segment whose header is `head` from byte `pos`, where an earlier
    /// read of it found record `seq` to begin after chain value `chain`; `r` reads from `pos`
    /// on. Every record from there is checked as [`SegmentStream::next`] checks it, against
    /// that chain value. `None` if the header is not valid or the place is not in the segment.
    pub(crate) fn resume(
        head: &[u8; SEGMENT_HEADER_LEN],
        r: R,
        seq: u64,
        chain: Chain,
        pos: u64,
    ) -> Option<SegmentStream<R>> {
        let (version, first_seq, chain_in) = check_segment_header(head).ok()?;
        (seq >= first_seq && pos >= SEGMENT_HEADER_LEN as u64).then_some(SegmentStream {
            r,
            version,
            first_seq,
            chain_in,
            seq,
            chain,
            pos,
        })
    }

    /// The next record, its payload appended to `out`: `Ok(None)` at a clean end of the
    /// file, `Err(())` on any problem (`out` may then hold part of a payload).
    pub(crate) fn next(&mut self, out: &mut Vec<u8>) -> Result<Option<StreamRecord>, ()> {
        let mut h = [0u8; RECORD_HEADER_LEN];
        let got = read_full(&mut self.r, &mut h)?;
        if got == 0 {
            return Ok(None);
        }
        if got < RECORD_HEADER_LEN {
            return Err(());
        }
        let len = check_record_header(&h, self.version, self.seq).map_err(|_| ())?;
        let start = out.len();
        // No reservation by the length: a damaged one must not allocate; the buffer grows as
        // bytes arrive.
        let read = std::io::Read::take(&mut self.r, len as u64)
            .read_to_end(out)
            .map_err(|_| ())?;
        let mut stored = [0u8; CHAIN_LEN];
        if read != len || read_full(&mut self.r, &mut stored)? != CHAIN_LEN {
            return Err(());
        }
        let payload = out.get(start..).unwrap_or_default();
        let after = chain_value(
            self.version,
            &self.chain,
            h.get(0..16).unwrap_or_default(),
            payload,
        );
        if after != stored {
            return Err(());
        }
        let rec = StreamRecord {
            seq: self.seq,
            offset: self.pos,
            prev: self.chain,
            after,
        };
        self.chain = after;
        self.seq += 1;
        self.pos += (RECORD_HEADER_LEN + len + CHAIN_LEN) as u64;
        Ok(Some(rec))
    }
}

/// Fills `buf` as far as the reader goes: the bytes read (short only at the end).
fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> Result<usize, ()> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(buf.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
    Ok(n)
}

/// The payload length in a record header's length word (version 2 keeps a flag in bit 31).
fn record_len(version: u32, word: u32) -> u32 {
    if version >= 2 {
        word & !RECORD_FENCE
    } else {
        word
    }
}

/// A valid record header (magic and header check) at the start of `h`: its length word.
fn valid_header(h: &[u8]) -> Option<u32> {
    let check = blake3::hash(h.get(0..16)?);
    (h.get(0..4)? == RECORD_MAGIC && check.as_bytes().get(..8)? == h.get(16..24)?)
        .then(|| u32_at(h, 4))
        .flatten()
}

/// Whether damage to the record that starts at `at` (the end of the intact records) is a torn
/// tail: true unless a later valid record header proves that an fsync completed after the
/// damaged bytes were written. In a version 2 segment that is a record with the fence flag
/// (written after everything before it was durable); in a version 1 segment, which has no
/// flag, any valid record. If the damaged record's own header is intact, the search starts
/// where that record announces its end, so a header inside its payload does not count.
pub(crate) fn damage_is_tail(bytes: &[u8], at: u64) -> bool {
    let Ok(at) = usize::try_from(at) else {
        return false;
    };
    let version = if at >= SEGMENT_HEADER_LEN {
        u32_at(bytes, 4).unwrap_or(1)
    } else {
        // The segment header itself is damaged: no version to trust, so any valid record
        // counts (the strict version 1 rule).
        1
    };
    let from = bytes
        .get(at..)
        .and_then(valid_header)
        .map(|word| record_len(version, word) as usize)
        .and_then(|len| at.checked_add(RECORD_HEADER_LEN + len + CHAIN_LEN))
        .unwrap_or(at + 1);
    let Some(rest) = bytes.get(from..) else {
        return true;
    };
    !rest
        .windows(RECORD_HEADER_LEN)
        .any(|h| valid_header(h).is_some_and(|word| version == 1 || word & RECORD_FENCE != 0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::wal::{encode_record, genesis_chain, segment_header};

    fn segment(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = segment_header(1, &genesis_chain()).to_vec();
        let mut chain = genesis_chain();
        for (i, p) in payloads.iter().enumerate() {
            chain = encode_record(i as u64 + 1, &chain, p, &mut out);
        }
        out
    }

    #[test]
    fn parses_records_and_chains() {
        let bytes = segment(&[b"one", b"", b"three"]);
        let seg = parse_segment(&bytes).unwrap();
        assert_eq!(seg.records.len(), 3);
        assert_eq!(seg.tail, Tail::Clean);
        assert_eq!(seg.valid_len, bytes.len() as u64);
        assert_eq!(&bytes[seg.records[2].payload.clone()], b"three");
        assert_eq!(seg.records[1].prev, seg.records[0].after);
    }

    #[test]
    fn every_prefix_is_torn_never_corrupt() {
        let bytes = segment(&[b"alpha", b"beta"]);
        let full = parse_segment(&bytes).unwrap();
        for cut in 0..bytes.len() {
            let seg = parse_segment(&bytes[..cut]).unwrap();
            let whole = full
                .records
                .iter()
                .filter(|r| r.payload.end + CHAIN_LEN <= cut)
                .count();
            assert_eq!(seg.records.len(), whole, "cut {cut}");
            if cut != SEGMENT_HEADER_LEN && cut != full.records[0].payload.end + CHAIN_LEN {
                assert!(matches!(seg.tail, Tail::Torn(_)), "cut {cut}");
            }
        }
    }

    #[test]
    fn hostile_length_is_rejected_without_allocating() {
        let mut bytes = segment(&[]);
        let mut head = [0u8; 24];
        head[0..4].copy_from_slice(&RECORD_MAGIC);
        head[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        head[8..16].copy_from_slice(&1u64.to_le_bytes());
        let check = blake3::hash(&head[0..16]);
        head[16..24].copy_from_slice(&check.as_bytes()[..8]);
        bytes.extend_from_slice(&head);
        match parse_segment(&bytes) {
            Err((d, _)) => assert_eq!((d.offset, d.reason), (68, "payload length over the limit")),
            Ok(s) => panic!("accepted {s:?}"),
        }
        // A length within the limit but past the end of the file is a torn tail, found
        // by arithmetic on the file length: nothing is allocated for it.
        head[4..8].copy_from_slice(&MAX_PAYLOAD.to_le_bytes());
        let check = blake3::hash(&head[0..16]);
        head[16..24].copy_from_slice(&check.as_bytes()[..8]);
        let mut bytes = segment(&[]);
        bytes.extend_from_slice(&head);
        assert_eq!(parse_segment(&bytes).unwrap().tail, Tail::Torn(64));
    }

    /// Records 1..=3 of a segment of `version`; `fenced` says which carry the fence flag.
    fn records(version: u32, fenced: [bool; 3]) -> (Vec<u8>, Vec<usize>) {
        let mut out = segment_header(1, &genesis_chain()).to_vec();
        out[4..8].copy_from_slice(&version.to_le_bytes());
        let check = blake3::hash(&out[0..48]);
        out[48..64].copy_from_slice(&check.as_bytes()[..16]);
        let mut chain = genesis_chain();
        let mut starts = Vec::new();
        for (i, fence) in fenced.into_iter().enumerate() {
            starts.push(out.len());
            let payload = [i as u8; 40];
            chain = super::super::writer::encode_as(
                version,
                i as u64 + 1,
                &chain,
                &payload,
                fence,
                &mut out,
            );
        }
        (out, starts)
    }

    /// Version 3 chains leave the fence bit out: the same records fenced or not have the same
    /// chain values. Versions 1 and 2 are read with their own rule (a version 2 segment with
    /// fenced records read by the version 3 rule does not verify: the control that the rule
    /// is chosen by the segment's version).
    #[test]
    fn the_chain_rule_follows_the_segment_version() {
        let chains = |bytes: &[u8]| -> Vec<Chain> {
            parse_segment(bytes)
                .unwrap()
                .records
                .iter()
                .map(|r| r.after)
                .collect()
        };
        let (all, _) = records(3, [true, true, true]);
        let (none, _) = records(3, [false, false, false]);
        let (mixed, _) = records(3, [true, false, true]);
        assert_eq!(chains(&all), chains(&none));
        assert_eq!(chains(&mixed), chains(&none));
        assert_ne!(all, none, "the fence flags differ in the bytes");
        // Version 2: the flag is chained, so fenced and unfenced chains differ.
        let (v2_all, _) = records(2, [true, true, true]);
        let (v2_none, _) = records(2, [false, false, false]);
        assert_ne!(chains(&v2_all), chains(&v2_none));
        assert_eq!(chains(&v2_none), chains(&none), "no fence: the rules agree");
        let mut relabelled = v2_all.clone();
        relabelled[4..8].copy_from_slice(&3u32.to_le_bytes());
        let check = blake3::hash(&relabelled[0..48]);
        relabelled[48..64].copy_from_slice(&check.as_bytes()[..16]);
        assert!(parse_segment(&relabelled).is_err());
    }

    #[test]
    fn replica_records_verify_against_the_chain_before_them() {
        let g = genesis_chain();
        let mut seg = Vec::new();
        let c1 = crate::wal::encode_record_fenced(1, &g, b"one", &mut seg);
        let r1 = crate::wal::replica_record(1, b"one", &c1);
        assert_eq!(read_replica_record(&r1, &g, 1), Ok((1, &b"one"[..], c1)));
        // Its bytes are the log record's with the fence bit clear.
        let mut unfenced = seg.clone();
        unfenced[7] &= 0x7f;
        let check = blake3::hash(&unfenced[0..16]);
        unfenced[16..24].copy_from_slice(&check.as_bytes()[..8]);
        assert_eq!(r1, unfenced);
        assert_eq!(
            read_replica_record(&r1, &g, 2),
            Err(ReplicaDamage::Sequence(1))
        );
        assert_eq!(read_replica_record(&r1, &c1, 1), Err(ReplicaDamage::Chain));
        let mut bad = r1.clone();
        bad[RECORD_HEADER_LEN] ^= 1;
        assert_eq!(read_replica_record(&bad, &g, 1), Err(ReplicaDamage::Chain));
        let mut bad = r1.clone();
        bad[2] ^= 1;
        assert!(matches!(
            read_replica_record(&bad, &g, 1),
            Err(ReplicaDamage::Malformed(_))
        ));
        assert!(matches!(
            read_replica_record(&r1[..r1.len() - 1], &g, 1),
            Err(ReplicaDamage::Malformed(_))
        ));
        assert!(matches!(
            read_replica_record(&seg, &g, 1),
            Err(ReplicaDamage::Malformed(_))
        ));
        assert!(matches!(
            read_replica_record(&[], &g, 1),
            Err(ReplicaDamage::Malformed(_))
        ));
    }

    #[test]
    fn damage_is_a_tail_unless_a_fenced_record_follows() {
        // Versions 2 and 3: damage in record 2 followed by record 3.
        for (version, fence3, tail) in [
            (2, false, true),
            (2, true, false),
            (3, false, true),
            (3, true, false),
        ] {
            let (mut bytes, starts) = records(version, [true, false, fence3]);
            assert!(parse_segment(&bytes).is_ok());
            bytes[starts[1] + 30] ^= 1; // record 2's payload
            let (d, partial) = parse_segment(&bytes).unwrap_err();
            assert_eq!(partial.unwrap().valid_len, starts[1] as u64);
            assert!(d.offset > starts[1] as u64);
            assert_eq!(
                damage_is_tail(&bytes, starts[1] as u64),
                tail,
                "fence {fence3}"
            );
        }
        // Version 1 has no flag: any valid record after the damage makes it Corrupt.
        let (mut bytes, starts) = records(1, [false, false, false]);
        assert!(parse_segment(&bytes).is_ok());
        bytes[starts[1] + 30] ^= 1;
        assert!(!damage_is_tail(&bytes, starts[1] as u64));
        // A damaged header makes the scan start just after it, so a fenced record still counts.
        let (mut bytes, starts) = records(2, [true, false, true]);
        bytes[starts[1] + 2] ^= 1;
        assert!(!damage_is_tail(&bytes, starts[1] as u64));
        // Zeros after the last record: a tail in every version.
        for version in [1, 2, 3] {
            let (mut bytes, _) = records(version, [true, true, true]);
            let end = bytes.len() as u64;
            bytes.extend_from_slice(&[0; 600]);
            assert!(damage_is_tail(&bytes, end), "version {version}");
        }
    }

    #[test]
    fn a_header_inside_a_damaged_payload_does_not_count() {
        // Record 2's payload holds a well-formed fenced header; record 2's chain is damaged.
        let mut out = segment_header(1, &genesis_chain()).to_vec();
        let mut chain = genesis_chain();
        chain = crate::wal::encode_record_fenced(1, &chain, b"first", &mut out);
        let mut inner = Vec::new();
        crate::wal::encode_record_fenced(9, &[0; 32], b"", &mut inner);
        let start = out.len();
        encode_record(2, &chain, &inner, &mut out);
        let last = out.len() - 1;
        out[last] ^= 1;
        assert!(parse_segment(&out).is_err());
        assert!(damage_is_tail(&out, start as u64));
    }
}

/// A replica record ([`super::replica_record`]) read and checked against the chain value
/// before it: `(sequence number, payload, chain value after it)`, or why it does not verify.
/// `expect_seq` is the sequence number the reader needs next; a record numbered otherwise is
/// reported as such (the caller tells a duplicate from a gap).
pub fn read_replica_record<'a>(
    bytes: &'a [u8],
    prev: &Chain,
    expect_seq: u64,
) -> Result<(u64, &'a [u8], Chain), ReplicaDamage> {
    let h = bytes
        .get(..RECORD_HEADER_LEN)
        .ok_or(ReplicaDamage::Malformed("shorter than a record header"))?;
    let seq = u64_at(h, 8).unwrap_or(0);
    if seq != expect_seq {
        // Checked first so that a caller can skip a duplicate it has already applied; a
        // record that is not where it belongs is not verified further.
        check_record_header(h, WAL_VERSION, seq)
            .map_err(|(_, why)| ReplicaDamage::Malformed(why))?;
        return Err(ReplicaDamage::Sequence(seq));
    }
    let len = check_record_header(h, WAL_VERSION, seq)
        .map_err(|(_, why)| ReplicaDamage::Malformed(why))?;
    if u32_at(h, 4).is_some_and(|w| w & RECORD_FENCE != 0) {
        return Err(ReplicaDamage::Malformed(
            "a replica record carries no fence flag",
        ));
    }
    if bytes.len() != RECORD_HEADER_LEN + len + CHAIN_LEN {
        return Err(ReplicaDamage::Malformed(
            "its length differs from the payload length in its header",
        ));
    }
    let payload = bytes
        .get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len)
        .unwrap_or_default();
    let mut stored = [0u8; CHAIN_LEN];
    stored.copy_from_slice(
        bytes
            .get(RECORD_HEADER_LEN + len..)
            .unwrap_or(&[0; CHAIN_LEN]),
    );
    let computed = chain_value(WAL_VERSION, prev, h.get(0..16).unwrap_or_default(), payload);
    if computed != stored {
        return Err(ReplicaDamage::Chain);
    }
    Ok((seq, payload, stored))
}

/// Why a replica record was refused ([`read_replica_record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaDamage {
    /// Not a well-formed record.
    Malformed(&'static str),
    /// Well formed, but numbered this instead of the sequence number expected.
    Sequence(u64),
    /// Its chain value does not follow from the chain value before it and its bytes: the
    /// record was altered, or it does not continue this log.
    Chain,
}
