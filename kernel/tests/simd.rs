//! Every SIMD backend this CPU runs gives the scalar reference's result bit for bit, and every
//! search path (narrow or wide store, narrow or wide query, single or batch) gives the 128-bit
//! brute force's results. CI runs this file on x86_64 (AVX2) and on aarch64 (NEON) under QEMU.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use proptest::prelude::*;
use valori_kernel::simd::{self, Backend, NARROW_MAX};
use valori_kernel::{fxp, Command, Config, Fxp, Hit, Kernel, Metric};

const N: i32 = NARROW_MAX as i32;

fn exact_dot(x: &[i16], q: &[i16]) -> i64 {
    let s: i128 = x
        .iter()
        .zip(q)
        .map(|(&a, &b)| i128::from(a) * i128::from(b))
        .sum();
    i64::try_from(s).unwrap()
}

fn exact_l2(x: &[i16], q: &[i16]) -> i64 {
    let s: i128 = x
        .iter()
        .zip(q)
        .map(|(&a, &b)| (i128::from(a) - i128::from(b)).pow(2))
        .sum();
    i64::try_from(s).unwrap()
}

fn max16(v: &[i16]) -> u32 {
    v.iter().map(|x| x.unsigned_abs() as u32).max().unwrap_or(0)
}

/// Narrow components: mostly anywhere in range, often at the extremes.
fn narrow() -> impl Strategy<Value = i16> {
    prop_oneof![
        4 => (-N..=N).prop_map(|v| v as i16),
        1 => Just(N as i16),
        1 => Just(-N as i16),
        1 => -3i16..=3,
    ]
}

