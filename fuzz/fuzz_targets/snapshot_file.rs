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
use valori_engine::snapshot::{self, SECTION_KERNEL, SNAPSHOT_HEADER_LEN};
use valori_kernel::Kernel;

/// Rewrites the checksums and the recorded state hash; returns whether the body is a state
/// the kernel decoder accepts and the section length matches the file.
fn fix_checksums(file: &mut [u8]) -> bool {
    let body_at = SNAPSHOT_HEADER_LEN + 16;
    let Some(len) = file
        .get(SNAPSHOT_HEADER_LEN + 8..body_at)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
    else {
        return false;
    };
    let mut consistent = false;
    if let Some(end) = usize::try_from(len)
        .ok()
        .and_then(|l| body_at.checked_add(l))
    {
        if let Some(body) = file.get(body_at..end) {
            let mut h = blake3::Hasher::new();
            h.update(&file[SNAPSHOT_HEADER_LEN..SNAPSHOT_HEADER_LEN + 4]);
            h.update(&[0; 4]);
            h.update(&len.to_le_bytes());
            h.update(body);
            let check = *h.finalize().as_bytes();
            let state = Kernel::from_bytes(body).ok().map(|k| k.state_hash());
            let kind = file
                .get(SNAPSHOT_HEADER_LEN..SNAPSHOT_HEADER_LEN + 8)
                .map(|s| s[..4] == SECTION_KERNEL.to_le_bytes() && s[4..] == [0; 4]);
            if let Some(stored) = file.get_mut(end..end + 32) {
                stored.copy_from_slice(&check);
                consistent = end + 32 == file.len() && kind == Some(true);
            }
            match state {
                Some(hash) => file[56..88].copy_from_slice(&hash),
                None => consistent = false,
            }
        }
    }
    let check = blake3::hash(&file[..88]);
    file[88..120].copy_from_slice(check.as_bytes());
    let version_ok = file[8..12] == 1u32.to_le_bytes() && file[12..16] == 1u32.to_le_bytes();
    consistent && version_ok && file[..8] == snapshot::SNAPSHOT_MAGIC
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut file = rest.to_vec();
    let must_accept = mode & 1 == 1 && fix_checksums(&mut file);
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
