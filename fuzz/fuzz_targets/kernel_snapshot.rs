//! `Kernel::from_snapshot` (the portable, self-verifying snapshot of `valori_kernel_snapshot`,
//! docs/FORMAT.md §13) on any bytes. The first input byte picks a mode: even, the rest is the
//! snapshot as is; odd, the rest gets a valid frame length and state hash first, so mutations
//! reach the state decoder behind the hash.
//!
//! Oracles: no panic, no allocation sized by a hostile length; an accepted snapshot re-encodes
//! (`Kernel::snapshot`) to exactly the input; restoring it into caller memory of the exact
//! capacity gives the same state; with a fixed-up frame, the snapshot is accepted exactly when
//! its encoding is (`Kernel::from_bytes`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use valori_fuzz::fixup;
use valori_kernel::{Capacity, Kernel, SNAPSHOT_OVERHEAD};

const HEAD: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut snap = rest.to_vec();
    let fixed = mode & 1 == 1;
    if fixed {
        fixup::kernel_snapshot(&mut snap);
    }
    let restored = Kernel::from_snapshot(&snap);
    if fixed && snap.len() >= SNAPSHOT_OVERHEAD && snap[..8] == [b'V', b'L', b'R', b'P', 1, 0, 0, 0]
    {
        let body = &snap[HEAD..snap.len() - 32];
        assert_eq!(
            restored.is_ok(),
            Kernel::from_bytes(body).is_ok(),
            "a well-framed snapshot and its encoding disagree"
        );
    }
    let Ok(k) = restored else {
        return;
    };
    assert!(
        k.snapshot() == snap,
        "an accepted snapshot re-encodes to other bytes"
    );
    assert_eq!(k.snapshot_len(), snap.len() as u64);
    let meta: usize = k.records().map(|r| r.meta.len()).sum();
    let labels: usize = k.nodes().map(|n| n.label.len()).sum();
    let n = |x: usize| u32::try_from(x).ok();
    let (Some(records), Some(nodes), Some(edges), Some(meta_bytes), Some(label_bytes)) = (
        n(k.len()),
        n(k.node_count()),
        n(k.edge_count()),
        n(meta),
        n(labels),
    ) else {
        return;
    };
    let cap = Capacity {
        records,
        nodes,
        edges,
        meta_bytes,
        label_bytes,
    };
    let Some(size) = Kernel::mem_size(k.config(), cap).filter(|&s| s <= 64 << 20) else {
        return;
    };
    let mut mem = vec![0u8; size];
    match Kernel::from_snapshot_in(&snap, cap, &mut mem) {
        Ok(fixed_k) => assert_eq!(fixed_k.state_hash(), k.state_hash()),
        Err(e) => panic!("a snapshot that fits its exact capacity was refused: {e}"),
    }
});
