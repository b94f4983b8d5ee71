//! The tail rule (docs/FORMAT.md §10): damage at the end of the last WAL segment that no valid
//! record follows (zero fill, garbage, a garbled final record, a zero-filled new segment) is
//! cut off at open, synced and reported; damage that a valid record follows is `Corrupt`.
//! Also: open makes what it replayed durable; a record whose fsync failed does not come back;
//! a command larger than one log record is refused before anything changes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use valori_engine::sim::{FaultStorage, Rng, SimStorage};
use valori_engine::{wal, Durability, Engine, Error, LockGuard, Options, Storage, StorageFile};
use valori_kernel::{Command, ErrorCode, Fxp, Metric, Words};

fn dir() -> PathBuf {
    PathBuf::from("/db")
}

/// A database with a snapshot at 0 and records 1..=3 in one segment; returns the disk, the
/// segment's path and content, and the hashes after 2 and 3 records.
fn three_records() -> (SimStorage, PathBuf, Vec<u8>, [u8; 32], [u8; 32]) {
    let sim = SimStorage::new();
    let db = Engine::open_with_storage(dir(), Options::new(2, Metric::L2), Arc::new(sim.clone()))
        .unwrap();
    db.insert(&[1.0, 2.0], Some(1), b"a").unwrap();
    db.insert(&[3.0, 4.0], None, b"bb").unwrap();
    let two = db.state_hash().unwrap();
    db.set_meta(0, b"ccc").unwrap();
    let three = db.state_hash().unwrap();
    db.close().unwrap();
    let (path, content) = segment(&sim);
    (sim, path, content, two, three)
}

fn segment(sim: &SimStorage) -> (PathBuf, Vec<u8>) {
    let files = sim.state().files();
    let mut logs: Vec<_> = files
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(".log"))
        .collect();
    logs.pop().unwrap()
}

fn record_offsets(segment: &[u8]) -> Vec<usize> {
    (64..segment.len().saturating_sub(3))
        .filter(|&i| &segment[i..i + 4] == b"VLRR")
        .collect()
}

fn open(sim: &SimStorage) -> Result<Engine, Error> {
    Engine::open_with_storage(dir(), Options::default(), Arc::new(sim.clone()))
}

/// Opens `damaged` in place of the segment; the tail must be cut at `cut` and reported, the
/// state must be `want`, and the file must hold exactly the intact prefix afterwards.
fn assert_torn(sim: &SimStorage, path: &Path, intact: &[u8], damaged: Vec<u8>, want: [u8; 32]) {
    let extra = damaged.len() - intact.len();
    assert!(wal::check_segment(&damaged).map_or(true, |(_, torn)| torn) || extra == 0);
    sim.write_file(path, damaged).unwrap();
    let db = open(sim).unwrap();
    let t = db
        .recovery_report()
        .torn_tail
        .clone()
        .expect("no torn tail reported");
    assert_eq!(t.file, path);
    assert_eq!(t.offset, intact.len() as u64);
    assert_eq!(t.bytes, extra as u64);
    assert!(!t.reason.is_empty());
    assert_eq!(db.state_hash().unwrap(), want);
    // The database goes on: a new record after the cut, and a clean reopen.
    db.insert(&[5.0, 6.0], None, b"").unwrap();
    let after = db.state_hash().unwrap();
    db.close().unwrap();
    let db = open(sim).unwrap();
    assert_eq!(db.recovery_report().torn_tail, None);
    assert_eq!(db.state_hash().unwrap(), after);
    db.close().unwrap();
}

#[test]
fn zero_fill_after_the_last_record_is_a_torn_tail() {
    let (sim, path, content, _, three) = three_records();
    let mut damaged = content.clone();
    damaged.extend_from_slice(&[0u8; 4096]);
    // Control: the strict reader refuses this file (the old open failed on it).
    assert_eq!(
        wal::check_segment(&damaged).unwrap_err().1,
        "bad record magic"
    );
    assert_torn(&sim, &path, &content, damaged, three);
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let (sim, path, content, _, three) = three_records();
    let mut rng = Rng::new(7);
    let mut damaged = content.clone();
    damaged.extend((0..3000).map(|_| rng.next_u64() as u8));
    assert!(wal::check_segment(&damaged).is_err());
    assert_torn(&sim, &path, &content, damaged, three);
}

