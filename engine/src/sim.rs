//! Test storage: a simulated disk that separates what was written from what is durable, so a
//! test can produce the disk images a power loss could leave; and a wrapper that fails the Nth
//! storage call. Public so applications can test their own use of the engine the same way.
//!
//! A crash image keeps every synced byte and, of what was written since, what one
//! [`ImageClass`] says may survive: a prefix of the appends, a new file size whose data did not
//! arrive (zeros or garbage), or 512-byte sectors persisted in any order.

use crate::storage::{LockGuard, Storage, StorageFile};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Bytes of a disk sector: the unit a disk persists whole or not at all, in any order.
pub const SECTOR: usize = 512;

#[derive(Clone, Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    live: Vec<u8>,
    /// The file size a crash keeps at least: `durable.len()`, except on a disk that lies about
    /// fsync ([`PlantedBug::SyncSizeOnly`]).
    durable_size: usize,
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(PathBuf, usize),
    Rename(PathBuf, PathBuf),
    Unlink(PathBuf),
}

/// A deliberately broken disk, to prove the crash tests can fail.
///
/// Hidden from the docs: it exists for the engine's own planted-bug controls
/// (`tests/crash_sim.rs`), which live outside the crate and so need it public.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// `sync_dir` does nothing: new and renamed files may vanish at a crash.
    SkipDirSync,
    /// `sync` of WAL segments (`*.log`) does nothing: appended records may vanish at a crash.
    SkipWalSync,
    /// `sync` of WAL segments makes the new file size durable but not the data (a disk that
    /// lies about fsync): a crash can leave zeros or garbage where acknowledged records were.
    SyncSizeOnly,
    /// `sync` of WAL segments makes only the first unsynced sector durable: the rest of a
    /// record that crosses a sector boundary may be lost.
    SyncFirstSectorOnly,
}

/// What a power loss leaves of the data written to a file since its last sync. Synced data is
/// never altered; directory changes since the last directory sync survive as an in-order
/// prefix in every class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImageClass {
    /// A prefix of the unsynced appends: none, all, or torn at any byte.
    Prefix,
    /// The new file size reached the disk but not all the data: a prefix of the unsynced data
    /// (ending on a sector boundary or inside a sector), then zeros up to the new size.
    ZeroFill,
    /// Like [`ImageClass::ZeroFill`], with random bytes where the data did not arrive.
    Garbage,
    /// The unsynced sectors persisted in any order (as ALICE models a file system): any
    /// subset of them holds the new data, the others read as before the write (zeros past the
    /// old end of file). The size is the old one, the new one or anything between, so it may
    /// cover sectors that did not persist.
    Reordered,
}

impl ImageClass {
    /// Every class.
    pub const ALL: [ImageClass; 4] = [
        ImageClass::Prefix,
        ImageClass::ZeroFill,
        ImageClass::Garbage,
        ImageClass::Reordered,
    ];

    /// A class chosen by `rng`, each equally likely.
    pub fn pick(rng: &mut Rng) -> ImageClass {
        match rng.upto(3) {
            0 => ImageClass::Prefix,
            1 => ImageClass::ZeroFill,
            2 => ImageClass::Garbage,
            _ => ImageClass::Reordered,
        }
    }
}

/// The full state of a simulated disk at one moment.
#[derive(Clone, Debug, Default)]
pub struct DiskState {
    inodes: Vec<Inode>,
    live_dir: BTreeMap<PathBuf, usize>,
    durable_dir: BTreeMap<PathBuf, usize>,
    pending: Vec<DirOp>,
}

/// A disk state captured just before a sync, with the caller's marker at that moment.
#[derive(Clone, Debug)]
pub struct SyncPoint {
    /// The value of [`SimStorage::set_marker`] when the sync was issued.
    pub marker: u64,
    /// The disk at that moment.
    pub state: DiskState,
}

#[derive(Debug, Default)]
struct Shared {
    disk: DiskState,
    locks: BTreeSet<PathBuf>,
    marker: u64,
    capture: bool,
    points: Vec<SyncPoint>,
    bug: Option<PlantedBug>,
    /// How long a WAL sync takes, so that concurrent writers can queue up behind it.
    wal_sync_delay: Option<Duration>,
}

/// A small deterministic random source for crash images (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A value in `0..=max`.
    pub fn upto(&mut self, max: usize) -> usize {
        (self.next_u64() % (max as u64 + 1)) as usize
    }
}

