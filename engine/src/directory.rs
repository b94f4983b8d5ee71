//! The database directory: the lock, the listing of snapshots and WAL segments, installing a
//! checkpoint (snapshot, next segment, retiring what they supersede), starting a segment, and
//! reading the files back for an export. Knows file names and the order of syncs, not how a
//! database is recovered or used.

use crate::error::{Error, Result};
use crate::snapshot::{self, parse_snapshot_name, snapshot_name};
use crate::storage::{LockGuard, Storage, StorageFile};
use crate::wal::{self, parse_segment, parse_segment_name, segment_name, Chain};
use std::path::Path;
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
/// segments and snapshots it supersedes. Returns the new segment, open for appending.
pub(crate) fn install_checkpoint(
    storage: &dyn Storage,
    dir: &Path,
    seq: u64,
    chain: &Chain,
    kernel: &Kernel<'_>,
) -> Result<Box<dyn StorageFile>> {
    let name = snapshot_name(seq);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = storage.create(&tmp).map_err(Error::io("creating", &tmp))?;
    snapshot::write(seq, chain, kernel, &mut |b: &[u8]| f.append(b))
        .map_err(Error::io("writing", &tmp))?;
    f.sync().map_err(Error::io("syncing", &tmp))?;
    drop(f);
    storage
        .rename(&tmp, &path)
        .map_err(Error::io("renaming to", &path))?;
    storage
        .sync_dir(dir)
        .map_err(Error::io("syncing directory", dir))?;
    let file = new_segment(storage, dir, seq + 1, chain)?;
    let listing = list(storage, dir)?;
    let superseded = listing
        .segments
        .iter()
        .filter(|(first, _)| *first <= seq)
        .chain(listing.snapshots.iter().filter(|(at, _)| *at < seq));
    for (_, name) in superseded {
        let p = dir.join(name);
        storage.remove(&p).map_err(Error::io("removing", &p))?;
    }
    storage
        .sync_dir(dir)
        .map_err(Error::io("syncing directory", dir))?;
    Ok(file)
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
    let snap_path = dir.join(snapshot_name(snapshot_seq));
    let bytes = storage
        .read(&snap_path)
        .map_err(Error::io("reading", &snap_path))?;
    let snap = snapshot::decode(&bytes).map_err(|(o, r)| Error::corrupt(&snap_path, o, r))?;
    let mut commands = Vec::new();
    for (_, name) in list(storage, dir)?.segments {
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
    Ok((snap.kernel.to_bytes(), commands))
}
