//! Simulated power loss at every sync point of a scripted workload.
//!
//! The workload runs on a simulated disk that records its state just before every sync. From
//! each recorded state, at least 50 random crash images are made (unsynced appends dropped,
//! kept or torn; unsynced directory changes kept as an in-order prefix). Every image must
//! recover, lose no acknowledged command, and hash exactly as the reference after some prefix
//! `k` of the commands with `acknowledged <= k <= issued`. The recovered database must also
//! accept writes and recover again.
//!
//! Planted bugs (a disk whose directory fsync or file fsync does nothing) must make the same
//! check fail: the test proves it can fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::*;
use std::path::PathBuf;
use std::sync::Arc;
use valori_engine::sim::{PlantedBug, Rng, SimStorage};
use valori_engine::Engine;

const IMAGES_PER_POINT: usize = 50;

/// Returns (sync points, images checked, failures as text).
fn check(sim: SimStorage, images: usize) -> (usize, usize, Vec<String>) {
    let dir = PathBuf::from("/db");
    let steps = workload();
    let hashes = reference_hashes(&steps);
    sim.capture_sync_points();
    let (acked, issued, err) = run(Arc::new(sim.clone()), Some(&sim), &dir, &steps);
    assert!(err.is_none(), "the workload itself failed: {err:?}");
    assert_eq!(
        (acked, issued),
        (hashes.len() as u64 - 1, hashes.len() as u64 - 1)
    );
    let points = sim.sync_points();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut rng = Rng::new(0x5eed);
    for (p, point) in points.iter().enumerate() {
        let (acked, issued) = (point.marker >> 32, point.marker & 0xffff_ffff);
        for i in 0..images {
            checked += 1;
            let image = point.state.crash_image(&mut rng);
            let db = match Engine::open_with_storage(&dir, options(), Arc::new(image.clone())) {
                Ok(db) => db,
                Err(e) => {
                    failures.push(format!("point {p} image {i}: recovery failed: {e}"));
                    continue;
                }
            };
            let hash = db.state_hash().unwrap();
            let Some(k) = matching_prefix(&hashes, &hash, acked, issued) else {
                failures.push(format!(
                    "point {p} image {i}: recovered state is not a prefix in {acked}..={issued} (seq {})",
                    db.sequence().unwrap()
                ));
                continue;
            };
            assert_eq!(db.sequence().unwrap(), k);
            // The recovered database takes writes and recovers again.
            db.insert(&[0.5; DIM as usize], None, b"after").unwrap();
            let after = db.state_hash().unwrap();
            drop(db);
            match Engine::open_with_storage(&dir, options(), Arc::new(image)) {
                Ok(db) if db.state_hash().unwrap() == after => {}
                Ok(_) => failures.push(format!(
                    "point {p} image {i}: second recovery lost the write"
                )),
                Err(e) => {
                    failures.push(format!("point {p} image {i}: second recovery failed: {e}"))
                }
            }
        }
    }
    (points.len(), checked, failures)
}

#[test]
fn every_crash_image_recovers_an_acknowledged_prefix() {
    let (points, checked, failures) = check(SimStorage::new(), IMAGES_PER_POINT);
    assert!(points >= 40, "only {points} sync points");
    assert!(
        failures.is_empty(),
        "{} of {checked} images failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{points} sync points, {checked} crash images, all recovered an acknowledged prefix");
}

#[test]
fn planted_bug_skipped_directory_fsync_is_caught() {
    let (_, checked, failures) = check(SimStorage::with_bug(PlantedBug::SkipDirSync), 10);
    assert!(
        !failures.is_empty(),
        "no failure in {checked} images: the simulator cannot see a missing directory fsync"
    );
    eprintln!(
        "skipped dir fsync: {} of {checked} images failed, e.g. {}",
        failures.len(),
        failures[0]
    );
}

#[test]
fn planted_bug_skipped_wal_fsync_is_caught() {
    let (_, checked, failures) = check(SimStorage::with_bug(PlantedBug::SkipWalSync), 10);
    assert!(
        !failures.is_empty(),
        "no failure in {checked} images: the simulator cannot see a missing WAL fsync"
    );
    eprintln!(
        "skipped WAL fsync: {} of {checked} images failed, e.g. {}",
        failures.len(),
        failures[0]
    );
}
