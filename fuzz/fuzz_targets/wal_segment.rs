//! `wal::check_segment` on any bytes. The first input byte picks a mode: even, the rest is
//! the segment as is; odd, the rest gets valid checksums first (segment header check, each
//! record's header check and chain value, computed here from docs/FORMAT.md §8), so the
//! fuzzer reaches the length, sequence and tail logic behind the checksums.
//!
//! Oracles: no panic; no allocation sized by a record length; every prefix of an accepted
//! segment is accepted with the same records or one fewer; the bytes before the first damage
//! are accepted; with fixed-up checksums an accepted segment's records are all intact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valori_engine::wal::{
    check_segment, CHAIN_LEN, MAX_PAYLOAD, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Rewrites every checksum a reader verifies, walking the records the way the reader does.
fn fix_checksums(seg: &mut [u8]) {
    let Some(head) = seg.get_mut(..SEGMENT_HEADER_LEN) else {
        return;
    };
    let check = blake3::hash(&head[..48]);
    head[48..64].copy_from_slice(&check.as_bytes()[..16]);
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&head[16..48]);
    let mut pos = SEGMENT_HEADER_LEN;
    while let Some(h) = seg.get_mut(pos..pos + RECORD_HEADER_LEN) {
        let check = blake3::hash(&h[..16]);
        h[16..24].copy_from_slice(&check.as_bytes()[..8]);
        let Some(len) = le_u32(seg, pos + 4) else {
            return;
        };
        if len > MAX_PAYLOAD {
            return;
        }
        let end = pos + RECORD_HEADER_LEN + len as usize;
        let Some(payload) = seg.get(pos + RECORD_HEADER_LEN..end) else {
            return;
        };
        let mut hasher = blake3::Hasher::new();
        hasher.update(&chain);
        hasher.update(&seg[pos..pos + 16]);
        hasher.update(payload);
        chain = *hasher.finalize().as_bytes();
        let Some(stored) = seg.get_mut(end..end + CHAIN_LEN) else {
            return;
        };
        stored.copy_from_slice(&chain);
        pos = end + CHAIN_LEN;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut seg = rest.to_vec();
    let fixed = mode & 1 == 1;
    if fixed {
        fix_checksums(&mut seg);
    }
    match check_segment(&seg) {
        Ok((records, torn)) => {
            if let Some(cut) = seg.len().checked_sub(1) {
                match check_segment(&seg[..cut]) {
                    Ok((n, _)) => assert!(
                        n == records || n + 1 == records,
                        "a prefix has {n} records, the whole {records}"
                    ),
                    Err(e) => panic!("a prefix of an accepted segment is damaged: {e:?}"),
                }
            }
            if !torn && seg.len() >= SEGMENT_HEADER_LEN {
                assert!(records > 0 || seg.len() == SEGMENT_HEADER_LEN);
            }
        }
        Err((offset, reason)) => {
            let offset = usize::try_from(offset).unwrap_or(usize::MAX);
            assert!(
                offset < seg.len(),
                "damage at {offset} past the end: {reason}"
            );
            if let Err(e) = check_segment(&seg[..offset]) {
                panic!("damage at {offset} ({reason}), yet the bytes before it are damaged: {e:?}");
            }
            if fixed {
                assert!(
                    !reason.contains("checksum"),
                    "checksums were fixed up, yet: {reason} at {offset}"
                );
            }
        }
    }
});
