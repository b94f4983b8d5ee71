//! Opening a database: lock, create or recover (newest snapshot + the WAL after it), and the
//! checkpoint installation shared with `Engine::checkpoint`.
//!
//! Recovery is strict: a torn record at the very end of the log (an append interrupted by a
//! crash, never acknowledged) is cut off; any other damage is `Corrupt` with file and offset.
//! A salvage open instead stops at the first damage and opens read-only.

use crate::engine::{Engine, Log, State};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::snapshot::{self, parse_snapshot_name, snapshot_name};
use crate::storage::{Storage, StorageFile};
use crate::wal::{
    self, genesis_chain, parse_segment, parse_segment_name, segment_name, Chain, Segment, Tail,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use valori_kernel::{Command, Config, Kernel, Metric};

/// Name of the lock file in a database directory.
pub const LOCK_NAME: &str = "LOCK";

/// What a salvage open found: the first damage, and how far the recovered state reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SalvageReport {
    /// The damaged file.
    pub file: PathBuf,
    /// Offset of the damage.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// Last sequence number recovered intact.
    pub recovered_seq: u64,
}

struct Listing {
    snapshots: Vec<(u64, String)>,
    segments: Vec<(u64, String)>,
    temps: Vec<String>,
}

fn list(storage: &dyn Storage, dir: &Path) -> Result<Listing> {
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
    for (old, name) in list(storage, dir)?.segments {
        if old <= seq {
            let p = dir.join(name);
            storage.remove(&p).map_err(Error::io("removing", &p))?;
        }
    }
    for (old, name) in list(storage, dir)?.snapshots {
        if old < seq {
            let p = dir.join(name);
            storage.remove(&p).map_err(Error::io("removing", &p))?;
        }
    }
    storage
        .sync_dir(dir)
        .map_err(Error::io("syncing directory", dir))?;
    Ok(file)
}

