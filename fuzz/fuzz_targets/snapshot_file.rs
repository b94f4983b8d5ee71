//! `snapshot::decode` on any bytes. The first input byte picks a mode: even, the rest is the
//! file as is; odd, the rest gets a valid section checksum, recorded state hash (when the body
//! decodes) and header checksum first (docs/FORMAT.md §9), so mutations reach the kernel
//! decoder and the checks behind the checksums.
//!
//! Oracles: no panic, no allocation sized by a hostile length; an accepted snapshot
//! re-encodes (`snapshot::encode(seq, &chain, &kernel)`) to exactly the input and records the
//! kernel's state hash; with fixed-up checksums, a body the kernel decoder accepts whose
//! section length matches the file is accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valori_engine::snapshot;
use valori_fuzz::fixup;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut file = rest.to_vec();
    let must_accept = mode & 1 == 1 && fixup::snapshot_file(&mut file);
    match snapshot::decode(&file) {
        Ok(snap) => {
            assert_eq!(snap.state_hash, snap.kernel.state_hash());
            let again = snapshot::encode(snap.seq, &snap.chain, &snap.kernel);
            assert!(
                again == file,
                "an accepted snapshot re-encodes to other bytes"
            );
        }
        Err((offset, reason)) => {
            assert!(
                !must_accept,
                "a consistent snapshot was refused at {offset}: {reason}"
            );
        }
    }
});