impl DiskState {
    /// An image a power loss at this moment could leave, of a class chosen by `rng` (see
    /// [`ImageClass`]).
    pub fn crash_image(&self, rng: &mut Rng) -> SimStorage {
        let class = ImageClass::pick(rng);
        self.crash_image_as(class, rng)
    }

    /// An image a power loss at this moment could leave, of class `class`: each file keeps its
    /// synced bytes plus what `class` says may survive of its unsynced writes, chosen by `rng`;
    /// directory changes since the last directory sync survive as an in-order prefix.
    pub fn crash_image_as(&self, class: ImageClass, rng: &mut Rng) -> SimStorage {
        let mut dir = self.durable_dir.clone();
        let keep = rng.upto(self.pending.len());
        for op in self.pending.iter().take(keep) {
            apply_dir_op(&mut dir, op);
        }
        let inodes = self
            .inodes
            .iter()
            .map(|n| Inode::settled(crash_content(n, class, rng)))
            .collect();
        SimStorage::from_disk(DiskState {
            inodes,
            live_dir: dir.clone(),
            durable_dir: dir,
            pending: Vec::new(),
        })
    }

    /// The image a process crash (kill -9) leaves: everything written and every directory
    /// change, since the operating system has them.
    pub fn process_crash_image(&self) -> SimStorage {
        SimStorage::from_disk(DiskState {
            inodes: self
                .inodes
                .iter()
                .map(|n| Inode::settled(n.live.clone()))
                .collect(),
            live_dir: self.live_dir.clone(),
            durable_dir: self.live_dir.clone(),
            pending: Vec::new(),
        })
    }

    /// Every file and its current (live) content.
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        self.live_dir
            .iter()
            .filter_map(|(p, i)| self.inodes.get(*i).map(|n| (p.clone(), n.live.clone())))
            .collect()
    }

    /// Every file and its synced (durable) content.
    pub fn durable_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        self.live_dir
            .iter()
            .filter_map(|(p, i)| self.inodes.get(*i).map(|n| (p.clone(), n.durable.clone())))
            .collect()
    }
}

impl Inode {
    /// A file whose content is all durable.
    fn settled(content: Vec<u8>) -> Inode {
        Inode {
            durable_size: content.len(),
            durable: content.clone(),
            live: content,
        }
    }
}

/// What a crash leaves of one file (see [`ImageClass`]).
fn crash_content(n: &Inode, class: ImageClass, rng: &mut Rng) -> Vec<u8> {
    let (durable, live) = (&n.durable, &n.live);
    if !live.starts_with(durable) {
        // Cut since its last sync (recovery truncating a torn tail): the new size reached the
        // disk or it did not.
        return if rng.upto(1) == 0 {
            durable.clone()
        } else {
            live.clone()
        };
    }
    let (old, new) = (durable.len(), live.len());
    if old == new {
        return durable.clone();
    }
    match class {
        ImageClass::Prefix => {
            let k = match rng.upto(3) {
                0 => 0,
                1 => new - old,
                _ => rng.upto(new - old),
            };
            live.get(..old + k).unwrap_or(live).to_vec()
        }
        ImageClass::ZeroFill | ImageClass::Garbage => {
            let floor = n.durable_size.clamp(old, new);
            let size = if rng.upto(1) == 0 {
                new
            } else {
                floor + rng.upto(new - floor)
            };
            // The data that did arrive: none, whole sectors, or part of a sector.
            let arrived = match rng.upto(2) {
                0 => old,
                1 => {
                    let first = old.div_ceil(SECTOR);
                    let last = size / SECTOR;
                    if last < first {
                        old
                    } else {
                        (first + rng.upto(last - first)) * SECTOR
                    }
                }
                _ => old + rng.upto(size - old),
            };
            let mut out = live.get(..arrived).unwrap_or(live).to_vec();
            while out.len() < size {
                let fill = if class == ImageClass::Garbage {
                    rng.next_u64() as u8
                } else {
                    0
                };
                out.push(fill);
            }
            out
        }
        ImageClass::Reordered => {
            let size = if rng.upto(2) == 0 {
                old + rng.upto(new - old)
            } else {
                new
            };
            let mut out = durable.clone();
            out.resize(size, 0);
            let mut at = old;
            while at < size {
                let end = ((at / SECTOR + 1) * SECTOR).min(size);
                if rng.upto(1) == 0 {
                    if let (Some(dst), Some(src)) = (out.get_mut(at..end), live.get(at..end)) {
                        dst.copy_from_slice(src);
                    }
                }
                at = end;
            }
            out
        }
    }
}