#[test]
fn a_garbled_final_record_is_a_torn_tail() {
    let (sim, path, content, two, _) = three_records();
    let last = *record_offsets(&content).last().unwrap();
    for (what, at) in [
        ("header", last + 5),
        ("payload", last + 26),
        ("chain", content.len() - 1),
    ] {
        let mut damaged = content.clone();
        damaged[at] ^= 0x5a;
        // Zero-fill the record's payload instead, as a lost write would.
        let mut zeroed = content.clone();
        zeroed[last + 24..content.len() - 32].fill(0);
        for image in [damaged, zeroed] {
            assert!(wal::check_segment(&image).is_err(), "{what}");
            assert_torn(&sim, &path, &content[..last], image, two);
            sim.write_file(&path, content.clone()).unwrap();
        }
    }
}

#[test]
fn damage_followed_by_a_valid_record_is_corrupt() {
    let (sim, path, content, _, _) = three_records();
    let offsets = record_offsets(&content);
    for (i, &at) in offsets.iter().enumerate().take(offsets.len() - 1) {
        for (kind, damaged) in [
            ("flip", {
                let mut d = content.clone();
                d[at + 24] ^= 1;
                d
            }),
            ("zeros", {
                let mut d = content.clone();
                d[at..offsets[i + 1]].fill(0);
                d
            }),
        ] {
            sim.write_file(&path, damaged).unwrap();
            match open(&sim) {
                Err(Error::Corrupt { file, offset, .. }) => {
                    assert_eq!(file, path, "record {i} {kind}");
                    assert!(offset >= at as u64 && offset < content.len() as u64);
                }
                other => panic!("record {i} {kind}: expected Corrupt, got {other:?}"),
            }
        }
    }
    // Nothing was changed by the refused opens.
    sim.write_file(&path, content.clone()).unwrap();
    assert_eq!(segment(&sim).1, content);
}

#[test]
fn a_zero_filled_new_segment_after_a_checkpoint_recovers() {
    let sim = SimStorage::new();
    let db = Engine::open_with_storage(
        dir(),
        Options::new(2, Metric::Cosine),
        Arc::new(sim.clone()),
    )
    .unwrap();
    db.insert(&[1.0, 2.0], None, b"").unwrap();
    db.checkpoint().unwrap();
    let hash = db.state_hash().unwrap();
    db.close().unwrap();
    let (path, content) = segment(&sim);
    assert_eq!(content.len(), 64, "a fresh segment holds its header only");
    for len in [64, 512, 4096] {
        sim.write_file(&path, vec![0u8; len]).unwrap();
        assert!(wal::check_segment(&vec![0u8; len]).is_err());
        let db = open(&sim).unwrap();
        let t = db.recovery_report().torn_tail.clone().unwrap();
        assert_eq!(
            (t.file.as_path(), t.offset, t.bytes),
            (path.as_path(), 0, len as u64)
        );
        assert_eq!(db.state_hash().unwrap(), hash);
        db.insert(&[0.5, 0.5], None, b"").unwrap();
        db.close().unwrap();
        let db = open(&sim).unwrap();
        assert_eq!(db.len().unwrap(), 2);
        db.delete(1).unwrap();
        db.close().unwrap();
    }
}

/// The simulated disk with locking switched off: a process that died (kill -9) holds no lock,
/// but its writes stay where they were (in the page cache, not necessarily durable).
#[derive(Debug)]
struct NoLock(SimStorage);

