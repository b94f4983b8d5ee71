//! Fleet replication: a Valori database's log streamed through NATS JetStream
//! (`docs/REPLICATION.md`).
//!
//! - A **leader** ([`Fleet::lead`]) publishes every committed record of its database, as a
//!   replica record (`docs/FORMAT.md` §8: the exact log record, sequence number and chain
//!   value), to the subject `valori.wal.<database>` of the stream `VALORI`. Each publish
//!   names the stream sequence of the subject's last message
//!   (`Nats-Expected-Last-Subject-Sequence`), so two leaders can never interleave records:
//!   the second is fenced off ([`FleetError::Fenced`]). Each carries a message id naming
//!   the message it follows (`<database>.after.<stream sequence>`), so a retried publish is
//!   stored once, and of two leaders publishing at the same moment one is stored even on
//!   servers that check the expected sequence only against what they have stored (see
//!   `publish_part`).
//! - Its snapshots go to the object store bucket `valori-snapshots` (object `<database>`):
//!   a **follower** ([`Fleet::follow`]) starts from the newest one, then applies the stream's
//!   records after it with [`Engine::apply_replica`], which checks each record's chain value
//!   against its own before applying it. A gap, an altered record or one from another log
//!   stops the follower with `Corrupt` ([`FollowerStatus::error`]); it never applies it.
//!
//! Chain values depend on the commands alone (WAL version 3), so leader and followers have
//! the same sequence number, chain value and state hash after the same record, on every CPU.

#![forbid(unsafe_code)]

mod shared;
pub use shared::{
    shared_subject, Outcome, Shared, SharedStatus, Ticket, MAX_SHARED_COMMAND, SHARED_BUCKET,
    SHARED_POINTERS, SHARED_PREFIX, SHARED_STREAM,
};

use async_nats::jetstream::consumer::pull::{self, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::{self, object_store};
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use valori_engine::wal::replica_record;
use valori_engine::{Engine, Options, ReplicaApplied};

/// The JetStream stream that holds every database's records.
pub const STREAM: &str = "VALORI";
/// Subjects of the stream: `valori.wal.<database>`.
pub const SUBJECT_PREFIX: &str = "valori.wal.";
/// The object store bucket that holds each database's newest snapshot (object `<database>`).
pub const BUCKET: &str = "valori-snapshots";
/// Records a leader reads from its log per page.
const PAGE: usize = 1024;
/// Attempts at reading a snapshot from the bucket, half a second apart.
const SNAPSHOT_TRIES: u32 = 20;
/// The snapshot object's metadata key that holds the stream sequence of its record.
const AFTER_KEY: &str = "valori-stream-seq";
/// The snapshot object's metadata key that holds its sequence number.
const SEQ_KEY: &str = "valori-seq";
/// Messages a follower asks for at once (each up to the server's max_payload).
const PULL_BATCH: i64 = 16;
/// How long a leader waits at most for its next durable record before it looks again (at
/// the bucket's snapshot; in `none` mode, at its log); it wakes as soon as one is durable.
const IDLE: Duration = Duration::from_millis(100);

/// What went wrong.
#[derive(Debug)]
pub enum FleetError {
    /// The NATS server (connection, stream, object store) failed or refused.
    Nats(String),
    /// The database refused (a follower's `Corrupt` says which record and why).
    Engine(valori_engine::Error),
    /// Another leader has published to this database's subject: this one may not.
    Fenced(String),
    /// The stream's records and this database's log differ.
    Diverged(String),
    /// The name cannot be a database on the stream.
    InvalidName(String),
    /// Every member of a shared database refused the command (or the servers would not
    /// store it); nothing changed.
    Refused(String),
    /// The servers hold no such database (no snapshot of it in the bucket).
    NotFound(String),
}

impl std::fmt::Display for FleetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FleetError::Nats(m) => write!(f, "NATS: {m}"),
            FleetError::Engine(e) => write!(f, "{e}"),
            FleetError::Fenced(m) => write!(f, "fenced off: {m}"),
            FleetError::Diverged(m) => write!(f, "diverged: {m}"),
            FleetError::InvalidName(m) => write!(f, "invalid database name: {m}"),
            FleetError::Refused(m) => write!(f, "refused: {m}"),
            FleetError::NotFound(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for FleetError {}

impl From<valori_engine::Error> for FleetError {
    fn from(e: valori_engine::Error) -> Self {
        FleetError::Engine(e)
    }
}

fn nats(what: &str) -> impl FnOnce(&dyn std::fmt::Display) -> FleetError + '_ {
    move |e| FleetError::Nats(format!("{what}: {e}"))
}

/// Result of fleet operations.
pub type Result<T> = std::result::Result<T, FleetError>;

/// The subject of a database's records.
pub fn subject(database: &str) -> Result<String> {
    let ok = !database.is_empty()
        && database.len() <= 64
        && database
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(FleetError::InvalidName(format!(
            "{database:?}: 1 to 64 of A-Z, a-z, 0-9, '_' and '-'"
        )));
    }
    Ok(format!("{SUBJECT_PREFIX}{database}"))
}

/// Header of every message: the sequence number of the record it carries (part of).
const SEQ_HEADER: &str = "Valori-Seq";
/// Header of every message: `i/n`, this message is part `i` (from 1) of the record's `n`.
const PART_HEADER: &str = "Valori-Part";
/// Header of every message: the record's chain value (hex), as in its last 32 bytes.
const CHAIN_HEADER: &str = "Valori-Chain";
/// Bytes kept free in each message for the headers.
const HEADER_ROOM: usize = 1024;

/// A message's place in its record: `(sequence number, part, parts, chain value)`.
fn part_of(headers: Option<&async_nats::HeaderMap>) -> Option<(u64, u32, u32, [u8; 32])> {
    let h = headers?;
    let seq = h.get(SEQ_HEADER)?.as_str().parse().ok()?;
    let (i, n) = h.get(PART_HEADER)?.as_str().split_once('/')?;
    let (i, n): (u32, u32) = (i.parse().ok()?, n.parse().ok()?);
    if i == 0 || i > n {
        return None;
    }
    let hex = h.get(CHAIN_HEADER)?.as_str();
    let mut chain = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (k, b) in chain.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * k..2 * k + 2)?, 16).ok()?;
    }
    Some((seq, i, n, chain))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The payload a message may carry: the server's `max_payload` less room for headers.