fn apply_dir_op(dir: &mut BTreeMap<PathBuf, usize>, op: &DirOp) {
    match op {
        DirOp::Link(p, i) => {
            dir.insert(p.clone(), *i);
        }
        DirOp::Rename(a, b) => {
            if let Some(i) = dir.remove(a) {
                dir.insert(b.clone(), i);
            }
        }
        DirOp::Unlink(p) => {
            dir.remove(p);
        }
    }
}

/// A simulated disk (see the module docs). Cloning shares the same disk.
#[derive(Clone, Debug, Default)]
pub struct SimStorage(Arc<Mutex<Shared>>);

fn is_wal(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "log")
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", p.display()),
    )
}

impl SimStorage {
    /// An empty disk.
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    fn from_disk(disk: DiskState) -> SimStorage {
        SimStorage(Arc::new(Mutex::new(Shared {
            disk,
            ..Shared::default()
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding this lock can only come from a test; keep going with the data.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A disk whose syncs are broken as `bug` says.
    #[doc(hidden)]
    pub fn with_bug(bug: PlantedBug) -> SimStorage {
        let s = SimStorage::new();
        s.set_bug(Some(bug));
        s
    }

    /// Breaks this disk's syncs as `bug` says from now on (`None`: a correct disk again).
    #[doc(hidden)]
    pub fn set_bug(&self, bug: Option<PlantedBug>) {
        self.lock().bug = bug;
    }

    /// Makes every WAL sync take `delay` (slept without holding the disk), so that concurrent
    /// writers queue up behind it and group commit has something to group.
    pub fn slow_wal_syncs(&self, delay: Duration) {
        self.lock().wal_sync_delay = Some(delay);
    }

    /// Starts recording the disk state before every sync (file or directory).
    pub fn capture_sync_points(&self) {
        self.lock().capture = true;
    }

    /// Sets the marker recorded with the next sync points (e.g. commands acknowledged).
    pub fn set_marker(&self, marker: u64) {
        self.lock().marker = marker;
    }

    /// The recorded sync points, oldest first.
    pub fn sync_points(&self) -> Vec<SyncPoint> {
        self.lock().points.clone()
    }

    /// The disk as it is now.
    pub fn state(&self) -> DiskState {
        self.lock().disk.clone()
    }

    /// Overwrites a file's content (live and durable), e.g. to flip a bit.
    pub fn write_file(&self, path: &Path, content: Vec<u8>) -> io::Result<()> {
        let mut s = self.lock();
        let i = *s.disk.live_dir.get(path).ok_or_else(|| not_found(path))?;
        let n = s.disk.inodes.get_mut(i).ok_or_else(|| not_found(path))?;
        *n = Inode::settled(content);
        Ok(())
    }

    fn capture(s: &mut Shared) {
        if s.capture {
            let point = SyncPoint {
                marker: s.marker,
                state: s.disk.clone(),
            };
            s.points.push(point);
        }
    }
}

struct SimFile {
    disk: SimStorage,
    inode: usize,
    is_wal: bool,
}

impl SimFile {
    fn with<R>(&self, f: impl FnOnce(&mut Inode) -> R) -> io::Result<R> {
        let mut s = self.disk.lock();
        s.disk
            .inodes
            .get_mut(self.inode)
            .map(f)
            .ok_or_else(|| io::Error::other("stale simulated file"))
    }
}

/// What a sync makes durable, on a correct disk or one with a planted bug.
fn sync_inode(n: &mut Inode, bug: Option<PlantedBug>) {
    match bug {
        Some(PlantedBug::SkipWalSync) => {}
        Some(PlantedBug::SyncSizeOnly) => n.durable_size = n.durable_size.max(n.live.len()),
        Some(PlantedBug::SyncFirstSectorOnly) if n.live.starts_with(&n.durable) => {
            let end = (n.durable.len() / SECTOR + 1) * SECTOR;
            n.durable = n.live.get(..end).unwrap_or(&n.live).to_vec();
            n.durable_size = n.durable.len();
        }
        _ => {
            n.durable = n.live.clone();
            n.durable_size = n.durable.len();
        }
    }
}

impl StorageFile for SimFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.with(|n| n.live.extend_from_slice(data))
    }
    fn sync(&mut self) -> io::Result<()> {
        let delay = self.disk.lock().wal_sync_delay.filter(|_| self.is_wal);
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let mut s = self.disk.lock();
        SimStorage::capture(&mut s);
        let bug = s.bug.filter(|b| {
            self.is_wal
                && matches!(
                    b,
                    PlantedBug::SkipWalSync
                        | PlantedBug::SyncSizeOnly
                        | PlantedBug::SyncFirstSectorOnly
                )
        });
        let n = s
            .disk
            .inodes
            .get_mut(self.inode)
            .ok_or_else(|| io::Error::other("stale simulated file"))?;
        sync_inode(n, bug);
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.with(|n| n.live.truncate(len as usize))
    }
}

struct SimLock {
    disk: SimStorage,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.disk.lock().locks.remove(&self.path);
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self
            .lock()
            .disk
            .live_dir
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.lock();
        let i = s.disk.live_dir.get(path).ok_or_else(|| not_found(path))?;
        Ok(s.disk
            .inodes
            .get(*i)
            .map(|n| n.live.clone())
            .unwrap_or_default())
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut s = self.lock();
        let inode = s.disk.inodes.len();
        s.disk.inodes.push(Inode::default());
        s.disk.live_dir.insert(path.to_path_buf(), inode);
        s.disk.pending.push(DirOp::Link(path.to_path_buf(), inode));
        Ok(Box::new(SimFile {
            disk: self.clone(),
            inode,
            is_wal: is_wal(path),
        }))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let inode = *self
            .lock()
            .disk
            .live_dir
            .get(path)
            .ok_or_else(|| not_found(path))?;
        Ok(Box::new(SimFile {
            disk: self.clone(),
            inode,
            is_wal: is_wal(path),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let i = s
            .disk
            .live_dir
            .remove(from)
            .ok_or_else(|| not_found(from))?;
        s.disk.live_dir.insert(to.to_path_buf(), i);
        s.disk
            .pending
            .push(DirOp::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.disk
            .live_dir
            .remove(path)
            .ok_or_else(|| not_found(path))?;
        s.disk.pending.push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        SimStorage::capture(&mut s);
        if s.bug != Some(PlantedBug::SkipDirSync) {
            let ops = std::mem::take(&mut s.disk.pending);
            for op in &ops {
                apply_dir_op(&mut s.disk.durable_dir, op);
            }
        }
        Ok(())
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let mut s = self.lock();
        if !s.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            disk: self.clone(),
            path: path.to_path_buf(),
        })))
    }
}

/// The shared call counter of a [`FaultStorage`] and its files.
#[derive(Debug, Clone)]
struct Counter {
    calls: Arc<AtomicU64>,
    fail_at: u64,
    /// Calls that fail from `fail_at` on.
    failing: u64,
}

impl Counter {
    fn tick(&self) -> io::Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_at > 0 && n >= self.fail_at && n - self.fail_at < self.failing {
            Err(io::Error::other(format!(
                "injected failure at storage call {n}"
            )))
        } else {
            Ok(())
        }
    }
}

/// Wraps a storage and fails its `fail_at`-th call (counting from 1, file calls included) with
/// an I/O error; every later call succeeds again, as a flaky disk would (or, built with
/// [`FaultStorage::failing`], the next few calls fail too).
#[derive(Debug, Clone)]
pub struct FaultStorage<S> {
    inner: S,
    counter: Counter,
}

impl<S: Storage> FaultStorage<S> {
    /// Fails call number `fail_at` (0: never fail, just count).
    pub fn new(inner: S, fail_at: u64) -> Self {
        FaultStorage::failing(inner, fail_at, 1)
    }

