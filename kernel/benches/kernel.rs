//! Kernel benchmarks: insert, exact search and state hash at N = 10k and 100k, d = 16 and 384.
//!
//! `cargo bench -p valori-kernel --bench kernel`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use valori_kernel::{Command, Config, Fxp, Hit, Kernel, Metric, Words};

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

fn filled(n: usize, dim: usize) -> Kernel<'static> {
    let mut k = Kernel::new(Config::new(dim as u32, Metric::L2).unwrap()).unwrap();
    let v = data(n, dim, 1);
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

fn search(c: &mut Criterion) {
    let mut g = c.benchmark_group("search_k10");
    for (n, dim) in SIZES {
        let k = filled(n, dim);
        let q = data(1, dim, 3);
        let mut out = [Hit::default(); 10];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new(format!("d{dim}"), n), |b| {
            b.iter(|| black_box(k.search(black_box(&q), 10, None, &mut out).unwrap()))
        });
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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = insert, search, state_hash
}
criterion_main!(benches);