fn message_room(js: &jetstream::Context) -> usize {
    js.client()
        .max_payload()
        .saturating_sub(HEADER_ROOM)
        .max(HEADER_ROOM)
}

fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len() / 2)
        .map(|k| u8::from_str_radix(hex.get(2 * k..2 * k + 2)?, 16).ok())
        .collect()
}

fn hex8(chain: &[u8; 32]) -> String {
    chain.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A connection to a JetStream server (or cluster) holding the fleet's stream and bucket.
#[derive(Clone)]
pub struct Fleet {
    js: jetstream::Context,
    url: String,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("url", &self.url).finish()
    }
}

impl Fleet {
    /// Connects to `url` (`nats://host:port`, several separated by commas) and creates the
    /// stream and the bucket if they do not exist, with `replicas` copies each (1, or 3 on a
    /// cluster: a write the stream acknowledges is then on a quorum of servers).
    pub async fn connect(url: &str, replicas: usize) -> Result<Fleet> {
        let addrs = url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| FleetError::Nats(format!("{url}: {e}")))?;
        let client = async_nats::connect(addrs)
            .await
            .map_err(|e| nats("connecting")(&e))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec![format!("{SUBJECT_PREFIX}>")],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| nats("creating the stream")(&e))?;
        if js.get_object_store(BUCKET).await.is_err() {
            js.create_object_store(object_store::Config {
                bucket: BUCKET.into(),
                num_replicas: replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| nats("creating the snapshot bucket")(&e))?;
        }
        Ok(Fleet {
            js,
            url: url.into(),
        })
    }

    /// The server URL this fleet connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The payload a message may carry: the server's `max_payload` less room for headers.
    fn message_room(&self) -> usize {
        message_room(&self.js)
    }

    async fn stream(&self) -> Result<stream::Stream> {
        self.js
            .get_stream(STREAM)
            .await
            .map_err(|e| nats("opening the stream")(&e))
    }

    /// The databases that have records on the stream.
    pub async fn databases(&self) -> Result<Vec<String>> {
        let stream = self.stream().await?;
        let mut subjects = stream
            .info_with_subjects(format!("{SUBJECT_PREFIX}>"))
            .await
            .map_err(|e| nats("listing the stream's subjects")(&e))?;
        let mut names = Vec::new();
        while let Some(s) = subjects.next().await {
            let (subject, _) = s.map_err(|e| nats("listing the stream's subjects")(&e))?;
            if let Some(name) = subject.strip_prefix(SUBJECT_PREFIX) {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The stream's last message of `database`: its stream sequence and the record it
    /// carries (part of), `None` if it has none.
    pub async fn last_record(&self, database: &str) -> Result<Option<LastRecord>> {
        let subject = subject(database)?;
        let stream = self.stream().await?;
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => {
                let (seq, part, parts, chain) = part_of(Some(&m.headers)).ok_or_else(|| {
                    FleetError::Diverged(format!(
                        "the stream's last message on {subject} is not part of a replica record"
                    ))
                })?;
                Ok(Some(LastRecord {
                    stream_seq: m.sequence,
                    seq,
                    chain,
                    complete: part == parts,
                }))
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(nats("reading the stream's last record")(&e)),
        }
    }

    /// Puts a snapshot file of `database` (sequence number `seq`, at `path`) into the bucket
    /// as its followers' starting point, replacing the one there. `after` is the stream
    /// sequence of the snapshot's record (its last message), if it is on the stream: a new
    /// follower consumes from the message after it instead of from the subject's first.
    pub async fn publish_snapshot(
        &self,
        database: &str,
        seq: u64,
        path: &Path,
        after: Option<u64>,
    ) -> Result<()> {
        subject(database)?;
        let bucket = self
            .js
            .get_object_store(BUCKET)
            .await
            .map_err(|e| nats("opening the snapshot bucket")(&e))?;
        let mut file = tokio::fs::File::open(path).await.map_err(|e| {
            FleetError::Engine(valori_engine::Error::Io {
                op: "opening",
                path: path.to_path_buf(),
                source: e,
            })
        })?;
        let meta = object_store::ObjectMetadata {
            name: database.to_string(),
            description: Some(format!("valori snapshot at sequence number {seq}")),
            // Chunks as large as a message may be: a snapshot of 150 MB is 150 messages, not
            // 1,200 of the default 128 KiB, and is read back about twice as fast.
            chunk_size: Some(self.message_room()),
            metadata: std::iter::once((SEQ_KEY.to_string(), seq.to_string()))
                .chain(after.map(|a| (AFTER_KEY.to_string(), a.to_string())))
                .collect(),
            ..Default::default()
        };
        bucket
            .put(meta, &mut file)
            .await
            .map_err(|e| nats("putting the snapshot")(&e))?;
        Ok(())
    }

    /// The bytes of `database`'s snapshot in the bucket. Retried for a few seconds while the
    /// servers answer with errors (e.g. the bucket's stream electing a new leader after a
    /// server died).
    pub async fn snapshot(&self, database: &str) -> Result<Vec<u8>> {
        match self.fetch_snapshot(database, None, &mut |_| {}).await? {
            Fetched::Bytes(bytes) => Ok(bytes),
            Fetched::Database(_) => Err(FleetError::Nats("a snapshot read as a database".into())),
        }
    }

    /// Reads `database`'s snapshot from the bucket: into memory, or (`into` a directory) into
    /// a new follower database there, each piece written as it arrives. Calls `found` with the
    /// stream sequence of the snapshot's record (if the leader named it) as soon as the object
    /// is found. Retried as [`Fleet::snapshot`] says; a snapshot that does not verify is not.
    async fn fetch_snapshot(
        &self,
        database: &str,
        into: Option<&Path>,
        found: &mut (dyn FnMut(Option<u64>) + Send),
    ) -> Result<Fetched> {
        subject(database)?;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_fetch_snapshot(database, into, &mut *found).await {
                Ok(fetched) => return Ok(fetched),
                Err(e @ FleetError::Engine(_)) => return Err(e),
                // During an election the bucket may answer "not found" for a moment.
                Err(e) if tries < SNAPSHOT_TRIES => {
                    tracing::warn!(database = %database, "reading the snapshot: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_fetch_snapshot(
        &self,
        database: &str,
        into: Option<&Path>,
        found: &mut (dyn FnMut(Option<u64>) + Send),
    ) -> Result<Fetched> {
        let bucket = self
            .js
            .get_object_store(BUCKET)
            .await
            .map_err(|e| nats("opening the snapshot bucket")(&e))?;
        let info = match bucket.info(database).await {
            Ok(info) if !info.deleted => info,
            Ok(_) => return Err(no_snapshot(database)),
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => {
                return Err(no_snapshot(database))
            }
            Err(e) => return Err(nats("getting the snapshot")(&e)),
        };
        found(info.metadata.get(AFTER_KEY).and_then(|a| a.parse().ok()));
        let mut chunks = Chunks::open(&self.js, BUCKET, &info).await?;
        let Some(dir) = into else {
            let mut bytes = Vec::with_capacity(info.size.min(1 << 30));
            while let Some(chunk) = chunks.next().await? {
                bytes.extend_from_slice(&chunk);
            }
            return Ok(Fetched::Bytes(bytes));
        };
        let engine = receive_object(chunks, info.size, dir, follower_options()).await?;
        Ok(Fetched::Database(Arc::new(engine)))
    }

    /// Makes `engine` (the database `database`) a leader: publishes its snapshot, then every
    /// record the stream does not hold yet, and from then on every record it commits.
    ///
    /// Refused ([`FleetError::Fenced`]) if the stream holds records past this database's
    /// log (another leader wrote them), and ([`FleetError::Diverged`]) if the stream's last
    /// record differs from this log's record of that number.
    pub async fn lead(&self, database: &str, engine: Arc<Engine>) -> Result<Leader> {
        let subject = subject(database)?;
        let last = self.last_record(database).await?;
        let (from, subject_seq) = match last {
            None => {
                // A new subject: followers start from a snapshot of everything logged so far
                // (older log segments may chain by an older rule, so none of them is sent).
                let e = Arc::clone(&engine);
                let (seq, path) = blocking(move || {
                    e.checkpoint()?;
                    e.newest_snapshot()
                })
                .await?
                .ok_or_else(|| FleetError::Nats("no snapshot after a checkpoint".into()))?;
                self.publish_snapshot(database, seq, &path, None).await?;
                (seq + 1, 0)
            }
            Some(LastRecord {
                stream_seq,
                seq,
                chain,
                complete,
            }) => {
                let (local_seq, local_chain) = engine.position()?;
                if seq > local_seq {
                    return Err(FleetError::Fenced(format!(
                        "the stream holds {database}'s records through sequence number {seq}, \
                         this database only through {local_seq}: another leader wrote them"
                    )));
                }
                let ours = if seq == local_seq {
                    local_chain
                } else {
                    let e = Arc::clone(&engine);
                    blocking(move || e.history(seq, 1))
                        .await?
                        .first()
                        .map(|e| e.chain)
                        .ok_or_else(|| {
                            FleetError::Diverged(format!(
                                "this database's log no longer holds record {seq}, the stream's last"
                            ))
                        })?
                };
                if ours != chain {
                    return Err(FleetError::Diverged(format!(
                        "record {seq} of {database}: the stream's chain value {} differs from \
                         this database's {}",
                        hex8(&chain),
                        hex8(&ours)
                    )));
                }
                // A record whose parts the stream holds only in part (its leader stopped while
                // publishing it) is published again, whole.
                (if complete { seq + 1 } else { seq }, stream_seq)
            }
        };
        let (tx, rx) = watch::channel(LeaderStatus {
            published: from - 1,
            error: None,
            retrying: None,
        });
        let task = tokio::spawn(publish_loop(
            self.clone(),
            subject,
            database.to_string(),
            engine,
            from,
            subject_seq,
            tx,
        ));
        Ok(Leader {
            status: rx,
            task,
            database: database.to_string(),
        })
    }

    /// Opens (or, if `dir` holds no database, creates from the bucket's snapshot) a follower
    /// of `database` and applies the stream's records as they come.
    pub async fn follow(&self, database: &str, dir: &Path) -> Result<Follower> {
        let subject = subject(database)?;
        let dir: PathBuf = dir.to_path_buf();
        let exists = dir.join(valori_engine::LOCK_NAME).exists()
            || std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
        if exists {
            let d = dir.clone();
            let opened = tokio::task::spawn_blocking(move || {
                Engine::open(
                    &d,
                    Options {
                        create: false,
                        ..follower_options()
                    },
                )
            })
            .await
            .map_err(|e| FleetError::Nats(format!("a blocking task failed: {e}")))?;
            match opened {
                Ok(engine) => return self.follow_engine(database, Arc::new(engine)).await,
                // Only what an interrupted download left (a lock, a temporary file): the
                // snapshot is fetched again.
                Err(valori_engine::Error::NoDatabase { .. }) => {}
                Err(e) => return Err(FleetError::Engine(e)),
            }
        }
        // While the snapshot is read and made a database, the stream's records after it
        // are already fetched (from the message after the snapshot's record, when the
        // leader named it), to be applied as soon as the database is open.
        let stream = self.stream().await?;
        let mut prefetch: Option<Prefetch> = None;
        let fetched = self
            .fetch_snapshot(database, Some(&dir), &mut |after| {
                let start = after.map_or(1, |a| a + 1);
                if prefetch.as_ref().is_none_or(|p| p.start > start) {
                    prefetch = Some(Prefetch::start(stream.clone(), subject.clone(), start));
                }
            })
            .await?;
        let Fetched::Database(engine) = fetched else {
            return Err(FleetError::Nats("a snapshot read into memory".into()));
        };
        let prefetched = match prefetch {
            Some(p) => p.finish().await,
            None => Prefetched::default(),
        };
        self.follow_from(database, engine, stream, prefetched)
    }

    /// Makes an open database (opened with [`Options::follower`]) a follower of `database`:
    /// applies the stream's records after its position as they come.
    pub async fn follow_engine(&self, database: &str, engine: Arc<Engine>) -> Result<Follower> {
        subject(database)?;
        let stream = self.stream().await?;
        // A copy at or past the bucket's snapshot needs nothing before that snapshot's record:
        // it consumes from the message after it (else from the subject's first message).
        let (applied, _) = engine.position()?;
        let start = match self.bucket_position(database).await {
            Some((seq, after)) if seq <= applied => after + 1,
            _ => 1,
        };
        let prefetched = Prefetched {
            start,
            ..Prefetched::default()
        };
        self.follow_from(database, engine, stream, prefetched)
    }

    /// The sequence number of the bucket's snapshot of `database` and the stream sequence of
    /// its record, if the bucket holds one whose leader named it.
    async fn bucket_position(&self, database: &str) -> Option<(u64, u64)> {
        let bucket = self.js.get_object_store(BUCKET).await.ok()?;
        let info = bucket.info(database).await.ok()?;
        let number = |key: &str| info.metadata.get(key).and_then(|v| v.parse().ok());
        Some((number(SEQ_KEY)?, number(AFTER_KEY)?))
    }

    fn follow_from(
        &self,
        database: &str,
        engine: Arc<Engine>,
        stream: stream::Stream,
        prefetched: Prefetched,
    ) -> Result<Follower> {
        let subject = subject(database)?;
        let (applied, _) = engine.position()?;
        let (tx, rx) = watch::channel(FollowerStatus {
            applied,
            pending: 0,
            error: None,
            retrying: None,
        });
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(apply_loop(
            stream,
            subject,
            Arc::clone(&engine),
            tx,
            stopping,
            prefetched,
        ));
        Ok(Follower {
            engine,
            status: rx,
            task,
            stop,
            database: database.to_string(),
        })
    }
}

/// Makes a new database in `dir` (opened with `options`) from a snapshot object's `chunks`
/// (`size` bytes), each written as it arrives and the whole verified at the end. On any
/// failure nothing is left in `dir`; a snapshot that does not verify is an `Engine` error.
async fn receive_object(
    mut chunks: Chunks,
    size: usize,
    dir: &Path,
    options: Options,
) -> Result<Engine> {
    // The chunks go to a blocking writer as they arrive (`None`: all of them came), never
    // waiting for it: while it syncs what it wrote, the next chunks queue.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<bytes::Bytes>>();
    let d = dir.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || {
        let mut receiver = Engine::receive_snapshot(&d, size)?;
        while let Some(chunk) = rx.blocking_recv() {
            match chunk {
                Some(chunk) => receiver.write(&chunk)?,
                None => return receiver.finish(options).map(Some),
            }
        }
        // The reading failed: the receiver, dropped, leaves nothing in the directory.
        Ok(None)
    });
    let read = async {
        while let Some(chunk) = chunks.next().await? {
            if tx.send(Some(chunk)).is_err() {
                return Ok(()); // the writer failed: its error is below
            }
        }
        let _ = tx.send(None);
        Ok::<(), FleetError>(())
    }
    .await;
    drop(tx);
    // Awaited before any error returns, so that a retry finds the directory free.
    let written = writer
        .await
        .map_err(|e| FleetError::Nats(format!("a blocking task failed: {e}")))?
        .map_err(FleetError::Engine)?;
    read?;
    written.ok_or_else(|| FleetError::Nats("the snapshot's writer stopped early".into()))
}

fn no_snapshot(database: &str) -> FleetError {
    FleetError::NotFound(format!(
        "no snapshot of database {database:?} in bucket {BUCKET} on these servers: \
         has a leader of it published here (valori-node --replicate)?"
    ))
}

/// The chunks of an object in the bucket, read as the messages that hold them. The object
/// store's own reader also computes the object's SHA-256 on the way; a snapshot verifies
/// itself (checksums and state hash, `docs/FORMAT.md` §9), so this one only checks that the
/// chunks add up to the object's size.
struct Chunks {
    consumer: pull::Ordered,
    left: usize,
    bytes_left: usize,
}

impl Chunks {
    async fn open(
        js: &jetstream::Context,
        bucket: &str,
        info: &object_store::ObjectInfo,
    ) -> Result<Chunks> {
        let store = js
            .get_stream(format!("OBJ_{bucket}"))
            .await
            .map_err(|e| nats("opening the snapshot bucket's stream")(&e))?;
        let subject = format!("$O.{bucket}.C.{}", info.nuid);
        let consumer = consume(&store, &subject, 1)
            .await
            .map_err(FleetError::Nats)?;
        Ok(Chunks {
            consumer,
            left: info.chunks,
            bytes_left: info.size,
        })
    }

    /// The next chunk; `None` after the last.
    async fn next(&mut self) -> Result<Option<bytes::Bytes>> {
        if self.left == 0 {
            return if self.bytes_left == 0 {
                Ok(None)
            } else {
                Err(FleetError::Nats(format!(
                    "the snapshot's chunks end {} bytes short of its size",
                    self.bytes_left
                )))
            };
        }
        let m = match tokio::time::timeout(STALL, self.consumer.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(nats("reading the snapshot")(&e)),
            Ok(None) => {
                return Err(FleetError::Nats(
                    "reading the snapshot: the consumer ended".into(),
                ))
            }
            Err(_) => {
                return Err(FleetError::Nats(format!(
                    "reading the snapshot: no chunk for {} s",
                    STALL.as_secs()
                )))
            }
        };
        self.left -= 1;
        self.bytes_left = self
            .bytes_left
            .checked_sub(m.payload.len())
            .ok_or_else(|| FleetError::Nats("the snapshot's chunks exceed its size".into()))?;
        Ok(Some(m.payload.clone()))
    }
}

/// A snapshot read from the bucket ([`Fleet::fetch_snapshot`]).
enum Fetched {
    Bytes(Vec<u8>),
    Database(Arc<Engine>),
}

/// How a follower's database is opened: a follower, and without an fsync per record: the
/// stream holds every record it applies, so after a crash it recovers an earlier consistent
/// state (docs/FORMAT.md §10) and takes the rest from the stream again. It is flushed whenever
/// it has caught up.
fn follower_options() -> Options {
    Options::default()
        .follower()
        .durability(valori_engine::Durability::None)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> valori_engine::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FleetError::Nats(format!("a blocking task failed: {e}")))?
        .map_err(FleetError::Engine)
}

/// The stream's last message of a database ([`Fleet::last_record`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastRecord {
    /// Its stream sequence.
    pub stream_seq: u64,
    /// The sequence number of the record it carries (part of).
    pub seq: u64,
    /// That record's chain value.
    pub chain: [u8; 32],
    /// Whether it is the record's last part (the record is whole on the stream).
    pub complete: bool,
}

/// Where a leader stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderStatus {
    /// The last record the stream acknowledged.
    pub published: u64,
    /// Why the leader stopped publishing for good (fenced off by another leader, or its log
    /// no longer readable), if it did.
    pub error: Option<String>,
    /// The last failure while the stream is unreachable (publishing is retried, from the
    /// log, until it succeeds); `None` once a publish succeeds.
    pub retrying: Option<String>,
}

/// A database publishing its records ([`Fleet::lead`]). Dropping it stops the publishing.
#[derive(Debug)]
pub struct Leader {
    status: watch::Receiver<LeaderStatus>,
    task: tokio::task::JoinHandle<()>,
    database: String,
}

impl Leader {
    /// Where it stands.
    pub fn status(&self) -> LeaderStatus {
        self.status.borrow().clone()
    }

    /// Waits until the stream has acknowledged record `seq` (the write acknowledgment of the
    /// "stream" durability), or reports why it never will.
    pub async fn wait_published(&self, seq: u64) -> Result<()> {
        let mut rx = self.status.clone();
        let s = rx
            .wait_for(|s| s.published >= seq || s.error.is_some())
            .await
            .map_err(|_| FleetError::Nats(format!("{}: the publisher stopped", self.database)))?;
        match &s.error {
            Some(e) if s.published < seq => Err(FleetError::Nats(e.clone())),
            _ => Ok(()),
        }
    }
}

impl Leader {
    /// Stops publishing and waits until the publishing task has let go of the database.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn publish_loop(
    fleet: Fleet,
    subject: String,
    database: String,
    engine: Arc<Engine>,
    from: u64,
    mut subject_seq: u64,
    tx: watch::Sender<LeaderStatus>,
) {
    let fail = |e: String| {
        tracing::error!(database = %database, "replication stopped: {e}");
        tx.send_modify(|s| s.error = Some(e));
    };
    // Retention: `bucket` is the snapshot in the bucket and the stream sequence of its record;
    // `acked` the stream sequences of the records published since. A newer snapshot goes to
    // the bucket, and the stream drops the records before the previous one (a follower that
    // started from that one, or lags less than a snapshot interval, still finds its next
    // record).
    let mut acked: std::collections::VecDeque<(u64, u64)> = std::collections::VecDeque::new();
    let mut bucket: Option<(u64, u64)> = None;
    let mut next_look = tokio::time::Instant::now() + RETENTION_LOOK;
    // Woken when a record becomes durable (a permit is kept if none is waiting).
    let durable = Arc::new(tokio::sync::Notify::new());
    let _listening = {
        let d = Arc::clone(&durable);
        engine.on_durable(move || d.notify_one())
    };
    let e = Arc::clone(&engine);
    let mut pin = match tokio::task::spawn_blocking(move || e.pin_log(from)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return fail(format!("the log from record {from}: {e}")),
        Err(e) => return fail(format!("the log from record {from}: {e}")),
    };
    loop {
        // Only what is durable here leaves the machine: a record whose fsync is under way (or
        // fails) is never on the stream.
        let through = match engine.durable_sequence() {
            Ok(s) => s,
            Err(e) => return fail(e.to_string()),
        };
        if tokio::time::Instant::now() >= next_look {
            next_look = tokio::time::Instant::now() + RETENTION_LOOK;
            if let Err(e) = retire(
                &fleet,
                &database,
                &subject,
                &engine,
                subject_seq,
                &mut bucket,
                &mut acked,
            )
            .await
            {
                tracing::warn!(database = %database, "retention: {e}");
            }
        }
        if through < pin.from() {
            tokio::select! {
                () = durable.notified() => {}
                () = tokio::time::sleep(IDLE) => {}
            }
            continue;
        }
        let e2 = Arc::clone(&engine);
        let page = tokio::task::spawn_blocking(move || {
            let entries = e2.read_pinned(&mut pin, through, PAGE);
            (pin, entries)
        })
        .await;
        let entries = match page {
            Ok((p, Ok(entries))) => {
                pin = p;
                entries
            }
            Ok((_, Err(e))) => return fail(e.to_string()),
            Err(e) => return fail(format!("reading the log: {e}")),
        };
        for e in entries {
            let record = bytes::Bytes::from(replica_record(e.seq, &e.command, &e.chain));
            // A record larger than a message (the server's max_payload, 1 MiB by default) goes
            // in parts; the follower joins them and verifies the whole record.
            let room = fleet.message_room();
            let parts = record.len().div_ceil(room).max(1);
            let chain = hex(&e.chain);
            for part in 0..parts {
                let piece = record.slice(part * room..((part + 1) * room).min(record.len()));
                let msg = Part {
                    // Named by the message it follows, not by its record: of two leaders
                    // extending the same message, the server stores one (see `publish_part`).
                    id: format!("{database}.after.{subject_seq}"),
                    seq: e.seq,
                    label: format!("{}/{parts}", part + 1),
                    chain: &chain,
                };
                match publish_part(&fleet, &subject, &msg, piece, subject_seq, &tx).await {
                    Ok(stream_seq) => subject_seq = stream_seq,
                    Err(why) => return fail(why),
                }
            }
            acked.push_back((e.seq, subject_seq));
            tx.send_modify(|s| s.published = e.seq);
        }
    }
}

/// One message of a record.
struct Part<'a> {
    id: String,
    seq: u64,
    label: String,
    chain: &'a str,
}

