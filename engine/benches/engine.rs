//! Engine benchmark (a plain binary: these are whole-system figures, not micro-benchmarks).
//!
//! `cargo bench -p valori-engine --bench engine` prints a table: durable single-insert latency,
//! group-commit throughput with 4 writers, batch insert throughput at d = 384, and recovery
//! time for a WAL of 1M 16-dim inserts, and search latency (p50/p99) while 4 threads insert
//! durably and checkpoints run, against idle. `VALORI_BENCH_QUICK=1` runs a small configuration
//! (used by CI so the bench cannot rot). Data goes to `target/valori-bench` (a real disk).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use valori_engine::{Durability, Engine, Options};
use valori_kernel::Metric;

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/valori-bench")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn vector(i: u64, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| ((i * 131 + j as u64 * 17) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let quick = std::env::var_os("VALORI_BENCH_QUICK").is_some();
    let scale = |full: u64, small: u64| if quick { small } else { full };
    println!("| measurement | result |");
    println!("|---|---|");

    // 1. Durable single-insert latency (default durability: fsync per commit), d = 16.
    let d = dir("latency");
    let db = Engine::open(&d, Options::new(16, Metric::L2)).unwrap();
    let n = scale(2000, 50);
    let mut lat = Vec::new();
    for i in 0..n {
        let v = vector(i, 16);
        let t = Instant::now();
        db.insert(&v, None, b"").unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "| durable single insert (Fsync, d=16, {n} inserts) | median {:.0} µs, p99 {:.0} µs |",
        percentile(&lat, 0.5).as_secs_f64() * 1e6,
        percentile(&lat, 0.99).as_secs_f64() * 1e6
    );
    drop(db);

    // 2. Four writer threads: group commit against one-fsync-per-commit.
    for mode in [Durability::GroupCommit, Durability::Fsync] {
        let d = dir(&format!("writers-{mode:?}"));
        let db = Arc::new(Engine::open(&d, Options::new(16, Metric::L2).durability(mode)).unwrap());
        let per = scale(2000, 50);
        let t = Instant::now();
        let hs: Vec<_> = (0..4u64)
            .map(|w| {
                let db = db.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        db.insert(&vector(w * per + i, 16), Some(w), b"").unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "| 4 writer threads, {mode:?} (d=16, {} inserts) | {:.0} inserts/s |",
            4 * per,
            (4 * per) as f64 / secs
        );
    }

    // 3. Batch insert throughput, d = 384, batches of 1,000, default durability.
    let d = dir("batch");
    let db = Engine::open(&d, Options::new(384, Metric::L2)).unwrap();
    let batches = scale(50, 2);
    let data: Vec<f32> = (0..1000).flat_map(|i| vector(i, 384)).collect();
    let t = Instant::now();
    for _ in 0..batches {
        db.insert_batch(&data, &[]).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "| insert_batch (Fsync, d=384, {batches} x 1000) | {:.0} vectors/s |",
        (batches * 1000) as f64 / secs
    );
    drop(db);

    // 4. Recovery of a WAL holding 1M single 16-dim inserts (no checkpoint).
    let d = dir("recovery");
    let n = scale(1_000_000, 10_000);
    let db = Engine::open(
        &d,
        Options::new(16, Metric::L2)
            .durability(Durability::None)
            .checkpoint_wal_bytes(0),
    )
    .unwrap();
    for i in 0..n {
        db.insert(&vector(i, 16), None, b"").unwrap();
    }
    let hash = db.state_hash().unwrap();
    db.close().unwrap();
    let wal_bytes: u64 = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let t = Instant::now();
    let db = Engine::open(&d, Options::default()).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(db.state_hash().unwrap(), hash);
    println!(
        "| recovery: open with a WAL of {n} 16-dim inserts ({:.1} MB) | {:.2} s ({:.0} records/s) |",
        wal_bytes as f64 / 1e6,
        secs,
        n as f64 / secs
    );
    drop(db);

    // 5. Search latency while 4 threads insert durably and checkpoints run, against idle.
    for mode in [Durability::Fsync, Durability::GroupCommit] {
        search_under_writes(mode, scale(10_000, 200));
    }
    let _ = std::fs::remove_dir_all(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/valori-bench"),
    );
}

/// Times `searches` single searches (k = 10 over 20,000 x 64), idle and then while 4 writer
/// threads insert batches of 50 durably (and delete them again, one durable command each) and
/// a fifth thread checkpoints every 50 ms; prints
/// the p50 / p99 of both and their ratio.
fn search_under_writes(mode: Durability, searches: u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let d = dir(&format!("readers-{mode:?}"));
    let db = Arc::new(Engine::open(&d, Options::new(64, Metric::L2).durability(mode)).unwrap());
    let rows: Vec<f32> = (0..20_000).flat_map(|i| vector(i, 64)).collect();
    db.insert_batch(&rows, &[]).unwrap();
    db.checkpoint().unwrap();
    let time_searches = |db: &Engine| {
        let mut lat: Vec<Duration> = (0..searches)
            .map(|i| {
                let q = vector(i * 7 + 3, 64);
                let t = Instant::now();
                let hits = db.search(&q, 10, None).unwrap();
                let e = t.elapsed();
                assert_eq!(hits.len(), 10);
                e
            })
            .collect();
        lat.sort();
        (percentile(&lat, 0.5), percentile(&lat, 0.99))
    };
    let idle = time_searches(&db);
    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicU64::new(0));
    let checkpoints = Arc::new(AtomicU64::new(0));
    let mut threads: Vec<_> = (0..4u64)
        .map(|w| {
            let (db, stop, inserted) = (db.clone(), stop.clone(), inserted.clone());
            std::thread::spawn(move || {
                let batch: Vec<f32> = (0..50).flat_map(|i| vector(w * 1000 + i, 64)).collect();
                // Each batch is deleted again (50 more durable commands), so the searched
                // store stays at 20,000 records (+ at most 200 in flight): the loaded searches
                // do the same work as the idle ones, and only waiting can slow them.
                while !stop.load(Ordering::Relaxed) {
                    let ids = db.insert_batch(&batch, &[]).unwrap();
                    inserted.fetch_add(50, Ordering::Relaxed);
                    for id in ids {
                        db.delete(id).unwrap();
                    }
                }
            })
        })
        .collect();
    threads.push({
        let (db, stop, checkpoints) = (db.clone(), stop.clone(), checkpoints.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                db.checkpoint().unwrap();
                checkpoints.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let loaded = time_searches(&db);
    let secs = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in threads {
        h.join().unwrap();
    }
    assert_eq!(db.len().unwrap(), 20_000, "the searched store changed size");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "| search k=10 over 20k x 64, idle vs 4 writers ({mode:?}, batches of 50, each deleted again) + checkpoints every 50 ms ({} inserts, {} checkpoints in {:.1} s) | idle p50 {:.0} µs p99 {:.0} µs; loaded p50 {:.0} µs p99 {:.0} µs; p99 ratio {:.2} |",
        inserted.load(Ordering::Relaxed),
        checkpoints.load(Ordering::Relaxed),
        secs,
        us(idle.0),
        us(idle.1),
        us(loaded.0),
        us(loaded.1),
        loaded.1.as_secs_f64() / idle.1.as_secs_f64()
    );
}
