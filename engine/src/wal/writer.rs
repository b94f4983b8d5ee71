//! The WAL writer: encodes records, stages them in memory, and writes and syncs them to the
//! open segment. One caller at a time flushes everything staged; the others wait for it and
//! find their records done (group commit falls out of this: whoever flushes takes every
//! record staged so far).

use super::{
    Chain, RECORD_FENCE, RECORD_HEADER_LEN, RECORD_MAGIC, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
    WAL_VERSION,
};
use crate::storage::StorageFile;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The 64-byte header of a segment.
pub fn segment_header(first_seq: u64, chain_in: &Chain) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..8].copy_from_slice(&WAL_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&first_seq.to_le_bytes());
    h[16..48].copy_from_slice(chain_in);
    let check = blake3::hash(&h[0..48]);
    h[48..64].copy_from_slice(&check.as_bytes()[..16]);
    h
}

/// Appends one record to `out` (without the fence flag: it may follow bytes not yet durable);
/// returns the new chain value.
pub fn encode_record(seq: u64, prev: &Chain, payload: &[u8], out: &mut Vec<u8>) -> Chain {
    encode_as(WAL_VERSION, seq, prev, payload, false, out)
}

/// Appends one record carrying the fence flag ([`RECORD_FENCE`]: everything before it in the
/// segment was durable when it was written); returns the new chain value.
pub fn encode_record_fenced(seq: u64, prev: &Chain, payload: &[u8], out: &mut Vec<u8>) -> Chain {
    encode_as(WAL_VERSION, seq, prev, payload, true, out)
}

/// A record chained by the rule of WAL `version` (tests write older segments with it).
pub(crate) fn encode_as(
    version: u32,
    seq: u64,
    prev: &Chain,
    payload: &[u8],
    fence: bool,
    out: &mut Vec<u8>,
) -> Chain {
    let mut head = [0u8; RECORD_HEADER_LEN];
    let len = payload.len() as u32 | if fence { RECORD_FENCE } else { 0 };
    head[0..4].copy_from_slice(&RECORD_MAGIC);
    head[4..8].copy_from_slice(&len.to_le_bytes());
    head[8..16].copy_from_slice(&seq.to_le_bytes());
    let check = blake3::hash(&head[0..16]);
    head[16..24].copy_from_slice(&check.as_bytes()[..8]);
    let chain = chain_value(version, prev, &head[0..16], payload);
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    out.extend_from_slice(&chain);
    chain
}

/// A logged command as replicas exchange it (`docs/FORMAT.md` §8): its record without the
/// fence flag (which says when this writer synced, nothing about the command). `chain` is the
/// value after it; the record verifies only against the chain value before it.
pub fn replica_record(seq: u64, payload: &[u8], chain: &Chain) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + payload.len() + chain.len());
    let mut head = [0u8; RECORD_HEADER_LEN];
    head[0..4].copy_from_slice(&RECORD_MAGIC);
    head[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    head[8..16].copy_from_slice(&seq.to_le_bytes());
    let check = blake3::hash(&head[0..16]);
    head[16..24].copy_from_slice(&check.as_bytes()[..8]);
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    out.extend_from_slice(chain);
    out
}

/// `BLAKE3(prev ‖ header[0..16] ‖ payload)`; from version 3 on with the header's fence flag
/// taken as clear, so that the value depends on the log's content alone.
pub(crate) fn chain_value(version: u32, prev: &Chain, head16: &[u8], payload: &[u8]) -> Chain {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    if version >= 3 && head16.len() == 16 {
        let mut head = [0u8; 16];
        head.copy_from_slice(head16);
        head[7] &= 0x7f; // bit 31 of the little-endian length word at 4..8
        h.update(&head);
    } else {
        h.update(head16);
    }
    h.update(payload);
    *h.finalize().as_bytes()
}

/// Why a flush did not happen.
#[derive(Debug)]
pub(crate) enum FlushError {
    /// The writer was stopped (an earlier failure); nothing was written.
    Stopped,
    /// The write or fsync failed; the writer is stopped from now on.
    Io(io::Error),
}