/// Publishes one message of a record; its stream sequence. A failure of the stream or the
/// connection is retried until it succeeds (the message id makes a retry stored once; the
/// log keeps the record meanwhile), reported in [`LeaderStatus::retrying`]. Being fenced off
/// is final.
///
/// Fencing has two checks, because nats-server before 2.9.21 checks the expected last
/// subject sequence of a replicated stream when a publish is proposed, against what it has
/// stored, not against publishes still being agreed (nats-server issue 4320: two leaders
/// extending the same message were both stored in most tries on a 3-server cluster): the
/// message id names the message this one follows, and de-duplication, applied in the
/// cluster's agreed order, stores one message per id (the other is acknowledged as a
/// duplicate of it). A message refused either way is this leader's own (a retry after a lost
/// acknowledgment) only if the stored one carries this part's record, part and chain.
async fn publish_part(
    fleet: &Fleet,
    subject: &str,
    part: &Part<'_>,
    piece: bytes::Bytes,
    subject_seq: u64,
    tx: &watch::Sender<LeaderStatus>,
) -> std::result::Result<u64, String> {
    let mut tries: u32 = 0;
    loop {
        tries = tries.saturating_add(1);
        let msg = PublishMessage::build()
            .payload(piece.clone())
            .message_id(&part.id)
            .expected_last_subject_sequence(subject_seq)
            .header(SEQ_HEADER, part.seq.to_string().as_str())
            .header(PART_HEADER, part.label.as_str())
            .header(CHAIN_HEADER, part.chain);
        let result = match fleet.js.send_publish(subject.to_string(), msg).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        let stored = match result {
            Ok(ack) if !ack.duplicate => {
                if tries > 1 {
                    tx.send_modify(|s| s.retrying = None);
                }
                return Ok(ack.sequence);
            }
            // Another message follows the same one: this part (a retry) or another leader's.
            Ok(ack) => stored_part(fleet, StoredAt::Sequence(ack.sequence), part).await,
            Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => {
                stored_part(fleet, StoredAt::LastOf(subject), part).await
            }
            Err(err) => Err(format!(
                "publishing record {} (try {tries}): {err}",
                part.seq
            )),
        };
        match stored {
            Ok(Some(seq)) => {
                if tries > 1 {
                    tx.send_modify(|s| s.retrying = None);
                }
                return Ok(seq);
            }
            Ok(None) => {
                return Err(format!(
                    "fenced off at record {}: another leader has published to {subject}",
                    part.seq
                ))
            }
            Err(why) => {
                tracing::warn!(subject = %subject, "{why}; retrying");
                tx.send_modify(|s| s.retrying = Some(why));
                tokio::time::sleep(Duration::from_millis(50 * u64::from(tries.min(20)))).await;
            }
        }
    }
}

