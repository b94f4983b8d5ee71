//! The database directory on a real file system: a new database's directory is synced into
//! its parent; a salvage open creates and writes nothing, so a read-only copy opens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use valori_engine::{Engine, FsStorage, LockGuard, Options, Storage, StorageFile, LOCK_NAME};
use valori_kernel::Metric;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("valori-dir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The real file system, recording every call that would change it; with `refuse`, such a
/// call fails as it would on a read-only file system.
#[derive(Debug, Default)]
struct Recording {
    changes: Mutex<Vec<String>>,
    refuse: bool,
}

impl Recording {
    fn change(&self, what: String) -> io::Result<()> {
        self.changes.lock().unwrap().push(what);
        if self.refuse {
            Err(io::Error::from(io::ErrorKind::ReadOnlyFilesystem))
        } else {
            Ok(())
        }
    }
}

impl Storage for Recording {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.change(format!("mkdir {}", dir.display()))?;
        FsStorage.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        FsStorage.read(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.change(format!("create {}", path.display()))?;
        FsStorage.create(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.change(format!("open_append {}", path.display()))?;
        FsStorage.open_append(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.change(format!("rename {}", from.display()))?;
        FsStorage.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.change(format!("remove {}", path.display()))?;
        FsStorage.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.change(format!("sync_dir {}", dir.display()))?;
        FsStorage.sync_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        self.change(format!("lock (create) {}", path.display()))?;
        FsStorage.try_lock(path)
    }
    fn try_lock_existing(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        FsStorage.try_lock_existing(path)
    }
}

#[test]
fn a_new_database_is_synced_into_its_parent() {
    let parent = tempdir("parent");
    std::fs::create_dir_all(&parent).unwrap();
    let rec = Arc::new(Recording::default());
    let db_dir = parent.join("db");
    let db = Engine::open_with_storage(&db_dir, Options::new(2, Metric::L2), rec.clone()).unwrap();
    db.close().unwrap();
    let changes = rec.changes.lock().unwrap().clone();
    let mkdir = changes
        .iter()
        .position(|c| c.starts_with("mkdir"))
        .expect("no mkdir");
    let synced = changes
        .iter()
        .position(|c| *c == format!("sync_dir {}", parent.display()))
        .expect("the parent directory was never synced");
    assert!(mkdir < synced, "{changes:?}");
    // Reopening an existing database does not sync the parent again.
    let rec = Arc::new(Recording::default());
    drop(Engine::open_with_storage(&db_dir, Options::default(), rec.clone()).unwrap());
    let parent_sync = format!("sync_dir {}", parent.display());
    assert!(!rec.changes.lock().unwrap().contains(&parent_sync));
    std::fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn salvage_opens_a_read_only_copy_without_creating_anything() {
    let dir = tempdir("salvage");
    let db = Engine::open(&dir, Options::new(2, Metric::Cosine)).unwrap();
    db.insert(&[1.0, 2.0], None, b"x").unwrap();
    let hash = db.state_hash().unwrap();
    db.close().unwrap();
    // A copy without its lock file, on a file system that refuses every change.
    std::fs::remove_file(dir.join(LOCK_NAME)).unwrap();
    let ro = Arc::new(Recording {
        refuse: true,
        ..Recording::default()
    });
    // Control: a normal open needs to write, so it fails here.
    assert!(Engine::open_with_storage(&dir, Options::default(), ro.clone()).is_err());
    ro.changes.lock().unwrap().clear();
    let db = Engine::open_with_storage(&dir, Options::salvage(), ro.clone()).unwrap();
    assert_eq!(db.state_hash().unwrap(), hash);
    assert!(db.salvage_report().is_none());
    drop(db);
    assert_eq!(*ro.changes.lock().unwrap(), Vec::<String>::new());
    assert!(!dir.join(LOCK_NAME).exists(), "salvage created a lock file");
    // With a lock file present, salvage still takes the lock: a writer is Busy meanwhile.
    std::fs::write(dir.join(LOCK_NAME), b"").unwrap();
    let salvage = Engine::open(&dir, Options::salvage()).unwrap();
    let e = Engine::open(&dir, Options::default()).unwrap_err();
    assert_eq!(e.code(), valori_kernel::ErrorCode::Busy);
    drop(salvage);
    std::fs::remove_dir_all(&dir).unwrap();
}
