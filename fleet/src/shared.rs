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
//! Each member keeps, in its directory, the database (`db/`), its writer name (`writer`),
//! the outbox (`outbox`) and its place in the stream (`position`: the stream sequence, the
//! database's sequence number there and each writer's last number). After a crash the
//! database may hold commands past the position; they are matched against the stream again
//! rather than applied twice.

use crate::{nats, FleetError, Result};
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use valori_engine::valori_kernel::{Applied, Command, Config};
use valori_engine::{Engine, Options};

/// The JetStream stream that holds shared databases' commands.
pub const SHARED_STREAM: &str = "VALORI_SHARED";
/// Its subjects: `valori.cmd.<database>`.
pub const SHARED_PREFIX: &str = "valori.cmd.";
/// The largest command a shared database takes, in encoded bytes: one message, with room for
/// its headers under the servers' default `max_payload` (1 MiB). Split larger batches.
pub const MAX_SHARED_COMMAND: usize = 1_040_000;

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
        let body_len = bytes
            .len()
            .checked_sub(32)
            .ok_or("shorter than its checksum")?;
        let (body, sum) = bytes.split_at(body_len);
        if blake3::hash(body).as_bytes() != sum {
            return Err("its checksum does not match".into());
        }
        let mut r = body;
        let mut take = |n: usize| -> std::result::Result<&[u8], String> {
            if r.len() < n {
                return Err("truncated".into());
            }
            let (a, b) = r.split_at(n);
            r = b;
            Ok(a)
        };
        if take(8)? != POSITION_MAGIC {
            return Err("not a position file".into());
        }
        let word = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        };
        let stream_seq = word(take(8)?);
        let local_seq = word(take(8)?);
        let count = word(take(8)?);
        let mut writers = BTreeMap::new();
        for _ in 0..count {
            let len = usize::try_from(word(take(8)?)).map_err(|_| "a name too long")?;
            if len > MAX_WRITER_NAME {
                return Err("a name too long".into());
            }
            let name = std::str::from_utf8(take(len)?)
                .map_err(|_| "a name that is not UTF-8")?
                .to_string();
            let n = word(take(8)?);
            writers.insert(name, n);
        }
        if !r.is_empty() {
            return Err("bytes after its end".into());
        }
        Ok(Position {
            stream_seq,
            local_seq,
            writers,
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
    /// makes a unique one the first time. A name belongs to one directory: two directories
    /// writing under one name would skip each other's commands.
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
        let engine = {
            let opts = options
                .follower()
                .durability(valori_engine::Durability::None)
                .checkpoint_wal_bytes(0);
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
                         rebuild this member (a new directory) from the stream"
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
/// one kept in `dir`, or a new unique one.
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
    if !path.exists() {
        write_atomic(&path, name.as_bytes())?;
    }
    Ok(name)
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
            if let Err(why) = take(&inner, &mut pos, &mut ahead, &m, stream_seq).await {
                // Its position stays before the message (what it applied before is durable
                // only as far as the last commit: a restart matches the rest again).
                return inner.fail(why);
            }
            uncommitted += 1;
            if pending == 0 && !ahead.is_empty() {
                return inner.fail(format!(
                    "Corrupt: the database holds {} command(s) past the member's position that \
                     the stream does not: rebuild this member (a new directory) from the stream",
                    ahead.len()
                ));
            }
            if pending == 0 || uncommitted >= COMMIT_EVERY {
                if let Err(e) = commit(&inner, &mut pos, ahead.len()).await {
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
        if let Err(e) = commit(&inner, &mut pos, ahead.len()).await {
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
             it (dropped while this member was away); rebuild this member (a new directory)",
            last + 1
        ));
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
async fn commit(inner: &Arc<Inner>, pos: &mut Position, unmatched: usize) -> Result<()> {
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
    inner.lock_outbox().compact()?;
    if unmatched > 0 {
        return Ok(());
    }
    // The position now covers the whole log: a checkpoint may drop it.
    let engine = Arc::clone(&inner.engine);
    let limit = inner.checkpoint_bytes;
    crate::blocking(move || {
        if engine.stats()?.wal_bytes >= limit {
            engine.checkpoint()?;
        }
        Ok(())
    })
    .await
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
