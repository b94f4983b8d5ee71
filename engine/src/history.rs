//! A database's history: the commands its retained WAL segments hold, the past states its
//! retained snapshots and those commands rebuild, verification of every file, and tags that pin
//! a point against retention (`docs/FORMAT.md` §14).
//!
//! [`History`] reads a closed database (it takes the directory's lock, so nothing changes
//! under it); an open [`crate::Engine`] offers the same reads through its own methods.

use crate::directory::{self, HistoryTag, Listing};
use crate::error::{Error, Result};
use crate::export::Export;
use crate::recovery::Replay;
use crate::snapshot;
use crate::storage::{FsStorage, LockGuard, Storage};
use crate::wal::{self, parse_segment, Chain, Segment, Tail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use valori_kernel::{Command, Kernel};

/// One logged command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its sequence number.
    pub seq: u64,
    /// The chain value after it (`docs/FORMAT.md` §8).
    pub chain: [u8; 32],
    /// The encoded command (`docs/FORMAT.md` §2); [`Command::decode`] reads it.
    pub command: Vec<u8>,
    /// The segment file holding it.
    pub file: PathBuf,
    /// Offset of its record in that file.
    pub offset: u64,
}

/// What a database directory holds, as [`History::files`] lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Files {
    /// `(sequence number, file name, bytes)` of each snapshot, oldest first.
    pub snapshots: Vec<(u64, String, u64)>,
    /// `(first sequence number, file name, bytes)` of each WAL segment, oldest first.
    pub segments: Vec<(u64, String, u64)>,
}

/// The sequence numbers whose states can be rebuilt: `first ..= last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The oldest retained snapshot's sequence number.
    pub first: u64,
    /// The last intact logged command (or the newest snapshot, if none follows it).
    pub last: u64,
}

/// What [`History::verify`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Snapshots read and checked (each one's own hash, and replay reaching it).
    pub snapshots: u64,
    /// WAL segments read.
    pub segments: u64,
    /// Records checked (check value, chain) and replayed.
    pub records: u64,
    /// Bytes of WAL read.
    pub wal_bytes: u64,
    /// Bytes of snapshots read.
    pub snapshot_bytes: u64,
    /// The last sequence number.
    pub seq: u64,
    /// The state hash at `seq`.
    pub state_hash: [u8; 32],
    /// An incomplete record at the very end of the log (file, offset, bytes): an interrupted
    /// append, never acknowledged, which the next open cuts off. Not damage.
    pub torn_tail: Option<(PathBuf, u64, u64)>,
}

/// Read access to a closed database's files and history.
pub struct History {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    _lock: LockGuard,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("dir", &self.dir).finish()
    }
}

impl History {
    /// Opens the database in `dir` for reading its history. Changes no file; `Busy` while
    /// another handle holds it, `NoDatabase` if the directory holds none.
    pub fn open(dir: impl AsRef<Path>) -> Result<History> {
        History::open_with_storage(dir, Arc::new(FsStorage))
    }

