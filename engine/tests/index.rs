//! The approximate index in a durable database: it is kept in snapshots (and verified when
//! loaded), recovery reloads it and replays the log into it, so a reopened database, a crash
//! image and a database that never closed hold the same index bytes; an index can be added to
//! an existing database; other parameters than the database's are refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::PathBuf;
use std::sync::Arc;
use valori_engine::sim::{Rng, SimStorage};
use valori_engine::{Engine, Error, Options};
use valori_kernel::{Config, ErrorCode, IndexParams, Kernel, Metric};

fn dir() -> PathBuf {
    PathBuf::from("/db")
}

fn params() -> IndexParams {
    IndexParams::new(8, 40).unwrap()
}

fn options(metric: Metric) -> Options {
    Options::new(6, metric).index(params())
}

fn vector(i: u32) -> Vec<f32> {
    (0..6)
        .map(|j| (((i * 7 + j * 13) % 29) as f32 - 14.0) / 40.0 + 0.01 * j as f32)
        .collect()
}

fn index_hash(db: &Engine) -> [u8; 32] {
    db.with_kernel(|k| k.index_hash()).unwrap().unwrap()
}

/// Inserts and deletes with checkpoints among them.
fn work(db: &Engine, from: u32, to: u32) {
    let mut done = Vec::new();
    for i in from..to {
        let id = db.insert(&vector(i), Some(u64::from(i % 3)), b"").unwrap();
        done.push(id);
        if i % 5 == 4 {
            db.delete(done[done.len() / 2]).unwrap();
        }
        if i % 97 == 96 {
            db.checkpoint().unwrap();
        }
    }
}

#[test]
fn a_reopened_database_has_the_same_index_on_every_metric() {
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let sim = SimStorage::new();
        let db = Engine::open_with_storage(dir(), options(metric), Arc::new(sim.clone())).unwrap();
        work(&db, 0, 400);
        let (hash, state) = (index_hash(&db), db.state_hash().unwrap());
        let q = vector(1000);
        let hits = db.search_approx(&q, 10, None, 16).unwrap();
        assert_eq!(hits.len(), 10);
        db.close().unwrap();
        // Reopened without naming the index: it is the database's.
        let db =
            Engine::open_with_storage(dir(), Options::default(), Arc::new(sim.clone())).unwrap();
        assert_eq!(db.index_params().unwrap(), Some(params()));
        assert_eq!((index_hash(&db), db.state_hash().unwrap()), (hash, state));
        assert_eq!(db.search_approx(&q, 10, None, 16).unwrap(), hits);
        // And it goes on the same as one that never closed.
        work(&db, 400, 600);
        let reopened = index_hash(&db);
        db.close().unwrap();
        let sim2 = SimStorage::new();
        let db2 =
            Engine::open_with_storage(dir(), options(metric), Arc::new(sim2.clone())).unwrap();
        work(&db2, 0, 400);
        work(&db2, 400, 600);
        assert_eq!(index_hash(&db2), reopened, "{metric:?}");
        // Other parameters are refused; nothing is opened.
        db2.close().unwrap();
        let e = Engine::open_with_storage(
            dir(),
            Options::default().index(IndexParams::new(16, 40).unwrap()),
            Arc::new(sim2),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)), "{e}");
    }
}

#[test]
fn every_crash_image_recovers_the_index_of_its_state() {
    let sim = SimStorage::new();
    // Every snapshot and segment kept: the reference replays the whole log.
    let all = options(Metric::L2).retain_snapshots(u32::MAX);
    let db = Engine::open_with_storage(dir(), all, Arc::new(sim.clone())).unwrap();
    let mut rng = Rng::new(7);
    for round in 0..12u32 {
        work(&db, round * 50, round * 50 + 50);
        let image = sim.state().crash_image(&mut rng);
        let got = Engine::open_with_storage(dir(), Options::default(), Arc::new(image)).unwrap();
        // The recovered index is the one a kernel that applied the recovered state's commands
        // holds: rebuild that from the log with the same index from the start.
        let seq = got.sequence().unwrap();
        let mut reference = Kernel::new(Config::new(6, Metric::L2).unwrap()).unwrap();
        reference.set_index(Some(params())).unwrap();
        for e in db.history(1, seq as usize).unwrap() {
            reference
                .apply(&valori_engine::decode_entry(&e).unwrap())
                .unwrap();
        }
        assert_eq!(
            got.state_hash().unwrap(),
            reference.state_hash(),
            "round {round}"
        );
        assert_eq!(
            index_hash(&got),
            reference.index_hash().unwrap(),
            "round {round}"
        );
    }
}

