//! The database directory: the lock, the listing of snapshots and WAL segments, installing a
//! checkpoint (snapshot, next segment, retiring what they supersede), starting a segment, and
//! reading the files back for an export. Knows file names and the order of syncs, not how a
//! database is recovered or used.

use crate::error::{Error, Result};
use crate::snapshot::{self, parse_snapshot_name, snapshot_name};
use crate::storage::{LockGuard, Storage, StorageFile};
use crate::wal::{self, parse_segment, parse_segment_name, segment_name, Chain};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use valori_kernel::Kernel;

/// Name of the lock file in a database directory.
pub const LOCK_NAME: &str = "LOCK";

/// The files of a database directory, each kind sorted by sequence number.
pub(crate) struct Listing {
    /// `(sequence number, file name)` of each snapshot.
    pub(crate) snapshots: Vec<(u64, String)>,
    /// `(first sequence number, file name)` of each WAL segment.
    pub(crate) segments: Vec<(u64, String)>,
    /// Leftover temporary files of interrupted snapshot writes.
    pub(crate) temps: Vec<String>,
}

impl Listing {
    /// The segments that may hold records at or after sequence number `from`: the ones before
    /// (whose next segment starts at or before `from`) hold only earlier records.
    pub(crate) fn segments_from(&self, from: u64) -> &[(u64, String)] {
        let skip = self
            .segments
            .windows(2)
            .take_while(|w| matches!(w, [_, (next, _)] if *next <= from))
            .count();
        self.segments.get(skip..).unwrap_or_default()
    }
}

/// Lists the database files in `dir`.
pub(crate) fn list(storage: &dyn Storage, dir: &Path) -> Result<Listing> {
    let mut l = Listing {
        snapshots: Vec::new(),
        segments: Vec::new(),
        temps: Vec::new(),
    };
    for name in storage.list(dir).map_err(Error::io("listing", dir))? {
        if let Some(seq) = parse_snapshot_name(&name) {
            l.snapshots.push((seq, name));
        } else if let Some(seq) = parse_segment_name(&name) {
            l.segments.push((seq, name));
        } else if name.ends_with(".tmp") {
            l.temps.push(name);
        }
    }
    l.snapshots.sort();
    l.segments.sort();
    Ok(l)
}

/// Takes the directory's lock; `Busy` if another handle or process holds it. With `create`,
/// creates the directory first if need be. Without it (salvage), creates and writes nothing: a
/// directory without a lock file (a read-only copy, say) is read unlocked.
pub(crate) fn lock(storage: &dyn Storage, dir: &Path, create: bool) -> Result<LockGuard> {
    let lock_path = dir.join(LOCK_NAME);
    let busy = || Error::Busy {
        path: dir.to_path_buf(),
    };
    if !create {
        return match storage.try_lock_existing(&lock_path) {
            Ok(Some(guard)) => Ok(guard),
            Ok(None) => Err(busy()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Box::new(())),
            Err(e) => Err(Error::io("locking", &lock_path)(e)),
        };
    }
    storage
        .create_dir_all(dir)
        .map_err(Error::io("creating", dir))?;
    storage
        .try_lock(&lock_path)
        .map_err(Error::io("locking", &lock_path))?
        .ok_or_else(busy)
}

/// Syncs the directory that holds `dir`, so that a newly created database directory survives
/// a power loss.
pub(crate) fn sync_parent(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    storage
        .sync_dir(parent)
        .map_err(Error::io("syncing directory", parent))
}

/// Removes the temporary files of interrupted snapshot writes.
pub(crate) fn remove_temps(storage: &dyn Storage, dir: &Path, listing: &Listing) -> Result<()> {
    for t in &listing.temps {
        let p = dir.join(t);
        storage.remove(&p).map_err(Error::io("removing", &p))?;
    }
    Ok(())
}

