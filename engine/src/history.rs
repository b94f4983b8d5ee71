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
use crate::wal::{self, parse_segment, Chain, Segment, StreamRecord, Tail};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
        // A directory that is not there holds no database.
        let missing = |e: Error| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::NoDatabase { path: dir.clone() }
            }
            other => other,
        };
        let lock = directory::lock(&*storage, &dir, false).map_err(missing)?;
        let listing = directory::list(&*storage, &dir).map_err(missing)?;
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

    /// The dimension and metric (read from the newest snapshot's header alone).
    pub fn config(&self) -> Result<valori_kernel::Config> {
        let listing = directory::list(&*self.storage, &self.dir)?;
        match listing.snapshots.last() {
            Some((_, name)) => snapshot::read_config(&*self.storage, &self.dir.join(name)),
            None => Err(Error::NoDatabase {
                path: self.dir.clone(),
            }),
        }
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
        set_tag(&*self.storage, &self.dir, name, seq, self.span()?)
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

pub(crate) fn entries(
    storage: &dyn Storage,
    dir: &Path,
    from: u64,
    through: u64,
    limit: usize,
) -> Result<Vec<LogEntry>> {
    let listing = directory::list(storage, dir)?;
    let segments = listing.segments_from(from);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    each_logged(
        storage,
        dir,
        segments,
        &mut LogTotals::default(),
        &mut |path, rec, payload| {
            if rec.seq > through {
                return false;
            }
            if rec.seq >= from {
                out.push(LogEntry {
                    seq: rec.seq,
                    chain: rec.after,
                    command: payload.to_vec(),
                    file: (**path).clone(),
                    offset: rec.offset,
                });
            }
            out.len() < limit
        },
    )?;
    Ok(out)
}

/// Up to `limit` records through `through` of the segment at `path`, read from byte `pos` on,
/// where an earlier read found record `seq` to begin after chain value `chain` (a pinned
/// reader's [`crate::pin::Cursor`]): no rescan from the segment's start. Each record is
/// checked against the chain as a full read checks it; reading stops at the segment's end or
/// at anything that does not verify (the caller then reads the usual way, which reports
/// damage). `None` if the segment cannot be read from there.
pub(crate) fn entries_at(
    storage: &dyn Storage,
    path: &Path,
    at: &crate::pin::Cursor,
    through: u64,
    limit: usize,
) -> Option<Vec<LogEntry>> {
    let mut head = [0u8; wal::SEGMENT_HEADER_LEN];
    std::io::Read::read_exact(&mut storage.open_read_at(path, 0).ok()?, &mut head).ok()?;
    let r = storage.open_read_at(path, at.pos).ok()?;
    let mut stream = wal::SegmentStream::resume(&head, r, at.seq, at.chain, at.pos)?;
    let mut out = Vec::new();
    let mut payload = Vec::new();
    while out.len() < limit {
        payload.clear();
        match stream.next(&mut payload) {
            Ok(Some(rec)) if rec.seq <= through => out.push(LogEntry {
                seq: rec.seq,
                chain: rec.after,
                command: std::mem::take(&mut payload),
                file: path.to_path_buf(),
                offset: rec.offset,
            }),
            _ => break,
        }
    }
    Some(out)
}

/// The end of the log: the last intact record's sequence number (or the newest snapshot's).
fn last_seq(storage: &dyn Storage, dir: &Path, listing: &Listing) -> Result<u64> {
    let newest = listing.snapshots.last().map_or(0, |(s, _)| *s);
    let Some((first, name)) = listing.segments.last() else {
        return Ok(newest);
    };
    // Streamed: only the records' count is needed, not the segment in memory.
    let path = Arc::new(dir.join(name));
    let end = each_record(storage, &path, *first, true, None, &mut |_, _, _| true)?;
    Ok(match end {
        Some(e) if e.records > 0 => e.last_seq.max(newest),
        _ => newest,
    })
}

/// The oldest retained snapshot's sequence number: where the reachable states begin.
pub(crate) fn first_reachable(storage: &dyn Storage, dir: &Path) -> Result<u64> {
    let listing = directory::list(storage, dir)?;
    match listing.snapshots.first() {
        Some((first, _)) => Ok(*first),
        None => Err(Error::NoDatabase {
            path: dir.to_path_buf(),
        }),
    }
}

pub(crate) fn span(storage: &dyn Storage, dir: &Path) -> Result<Span> {
    let first = first_reachable(storage, dir)?;
    let listing = directory::list(storage, dir)?;
    Ok(Span {
        first,
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
    let segments = listing.segments_from(base.saturating_add(1));
    let mut failed = None;
    if replay.seq < seq {
        each_logged(
            storage,
            dir,
            segments,
            &mut LogTotals::default(),
            &mut |path, rec, payload| {
                if rec.seq <= replay.seq {
                    return true;
                }
                if let Err(e) =
                    replay.apply_record(rec.seq, rec.offset, &rec.prev, &rec.after, payload, path)
                {
                    failed = Some(e);
                    return false;
                }
                replay.seq < seq
            },
        )?;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if replay.seq != seq {
        return Err(not_retained(seq, span(storage, dir).ok()));
    }
    Ok((replay.kernel, replay.chain))
}

/// Names the state after `seq`, which must be within `s` (the database's reachable span).
pub(crate) fn set_tag(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    seq: u64,
    s: Span,
) -> Result<()> {
    if !directory::valid_tag_name(name) {
        return Err(Error::Invalid(format!(
            "bad tag name {name:?}: a tag name is 1 to 64 ASCII letters, digits, '.', '_' or '-'"
        )));
    }
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

/// A later snapshot to confirm: sequence number, state hash, chain value, file.
type LaterSnapshot = (u64, [u8; 32], Chain, PathBuf);

/// The snapshots after the oldest, read and checked by their own thread during [`verify`];
/// replay confirms each when it reaches its sequence number.
struct Later<'scope> {
    handle: Option<std::thread::ScopedJoinHandle<'scope, Result<Vec<LaterSnapshot>>>>,
    /// The first one's sequence number (from the listing): replay waits for the thread there.
    first: Option<u64>,
    list: std::vec::IntoIter<LaterSnapshot>,
    next: Option<LaterSnapshot>,
}

impl Later<'_> {
    fn join(&mut self) -> Result<()> {
        if let Some(h) = self.handle.take() {
            let list = h
                .join()
                .map_err(|_| Error::Internal("the snapshot reader panicked".into()))??;
            self.list = list.into_iter();
            self.next = self.list.next();
        }
        Ok(())
    }

    /// Checks every snapshot at or before the replayed sequence number against the replayed
    /// state.
    fn confirm(&mut self, replay: &Replay) -> Result<()> {
        if self.first.is_some_and(|f| replay.seq >= f) {
            self.join()?;
        }
        while let Some((seq, hash, chain, path)) = self.next.as_ref() {
            if *seq > replay.seq {
                break;
            }
            if *seq < replay.seq
                || *hash != crate::snapshot::parallel_state_hash(&replay.kernel)
                || *chain != replay.chain
            {
                return Err(Error::corrupt(
                    path,
                    0,
                    "snapshot differs from the state the log replays to at its sequence number",
                ));
            }
            self.next = self.list.next();
        }
        Ok(())
    }
}

/// What the log reader sends the replaying thread during [`verify`].
enum Read {
    /// Records whose checks and chain passed, in order, each with its payload's range in
    /// `payloads`.
    Records {
        path: Arc<PathBuf>,
        recs: Vec<(StreamRecord, std::ops::Range<usize>)>,
        payloads: Vec<u8>,
    },
    /// An incomplete record at the very end of the log (file, offset, bytes).
    TornTail(PathBuf, u64, u64),
    /// The first damage; nothing follows.
    Damage(Error),
}

/// Records gathered for one [`Read::Records`] message.
#[derive(Default)]
struct Batch {
    recs: Vec<(StreamRecord, std::ops::Range<usize>)>,
    payloads: Vec<u8>,
}

impl Batch {
    /// Sends the records gathered (if any) and starts afresh; false if the replaying side
    /// hung up.
    fn send(&mut self, path: &Arc<PathBuf>, send: &std::sync::mpsc::SyncSender<Read>) -> bool {
        if self.recs.is_empty() {
            return true;
        }
        let msg = Read::Records {
            path: Arc::clone(path),
            recs: std::mem::take(&mut self.recs),
            payloads: std::mem::take(&mut self.payloads),
        };
        send.send(msg).is_ok()
    }
}

/// Totals of the log reader.
#[derive(Default)]
struct LogTotals {
    segments: u64,
    records: u64,
    wal_bytes: u64,
}

/// Where a segment ended, as [`each_record`] read it.
struct SegmentEnd {
    /// Its last sequence number and the chain value after it.
    last_seq: u64,
    chain: Chain,
    records: u64,
    bytes: u64,
    /// An incomplete record at its end (offset, bytes): only in the last segment.
    torn: Option<(u64, u64)>,
}

/// What to do with each record read: its file, header values and payload; `false` stops.
type OnRecord<'a> = dyn FnMut(&Arc<PathBuf>, StreamRecord, &[u8]) -> bool + 'a;

/// Reads one segment's records in order and hands each to `f`: streamed in bounded memory,
/// settled by [`read_segment`] over the whole file where streaming stops early (damage, or a
/// torn tail in the `last` segment: the tail rule needs the bytes after it). Checks that the
/// segment is the one its name says and continues `prev_end` (the previous segment's last
/// sequence number and chain value). `None` if `f` stopped.
fn each_record(
    storage: &dyn Storage,
    path: &Arc<PathBuf>,
    first: u64,
    last: bool,
    prev_end: Option<(u64, Chain)>,
    f: &mut OnRecord<'_>,
) -> Result<Option<SegmentEnd>> {
    let continues = |first_seq: u64, chain_in: &Chain| -> Result<()> {
        if first_seq != first {
            return Err(Error::corrupt(
                &**path,
                8,
                "first sequence number differs from the file name",
            ));
        }
        match prev_end {
            Some((end, chain)) if first_seq != end + 1 || *chain_in != chain => {
                Err(Error::corrupt(
                    &**path,
                    8,
                    format!(
                        "segment does not continue the previous one (which ended at sequence number {end})"
                    ),
                ))
            }
            _ => Ok(()),
        }
    };
    let file = storage
        .open_read(path)
        .map_err(Error::io("reading", &**path))?;
    let mut read = 0u64;
    let mut chain = [0u8; 32];
    let mut streamed_to_end = false;
    if let Some(mut stream) = wal::SegmentStream::open(file) {
        continues(stream.first_seq, &stream.chain_in)?;
        chain = stream.chain_in;
        let mut payload = Vec::new();
        loop {
            payload.clear();
            match stream.next(&mut payload) {
                Ok(Some(rec)) => {
                    chain = rec.after;
                    read += 1;
                    if !f(path, rec, &payload) {
                        return Ok(None);
                    }
                }
                Ok(None) => {
                    streamed_to_end = true;
                    break;
                }
                Err(()) => break,
            }
        }
    }
    let bytes = storage
        .size(path)
        .map_err(Error::io("reading the size of", &**path))?;
    let mut torn = None;
    if !streamed_to_end {
        let (whole, seg, t) = read_segment(storage, path, last)?;
        if read == 0 {
            let chain_in: Chain = whole
                .get(16..48)
                .and_then(|c| c.try_into().ok())
                .unwrap_or([0; 32]);
            continues(seg.first_seq, &chain_in)?;
        }
        for rec in seg.records.iter().skip(read as usize) {
            let r = StreamRecord {
                seq: rec.seq,
                offset: rec.offset,
                prev: rec.prev,
                after: rec.after,
            };
            if !f(path, r, whole.get(rec.payload.clone()).unwrap_or_default()) {
                return Ok(None);
            }
        }
        read = seg.records.len() as u64;
        chain = seg.chain_out;
        torn = t;
    }
    Ok(Some(SegmentEnd {
        last_seq: (first + read).saturating_sub(1),
        chain,
        records: read,
        bytes,
        torn,
    }))
}

/// Hands every record of `segments` (in order, each segment continuing the one before) to
/// `f`; `false` from `f` stops. The torn tail of the last segment, if any, is returned.
fn each_logged(
    storage: &dyn Storage,
    dir: &Path,
    segments: &[(u64, String)],
    totals: &mut LogTotals,
    f: &mut OnRecord<'_>,
) -> Result<Option<(PathBuf, u64, u64)>> {
    let mut prev_end = None;
    for (i, (first, name)) in segments.iter().enumerate() {
        let path = Arc::new(dir.join(name));
        let last = i + 1 == segments.len();
        let Some(end) = each_record(storage, &path, *first, last, prev_end, f)? else {
            return Ok(None);
        };
        totals.segments += 1;
        totals.records += end.records;
        totals.wal_bytes += end.bytes;
        prev_end = Some((end.last_seq, end.chain));
        if let Some((at, n)) = end.torn {
            return Ok(Some(((*path).clone(), at, n)));
        }
    }
    Ok(None)
}

/// The log reader of [`verify`]: sends every verified record, in batches of about a megabyte
/// (small records do not cost a message each), then the torn tail or the first damage.
fn read_log(
    storage: &dyn Storage,
    dir: &Path,
    segments: &[(u64, String)],
    send: &std::sync::mpsc::SyncSender<Read>,
    done: &AtomicU64,
) -> LogTotals {
    let mut totals = LogTotals::default();
    let mut batch = Batch::default();
    let mut batch_path: Option<Arc<PathBuf>> = None;
    let mut hung_up = false;
    let result = each_logged(
        storage,
        dir,
        segments,
        &mut totals,
        &mut |path, rec, payload| {
            if batch_path.as_ref().is_some_and(|p| !Arc::ptr_eq(p, path)) {
                if let Some(p) = batch_path.take() {
                    hung_up |= !batch.send(&p, send);
                }
            }
            batch_path.get_or_insert_with(|| Arc::clone(path));
            let start = batch.payloads.len();
            batch.payloads.extend_from_slice(payload);
            batch.recs.push((rec, start..batch.payloads.len()));
            let bytes = (wal::RECORD_HEADER_LEN + payload.len() + wal::CHAIN_LEN) as u64;
            done.fetch_add(bytes, Ordering::Relaxed);
            if batch.payloads.len() >= 1 << 20 {
                if let Some(p) = &batch_path {
                    hung_up |= !batch.send(p, send);
                }
            }
            !hung_up
        },
    );
    if let Some(p) = batch_path.take() {
        hung_up |= !batch.send(&p, send);
    }
    if hung_up {
        return totals;
    }
    let _ = match result {
        Ok(Some((file, at, n))) => send.send(Read::TornTail(file, at, n)),
        Ok(None) => Ok(()),
        Err(e) => send.send(Read::Damage(e)),
    };
    totals
}

pub(crate) fn verify(
    storage: &dyn Storage,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Verified> {
    let listing = directory::list(storage, dir)?;
    let f = files(storage, dir)?;
    let total: u64 = f.snapshots.iter().chain(&f.segments).map(|x| x.2).sum();
    directory::read_tags(storage, dir)?;
    let Some((_, oldest_name)) = listing.snapshots.first() else {
        return Err(Error::NoDatabase {
            path: dir.to_path_buf(),
        });
    };
    let check_name = |snap: &snapshot::Snapshot, seq: u64, name: &str| {
        if snap.seq == seq {
            Ok(())
        } else {
            Err(Error::corrupt(
                dir.join(name),
                16,
                "sequence number differs from the file name",
            ))
        }
    };
    let oldest = read_snapshot(storage, dir, oldest_name)?;
    check_name(
        &oldest,
        listing.snapshots.first().map_or(0, |s| s.0),
        oldest_name,
    )?;
    let snapshot_bytes: u64 = f.snapshots.iter().map(|s| s.2).sum();
    // Three threads: this one replays; one reads and checks the log (records arrive through a
    // bounded channel, so memory stays bounded); one reads and checks the later snapshots.
    let done = AtomicU64::new(0);
    let (send, recv) = std::sync::mpsc::sync_channel::<Read>(8);
    std::thread::scope(|scope| -> Result<Verified> {
        let later = scope.spawn(|| -> Result<Vec<LaterSnapshot>> {
            let mut out = Vec::new();
            for (seq, name) in listing.snapshots.iter().skip(1) {
                let snap = read_snapshot(storage, dir, name)?;
                check_name(&snap, *seq, name)?;
                out.push((snap.seq, snap.state_hash, snap.chain, dir.join(name)));
            }
            Ok(out)
        });
        // The sender moves into the reader, so the channel closes when it is done.
        let segments = &listing.segments;
        let done = &done;
        let reader = scope.spawn(move || read_log(storage, dir, segments, &send, done));
        let mut replay = Replay {
            kernel: oldest.kernel,
            seq: oldest.seq,
            chain: oldest.chain,
        };
        let mut torn_tail = None;
        let mut damage = None;
        let mut later = Later {
            handle: Some(later),
            first: listing.snapshots.get(1).map(|s| s.0),
            list: Vec::new().into_iter(),
            next: None,
        };
        progress(snapshot_bytes, total);
        for msg in recv.iter() {
            match msg {
                Read::Records {
                    path,
                    recs,
                    payloads,
                } => {
                    for (rec, range) in recs {
                        if rec.seq <= replay.seq {
                            continue;
                        }
                        let payload = payloads.get(range).unwrap_or_default();
                        let step = replay
                            .apply_record(
                                rec.seq, rec.offset, &rec.prev, &rec.after, payload, &path,
                            )
                            .and_then(|()| later.confirm(&replay));
                        if let Err(e) = step {
                            damage = Some(e);
                            break;
                        }
                    }
                    if damage.is_some() {
                        break;
                    }
                    progress(snapshot_bytes + done.load(Ordering::Relaxed), total);
                }
                Read::TornTail(file, at, n) => torn_tail = Some((file, at, n)),
                Read::Damage(e) => {
                    damage = Some(e);
                    break;
                }
            }
        }
        drop(recv);
        let totals = reader
            .join()
            .map_err(|_| Error::Internal("the log reader panicked".into()))?;
        if let Some(e) = damage {
            return Err(e);
        }
        later.join()?;
        later.confirm(&replay)?;
        if let Some((seq, _, _, path)) = later.next {
            return Err(Error::corrupt(
                &path,
                0,
                format!(
                    "the log ends at sequence number {} before this snapshot's {seq}",
                    replay.seq
                ),
            ));
        }
        progress(total, total);
        Ok(Verified {
            snapshots: listing.snapshots.len() as u64,
            segments: totals.segments,
            records: totals.records,
            wal_bytes: totals.wal_bytes,
            snapshot_bytes,
            seq: replay.seq,
            state_hash: crate::snapshot::parallel_state_hash(&replay.kernel),
            torn_tail,
        })
    })
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
