//! Recovery (`Engine::open`) of a database directory made of arbitrary files on the simulated
//! disk (`valori_engine::sim::SimStorage`, in memory). The input is a list of files, each
//! `kind: u8, len: u32 LE, len bytes` (the last may be cut short):
//!
//! - `kind & 3`: 0 a WAL segment named after the first sequence number in its header, 1 a
//!   snapshot file named after its sequence number, 2 a WAL segment named one past it (a name
//!   that disagrees with the header), 3 a stray file;
//! - `kind & 4`: the checksums are fixed up first (`fixup`), so mutations reach the checks
//!   behind them (sequence numbers, chains, torn tails, fences, the kernel decoder).
//!
//! Oracles: no panic, no allocation sized by a hostile length, no `Internal` error; a strict
//! open that fails changes no WAL or snapshot file (damage is reported, never silently cut);
//! a salvage open changes no file at all; after a strict open succeeds, the database takes a
//! write (or the kernel refuses it), and closing and reopening it (strict, then salvage) gives
//! the same state hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use valori_engine::sim::SimStorage;
use valori_engine::snapshot::snapshot_name;
use valori_engine::wal::segment_name;
use valori_engine::{Engine, Options, Storage};
use valori_fuzz::fixup;
use valori_kernel::ErrorCode;

const DIR: &str = "/db";
const MAX_FILES: usize = 6;

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The input's files, named as the kind says.
fn files(mut data: &[u8]) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(DIR);
    let mut out = Vec::new();
    while let Some((&kind, rest)) = data.split_first() {
        if out.len() == MAX_FILES {
            break;
        }
        let len = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(rest.len(), |b| u32::from_le_bytes(b) as usize);
        let rest = rest.get(4..).unwrap_or_default();
        let (bytes, tail) = rest.split_at(len.min(rest.len()));
        data = tail;
        let mut bytes = bytes.to_vec();
        let name = match kind & 3 {
            0 | 2 => {
                if kind & 4 != 0 {
                    fixup::wal_segment(&mut bytes);
                }
                segment_name(u64_at(&bytes, 8).wrapping_add(u64::from(kind & 2 != 0)))
            }
            1 => {
                if kind & 4 != 0 {
                    fixup::snapshot_file(&mut bytes);
                }
                snapshot_name(u64_at(&bytes, 16))
            }
            _ => format!("stray-{}", out.len()),
        };
        out.push((dir.join(name), bytes));
    }
    out
}

/// The disk's WAL segments and snapshot files.
fn data_files(disk: &SimStorage) -> BTreeMap<PathBuf, Vec<u8>> {
    disk.state()
        .files()
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "log" || e == "vsnap"))
        .collect()
}

fn open(disk: &SimStorage, options: Options) -> valori_engine::Result<Engine> {
    Engine::open_with_storage(DIR, options, Arc::new(disk.clone()))
}

fn strict() -> Options {
    Options {
        create: false,
        ..Options::default()
    }
}

fn check_error(e: &valori_engine::Error) {
    assert_ne!(e.code(), ErrorCode::Internal, "recovery: {e}");
}

fuzz_target!(|data: &[u8]| {
    let disk = SimStorage::new();
    let dir = Path::new(DIR);
    let Ok(()) = disk.create_dir_all(dir) else {
        return;
    };
    for (path, bytes) in files(data) {
        let Ok(mut f) = disk.create(&path) else {
            return;
        };
        if f.append(&bytes).is_err() || f.sync().is_err() {
            return;
        }
    }
    if disk.sync_dir(dir).is_err() {
        return;
    }

    let before = data_files(&disk);
    let db = match open(&disk, strict()) {
        Ok(db) => db,
        Err(e) => {
            check_error(&e);
            assert!(
                data_files(&disk) == before,
                "a failed strict open changed the files: {e}"
            );
            let everything = disk.state().files();
            match open(&disk, Options::salvage()) {
                Ok(db) => drop(db),
                Err(e) => check_error(&e),
            }
            assert!(
                disk.state().files() == everything,
                "a salvage open changed the files"
            );
            return;
        }
    };

    // A recovered database takes a write and survives close + reopen.
    let dim = match db.config() {
        Ok(c) => c.dim as usize,
        Err(e) => panic!("config of an open database: {e}"),
    };
    // The kernel may refuse it (e.g. a recovered id counter at its end), and so may a log
    // whose files claim its last sequence number; nothing else may.
    match db.insert(&vec![0.5; dim], Some(1), b"after recovery") {
        Ok(_)
        | Err(valori_engine::Error::Kernel(_))
        | Err(valori_engine::Error::SequenceExhausted) => {}
        Err(e) => panic!("a recovered database refused a write: {e}"),
    }
    let hash = db.state_hash().ok();
    if let Err(e) = db.close() {
        panic!("close after recovery: {e}");
    }
    match open(&disk, strict()) {
        Ok(db) => {
            assert_eq!(
                db.state_hash().ok(),
                hash,
                "reopening changed the state (acknowledged writes lost?): {:?}",
                db.recovery_report()
            );
            drop(db);
        }
        Err(e) => panic!("a database written after recovery does not reopen: {e}"),
    }
    let everything = disk.state().files();
    match open(&disk, Options::salvage()) {
        Ok(db) => assert_eq!(db.state_hash().ok(), hash, "salvage sees another state"),
        Err(e) => panic!("salvage open of an intact database: {e}"),
    }
    assert!(
        disk.state().files() == everything,
        "a salvage open changed the files"
    );
});
