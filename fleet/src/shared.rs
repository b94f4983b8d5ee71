//! Shared fleet memory: several writers append *commands* to one JetStream subject, and every
//! member applies them in the stream's order, so every member reaches the same state and the
//! same state hash (`docs/REPLICATION.md`, "Shared memory").
//!
//! - **Order.** The stream's sequence is the agreed order. A member applies each command
//!   with [`Engine::apply_ordered`]; a command the kernel refuses (a caller-chosen id already
//!   taken, a delete of something another writer deleted first) is refused by every member
//!   alike, since every member holds the same state when it comes.
//! - **Own writes.** [`Shared::submit`] makes a command durable in the member's *outbox* and
//!   returns a [`Ticket`]; the member's own state does not change until the command comes
//!   back from the stream in order. [`Shared::wait`] says what became of it (applied, with
//!   the ids it created, or refused, and why); [`Shared::write`] does both.
//! - **Offline.** The outbox is a file: commands submitted while the servers are out of
//!   reach (or across a restart) queue there and are published, in order, when they are
//!   reached. Each carries its writer's name and a per-writer number; the stream drops a
//!   retried publish within its duplicate window (message id `<writer>.<number>`), and every
//!   member skips a number it has already seen from that writer, however late the copy.
//! - **Ids.** Commands that leave the id to the database (`id: None`, batches without ids,
//!   nodes, edges) get it when they are applied, in stream order: unique across writers,
//!   and the same on every member. A caller-chosen id taken by another writer first is
//!   refused, on every member.
//!
//! - **Retention.** A member's checkpoint puts its snapshot, with the position it was taken
//!   at, in the bucket [`SHARED_BUCKET`], and makes it the newest in [`SHARED_POINTERS`] by
//!   compare-and-set (never backwards); the stream then drops the commands the snapshot before
//!   it covered. A new member starts from the newest snapshot. A member that had not taken
//!   what was dropped stops with `Corrupt` (checked at every jump in the stream's sequence
//!   and while quiet), and on reopening is made again from the newest snapshot, its outbox
//!   kept.
//!
//! Each member keeps, in its directory, the database (`db/`), its writer name (`writer`),
//! the outbox (`outbox`), its place in the stream (`position`: the stream sequence, the
//! database's sequence number there and each writer's last number) and a lock (`LOCK`).
//! After a crash the database may hold commands past the position; they are matched against
//! the stream again rather than applied twice.

use crate::{nats, FleetError, Result};
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, object_store, stream};
use futures_util::StreamExt;
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use valori_engine::valori_kernel::{Applied, Command, Config};
use valori_engine::{Engine, FsStorage, LockGuard, Options, Storage};

/// The JetStream stream that holds shared databases' commands.
pub const SHARED_STREAM: &str = "VALORI_SHARED";
/// Its subjects: `valori.cmd.<database>`.
pub const SHARED_PREFIX: &str = "valori.cmd.";
/// The largest command a shared database takes, in encoded bytes: one message, with room for
/// its headers under the servers' default `max_payload` (1 MiB). Split larger batches.
pub const MAX_SHARED_COMMAND: usize = 1_040_000;

/// The object store bucket of shared databases' snapshots: object `<database>.<stream
/// sequence>.<writer>`, a member's checkpoint taken once it had taken the stream through that
/// message, with the member position it was taken at in its metadata.
pub const SHARED_BUCKET: &str = "valori-shared-snapshots";
/// The JetStream stream that says, for each shared database (subject
/// `valori.pointer.<database>`, one message kept), which snapshot in [`SHARED_BUCKET`] is the
/// newest, and through which stream message the stream may have dropped its commands. Changed
/// only by compare-and-set (the expected last sequence of the subject), never backwards.
pub const SHARED_POINTERS: &str = "VALORI_SHARED_POINTERS";
const POINTER_PREFIX: &str = "valori.pointer.";
/// Metadata of a snapshot in [`SHARED_BUCKET`]: the member position (hex of its encoding).
const POSITION_KEY: &str = "valori-position";
/// How long opening a member waits for the servers to look for a snapshot to start from.
const BOOTSTRAP_WAIT: Duration = Duration::from_secs(5);
const POINTER_MAGIC: &[u8; 8] = b"VSHPTR01";
/// The longest snapshot object name: `<database>.<stream sequence>.<writer>`.
const OBJECT_NAME_MAX: usize = 4 * MAX_WRITER_NAME + 64;
/// How long a member's last reported position holds the stream back from dropping commands it
/// has not taken ([`Shared::set_member_horizon`]).
pub const MEMBER_HORIZON: Duration = Duration::from_secs(24 * 3600);
/// Tries to put a snapshot in the bucket (waiting 1, 2, … s between them).
const SHARE_TRIES: u32 = 10;

const WRITER_HEADER: &str = "Valori-Writer";
const NUMBER_HEADER: &str = "Valori-Writer-Seq";
const CONFIG_HEADER: &str = "Valori-Config";
/// On a message that stands for a command the servers refused (too large): why. It keeps the
/// writer's numbers without a gap; every member takes it as that command dropped.
const DROPPED_HEADER: &str = "Valori-Dropped";
/// Commands a member applies between two writes of its position (it also writes it whenever
/// it has caught up).
const COMMIT_EVERY: u32 = 256;
/// Seconds a member's consumer may stay silent while the stream holds more for it before it is
/// made again.
const STALL_SECONDS: u32 = 5;
/// Outcomes of this writer's commands kept for [`Shared::wait`] (the oldest go first).
const OUTCOMES_KEPT: usize = 100_000;
const POSITION_MAGIC: &[u8; 8] = b"VSHPOS01";
const MAX_WRITER_NAME: usize = 64;

/// A command submitted to a shared database ([`Shared::submit`]): its number among this
/// writer's commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// What became of a submitted command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every member applied it, after the stream's message `stream_seq`.
    Applied {
        /// Its stream sequence.
        stream_seq: u64,
        /// What the database returned (the ids it created).
        applied: Applied,
    },
    /// Every member refused it (the state when it came did not allow it); nothing changed.
    Refused {
        /// Its stream sequence.
        stream_seq: u64,
        /// Why.
        error: String,
    },
    /// The servers refused to store it (larger than their `max_payload`): no member has it.
    Dropped {
        /// Why.
        error: String,
    },
}

/// Where a member stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedStatus {
    /// The last stream message it has taken (applied, refused or skipped as a duplicate).
    pub stream_seq: u64,
    /// Its database's sequence number (commands applied).
    pub applied: u64,
    /// Messages on the stream not yet delivered to it (its lag).
    pub pending: u64,
    /// Its own commands not yet back from the stream (in the outbox).
    pub queued: u64,
    /// Whether it is connected to a server.
    pub connected: bool,
    /// Why it stopped, if it did.
    pub error: Option<String>,
    /// The last failure of the servers while it retries.
    pub retrying: Option<String>,
}

/// The subject of a shared database's commands.
pub fn shared_subject(database: &str) -> Result<String> {
    crate::subject(database)?;
    Ok(format!("{SHARED_PREFIX}{database}"))
}

fn config_tag(c: &Config) -> String {
    format!("{}/{}", c.dim, c.metric.name())
}

fn corrupt(what: &Path, why: impl std::fmt::Display) -> FleetError {
    FleetError::Engine(valori_engine::Error::Corrupt {
        file: what.to_path_buf(),
        offset: 0,
        reason: why.to_string(),
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FleetError + '_ {
    move |source| {
        FleetError::Engine(valori_engine::Error::Io {
            op: "a shared member's file",
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Writes `bytes` to `path` atomically: a temporary file, fsynced, renamed over it, and the
/// directory fsynced.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// A member's place in the stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Position {
    /// The last stream message taken.
    stream_seq: u64,
    /// The database's sequence number after it.
    local_seq: u64,
    /// Each writer's last number taken.
    writers: BTreeMap<String, u64>,
}

impl Position {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.writers.len() * 32);
        out.extend_from_slice(POSITION_MAGIC);
        out.extend_from_slice(&self.stream_seq.to_le_bytes());
        out.extend_from_slice(&self.local_seq.to_le_bytes());
        out.extend_from_slice(&(self.writers.len() as u64).to_le_bytes());
        for (name, n) in &self.writers {
            out.extend_from_slice(&(name.len() as u64).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&n.to_le_bytes());
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Position, String> {
        let mut r = Reader::checked(bytes, POSITION_MAGIC, "a position file")?;
        let stream_seq = r.word()?;
        let local_seq = r.word()?;
        let count = r.word()?;
        let mut writers = BTreeMap::new();
        for _ in 0..count {
            let name = r.name(MAX_WRITER_NAME)?;
            writers.insert(name, r.word()?);
        }
        r.end()?;
        Ok(Position {
            stream_seq,
            local_seq,
            writers,
        })
    }
}

/// Reads a BLAKE3-checked record: magic, then words and length-prefixed names.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// The body of `bytes` (its last 32 bytes are the BLAKE3 of the rest), after `magic`.
    fn checked(
        bytes: &'a [u8],
        magic: &[u8; 8],
        what: &str,
    ) -> std::result::Result<Reader<'a>, String> {
        let body_len = bytes
            .len()
            .checked_sub(32)
            .ok_or("shorter than its checksum")?;
        let (body, sum) = bytes.split_at(body_len);
        if blake3::hash(body).as_bytes() != sum {
            return Err("its checksum does not match".into());
        }
        let mut r = Reader(body);
        if r.take(8)? != magic {
            return Err(format!("not {what}"));
        }
        Ok(r)
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn word(&mut self) -> std::result::Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    /// A name of at most `max` bytes, UTF-8.
    fn name(&mut self, max: usize) -> std::result::Result<String, String> {
        let len = usize::try_from(self.word()?).map_err(|_| "a name too long")?;
        if len > max {
            return Err("a name too long".into());
        }
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "a name that is not UTF-8".into())
    }

    fn end(&self) -> std::result::Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err("bytes after its end".into())
        }
    }
}

/// A shared database's entry in [`SHARED_POINTERS`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Pointer {
    /// The newest snapshot: the last stream message it covers, and its object's name.
    snapshot: u64,
    object: String,
    /// The snapshot before it (its object is deleted once a newer one replaces it here).
    previous: u64,
    previous_object: String,
    /// The stream may have dropped this database's commands through this message (the
    /// previous snapshot's); a member that has not taken them all starts again from the newest.
    dropped: u64,
}