/// Where [`stored_part`] looks.
enum StoredAt<'a> {
    /// The message a duplicate acknowledgment names.
    Sequence(u64),
    /// The last message of the subject.
    LastOf(&'a str),
}

/// `Some(its stream sequence)` if the message at `at` is `part` (stored by an earlier try),
/// `None` if it is another leader's; `Err` if that cannot be told yet.
async fn stored_part(
    fleet: &Fleet,
    at: StoredAt<'_>,
    part: &Part<'_>,
) -> std::result::Result<Option<u64>, String> {
    let stream = fleet
        .stream()
        .await
        .map_err(|e| format!("checking record {}: {e}", part.seq))?;
    let message = match at {
        StoredAt::Sequence(seq) => stream.get_raw_message(seq).await.map_err(|e| e.to_string()),
        StoredAt::LastOf(subject) => match stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok(m),
            // Refused as not following the subject's last message, and the subject is empty
            // (purged by hand): this leader's place is gone.
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => Err(e.to_string()),
        },
    }
    .map_err(|e| {
        format!(
            "reading the stored message to check record {}: {e}",
            part.seq
        )
    })?;
    let h = &message.headers;
    let is = |name: &str, value: &str| h.get(name).is_some_and(|v| v.as_str() == value);
    let ours = is(SEQ_HEADER, &part.seq.to_string())
        && is(PART_HEADER, &part.label)
        && is(CHAIN_HEADER, part.chain);
    Ok(ours.then_some(message.sequence))
}