/// Writes the snapshot of `kernel` at `seq` atomically (temp file, fsync, rename, directory
/// fsync), starts the next WAL segment (fsynced, directory fsynced), then removes the
/// segments and snapshots that retention ([`prune`]) no longer needs. Returns the new
/// segment, open for appending.
pub(crate) fn install_checkpoint(
    storage: &dyn Storage,
    dir: &Path,
    seq: u64,
    chain: &Chain,
    kernel: &Kernel<'_>,
    retain: Retention,
) -> Result<Box<dyn StorageFile>> {
    rewrite_snapshot(storage, dir, seq, chain, kernel)?;
    let file = new_segment(storage, dir, seq + 1, chain)?;
    prune(storage, dir, retain)?;
    Ok(file)
}

/// Writes the snapshot at `seq` atomically (a temporary file, synced, renamed over any
/// snapshot of that name, the directory synced).
pub(crate) fn rewrite_snapshot(
    storage: &dyn Storage,
    dir: &Path,
    seq: u64,
    chain: &Chain,
    kernel: &Kernel<'_>,
) -> Result<()> {
    replace_file(storage, dir, &snapshot_name(seq), &mut |f| {
        snapshot::write(seq, chain, kernel, &mut |b: &[u8]| f.append(b))
    })
}

/// Replaces the file `name` in `dir` atomically: written by `fill` to a temporary file,
/// synced, renamed into place, the directory synced.
fn replace_file(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    fill: &mut dyn FnMut(&mut dyn StorageFile) -> std::io::Result<()>,
) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = storage.create(&tmp).map_err(Error::io("creating", &tmp))?;
    fill(&mut *f).map_err(Error::io("writing", &tmp))?;
    f.sync().map_err(Error::io("syncing", &tmp))?;
    drop(f);
    storage
        .rename(&tmp, &path)
        .map_err(Error::io("renaming to", &path))?;
    storage
        .sync_dir(dir)
        .map_err(Error::io("syncing directory", dir))
}

/// What checkpoints keep (`Options::retain_snapshots`, `Options::retain_for`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Retention {
    /// The newest this many snapshots (at least one).
    pub(crate) snapshots: u32,
    /// And every snapshot written within this long (by its file's modification time).
    pub(crate) within: Option<std::time::Duration>,
    /// And the log from this sequence number on (an open reader's pin, [`crate::LogPin`]).
    pub(crate) log_from: Option<u64>,
}

impl Retention {
    /// Only the newest snapshot.
    pub(crate) const NEWEST: Retention = Retention {
        snapshots: 1,
        within: None,
        log_from: None,
    };
}

/// Removes the snapshots and WAL segments that retention no longer needs: everything before
/// the oldest snapshot kept (the newest `retain.snapshots`, and those written within
/// `retain.within`), except what a tag pins (the newest snapshot at or before the tag and the
/// log after it). Syncs the directory.
pub(crate) fn prune(storage: &dyn Storage, dir: &Path, retain: Retention) -> Result<()> {
    let listing = list(storage, dir)?;
    let snaps: Vec<u64> = listing.snapshots.iter().map(|(s, _)| *s).collect();
    let kept = (retain.snapshots.max(1) as usize).min(snaps.len());
    let Some(&oldest_kept) = snaps.get(snaps.len() - kept) else {
        return Ok(());
    };
    let mut keep_from = oldest_kept;
    if let Some(within) = retain.within {
        let now = std::time::SystemTime::now();
        for (seq, name) in &listing.snapshots {
            // A snapshot whose age is unknown (no modification time) is kept.
            let young = storage.modified(&dir.join(name)).map_or(true, |t| {
                now.duration_since(t).map_or(true, |age| age <= within)
            });
            if young {
                keep_from = keep_from.min(*seq);
                break;
            }
        }
    }
    for tag in read_tags(storage, dir)? {
        // The newest snapshot the tagged point can be rebuilt from; a tag older than every
        // snapshot pins nothing (its point is already gone).
        if let Some(&base) = snaps.iter().rev().find(|&&s| s <= tag.seq) {
            keep_from = keep_from.min(base);
        }
    }
    let mut removed = false;
    for (_, name) in listing.snapshots.iter().filter(|(at, _)| *at < keep_from) {
        let p = dir.join(name);
        storage.remove(&p).map_err(Error::io("removing", &p))?;
        removed = true;
    }
    // The segments before those that may hold records after `keep_from` (or at a reader's
    // pin) go.
    let log_from = keep_from
        .saturating_add(1)
        .min(retain.log_from.unwrap_or(u64::MAX));
    let kept = listing.segments_from(log_from).len();
    for (_, name) in listing.segments.iter().take(listing.segments.len() - kept) {
        let p = dir.join(name);
        storage.remove(&p).map_err(Error::io("removing", &p))?;
        removed = true;
    }
    if removed {
        storage
            .sync_dir(dir)
            .map_err(Error::io("syncing directory", dir))?;
    }
    Ok(())
}