struct Staged {
    file: Option<Box<dyn StorageFile>>,
    /// Encoded records not yet handed to the file.
    buf: Vec<u8>,
    /// Last sequence number staged.
    staged_seq: u64,
    /// Last sequence number written to the file (not necessarily durable).
    written_seq: u64,
    /// Last sequence number made durable by an fsync.
    synced_seq: u64,
    /// Bytes in the file (written, not necessarily durable).
    file_len: u64,
    /// Bytes of the file made durable by an fsync (or present when the writer began).
    synced_len: u64,
    /// A flush is under way (its flusher has released the lock while doing I/O).
    flushing: bool,
    stopped: bool,
    stats: LogStats,
}

/// Upper bounds (seconds) of the fsync latency buckets in [`LogStats::fsync_buckets`].
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// What the log wrote since the handle opened: for monitoring only (wall-clock timings are
/// never part of any state or encoding).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogStats {
    /// Bytes appended to WAL segments.
    pub bytes_written: u64,
    /// Successful fsyncs of WAL segments.
    pub fsyncs: u64,
    /// Total seconds spent in those fsyncs.
    pub fsync_seconds: f64,
    /// fsyncs by latency: `fsync_buckets[i]` counts those of at most `FSYNC_BUCKETS[i]`
    /// seconds (and more than the bound before); the last entry those above every bound.
    pub fsync_buckets: [u64; FSYNC_BUCKETS.len() + 1],
}

impl LogStats {
    fn record_fsync(&mut self, seconds: f64) {
        self.fsyncs += 1;
        self.fsync_seconds += seconds;
        let i = FSYNC_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(FSYNC_BUCKETS.len());
        if let Some(c) = self.fsync_buckets.get_mut(i) {
            *c += 1;
        }
    }
}

/// Stops the writer if dropped during a flush, i.e. if the storage panicked.
struct StopOnUnwind<'a>(&'a Writer);

impl Drop for StopOnUnwind<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.flushing = false;
        s.stopped = true;
        drop(s);
        self.0.flushed.notify_all();
    }
}

/// Called after a flush made records durable ([`Writer::listen`]).
pub(crate) type Listener = Arc<dyn Fn() + Send + Sync>;

/// The appending end of the log.
pub(crate) struct Writer {
    staged: Mutex<Staged>,
    flushed: Condvar,
    /// The last listener id given, and the listeners.
    listeners: Mutex<(u64, Vec<(u64, Listener)>)>,
}