/// How often a leader looks for a newer snapshot to put in the bucket.
const RETENTION_LOOK: Duration = Duration::from_secs(1);

/// If the database has a snapshot newer than the bucket's, every record it covers is on the
/// stream, and this leader still holds the subject (its last message is this leader's): puts
/// the snapshot in the bucket, then lets the stream drop the records before the previous
/// bucket snapshot's record.
async fn retire(
    fleet: &Fleet,
    database: &str,
    subject: &str,
    engine: &Arc<Engine>,
    subject_seq: u64,
    bucket: &mut Option<(u64, u64)>,
    acked: &mut std::collections::VecDeque<(u64, u64)>,
) -> Result<()> {
    let e = Arc::clone(engine);
    let Some((seq, path)) = blocking(move || e.newest_snapshot()).await? else {
        return Ok(());
    };
    let Some(&(_, stream_seq)) = acked.iter().find(|(s, _)| *s == seq) else {
        // Not published by this leader yet (or before it started): nothing to do now.
        return Ok(());
    };
    if bucket.is_some_and(|(b, _)| b >= seq) {
        return Ok(());
    }
    match fleet.last_record(database).await? {
        Some(last) if last.stream_seq == subject_seq => {}
        _ => return Ok(()), // another leader wrote: the publish loop finds out and stops
    }
    fleet
        .publish_snapshot(database, seq, &path, Some(stream_seq))
        .await?;
    if let Some((previous, previous_stream_seq)) = bucket.replace((seq, stream_seq)) {
        let stream = fleet.stream().await?;
        stream
            .purge()
            .filter(subject)
            .sequence(previous_stream_seq)
            .await
            .map_err(|e| nats("dropping the records the snapshots cover")(&e))?;
        tracing::info!(database = %database, snapshot = seq, dropped_before = previous, "snapshot in the bucket; the stream dropped the records before the previous one");
    }
    acked.retain(|(s, _)| *s >= seq);
    Ok(())
}