impl Pointer {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(POINTER_MAGIC);
        for n in [self.snapshot, self.previous, self.dropped] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for name in [&self.object, &self.previous_object] {
            out.extend_from_slice(&(name.len() as u64).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Pointer, String> {
        let mut r = Reader::checked(bytes, POINTER_MAGIC, "a shared snapshot pointer")?;
        let snapshot = r.word()?;
        let previous = r.word()?;
        let dropped = r.word()?;
        let object = r.name(OBJECT_NAME_MAX)?;
        let previous_object = r.name(OBJECT_NAME_MAX)?;
        r.end()?;
        Ok(Pointer {
            snapshot,
            object,
            previous,
            previous_object,
            dropped,
        })
    }
}

/// The commands this writer has submitted and not yet seen come back from the stream,
/// durable in a file: frames of `len (u32 LE) | number (u64 LE) | command | BLAKE3 of number
/// and command (16 bytes)`.
#[derive(Debug)]
struct Outbox {
    path: PathBuf,
    file: std::fs::File,
    items: VecDeque<(u64, bytes::Bytes)>,
    next: u64,
    /// A failed append could not be undone: further appends are refused.
    broken: bool,
}

const FRAME_HEAD: usize = 12;
/// Outbox bytes past which a mostly-done file is rewritten with what is left.
const OUTBOX_REWRITE: u64 = 8 << 20;
const FRAME_SUM: usize = 16;

fn frame_sum(n: u64, command: &[u8]) -> [u8; FRAME_SUM] {
    let mut h = blake3::Hasher::new();
    h.update(&n.to_le_bytes());
    h.update(command);
    let mut out = [0u8; FRAME_SUM];
    out.copy_from_slice(&h.finalize().as_bytes()[..FRAME_SUM]);
    out
}

/// The frame of command `n` (`len` bytes).
fn frame(n: u64, len: u32, command: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEAD + command.len() + FRAME_SUM);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(command);
    out.extend_from_slice(&frame_sum(n, command));
    out
}

/// The frame at byte `at` if one verifies there: its number, its command, where it ends.
fn frame_at(bytes: &[u8], at: usize) -> Option<(u64, &[u8], usize)> {
    let head = bytes.get(at..at.checked_add(FRAME_HEAD)?)?;
    let len = u32::from_le_bytes(head.get(..4)?.try_into().ok()?) as usize;
    let n = u64::from_le_bytes(head.get(4..)?.try_into().ok()?);
    if len > MAX_SHARED_COMMAND || n == 0 {
        return None;
    }
    let body = at + FRAME_HEAD;
    let command = bytes.get(body..body + len)?;
    let end = body + len + FRAME_SUM;
    (bytes.get(body + len..end)? == frame_sum(n, command)).then_some((n, command, end))
}

impl Outbox {
    /// Opens the outbox, dropping a damaged tail (a submit that was never acknowledged);
    /// damage followed by more frames is `Corrupt`.
    fn open(path: &Path) -> Result<Outbox> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(path))?;
        let mut items = VecDeque::new();
        let mut at = 0usize;
        let mut last = 0u64;
        while at < bytes.len() {
            match frame_at(&bytes, at).filter(|f| f.0 > last) {
                Some((n, command, end)) => {
                    items.push_back((n, bytes::Bytes::copy_from_slice(command)));
                    last = n;
                    at = end;
                }
                None => {
                    // Damage followed by a frame that verifies is not a torn tail.
                    if (at + 1..bytes.len())
                        .any(|p| frame_at(&bytes, p).is_some_and(|f| f.0 > last))
                    {
                        return Err(corrupt(
                            path,
                            format!(
                                "the frame at byte {at} does not verify and a valid one follows \
                                 it: the outbox is damaged"
                            ),
                        ));
                    }
                    tracing::warn!(path = %path.display(), "outbox: dropping a torn tail at byte {at}");
                    file.set_len(at as u64).map_err(io(path))?;
                    file.sync_all().map_err(io(path))?;
                    break;
                }
            }
        }
        Ok(Outbox {
            path: path.to_path_buf(),
            file,
            items,
            next: last + 1,
            broken: false,
        })
    }

    /// Appends a command, durably; its number.
    fn push(&mut self, command: bytes::Bytes) -> Result<u64> {
        let n = self.next;
        let len = u32::try_from(command.len()).map_err(|_| {
            FleetError::Engine(valori_engine::Error::Invalid("command too large".into()))
        })?;
        if self.broken {
            return Err(corrupt(
                &self.path,
                "an earlier write to the outbox failed and could not be undone: reopen the member",
            ));
        }
        let frame = frame(n, len, &command);
        let before = self.file.metadata().map_err(io(&self.path))?.len();
        let written = self
            .file
            .write_all(&frame)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Not acknowledged: take the frame back, so the next one does not follow a frame
            // of the same number.
            if self
                .file
                .set_len(before)
                .and_then(|()| self.file.sync_all())
                .is_err()
            {
                self.broken = true;
            }
            return Err(io(&self.path)(e));
        }
        self.items.push_back((n, command));
        self.next = n + 1;
        Ok(n)
    }

    /// Forgets the commands numbered up to `n` (back from the stream); empties the file once
    /// nothing is left in it.
    fn done_through(&mut self, n: u64) -> Result<()> {
        while self.items.front().is_some_and(|(m, _)| *m <= n) {
            self.items.pop_front();
        }
        Ok(())
    }

    /// Empties the file if every command in it is done (called after the position that says
    /// so is durable).
    fn compact(&mut self) -> Result<()> {
        let len = self.file.metadata().map_err(io(&self.path))?.len();
        if self.items.is_empty() {
            if len > 0 {
                self.file.set_len(0).map_err(io(&self.path))?;
                self.file.sync_all().map_err(io(&self.path))?;
            }
            return Ok(());
        }
        // A writer that never empties its queue: rewrite the file with what is left once the
        // part done is most of a large file.
        let left: u64 = self
            .items
            .iter()
            .map(|(_, c)| (FRAME_HEAD + c.len() + FRAME_SUM) as u64)
            .sum();
        if len > OUTBOX_REWRITE && left < len / 2 {
            let mut bytes = Vec::with_capacity(usize::try_from(left).unwrap_or(0));
            for (n, c) in &self.items {
                // Lengths were checked when the commands were queued.
                bytes.extend(frame(*n, c.len() as u32, c));
            }
            write_atomic(&self.path, &bytes)?;
            self.file = std::fs::OpenOptions::new()
                .read(true)
                .append(true)
                .open(&self.path)
                .map_err(io(&self.path))?;
        }
        Ok(())
    }
}

struct Inner {
    database: String,
    /// Log bytes after which `commit` checkpoints.
    checkpoint_bytes: u64,
    subject: String,
    writer: String,
    config: String,
    dir: PathBuf,
    engine: Arc<Engine>,
    outbox: Mutex<Outbox>,
    wake: Notify,
    outcomes: Mutex<BTreeMap<u64, Outcome>>,
    status: watch::Sender<SharedStatus>,
    /// Copies of the stream and buckets (1, or 3 on a cluster).
    replicas: usize,
    /// Whether a task is putting snapshots in the bucket.
    sharing: Arc<AtomicBool>,
    /// The newest snapshot waiting for it.
    next_share: NextShare,
    /// [`Shared::set_member_horizon`], in seconds.
    horizon: AtomicU64,
    /// The member directory's lock (`LOCK`), held while the member is open.
    _lock: LockGuard,
}

impl Inner {
    fn lock_outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, n: u64, outcome: Outcome) {
        let mut o = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        o.insert(n, outcome);
        while o.len() > OUTCOMES_KEPT {
            o.pop_first();
        }
    }

    fn fail(&self, why: String) {
        tracing::error!(database = %self.database, "shared memory stopped: {why}");
        self.status.send_modify(|s| s.error = Some(why));
    }

    fn retrying(&self, why: String) {
        tracing::warn!(database = %self.database, "shared memory: {why}; retrying");
        self.status.send_modify(|s| s.retrying = Some(why));
    }
}

