//! `wal::check_segment` on any bytes. The first input byte picks a mode: even, the rest is
//! the segment as is; odd, the rest gets valid checksums first (`fixup::wal_segment`: segment
//! header check, each record's header check and chain value, from docs/FORMAT.md §8), so the
//! fuzzer reaches the length, sequence and tail logic behind the checksums.
//!
//! Oracles: no panic; no allocation sized by a record length; every prefix of an accepted
//! segment is accepted with the same records or one fewer; the bytes before the first damage
//! are accepted; with fixed-up checksums an accepted segment's records are all intact; the
//! streaming reader (`valori verify`) reads exactly the intact records and reaches a clean
//! end exactly when the whole-file reader finds the segment clean.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valori_engine::wal::{check_segment, intact_records, stream_segment, SEGMENT_HEADER_LEN};
use valori_fuzz::fixup;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut seg = rest.to_vec();
    let fixed = mode & 1 == 1;
    if fixed {
        fixup::wal_segment(&mut seg);
    }
    let (streamed, clean_end) = stream_segment(&seg);
    assert_eq!(
        streamed,
        intact_records(&seg),
        "the streaming reader disagrees"
    );
    let clean = matches!(check_segment(&seg), Ok((_, false))) && seg.len() >= SEGMENT_HEADER_LEN;
    assert_eq!(clean_end, clean, "the streaming reader's end disagrees");
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