/// Where a follower stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerStatus {
    /// Its last applied record (its sequence number).
    pub applied: u64,
    /// Records on the stream not yet delivered to it (its lag, in records).
    pub pending: u64,
    /// Why it stopped applying, if it did (a record that did not verify is `Corrupt`).
    pub error: Option<String>,
    /// The last failure of the servers while it retries (`None` once messages come again).
    pub retrying: Option<String>,
}

/// A read-only copy of a leader's database ([`Fleet::follow`]). Dropping it stops applying.
#[derive(Debug)]
pub struct Follower {
    engine: Arc<Engine>,
    status: watch::Receiver<FollowerStatus>,
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    database: String,
}

impl Follower {
    /// The database (read it; writes to it would diverge from the leader).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The database's name on the stream.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Where it stands.
    pub fn status(&self) -> FollowerStatus {
        self.status.borrow().clone()
    }

    /// Waits until record `seq` is applied, or reports why it never will.
    pub async fn wait_applied(&self, seq: u64) -> Result<()> {
        let mut rx = self.status.clone();
        let s = rx
            .wait_for(|s| s.applied >= seq || s.error.is_some())
            .await
            .map_err(|_| FleetError::Nats(format!("{}: the follower stopped", self.database)))?;
        match &s.error {
            Some(e) if s.applied < seq => Err(FleetError::Diverged(e.clone())),
            _ => Ok(()),
        }
    }
}