fn new_segment(
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

/// The last segment found, as recovery left it.
struct TailSegment {
    path: PathBuf,
    valid_len: u64,
    header_torn: bool,
    /// One past the last sequence number it holds.
    end_seq: u64,
    chain_out: Chain,
}

/// Progress of replay through the log.
struct Replay {
    kernel: Kernel<'static>,
    seq: u64,
    chain: Chain,
}

impl Replay {
    /// Applies the records of `seg` after the current sequence number.
    fn apply(&mut self, seg: &Segment, bytes: &[u8], path: &Path) -> Result<()> {
        for rec in &seg.records {
            if rec.seq <= self.seq {
                continue;
            }
            if rec.seq != self.seq + 1 {
                return Err(Error::corrupt(
                    path,
                    rec.offset + 8,
                    format!(
                        "gap in sequence numbers: expected {}, found {}",
                        self.seq + 1,
                        rec.seq
                    ),
                ));
            }
            if rec.prev != self.chain {
                return Err(Error::corrupt(
                    path,
                    rec.offset,
                    "hash chain does not continue from the previous record or snapshot",
                ));
            }
            let payload = bytes.get(rec.payload.clone()).unwrap_or_default();
            let at = rec.offset + wal::RECORD_HEADER_LEN as u64;
            let cmd = Command::decode(payload).map_err(|e| {
                Error::corrupt(path, at, format!("logged command does not decode: {e}"))
            })?;
            self.kernel.apply(&cmd).map_err(|e| {
                Error::corrupt(path, at, format!("logged command does not apply: {e}"))
            })?;
            self.seq = rec.seq;
            self.chain = rec.after;
        }
        Ok(())
    }
}

pub(crate) fn open(dir: &Path, options: Options, storage: Arc<dyn Storage>) -> Result<Engine> {
    if !options.salvage {
        storage
            .create_dir_all(dir)
            .map_err(Error::io("creating", dir))?;
    }
    let lock_path = dir.join(LOCK_NAME);
    let lock = storage
        .try_lock(&lock_path)
        .map_err(Error::io("locking", &lock_path))?
        .ok_or_else(|| Error::Busy {
            path: dir.to_path_buf(),
        })?;
    let listing = list(&*storage, dir)?;
    if !options.salvage {
        for t in &listing.temps {
            let p = dir.join(t);
            storage.remove(&p).map_err(Error::io("removing", &p))?;
        }
    }

    let Some((snap_seq, snap_name)) = listing.snapshots.last().cloned() else {
        return create(dir, options, storage, lock, &listing);
    };
    let snap_path = dir.join(&snap_name);
    let bytes = storage
        .read(&snap_path)
        .map_err(Error::io("reading", &snap_path))?;
    let snap = snapshot::decode(&bytes)
        .map_err(|(offset, reason)| Error::corrupt(&snap_path, offset, reason))?;
    if snap.seq != snap_seq {
        return Err(Error::corrupt(
            &snap_path,
            16,
            "sequence number differs from the file name",
        ));
    }
    check_config(snap.kernel.config(), &options)?;
    let mut replay = Replay {
        kernel: snap.kernel,
        seq: snap.seq,
        chain: snap.chain,
    };
    let mut report = None;
    // The last segment: where appends continue if it ends exactly where replay ended.
    let mut tail: Option<TailSegment> = None;
    let count = listing.segments.len();
    for (i, (first, name)) in listing.segments.iter().enumerate() {
        let path = dir.join(name);
        let bytes = storage.read(&path).map_err(Error::io("reading", &path))?;
        let last = i + 1 == count;
        let outcome = match parse_segment(&bytes) {
            Ok(seg) => match seg.tail {
                Tail::Torn(at) if !last => Err((
                    seg,
                    at,
                    "incomplete record in the middle of the log".to_string(),
                )),
                _ if seg.valid_len > 0 && seg.first_seq != *first => Err((
                    seg,
                    8,
                    "first sequence number differs from the file name".to_string(),
                )),
                _ => Ok(seg),
            },
            Err((damage, partial)) => {
                let seg = partial.unwrap_or(Segment {
                    first_seq: *first,
                    records: Vec::new(),
                    chain_out: [0; 32],
                    valid_len: 0,
                    tail: Tail::Clean,
                });
                Err((seg, damage.offset, damage.reason.to_string()))
            }
        };
        match outcome {
            Ok(seg) => {
                replay
                    .apply(&seg, &bytes, &path)
                    .or_else(|e| salvage_or(&options, e, &mut report, replay.seq))?;
                if report.is_some() {
                    break;
                }
                tail = Some(TailSegment {
                    path,
                    valid_len: seg.valid_len,
                    header_torn: seg.valid_len == 0,
                    end_seq: seg.first_seq + seg.records.len() as u64,
                    chain_out: seg.chain_out,
                });
            }
            Err((seg, offset, reason)) => {
                let e = Error::corrupt(&path, offset, reason);
                if !options.salvage {
                    return Err(e);
                }
                // Salvage: keep the intact records before the damage.
                replay
                    .apply(&seg, &bytes, &path)
                    .or_else(|e2| salvage_or(&options, e2, &mut report, replay.seq))?;
                if report.is_none() {
                    salvage_or(&options, e, &mut report, replay.seq)?;
                }
                break;
            }
        }
    }

    let mut segment_bytes = wal::SEGMENT_HEADER_LEN as u64;
    let file = if options.salvage {
        None
    } else {
        Some(match tail {
            Some(t)
                if !t.header_torn && t.end_seq == replay.seq + 1 && t.chain_out == replay.chain =>
            {
                let mut f = storage
                    .open_append(&t.path)
                    .map_err(Error::io("opening", &t.path))?;
                let len = storage
                    .read(&t.path)
                    .map_err(Error::io("reading", &t.path))?
                    .len() as u64;
                if len != t.valid_len {
                    // The torn tail of an interrupted append: never acknowledged.
                    f.truncate(t.valid_len)
                        .map_err(Error::io("truncating the torn tail of", &t.path))?;
                    f.sync().map_err(Error::io("syncing", &t.path))?;
                }
                segment_bytes = t.valid_len;
                f
            }
            Some(t) if t.header_torn => {
                // A segment whose header never reached the disk (crash while starting it).
                let name = t
                    .path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if parse_segment_name(&name) != Some(replay.seq + 1) {
                    return Err(Error::corrupt(&t.path, 0, "segment header is incomplete"));
                }
                storage
                    .remove(&t.path)
                    .map_err(Error::io("removing", &t.path))?;
                new_segment(&*storage, dir, replay.seq + 1, &replay.chain)?
            }
            Some(t) if t.end_seq > replay.seq => {
                return Err(Error::corrupt(
                    &t.path,
                    16,
                    "segment does not continue the hash chain",
                ));
            }
            // No segment, or only segments the snapshot already covers (checkpoint interrupted
            // before it started the next segment).
            _ => new_segment(&*storage, dir, replay.seq + 1, &replay.chain)?,
        })
    };
    let seq = replay.seq;
    Ok(Engine {
        dir: dir.to_path_buf(),
        storage,
        options,
        state: RwLock::new(State {
            snapshot_bytes: replay.kernel.encoded_len_hint(),
            kernel: replay.kernel,
            seq,
            chain: replay.chain,
            snapshot_seq: snap_seq,
            segment_bytes,
        }),
        log: Mutex::new(Log {
            file,
            pending: Vec::new(),
            pending_seq: seq,
            written_seq: seq,
            synced_seq: seq,
            flushing: false,
        }),
        log_cv: Condvar::new(),
        poisoned: AtomicBool::new(false),
        salvage: report,
        _lock: lock,
    })
}

/// In salvage mode, records the first damage and carries on; otherwise returns it.
fn salvage_or(
    options: &Options,
    e: Error,
    report: &mut Option<SalvageReport>,
    seq: u64,
) -> Result<()> {
    match e {
        Error::Corrupt {
            file,
            offset,
            reason,
        } if options.salvage => {
            if report.is_none() {
                *report = Some(SalvageReport {
                    file,
                    offset,
                    reason,
                    recovered_seq: seq,
                });
            }
            Ok(())
        }
        other => Err(other),
    }
}

fn check_config(found: Config, options: &Options) -> Result<()> {
    if options.dim.is_some_and(|d| d != found.dim) {
        return Err(Error::Mismatch(format!(
            "the database holds {}-dimensional vectors, the options say {}",
            found.dim,
            options.dim.unwrap_or(0)
        )));
    }
    if options.metric.is_some_and(|m| m != found.metric) {
        return Err(Error::Mismatch(format!(
            "the database uses the {:?} metric, the options say {:?}",
            found.metric, options.metric
        )));
    }
    Ok(())
}

fn create(
    dir: &Path,
    options: Options,
    storage: Arc<dyn Storage>,
    lock: crate::storage::LockGuard,
    listing: &Listing,
) -> Result<Engine> {
    if let Some((_, name)) = listing.segments.first() {
        return Err(Error::corrupt(
            dir.join(name),
            0,
            "WAL segment without any snapshot",
        ));
    }
    let dim = match options.dim {
        Some(dim) if options.create && !options.salvage => dim,
        _ => {
            return Err(Error::NoDatabase {
                path: dir.to_path_buf(),
            })
        }
    };
    let kernel = Kernel::new(Config::new(dim, options.metric.unwrap_or(Metric::L2))?)?;
    let chain = genesis_chain();
    let file = install_checkpoint(&*storage, dir, 0, &chain, &kernel)?;
    Ok(Engine {
        dir: dir.to_path_buf(),
        storage,
        options,
        state: RwLock::new(State {
            snapshot_bytes: kernel.encoded_len_hint(),
            kernel,
            seq: 0,
            chain,
            snapshot_seq: 0,
            segment_bytes: wal::SEGMENT_HEADER_LEN as u64,
        }),
        log: Mutex::new(Log {
            file: Some(file),
            pending: Vec::new(),
            pending_seq: 0,
            written_seq: 0,
            synced_seq: 0,
            flushing: false,
        }),
        log_cv: Condvar::new(),
        poisoned: AtomicBool::new(false),
        salvage: None,
        _lock: lock,
    })
}

/// Reads back the snapshot at `snapshot_seq` and the logged commands after it through `seq`.
pub(crate) fn read_log(
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
        let seg =
            parse_segment(&bytes).map_err(|(d, _)| Error::corrupt(&path, d.offset, d.reason))?;
        for rec in seg.records {
            if rec.seq > snapshot_seq && rec.seq <= seq {
                commands.push(bytes.get(rec.payload).unwrap_or_default().to_vec());
            }
        }
    }
    Ok((snap.kernel.to_bytes(), commands))
}
