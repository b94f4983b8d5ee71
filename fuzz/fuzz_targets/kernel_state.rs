//! `Kernel::from_bytes` (the snapshot body) on any bytes. Oracles: no panic, no allocation
//! sized by a hostile count; an accepted state re-encodes to exactly the input, its length
//! hint is exact, its hash is stable, and the same bytes restored into caller memory
//! (`from_bytes_in`, the embedded path) give the same hash and encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valori_kernel::{Capacity, Kernel};

fuzz_target!(|data: &[u8]| {
    let Ok(k) = Kernel::from_bytes(data) else {
        return;
    };
    assert_eq!(
        k.to_bytes(),
        data,
        "accepted state re-encodes to other bytes"
    );
    assert_eq!(k.encoded_len(), data.len() as u64);
    assert_eq!(k.encoded_len_hint(), data.len() as u64);
    let hash = k.state_hash();
    assert_eq!(k.state_hash(), hash);

    // The embedded path: exactly the capacity the state needs.
    let bytes_of = |n: usize| u32::try_from(n).ok();
    let meta: usize = k.records().map(|r| r.meta.len()).sum();
    let labels: usize = k.nodes().map(|n| n.label.len()).sum();
    let (Some(records), Some(nodes), Some(edges), Some(meta_bytes), Some(label_bytes)) = (
        bytes_of(k.len()),
        bytes_of(k.node_count()),
        bytes_of(k.edge_count()),
        bytes_of(meta),
        bytes_of(labels),
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
    let Some(size) = Kernel::mem_size(k.config(), cap) else {
        return;
    };
    if size > 64 << 20 {
        return;
    }
    let mut mem = vec![0u8; size];
    match Kernel::from_bytes_in(data, cap, &mut mem) {
        Ok(fixed) => {
            assert_eq!(
                fixed.state_hash(),
                hash,
                "caller-memory kernel hashes differently"
            );
            assert_eq!(fixed.to_bytes(), data);
        }
        Err(e) => panic!("a state that fits its exact capacity was refused: {e}"),
    }
});