impl Follower {
    /// Stops applying (an apply under way finishes first) and returns the database, which
    /// the follower no longer holds.
    pub async fn stop(mut self) -> Arc<Engine> {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
            let _ = (&mut self.task).await;
        }
        Arc::clone(&self.engine)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long a follower waits for a message before it asks whether the stream has more for it
/// (and, if it has, makes its consumer again).
const STALL: Duration = Duration::from_secs(5);

/// How long a follower's pull requests last at most; the servers' heartbeats come at half
/// this, so a consumer whose server died is noticed (and made again) within seconds.
const PULL_EXPIRES: Duration = Duration::from_secs(4);

/// How many bytes of records a new follower fetches ahead while its database is made from
/// the snapshot (beyond this it waits; the stream keeps the rest).
const PREFETCH_BYTES: usize = 256 << 20;

/// The stream's messages fetched for a follower before its database was open.
#[derive(Default)]
struct Prefetched {
    /// The stream sequence to consume from if the consumer must be made again.
    start: u64,
    /// The messages fetched, in order.
    messages: std::collections::VecDeque<jetstream::Message>,
    /// The consumer they came from, to continue with (`None` if it failed: made again after
    /// the last complete record of `messages`).
    consumer: Option<pull::Ordered>,
}

/// A task fetching a subject's messages from a stream sequence on, until told to stop.
struct Prefetch {
    start: u64,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Prefetched>,
}

impl Prefetch {
    fn start(stream: stream::Stream, subject: String, start: u64) -> Prefetch {
        let (stop, mut stopping) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut got = Prefetched {
                start,
                ..Prefetched::default()
            };
            let Ok(mut consumer) = consume(&stream, &subject, start).await else {
                return got;
            };
            let mut bytes = 0;
            while bytes < PREFETCH_BYTES {
                tokio::select! {
                    m = consumer.next() => match m {
                        Some(Ok(m)) => {
                            bytes += m.payload.len();
                            got.messages.push_back(m);
                        }
                        // Made again by the apply loop, after the last complete record.
                        _ => return got,
                    },
                    _ = &mut stopping => break,
                }
            }
            got.consumer = Some(consumer);
            got
        });
        Prefetch { start, stop, task }
    }

    /// Stops fetching; what was fetched.
    async fn finish(self) -> Prefetched {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// An ordered consumer of `subject` from stream sequence `start` on (1: from its first).
async fn consume(
    stream: &stream::Stream,
    subject: &str,
    start: u64,
) -> std::result::Result<pull::Ordered, String> {
    let deliver_policy = if start <= 1 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: start,
        }
    };
    stream
        .create_consumer(OrderedConfig {
            filter_subject: subject.to_string(),
            deliver_policy,
            // Messages are up to a megabyte: a pull of the default 500 would exceed what the
            // server buffers for a client (64 MB) and get the follower cut off as a slow
            // consumer, over and over, on a backlog.
            max_batch: PULL_BATCH,
            max_expires: PULL_EXPIRES,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("creating the consumer: {e}"))?
        .messages()
        .await
        .map_err(|e| format!("consuming: {e}"))
}