impl Storage for NoLock {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.0.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.0.list(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0.read(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.0.create(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.0.open_append(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.0.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.sync_dir(dir)
    }
    fn try_lock(&self, _: &Path) -> io::Result<Option<LockGuard>> {
        Ok(Some(Box::new(())))
    }
}

/// A crash in `None` mode leaves acknowledged records only in the page cache; the reopen that
/// replays them must make them durable: after it, no power-loss image loses them.
#[test]
fn open_makes_what_it_replayed_durable() {
    let sim = SimStorage::new();
    let disk = || Arc::new(NoLock(sim.clone()));
    let opts = Options::new(2, Metric::L2).durability(Durability::None);
    let db = Engine::open_with_storage(dir(), opts, disk()).unwrap();
    for i in 0..5 {
        db.insert(&[i as f32, 1.0], None, b"").unwrap();
    }
    let hash = db.state_hash().unwrap();
    std::mem::forget(db); // kill -9: no flush, no close
                          // Control: a power loss now can lose them (the images do drop unsynced data).
    let mut rng = Rng::new(3);
    let lost = (0..50)
        .filter(|_| {
            let img = sim.state().crash_image(&mut rng);
            let db = Engine::open_with_storage(dir(), Options::default(), Arc::new(img)).unwrap();
            db.state_hash().unwrap() != hash
        })
        .count();
    assert!(
        lost > 0,
        "no image lost the unsynced records: the check below could not fail"
    );
    // The process restarts on the same disk and recovers them...
    let db = Engine::open_with_storage(dir(), Options::default(), disk()).unwrap();
    assert_eq!(db.state_hash().unwrap(), hash);
    assert_eq!(db.recovery_report().replayed, 5);
    std::mem::forget(db); // ...and dies again before any write or close.
    for _ in 0..50 {
        let img = sim.state().crash_image(&mut rng);
        let db = Engine::open_with_storage(dir(), Options::default(), Arc::new(img)).unwrap();
        assert_eq!(
            db.state_hash().unwrap(),
            hash,
            "a replayed record was not made durable"
        );
    }
}

/// A disk holding one record; returns it and that state's hash.
fn one_record() -> (SimStorage, [u8; 32]) {
    let sim = SimStorage::new();
    let db = Engine::open_with_storage(dir(), Options::new(2, Metric::L2), Arc::new(sim.clone()))
        .unwrap();
    db.insert(&[1.0, 1.0], None, b"").unwrap();
    let hash = db.state_hash().unwrap();
    db.close().unwrap();
    (sim, hash)
}

/// A record whose write or fsync failed is cut off and never comes back after a reopen, so a
/// power loss cannot leave later acknowledged records behind a hole.
#[test]
fn a_failed_fsync_does_not_resurrect_its_record() {
    // Count the storage calls of an open and of one insert on this disk.
    let (sim, _) = one_record();
    let probe = FaultStorage::new(sim.clone(), 0);
    let db = Engine::open_with_storage(dir(), Options::default(), Arc::new(probe.clone())).unwrap();
    let at_open = probe.calls();
    db.insert(&[2.0, 2.0], None, b"").unwrap();
    let per_insert = probe.calls() - at_open;
    drop(db);
    assert!(
        per_insert >= 2,
        "an insert makes {per_insert} storage calls"
    );
    for k in 1..=per_insert {
        let (sim, before) = one_record();
        let faulty = FaultStorage::new(sim.clone(), at_open + k);
        let db = Engine::open_with_storage(dir(), Options::default(), Arc::new(faulty)).unwrap();
        let r = db.insert(&[9.0, 9.0], None, b"");
        assert!(
            r.is_err(),
            "call {k} of the insert failed, yet it was acknowledged"
        );
        assert!(matches!(
            db.insert(&[8.0, 8.0], None, b""),
            Err(Error::Poisoned)
        ));
        drop(db);
        let db = open(&sim).unwrap();
        assert_eq!(
            db.state_hash().unwrap(),
            before,
            "call {k}: the record whose write or fsync failed came back"
        );
        db.insert(&[3.0, 3.0], None, b"").unwrap();
        let want = db.state_hash().unwrap();
        db.close().unwrap();
        let mut rng = Rng::new(k);
        for _ in 0..20 {
            let img = sim.state().crash_image(&mut rng);
            let db = Engine::open_with_storage(dir(), Options::default(), Arc::new(img)).unwrap();
            assert_eq!(
                db.state_hash().unwrap(),
                want,
                "call {k}: a hole after a power loss"
            );
        }
    }
}

#[test]
fn a_batch_over_the_record_limit_is_refused_before_anything_changes() {
    let sim = SimStorage::new();
    let db =
        Engine::open_with_storage(dir(), Options::new(1024, Metric::L2), Arc::new(sim.clone()))
            .unwrap();
    db.insert(&[0.5; 1024], None, b"").unwrap();
    let hash = db.state_hash().unwrap();
    let files = sim.state().files();
    // 270,000 x 1,024 floats: 1.1 GB, over the 1 GiB record limit.
    let big = vec![0f32; 270_000 * 1024];
    let e = db.insert_batch(&big, &[]).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(e.to_string().contains("1073741824"), "{e}");
    drop(big);
    // The exact check in `apply`: one component over the limit as a command.
    let rows = (wal::MAX_PAYLOAD as usize / 4 / 1024) + 1;
    let raw = vec![Fxp::ZERO; rows * 1024];
    let cmd = Command::InsertBatch {
        ids: Words::EMPTY,
        tags: Words::EMPTY,
        vectors: raw[..].into(),
    };
    assert!(cmd.encoded_len() > wal::MAX_PAYLOAD as usize);
    assert!(matches!(db.apply(&cmd), Err(Error::TooLarge { .. })));
    drop(raw);
    assert_eq!(db.state_hash().unwrap(), hash);
    assert_eq!(
        sim.state().files(),
        files,
        "a refused batch reached the disk"
    );
    db.close().unwrap();
    let db = open(&sim).unwrap();
    assert_eq!(db.state_hash().unwrap(), hash);
}

/// A failed fsync in `None` mode cuts off every record written since the last successful one
/// (none of them durable), so a reopen cannot find them and a power loss cannot leave later
/// records behind a hole.
#[test]
fn a_failed_fsync_cuts_everything_unsynced() {
    let (sim, before) = one_record();
    let probe = FaultStorage::new(sim.clone(), 0);
    let opts = || Options::default().durability(Durability::None);
    let db = Engine::open_with_storage(dir(), opts(), Arc::new(probe.clone())).unwrap();
    let at_open = probe.calls();
    for i in 0..3 {
        db.insert(&[i as f32, 5.0], None, b"").unwrap();
    }
    let before_flush = probe.calls() - at_open;
    drop(db); // its flush syncs: the call after the three appends
    let (sim, _) = {
        let _ = sim;
        one_record()
    };
    let faulty = FaultStorage::new(sim.clone(), at_open + before_flush + 1);
    let db = Engine::open_with_storage(dir(), opts(), Arc::new(faulty)).unwrap();
    for i in 0..3 {
        db.insert(&[i as f32, 5.0], None, b"").unwrap();
    }
    assert!(db.flush().is_err(), "the fsync was meant to fail");
    drop(db);
    let db = open(&sim).unwrap();
    assert_eq!(
        db.state_hash().unwrap(),
        before,
        "unsynced records came back"
    );
    db.insert(&[7.0, 7.0], None, b"").unwrap();
    let want = db.state_hash().unwrap();
    db.close().unwrap();
    let mut rng = Rng::new(11);
    for _ in 0..30 {
        let img = sim.state().crash_image(&mut rng);
        let db = Engine::open_with_storage(dir(), Options::default(), Arc::new(img)).unwrap();
        assert_eq!(db.state_hash().unwrap(), want, "a hole after a power loss");
    }
}

/// A checkpoint interrupted after its snapshot, before it started the next segment, leaves
/// the old segment (covered by the snapshot) last; if a crash also damaged its end, open cuts
/// and reports that, finishes the checkpoint (new segment, old one removed), and the next open
/// is clean.
#[test]
fn an_interrupted_checkpoint_with_a_damaged_old_segment_recovers_for_good() {
    let sim = SimStorage::new();
    let db = Engine::open_with_storage(dir(), Options::new(2, Metric::L2), Arc::new(sim.clone()))
        .unwrap();
    for i in 0..3 {
        db.insert(&[i as f32, 1.0], None, b"").unwrap();
    }
    let (old_path, old) = segment(&sim);
    db.checkpoint().unwrap();
    let hash = db.state_hash().unwrap();
    db.close().unwrap();
    let (new_path, _) = segment(&sim);
    assert_ne!(old_path, new_path);
    // The image: snapshot at 3, the old segment (records 1..=3, all covered by the snapshot)
    // with its last record zero-filled, no new segment.
    let last = *record_offsets(&old).last().unwrap();
    let mut damaged = old.clone();
    damaged[last..].fill(0);
    sim.remove(&new_path).unwrap();
    let mut f = sim.create(&old_path).unwrap();
    f.append(&damaged).unwrap();
    f.sync().unwrap();
    sim.sync_dir(&dir()).unwrap();
    let db = open(&sim).unwrap();
    assert_eq!(db.state_hash().unwrap(), hash);
    let t = db
        .recovery_report()
        .torn_tail
        .clone()
        .expect("the damaged end was not reported");
    assert_eq!(
        (t.file.clone(), t.offset, t.bytes),
        (old_path.clone(), last as u64, (old.len() - last) as u64)
    );
    db.insert(&[9.0, 9.0], None, b"").unwrap();
    let after = db.state_hash().unwrap();
    db.close().unwrap();
    assert!(
        !sim.state().files().contains_key(&old_path),
        "the covered segment was kept"
    );
    let db = open(&sim).unwrap();
    assert_eq!(db.state_hash().unwrap(), after);
    assert_eq!(db.recovery_report().torn_tail, None);
}
