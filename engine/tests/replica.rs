//! Copies of a log (docs/FORMAT.md §8, WAL 3): chain values depend on the commands alone, so
//! a follower that starts from the leader's snapshot and applies the leader's records has the
//! leader's sequence number, chain value and state hash at every step; a record that does not
//! continue its log (a gap, an altered byte, another log's record) is refused with nothing
//! changed; a redelivered one changes nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::PathBuf;
use valori_engine::wal::replica_record;
use valori_engine::{Durability, Engine, Error, LogEntry, Options, ReplicaApplied};
use valori_kernel::{IndexParams, Metric};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("valori-replica-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn vector(i: u32) -> [f32; 4] {
    [
        i as f32 * 0.25,
        1.0 - i as f32 * 0.125,
        (i % 7) as f32,
        -0.5,
    ]
}

/// Inserts, batches, deletes, metadata, tags and graph commands, `n` rounds from `from`.
fn work(db: &Engine, from: u32, n: u32) {
    for i in from..from + n {
        let id = db.insert(&vector(i), Some(u64::from(i % 3)), b"m").unwrap();
        if i % 4 == 0 {
            db.insert_batch(&[vector(i), vector(i + 1)].concat(), &[1, 2])
                .unwrap();
        }
        if i % 5 == 1 {
            db.delete(id).unwrap();
        }
        if i % 6 == 2 {
            db.set_meta(id, b"changed").unwrap();
            let a = db.create_node(1, Some(id), b"node").unwrap();
            let b = db.create_node(2, None, b"other").unwrap();
            db.create_edge(3, a, b, Some(0.5)).unwrap();
        }
    }
}

fn records(db: &Engine, from: u64) -> Vec<Vec<u8>> {
    db.history(from, usize::MAX)
        .unwrap()
        .iter()
        .map(|e: &LogEntry| replica_record(e.seq, &e.command, &e.chain))
        .collect()
}

fn snapshot_bytes(db: &Engine) -> Vec<u8> {
    let (_, path) = db.newest_snapshot().unwrap().expect("a snapshot");
    std::fs::read(path).unwrap()
}