/// A member of a shared database ([`Shared::open`]). Dropping it stops its work; the outbox
/// and the database keep what it has.
pub struct Shared {
    inner: Arc<Inner>,
    status: watch::Receiver<SharedStatus>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("database", &self.inner.database)
            .field("writer", &self.inner.writer)
            .finish()
    }
}

impl Shared {
    /// Opens (or creates) member directory `dir` of shared database `database` on the
    /// servers at `url` (`nats://host:port`, several separated by commas), whose stream is
    /// created with `replicas` copies if it does not exist. `options` gives the database's
    /// dimension and metric (every member must give the same: a command for another is
    /// `Corrupt`) and its index; the member's own writes go through [`Shared::submit`].
    ///
    /// It opens at once, servers or not: while they are out of reach it serves reads of
    /// what it has and queues what is submitted. `writer` names this member among the
    /// writers (letters, digits, `-` and `_`, at most 64); `None` keeps the name in `dir`, or
    /// makes a unique one the first time. A name belongs to one directory: a new directory
    /// given a name the newest snapshot knows is refused, and a member that sees its name on
    /// commands it did not submit stops with `Corrupt`.
    ///
    /// A new directory starts from the newest snapshot in [`SHARED_BUCKET`], and one behind
    /// what the stream has dropped is made again from it (both only if the servers answer
    /// within 5 s; a snapshot that fails to download or verify is an error). `dir` is locked
    /// while the member is open (`Busy` for a second opener).
    pub async fn open(
        url: &str,
        database: &str,
        dir: &Path,
        options: Options,
        replicas: usize,
        writer: Option<&str>,
    ) -> Result<Shared> {
        let subject = shared_subject(database)?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("LOCK");
        let lock = FsStorage
            .try_lock(&lock_path)
            .map_err(io(&lock_path))?
            .ok_or_else(|| {
                FleetError::Engine(valori_engine::Error::Busy {
                    path: dir.to_path_buf(),
                })
            })?;
        let writer = writer_name(dir, writer)?;
        let addrs = url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| FleetError::Nats(format!("{url}: {e}")))?;
        let db_dir = dir.join("db");
        // No automatic checkpoints: one could drop log records past the member's position,
        // which a restart must match against the stream. `commit` checkpoints once the
        // position covering them is durable.
        let checkpoint_bytes = if options.checkpoint_wal_bytes == 0 {
            u64::MAX
        } else {
            options.checkpoint_wal_bytes
        };
        let opts = options
            .follower()
            .durability(valori_engine::Durability::None)
            .checkpoint_wal_bytes(0);
        // A failure of the servers (a snapshot swept away while it was read, an election) is
        // tried again, then left to the member's checks once it runs: it stops with `Corrupt`
        // if the stream has dropped what it lacks.
        for tries in 1..=3 {
            match bootstrap(&addrs, database, dir, &writer, opts.clone()).await {
                Ok(()) => break,
                Err(e @ FleetError::Engine(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(database = %database, "starting from the newest shared snapshot (try {tries} of 3): {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        keep_writer_name(dir, &writer)?;
        let engine = {
            let d = db_dir.clone();
            Arc::new(crate::blocking(move || Engine::open(&d, opts)).await?)
        };
        let config = config_tag(&engine.config()?);
        let pos_path = dir.join("position");
        let position = match std::fs::read(&pos_path) {
            Ok(b) => Position::decode(&b)
                .map_err(|why| corrupt(&pos_path, format!("the position file: {why}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Position::default(),
            Err(e) => return Err(io(&pos_path)(e)),
        };
        let mut outbox = Outbox::open(&dir.join("outbox"))?;
        let seen = position.writers.get(&writer).copied().unwrap_or(0);
        outbox.done_through(seen)?;
        outbox.next = outbox.next.max(seen + 1);
        // Commands applied after the position was last written (a crash in between): matched
        // against the stream again, not applied twice.
        let local = engine.sequence()?;
        let ahead = if local > position.local_seq {
            let e = Arc::clone(&engine);
            let from = position.local_seq + 1;
            let n = usize::try_from(local - position.local_seq).unwrap_or(usize::MAX);
            let entries = crate::blocking(move || e.history(from, n)).await?;
            // Every command past the position must still be in the log, in order: matching a
            // part of them would apply the rest twice.
            if entries.len() != n || entries.iter().zip(from..).any(|(e, seq)| e.seq != seq) {
                return Err(corrupt(
                    &pos_path,
                    format!(
                        "the database holds commands {from}..={local} past the member's position, \
                         but its log no longer holds them all to match against the stream: \
                         rebuild this member from the stream (a new directory under a new \
                         writer name; commands it has queued are not carried over)"
                    ),
                ));
            }
            entries.into_iter().map(|e| e.command).collect()
        } else if local < position.local_seq {
            return Err(corrupt(
                &pos_path,
                format!(
                    "the position says the database had applied {} commands, it holds {local}",
                    position.local_seq
                ),
            ));
        } else {
            VecDeque::new()
        };
        let (tx, rx) = watch::channel(SharedStatus {
            stream_seq: position.stream_seq,
            applied: local,
            queued: outbox.items.len() as u64,
            ..Default::default()
        });
        let inner = Arc::new(Inner {
            database: database.to_string(),
            checkpoint_bytes,
            subject,
            writer,
            config,
            dir: dir.to_path_buf(),
            engine,
            outbox: Mutex::new(outbox),
            wake: Notify::new(),
            outcomes: Mutex::new(BTreeMap::new()),
            status: tx,
            replicas,
            sharing: Arc::new(AtomicBool::new(false)),
            next_share: Arc::new(Mutex::new(None)),
            horizon: AtomicU64::new(MEMBER_HORIZON.as_secs()),
            _lock: lock,
        });
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(addrs)
            .await
            .map_err(|e| nats("connecting")(&e))?;
        let js = jetstream::new(client);
        let (stop, stopping) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(consume_loop(
                Arc::clone(&inner),
                js.clone(),
                replicas,
                position,
                ahead,
                stopping.clone(),
            )),
            tokio::spawn(publish_loop(Arc::clone(&inner), js, seen, stopping)),
        ];
        Ok(Shared {
            inner,
            status: rx,
            stop,
            tasks,
        })
    }

    /// Sets how long another member's last reported position (each member reports it to the
    /// servers whenever it writes its own) keeps this member's snapshots from letting the stream
    /// drop commands that member has not taken; default [`MEMBER_HORIZON`] (24 h). A member
    /// away for longer may find commands it lacks dropped: it then stops with `Corrupt` and,
    /// reopened, is made again from the newest snapshot.
    pub fn set_member_horizon(&self, horizon: Duration) {
        self.inner
            .horizon
            .store(horizon.as_secs(), Ordering::Relaxed);
    }

    /// This member's writer name.
    pub fn writer(&self) -> &str {
        &self.inner.writer
    }

    /// The database: read it (its writes come from the stream alone; a direct write is
    /// `ReadOnly`).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// The database's name on the stream.
    pub fn database(&self) -> &str {
        &self.inner.database
    }

    /// Where it stands.
    pub fn status(&self) -> SharedStatus {
        self.status.borrow().clone()
    }

    /// Queues a command for the stream: once this returns it is durable in the outbox and
    /// will be published, now or when the servers are reached. The database does not show it
    /// until it comes back from the stream ([`Shared::wait`]). A command larger than
    /// [`MAX_SHARED_COMMAND`] is refused here, with nothing queued.
    pub fn submit(&self, cmd: &Command<'_>) -> Result<Ticket> {
        if let Some(e) = &self.status.borrow().error {
            return Err(FleetError::Nats(format!(
                "{}: this member has stopped: {e}",
                self.inner.database
            )));
        }
        let len = cmd.encoded_len();
        if len > MAX_SHARED_COMMAND {
            return Err(FleetError::Engine(valori_engine::Error::TooLarge {
                bytes: len as u64,
                limit: MAX_SHARED_COMMAND as u64,
            }));
        }
        let n = {
            let mut outbox = self.inner.lock_outbox();
            let n = outbox.push(bytes::Bytes::from(cmd.to_vec()))?;
            let queued = outbox.items.len() as u64;
            self.inner.status.send_modify(|s| s.queued = queued);
            n
        };
        self.inner.wake.notify_one();
        Ok(Ticket(n))
    }

    /// Waits until the command of `ticket` has come back from the stream and says what became
    /// of it. Outcomes are kept in memory: a ticket from before a restart, or one taken once
    /// already, is not known (`Nats` error).
    pub async fn wait(&self, ticket: Ticket) -> Result<Outcome> {
        let mut rx = self.status.clone();
        loop {
            // Marked seen first: an outcome recorded after the look below comes with a status
            // change that wakes this loop.
            let stopped = rx.borrow_and_update().error.clone();
            if let Some(o) = self
                .inner
                .outcomes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ticket.0)
            {
                return Ok(o);
            }
            if let Some(e) = stopped {
                return Err(FleetError::Nats(format!(
                    "{}: this member has stopped: {e}",
                    self.inner.database
                )));
            }
            if ticket.0 <= self.seen_own() && !self.has_outcome(ticket) {
                return Err(FleetError::Nats(format!(
                    "{}: the outcome of command {} of writer {} is not known here (from \
                     before a restart, or already taken)",
                    self.inner.database, ticket.0, self.inner.writer
                )));
            }
            rx.changed().await.map_err(|_| {
                FleetError::Nats(format!("{}: this member stopped", self.inner.database))
            })?;
        }
    }

    fn has_outcome(&self, ticket: Ticket) -> bool {
        self.inner
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&ticket.0)
    }

    /// This writer's last number taken from the stream.
    fn seen_own(&self) -> u64 {
        let outbox = self.inner.lock_outbox();
        match outbox.items.front() {
            Some((n, _)) => n - 1,
            None => outbox.next - 1,
        }
    }

    /// Submits a command and waits for it: what the database returned, or why every member
    /// refused it.
    pub async fn write(&self, cmd: &Command<'_>) -> Result<(u64, Applied)> {
        let ticket = self.submit(cmd)?;
        match self.wait(ticket).await? {
            Outcome::Applied {
                stream_seq,
                applied,
            } => Ok((stream_seq, applied)),
            Outcome::Refused { error, .. } | Outcome::Dropped { error } => {
                Err(FleetError::Refused(error))
            }
        }
    }

    /// Waits until the member has taken the stream's messages through `stream_seq`.
    pub async fn wait_stream(&self, stream_seq: u64) -> Result<()> {
        let mut rx = self.status.clone();
        let s = rx
            .wait_for(|s| s.stream_seq >= stream_seq || s.error.is_some())
            .await
            .map_err(|_| {
                FleetError::Nats(format!("{}: this member stopped", self.inner.database))
            })?;
        match &s.error {
            Some(e) if s.stream_seq < stream_seq => Err(FleetError::Nats(e.clone())),
            _ => Ok(()),
        }
    }

    /// Stops its work (a command being applied finishes, and the position is written) and
    /// returns the database.
    pub async fn stop(mut self) -> Arc<Engine> {
        let _ = self.stop.send(true);
        for t in &mut self.tasks {
            if tokio::time::timeout(Duration::from_secs(10), &mut *t)
                .await
                .is_err()
            {
                t.abort();
                let _ = (&mut *t).await;
            }
        }
        Arc::clone(&self.inner.engine)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The writer name: the one given (checked, and it must match the one kept in `dir`), the
/// one kept in `dir`, or a new unique one (kept by [`keep_writer_name`]).
fn writer_name(dir: &Path, given: Option<&str>) -> Result<String> {
    let path = dir.join("writer");
    let kept = match std::fs::read_to_string(&path) {
        Ok(s) => Some(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&path)(e)),
    };
    let name = match (given, kept) {
        (Some(g), Some(k)) if g != k => {
            return Err(FleetError::Engine(valori_engine::Error::Invalid(format!(
                "{} belongs to writer {k:?}, not {g:?} (a writer name belongs to one directory)",
                dir.display()
            ))))
        }
        (_, Some(k)) => k,
        (Some(g), None) => g.to_string(),
        (None, None) => format!("w{}", nuid::next()),
    };
    if name.is_empty()
        || name.len() > MAX_WRITER_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(FleetError::Engine(valori_engine::Error::Invalid(format!(
            "writer name {name:?}: use 1 to {MAX_WRITER_NAME} letters, digits, '-' or '_'"
        ))));
    }
    Ok(name)
}

/// Keeps the writer name in `dir` (once the servers were asked whether it is free, or could
/// not be, and before it is published): a directory holding it has claimed the name.
fn keep_writer_name(dir: &Path, writer: &str) -> Result<()> {
    let path = dir.join("writer");
    if path.exists() {
        return Ok(());
    }
    write_atomic(&path, writer.as_bytes())
}

async fn ensure_stream(js: &jetstream::Context, replicas: usize) -> Result<stream::Stream> {
    js.get_or_create_stream(stream::Config {
        name: SHARED_STREAM.into(),
        subjects: vec![format!("{SHARED_PREFIX}>")],
        num_replicas: replicas,
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| nats("creating the shared stream")(&e))
}

fn header<'a>(m: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    m.headers.as_ref()?.get(name).map(|v| v.as_str())
}

/// Publishes this writer's queued commands, one at a time and in order (a command is
/// published only after the one before it is stored, so they reach the stream in their
/// numbers' order).
async fn publish_loop(
    inner: Arc<Inner>,
    js: jetstream::Context,
    mut published: u64,
    mut stopping: watch::Receiver<bool>,
) {
    let mut tries: u32 = 0;
    // A command the servers refused, and why: published as an empty message instead.
    let mut refused: Option<(u64, String)> = None;
    loop {
        // A stopped member publishes nothing more (its name may be another's too).
        if inner.status.borrow().error.is_some() {
            return;
        }
        let next = {
            let outbox = inner.lock_outbox();
            outbox
                .items
                .iter()
                .find(|(n, _)| *n > published)
                .map(|(n, c)| (*n, c.clone()))
        };
        let Some((n, command)) = next else {
            tokio::select! {
                () = inner.wake.notified() => {}
                // Also looks again now and then: an item can come back after a reconnect.
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stopping.changed() => return,
            }
            continue;
        };
        tries = tries.saturating_add(1);
        let mut msg = PublishMessage::build()
            .message_id(format!("{}.{}.{n}", inner.database, inner.writer))
            .header(WRITER_HEADER, inner.writer.as_str())
            .header(NUMBER_HEADER, n.to_string().as_str())
            .header(CONFIG_HEADER, inner.config.as_str());
        msg = match &refused {
            // The servers refused this command: an empty message takes its number instead.
            Some((r, why)) if *r == n => msg.header(DROPPED_HEADER, why.as_str()),
            _ => msg.payload(command),
        };
        let result = tokio::select! {
            r = async {
                match js.send_publish(inner.subject.clone(), msg).await {
                    Ok(ack) => ack.await,
                    Err(e) => Err(e),
                }
            } => r,
            _ = stopping.changed() => return,
        };
        match result {
            Ok(_) => {
                published = n;
                if tries > 1 {
                    inner.status.send_modify(|s| s.retrying = None);
                }
                tries = 0;
            }
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                // Never stored: no member has it. An empty message takes its number, so that
                // the members see the writer's numbers without a gap (a gap stops them).
                let error = format!("the servers refused command {n}: {e}");
                inner.record(
                    n,
                    Outcome::Dropped {
                        error: error.clone(),
                    },
                );
                refused = Some((n, error));
                tries = 0;
            }
            Err(e) => {
                inner.retrying(format!("publishing command {n} (try {tries}): {e}"));
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100 * u64::from(tries.min(20)))) => {}
                    _ = stopping.changed() => return,
                }
            }
        }
    }
}

