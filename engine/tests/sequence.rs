//! The end of the sequence-number space (`wal::MAX_SEQ`): a file that claims a number past it
//! is damaged (never wrapped around or panicked on), and a database whose log reached it opens,
//! reads, and refuses writes with nothing changed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use valori_engine::sim::SimStorage;
use valori_engine::snapshot::{self, snapshot_name};
use valori_engine::wal::{self, MAX_SEQ};
use valori_engine::{Engine, Error, Options, Storage};
use valori_kernel::{ErrorCode, Metric};

fn dir() -> PathBuf {
    PathBuf::from("/db")
}

fn open(sim: &SimStorage) -> Result<Engine, Error> {
    Engine::open_with_storage(dir(), Options::default(), Arc::new(sim.clone()))
}

/// A database holding one record whose only snapshot claims sequence number `seq` (written
/// with valid checksums, so only the number itself can be refused).
fn database_at(seq: u64) -> (SimStorage, [u8; 32]) {
    let sim = SimStorage::new();
    let db = Engine::open_with_storage(dir(), Options::new(2, Metric::L2), Arc::new(sim.clone()))
        .unwrap();
    db.insert(&[1.0, 2.0], Some(7), b"a").unwrap();
    db.checkpoint().unwrap();
    let hash = db.state_hash().unwrap();
    db.close().unwrap();
    let files = sim.state().files();
    let (old, bytes) = files
        .iter()
        .find(|(p, _)| p.to_string_lossy().ends_with(".vsnap"))
        .unwrap();
    let snap = snapshot::decode(bytes).unwrap();
    for p in files.keys() {
        sim.remove(p).unwrap();
    }
    assert!(!sim.state().files().contains_key(old));
    write(
        &sim,
        &dir().join(snapshot_name(seq)),
        &snapshot::encode(seq, &snap.chain, &snap.kernel),
    );
    (sim, hash)
}

fn write(sim: &SimStorage, path: &Path, bytes: &[u8]) {
    let mut f = sim.create(path).unwrap();
    f.append(bytes).unwrap();
    f.sync().unwrap();
    sim.sync_dir(&dir()).unwrap();
}

#[test]
fn the_last_sequence_number_is_written_and_read_then_writes_are_refused() {
    let (sim, hash) = database_at(MAX_SEQ - 1);
    let db = open(&sim).unwrap();
    assert_eq!(db.state_hash().unwrap(), hash);
    // Record MAX_SEQ is the last one the log can hold.
    let id = db.insert(&[3.0, 4.0], None, b"last").unwrap();
    let after = db.state_hash().unwrap();
    assert_ne!(after, hash);
    let e = db.insert(&[5.0, 6.0], None, b"one too many").unwrap_err();
    assert!(matches!(e, Error::SequenceExhausted), "{e}");
    assert_eq!(e.code(), ErrorCode::Full);
    assert!(e.to_string().contains("last sequence number"), "{e}");
    // Nothing changed, in memory or on disk.
    assert_eq!(db.state_hash().unwrap(), after);
    db.close().unwrap();
    let db = open(&sim).unwrap();
    assert_eq!(db.state_hash().unwrap(), after);
    assert_eq!(db.get(id).unwrap().unwrap().meta, b"last");
    let r = db.recovery_report();
    assert_eq!((r.seq, &r.torn_tail), (MAX_SEQ, &None));
    // A checkpoint at the end works, and still nothing more is taken.
    db.checkpoint().unwrap();
    assert!(matches!(
        db.insert(&[5.0, 6.0], None, b""),
        Err(Error::SequenceExhausted)
    ));
    db.close().unwrap();
    assert_eq!(open(&sim).unwrap().state_hash().unwrap(), after);
}

#[test]
fn a_snapshot_numbered_past_the_end_is_damage() {
    let (sim, _) = database_at(u64::MAX);
    let before = sim.state().files();
    match open(&sim) {
        Err(Error::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, 16);
            assert!(reason.contains("out of range"), "{reason}");
        }
        other => panic!("a snapshot numbered u64::MAX opened: {other:?}"),
    }
    assert_eq!(sim.state().files(), before, "a failed open changed files");
    // Control: the same database one number lower opens.
    let (sim, hash) = database_at(MAX_SEQ);
    assert_eq!(open(&sim).unwrap().state_hash().unwrap(), hash);
}

#[test]
fn a_record_numbered_past_the_end_is_damage() {
    let chain = wal::genesis_chain();
    let segment = |first: u64| {
        let mut seg = wal::segment_header(first, &chain).to_vec();
        let next = wal::encode_record(first, &chain, b"payload", &mut seg);
        (seg, next)
    };
    let (seg, _) = segment(u64::MAX);
    let at = wal::SEGMENT_HEADER_LEN as u64 + 8;
    assert_eq!(
        wal::check_segment(&seg),
        Err((at, "sequence number out of range"))
    );
    // Control: MAX_SEQ is a valid record number, and a record after it cannot be.
    let (mut seg, next) = segment(MAX_SEQ);
    assert_eq!(wal::check_segment(&seg), Ok((1, false)));
    let end = seg.len() as u64;
    wal::encode_record(u64::MAX, &next, b"more", &mut seg);
    assert_eq!(
        wal::check_segment(&seg),
        Err((end + 8, "sequence number out of range"))
    );
}
