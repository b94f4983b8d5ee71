//! The engine's API: persistence, locking, durability modes, checkpoints, export and replay.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::PathBuf;
use std::sync::Arc;
use valori_engine::sim::SimStorage;
use valori_engine::{replay_export, Durability, Engine, Error, Options};
use valori_kernel::{Direction, ErrorCode, Metric};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("valori-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn data_survives_reopen_in_every_mode() {
    for mode in [Durability::Fsync, Durability::GroupCommit, Durability::None] {
        let dir = tempdir(&format!("reopen-{mode:?}"));
        let db = Engine::open(&dir, Options::new(3, Metric::L2).durability(mode)).unwrap();
        let a = db.insert(&[1.0, 2.0, 3.0], Some(5), b"a").unwrap();
        let ids = db
            .insert_batch(&[0.0, 0.0, 1.0, 0.0, 1.0, 0.0], &[1, 2])
            .unwrap();
        assert_eq!((a, ids.clone()), (0, 1..3));
        let n = db.create_node(1, Some(a), b"node").unwrap();
        let m = db.create_node(1, Some(1), b"").unwrap();
        let e = db.create_edge(3, n, m, Some(0.5)).unwrap();
        db.set_meta(2, b"meta").unwrap();
        db.delete(1).unwrap(); // cascades to node m and edge e
        assert!(db.outgoing(n).unwrap().is_empty());
        let hash = db.state_hash().unwrap();
        assert_eq!(db.sequence().unwrap(), 7);
        db.close().unwrap();

        let db = Engine::open(&dir, Options::default()).unwrap();
        assert_eq!(db.state_hash().unwrap(), hash, "{mode:?}");
        assert_eq!(db.len().unwrap(), 2);
        assert_eq!(db.get(2).unwrap().unwrap().meta, b"meta");
        assert_eq!(db.get(0).unwrap().unwrap().tag, Some(5));
        assert!(db.get(1).unwrap().is_none());
        assert_eq!(e, 0);
        // Writes continue after recovery, with ids and sequence numbers continuing.
        assert_eq!(db.insert(&[9.0, 9.0, 9.0], None, b"").unwrap(), 3);
        assert_eq!(db.sequence().unwrap(), 8);
        db.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn second_opener_is_busy_until_the_first_closes() {
    let dir = tempdir("busy");
    let db = Engine::open(&dir, Options::new(2, Metric::L2)).unwrap();
    let again = Engine::open(&dir, Options::default());
    assert!(matches!(again, Err(Error::Busy { .. })), "{again:?}");
    assert_eq!(again.unwrap_err().code(), ErrorCode::Busy);
    drop(db);
    let db = Engine::open(&dir, Options::default()).unwrap();
    db.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("modes");
    let db = Engine::open(&dir, Options::new(2, Metric::L2)).unwrap();
    db.insert(&[1.0, 1.0], None, b"").unwrap();
    db.checkpoint().unwrap();
    db.insert(&[2.0, 1.0], None, b"").unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    for p in names {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    db.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn invalid_input_changes_nothing_and_logs_nothing() {
    let sim = SimStorage::new();
    let dir = PathBuf::from("/db");
    let db = Engine::open_with_storage(&dir, Options::new(2, Metric::L2), Arc::new(sim.clone()))
        .unwrap();
    db.insert(&[1.0, 2.0], None, b"").unwrap();
    let hash = db.state_hash().unwrap();
    let seq = db.sequence().unwrap();
    let files = sim.state().files();
    for (r, code) in [
        (db.insert(&[1.0], None, b""), ErrorCode::Dimension),
        (
            db.insert(&[f32::NAN, 1.0], None, b""),
            ErrorCode::InvalidInput,
        ),
        (db.insert(&[1e9, 1.0], None, b""), ErrorCode::InvalidInput),
        (db.delete(77).map(|()| 0), ErrorCode::NotFound),
        (db.create_edge(0, 1, 2, None), ErrorCode::NotFound),
        (
            db.insert_batch(&[1.0, 2.0, 3.0], &[]).map(|r| r.start),
            ErrorCode::Dimension,
        ),
    ] {
        assert_eq!(r.unwrap_err().code(), code);
    }
    assert_eq!(
        db.search(&[1.0, 2.0], 0, None).unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    assert_eq!(db.state_hash().unwrap(), hash);
    assert_eq!(db.sequence().unwrap(), seq);
    assert_eq!(
        sim.state().files(),
        files,
        "a refused command reached the disk"
    );
}

#[test]
fn options_must_match_an_existing_database() {
    let dir = tempdir("mismatch");
    Engine::open(&dir, Options::new(4, Metric::Cosine))
        .unwrap()
        .close()
        .unwrap();
    let e = Engine::open(&dir, Options::new(5, Metric::Cosine)).unwrap_err();
    assert!(matches!(e, Error::Mismatch(_)), "{e}");
    let e = Engine::open(&dir, Options::new(4, Metric::L2)).unwrap_err();
    assert!(matches!(e, Error::Mismatch(_)), "{e}");
    assert!(
        e.to_string()
            .contains("the database uses the cosine metric, the options say l2"),
        "{e}"
    );
    let db = Engine::open(&dir, Options::default()).unwrap();
    assert_eq!(db.config().unwrap().dim, 4);
    drop(db);
    // No database, and nothing to create one with: NotFound, whatever stops the creation.
    let fresh = tempdir("nodim");
    for options in [
        Options::default(),
        Options {
            create: false,
            ..Options::new(4, Metric::L2)
        },
    ] {
        let e = Engine::open(&fresh, options).unwrap_err();
        assert!(matches!(e, Error::NoDatabase { .. }), "{e}");
        assert_eq!(e.code(), ErrorCode::NotFound);
        assert!(e.to_string().contains("no database in"), "{e}");
        // The hint is separate, so each binding can name its own API.
        assert_eq!(e.hint(), Some(valori_engine::Hint::Create));
        assert!(e.to_string().contains("Options::new"), "{e}");
        assert!(!e.detail().contains("Options"), "{}", e.detail());
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&fresh);
}

#[test]
fn checkpoints_retire_the_wal_and_snapshots_are_deterministic() {
    let mut snaps = Vec::new();
    for run in 0..2 {
        let sim = SimStorage::new();
        let dir = PathBuf::from("/db");
        let db = Engine::open_with_storage(
            &dir,
            Options::new(2, Metric::L2).checkpoint_wal_bytes(0),
            Arc::new(sim.clone()),
        )
        .unwrap();
        for i in 0..10 {
            db.insert(&[i as f32, 1.0], Some(i), b"x").unwrap();
        }
        db.checkpoint().unwrap();
        let files = sim.state().files();
        let names: Vec<String> = files
            .keys()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "snap-00000000000000000010.vsnap",
                "wal-00000000000000000011.log"
            ],
            "run {run}"
        );
        snaps.push(files[&dir.join("snap-00000000000000000010.vsnap")].clone());
        // A checkpoint with nothing new is a no-op.
        db.checkpoint().unwrap();
        assert_eq!(sim.state().files().len(), 2);
    }
    assert_eq!(
        snaps[0], snaps[1],
        "identical states must give identical snapshot bytes"
    );
}

/// Automatic checkpoints keep the log below `max(checkpoint_wal_bytes, state size)`.
#[test]
fn automatic_checkpoint_keeps_the_wal_bounded() {
    for mode in [Durability::Fsync, Durability::GroupCommit, Durability::None] {
        let sim = SimStorage::new();
        let dir = PathBuf::from("/db");
        let options = Options::new(8, Metric::L2)
            .checkpoint_wal_bytes(4096)
            .durability(mode);
        let db = Engine::open_with_storage(&dir, options, Arc::new(sim.clone())).unwrap();
        for i in 0..500 {
            db.insert(&[i as f32; 8], None, b"").unwrap();
        }
        let files = sim.state().files();
        let wal_bytes: usize = files
            .iter()
            .filter(|(p, _)| p.to_string_lossy().ends_with(".log"))
            .map(|(_, c)| c.len())
            .sum();
        // Bounded by the larger of the limit and the last snapshot (at most the state's
        // size), plus one record.
        let state = db.with_kernel(|k| k.encoded_len_hint()).unwrap() as usize;
        assert!(state > 4096, "the state outgrows the limit in this test");
        assert!(
            wal_bytes < state + 200,
            "{mode:?}: WAL is {wal_bytes} bytes, state {state}"
        );
        assert_eq!(
            files.len(),
            2,
            "{mode:?}: one snapshot and one segment (the simulated lock has no file)"
        );
        let hash = db.state_hash().unwrap();
        drop(db);
        let db = Engine::open_with_storage(&dir, Options::default(), Arc::new(sim)).unwrap();
        assert_eq!(db.state_hash().unwrap(), hash, "{mode:?}");
        assert_eq!(db.len().unwrap(), 500);
    }
}

#[test]
fn export_replays_to_the_same_hash() {
    let dir = tempdir("export");
    let db = Engine::open(&dir, Options::new(3, Metric::InnerProduct)).unwrap();
    for i in 0..5 {
        db.insert(&[i as f32, -1.0, 0.5], None, b"").unwrap();
    }
    db.checkpoint().unwrap();
    for i in 0..4 {
        db.insert(&[0.25, i as f32, 2.0], Some(i), b"after")
            .unwrap();
    }
    let n = db.create_node(0, Some(7), b"n").unwrap();
    db.create_edge(0, n, n, None).unwrap();
    let ex = db.export().unwrap();
    assert_eq!(ex.base_seq, 5);
    assert_eq!(ex.commands.len(), 6);
    let k = replay_export(&ex).unwrap();
    assert_eq!(k.state_hash(), db.state_hash().unwrap());
    assert_eq!(ex.state_hash, db.state_hash().unwrap());
    db.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_readers_and_group_commit_writers() {
    let dir = tempdir("threads");
    let db = Arc::new(
        Engine::open(
            &dir,
            Options::new(4, Metric::L2).durability(Durability::GroupCommit),
        )
        .unwrap(),
    );
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    db.insert(&[t as f32, i as f32, 0.0, 1.0], Some(t), b"")
                        .unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let hits = db.search(&[1.0, 1.0, 0.0, 1.0], 5, None).unwrap();
                    assert!(hits.len() <= 5);
                }
            })
        })
        .collect();
    for h in writers.into_iter().chain(readers) {
        h.join().unwrap();
    }
    assert_eq!(db.len().unwrap(), 200);
    for t in 0..4 {
        assert_eq!(db.search(&[0.0; 4], 100, Some(t)).unwrap().len(), 50);
    }
    let hash = db.state_hash().unwrap();
    let ex = db.export().unwrap();
    assert_eq!(replay_export(&ex).unwrap().state_hash(), hash);
    drop(db);
    let db = Engine::open(&dir, Options::default()).unwrap();
    assert_eq!(db.state_hash().unwrap(), hash);
    db.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn traversal_through_the_engine() {
    let dir = tempdir("graph");
    let db = Engine::open(&dir, Options::new(2, Metric::L2)).unwrap();
    let a = db.create_node(1, None, b"a").unwrap();
    let b = db.create_node(1, None, b"b").unwrap();
    let c = db.create_node(1, None, b"c").unwrap();
    db.create_edge(0, a, b, None).unwrap();
    db.create_edge(0, b, c, None).unwrap();
    let hops: Vec<(u32, u64)> = db
        .traverse(a, 5, Direction::Outgoing, None)
        .unwrap()
        .iter()
        .map(|h| (h.depth, h.node))
        .collect();
    assert_eq!(hops, [(1, b), (2, c)]);
    assert_eq!(db.incoming(c).unwrap()[0].from, b);
    db.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stats_count_records_log_bytes_and_fsyncs() {
    for (mode, fsyncs_per_write) in [(Durability::Fsync, 1), (Durability::None, 0)] {
        let sim = SimStorage::new();
        let db = Engine::open_with_storage(
            "/db",
            Options::new(2, Metric::L2).durability(mode),
            Arc::new(sim.clone()),
        )
        .unwrap();
        let before = db.stats().unwrap();
        for i in 0..3 {
            db.insert(&[i as f32, 1.0], None, b"m").unwrap();
        }
        let s = db.stats().unwrap();
        assert_eq!((s.records, s.seq, s.snapshot_seq), (3, 3, 0), "{mode:?}");
        assert_eq!(s.log.fsyncs - before.log.fsyncs, 3 * fsyncs_per_write);
        let buckets: u64 = s.log.fsync_buckets.iter().sum();
        assert_eq!(buckets, s.log.fsyncs);
        // In `None` mode the records are written at once all the same.
        assert!(s.log.bytes_written > before.log.bytes_written);
        assert_eq!(
            s.wal_bytes,
            64 + s.log.bytes_written - before.log.bytes_written
        );
        db.checkpoint().unwrap();
        let c = db.stats().unwrap();
        assert_eq!((c.snapshot_seq, c.wal_bytes), (3, 64));
    }
}

#[test]
fn search_batch_gives_each_query_what_search_gives() {
    let db = Engine::open_with_storage(
        "/db",
        Options::new(2, Metric::L2),
        Arc::new(SimStorage::new()),
    )
    .unwrap();
    db.insert_batch(&[0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 3.0, 3.0], &[1, 2, 1, 2])
        .unwrap();
    let queries = [0.1f32, 0.0, 2.9, 3.0, 0.0, 1.9];
    let fixed = valori_kernel::fxp::to_vec(&queries[..]).unwrap();
    for (k, tag) in [(2, None), (10, None), (1, Some(2)), (3, Some(9))] {
        let (width, hits) = db.search_batch_fixed(&fixed, k, tag).unwrap();
        let mut want = Vec::new();
        for q in queries.chunks(2) {
            let one = db.search(q, k, tag).unwrap();
            assert_eq!(one.len(), width);
            want.extend(one);
        }
        assert_eq!(hits, want, "k {k} tag {tag:?}");
    }
    assert!(db.search_batch_fixed(&fixed[..3], 1, None).is_err());
    assert!(db.search_batch_fixed(&fixed, 0, None).is_err());
}
