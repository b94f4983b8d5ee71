//! I/O errors at every storage call, and every single-bit flip of a small database's files.
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
use valori_engine::sim::{FaultStorage, SimStorage};
use valori_engine::{Engine, Error, Options};
use valori_kernel::ErrorCode;

/// Failing the Nth storage call, for every N the workload reaches: the failing call returns
/// an error, the handle then refuses further work (checked in `run`), and the directory reopens to a prefix between the acknowledged and issued commands.
#[test]
fn an_io_error_at_any_call_poisons_and_leaves_a_recoverable_prefix() {
    let dir = PathBuf::from("/db");
    let steps = workload();
    let hashes = reference_hashes(&steps);
    let counter = FaultStorage::new(SimStorage::new(), 0);
    let (_, _, err) = run(Arc::new(counter.clone()), None, &dir, &steps);
    assert!(err.is_none());
    let total = counter.calls();
    assert!(total > 100, "only {total} storage calls");
    for n in 1..=total {
        let sim = SimStorage::new();
        let faulty = FaultStorage::new(sim.clone(), n);
        let (acked, issued, err) = run(Arc::new(faulty.clone()), None, &dir, &steps);
        let err = err.unwrap_or_else(|| panic!("call {n} failed but nobody noticed"));
        // The failing call's own error, or `Poisoned` when it failed inside an automatic
        // checkpoint after its command had been acknowledged.
        assert!(
            matches!(err, Error::Io { .. } | Error::Poisoned),
            "call {n}: expected the I/O error, got {err}"
        );
        let db = Engine::open_with_storage(&dir, options(), Arc::new(sim.clone()))
            .unwrap_or_else(|e| panic!("call {n}: reopen failed: {e}"));
        let hash = db.state_hash().unwrap();
        assert!(
            matching_prefix(&hashes, &hash, acked, issued).is_some(),
            "call {n}: reopened state is not a prefix in {acked}..={issued}"
        );
    }
    eprintln!("{total} storage calls, each failed once: all reopened to an acknowledged prefix");
}

#[test]
fn a_failed_fsync_poisons_the_handle() {
    let dir = PathBuf::from("/db");
    let sim = SimStorage::new();
    let setup = FaultStorage::new(sim.clone(), 0);
    let db = Engine::open_with_storage(
        &dir,
        Options::new(2, valori_kernel::Metric::L2),
        Arc::new(setup.clone()),
    )
    .unwrap();
    db.insert(&[1.0, 1.0], None, b"").unwrap();
    drop(db);
    let failing = FaultStorage::new(sim.clone(), 0);
    let db =
        Engine::open_with_storage(&dir, Options::default(), Arc::new(failing.clone())).unwrap();
    let before = failing.calls();
    drop(db);
    // Reopen with a storage that fails the sync of the next insert (open took `before` calls).
    let failing = FaultStorage::new(sim.clone(), before + 2);
    let db = Engine::open_with_storage(&dir, Options::default(), Arc::new(failing)).unwrap();
    let e = db.insert(&[2.0, 2.0], None, b"").unwrap_err();
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    for r in [
        db.insert(&[3.0, 3.0], None, b"").map(drop),
        db.delete(0),
        db.checkpoint(),
        db.search(&[1.0, 1.0], 1, None).map(drop),
    ] {
        assert!(matches!(r, Err(Error::Poisoned)), "{r:?}");
    }
    drop(db);
    let db = Engine::open_with_storage(&dir, Options::default(), Arc::new(sim)).unwrap();
    assert!((1..=2).contains(&db.len().unwrap()));
}

/// Builds a small database (snapshot at 3 + WAL records 4, 5, 6) and returns its disk, the
/// state hash, and the hash before the last record.
fn small_db() -> (SimStorage, PathBuf, [u8; 32], [u8; 32]) {
    let sim = SimStorage::new();
    let dir = PathBuf::from("/db");
    let db = Engine::open_with_storage(
        &dir,
        Options::new(2, valori_kernel::Metric::L2).checkpoint_wal_bytes(0),
        Arc::new(sim.clone()),
    )
    .unwrap();
    db.insert(&[1.0, -1.0], Some(3), b"m").unwrap();
    let n = db.create_node(1, Some(0), b"L").unwrap();
    db.create_edge(2, n, n, Some(0.5)).unwrap();
    db.checkpoint().unwrap();
    db.insert(&[0.25, 4.0], None, b"").unwrap();
    db.set_tag(0, Some(4)).unwrap();
    let before_last = db.state_hash().unwrap();
    db.set_meta(1, b"last").unwrap();
    let hash = db.state_hash().unwrap();
    db.close().unwrap();
    (sim, dir, hash, before_last)
}

