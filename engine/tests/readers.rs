//! Readers never wait for an fsync or a checkpoint's snapshot write, and a panic inside a
//! storage implementation cannot wedge later writers. The storage below holds chosen calls at a
//! gate until the test opens it: a search that completes while the gate is shut did not wait.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;
use valori_engine::sim::SimStorage;
use valori_engine::{Durability, Engine, Error, LockGuard, Options, Storage, StorageFile};
use valori_kernel::Metric;

/// Which calls stop at the gate, or panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trap {
    None,
    /// `sync` of a WAL segment waits until the gate opens.
    WalSync,
    /// Appends to a snapshot's temporary file wait until the gate opens.
    SnapshotWrite,
    /// `sync` of a WAL segment panics.
    PanicOnWalSync,
}

#[derive(Debug, Default)]
struct Gate {
    trap: Mutex<Option<Trap>>,
    /// Calls waiting at the gate, and whether it is open.
    state: Mutex<(usize, bool)>,
    cv: Condvar,
}

impl Gate {
    fn trap(&self) -> Trap {
        self.trap.lock().unwrap().unwrap_or(Trap::None)
    }
    fn wait(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 += 1;
        self.cv.notify_all();
        while !s.1 {
            s = self.cv.wait(s).unwrap();
        }
        s.0 -= 1;
    }
    fn waiting(&self) -> usize {
        self.state.lock().unwrap().0
    }
    /// Waits until a call is held at the gate.
    fn until_held(&self) {
        let mut s = self.state.lock().unwrap();
        while s.0 == 0 {
            let (g, t) = self.cv.wait_timeout(s, Duration::from_secs(30)).unwrap();
            assert!(!t.timed_out(), "no call reached the gate");
            s = g;
        }
    }
    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.cv.notify_all();
    }
}

#[derive(Debug, Clone)]
struct GatedStorage {
    inner: SimStorage,
    gate: Arc<Gate>,
}

struct GatedFile {
    inner: Box<dyn StorageFile>,
    path: PathBuf,
    gate: Arc<Gate>,
}

fn is_wal(p: &Path) -> bool {
    p.to_string_lossy().ends_with(".log")
}

impl StorageFile for GatedFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if self.gate.trap() == Trap::SnapshotWrite && self.path.to_string_lossy().ends_with(".tmp")
        {
            self.gate.wait();
        }
        self.inner.append(data)
    }
    fn sync(&mut self) -> io::Result<()> {
        match self.gate.trap() {
            Trap::WalSync if is_wal(&self.path) => self.gate.wait(),
            Trap::PanicOnWalSync if is_wal(&self.path) => panic!("a storage bug"),
            _ => {}
        }
        self.inner.sync()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
}

impl GatedStorage {
    fn wrap(
        &self,
        path: &Path,
        f: io::Result<Box<dyn StorageFile>>,
    ) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(GatedFile {
            inner: f?,
            path: path.to_path_buf(),
            gate: self.gate.clone(),
        }))
    }
}

impl Storage for GatedStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.wrap(path, self.inner.create(path))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.wrap(path, self.inner.open_append(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        self.inner.try_lock(path)
    }
}

fn gated(durability: Durability) -> (Arc<Engine>, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let storage = GatedStorage {
        inner: SimStorage::new(),
        gate: gate.clone(),
    };
    let opts = Options::new(2, Metric::L2)
        .durability(durability)
        .checkpoint_wal_bytes(0);
    let db = Engine::open_with_storage("/db", opts, Arc::new(storage)).unwrap();
    for i in 0..10 {
        db.insert(&[i as f32, 0.0], None, b"").unwrap();
    }
    (Arc::new(db), gate)
}

/// Runs `f` on another thread; its result, or None if it did not finish within 20 s.
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20)).ok()
}

#[test]
fn a_search_does_not_wait_for_an_fsync() {
    for durability in [Durability::Fsync, Durability::GroupCommit] {
        let (db, gate) = gated(durability);
        *gate.trap.lock().unwrap() = Some(Trap::WalSync);
        let writer = {
            let db = db.clone();
            thread::spawn(move || db.insert(&[100.0, 0.0], None, b"").unwrap())
        };
        gate.until_held();
        let reader = db.clone();
        let hits = within(move || reader.search(&[3.0, 0.0], 1, None).unwrap());
        let hits = hits.unwrap_or_else(|| panic!("{durability:?}: a search waited for an fsync"));
        assert_eq!(hits[0].id, 3);
        assert_eq!(gate.waiting(), 1, "the fsync finished before the search");
        gate.open();
        assert_eq!(writer.join().unwrap(), 10);
    }
}

#[test]
fn a_search_does_not_wait_for_a_checkpoint() {
    let (db, gate) = gated(Durability::Fsync);
    *gate.trap.lock().unwrap() = Some(Trap::SnapshotWrite);
    let checkpointer = {
        let db = db.clone();
        thread::spawn(move || db.checkpoint().unwrap())
    };
    gate.until_held();
    let reader = db.clone();
    let r = within(move || {
        (
            reader.search(&[7.0, 0.0], 2, None).unwrap(),
            reader.state_hash().unwrap(),
            reader.len().unwrap(),
        )
    });
    let (hits, _, len) = r.expect("a search waited for a checkpoint's snapshot write");
    assert_eq!((hits[0].id, len), (7, 10));
    assert_eq!(
        gate.waiting(),
        1,
        "the snapshot write finished before the search"
    );
    gate.open();
    checkpointer.join().unwrap();
}

#[test]
fn a_panicking_storage_does_not_wedge_later_writers() {
    for durability in [Durability::Fsync, Durability::GroupCommit, Durability::None] {
        let (db, gate) = gated(durability);
        *gate.trap.lock().unwrap() = Some(Trap::PanicOnWalSync);
        let first = db.clone();
        let panicked = thread::spawn(move || {
            first.insert(&[1.0, 1.0], None, b"").unwrap();
            first.flush().unwrap();
        })
        .join();
        assert!(
            panicked.is_err(),
            "{durability:?}: the storage did not panic"
        );
        *gate.trap.lock().unwrap() = None;
        let later = db.clone();
        let r = within(move || later.insert(&[2.0, 2.0], None, b""))
            .unwrap_or_else(|| panic!("{durability:?}: a writer hung after a storage panic"));
        assert!(matches!(r, Err(Error::Poisoned)), "{durability:?}: {r:?}");
        let reader = db.clone();
        let r = within(move || reader.len()).expect("a reader hung");
        assert!(matches!(r, Err(Error::Poisoned)), "{durability:?}: {r:?}");
    }
}