#[test]
fn an_index_is_added_to_an_existing_database_and_kept() {
    let sim = SimStorage::new();
    let db = Engine::open_with_storage(
        dir(),
        Options::new(6, Metric::Cosine),
        Arc::new(sim.clone()),
    )
    .unwrap();
    work(&db, 0, 150);
    let e = db.search_approx(&vector(3), 5, None, 10).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
    db.close().unwrap();
    let db = Engine::open_with_storage(
        dir(),
        Options::default().index(params()),
        Arc::new(sim.clone()),
    )
    .unwrap();
    let built = index_hash(&db);
    // The same as building it over the state in id order.
    let mut k = Kernel::from_bytes(&db.with_kernel(|k| k.to_bytes()).unwrap()).unwrap();
    k.set_index(Some(params())).unwrap();
    assert_eq!(k.index_hash().unwrap(), built);
    work(&db, 150, 200);
    let after = index_hash(&db);
    // A crash now (no close) recovers the same: the index was snapshotted when it was built.
    let image = sim.state().process_crash_image();
    drop(db);
    let db = Engine::open_with_storage(dir(), Options::default(), Arc::new(image)).unwrap();
    assert_eq!(index_hash(&db), after);
}

#[test]
fn a_damaged_index_section_is_reported() {
    let sim = SimStorage::new();
    let db = Engine::open_with_storage(dir(), options(Metric::L2), Arc::new(sim.clone())).unwrap();
    work(&db, 0, 60);
    db.checkpoint().unwrap();
    db.close().unwrap();
    let (path, mut bytes) = sim
        .state()
        .files()
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().ends_with(".vsnap"))
        .unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 1;
    sim.write_file(&path, bytes).unwrap();
    let e = Engine::open_with_storage(dir(), Options::default(), Arc::new(sim)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Corrupt, "{e}");
    assert!(e.to_string().contains("checksum"), "{e}");
}

/// Bytes of log after the newest snapshot once `n` records are inserted under automatic
/// checkpoints, and the state's size; a reopened copy must hold the same state and index.
fn logged_after_bulk_load(options: Options, n: u32) -> (usize, usize) {
    let sim = SimStorage::new();
    let db = Engine::open_with_storage(dir(), options, Arc::new(sim.clone())).unwrap();
    for i in 0..n {
        db.insert(&vector(i), None, b"").unwrap();
    }
    let wal: usize = sim
        .state()
        .files()
        .iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(".log"))
        .map(|(_, c)| c.len())
        .sum();
    let state = db.with_kernel(|k| k.encoded_len_hint()).unwrap() as usize;
    let (hash, index) = (
        db.state_hash().unwrap(),
        db.with_kernel(|k| k.index_hash()).unwrap(),
    );
    drop(db);
    let db = Engine::open_with_storage(dir(), Options::default(), Arc::new(sim)).unwrap();
    assert_eq!(db.state_hash().unwrap(), hash);
    assert_eq!(db.with_kernel(|k| k.index_hash()).unwrap(), index);
    (wal, state)
}

/// With an index, the automatic checkpoint counts the log `INDEX_REPLAY_WEIGHT` times: recovery
/// replays at most a sixteenth of the state's size into the index. Without an index the same
/// load leaves up to the state's size in the log, which the indexed bound would refuse (the
/// control that the load is large enough for the weight to matter).
#[test]
fn with_an_index_the_automatic_checkpoint_keeps_the_log_a_weight_shorter() {
    let limit = 2048;
    let weight = valori_engine::INDEX_REPLAY_WEIGHT as usize;
    assert_eq!(weight, 16);
    let (wal, state) =
        logged_after_bulk_load(options(Metric::L2).checkpoint_wal_bytes(limit), 2000);
    let record = 100; // one logged insert of six components, with its frame, is below this
    assert!(
        wal < limit as usize / weight + state / weight + record,
        "indexed: {wal} bytes of log after the newest snapshot, state {state}"
    );
    let (plain_wal, plain_state) = logged_after_bulk_load(
        Options::new(6, Metric::L2).checkpoint_wal_bytes(limit),
        2000,
    );
    assert_eq!(plain_state, state);
    assert!(
        plain_wal > state / weight + limit as usize / weight + record,
        "without an index the log may grow to the state's size: {plain_wal} of {state}"
    );
}