/// What a member does with one message of the stream.
enum Take {
    /// Applied: the database's result.
    Applied(Applied),
    /// Refused alike by every member.
    Refused(String),
    /// A command taken before a crash, matched again.
    Matched,
    /// A command the servers refused, stood for by an empty message.
    Dropped(String),
}

/// Takes the stream's messages in order, from the member's position on.
async fn consume_loop(
    inner: Arc<Inner>,
    js: jetstream::Context,
    replicas: usize,
    mut pos: Position,
    mut ahead: VecDeque<Vec<u8>>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut tries: u32 = 0;
    let mut uncommitted: u32 = 0;
    let client = js.client();
    'connect: loop {
        if tries > 0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100 * u64::from(tries.min(20)))) => {}
                _ = stopping.changed() => break 'connect,
            }
        }
        tries = tries.saturating_add(1);
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        inner.status.send_modify(|s| s.connected = connected);
        let stream = match ensure_stream(&js, replicas).await {
            Ok(s) => s,
            Err(e) => {
                inner.retrying(e.to_string());
                continue;
            }
        };
        let pointers = match pointers(&js, replicas).await {
            Ok(p) => p,
            Err(e) => {
                inner.retrying(e.to_string());
                continue;
            }
        };
        // The stream may have dropped commands this member lacks (it was away while the
        // fleet's snapshots moved on): it must start again from the newest snapshot.
        match dropped_past(&pointers, &inner.database, pos.stream_seq).await {
            Ok(None) => report(&inner, &js, pos.stream_seq).await,
            Ok(Some(why)) => return inner.fail(why),
            Err(e) => {
                inner.retrying(e.to_string());
                continue;
            }
        }
        let deliver_policy = if pos.stream_seq == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: pos.stream_seq + 1,
            }
        };
        let consumer = match stream
            .create_consumer(OrderedConfig {
                filter_subject: inner.subject.clone(),
                deliver_policy,
                max_batch: 64,
                ..Default::default()
            })
            .await
        {
            Ok(c) => c,
            Err(e) => {
                inner.retrying(format!("creating the consumer: {e}"));
                continue;
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                inner.retrying(format!("consuming: {e}"));
                continue;
            }
        };
        // Consuming again: whatever failed before is over, messages or not.
        inner.status.send_modify(|s| {
            s.connected = true;
            s.retrying = None;
        });
        // Seconds without a message, and the last stream message delivered.
        let (mut quiet, mut seen) = (0u32, pos.stream_seq);
        loop {
            let next = tokio::select! {
                m = tokio::time::timeout(Duration::from_secs(1), messages.next()) => m,
                _ = stopping.changed() => break 'connect,
            };
            let next = match next {
                Ok(n) => n,
                Err(_) => {
                    // Quiet: report the connection as it is, and go on waiting.
                    let connected =
                        client.connection_state() == async_nats::connection::State::Connected;
                    inner.status.send_modify(|s| s.connected = connected);
                    quiet += 1;
                    // Quiet for a while with more on the stream: the consumer is stuck (its
                    // server died and making it again failed); it is made again here.
                    if connected && quiet % STALL_SECONDS == 0 {
                        // Caught up, or so it seems: commands it lacks may have been dropped
                        // with nothing after them to show the gap.
                        match dropped_past(&pointers, &inner.database, pos.stream_seq).await {
                            Ok(Some(why)) => return inner.fail(why),
                            // Heard from while quiet too.
                            Ok(None) => report(&inner, &js, pos.stream_seq).await,
                            Err(_) => {} // looked at again in 5 s
                        }
                        let silent = Duration::from_secs(u64::from(quiet));
                        if let Ok(Some(why)) =
                            crate::stuck(&stream, &inner.subject, seen, silent).await
                        {
                            inner.retrying(why);
                            continue 'connect;
                        }
                    }
                    continue;
                }
            };
            quiet = 0;
            let m = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    inner.retrying(format!("consuming: {e}"));
                    continue 'connect;
                }
                None => {
                    inner.retrying("the consumer ended".into());
                    continue 'connect;
                }
            };
            if tries > 1 {
                inner.status.send_modify(|s| s.retrying = None);
            }
            tries = 1;
            let (stream_seq, pending) = match m.info() {
                Ok(i) => (i.stream_sequence, i.pending),
                Err(e) => {
                    inner.retrying(format!("a message without its stream sequence: {e}"));
                    continue 'connect;
                }
            };
            seen = seen.max(stream_seq);
            if stream_seq <= pos.stream_seq {
                continue;
            }
            // A jump: the messages between are another database's, or were dropped.
            if stream_seq > pos.stream_seq + 1 {
                match dropped_past(&pointers, &inner.database, pos.stream_seq).await {
                    Ok(None) => {}
                    Ok(Some(why)) => return inner.fail(why),
                    Err(e) => {
                        inner.retrying(e.to_string());
                        continue 'connect;
                    }
                }
            }
            if let Err(why) = take(&inner, &mut pos, &mut ahead, &m, stream_seq).await {
                // Its position stays before the message (what it applied before is durable
                // only as far as the last commit: a restart matches the rest again).
                return inner.fail(why);
            }
            uncommitted += 1;
            if pending == 0 && !ahead.is_empty() {
                return inner.fail(format!(
                    "Corrupt: the database holds {} command(s) past the member's position that \
                     the stream does not: rebuild this member from the stream (a new directory \
                     under a new writer name; commands it has queued are not carried over)",
                    ahead.len()
                ));
            }
            if pending == 0 || uncommitted >= COMMIT_EVERY {
                if let Err(e) = commit(&inner, &js, &mut pos, ahead.len()).await {
                    inner.fail(e.to_string());
                    return;
                }
                uncommitted = 0;
            }
            let queued = inner.lock_outbox().items.len() as u64;
            let applied = pos.local_seq.max(inner.engine.sequence().unwrap_or(0));
            inner.status.send_modify(|s| {
                s.stream_seq = pos.stream_seq;
                s.applied = applied;
                s.pending = pending;
                s.queued = queued;
                s.connected = true;
            });
        }
    }
    if uncommitted > 0 {
        if let Err(e) = commit(&inner, &js, &mut pos, ahead.len()).await {
            inner.fail(e.to_string());
        }
    }
}