    /// Fails `count` calls from number `fail_at` on (`u64::MAX`: every later call, a disk
    /// that stays dead), e.g. a failed fsync and the clean-up after it.
    pub fn failing(inner: S, fail_at: u64, count: u64) -> Self {
        FaultStorage {
            inner,
            counter: Counter {
                calls: Arc::new(AtomicU64::new(0)),
                fail_at,
                failing: count,
            },
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.counter.calls.load(Ordering::SeqCst)
    }

    fn tick(&self) -> io::Result<()> {
        self.counter.tick()
    }

    fn wrap(&self, f: io::Result<Box<dyn StorageFile>>) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FaultFile {
            inner: f?,
            counter: self.counter.clone(),
        }))
    }
}

struct FaultFile {
    inner: Box<dyn StorageFile>,
    counter: Counter,
}

impl StorageFile for FaultFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.counter.tick()?;
        self.inner.append(data)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.counter.tick()?;
        self.inner.sync()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.counter.tick()?;
        self.inner.truncate(len)
    }
}

impl<S: Storage> Storage for FaultStorage<S> {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.tick()?;
        self.inner.list(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.tick()?;
        self.inner.read(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.tick()?;
        self.wrap(self.inner.create(path))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.tick()?;
        self.wrap(self.inner.open_append(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.sync_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        self.tick()?;
        self.inner.try_lock(path)
    }
}
