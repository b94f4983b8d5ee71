//! Portable snapshots refuse every damaged byte string: every single-bit flip of a snapshot
//! of a 50-record state (records, metadata, graph) is `Corrupt`, for every metric, on the
//! growable and the caller-memory restore. Control: the bare state encoding, which the frame
//! protects, accepts some of the same flips as a different valid state.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use valori_kernel::{Capacity, Command, Config, ErrorCode, Fxp, Kernel, Metric, SNAPSHOT_OVERHEAD};

fn state(metric: Metric) -> Kernel<'static> {
    let mut k = Kernel::new(Config::new(3, metric).unwrap()).unwrap();
    for i in 0..50i32 {
        let v = [Fxp(i * 1000 + 1), Fxp(-i * 77), Fxp(65536 - i)];
        let meta = [i as u8; 3];
        k.apply(&Command::Insert {
            id: None,
            tag: (i % 3 == 0).then_some(i as u64),
            vector: v[..].into(),
            meta: &meta[..(i % 4) as usize],
        })
        .unwrap();
    }
    for r in [1u64, 7] {
        k.apply(&Command::CreateNode {
            id: None,
            kind: 2,
            record: Some(r),
            label: b"cup",
        })
        .unwrap();
    }
    k.apply(&Command::CreateEdge {
        id: None,
        kind: 1,
        from: 0,
        to: 1,
        weight: Some(Fxp(1 << 15)),
    })
    .unwrap();
    k
}

const CAP: Capacity = Capacity {
    records: 64,
    nodes: 8,
    edges: 8,
    meta_bytes: 256,
    label_bytes: 64,
};

#[test]
fn snapshots_round_trip_with_the_same_hash() {
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let k = state(metric);
        let snap = k.snapshot();
        assert_eq!(snap.len() as u64, k.snapshot_len());
        assert_eq!(snap.len(), k.to_bytes().len() + SNAPSHOT_OVERHEAD);
        let mut buf = vec![0u8; snap.len()];
        assert_eq!(k.write_snapshot(&mut buf).unwrap(), snap.len());
        assert_eq!(buf, snap);
        assert_eq!(
            Kernel::from_snapshot(&snap).unwrap().state_hash(),
            k.state_hash()
        );
        let mut mem = vec![0u8; Kernel::mem_size(k.config(), CAP).unwrap()];
        let r = Kernel::from_snapshot_in(&snap, CAP, &mut mem).unwrap();
        assert_eq!(r.state_hash(), k.state_hash());
    }
}

#[test]
fn a_short_buffer_is_reported_and_left_untouched() {
    let k = state(Metric::L2);
    let mut buf = vec![0xa5u8; k.snapshot_len() as usize - 1];
    let e = k.write_snapshot(&mut buf).unwrap_err();
    assert_eq!(
        e,
        valori_kernel::Error::InsufficientSize {
            needed: k.snapshot_len()
        }
    );
    assert!(buf.iter().all(|&b| b == 0xa5));
}

#[test]
fn every_single_bit_flip_is_refused() {
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let k = state(metric);
        let snap = k.snapshot();
        let mut mem = vec![0u8; Kernel::mem_size(k.config(), CAP).unwrap()];
        let mut flipped = snap.clone();
        for bit in 0..snap.len() * 8 {
            flipped[bit / 8] ^= 1 << (bit % 8);
            let e = Kernel::from_snapshot(&flipped).unwrap_err();
            assert_eq!(e.code(), ErrorCode::Corrupt, "{metric:?} bit {bit}: {e}");
            let e = Kernel::from_snapshot_in(&flipped, CAP, &mut mem).unwrap_err();
            assert_eq!(e.code(), ErrorCode::Corrupt, "{metric:?} bit {bit}: {e}");
            flipped[bit / 8] ^= 1 << (bit % 8);
        }
        // Truncations and extensions too.
        for cut in 0..snap.len() {
            assert!(Kernel::from_snapshot(&snap[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = snap.clone();
        longer.push(0);
        assert!(Kernel::from_snapshot(&longer).is_err());
    }
}

#[test]
fn control_the_bare_encoding_accepts_some_flips() {
    let k = state(Metric::L2);
    let bytes = k.to_bytes();
    let mut accepted = 0;
    let mut flipped = bytes.clone();
    for bit in 0..bytes.len() * 8 {
        flipped[bit / 8] ^= 1 << (bit % 8);
        if let Ok(other) = Kernel::from_bytes(&flipped) {
            assert_ne!(other.state_hash(), k.state_hash());
            accepted += 1;
        }
        flipped[bit / 8] ^= 1 << (bit % 8);
    }
    assert!(
        accepted > 100,
        "only {accepted} flips accepted by the bare decoder"
    );
}
