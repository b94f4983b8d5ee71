//! Checksum fix-ups: rewrite the checksums a reader verifies around whatever bytes a file holds
//! (computed here from `docs/FORMAT.md`, independently of the writers), so that mutated inputs
//! reach the checks behind the checksums.

use valori_engine::snapshot::{SECTION_KERNEL, SNAPSHOT_HEADER_LEN, SNAPSHOT_MAGIC};
use valori_engine::wal::{
    CHAIN_LEN, MAX_PAYLOAD, RECORD_FENCE, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use valori_kernel::{Kernel, SNAPSHOT_OVERHEAD, STATE_HASH_DOMAIN};

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A WAL segment (§8): the header check, then each record's header check and chain value,
/// walking the records as the reader does (versions 2 and 3 keep the fence flag in bit 31 of
/// the length word; version 3 leaves it out of the chain value).
pub fn wal_segment(seg: &mut [u8]) {
    let Some(head) = seg.get_mut(..SEGMENT_HEADER_LEN) else {
        return;
    };
    let check = blake3::hash(&head[..48]);
    head[48..64].copy_from_slice(&check.as_bytes()[..16]);
    let version = le_u32(head, 4).unwrap_or(0);
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&head[16..48]);
    let mut pos = SEGMENT_HEADER_LEN;
    while let Some(h) = seg.get_mut(pos..pos + RECORD_HEADER_LEN) {
        let check = blake3::hash(&h[..16]);
        h[16..24].copy_from_slice(&check.as_bytes()[..8]);
        let Some(word) = le_u32(seg, pos + 4) else {
            return;
        };
        let len = if version >= 2 {
            word & !RECORD_FENCE
        } else {
            word
        };
        if len > MAX_PAYLOAD {
            return;
        }
        let end = pos + RECORD_HEADER_LEN + len as usize;
        let Some(payload) = seg.get(pos + RECORD_HEADER_LEN..end) else {
            return;
        };
        let mut head16 = [0u8; 16];
        head16.copy_from_slice(&seg[pos..pos + 16]);
        if version >= 3 {
            head16[7] &= 0x7f; // version 3 chains the length word without the fence flag
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&chain);
        hasher.update(&head16);
        hasher.update(payload);
        chain = *hasher.finalize().as_bytes();
        let Some(stored) = seg.get_mut(end..end + CHAIN_LEN) else {
            return;
        };
        stored.copy_from_slice(&chain);
        pos = end + CHAIN_LEN;
    }
}

/// A snapshot file (§9): the section checksum, the recorded state hash (when the body
/// decodes) and the header checksum. Returns whether the file is then consistent: magic,
/// version, one kernel section whose length matches the file, a body the kernel accepts.
pub fn snapshot_file(file: &mut [u8]) -> bool {
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
            let section = &file[SNAPSHOT_HEADER_LEN..SNAPSHOT_HEADER_LEN + 8];
            let kind_ok = section[..4] == SECTION_KERNEL.to_le_bytes() && section[4..] == [0; 4];
            if let Some(stored) = file.get_mut(end..end + 32) {
                stored.copy_from_slice(&check);
                consistent = end + 32 == file.len() && kind_ok;
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
    // Sequence numbers end at MAX_SEQ (docs/FORMAT.md §8): one past it is damage.
    let seq_ok = file
        .get(16..24)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .is_some_and(|seq| seq <= valori_engine::wal::MAX_SEQ);
    consistent && version_ok && seq_ok && file[..8] == SNAPSHOT_MAGIC
}

/// A portable kernel snapshot (§13): the frame's length and state hash around whatever
/// encoding it holds.
pub fn kernel_snapshot(snap: &mut [u8]) {
    const HEAD: usize = 16;
    let Some(len) = snap.len().checked_sub(SNAPSHOT_OVERHEAD) else {
        return;
    };
    snap[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    let mut h = blake3::Hasher::new();
    h.update(&STATE_HASH_DOMAIN);
    h.update(&snap[HEAD..HEAD + len]);
    snap[HEAD + len..].copy_from_slice(h.finalize().as_bytes());
}