impl Writer {
    /// A writer appending to `file` (none: read-only), `len` bytes long, whose records through
    /// `seq` are already in it (and durable).
    pub(crate) fn new(file: Option<Box<dyn StorageFile>>, seq: u64, len: u64) -> Writer {
        Writer {
            staged: Mutex::new(Staged {
                file,
                buf: Vec::new(),
                staged_seq: seq,
                written_seq: seq,
                synced_seq: seq,
                file_len: len,
                synced_len: len,
                flushing: false,
                stopped: false,
                stats: LogStats::default(),
            }),
            flushed: Condvar::new(),
            listeners: Mutex::new((0, Vec::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Staged> {
        // Nothing that can panic runs under this lock; a poisoned lock still holds consistent
        // data, and `stopped` tells callers whether the log is usable.
        self.staged.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Encodes record `seq` after chain value `prev` and stages it; returns the new chain
    /// value and the bytes the record adds to the segment.
    pub(crate) fn stage(&self, seq: u64, prev: &Chain, payload: &[u8]) -> (Chain, u64) {
        let mut s = self.lock();
        let before = s.buf.len();
        // Fenced when every byte before it is durable now (nothing staged, nothing in flight,
        // the file synced to its end): it stays true when the record is written.
        let fence = s.buf.is_empty() && !s.flushing && s.synced_len == s.file_len;
        let chain = encode_as(WAL_VERSION, seq, prev, payload, fence, &mut s.buf);
        s.staged_seq = seq;
        (chain, (s.buf.len() - before) as u64)
    }

    /// Writes (and with `fsync`, syncs) the log through record `seq`.
    pub(crate) fn flush_through(&self, seq: u64, fsync: bool) -> Result<(), FlushError> {
        let mut s = self.lock();
        loop {
            // A record another flusher made durable is durable, even if a later flush failed.
            let done = if fsync {
                s.synced_seq >= seq
            } else {
                s.written_seq >= seq
            };
            if done {
                return Ok(());
            }
            if s.stopped {
                return Err(FlushError::Stopped);
            }
            if s.flushing {
                s = self.flushed.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            s.flushing = true;
            let buf = std::mem::take(&mut s.buf);
            let upto = s.staged_seq;
            let before = s.file_len;
            let durable = s.synced_len;
            let mut file = s.file.take();
            drop(s);
            // If the storage panics below, stop the writer and wake the waiters rather than
            // leave `flushing` set for ever.
            let unwinding = StopOnUnwind(self);
            let result = match file.as_mut() {
                Some(f) => (if buf.is_empty() {
                    Ok(())
                } else {
                    f.append(&buf)
                })
                .and_then(|()| {
                    if fsync {
                        let start = std::time::Instant::now();
                        f.sync().map(|()| Some(start.elapsed().as_secs_f64()))
                    } else {
                        Ok(None)
                    }
                })
                .inspect_err(|_| {
                    // Cut off everything after the last successful fsync: this write's records
                    // and any written earlier without one (none of them acknowledged in the
                    // fsync modes; in `None` mode they are what a power loss may lose). A
                    // failed fsync can leave them cached and marked clean, and a reopen must
                    // not find them, nor later records land after a hole. Best effort: the
                    // handle stops either way.
                    let _ = f.truncate(durable).and_then(|()| f.sync());
                }),
                None => Err(io::Error::other("no open WAL segment")),
            };
            std::mem::forget(unwinding);
            s = self.lock();
            s.file = file;
            s.flushing = false;
            match result {
                Ok(synced) => {
                    s.file_len = before + buf.len() as u64;
                    s.stats.bytes_written += buf.len() as u64;
                    if let Some(seconds) = synced {
                        s.stats.record_fsync(seconds);
                    }
                    s.written_seq = s.written_seq.max(upto);
                    if fsync {
                        s.synced_seq = s.synced_seq.max(upto);
                        s.synced_len = s.file_len;
                        drop(s);
                        self.flushed.notify_all();
                        self.tell_listeners();
                        s = self.lock();
                        continue;
                    }
                    self.flushed.notify_all();
                }
                Err(e) => {
                    s.stopped = true;
                    self.flushed.notify_all();
                    return Err(FlushError::Io(e));
                }
            }
        }
    }

    /// Continues in a new segment, `len` bytes long (after a checkpoint synced everything
    /// staged).
    pub(crate) fn switch_segment(&self, file: Box<dyn StorageFile>, len: u64) {
        // The caller synced everything staged and holds the writers' turn: no flush is under
        // way and nothing is staged, so no record can go to the old segment after this.
        let mut s = self.lock();
        s.file = Some(file);
        s.file_len = len;
        s.synced_len = len;
    }

    /// The log's I/O counters.
    pub(crate) fn stats(&self) -> LogStats {
        self.lock().stats.clone()
    }

    /// The last sequence number made durable by an fsync (or present when the writer began).
    pub(crate) fn synced_seq(&self) -> u64 {
        self.lock().synced_seq
    }

    /// Calls `f` after every flush that makes records durable, until the returned id is
    /// passed to [`Writer::unlisten`].
    pub(crate) fn listen(&self, f: Listener) -> u64 {
        let mut l = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        l.0 += 1;
        let id = l.0;
        l.1.push((id, f));
        id
    }

    /// Stops calling the listener `id`.
    pub(crate) fn unlisten(&self, id: u64) {
        let mut l = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        l.1.retain(|(i, _)| *i != id);
    }

    /// Calls the listeners (outside the staging lock).
    fn tell_listeners(&self) {
        let listeners: Vec<Listener> = self
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .iter()
            .map(|(_, f)| Arc::clone(f))
            .collect();
        for f in listeners {
            f();
        }
    }

    /// True once the writer stopped (a failed or panicked flush, or the handle poisoned).
    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Refuses every later flush and wakes the waiting writers (the handle is poisoned).
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.flushed.notify_all();
    }
}