/// Two databases given the same commands in different durability modes have the same chain
/// value at every sequence number (version 2 chained the fence flag, which differs between
/// the modes: this test fails under that rule).
#[test]
fn chain_values_do_not_depend_on_the_durability_mode() {
    let dirs = [tempdir("fsync"), tempdir("none"), tempdir("group")];
    let modes = [Durability::Fsync, Durability::None, Durability::GroupCommit];
    let dbs: Vec<Engine> = dirs
        .iter()
        .zip(modes)
        .map(|(d, m)| Engine::open(d, Options::new(4, Metric::L2).durability(m)).unwrap())
        .collect();
    for (db, mode) in dbs.iter().zip(modes) {
        work(db, 0, 10);
        if mode == Durability::None {
            db.flush().unwrap(); // fences the next record in this mode only
        }
        work(db, 10, 10);
    }
    let logs: Vec<Vec<LogEntry>> = dbs
        .iter()
        .map(|d| d.history(1, usize::MAX).unwrap())
        .collect();
    assert!(logs[0].len() > 30, "{} records", logs[0].len());
    for log in &logs[1..] {
        assert_eq!(log.len(), logs[0].len());
        for (a, b) in log.iter().zip(&logs[0]) {
            assert_eq!((a.seq, a.chain), (b.seq, b.chain));
        }
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A follower from the leader's snapshot, fed the leader's records in pieces (with a
/// checkpoint and a reopen on each side in between), matches the leader at every step, on
/// every metric and with an index.
#[test]
fn a_follower_from_a_snapshot_matches_the_leader_at_every_record() {
    for (metric, index) in [
        (Metric::L2, None),
        (Metric::InnerProduct, None),
        (Metric::Cosine, Some(IndexParams::new(8, 32).unwrap())),
    ] {
        let (ld, fd) = (tempdir("leader"), tempdir("follower"));
        let mut options = Options::new(4, metric);
        options.index = index;
        let leader = Engine::open(&ld, options.clone()).unwrap();
        work(&leader, 0, 8);
        leader.checkpoint().unwrap();
        let (snap_seq, _) = leader.newest_snapshot().unwrap().unwrap();
        assert!(snap_seq > 0);
        work(&leader, 8, 8);
        let mut follower =
            Engine::create_from_snapshot(&fd, &snapshot_bytes(&leader), Options::default())
                .unwrap();
        assert_eq!(follower.sequence().unwrap(), snap_seq);
        for (i, rec) in records(&leader, snap_seq + 1).iter().enumerate() {
            let seq = snap_seq + 1 + i as u64;
            assert!(matches!(
                follower.apply_replica(rec).unwrap(),
                ReplicaApplied::Applied { seq: s, .. } if s == seq
            ));
            let (want, _) = leader.state_at_seq(seq).unwrap();
            assert_eq!(
                follower.state_hash().unwrap(),
                want.state_hash(),
                "{metric:?} {seq}"
            );
            if i == 5 {
                follower.close().unwrap();
                follower = Engine::open(&fd, Options::default()).unwrap();
            }
        }
        assert_eq!(follower.position().unwrap(), leader.position().unwrap());
        assert_eq!(
            follower.with_kernel(|k| k.index_hash()).unwrap(),
            leader.with_kernel(|k| k.index_hash()).unwrap()
        );
        // Later work, after a checkpoint on each side, continues the same way.
        leader.checkpoint().unwrap();
        follower.checkpoint().unwrap();
        let from = follower.sequence().unwrap() + 1;
        work(&leader, 16, 4);
        for rec in records(&leader, from) {
            follower.apply_replica(&rec).unwrap();
        }
        assert_eq!(follower.position().unwrap(), leader.position().unwrap());
        assert_eq!(follower.state_hash().unwrap(), leader.state_hash().unwrap());
        drop((leader, follower));
        for d in [ld, fd] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn corrupt_reason(e: Error) -> String {
    match e {
        Error::Corrupt { file, reason, .. } => {
            assert_eq!(file, PathBuf::from(valori_engine::REPLICA_STREAM));
            reason
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Redelivered records change nothing; a gap, an altered record and another log's record
/// are Corrupt with nothing changed, and the follower goes on with the right record after.
#[test]
fn records_that_do_not_continue_the_log_are_refused_with_nothing_changed() {
    let (ld, fd, od) = (tempdir("l"), tempdir("f"), tempdir("o"));
    let leader = Engine::open(&ld, Options::new(4, Metric::L2)).unwrap();
    let other = Engine::open(&od, Options::new(4, Metric::L2)).unwrap();
    let follower =
        Engine::create_from_snapshot(&fd, &snapshot_bytes(&leader), Options::default()).unwrap();
    work(&leader, 0, 4);
    work(&other, 1, 4);
    let recs = records(&leader, 1);
    let foreign = records(&other, 1);
    assert!(recs.len() >= 6);
    for r in &recs[..3] {
        follower.apply_replica(r).unwrap();
    }
    let before = (follower.position().unwrap(), follower.state_hash().unwrap());
    let unchanged = |what: &str| {
        assert_eq!(
            (follower.position().unwrap(), follower.state_hash().unwrap()),
            before,
            "{what} changed the follower"
        );
    };
    assert_eq!(
        follower.apply_replica(&recs[1]).unwrap(),
        ReplicaApplied::Duplicate(2)
    );
    unchanged("a duplicate");
    let reason = corrupt_reason(follower.apply_replica(&recs[4]).unwrap_err());
    assert!(
        reason.contains("gap: record 5 arrived but the next this copy needs is 4"),
        "{reason}"
    );
    unchanged("a gap");
    let mut altered = recs[3].clone();
    let n = altered.len();
    altered[n - 33] ^= 1; // the payload's last byte
    let reason = corrupt_reason(follower.apply_replica(&altered).unwrap_err());
    assert!(reason.contains("chain value does not follow"), "{reason}");
    unchanged("an altered record");
    // Record 4 of another log with the same number: its chain starts elsewhere.
    let reason = corrupt_reason(follower.apply_replica(&foreign[3]).unwrap_err());
    assert!(reason.contains("record 4"), "{reason}");
    unchanged("another log's record");
    let reason = corrupt_reason(follower.apply_replica(&recs[3][..10]).unwrap_err());
    assert!(reason.contains("record 4"), "{reason}");
    unchanged("a truncated record");
    for r in &recs[3..] {
        follower.apply_replica(r).unwrap();
    }
    assert_eq!(follower.position().unwrap(), leader.position().unwrap());
    assert_eq!(follower.state_hash().unwrap(), leader.state_hash().unwrap());
    drop((leader, other, follower));
    for d in [ld, fd, od] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A snapshot whose bytes are damaged is refused before anything is written.
#[test]
fn a_damaged_snapshot_creates_nothing() {
    let (ld, fd) = (tempdir("ls"), tempdir("fs"));
    let leader = Engine::open(&ld, Options::new(4, Metric::L2)).unwrap();
    work(&leader, 0, 3);
    leader.checkpoint().unwrap();
    let mut bytes = snapshot_bytes(&leader);
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    assert!(matches!(
        Engine::create_from_snapshot(&fd, &bytes, Options::default()),
        Err(Error::Corrupt { .. })
    ));
    assert!(!fd.exists() || std::fs::read_dir(&fd).unwrap().next().is_none());
    // An index the options name differently from the snapshot's is refused the same way.
    let indexed = tempdir("li");
    let mut options = Options::new(4, Metric::L2);
    options.index = Some(IndexParams::new(8, 32).unwrap());
    let with_index = Engine::open(&indexed, options).unwrap();
    work(&with_index, 0, 3);
    with_index.checkpoint().unwrap();
    let other_index = Options {
        index: Some(IndexParams::new(16, 32).unwrap()),
        ..Options::default()
    };
    assert!(matches!(
        Engine::create_from_snapshot(&fd, &snapshot_bytes(&with_index), other_index),
        Err(Error::Mismatch(_))
    ));
    assert!(!fd.exists() || std::fs::read_dir(&fd).unwrap().next().is_none());
    // Over an existing database: Exists, and that database is untouched.
    let good = snapshot_bytes(&leader);
    let made = Engine::create_from_snapshot(&fd, &good, Options::default()).unwrap();
    let hash = made.state_hash().unwrap();
    drop(made);
    assert!(matches!(
        Engine::create_from_snapshot(&fd, &snapshot_bytes(&with_index), Options::default()),
        Err(Error::Exists { .. })
    ));
    assert_eq!(
        Engine::open(&fd, Options::default())
            .unwrap()
            .state_hash()
            .unwrap(),
        hash
    );
    drop(with_index);
    let _ = std::fs::remove_dir_all(indexed);
    drop(leader);
    for d in [ld, fd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn is_empty_dir(d: &std::path::Path) -> bool {
    !d.exists() || std::fs::read_dir(d).unwrap().next().is_none()
}

/// A snapshot that arrives in pieces (from the network) makes the same database as one
/// handed over whole; damaged, cut short or abandoned, it leaves nothing behind.
#[test]
fn a_snapshot_received_in_pieces_makes_the_same_database_and_damage_leaves_nothing() {
    let ld = tempdir("rcv-l");
    let leader = Engine::open(&ld, Options::new(4, Metric::Cosine)).unwrap();
    work(&leader, 0, 12);
    leader.checkpoint().unwrap();
    let bytes = snapshot_bytes(&leader);
    let fd = tempdir("rcv-f");
    let mut r = Engine::receive_snapshot(&fd, bytes.len()).unwrap();
    assert!(r.is_empty());
    for piece in bytes.chunks(7) {
        r.write(piece).unwrap();
    }
    assert_eq!(r.len(), bytes.len());
    let f = r.finish(Options::default()).unwrap();
    assert_eq!(f.position().unwrap(), leader.position().unwrap());
    assert_eq!(f.state_hash().unwrap(), leader.state_hash().unwrap());
    drop(f);
    let reopened = Engine::open(&fd, Options::default()).unwrap();
    assert_eq!(reopened.state_hash().unwrap(), leader.state_hash().unwrap());
    drop(reopened);
    // Over a database: `Exists` at once.
    assert!(matches!(
        Engine::receive_snapshot(&fd, 0),
        Err(Error::Exists { .. })
    ));
    let gd = tempdir("rcv-g");
    // One byte altered, or the last byte missing: `Corrupt` at the end, nothing left.
    let mut altered = bytes.clone();
    altered[bytes.len() / 2] ^= 1;
    for bad in [&altered[..], &bytes[..bytes.len() - 1]] {
        let mut r = Engine::receive_snapshot(&gd, 0).unwrap();
        r.write(bad).unwrap();
        assert!(matches!(
            r.finish(Options::default()),
            Err(Error::Corrupt { .. })
        ));
        assert!(is_empty_dir(&gd));
    }
    // While one arrives, the directory is taken; abandoned, it leaves nothing.
    let mut r = Engine::receive_snapshot(&gd, 0).unwrap();
    r.write(&bytes[..100]).unwrap();
    assert!(matches!(
        Engine::receive_snapshot(&gd, 0),
        Err(Error::Busy { .. })
    ));
    drop(r);
    assert!(is_empty_dir(&gd));
    let mut r = Engine::receive_snapshot(&gd, 0).unwrap();
    r.write(&bytes).unwrap();
    let g = r.finish(Options::default()).unwrap();
    assert_eq!(g.state_hash().unwrap(), leader.state_hash().unwrap());
    drop((leader, g));
    for d in [ld, fd, gd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A state of several megabytes is checked and hashed on two threads while it is decoded: the
/// result is the same database, and damage is still reported as the checksum's, before any
/// decoding error the damaged bytes would cause.
#[test]
fn a_large_snapshot_decodes_on_two_threads_to_the_same_state() {
    let ld = tempdir("big-l");
    let leader = Engine::open(&ld, Options::new(256, Metric::L2)).unwrap();
    // 10,000 vectors of 256: a 10 MB state, over the two-thread threshold (8 MiB).
    let batch: Vec<f32> = (0..10_000u64 * 256)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    leader.insert_batch(&batch, &[]).unwrap();
    leader.checkpoint().unwrap();
    let bytes = snapshot_bytes(&leader);
    assert!(bytes.len() > 9 << 20);
    let fd = tempdir("big-f");
    let f = Engine::create_from_snapshot(&fd, &bytes, Options::default()).unwrap();
    assert_eq!(f.state_hash().unwrap(), leader.state_hash().unwrap());
    drop(f);
    // The first byte of the state's encoding (after the file's 120-byte header and the
    // section's 16) altered: the decoder refuses it too, but the checksum is what is reported.
    let gd = tempdir("big-g");
    let mut damaged = bytes.clone();
    damaged[136] ^= 0xFF;
    match Engine::create_from_snapshot(&gd, &damaged, Options::default()) {
        Err(Error::Corrupt { reason, .. }) => {
            assert_eq!(reason, "section checksum mismatch");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(is_empty_dir(&gd));
    drop(leader);
    for d in [ld, fd, gd] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A durable-record listener is called when a commit makes records durable, and no more
/// once dropped.
#[test]
fn a_durable_listener_is_called_on_each_durable_commit_until_dropped() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let d = tempdir("listener");
    let db = Engine::open(&d, Options::new(4, Metric::L2)).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&calls);
    let listener = db.on_durable(move || {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    db.insert(&vector(1), None, b"").unwrap();
    db.insert(&vector(2), None, b"").unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    drop(listener);
    db.insert(&vector(3), None, b"").unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // In `none` mode nothing is durable until a flush.
    let quiet = tempdir("listener-none");
    let db2 = Engine::open(
        &quiet,
        Options::new(4, Metric::L2).durability(Durability::None),
    )
    .unwrap();
    let calls2 = Arc::new(AtomicU64::new(0));
    let seen2 = Arc::clone(&calls2);
    let _l = db2.on_durable(move || {
        seen2.fetch_add(1, Ordering::SeqCst);
    });
    db2.insert(&vector(1), None, b"").unwrap();
    assert_eq!(calls2.load(Ordering::SeqCst), 0);
    db2.flush().unwrap();
    assert_eq!(calls2.load(Ordering::SeqCst), 1);
    drop((db, db2));
    let _ = std::fs::remove_dir_all(d);
    let _ = std::fs::remove_dir_all(quiet);
}