    /// [`History::open`] through a custom [`Storage`].
    pub fn open_with_storage(dir: impl AsRef<Path>, storage: Arc<dyn Storage>) -> Result<History> {
        let dir = dir.as_ref().to_path_buf();
        let lock = directory::lock(&*storage, &dir, false).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::NoDatabase { path: dir.clone() }
            }
            other => other,
        })?;
        let listing = directory::list(&*storage, &dir).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::NoDatabase { path: dir.clone() }
            }
            other => other,
        })?;
        if listing.snapshots.is_empty() {
            return Err(match listing.segments.first() {
                Some((_, name)) => {
                    Error::corrupt(dir.join(name), 0, "WAL segment without any snapshot")
                }
                None => Error::NoDatabase { path: dir },
            });
        }
        Ok(History {
            storage,
            dir,
            _lock: lock,
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The snapshots and segments in the directory, with their sizes.
    pub fn files(&self) -> Result<Files> {
        files(&*self.storage, &self.dir)
    }

    /// The sequence numbers whose states [`History::state_at`] can rebuild.
    pub fn span(&self) -> Result<Span> {
        span(&*self.storage, &self.dir)
    }

    /// Up to `limit` logged commands from sequence number `from` on, in order.
    pub fn entries(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>> {
        entries(&*self.storage, &self.dir, from, u64::MAX, limit)
    }

    /// The state after command `seq` (and the chain value there), rebuilt from the newest
    /// snapshot at or before it and the log after that snapshot. `NotFound` if retention no
    /// longer covers `seq` or it is past the end of the log.
    pub fn state_at(&self, seq: u64) -> Result<(Kernel<'static>, [u8; 32])> {
        state_at(&*self.storage, &self.dir, seq)
    }

    /// Reads every snapshot and segment: every record's check value and the hash chain across
    /// all of them, replay from the oldest snapshot through the end, each later snapshot's
    /// state hash confirmed by replay, and the tags file. The first damage is `Corrupt` with
    /// file and offset. `progress` gets the bytes read so far and the total.
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<Verified> {
        verify(&*self.storage, &self.dir, progress)
    }

    /// The tags, by sequence number.
    pub fn tags(&self) -> Result<Vec<HistoryTag>> {
        directory::read_tags(&*self.storage, &self.dir)
    }

    /// Names the state after command `seq` (replacing a tag of that name). The point must be
    /// reachable ([`History::span`]); retention then keeps it reachable.
    pub fn set_tag(&self, name: &str, seq: u64) -> Result<()> {
        set_tag(&*self.storage, &self.dir, name, seq)
    }

    /// Removes a tag; `NotFound` if there is none of that name.
    pub fn remove_tag(&self, name: &str) -> Result<()> {
        remove_tag(&*self.storage, &self.dir, name)
    }

    /// The newest snapshot's state and the log after it, as [`crate::Engine::export`] gives
    /// an open database's.
    pub fn export(&self) -> Result<Export> {
        let listing = directory::list(&*self.storage, &self.dir)?;
        let base_seq = listing.snapshots.last().map_or(0, |(s, _)| *s);
        let last = last_seq(&*self.storage, &self.dir, &listing)?;
        let (base_state, commands) =
            directory::read_back(&*self.storage, &self.dir, base_seq, last)?;
        let export = Export {
            base_state,
            base_seq,
            commands,
            state_hash: [0; 32],
        };
        let state_hash = crate::export::replay_export(&export)?.state_hash();
        Ok(Export {
            state_hash,
            ..export
        })
    }

    /// Writes the state after command `seq` as a new database in `out` (which must hold
    /// none), keeping its sequence number and chain value so its log continues this one's.
    /// Returns the state hash.
    pub fn checkout(&self, seq: u64, out: impl AsRef<Path>) -> Result<[u8; 32]> {
        let (kernel, chain) = self.state_at(seq)?;
        directory::create_with_state(&*self.storage, out.as_ref(), seq, &chain, &kernel)?;
        Ok(kernel.state_hash())
    }
}

fn not_retained(seq: u64, span: Option<Span>) -> Error {
    Error::NotRetained {
        seq,
        first: span.map(|s| s.first),
        last: span.map(|s| s.last),
    }
}

pub(crate) fn files(storage: &dyn Storage, dir: &Path) -> Result<Files> {
    let listing = directory::list(storage, dir)?;
    let size = |name: &str| -> Result<u64> {
        let p = dir.join(name);
        storage
            .size(&p)
            .map_err(Error::io("reading the size of", &p))
    };
    let mut out = Files::default();
    for (seq, name) in &listing.snapshots {
        out.snapshots.push((*seq, name.clone(), size(name)?));
    }
    for (first, name) in &listing.segments {
        out.segments.push((*first, name.clone(), size(name)?));
    }
    Ok(out)
}

/// A segment read back: its bytes, its records, and an incomplete tail (offset, bytes).
type ReadSegment = (Vec<u8>, Segment, Option<(u64, u64)>);

/// Reads and parses a segment. Damage is `Corrupt`, except an incomplete record at the end of
/// the last segment (`last`), whose intact records are returned.
fn read_segment(storage: &dyn Storage, path: &Path, last: bool) -> Result<ReadSegment> {
    let bytes = storage.read(path).map_err(Error::io("reading", path))?;
    let (seg, torn) = match parse_segment(&bytes) {
        Ok(seg) => {
            let torn = match seg.tail {
                Tail::Torn(at) if !last => {
                    return Err(Error::corrupt(
                        path,
                        at,
                        "incomplete record in the middle of the log",
                    ))
                }
                Tail::Torn(at) => Some((at, bytes.len() as u64 - at)),
                Tail::Clean => None,
            };
            (seg, torn)
        }
        Err((_, Some(seg))) if last && wal::damage_is_tail(&bytes, seg.valid_len) => {
            let at = seg.valid_len;
            (seg, Some((at, bytes.len() as u64 - at)))
        }
        Err((d, _)) => return Err(Error::corrupt(path, d.offset, d.reason)),
    };
    Ok((bytes, seg, torn))
}

/// The segments that may hold records at or after `from` (the ones before are skipped).
fn segments_from(listing: &Listing, from: u64) -> &[(u64, String)] {
    let skip = listing
        .segments
        .windows(2)
        .take_while(|w| matches!(w, [_, (next, _)] if *next <= from))
        .count();
    listing.segments.get(skip..).unwrap_or_default()
}

pub(crate) fn entries(
    storage: &dyn Storage,
    dir: &Path,
    from: u64,
    through: u64,
    limit: usize,
) -> Result<Vec<LogEntry>> {
    let listing = directory::list(storage, dir)?;
    let segments = segments_from(&listing, from);
    let mut out = Vec::new();
    for (i, (_, name)) in segments.iter().enumerate() {
        if out.len() >= limit {
            break;
        }
        let path = dir.join(name);
        let (bytes, seg, _) = read_segment(storage, &path, i + 1 == segments.len())?;
        for rec in &seg.records {
            if rec.seq < from || rec.seq > through {
                continue;
            }
            if out.len() >= limit {
                break;
            }
            out.push(LogEntry {
                seq: rec.seq,
                chain: rec.after,
                command: bytes.get(rec.payload.clone()).unwrap_or_default().to_vec(),
                file: path.clone(),
                offset: rec.offset,
            });
        }
    }
    Ok(out)
}

/// The end of the log: the last intact record's sequence number (or the newest snapshot's).
fn last_seq(storage: &dyn Storage, dir: &Path, listing: &Listing) -> Result<u64> {
    let newest = listing.snapshots.last().map_or(0, |(s, _)| *s);
    let Some((_, name)) = listing.segments.last() else {
        return Ok(newest);
    };
    let (_, seg, _) = read_segment(storage, &dir.join(name), true)?;
    let end = (seg.first_seq + seg.records.len() as u64).saturating_sub(1);
    Ok(if seg.records.is_empty() {
        newest
    } else {
        end.max(newest)
    })
}

pub(crate) fn span(storage: &dyn Storage, dir: &Path) -> Result<Span> {
    let listing = directory::list(storage, dir)?;
    let Some((first, _)) = listing.snapshots.first() else {
        return Err(Error::NoDatabase {
            path: dir.to_path_buf(),
        });
    };
    Ok(Span {
        first: *first,
        last: last_seq(storage, dir, &listing)?,
    })
}

fn read_snapshot(storage: &dyn Storage, dir: &Path, name: &str) -> Result<snapshot::Snapshot> {
    let path = dir.join(name);
    let bytes = storage.read(&path).map_err(Error::io("reading", &path))?;
    snapshot::decode(&bytes).map_err(|(o, r)| Error::corrupt(&path, o, r))
}

pub(crate) fn state_at(
    storage: &dyn Storage,
    dir: &Path,
    seq: u64,
) -> Result<(Kernel<'static>, [u8; 32])> {
    let listing = directory::list(storage, dir)?;
    let Some((base, name)) = listing.snapshots.iter().rev().find(|(s, _)| *s <= seq) else {
        return Err(not_retained(seq, span(storage, dir).ok()));
    };
    let snap = read_snapshot(storage, dir, name)?;
    let mut replay = Replay {
        kernel: snap.kernel,
        seq: snap.seq,
        chain: snap.chain,
    };
    let segments = segments_from(&listing, base.saturating_add(1));
    for (i, (_, name)) in segments.iter().enumerate() {
        if replay.seq >= seq {
            break;
        }
        let path = dir.join(name);
        let (bytes, seg, _) = read_segment(storage, &path, i + 1 == segments.len())?;
        replay.apply(&seg, &bytes, &path, seq)?;
    }
    if replay.seq != seq {
        return Err(not_retained(seq, span(storage, dir).ok()));
    }
    Ok((replay.kernel, replay.chain))
}

pub(crate) fn set_tag(storage: &dyn Storage, dir: &Path, name: &str, seq: u64) -> Result<()> {
    if !directory::valid_tag_name(name) {
        return Err(Error::Invalid(format!(
            "bad tag name {name:?}: a tag name is 1 to 64 ASCII letters, digits, '.', '_' or '-'"
        )));
    }
    let s = span(storage, dir)?;
    if seq < s.first || seq > s.last {
        return Err(not_retained(seq, Some(s)));
    }
    let mut tags = directory::read_tags(storage, dir)?;
    tags.retain(|t| t.name != name);
    tags.push(HistoryTag {
        name: name.to_string(),
        seq,
    });
    directory::write_tags(storage, dir, &tags)
}

pub(crate) fn remove_tag(storage: &dyn Storage, dir: &Path, name: &str) -> Result<()> {
    let mut tags = directory::read_tags(storage, dir)?;
    let before = tags.len();
    tags.retain(|t| t.name != name);
    if tags.len() == before {
        return Err(Error::NoTag {
            name: name.to_string(),
        });
    }
    directory::write_tags(storage, dir, &tags)
}

pub(crate) fn verify(
    storage: &dyn Storage,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Verified> {
    let listing = directory::list(storage, dir)?;
    let f = files(storage, dir)?;
    let total: u64 = f.snapshots.iter().chain(&f.segments).map(|x| x.2).sum();
    let mut done = 0u64;
    let mut v = Verified {
        snapshots: 0,
        segments: 0,
        records: 0,
        wal_bytes: 0,
        snapshot_bytes: 0,
        seq: 0,
        state_hash: [0; 32],
        torn_tail: None,
    };
    // Every snapshot decodes and matches its own state hash. Replay starts from the oldest;
    // the others are kept as (sequence number, state hash, chain, file) to confirm.
    let mut base = None;
    let mut later = Vec::new();
    for (seq, name) in &listing.snapshots {
        let snap = read_snapshot(storage, dir, name)?;
        let path = dir.join(name);
        if snap.seq != *seq {
            return Err(Error::corrupt(
                &path,
                16,
                "sequence number differs from the file name",
            ));
        }
        let len = f.snapshots.iter().find(|s| s.0 == *seq).map_or(0, |s| s.2);
        v.snapshots += 1;
        v.snapshot_bytes += len;
        done += len;
        progress(done, total);
        if base.is_none() {
            base = Some(Replay {
                kernel: snap.kernel,
                seq: snap.seq,
                chain: snap.chain,
            });
        } else {
            later.push((snap.seq, snap.state_hash, snap.chain, path));
        }
    }
    directory::read_tags(storage, dir)?;
    let Some(mut replay) = base else {
        return Err(Error::NoDatabase {
            path: dir.to_path_buf(),
        });
    };
    let mut later = later.into_iter();
    let mut next_snap = later.next();
    // Each later snapshot must be the state replay reaches at its sequence number.
    let mut confirm = |replay: &Replay, next: &mut Option<(u64, [u8; 32], Chain, PathBuf)>| {
        while let Some((seq, hash, chain, path)) = next.as_ref() {
            if *seq != replay.seq {
                break;
            }
            if *hash != replay.kernel.state_hash() || *chain != replay.chain {
                return Err(Error::corrupt(
                    path,
                    0,
                    "snapshot differs from the state the log replays to at its sequence number",
                ));
            }
            *next = later.next();
        }
        Ok(())
    };
    // The chain across segments: each continues where the previous ended.
    let mut prev_end: Option<(u64, Chain)> = None;
    let count = listing.segments.len();
    for (i, (first, name)) in listing.segments.iter().enumerate() {
        let path = dir.join(name);
        let (bytes, seg, torn) = read_segment(storage, &path, i + 1 == count)?;
        if seg.first_seq != *first {
            return Err(Error::corrupt(
                &path,
                8,
                "first sequence number differs from the file name",
            ));
        }
        if let Some((end, chain)) = prev_end {
            let chain_in = bytes.get(16..48).unwrap_or_default();
            if seg.first_seq != end + 1 || chain_in != chain {
                return Err(Error::corrupt(
                    &path,
                    8,
                    format!(
                        "segment does not continue the previous one (which ended at sequence number {end})"
                    ),
                ));
            }
        }
        v.segments += 1;
        v.records += seg.records.len() as u64;
        v.wal_bytes += bytes.len() as u64;
        if let Some((at, n)) = torn {
            v.torn_tail = Some((path.clone(), at, n));
        }
        // Replay in steps that stop at each snapshot inside this segment.
        let seg_end = (seg.first_seq + seg.records.len() as u64).saturating_sub(1);
        loop {
            let until = next_snap.as_ref().map_or(wal::MAX_SEQ, |s| s.0);
            replay.apply(&seg, &bytes, &path, until)?;
            confirm(&replay, &mut next_snap)?;
            if replay.seq < until || replay.seq >= seg_end {
                break;
            }
        }
        prev_end = Some((seg.first_seq + seg.records.len() as u64 - 1, seg.chain_out));
        done += bytes.len() as u64;
        progress(done, total);
    }
    if let Some((seq, _, _, path)) = next_snap {
        return Err(Error::corrupt(
            &path,
            0,
            format!(
                "the log ends at sequence number {} before this snapshot's {seq}",
                replay.seq
            ),
        ));
    }
    v.seq = replay.seq;
    v.state_hash = replay.kernel.state_hash();
    Ok(v)
}

/// A logged command decoded, for display.
pub fn decode_entry(entry: &LogEntry) -> Result<Command<'_>> {
    Command::decode(&entry.command).map_err(|e| {
        Error::corrupt(
            &entry.file,
            entry.offset + wal::RECORD_HEADER_LEN as u64,
            format!("logged command does not decode: {e}"),
        )
    })
}