/// Name of the file holding a database's tags.
pub const TAGS_NAME: &str = "TAGS";
const TAGS_MAGIC: [u8; 4] = *b"VLRT";
const TAGS_VERSION: u32 = 1;
/// Longest tag name, in bytes.
pub const MAX_TAG_NAME: usize = 64;

/// A named point in a database's history, pinned against retention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryTag {
    /// The name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
    pub name: String,
    /// The sequence number it names (the state after that command).
    pub seq: u64,
}

/// True for a valid tag name.
pub fn valid_tag_name(name: &str) -> bool {
    (1..=MAX_TAG_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The tags of the database in `dir`, sorted by (sequence number, name); none if it has no
/// tags file. A damaged file is `Corrupt`.
pub(crate) fn read_tags(storage: &dyn Storage, dir: &Path) -> Result<Vec<HistoryTag>> {
    let path = dir.join(TAGS_NAME);
    let bytes = match storage.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading", &path)(e)),
    };
    decode_tags(&bytes).map_err(|(at, why)| Error::corrupt(&path, at, why))
}

fn decode_tags(bytes: &[u8]) -> std::result::Result<Vec<HistoryTag>, (u64, &'static str)> {
    let body_len = bytes
        .len()
        .checked_sub(32)
        .ok_or((0, "tags file is too short"))?;
    let (body, check) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != check {
        return Err((body_len as u64, "tags file checksum does not match"));
    }
    if body.get(..4) != Some(&TAGS_MAGIC[..]) {
        return Err((0, "not a tags file (bad magic)"));
    }
    let u32_at = |at: usize| {
        body.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    if u32_at(4) != Some(TAGS_VERSION) {
        return Err((4, "unsupported tags file version"));
    }
    let count = u32_at(8).ok_or((8, "tags file is too short"))?;
    let mut pos = 12;
    let mut tags = Vec::new();
    for _ in 0..count {
        let at = pos as u64;
        let seq = body
            .get(pos..pos + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or((at, "tags file is truncated"))?;
        let len = usize::from(*body.get(pos + 8).ok_or((at, "tags file is truncated"))?);
        let name = body
            .get(pos + 9..pos + 9 + len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .filter(|n| valid_tag_name(n))
            .ok_or((at, "bad tag name"))?;
        tags.push(HistoryTag {
            name: name.to_string(),
            seq,
        });
        pos += 9 + len;
    }
    if pos != body.len() {
        return Err((pos as u64, "bytes after the last tag"));
    }
    Ok(tags)
}

/// Replaces the tags file atomically (temporary file, fsync, rename, directory fsync).
pub(crate) fn write_tags(storage: &dyn Storage, dir: &Path, tags: &[HistoryTag]) -> Result<()> {
    let mut sorted = tags.to_vec();
    sorted.sort_by(|a, b| (a.seq, &a.name).cmp(&(b.seq, &b.name)));
    let mut out = Vec::new();
    out.extend_from_slice(&TAGS_MAGIC);
    out.extend_from_slice(&TAGS_VERSION.to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for t in &sorted {
        out.extend_from_slice(&t.seq.to_le_bytes());
        out.push(t.name.len() as u8);
        out.extend_from_slice(t.name.as_bytes());
    }
    let check = blake3::hash(&out);
    out.extend_from_slice(check.as_bytes());
    replace_file(storage, dir, TAGS_NAME, &mut |f| f.append(&out))
}

/// Locks `dir` (created if missing) for a new database: `Exists` if it holds one; temporary
/// files an interrupted write left are removed.
fn lock_new(storage: &dyn Storage, dir: &Path) -> Result<LockGuard> {
    let lock = lock(storage, dir, true)?;
    let listing = list(storage, dir)?;
    if !listing.snapshots.is_empty() || !listing.segments.is_empty() {
        return Err(Error::Exists {
            path: dir.to_path_buf(),
        });
    }
    remove_temps(storage, dir, &listing)?;
    Ok(lock)
}

/// Creates a database in `dir` (which must hold none) whose state is `kernel` at sequence
/// number `seq` after chain value `chain`: its first snapshot and an empty segment after it.
pub(crate) fn create_with_state(
    storage: &dyn Storage,
    dir: &Path,
    seq: u64,
    chain: &Chain,
    kernel: &Kernel<'_>,
) -> Result<()> {
    let _lock = lock_new(storage, dir)?;
    drop(install_checkpoint(
        storage,
        dir,
        seq,
        chain,
        kernel,
        Retention::NEWEST,
    )?);
    sync_parent(storage, dir)
}

/// A new database's snapshot file being received ([`incoming`]): written to a temporary
/// file, made the database's first snapshot only once its bytes verify ([`Incoming::finish`]).
/// Dropped unfinished, the temporary file and the lock file are removed again.
pub(crate) struct Incoming {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    tmp: PathBuf,
    lock: Option<LockGuard>,
    file: Option<Box<dyn StorageFile>>,
    unsynced: usize,
}

/// How many bytes of a received snapshot are written before they are synced: the file goes
/// to the disk while the rest arrives, and the last sync has little left to do.
const INCOMING_SYNC: usize = 32 << 20;

/// The temporary name of a snapshot file being received ([`Incoming`]).
const INCOMING_SNAPSHOT: &str = "incoming-snapshot.tmp";

/// Starts receiving the snapshot file of a new database in `dir` (which must hold none).
pub(crate) fn incoming(storage: Arc<dyn Storage>, dir: &Path) -> Result<Incoming> {
    let lock = lock_new(&*storage, dir)?;
    let tmp = dir.join(INCOMING_SNAPSHOT);
    let file = match storage.create(&tmp) {
        Ok(f) => f,
        Err(e) => {
            let _ = storage.remove(&dir.join(LOCK_NAME));
            drop(lock);
            return Err(Error::io("creating", &tmp)(e));
        }
    };
    Ok(Incoming {
        storage,
        dir: dir.to_path_buf(),
        tmp,
        lock: Some(lock),
        file: Some(file),
        unsynced: 0,
    })
}

impl Incoming {
    /// Appends the next bytes of the file (synced once enough have been written since the last
    /// sync, before these are written).
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Err(Error::Internal(
                "a received snapshot written after its end".into(),
            ));
        };
        if self.unsynced >= INCOMING_SYNC {
            f.sync().map_err(Error::io("syncing", &self.tmp))?;
            self.unsynced = 0;
        }
        f.append(bytes).map_err(Error::io("writing", &self.tmp))?;
        self.unsynced += bytes.len();
        Ok(())
    }

    /// Ends the file, whose bytes are `bytes`: writes the last of them, `unwritten`, and syncs
    /// it while `verify` checks and decodes them (to the sequence number, chain value and
    /// state they hold); only if they verify is it renamed into place and the first segment
    /// started after it. Returns the held lock, the segment (open for appending) and what
    /// `verify` returned.
    pub(crate) fn finish<T: Send>(
        mut self,
        bytes: &[u8],
        unwritten: &[u8],
        verify: impl FnOnce(&[u8]) -> Result<(u64, Chain, T)> + Send,
    ) -> Result<(LockGuard, Box<dyn StorageFile>, T)> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::Internal("a received snapshot finished twice".into()))?;
        let (verified, synced) = std::thread::scope(|s| {
            let verifying = s.spawn(|| verify(bytes));
            let synced = file
                .append(unwritten)
                .map_err(Error::io("writing", &self.tmp))
                .and_then(|()| file.sync().map_err(Error::io("syncing", &self.tmp)));
            let verified = verifying
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("verifying a snapshot panicked".into())));
            (verified, synced)
        });
        drop(file);
        // On an error, dropping `self` removes the temporary file and the lock file.
        let (seq, chain, value) = verified.and_then(|v| synced.map(|()| v))?;
        let (storage, dir) = (&*self.storage, self.dir.as_path());
        let path = dir.join(snapshot_name(seq));
        storage
            .rename(&self.tmp, &path)
            .map_err(Error::io("renaming to", &path))?;
        let lock = self.lock.take();
        storage
            .sync_dir(dir)
            .map_err(Error::io("syncing directory", dir))?;
        let segment = new_segment(storage, dir, seq + 1, &chain)?;
        sync_parent(storage, dir)?;
        let lock =
            lock.ok_or_else(|| Error::Internal("a received snapshot lost its lock".into()))?;
        Ok((lock, segment, value))
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if self.lock.is_some() {
            self.file = None;
            let _ = self.storage.remove(&self.tmp);
            let _ = self.storage.remove(&self.dir.join(LOCK_NAME));
        }
    }
}

