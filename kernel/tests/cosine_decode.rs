//! Decoding a cosine-metric state accepts exactly the vectors normalisation can store: every
//! encoder output (including the ones normalisation would move again: it is not idempotent)
//! and no all-zero or non-unit vector.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use valori_kernel::{fxp, Capacity, Command, Config, Error, Fxp, Kernel, Metric, Words};

const ONE: i32 = 1 << 16;

/// A deterministic xorshift generator (no dependency, same sequence everywhere).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn kernel_with(metric: Metric, vectors: &[Vec<Fxp>]) -> Kernel<'static> {
    let dim = vectors[0].len() as u32;
    let mut k = Kernel::new(Config::new(dim, metric).unwrap()).unwrap();
    for v in vectors {
        k.apply(&Command::Insert {
            id: None,
            tag: None,
            vector: Words::Native(v),
            meta: &[],
        })
        .unwrap();
    }
    k
}

/// Both decoders (growable and caller memory) on `bytes`, each re-encoding what it decoded.
fn decode_both(bytes: &[u8]) -> [Result<Vec<u8>, Error>; 2] {
    let grow = Kernel::from_bytes(bytes).map(|k| k.to_bytes());
    let records = u32::from_le_bytes(bytes[37..41].try_into().unwrap());
    let cap = Capacity {
        records,
        nodes: 0,
        edges: 0,
        meta_bytes: 0,
        label_bytes: 0,
    };
    let dim = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let config = Config::new(dim, Metric::L2).unwrap();
    let mut mem = vec![0u8; Kernel::mem_size(config, cap).unwrap()];
    let fixed = Kernel::from_bytes_in(bytes, cap, &mut mem).map(|k| k.to_bytes());
    [grow, fixed]
}

/// Offset of record `i`'s vector in an encoding with no metadata.
fn vector_offset(i: usize, dim: usize) -> u64 {
    let header = 4 + 4 + 4 + 1 + 3 * 8 + 8;
    let record = 8 + 1 + 8 + 4 + 4 * dim;
    (header + i * record + record - 4 * dim) as u64
}

#[test]
fn every_stored_cosine_vector_decodes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut moved_again = 0;
    for dim in [1usize, 2, 3, 5, 8, 33, 384, 4096] {
        let rows = if dim > 100 { 20 } else { 400 };
        let mut vectors = Vec::new();
        for i in 0..rows {
            let mut v: Vec<Fxp> = (0..dim)
                .map(|_| {
                    let r = rng.next();
                    Fxp(match i % 4 {
                        0 => (r as i64 % i64::from(ONE)) as i32,
                        1 => (r as i64 % 3) as i32,
                        2 => r as i32,
                        _ => (r as i64 % (1 << 22)) as i32,
                    })
                })
                .collect();
            v[0] = Fxp(v[0].0 | 1); // never all zero
            let mut w = v.clone();
            fxp::normalize(&mut w).unwrap();
            let mut again = w.clone();
            fxp::normalize(&mut again).unwrap();
            moved_again += usize::from(again != w);
            vectors.push(v);
        }
        let k = kernel_with(Metric::Cosine, &vectors);
        let bytes = k.to_bytes();
        for got in decode_both(&bytes) {
            assert!(got.as_ref() == Ok(&bytes), "dim {dim}: {:?}", got.err());
        }
    }
    // The sample holds stored vectors that are not fixed points of normalisation, so a
    // fixed-point test in the decoder would have refused some of them.
    assert!(moved_again > 0);
}

#[test]
fn a_known_non_fixed_point_decodes() {
    let mut found = None;
    // Search a small deterministic family for a stored vector normalisation moves again.
    'search: for a in 1..400 {
        for b in 1..400 {
            let v = vec![Fxp(a * 977), Fxp(b * 1013)];
            let mut w = v.clone();
            fxp::normalize(&mut w).unwrap();
            let mut again = w.clone();
            fxp::normalize(&mut again).unwrap();
            if again != w {
                found = Some(v);
                break 'search;
            }
        }
    }
    let v = found.expect("the family holds a stored vector normalisation moves again");
    let bytes = kernel_with(Metric::Cosine, &[v]).to_bytes();
    for got in decode_both(&bytes) {
        assert!(got.as_ref() == Ok(&bytes), "{:?}", got.err());
    }
}

/// An L2 state holding `bad` after one good vector, and the same bytes marked cosine.
fn l2_and_cosine(bad: &[i32]) -> (Vec<u8>, Vec<u8>) {
    let good: Vec<Fxp> = (0..bad.len())
        .map(|i| Fxp(if i == 0 { ONE } else { 0 }))
        .collect();
    let bad: Vec<Fxp> = bad.iter().map(|&x| Fxp(x)).collect();
    let k = kernel_with(Metric::L2, &[good, bad]);
    let l2 = k.to_bytes();
    let mut cosine = l2.clone();
    assert_eq!(cosine[12], Metric::L2 as u8);
    cosine[12] = Metric::Cosine as u8;
    (l2, cosine)
}

#[test]
fn vectors_normalisation_cannot_store_are_corrupt() {
    let cases: [&[i32]; 7] = [
        &[ONE, ONE],           // length sqrt(2)
        &[0, 0],               // all zero
        &[0, 0, 0, 0, 0, 0],   // all zero, more components
        &[ONE + 2, 0],         // just too long
        &[ONE - 2, 0],         // just too short
        &[ONE / 2, ONE / 2],   // length 0.707
        &[i32::MIN, i32::MAX], // extremes
    ];
    for bad in cases {
        let (l2, cosine) = l2_and_cosine(bad);
        // Control: the same vector is a valid L2 state.
        for got in decode_both(&l2) {
            assert!(got.as_ref() == Ok(&l2), "{bad:?} as L2: {:?}", got.err());
        }
        let want = Err(Error::Corrupt {
            offset: vector_offset(1, bad.len()),
            reason: "a cosine-metric vector that normalisation cannot produce",
        });
        for got in decode_both(&cosine) {
            assert_eq!(got, want, "{bad:?} as cosine");
        }
    }
}

#[test]
fn unit_vectors_on_the_rounding_boundary_decode() {
    // (1, 0) and (0.6, 0.8) rounded, and their negations: what normalisation stores.
    for good in [[ONE, 0], [39322, 52429], [-ONE, 0], [-39322, -52429]] {
        let (_, cosine) = l2_and_cosine(&good);
        for got in decode_both(&cosine) {
            assert!(got.as_ref() == Ok(&cosine), "{good:?}: {:?}", got.err());
        }
    }
}