fn pair16(max_len: usize) -> impl Strategy<Value = (Vec<i16>, Vec<i16>)> {
    (0..=max_len).prop_flat_map(|n| {
        (
            prop::collection::vec(narrow(), n),
            prop::collection::vec(narrow(), n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn dot_i16_matches_scalar((x, q) in pair16(100)) {
        let g = simd::narrow_group(max16(&x), max16(&q));
        let want = exact_dot(&x, &q);
        for b in Backend::available() {
            prop_assert_eq!(simd::dot_i16(b, &x, &q, g), want, "{:?}", b);
            prop_assert_eq!(simd::dot_i16(b, &x, &x, simd::narrow_group(max16(&x), max16(&x))), exact_dot(&x, &x), "{:?}", b);
        }
        prop_assert_eq!(simd::scalar::dot_i16(&x, &q), want);
    }

    #[test]
    fn dot_i16_free_matches_scalar_when_the_lanes_fit((x, q) in pair16(300)) {
        // Only with lane bounds that prove no overflow (the index checks them first): the
        // query is scaled down until they do, so many pairs sit right at the bound.
        let (_, bx) = simd::norms_i16(Backend::Scalar, &x);
        let mut q = q;
        while !simd::lanes_fit(bx, simd::norms_i16(Backend::Scalar, &q).1) {
            q.iter_mut().for_each(|v| *v /= 2);
        }
        let want = exact_dot(&x, &q);
        for b in Backend::available() {
            prop_assert_eq!(simd::dot_i16_free(b, &x, &q), want, "{:?}", b);
        }
    }

    #[test]
    fn dot_i16_x4_matches_scalar((x, q0) in pair16(80), seed in any::<u64>()) {
        let n = x.len();
        let qs: Vec<Vec<i16>> = (0..4u64)
            .map(|j| (0..n).map(|i| {
                let h = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(j * 7919 + i as u64);
                if j == 0 { q0[i] } else { (((h >> 17) % (2 * N as u64 + 1)) as i32 - N) as i16 }
            }).collect())
            .collect();
        let g = qs.iter().map(|q| simd::narrow_group(max16(&x), max16(q))).min().unwrap();
        let want: Vec<i64> = qs.iter().map(|q| exact_dot(&x, q)).collect();
        for b in Backend::available() {
            let got = simd::dot_i16_x4(b, &x, [&qs[0], &qs[1], &qs[2], &qs[3]], g);
            prop_assert_eq!(got.to_vec(), want.clone(), "{:?}", b);
        }
    }

    #[test]
    fn norms_and_lane_bound_match_scalar((x, q) in pair16(100), concentrate in any::<bool>()) {
        // Optionally put all the mass in the coordinates of one AVX2 lane (the worst case
        // for the lane bound).
        let (x, q): (Vec<i16>, Vec<i16>) = if concentrate {
            (x.iter().enumerate().map(|(i, &v)| if (i % 16) / 2 == 3 { v } else { 0 }).collect(),
             q.iter().enumerate().map(|(i, &v)| if (i % 16) / 2 == 3 { v } else { 0 }).collect())
        } else {
            (x, q)
        };
        let want = simd::scalar::norms_i16(&x);
        prop_assert_eq!(want.0, exact_dot(&x, &x));
        for b in Backend::available() {
            prop_assert_eq!(simd::norms_i16(b, &x), want, "{:?}", b);
        }
        // When the lane bounds fit, one group for the whole vector is exact.
        let (bx, bq) = (want.1, simd::scalar::norms_i16(&q).1);
        if simd::lanes_fit(bx, bq) {
            for b in Backend::available() {
                prop_assert_eq!(simd::dot_i16(b, &x, &q, usize::MAX), exact_dot(&x, &q), "{:?}", b);
                prop_assert_eq!(simd::dot_i16_x4(b, &x, [&q, &q, &x, &q], usize::MAX)[0], exact_dot(&x, &q));
            }
        }
    }

    #[test]
    fn l2_i16_matches_scalar((x, q) in pair16(100), split in 0u32..=NARROW_MAX) {
        // Scale both sides so that max|x| + max|q| <= NARROW_MAX (the kernel's precondition).
        let mx = split.max(1);
        let mq = (NARROW_MAX - split).max(1);
        let x: Vec<i16> = x.iter().map(|&v| (i64::from(v) * i64::from(mx) / i64::from(N)) as i16).collect();
        let q: Vec<i16> = q.iter().map(|&v| (i64::from(v) * i64::from(mq) / i64::from(N)) as i16).collect();
        let m = max16(&x) + max16(&q);
        prop_assume!(m <= NARROW_MAX);
        let g = simd::narrow_group(m, m);
        let want = exact_l2(&x, &q);
        for b in Backend::available() {
            prop_assert_eq!(simd::l2_i16(b, &x, &q, g), want, "{:?}", b);
        }
        // The short-row kernel, on three copies of the row (a pair and a single), when every
        // sum fits 32 bits.
        if want < (1 << 31) {
            let stride = x.len() + 3;
            let mut data = vec![7i16; 3 * stride];
            for r in 0..3 {
                data[r * stride..r * stride + x.len()].copy_from_slice(&x);
            }
            for b in Backend::available() {
                let mut out = [0i64; 3];
                simd::rows_i16(b, simd::RowKernel::L2I16Short, &data, stride, &q, &mut out);
                prop_assert_eq!(out, [want; 3], "{:?}", b);
            }
        }
        prop_assert_eq!(simd::scalar::l2_i16(&x, &q), want);
    }

    #[test]
    fn fxp_small_kernels_match_scalar(n in 0usize..100, seed in any::<u64>(), split in 1u32..fxp::SMALL_LIMIT) {
        let mx = split - 1;
        let mq = fxp::SMALL_LIMIT - split;
        let gen = |m: u32, salt: u64| -> Vec<Fxp> {
            (0..n as u64).map(|i| {
                let h = (seed ^ salt).wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(i * 0x9e37_79b9);
                let span = 2 * u64::from(m) + 1;
                let v = match h % 5 { 0 => m as i64, 1 => -(m as i64), _ => ((h >> 8) % span) as i64 - m as i64 };
                Fxp(v as i32)
            }).collect()
        };
        let (x, q) = (gen(mx, 1), gen(mq, 2));
        prop_assert!(fxp::max_abs(&x) + fxp::max_abs(&q) < fxp::SMALL_LIMIT);
        let l2 = fxp::l2_squared(&x, &q);
        let ip = fxp::inner_product(&x, &q);
        for b in Backend::available() {
            prop_assert_eq!(u128::from(simd::l2_fxp_small(b, &x, &q)), l2, "{:?}", b);
            prop_assert_eq!(i128::from(simd::dot_fxp_small(b, &x, &q)), ip, "{:?}", b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Mid-width rows (top halves, then low bytes) and the same rows wide: every
    /// backend's block kernels equal the exact 128-bit distance, for values across the whole
    /// i24 range, and flag exactly the rows at or below a limit.
    #[test]
    fn mid_rows_match_exact(dim in 1usize..40, rows in 1usize..65, seed in any::<u64>(), l2 in any::<bool>()) {
        let m = simd::MID_MAX as i64;
        let mut h = seed | 1;
        let mut next = |lim: i64| -> i32 {
            h ^= h << 13; h ^= h >> 7; h ^= h << 17;
            match h % 5 { 0 => lim as i32, 1 => -lim as i32, _ => ((h >> 9) as i64 % (2 * lim + 1) - lim) as i32 }
        };
        // Query bound so that max|x| + max|q| < SMALL_LIMIT.
        let (xm, qm) = if seed % 2 == 0 { (m, 0) } else { (m / 2, m / 2) };
        let x: Vec<Vec<i32>> = (0..rows).map(|_| (0..dim).map(|_| next(xm)).collect()).collect();
        let q: Vec<Fxp> = (0..dim).map(|_| Fxp(next(qm))).collect();
        // Rows padded, as in the store: `dim` top halves (x >> 8, native i16), `dim` low bytes.
        let stride = 3 * dim + 5;
        let mut data = vec![0xAAu8; rows * stride];
        for (r, row) in x.iter().enumerate() {
            let base = r * stride;
            for (j, &v) in row.iter().enumerate() {
                data[base + 2 * j..base + 2 * j + 2].copy_from_slice(bytemuck::bytes_of(&((v >> 8) as i16)));
                data[base + 2 * dim + j] = (v & 0xff) as u8;
            }
            for (j, &v) in row.iter().enumerate() {
                prop_assert_eq!(simd::scalar::mid(&data[base..], j, dim), v);
            }
        }
        let want: Vec<i64> = x.iter().map(|row| {
            let s: i128 = row.iter().zip(&q).map(|(&a, b)| if l2 { (i128::from(a) - i128::from(b.0)).pow(2) } else { i128::from(a) * i128::from(b.0) }).sum();
            i64::try_from(s).unwrap()
        }).collect();
        // The same rows wide, for the wide block kernel.
        let wide: Vec<Fxp> = x.iter().flatten().map(|&v| Fxp(v)).collect();
        let mut sorted = want.clone();
        sorted.sort();
        for limit in [i64::MIN, sorted[rows / 2], i64::MAX] {
            let mask: u64 = want.iter().enumerate().fold(0, |m, (i, &v)| m | (u64::from(v <= limit) << i));
            for b in Backend::available() {
                let mut out = vec![0i64; rows];
                let got = simd::rows_mid_small(b, l2, &data, stride, &q, limit, &mut out);
                prop_assert_eq!(&out, &want, "{:?}", b);
                prop_assert_eq!(got, mask, "{:?}", b);
                let mut out = vec![0i64; rows];
                let got = simd::rows_fxp_small(b, l2, &wide, &q, limit, &mut out);
                prop_assert_eq!(&out, &want, "{:?}", b);
                prop_assert_eq!(got, mask, "{:?}", b);
            }
        }
    }
}

/// The worst case for the 32-bit lanes: every product at the largest magnitude, at the
/// largest dimension, for every group size the bound allows and one at the edge.
#[test]
fn kernels_are_exact_at_their_bounds() {
    for n in [1usize, 15, 16, 17, 384, 4095, 65_536] {
        for (a, b) in [(N, N), (N, -N), (-N, -N), (1, N), (181, 181)] {
            let x = vec![a as i16; n];
            let q = vec![b as i16; n];
            let g = simd::narrow_group(a.unsigned_abs(), b.unsigned_abs());
            for be in Backend::available() {
                assert_eq!(
                    simd::dot_i16(be, &x, &q, g),
                    exact_dot(&x, &q),
                    "{be:?} n={n}"
                );
                let qs = [&q[..], &x[..], &q[..], &x[..]];
                let g4 = g.min(simd::narrow_group(a.unsigned_abs(), a.unsigned_abs()));
                let got = simd::dot_i16_x4(be, &x, qs, g4);
                assert_eq!(got, qs.map(|q| exact_dot(&x, q)), "{be:?} n={n}");
            }
        }
        // Differences at the largest magnitude: x = NARROW_MAX, q = 0 and the reverse sign.
        let x = vec![N as i16; n];
        let q = vec![0i16; n];
        let g = simd::narrow_group(NARROW_MAX, NARROW_MAX);
        for be in Backend::available() {
            assert_eq!(
                simd::l2_i16(be, &x, &q, g),
                exact_l2(&x, &q),
                "{be:?} n={n}"
            );
            assert_eq!(
                simd::l2_i16(be, &q, &x, g),
                exact_l2(&q, &x),
                "{be:?} n={n}"
            );
        }
        let lim = (fxp::SMALL_LIMIT / 2 - 1) as i32;
        let x: Vec<Fxp> = (0..n)
            .map(|i| Fxp(if i % 2 == 0 { lim } else { -lim }))
            .collect();
        let q: Vec<Fxp> = x.iter().map(|v| Fxp(-v.0)).collect();
        for be in Backend::available() {
            assert_eq!(
                u128::from(simd::l2_fxp_small(be, &x, &q)),
                fxp::l2_squared(&x, &q)
            );
            assert_eq!(
                i128::from(simd::dot_fxp_small(be, &x, &q)),
                fxp::inner_product(&x, &q)
            );
        }
    }
    assert_eq!(simd::narrow_group(NARROW_MAX, NARROW_MAX), 1);
    assert_eq!(simd::narrow_group(0, 0), 1 << 16);
    // Two maximal pairs in one lane would exceed i32: the bound allows exactly one.
    assert!(2 * 2 * u64::from(NARROW_MAX).pow(2) > i32::MAX as u64);
}

/// 128-bit brute force: the reference every search path must equal.
fn brute(
    rows: &[(Vec<i32>, Option<u64>)],
    q: &[i32],
    metric: Metric,
    k: usize,
    tag: Option<u64>,
) -> Vec<(i128, u64)> {
    let norm = |v: &[i32]| -> Vec<i32> {
        let mut f: Vec<Fxp> = v.iter().map(|&x| Fxp(x)).collect();
        fxp::normalize(&mut f).unwrap();
        f.iter().map(|x| x.0).collect()
    };
    let qsum: u128 = q
        .iter()
        .map(|&x| (i128::from(x) * i128::from(x)) as u128)
        .sum();
    let r = (qsum << 32).isqrt() as i128;
    let mut all: Vec<(i128, u64)> = rows
        .iter()
        .enumerate()
        .filter(|(_, (_, t))| tag.is_none() || *t == tag)
        .map(|(id, (v, _))| {
            let v = if metric == Metric::Cosine {
                norm(v)
            } else {
                v.clone()
            };
            let ip: i128 = v
                .iter()
                .zip(q)
                .map(|(&a, &b)| i128::from(a) * i128::from(b))
                .sum();
            let d = match metric {
                Metric::L2 => v
                    .iter()
                    .zip(q)
                    .map(|(&a, &b)| (i128::from(a) - i128::from(b)).pow(2))
                    .sum(),
                Metric::InnerProduct => -ip,
                Metric::Cosine => {
                    let n = ip << 32;
                    let m = (n.abs() + r / 2) / r;
                    (1i128 << 32) - if n < 0 { -m } else { m }
                }
            };
            (d, id as u64)
        })
        .collect();
    all.sort();
    all.truncate(k);
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random stores in every regime (narrow values, values that fill the i16 range, a wide
    /// row arriving mid-way), every metric, with and without a tag filter: single searches
    /// and batch searches equal the brute force, and the widened store encodes the same bytes
    /// as one built wide.
    #[test]
    fn every_search_path_equals_brute_force(
        dim in 1usize..40,
        n in 1usize..300,
        regime in 0usize..6,
        seed in any::<u64>(),
        nq in 1usize..7,
        k in 1u32..12,
        wide_query in any::<bool>(),
    ) {
        // Narrow (0, 1, 2), narrow then mid (3), mid then wide (4), wide (5).
        let scale = [3, 1 << 13, N, N, 1 << 20, 1 << 25][regime];
        let mut h = seed | 1;
        let mut next = |m: i32| -> i32 {
            h ^= h << 13; h ^= h >> 7; h ^= h << 17;
            let span = 2 * i64::from(m) + 1;
            match h % 7 { 0 => m, 1 => -m, _ => ((h >> 11) as i64 % span - i64::from(m)) as i32 }
        };
        let mut rows: Vec<(Vec<i32>, Option<u64>)> = (0..n)
            .map(|i| ((0..dim).map(|_| next(scale)).collect(), (i % 3 != 0).then_some((i % 2) as u64)))
            .collect();
        // A row beyond the narrow range half-way through (regime 3: the store widens to
        // mid), and beyond the mid range in regime 4 (mid to wide).
        if regime == 3 {
            rows[n / 2].0[0] = 40_000;
        }
        if regime == 4 {
            rows[n / 2].0[0] = -(1 << 23) - 5;
        }
        for row in rows.iter_mut() {
            if row.0.iter().all(|&x| x == 0) {
                row.0[0] = 1; // cosine rejects zero vectors
            }
        }
        let qscale = if wide_query { 1 << 19 } else { scale.min(N) };
        let queries: Vec<Vec<i32>> = (0..nq)
            .map(|_| {
                let mut v: Vec<i32> = (0..dim).map(|_| next(qscale)).collect();
                if v.iter().all(|&x| x == 0) { v[0] = 1; }
                v
            })
            .collect();
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let mut kern = Kernel::new(Config::new(dim as u32, metric).unwrap()).unwrap();
            for (v, tag) in &rows {
                let v: Vec<Fxp> = v.iter().map(|&x| Fxp(x)).collect();
                kern.apply(&Command::Insert { id: None, tag: *tag, vector: v[..].into(), meta: b"" }).unwrap();
            }
            let flat: Vec<Fxp> = queries.iter().flatten().map(|&x| Fxp(x)).collect();
            for tag in [None, Some(1)] {
                let want: Vec<Vec<(i128, u64)>> = queries.iter().map(|q| brute(&rows, q, metric, k as usize, tag)).collect();
                for (q, w) in queries.iter().zip(&want) {
                    let qf: Vec<Fxp> = q.iter().map(|&x| Fxp(x)).collect();
                    let got: Vec<(i128, u64)> = kern.search_vec(&qf, k, tag).unwrap().iter().map(|h| (h.distance, h.id)).collect();
                    prop_assert_eq!(&got, w, "single {:?} regime {}", metric, regime);
                }
                let per = kern.result_count(k, tag);
                let mut out = vec![Hit::default(); nq * per];
                prop_assert_eq!(kern.search_batch(&flat, k, tag, &mut out).unwrap(), per);
                for (i, w) in want.iter().enumerate() {
                    let got: Vec<(i128, u64)> = out[i * per..(i + 1) * per].iter().map(|h| (h.distance, h.id)).collect();
                    prop_assert_eq!(&got, w, "batch {:?} regime {} query {}", metric, regime, i);
                }
            }
        }
    }
}

/// A store that starts narrow and widens (narrow -> mid -> wide) gives the same records,
/// encoding and hash as the same records in a store that was wide from its first insert (explicit ids, so the insert
/// order does not show in the state), in growable and in caller memory at full capacity.
#[test]
fn widening_keeps_values_and_hash() {
    let dim = 7u32;
    let small: Vec<Vec<Fxp>> = (0..50)
        .map(|i| {
            (0..dim as i32)
                .map(|j| Fxp((i * 37 + j * 11) % 2001 - 1000))
                .collect()
        })
        .collect();
    let big: Vec<Fxp> = (0..dim as i32).map(|j| Fxp(70_000 * (j - 3))).collect();
    let huge: Vec<Fxp> = (0..dim as i32).map(|j| Fxp(i32::MAX - j)).collect();
    let ins = |k: &mut Kernel<'_>, id: u64, v: &[Fxp]| {
        k.apply(&Command::Insert {
            id: Some(id),
            tag: None,
            vector: v.into(),
            meta: b"",
        })
        .unwrap();
    };
    let cfg = Config::new(dim, Metric::L2).unwrap();
    let q: Vec<Fxp> = small[3].clone();
    // a: 25 small rows, the big one (widens 25 narrow rows in place), 25 more small rows.
    let fill_a = |k: &mut Kernel<'_>| {
        for (i, v) in small[..25].iter().enumerate() {
            ins(k, i as u64, v);
        }
        ins(k, 25, &big);
        for (i, v) in small[25..40].iter().enumerate() {
            ins(k, 26 + i as u64, v);
        }
        ins(k, 100, &huge);
        for (i, v) in small[40..].iter().enumerate() {
            ins(k, 41 + i as u64, v);
        }
    };
    let mut a = Kernel::new(cfg).unwrap();
    fill_a(&mut a);
    // b: the big row first, so the store is wide from the start.
    let mut b = Kernel::new(cfg).unwrap();
    ins(&mut b, 100, &huge);
    ins(&mut b, 25, &big);
    for (i, v) in small[..25].iter().enumerate() {
        ins(&mut b, i as u64, v);
    }
    for (i, v) in small[25..40].iter().enumerate() {
        ins(&mut b, 26 + i as u64, v);
    }
    for (i, v) in small[40..].iter().enumerate() {
        ins(&mut b, 41 + i as u64, v);
    }
    // c: only small rows stay narrow; checked against a for the rows they share.
    let mut c = Kernel::new(cfg).unwrap();
    for (i, v) in small.iter().enumerate() {
        ins(&mut c, i as u64, v);
    }
    assert_eq!(a.to_bytes(), b.to_bytes());
    assert_eq!(a.state_hash(), b.state_hash());
    for (i, v) in small[..25].iter().enumerate() {
        assert_eq!(a.get(i as u64).unwrap().vector, &v[..]);
        assert_eq!(c.get(i as u64).unwrap().vector, &v[..]);
    }
    assert_eq!(a.get(25).unwrap().vector, &big[..]);
    assert_eq!(a.get(100).unwrap().vector, &huge[..]);
    // A store that stops at mid: the same values as the wide one for the rows it holds.
    let mut m = Kernel::new(cfg).unwrap();
    ins(&mut m, 25, &big);
    for (i, v) in small.iter().enumerate() {
        ins(&mut m, 200 + i as u64, v);
        assert_eq!(m.get(200 + i as u64).unwrap().vector, &v[..]);
    }
    assert_eq!(m.get(25).unwrap().vector, &big[..]);
    assert_eq!(
        a.search_vec(&q, 50, None).unwrap(),
        b.search_vec(&q, 50, None).unwrap()
    );
    let cap = valori_kernel::Capacity {
        records: 52,
        ..Default::default()
    };
    let mut mem = vec![0u8; Kernel::mem_size(cfg, cap).unwrap()];
    let mut d = Kernel::with_memory(cfg, cap, &mut mem).unwrap();
    fill_a(&mut d);
    assert_eq!(d.to_bytes(), a.to_bytes());
    assert_eq!(
        d.search_vec(&q, 50, None).unwrap(),
        a.search_vec(&q, 50, None).unwrap()
    );
    // Decoding a widened store's bytes gives the same state again.
    let back = Kernel::from_bytes(&a.to_bytes()).unwrap();
    assert_eq!(back.state_hash(), a.state_hash());
}

/// The equality tests above compare against the backend this CPU runs: make sure it is the
/// SIMD one where there is one, so that they cannot silently test scalar against scalar.
#[test]
fn simd_backend_is_detected() {
    let all: Vec<Backend> = Backend::available().collect();
    assert_eq!(all[0], Backend::Scalar);
    #[cfg(target_arch = "aarch64")]
    assert_eq!(all, [Backend::Scalar, Backend::Neon]);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        assert_eq!(all, [Backend::Scalar, Backend::Avx2]);
    }
}