/// Takes one message: skips a writer's number already taken, matches a command taken before
/// a crash, or applies it. Err: the member must stop (a message that is not a shared command,
/// one for another configuration, or a failure of the database).
async fn take(
    inner: &Arc<Inner>,
    pos: &mut Position,
    ahead: &mut VecDeque<Vec<u8>>,
    m: &async_nats::Message,
    stream_seq: u64,
) -> std::result::Result<(), String> {
    let subject = &inner.subject;
    let writer = header(m, WRITER_HEADER)
        .filter(|w| !w.is_empty() && w.len() <= MAX_WRITER_NAME)
        .ok_or_else(|| {
            format!(
                "Corrupt: message {stream_seq} on {subject} has no valid {WRITER_HEADER} header"
            )
        })?
        .to_string();
    let n: u64 = header(m, NUMBER_HEADER)
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            format!(
                "Corrupt: message {stream_seq} on {subject} has no valid {NUMBER_HEADER} header"
            )
        })?;
    match header(m, CONFIG_HEADER) {
        Some(c) if c == inner.config => {}
        other => {
            return Err(format!(
                "Corrupt: message {stream_seq} on {subject} is a command for a database of {} \
                 (dimension/metric); this member's is {}: every member must open the shared \
                 database with the same dimension and metric",
                other.unwrap_or("(none)"),
                inner.config
            ))
        }
    }
    let last = pos.writers.get(&writer).copied().unwrap_or(0);
    if n <= last {
        // A late copy of a command already taken (published again after the duplicate
        // window): skipped by every member.
        pos.stream_seq = stream_seq;
        return Ok(());
    }
    if n != last + 1 {
        // A writer publishes its commands one after another, each once stored: a number
        // skipped is a command the stream no longer holds (dropped by a limit or a purge
        // while this member was away). Applying the rest would diverge from the members
        // that took it.
        return Err(format!(
            "Corrupt: message {stream_seq} on {subject} is command {n} of writer {writer:?}, \
             but the next of that writer this member needs is {}: the stream no longer holds \
             it (dropped while this member was away); rebuild this member (a new directory \
             under a new writer name; commands it has queued are not carried over)",
            last + 1
        ));
    }
    if writer == inner.writer {
        // This member's own command, or another directory's under the same name.
        let (submitted, mine) = {
            let outbox = inner.lock_outbox();
            let mine = outbox
                .items
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, c)| c.clone());
            (outbox.next - 1, mine)
        };
        let other = header(m, DROPPED_HEADER).is_none()
            && mine.is_some_and(|c| c.as_ref() != m.payload.as_ref());
        if n > submitted || other {
            return Err(format!(
                "Corrupt: message {stream_seq} on {subject} is command {n} of writer {writer:?}, \
                 this member's name, but not the command {n} this member submitted: another \
                 member directory writes under the same name (a writer name belongs to one \
                 directory)"
            ));
        }
    }
    let payload = m.payload.clone();
    let taken = if let Some(why) = header(m, DROPPED_HEADER) {
        // A command its writer's servers refused: nothing to apply, on every member.
        Take::Dropped(why.to_string())
    } else if let Some(front) = ahead.front() {
        // Before the crash this member applied its commands up to `ahead`'s last, in stream
        // order, and logged nothing for a refused one: a command equal to the next applied one
        // is that one (had it been refused, the same command after it would have been too).
        if front.as_slice() == payload.as_ref() {
            ahead.pop_front();
            Take::Matched
        } else {
            Take::Refused("refused before a restart".into())
        }
    } else {
        let engine = Arc::clone(&inner.engine);
        let applied = tokio::task::spawn_blocking(move || match Command::decode(&payload) {
            Ok(cmd) => match engine.apply_ordered(&cmd) {
                Ok(a) => Ok(Take::Applied(a)),
                // A full store (memory, capacity) depends on this member, not on the
                // command: stop rather than refuse what the others apply.
                Err(
                    e @ valori_engine::Error::Kernel(valori_engine::valori_kernel::Error::Full(_)),
                ) => Err(e.to_string()),
                Err(
                    e @ (valori_engine::Error::Kernel(_) | valori_engine::Error::TooLarge { .. }),
                ) => Ok(Take::Refused(e.to_string())),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Ok(Take::Refused(format!("the command does not decode: {e}"))),
        })
        .await
        .map_err(|e| format!("applying: {e}"))??;
        applied
    };
    pos.writers.insert(writer.clone(), n);
    pos.stream_seq = stream_seq;
    if writer == inner.writer {
        match taken {
            Take::Applied(applied) => inner.record(
                n,
                Outcome::Applied {
                    stream_seq,
                    applied,
                },
            ),
            Take::Refused(error) => inner.record(n, Outcome::Refused { stream_seq, error }),
            Take::Dropped(error) => inner.record(n, Outcome::Dropped { error }),
            Take::Matched => {}
        }
        inner
            .lock_outbox()
            .done_through(n)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Makes what the member applied durable, then its position, then empties the outbox if
/// everything in it is done.
async fn commit(
    inner: &Arc<Inner>,
    js: &jetstream::Context,
    pos: &mut Position,
    unmatched: usize,
) -> Result<()> {
    let engine = Arc::clone(&inner.engine);
    let local = crate::blocking(move || {
        engine.flush()?;
        engine.sequence()
    })
    .await?;
    // Commands logged before a crash and not matched against the stream yet are not covered
    // by this position: a restart must find them past it (and match them), and no
    // checkpoint may drop them from the log meanwhile.
    pos.local_seq = local.saturating_sub(unmatched as u64);
    write_atomic(&inner.dir.join("position"), &pos.encode())?;
    report(inner, js, pos.stream_seq).await;
    inner.lock_outbox().compact()?;
    if unmatched > 0 {
        return Ok(());
    }
    // The position now covers the whole log: a checkpoint may drop it.
    let engine = Arc::clone(&inner.engine);
    let limit = inner.checkpoint_bytes;
    let checkpointed = crate::blocking(move || {
        if engine.stats()?.wal_bytes >= limit {
            engine.checkpoint()?;
            return Ok(true);
        }
        Ok(false)
    })
    .await?;
    // The new snapshot goes to the bucket (one at a time: a member still putting the last one
    // skips this one), so that a new member starts from it and the stream can drop what the
    // one before it covered.
    // The snapshot waits in `next_share` (replacing an older one still waiting) for the task
    // that puts them in the bucket one at a time. The task holds neither the member nor its
    // database (a member stopped meanwhile can be opened again at once): only the file, open.
    if checkpointed {
        let engine = Arc::clone(&inner.engine);
        let newest = crate::blocking(move || engine.newest_snapshot()).await;
        let file = match newest {
            Ok(Some((seq, path))) if seq == pos.local_seq => {
                tokio::fs::File::open(&path).await.ok()
            }
            _ => None,
        };
        if let Some(file) = file {
            let upload = Upload {
                database: inner.database.clone(),
                writer: inner.writer.clone(),
                subject: inner.subject.clone(),
                replicas: inner.replicas,
                pos: pos.clone(),
                horizon: Duration::from_secs(inner.horizon.load(Ordering::Relaxed)),
            };
            *inner.next_share.lock().unwrap_or_else(|p| p.into_inner()) = Some((upload, file));
            if !inner.sharing.swap(true, Ordering::SeqCst) {
                let (js, sharing) = (js.clone(), Arc::clone(&inner.sharing));
                tokio::spawn(share_loop(js, sharing, Arc::clone(&inner.next_share)));
            }
        }
    }
    Ok(())
}

/// Reports the last stream message this member has taken (not waited for): the snapshots of
/// other members do not let the stream drop what it has not taken.
async fn report(inner: &Inner, js: &jetstream::Context, taken: u64) {
    let report = js.publish(
        report_subject(&inner.database, &inner.writer),
        bytes::Bytes::copy_from_slice(&taken.to_le_bytes()),
    );
    let _ = tokio::time::timeout(Duration::from_millis(200), report).await;
}

/// The subject on [`SHARED_POINTERS`] where `writer` reports its position in `database`.
fn report_subject(database: &str, writer: &str) -> String {
    format!("{POINTER_PREFIX}{database}.m.{writer}")
}

/// Follows the position in the report of a member that is downloading the snapshot taken
/// there: [`sweep`] keeps that snapshot while the report is within the horizon.
const DOWNLOADING: &[u8] = b"downloading";

/// A snapshot waiting to be put in the bucket, with its file.
type NextShare = Arc<Mutex<Option<(Upload, tokio::fs::File)>>>;

/// Puts the snapshots that wait in `next` in the bucket, the newest each time, until none
/// waits; then clears `sharing`.
async fn share_loop(js: jetstream::Context, sharing: Arc<AtomicBool>, next: NextShare) {
    loop {
        let job = next.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((upload, mut file)) = job else {
            sharing.store(false, Ordering::SeqCst);
            // One may have come between the look and the store, its committer seeing the
            // task still running.
            let waiting = next.lock().unwrap_or_else(|p| p.into_inner()).is_some();
            if waiting && !sharing.swap(true, Ordering::SeqCst) {
                continue;
            }
            return;
        };
        // Retried for about a minute (the servers may be electing a leader), unless a newer
        // one is waiting.
        for tries in 1..=SHARE_TRIES {
            match share_snapshot(&upload, &js, &mut file).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(database = %upload.database, "putting a snapshot in the bucket (try {tries} of {SHARE_TRIES}): {e}");
                    if next.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(u64::from(tries))).await;
                }
            }
        }
    }
}