async fn apply_loop(
    stream: stream::Stream,
    subject: String,
    engine: Arc<Engine>,
    tx: watch::Sender<FollowerStatus>,
    mut stopping: watch::Receiver<bool>,
    prefetched: Prefetched,
) {
    let fail = |e: String| {
        tracing::error!(subject = %subject, "following stopped: {e}");
        tx.send_modify(|s| s.error = Some(e));
    };
    // A failure of the servers (a leader election, a lost connection) is retried: the
    // consumer is made again from the first message of the record under way (`resume`), and
    // what was applied meanwhile comes as duplicates. Only a record that does not verify
    // stops the follower.
    let Prefetched {
        start: mut resume,
        messages: mut fetched,
        mut consumer,
    } = prefetched;
    let mut tries: u32 = 0;
    // The last stream message delivered (a consumer that goes quiet with more than this on
    // the stream is stuck).
    let mut seen = resume.saturating_sub(1);
    // The parts of the record being joined: its sequence number, parts received, bytes.
    let mut joining: Option<(u64, u32, Vec<u8>)> = None;
    loop {
        let m = if let Some(m) = fetched.pop_front() {
            m
        } else {
            let live = match consumer.as_mut() {
                Some(c) => c,
                None => {
                    if tries > 0 {
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(100 * u64::from(tries.min(20)))) => {}
                            _ = stopping.changed() => return,
                        }
                    }
                    tries = tries.saturating_add(1);
                    joining = None;
                    match consume(&stream, &subject, resume).await {
                        Ok(c) => consumer.insert(c),
                        Err(why) => {
                            retrying(&tx, &subject, why);
                            continue;
                        }
                    }
                }
            };
            let next = tokio::select! {
                m = tokio::time::timeout(STALL, live.next()) => m,
                _ = stopping.changed() => return,
            };
            let Ok(next) = next else {
                // Nothing for a while: fine if the stream has nothing more for this copy; if
                // it has, the consumer is stuck (its server died and making it again failed)
                // and is made again here.
                match stuck(&stream, &subject, seen, STALL).await {
                    Ok(None) => {}
                    Ok(Some(why)) | Err(why) => {
                        retrying(&tx, &subject, why);
                        consumer = None;
                    }
                }
                continue;
            };
            match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    retrying(&tx, &subject, format!("consuming: {e}"));
                    consumer = None;
                    continue;
                }
                None => {
                    retrying(&tx, &subject, "the consumer ended".into());
                    consumer = None;
                    continue;
                }
            }
        };
        tries = 1;
        if tx.borrow().retrying.is_some() {
            tx.send_modify(|s| s.retrying = None);
        }
        let (stream_seq, pending) = m
            .info()
            .map(|i| (i.stream_sequence, i.pending))
            .unwrap_or((resume, 0));
        seen = seen.max(stream_seq);
        let Some((seq, part, parts, _)) = part_of(m.headers.as_ref()) else {
            return fail(format!(
                "Corrupt: a message on {subject} is not part of a replica record (no valid {SEQ_HEADER}/{PART_HEADER}/{CHAIN_HEADER} headers)"
            ));
        };
        let applied = tx.borrow().applied;
        if seq <= applied {
            // A redelivery, or the tail of a record a snapshot already holds.
            resume = stream_seq + 1;
            tx.send_modify(|s| s.pending = pending);
            continue;
        }
        let record = if parts == 1 {
            joining = None;
            m.payload.to_vec()
        } else {
            let mut j = match (part, joining.take()) {
                (1, _) => (seq, 0, Vec::new()),
                (_, Some(j)) if j.0 == seq && j.1 + 1 == part => j,
                _ => {
                    return fail(format!(
                        "Corrupt: record {seq}: part {part} of {parts} arrived without the parts before it"
                    ))
                }
            };
            j.1 = part;
            j.2.extend_from_slice(&m.payload);
            if part < parts {
                joining = Some(j);
                continue;
            }
            j.2
        };
        resume = stream_seq + 1;
        let e2 = Arc::clone(&engine);
        match tokio::task::spawn_blocking(move || e2.apply_replica(&record)).await {
            Ok(Ok(ReplicaApplied::Applied { seq, .. })) => {
                if pending == 0 && fetched.is_empty() {
                    // Caught up: make what it applied durable (it was written, not synced).
                    let e3 = Arc::clone(&engine);
                    match tokio::task::spawn_blocking(move || e3.flush()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return fail(e.to_string()),
                        Err(e) => return fail(format!("flushing: {e}")),
                    }
                }
                tx.send_modify(|s| {
                    s.applied = seq;
                    s.pending = pending;
                });
            }
            Ok(Ok(ReplicaApplied::Duplicate(_))) => tx.send_modify(|s| s.pending = pending),
            Ok(Err(e)) => return fail(e.to_string()),
            Err(e) => return fail(format!("applying: {e}")),
        }
    }
}

/// Whether a consumer of `subject` that has been silent for `quiet` is stuck: `Some(why)` if
/// the stream holds a message after `seen` (the last it delivered), `Err` if the stream
/// cannot be asked.
async fn stuck(
    stream: &stream::Stream,
    subject: &str,
    seen: u64,
    quiet: Duration,
) -> std::result::Result<Option<String>, String> {
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(last) if last.sequence > seen => Ok(Some(format!(
            "no message for {} s while the stream holds message {} (the last delivered was \
             {seen}): consuming again",
            quiet.as_secs(),
            last.sequence
        ))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(format!("looking at the stream: {e}")),
    }
}

fn retrying(tx: &watch::Sender<FollowerStatus>, subject: &str, why: String) {
    tracing::warn!(subject = %subject, "following: {why}; retrying");
    tx.send_modify(|s| s.retrying = Some(why));
}

/// A follower for callers without an async runtime (the C and Python bindings): it owns a
/// one-thread runtime that applies the stream's records in the background while the caller
/// reads [`BackgroundFollower::engine`].
pub struct BackgroundFollower {
    runtime: Option<tokio::runtime::Runtime>,
    follower: Option<Follower>,
    engine: Arc<Engine>,
}

impl std::fmt::Debug for BackgroundFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundFollower")
            .field("database", &self.follower.as_ref().map(Follower::database))
            .finish()
    }
}

impl BackgroundFollower {
    /// Connects to `url` and follows `database` into directory `dir` ([`Fleet::follow`]:
    /// created from the bucket's newest snapshot if `dir` holds no database). Returns once
    /// the follower has started; it catches up in the background.
    pub fn start(url: &str, database: &str, dir: &Path) -> Result<BackgroundFollower> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("valori-follower")
            .enable_all()
            .build()
            .map_err(|e| FleetError::Nats(format!("starting the follower's runtime: {e}")))?;
        let follower = runtime.block_on(async {
            let fleet = Fleet::connect(url, 1).await?;
            fleet.follow(database, dir).await
        })?;
        Ok(BackgroundFollower {
            engine: Arc::clone(follower.engine()),
            runtime: Some(runtime),
            follower: Some(follower),
        })
    }

    /// The database (read it; it refuses writes).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Where it stands.
    pub fn status(&self) -> FollowerStatus {
        match &self.follower {
            Some(f) => f.status(),
            None => FollowerStatus {
                applied: 0,
                pending: 0,
                error: Some("stopped".into()),
                retrying: None,
            },
        }
    }

    /// Waits up to `timeout` until record `seq` is applied: `Ok(false)` if the time ran out,
    /// an error if the follower stopped before it.
    pub fn wait_applied(&self, seq: u64, timeout: Duration) -> Result<bool> {
        let (Some(rt), Some(f)) = (&self.runtime, &self.follower) else {
            return Err(FleetError::Nats("the follower is stopped".into()));
        };
        match rt.block_on(async { tokio::time::timeout(timeout, f.wait_applied(seq)).await }) {
            Ok(r) => r.map(|()| true),
            Err(_) => Ok(false),
        }
    }

    /// Stops applying and shuts the runtime down; the database is the caller's alone after.
    pub fn stop(mut self) -> Arc<Engine> {
        self.shutdown();
        Arc::clone(&self.engine)
    }

    fn shutdown(&mut self) {
        if let (Some(rt), Some(f)) = (self.runtime.take(), self.follower.take()) {
            rt.block_on(async {
                drop(f.stop().await);
            });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for BackgroundFollower {
    fn drop(&mut self) {
        self.shutdown();
    }
}