/// Offsets of the record headers in a WAL segment (by their magic).
fn record_offsets(segment: &[u8]) -> Vec<usize> {
    (64..segment.len().saturating_sub(3))
        .filter(|&i| &segment[i..i + 4] == b"VLRR")
        .collect()
}

/// Every single-bit flip of the snapshot and of the WAL is detected (a `Corrupt` error
/// naming that file, at an offset inside it), harmless (the same state), or, in the last
/// record of the log, a damaged tail that open cuts off and reports (the state before that
/// record); never another state, never a panic.
#[test]
fn every_bit_flip_is_detected() {
    let (sim, dir, hash, before_last) = small_db();
    let files = sim.state().files();
    assert_eq!(files.len(), 2, "{:?}", files.keys());
    let (mut detected, mut harmless, mut torn) = (0, 0, 0);
    for (path, content) in &files {
        let last_record = record_offsets(content)
            .last()
            .copied()
            .unwrap_or(usize::MAX);
        for bit in 0..content.len() * 8 {
            let disk = sim
                .state()
                .crash_image(&mut valori_engine::sim::Rng::new(1));
            let mut flipped = content.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            disk.write_file(path, flipped).unwrap();
            match Engine::open_with_storage(&dir, Options::default(), Arc::new(disk)) {
                Err(Error::Corrupt { file, offset, .. }) => {
                    assert_eq!(&file, path, "bit {bit}");
                    assert!(offset <= content.len() as u64, "bit {bit}: offset {offset}");
                    detected += 1;
                }
                Ok(db) => match db.recovery_report().torn_tail.clone() {
                    None => {
                        assert_eq!(
                            db.state_hash().unwrap(),
                            hash,
                            "{} bit {bit}: a flip changed the state",
                            path.display()
                        );
                        harmless += 1;
                    }
                    Some(t) => {
                        assert!(
                            bit / 8 >= last_record,
                            "bit {bit}: a tail cut before the last record"
                        );
                        assert_eq!(&t.file, path);
                        assert_eq!(t.offset, last_record as u64, "bit {bit}");
                        assert_eq!(t.bytes, (content.len() - last_record) as u64);
                        assert_eq!(db.state_hash().unwrap(), before_last, "bit {bit}");
                        torn += 1;
                    }
                },
                Err(e) => panic!("{} bit {bit}: unexpected error {e}", path.display()),
            }
        }
    }
    eprintln!("bit flips: {detected} detected, {harmless} harmless, {torn} torn tails");
    assert!(detected > 4000);
    // Every bit of the last record's header, payload and chain value is a torn tail.
    let wal = files
        .iter()
        .find(|(p, _)| p.to_string_lossy().ends_with(".log"))
        .unwrap()
        .1;
    let last = *record_offsets(wal).last().unwrap();
    assert_eq!(torn, (wal.len() - last) * 8);
}

/// Salvage opens read-only up to the damage and says where it is; a strict open refuses
/// damage that a valid record follows.
#[test]
fn salvage_reads_the_intact_prefix() {
    let (sim, dir, _, _) = small_db();
    let files = sim.state().files();
    let (wal, content) = files
        .iter()
        .find(|(p, _)| p.to_string_lossy().ends_with(".log"))
        .unwrap();
    // Damage the payload of the second record (the SetTag): the first record after the
    // snapshot stays intact, and a valid record follows the damage.
    let mut bad = content.clone();
    let second = record_offsets(content)[1];
    bad[second + 24] ^= 0x10;
    sim.write_file(wal, bad).unwrap();
    let strict =
        Engine::open_with_storage(&dir, Options::default(), Arc::new(sim.clone())).unwrap_err();
    assert_eq!(strict.code(), ErrorCode::Corrupt);
    let db = Engine::open_with_storage(&dir, Options::salvage(), Arc::new(sim.clone())).unwrap();
    let report = db.salvage_report().unwrap().clone();
    assert_eq!(&report.file, wal);
    assert_eq!(
        report.recovered_seq, 4,
        "snapshot at 3, one intact record after it"
    );
    assert_eq!(db.len().unwrap(), 2);
    assert_eq!(
        db.get(0).unwrap().unwrap().tag,
        Some(3),
        "the damaged SetTag is not applied"
    );
    assert!(matches!(
        db.insert(&[1.0, 1.0], None, b""),
        Err(Error::ReadOnly)
    ));
    // What salvage recovered can be exported and rebuilt elsewhere.
    let ex = db.export().unwrap();
    assert_eq!((ex.base_seq, ex.commands.len()), (3, 1));
    assert_eq!(ex.replay().unwrap().state_hash(), db.state_hash().unwrap());
    drop(db);
    assert_eq!(
        sim.state().files()[wal].len(),
        content.len(),
        "salvage changed a file"
    );
}
