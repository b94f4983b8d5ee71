//! Kernel benchmarks: distance kernels per vector (every SIMD backend this CPU runs), insert,
//! exact search per query and in batches (narrow and wide stores), and state hash, at
//! N = 10k and 100k, d = 16 and 384.
//!
//! `cargo bench -p valori-kernel --bench kernel` (a filter after `--` picks groups, e.g.
//! `-- distance`).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use valori_kernel::simd::{self, Backend};
use valori_kernel::{fxp, Command, Config, Fxp, Hit, Kernel, Metric, Words};

/// Deterministic pseudo-random components in [-1, 1).
fn data(n: usize, dim: usize, seed: u64) -> Vec<Fxp> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n * dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            Fxp(((s >> 32) as i32) >> 15)
        })
        .collect()
}

/// Components in [-0.25, 0.25): every one fits the narrow (i16) storage.
fn narrow_data(n: usize, dim: usize, seed: u64) -> Vec<Fxp> {
    data(n, dim, seed)
        .into_iter()
        .map(|x| Fxp(x.0 >> 2))
        .collect()
}

/// Unit vectors (like normalised embeddings): d = 384 fits the narrow (i16) storage, d = 16
/// the mid (3-byte) storage.
fn unit_data(n: usize, dim: usize, seed: u64) -> Vec<Fxp> {
    let raw = data(n, dim, seed);
    let mut out = Vec::with_capacity(raw.len());
    for row in raw.chunks_exact(dim) {
        let v: Vec<f64> = row.iter().map(|x| x.to_f64()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
        out.extend(
            v.iter()
                .enumerate()
                .map(|(i, x)| Fxp::from_f64(x / norm, i as u32).unwrap()),
        );
    }
    out
}

fn filled(n: usize, dim: usize) -> Kernel<'static> {
    filled_with(dim, &data(n, dim, 1))
}

fn filled_with(dim: usize, v: &[Fxp]) -> Kernel<'static> {
    let mut k = Kernel::new(Config::new(dim as u32, Metric::L2).unwrap()).unwrap();
    for chunk in v.chunks(dim * 1000) {
        k.apply(&Command::InsertBatch {
            ids: Words::EMPTY,
            tags: Words::EMPTY,
            vectors: chunk.into(),
        })
        .unwrap();
    }
    k
}

const SIZES: [(usize, usize); 4] = [(10_000, 16), (10_000, 384), (100_000, 16), (100_000, 384)];

fn insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert");
    for (n, dim) in SIZES {
        let v = data(n, dim, 2);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new(format!("d{dim}"), n), |b| {
            b.iter_batched(
                || Kernel::new(Config::new(dim as u32, Metric::L2).unwrap()).unwrap(),
                |mut k| {
                    for x in v.chunks_exact(dim) {
                        k.apply(&Command::Insert {
                            id: None,
                            tag: None,
                            vector: x.into(),
                            meta: &[],
                        })
                        .unwrap();
                    }
                    k
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// One distance per iteration, per kernel and backend (throughput in vectors).
fn distance(c: &mut Criterion) {
    let mut g = c.benchmark_group("distance");
    g.throughput(Throughput::Elements(1));
    for dim in [16usize, 384] {
        let (x, q) = (narrow_data(1, dim, 4), narrow_data(1, dim, 5));
        let x16: Vec<i16> = x.iter().map(|v| v.0 as i16).collect();
        let q16: Vec<i16> = q.iter().map(|v| v.0 as i16).collect();
        let gr = simd::narrow_group(fxp::max_abs(&x), fxp::max_abs(&q));
        let gd = simd::narrow_group(simd::NARROW_MAX, simd::NARROW_MAX);
        g.bench_function(BenchmarkId::new("l2_i128_reference", dim), |b| {
            b.iter(|| black_box(fxp::l2_squared(black_box(&x), black_box(&q))))
        });
        for be in Backend::available() {
            let name = |k: &str| BenchmarkId::new(format!("{k}/{be:?}"), dim);
            g.bench_function(name("dot_i16"), |b| {
                b.iter(|| black_box(simd::dot_i16(be, black_box(&x16), black_box(&q16), gr)))
            });
            g.bench_function(name("l2_i16"), |b| {
                b.iter(|| black_box(simd::l2_i16(be, black_box(&x16), black_box(&q16), gd)))
            });
            g.bench_function(name("l2_fxp_small"), |b| {
                b.iter(|| black_box(simd::l2_fxp_small(be, black_box(&x), black_box(&q))))
            });
            g.bench_function(name("dot_fxp_small"), |b| {
                b.iter(|| black_box(simd::dot_fxp_small(be, black_box(&x), black_box(&q))))
            });
        }
    }
    g.finish();
}

/// One query over the whole store, narrow (i16) and wide (i32) storage.
fn search(c: &mut Criterion) {
    let mut g = c.benchmark_group("search_k10");
    for (n, dim) in SIZES {
        for (width, k, q) in [
            ("wide", filled(n, dim), data(1, dim, 3)),
            (
                "narrow",
                filled_with(dim, &narrow_data(n, dim, 1)),
                narrow_data(1, dim, 3),
            ),
        ] {
            let mut out = [Hit::default(); 10];
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(BenchmarkId::new(format!("{width}/d{dim}"), n), |b| {
                b.iter(|| black_box(k.search(black_box(&q), 10, None, &mut out).unwrap()))
            });
        }
    }
    g.finish();
}

/// 64 queries in one call (one pass over the store), N = 100k (throughput in queries).
fn search_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("search_batch_k10");
    const NQ: usize = 64;
    for dim in [16usize, 384] {
        let n = 100_000;
        for (width, k, q) in [
            ("wide", filled(n, dim), data(NQ, dim, 3)),
            (
                "narrow",
                filled_with(dim, &narrow_data(n, dim, 1)),
                narrow_data(NQ, dim, 3),
            ),
        ] {
            let mut out = vec![Hit::default(); 10 * NQ];
            g.throughput(Throughput::Elements(NQ as u64));
            g.bench_function(BenchmarkId::new(format!("{width}/d{dim}"), n), |b| {
                b.iter(|| black_box(k.search_batch(black_box(&q), 10, None, &mut out).unwrap()))
            });
        }
    }
    g.finish();
}

fn state_hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_hash");
    for (n, dim) in SIZES {
        let k = filled(n, dim);
        g.throughput(Throughput::Bytes(k.encoded_len()));
        g.bench_function(BenchmarkId::new(format!("d{dim}"), n), |b| {
            b.iter(|| black_box(k.state_hash()))
        });
    }
    g.finish();
}

/// Unit vectors at the peer benchmark's sizes: one query, and 64 queries in one call.
fn search_unit(c: &mut Criterion) {
    let mut g = c.benchmark_group("search_unit_k10");
    for (n, dim) in [(1_000_000usize, 16usize), (100_000, 384)] {
        let k = filled_with(dim, &unit_data(n, dim, 1));
        let q = unit_data(64, dim, 3);
        let q1 = unit_data(1, dim, 3);
        let mut out = vec![Hit::default(); 10 * 64];
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new(format!("single/d{dim}"), n), |b| {
            b.iter(|| black_box(k.search(black_box(&q1), 10, None, &mut out).unwrap()))
        });
        g.throughput(Throughput::Elements(64));
        g.bench_function(BenchmarkId::new(format!("batch64/d{dim}"), n), |b| {
            b.iter(|| black_box(k.search_batch(black_box(&q), 10, None, &mut out).unwrap()))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = distance, insert, search, search_batch, search_unit, state_hash
}
criterion_main!(benches);