/// Creates the segment whose first record will be `first`, after chain value `chain`: header
/// written and fsynced, directory fsynced.
pub(crate) fn new_segment(
    storage: &dyn Storage,
    dir: &Path,
    first: u64,
    chain: &Chain,
) -> Result<Box<dyn StorageFile>> {
    let path = dir.join(segment_name(first));
    let mut f = storage
        .create(&path)
        .map_err(Error::io("creating", &path))?;
    f.append(&wal::segment_header(first, chain))
        .map_err(Error::io("writing", &path))?;
    f.sync().map_err(Error::io("syncing", &path))?;
    storage
        .sync_dir(dir)
        .map_err(Error::io("syncing directory", dir))?;
    Ok(f)
}

/// Reads back the snapshot at `snapshot_seq` (its kernel encoding) and the logged commands
/// after it through `seq`.
pub(crate) fn read_back(
    storage: &dyn Storage,
    dir: &Path,
    snapshot_seq: u64,
    seq: u64,
) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let base = read_snapshot_state(storage, dir, snapshot_seq)?;
    let mut commands = Vec::new();
    let listing = list(storage, dir)?;
    for (_, name) in listing.segments_from(snapshot_seq.saturating_add(1)) {
        let path = dir.join(name);
        let bytes = storage.read(&path).map_err(Error::io("reading", &path))?;
        // The intact records before any damage: a salvage handle exports what it recovered.
        let seg = match parse_segment(&bytes) {
            Ok(seg) | Err((_, Some(seg))) => seg,
            Err((d, None)) => return Err(Error::corrupt(&path, d.offset, d.reason)),
        };
        for rec in seg.records {
            if rec.seq > snapshot_seq && rec.seq <= seq {
                commands.push(bytes.get(rec.payload).unwrap_or_default().to_vec());
            }
        }
    }
    // Every command through `seq` must have been found, in order (the log was verified when
    // it was recovered; this guards against files changed since).
    if commands.len() as u64 != seq - snapshot_seq {
        return Err(Error::corrupt(
            dir,
            0,
            format!(
                "the log no longer holds commands {}..={seq}",
                snapshot_seq + 1
            ),
        ));
    }
    Ok((base, commands))
}

/// The kernel state encoding (`docs/FORMAT.md` §3) held by the snapshot at `snapshot_seq`,
/// checked as the snapshot is decoded.
pub(crate) fn read_snapshot_state(
    storage: &dyn Storage,
    dir: &Path,
    snapshot_seq: u64,
) -> Result<Vec<u8>> {
    let path = dir.join(snapshot_name(snapshot_seq));
    let bytes = storage.read(&path).map_err(Error::io("reading", &path))?;
    let snap = snapshot::decode(&bytes).map_err(|(o, r)| Error::corrupt(&path, o, r))?;
    Ok(snap.kernel.to_bytes())
}