/// A member's snapshot to put in the bucket ([`share_snapshot`]).
struct Upload {
    database: String,
    writer: String,
    subject: String,
    replicas: usize,
    /// The member's position when it was taken.
    pos: Position,
    /// Members whose report is older than this do not hold the dropping back.
    horizon: Duration,
}

async fn pointers(js: &jetstream::Context, replicas: usize) -> Result<stream::Stream> {
    js.get_or_create_stream(stream::Config {
        name: SHARED_POINTERS.into(),
        subjects: vec![format!("{POINTER_PREFIX}>")],
        num_replicas: replicas,
        storage: stream::StorageType::File,
        max_messages_per_subject: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| nats("creating the shared snapshot pointers")(&e))
}

async fn shared_bucket(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<object_store::ObjectStore> {
    if let Ok(b) = js.get_object_store(SHARED_BUCKET).await {
        return Ok(b);
    }
    js.create_object_store(object_store::Config {
        bucket: SHARED_BUCKET.into(),
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| nats("creating the shared snapshot bucket")(&e))
}

/// `database`'s pointer and its stream sequence, if it has one.
async fn read_pointer(pointers: &stream::Stream, database: &str) -> Result<Option<(Pointer, u64)>> {
    match pointers
        .get_last_raw_message_by_subject(&format!("{POINTER_PREFIX}{database}"))
        .await
    {
        Ok(m) => Pointer::decode(&m.payload)
            .map(|p| Some((p, m.sequence)))
            .map_err(|why| {
                FleetError::Nats(format!(
                    "the pointer of shared database {database:?} in {SHARED_POINTERS}: {why}"
                ))
            }),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(nats("reading the shared snapshot pointer")(&e)),
    }
}

/// `Some(why)` if the stream may have dropped commands of `database` after message `taken`
/// (a member's last), which that member then lacks.
async fn dropped_past(
    pointers: &stream::Stream,
    database: &str,
    taken: u64,
) -> Result<Option<String>> {
    let Some((p, _)) = read_pointer(pointers, database).await? else {
        return Ok(None);
    };
    Ok((p.dropped > taken).then(|| {
        format!(
            "Corrupt: the stream has dropped this database's commands through message {} (the \
             fleet's snapshots hold them) and this member had taken them only through message \
             {taken}: reopen it to start again from the newest snapshot (its queued commands \
             are kept)",
            p.dropped
        )
    }))
}

/// Puts the member's newest snapshot (taken at `pos`) in the bucket and makes it the newest
/// if no newer one is (compare-and-set on the pointer); then lets the stream drop the commands
/// the snapshot before it covered, and deletes the older ones ([`sweep`]).
async fn share_snapshot(
    inner: &Upload,
    js: &jetstream::Context,
    file: &mut tokio::fs::File,
) -> Result<()> {
    let pos = &inner.pos;
    // Named by its writer too: two members may put one of the same message at once.
    let object = format!("{}.{}.{}", inner.database, pos.stream_seq, inner.writer);
    let pointers = pointers(js, inner.replicas).await?;
    match read_pointer(&pointers, &inner.database).await? {
        // Set by an earlier try that failed after: only the dropping is left to do.
        Some((p, _)) if p.object == object => {
            drop_through(js, inner, p.dropped).await?;
            // The members' reports read after the pointer (see `sweep`).
            let held = member_reports(&pointers, &inner.database, inner.horizon).await?;
            sweep(
                &shared_bucket(js, inner.replicas).await?,
                &inner.database,
                &p,
                &held,
            )
            .await;
            return Ok(());
        }
        Some((p, _)) if p.snapshot >= pos.stream_seq => return Ok(()),
        _ => {}
    }
    tokio::io::AsyncSeekExt::rewind(file)
        .await
        .map_err(|e| nats("rewinding the snapshot")(&e))?;
    let bucket = shared_bucket(js, inner.replicas).await?;
    let meta = object_store::ObjectMetadata {
        name: object.clone(),
        description: Some(format!(
            "valori shared snapshot through stream message {}",
            pos.stream_seq
        )),
        chunk_size: Some(crate::message_room(js)),
        metadata: std::iter::once((POSITION_KEY.to_string(), crate::hex(&pos.encode()))).collect(),
        ..Default::default()
    };
    // On a failure the object is left for the sweeps: the set of an earlier try that gave up
    // (its acknowledgment lost) may still be agreed and name it.
    bucket
        .put(meta, file)
        .await
        .map_err(|e| nats("putting the shared snapshot")(&e))?;
    let (now, held) = loop {
        let (before, revision) = read_pointer(&pointers, &inner.database)
            .await?
            .unwrap_or_default();
        // Looked at on every try: the members' reports move on too.
        let held = member_reports(&pointers, &inner.database, inner.horizon).await?;
        if before.object == object {
            // An earlier try's set, agreed after that try gave up: only the dropping is left.
            break (before, held);
        }
        if before.snapshot >= pos.stream_seq {
            // Another member's newer snapshot came first. Deleted unless a pointer named it
            // (an earlier try's set, since replaced): an earlier set still being agreed would
            // be after the same pointer message as the one that replaced it, and so refused
            // as its duplicate.
            if before.previous_object != object {
                let _ = bucket.delete(&object).await;
            }
            return Ok(());
        }
        let now = Pointer {
            snapshot: pos.stream_seq,
            object: object.clone(),
            previous: before.snapshot,
            previous_object: before.object.clone(),
            // Through the previous snapshot, but not past what a member heard from within
            // the horizon has taken; never backwards.
            dropped: before
                .dropped
                .max(before.snapshot.min(held.floor.unwrap_or(u64::MAX))),
        };
        // Set only if no other member set it since it was read. The message id names the
        // pointer message this one replaces: nats-server before 2.9.21 checks the expected
        // sequence when a set is proposed, against what it has stored, so two sets proposed
        // at once could both be stored; de-duplication, applied in the cluster's agreed
        // order, stores one (see `publish_part` in the crate root). A duplicate is another
        // member's set, or an earlier try's (then the pointer names this object, and the next
        // look finds it).
        let set = PublishMessage::build()
            .payload(bytes::Bytes::from(now.encode()))
            .message_id(format!("{}.after.{revision}", inner.database))
            .expected_last_subject_sequence(revision);
        let set = match js
            .send_publish(format!("{POINTER_PREFIX}{}", inner.database), set)
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match set {
            Ok(ack) if !ack.duplicate => break (now, held),
            // Changed meanwhile: look again.
            Ok(_) => {
                // The other set may still be being agreed: looked at again shortly.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => continue,
            Err(e) => {
                // The pointer may have been set all the same (an acknowledgment lost, or the
                // set still being agreed): the object is kept unless a newer pointer has
                // passed it (a later sweep deletes it if it is not named then).
                if let Ok(Some((p, _))) = read_pointer(&pointers, &inner.database).await {
                    if p.object == object {
                        break (now, held);
                    }
                }
                return Err(FleetError::Nats(format!(
                    "setting the shared snapshot pointer: {e}"
                )));
            }
        }
    };
    drop_through(js, inner, now.dropped).await?;
    sweep(&bucket, &inner.database, &now, &held).await;
    tracing::info!(database = %inner.database, snapshot = now.snapshot, dropped_through = now.dropped, "a shared snapshot is the newest in the bucket");
    Ok(())
}

/// Deletes `database`'s snapshots in the bucket other than the two `now` names, up to its
/// newest (one named after it may be another member's, still on its way): the one the new
/// pointer dropped, and any a failed or outrun try left; but not one a member reported it is
/// downloading (`held`, read after the pointer `now` replaced: a member that read an older
/// pointer and is still downloading its snapshot reported before that pointer was replaced,
/// or it would have read the newer one). Failures are only logged: the next sweep tries again.
async fn sweep(bucket: &object_store::ObjectStore, database: &str, now: &Pointer, held: &Held) {
    let mut names = Vec::new();
    match bucket.list().await {
        Ok(mut list) => {
            while let Some(info) = list.next().await {
                let Ok(info) = info else { break };
                names.push(info.name);
            }
        }
        Err(e) => tracing::warn!(database = %database, "listing the shared snapshots: {e}"),
    }
    for name in stale_snapshots(names, database, now, held) {
        if let Err(e) = bucket.delete(&name).await {
            tracing::warn!(database = %database, "deleting the old snapshot {name}: {e}");
        }
    }
}

/// Of the bucket's objects `names`, those [`sweep`] deletes.
fn stale_snapshots(names: Vec<String>, database: &str, now: &Pointer, held: &Held) -> Vec<String> {
    let prefix = format!("{database}.");
    names
        .into_iter()
        .filter(|name| {
            let seq = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split('.').next())
                .and_then(|n| n.parse::<u64>().ok());
            seq.is_some_and(|seq| seq <= now.snapshot && !held.downloading.contains(&seq))
                && *name != now.object
                && *name != now.previous_object
        })
        .collect()
}

/// What the members of `database` that reported within `horizon` hold: the least stream
/// message taken among them (`None`: none reported), and the snapshots (by stream message)
/// that some of them are downloading.
async fn member_reports(
    pointers: &stream::Stream,
    database: &str,
    horizon: Duration,
) -> Result<Held> {
    let filter = format!("{POINTER_PREFIX}{database}.m.*");
    let mut subjects = pointers
        .info_with_subjects(&filter)
        .await
        .map_err(|e| nats("listing the members' positions")(&e))?;
    let mut names = Vec::new();
    while let Some(s) = subjects.next().await {
        names.push(s.map_err(|e| nats("listing the members' positions")(&e))?.0);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut held = Held::default();
    for name in names {
        let m = match pointers.get_last_raw_message_by_subject(&name).await {
            Ok(m) => m,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => continue,
            Err(e) => return Err(nats("reading a member's position")(&e)),
        };
        let at = u64::try_from(m.time.unix_timestamp()).unwrap_or(0);
        if now.saturating_sub(at) > horizon.as_secs() {
            continue;
        }
        let Some(taken) = m
            .payload
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
        else {
            continue;
        };
        held.floor = Some(held.floor.map_or(taken, |f| f.min(taken)));
        if m.payload.get(8..) == Some(DOWNLOADING) {
            held.downloading.insert(taken);
        }
    }
    Ok(held)
}

/// What members hold back ([`member_reports`]).
#[derive(Default)]
struct Held {
    floor: Option<u64>,
    downloading: std::collections::BTreeSet<u64>,
}

/// Lets the stream drop the database's commands through message `dropped`.
async fn drop_through(js: &jetstream::Context, inner: &Upload, dropped: u64) -> Result<()> {
    if dropped == 0 {
        return Ok(());
    }
    ensure_stream(js, inner.replicas)
        .await?
        .purge()
        .filter(&inner.subject)
        .sequence(dropped + 1)
        .await
        .map_err(|e| nats("dropping the commands the snapshots cover")(&e))?;
    Ok(())
}

/// Before a member's database is opened: a member with nothing yet starts from the newest
/// snapshot in the bucket, and one whose position is behind what the stream has dropped is
/// made again from it, its outbox and writer name kept. The snapshot is received into
/// `db-incoming` and only then swapped in (a `rebuild` file, holding the new position, says a
/// swap is under way: it is finished on the next open if interrupted). Without servers within
/// [`BOOTSTRAP_WAIT`], or without a snapshot, nothing changes.
async fn bootstrap(
    addrs: &[async_nats::ServerAddr],
    database: &str,
    dir: &Path,
    writer: &str,
    options: Options,
) -> Result<()> {
    finish_rebuild(dir)?;
    let incoming = dir.join("db-incoming");
    if incoming.exists() {
        // A download interrupted before it was complete.
        std::fs::remove_dir_all(&incoming).map_err(io(&incoming))?;
    }
    let pos_path = dir.join("position");
    let position = match std::fs::read(&pos_path) {
        Ok(b) => Some(
            Position::decode(&b)
                .map_err(|why| corrupt(&pos_path, format!("the position file: {why}")))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&pos_path)(e)),
    };
    let db_dir = dir.join("db");
    let has_db = std::fs::read_dir(&db_dir).is_ok_and(|mut d| d.next().is_some());
    let fresh = !has_db && position.is_none();
    let taken = position.as_ref().map_or(0, |p| p.stream_seq);
    let look = async {
        let client = async_nats::ConnectOptions::new()
            .connect(addrs.to_vec())
            .await
            .ok()?;
        let js = jetstream::new(client);
        let pointers = js.get_stream(SHARED_POINTERS).await.ok()?;
        Some((js, pointers))
    };
    let Ok(Some((js, pointers))) = tokio::time::timeout(BOOTSTRAP_WAIT, look).await else {
        return Ok(());
    };
    // Every member reports its position under its writer name, snapshot or not: a report
    // under this name means another directory writes as it (unless this one kept the name:
    // then the report may be its own, from an open that failed after).
    if fresh && !dir.join("writer").exists() {
        match pointers
            .get_last_raw_message_by_subject(&report_subject(database, writer))
            .await
        {
            Ok(_) => return Err(name_taken(writer, database)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(nats("looking up the shared members' reports")(&e)),
        }
    }
    // The pointer may move on (and its object be deleted) while this looks: looked up again.
    let mut tries = 0;
    let (info, snap) = loop {
        tries += 1;
        let Some((p, _)) = read_pointer(&pointers, database).await? else {
            return Ok(());
        };
        if !(fresh || taken < p.dropped) || taken >= p.snapshot {
            return Ok(());
        }
        let bucket = js
            .get_object_store(SHARED_BUCKET)
            .await
            .map_err(|e| nats("opening the shared snapshot bucket")(&e))?;
        let (info, snap) = match bucket.info(&p.object).await {
            Ok(info) if !info.deleted => {
                let snap = info
                    .metadata
                    .get(POSITION_KEY)
                    .and_then(|h| crate::unhex(h))
                    .ok_or_else(|| "no position".to_string())
                    .and_then(|b| Position::decode(&b))
                    .map_err(|why| {
                        FleetError::Nats(format!(
                            "shared snapshot {} has no valid position: {why}",
                            p.object
                        ))
                    })?;
                if fresh && snap.writers.contains_key(writer) {
                    return Err(name_taken(writer, database));
                }
                (info, snap)
            }
            // Swept while the pointer was read: the pointer has moved on (or soon will).
            Ok(_) if tries < 5 => {
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                continue;
            }
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound && tries < 5 => {
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                continue;
            }
            Ok(_) => {
                return Err(FleetError::NotFound(format!(
                    "shared snapshot {}",
                    p.object
                )))
            }
            Err(e) => return Err(nats("looking up the shared snapshot")(&e)),
        };
        // The name is checked: kept before it is reported under (a retried open then does
        // not refuse its own report), and only then (a refused name leaves nothing behind).
        keep_writer_name(dir, writer)?;
        // Reported as taken through the snapshot before it is fetched (its writer name
        // checked first: the report replaces the name's last), or two snapshots set before
        // this member reports from its new place could drop what it needs next (its last
        // report may be older than the horizon). A set already under way read the pointer
        // this one reads again, so it drops at most through that pointer's snapshot: if that
        // moved on, the newer snapshot is taken instead.
        let held = js
            .publish(
                report_subject(database, writer),
                bytes::Bytes::from([&p.snapshot.to_le_bytes()[..], DOWNLOADING].concat()),
            )
            .await;
        match held {
            Ok(ack) => {
                ack.await
                    .map_err(|e| nats("reporting the member's new position")(&e))?;
            }
            Err(e) => return Err(nats("reporting the member's new position")(&e)),
        }
        match read_pointer(&pointers, database).await? {
            // Moved on: a set under way may not have seen this report, and may drop past
            // this snapshot or sweep it; the newer one is taken instead.
            Some((q, _)) if q.snapshot != p.snapshot => {
                if tries >= 5 {
                    return Err(FleetError::Nats(format!(
                        "the newest shared snapshot of {database:?} moved on {tries} times \
                         while this member looked"
                    )));
                }
            }
            _ => break (info, snap),
        }
    };
    tracing::info!(database = %database, from = snap.stream_seq, "starting from the newest shared snapshot");
    let chunks = crate::Chunks::open(&js, SHARED_BUCKET, &info).await?;
    let engine = crate::receive_object(chunks, info.size, &incoming, options).await?;
    let seq = engine.sequence()?;
    drop(engine);
    if seq != snap.local_seq {
        let _ = std::fs::remove_dir_all(&incoming);
        return Err(corrupt(
            &incoming,
            format!(
                "shared snapshot {} holds {seq} commands, its position says {}",
                info.name, snap.local_seq
            ),
        ));
    }
    write_atomic(&dir.join("rebuild"), &snap.encode())?;
    finish_rebuild(dir)
}

/// A new member directory was given a writer name another directory writes as.
fn name_taken(writer: &str, database: &str) -> FleetError {
    FleetError::Engine(valori_engine::Error::Invalid(format!(
        "writer {writer:?} is already a member of shared database {database:?} through another \
         directory: a writer name belongs to one directory (give another, or none for a \
         new unique one)"
    )))
}

/// Finishes a swap [`bootstrap`] began: `db-incoming` replaces `db`, then the position is
/// the snapshot's.
fn finish_rebuild(dir: &Path) -> Result<()> {
    let marker = dir.join("rebuild");
    let bytes = match std::fs::read(&marker) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(&marker)(e)),
    };
    let pos = Position::decode(&bytes)
        .map_err(|why| corrupt(&marker, format!("the rebuild file: {why}")))?;
    let (incoming, db) = (dir.join("db-incoming"), dir.join("db"));
    if incoming.exists() {
        if db.exists() {
            std::fs::remove_dir_all(&db).map_err(io(&db))?;
        }
        std::fs::rename(&incoming, &db).map_err(io(&db))?;
    }
    write_atomic(&dir.join("position"), &pos.encode())?;
    std::fs::remove_file(&marker).map_err(io(&marker))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_back_and_damage_is_refused() {
        let mut p = Position {
            stream_seq: 7,
            local_seq: 5,
            ..Default::default()
        };
        p.writers.insert("robot-a".into(), 3);
        p.writers.insert("robot-b".into(), 9);
        let bytes = p.encode();
        assert_eq!(Position::decode(&bytes), Ok(p));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(Position::decode(&b).is_err(), "flip at byte {i} accepted");
        }
        assert!(Position::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_sweep_keeps_the_named_snapshots_and_those_being_downloaded() {
        let now = Pointer {
            snapshot: 15,
            object: "fleet.15.a".into(),
            previous: 12,
            previous_object: "fleet.12.c".into(),
            dropped: 9,
        };
        let names = [
            "fleet.5.a",  // older: deleted
            "fleet.9.b",  // a member downloads it: kept
            "fleet.11.b", // left by a try another member lost: deleted
            "fleet.12.c", // the previous: kept
            "fleet.15.a", // the newest: kept
            "fleet.15.b", // the same message, another member's loser: deleted
            "fleet.20.c", // newer, on its way: kept
            "fleet2.3.a", // another database: kept
            "fleet.x.a",  // not a snapshot's name: kept
        ]
        .map(String::from)
        .to_vec();
        let mut held = Held {
            floor: Some(9),
            ..Default::default()
        };
        held.downloading.insert(9);
        assert_eq!(
            stale_snapshots(names.clone(), "fleet", &now, &held),
            ["fleet.5.a", "fleet.11.b", "fleet.15.b"]
        );
        // Nobody downloading: that one goes too.
        assert_eq!(
            stale_snapshots(names, "fleet", &now, &Held::default()),
            ["fleet.5.a", "fleet.9.b", "fleet.11.b", "fleet.15.b"]
        );
    }

    #[test]
    fn a_pointer_reads_back_and_damage_is_refused() {
        let p = Pointer {
            snapshot: 301,
            object: "fleet.301.robot-a".into(),
            previous: 257,
            previous_object: "fleet.257.robot-b".into(),
            dropped: 200,
        };
        let bytes = p.encode();
        assert_eq!(Pointer::decode(&bytes), Ok(p));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(Pointer::decode(&b).is_err(), "flip at byte {i} accepted");
        }
        assert!(Pointer::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    /// A rebuild interrupted after the snapshot was received, before or after the swap, is
    /// finished on the next open: the received database in place, the snapshot's position.
    #[test]
    fn an_interrupted_rebuild_is_finished() {
        let pos = Position {
            stream_seq: 40,
            local_seq: 30,
            ..Default::default()
        };
        for swapped in [false, true] {
            let d = tmp(&format!("rebuild-{swapped}"));
            std::fs::create_dir_all(d.join("db")).unwrap();
            std::fs::write(d.join("db").join("old"), b"old").unwrap();
            std::fs::write(d.join("position"), Position::default().encode()).unwrap();
            std::fs::create_dir_all(d.join("db-incoming")).unwrap();
            std::fs::write(d.join("db-incoming").join("new"), b"new").unwrap();
            write_atomic(&d.join("rebuild"), &pos.encode()).unwrap();
            if swapped {
                std::fs::remove_dir_all(d.join("db")).unwrap();
                std::fs::rename(d.join("db-incoming"), d.join("db")).unwrap();
            }
            finish_rebuild(&d).unwrap();
            assert!(d.join("db").join("new").exists());
            assert!(!d.join("db").join("old").exists());
            assert!(!d.join("db-incoming").exists() && !d.join("rebuild").exists());
            let read = Position::decode(&std::fs::read(d.join("position")).unwrap());
            assert_eq!(read, Ok(pos.clone()));
            // Nothing to finish: nothing changes.
            finish_rebuild(&d).unwrap();
            assert!(d.join("db").join("new").exists());
            let _ = std::fs::remove_dir_all(&d);
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("valori-outbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_outbox_keeps_its_commands_and_drops_only_a_torn_tail() {
        let d = tmp("tail");
        let path = d.join("outbox");
        {
            let mut o = Outbox::open(&path).unwrap();
            for i in 0..3u8 {
                assert_eq!(
                    o.push(bytes::Bytes::from(vec![i; 10])).ok(),
                    Some(u64::from(i) + 1)
                );
            }
        }
        let full = std::fs::read(&path).unwrap();
        // Reopened whole: the three commands, the next number after them.
        let o = Outbox::open(&path).unwrap();
        assert_eq!(o.items.len(), 3);
        assert_eq!(o.next, 4);
        drop(o);
        // A torn last frame (cut short, or zeros where it should be) is dropped.
        for tail in [full[..full.len() - 5].to_vec(), {
            let mut b = full.clone();
            let frame = FRAME_HEAD + 10 + FRAME_SUM;
            for x in &mut b[2 * frame..] {
                *x = 0;
            }
            b
        }] {
            std::fs::write(&path, &tail).unwrap();
            let o = Outbox::open(&path).unwrap();
            assert_eq!(
                o.items.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                vec![1, 2]
            );
            assert_eq!(o.next, 3);
        }
        // A mostly-done large outbox is rewritten with what is left, and reads back the same.
        {
            let big = tmp("compact");
            let path = big.join("outbox");
            let mut o = Outbox::open(&path).unwrap();
            for i in 0..10u8 {
                o.push(bytes::Bytes::from(vec![i; 1_000_000])).unwrap();
            }
            o.done_through(8).unwrap();
            o.compact().unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() < 3 << 20);
            o.push(bytes::Bytes::from(vec![42u8; 10])).unwrap();
            drop(o);
            let o = Outbox::open(&path).unwrap();
            assert_eq!(
                o.items.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                vec![9, 10, 11]
            );
            assert_eq!(o.items.back().map(|(_, c)| c.len()), Some(10));
            let _ = std::fs::remove_dir_all(&big);
        }
        // Damage with a good frame after it is refused.
        let mut b = full.clone();
        b[FRAME_HEAD + 3] ^= 0xff;
        std::fs::write(&path, &b).unwrap();
        let e = Outbox::open(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("a valid one follows"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
