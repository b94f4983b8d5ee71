//! The engine handle: the write path (apply, log, durability), reads, checkpoints, export.

use crate::directory;
use crate::directory::HistoryTag;
use crate::error::{Error, Result};
use crate::export::{Export, ExportReader};
use crate::history::{self, LogEntry, Span};
use crate::options::{Durability, Options, INDEX_REPLAY_WEIGHT};
use crate::pin::{LogPin, Pins};
use crate::recovery::{self, Recovered, RecoveryReport, SalvageReport};
use crate::storage::{FsStorage, LockGuard, Storage};
use crate::wal::{self, Chain, FlushError, ReplicaDamage, Writer};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use valori_kernel::{
    fxp, Applied, Command, Config, Direction, Edge, Fxp, Hit, Hop, Kernel, SearchOptions, Words,
};

/// Proof that the caller holds the writers' turn.
type WriterTurn<'a> = MutexGuard<'a, ()>;

/// The "file" a replica record's damage is reported in ([`Engine::apply_replica`]).
pub const REPLICA_STREAM: &str = "replication stream";

/// What [`Engine::apply_replica`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaApplied {
    /// Applied and logged as sequence number `seq`.
    Applied {
        /// Its sequence number.
        seq: u64,
        /// What the command did.
        applied: Applied,
    },
    /// Already applied (numbered at or below this copy's sequence number): nothing changed.
    Duplicate(u64),
}

/// The first 8 bytes of a chain value in hex, for messages.
fn hex8(chain: &[u8; 32]) -> String {
    chain.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// In-memory state guarded by the state lock.
struct State {
    kernel: Kernel<'static>,
    /// Last sequence number applied and handed to the log.
    seq: u64,
    /// Chain value after record `seq`.
    chain: Chain,
    /// Sequence number of the newest snapshot.
    snapshot_seq: u64,
    /// Bytes in the current WAL segment (written or staged).
    segment_bytes: u64,
    /// Size of the state's encoding at the last checkpoint (or at open).
    snapshot_bytes: u64,
}

/// A database's figures for monitoring (see [`Engine::stats`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Records stored.
    pub records: u64,
    /// Sequence number of the last command applied.
    pub seq: u64,
    /// Sequence number of the newest snapshot.
    pub snapshot_seq: u64,
    /// Bytes of the current WAL segment (the log since the newest snapshot).
    pub wal_bytes: u64,
    /// What the log wrote and synced since the handle opened.
    pub log: wal::LogStats,
}

/// A record read from the database (owned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its id.
    pub id: u64,
    /// Its tag.
    pub tag: Option<u64>,
    /// Its metadata (empty if none).
    pub meta: Vec<u8>,
    /// Its vector in Q16.16.
    pub vector: Vec<Fxp>,
}

/// A durable Valori database: a directory holding a lock file, WAL segments and snapshots.
///
/// `Engine` is `Send + Sync`: share it (e.g. in an `Arc`); searches run concurrently, writes
/// are serialised, and with [`Durability::GroupCommit`] concurrent writers share fsyncs.
pub struct Engine {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    options: Options,
    /// Readers take it shared; a writer takes it exclusively only while it applies a command
    /// (never across an fsync or a snapshot write).
    state: RwLock<State>,
    /// Serialises writers, checkpoints and exports; readers never take it.
    writer: Mutex<()>,
    log: Arc<Writer>,
    poisoned: AtomicBool,
    /// Snapshots a checkpoint keeps ([`Options::retain_snapshots`], changeable while open).
    retain: AtomicU32,
    /// Seconds of [`Options::retain_for`] (`u64::MAX`: none), changeable while open.
    retain_secs: AtomicU64,
    /// Where open log readers ([`LogPin`]) still need the log; checkpoints keep it.
    pins: Arc<Pins>,
    salvage: Option<SalvageReport>,
    report: RecoveryReport,
    _lock: LockGuard,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.dir)
            .field("durability", &self.options.durability)
            .field("poisoned", &self.poisoned.load(Ordering::SeqCst))
            .finish()
    }
}

impl Engine {
    /// Opens (or creates) the database in directory `path`, recovering from the newest
    /// snapshot and the WAL after it. A second opener gets [`Error::Busy`].
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Engine> {
        Engine::open_with_storage(path, options, Arc::new(FsStorage))
    }

    /// [`Engine::open`] through a custom [`Storage`] (e.g. a simulated disk).
    pub fn open_with_storage(
        path: impl AsRef<Path>,
        options: Options,
        storage: Arc<dyn Storage>,
    ) -> Result<Engine> {
        let dir = path.as_ref();
        let lock = directory::lock(&*storage, dir, !options.salvage)?;
        let recovered = recovery::recover(&*storage, dir, &options)?;
        Engine::start(dir, storage, options, lock, recovered)
    }

    /// The engine over a recovered (or just created) state, with the index the options ask
    /// for added if the database has none yet (not on a salvage handle).
    fn start(
        dir: &Path,
        storage: Arc<dyn Storage>,
        options: Options,
        lock: LockGuard,
        recovered: Recovered,
    ) -> Result<Engine> {
        let add_index = options
            .index
            .filter(|_| !options.salvage && recovered.kernel.index_params().is_none());
        let engine = Engine::from_recovered(dir, storage, options, lock, recovered);
        if let Some(params) = add_index {
            engine.add_index(params)?;
        }
        Ok(engine)
    }

    /// Builds an index over an existing database's records and snapshots it at once, so that
    /// recovery finds the same index (and the commands after it update it the same way).
    fn add_index(&self, params: valori_kernel::IndexParams) -> Result<()> {
        let turn = self.writer_turn()?;
        let (seq, snapshot_seq, chain) = {
            let mut st = self.state.write().map_err(|_| Error::Poisoned)?;
            st.kernel.set_index(Some(params))?;
            (st.seq, st.snapshot_seq, st.chain)
        };
        if seq != snapshot_seq {
            return self.checkpoint_in_turn(&turn);
        }
        // Nothing logged since the newest snapshot: rewrite it with the index.
        let st = self.read_state()?;
        directory::rewrite_snapshot(&*self.storage, &self.dir, seq, &chain, &st.kernel)
    }

    fn from_recovered(
        dir: &Path,
        storage: Arc<dyn Storage>,
        options: Options,
        lock: LockGuard,
        r: Recovered,
    ) -> Engine {
        Engine {
            dir: dir.to_path_buf(),
            storage,
            retain: AtomicU32::new(options.retain_snapshots),
            retain_secs: AtomicU64::new(options.retain_for.map_or(u64::MAX, |d| d.as_secs())),
            pins: Arc::default(),
            options,
            log: Arc::new(Writer::new(r.segment, r.seq, r.segment_bytes)),
            writer: Mutex::new(()),
            state: RwLock::new(State {
                snapshot_bytes: r.kernel.encoded_len_hint(),
                kernel: r.kernel,
                seq: r.seq,
                chain: r.chain,
                snapshot_seq: r.snapshot_seq,
                segment_bytes: r.segment_bytes,
            }),
            poisoned: AtomicBool::new(false),
            salvage: r.salvage,
            report: r.report,
            _lock: lock,
        }
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// What a salvage open found damaged (`None` if the database was intact or not opened
    /// with [`Options::salvage`]).
    pub fn salvage_report(&self) -> Option<&SalvageReport> {
        self.salvage.as_ref()
    }

    /// What open found and did: the snapshot it started from, the records it replayed, and a
    /// damaged tail of the log it cut off (`docs/FORMAT.md` §10).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    fn check_usable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        if self.log.is_stopped() {
            // The log stopped under a flush that did not return (a storage panic): the state
            // may hold commands the log does not.
            self.poison();
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
        self.log.stop();
    }

    /// True for a salvage open: it refuses writes and never touches the files.
    fn read_only(&self) -> bool {
        self.options.salvage
    }

    fn read_state(&self) -> Result<RwLockReadGuard<'_, State>> {
        self.check_usable()?;
        self.state.read().map_err(|_| Error::Poisoned)
    }

    /// The writers' turn. A panic while another writer held it (a bug, e.g. in a storage
    /// implementation) poisons the handle rather than wedging later writers.
    fn writer_turn(&self) -> Result<WriterTurn<'_>> {
        if self.read_only() {
            return Err(Error::ReadOnly);
        }
        self.check_usable()?;
        let turn = self.writer.lock().map_err(|_| {
            self.poison();
            Error::Poisoned
        })?;
        self.check_usable()?;
        Ok(turn)
    }

    /// Applies a command and makes it durable as the [`Durability`] mode says; returns only
    /// when it is acknowledged. A command the kernel refuses changes and logs nothing.
    ///
    /// Readers wait only while the command is applied in memory, never for its fsync or a
    /// checkpoint: a search running concurrently may see a command whose fsync is still under
    /// way (if that fsync fails, the handle is poisoned and every later call fails).
    pub fn apply(&self, cmd: &Command<'_>) -> Result<Applied> {
        if self.options.follower {
            return Err(Error::ReadOnly);
        }
        self.apply_ordered(cmd)
    }

    /// Applies a command that a replication layer has ordered for this database, even when
    /// it is opened as a [`Options::follower`]: the way a member of a shared fleet stream
    /// (`docs/REPLICATION.md`) applies every member's commands in the stream's order while
    /// its own callers may only read. Otherwise exactly [`Engine::apply`]; a command the
    /// kernel refuses changes and logs nothing, so every member refuses it alike.
    pub fn apply_ordered(&self, cmd: &Command<'_>) -> Result<Applied> {
        // Checked before anything changes: the log's reader refuses a longer record, so an
        // acknowledged command must never be one.
        check_record_len(cmd.encoded_len() as u64)?;
        let payload = cmd.to_vec();
        let turn = self.writer_turn()?;
        self.commit(turn, cmd, &payload)
    }

    /// Applies a record of another copy of this log ([`wal::replica_record`], `docs/FORMAT.md`
    /// §8): a follower's way to take the leader's commands. The record must be the next one
    /// (sequence number one past this database's) and its chain value must follow from this
    /// database's: then its command is applied and logged like [`Engine::apply`], and this
    /// database's chain value is the record's. A record already applied (numbered at or below
    /// the current sequence number) changes nothing ([`ReplicaApplied::Duplicate`]: streams
    /// redeliver). A gap, a record whose chain does not verify (altered, or from a log this
    /// one does not continue), a malformed one, or a command the kernel refuses (the leader
    /// logged it, so this copy has diverged) is [`Error::Corrupt`] with nothing changed.
    pub fn apply_replica(&self, record: &[u8]) -> Result<ReplicaApplied> {
        let turn = self.writer_turn()?;
        // Stable while this caller holds the writers' turn: only writers change them.
        let (now, chain) = {
            let st = self.read_state()?;
            (st.seq, st.chain)
        };
        let next = now.saturating_add(1);
        let damage = |why: String| Error::corrupt(REPLICA_STREAM, next, why);
        match wal::read_replica_record(record, &chain, next) {
            Ok((seq, payload, _)) => {
                check_record_len(payload.len() as u64)?;
                let cmd = Command::decode(payload).map_err(|e| {
                    damage(format!("record {seq}: its command does not decode: {e}"))
                })?;
                match self.commit(turn, &cmd, payload) {
                    Ok(applied) => Ok(ReplicaApplied::Applied { seq, applied }),
                    Err(Error::Kernel(e)) => Err(damage(format!(
                        "record {seq}: the leader logged a command this copy refuses ({e}): \
                         the copies have diverged"
                    ))),
                    Err(e) => Err(e),
                }
            }
            Err(ReplicaDamage::Sequence(seq)) if seq <= now => Ok(ReplicaApplied::Duplicate(seq)),
            Err(ReplicaDamage::Sequence(seq)) => Err(damage(format!(
                "gap: record {seq} arrived but the next this copy needs is {next}"
            ))),
            Err(ReplicaDamage::Chain) => Err(damage(format!(
                "record {next}: its chain value does not follow from this copy's ({}): the \
                 record was altered or does not continue this log",
                hex8(&chain)
            ))),
            Err(ReplicaDamage::Malformed(why)) => Err(damage(format!("record {next}: {why}"))),
        }
    }

    /// The last sequence number whose record is durable (fsynced): what may leave this
    /// machine, e.g. to a replication stream. It trails [`Engine::sequence`] while a commit's
    /// fsync is under way, and in [`Durability::None`] mode until a flush or checkpoint.
    pub fn durable_sequence(&self) -> Result<u64> {
        self.check_usable()?;
        Ok(self.log.synced_seq())
    }

    /// Calls `f` after every flush that makes records durable ([`Engine::durable_sequence`]
    /// advances), from the thread that flushed, until the returned listener is dropped: a
    /// publisher of the log wakes as soon as there is something to send instead of polling.
    /// `f` must be quick and must not call back into this database (a notification, not work).
    pub fn on_durable(&self, f: impl Fn() + Send + Sync + 'static) -> DurableListener {
        let id = self.log.listen(Arc::new(f));
        DurableListener {
            log: Arc::downgrade(&self.log),
            id,
        }
    }

    /// The last sequence number and the chain value after it: where a replica stands
    /// ([`Engine::apply_replica`] needs the record after it).
    pub fn position(&self) -> Result<(u64, [u8; 32])> {
        let st = self.read_state()?;
        Ok((st.seq, st.chain))
    }

    /// Applies `cmd` (its encoding is `payload`) in the caller's writer turn, logs it and
    /// returns when the durability mode acknowledges it.
    fn commit(&self, turn: WriterTurn<'_>, cmd: &Command<'_>, payload: &[u8]) -> Result<Applied> {
        let (applied, seq) = {
            let mut st = self.state.write().map_err(|_| Error::Poisoned)?;
            // The reader refuses a record numbered past `MAX_SEQ`: checked before the kernel
            // changes, like the length.
            let seq = st
                .seq
                .checked_add(1)
                .filter(|s| *s <= wal::MAX_SEQ)
                .ok_or(Error::SequenceExhausted)?;
            let applied = st.kernel.apply(cmd)?;
            let (chain, bytes) = self.log.stage(seq, &st.chain, payload);
            st.chain = chain;
            st.segment_bytes += bytes;
            st.seq = seq;
            (applied, seq)
        };
        // Once the command is durable it is acknowledged: a failed automatic checkpoint from
        // here on poisons the handle (the next call reports it) but never un-acknowledges it.
        match self.options.durability {
            Durability::Fsync | Durability::None => {
                // Writers take turns across the fsync: one fsync per commit.
                self.sync_through(seq, self.options.durability == Durability::Fsync)?;
                self.checkpoint_if_due(&turn);
            }
            Durability::GroupCommit => {
                // The next writers stage their records while this one syncs; whoever flushes
                // takes every record staged so far.
                drop(turn);
                self.sync_through(seq, true)?;
                let due = self.state.read().is_ok_and(|st| self.checkpoint_due(&st));
                if due {
                    if let Ok(turn) = self.writer_turn() {
                        self.checkpoint_if_due(&turn);
                    }
                }
            }
        }
        Ok(applied)
    }

    /// Due when the log since the last snapshot is at least `checkpoint_wal_bytes` and at
    /// least as large as that snapshot: a store that keeps growing is checkpointed at
    /// geometrically spaced sizes (snapshot writes at most about twice the log's, instead of
    /// a full rewrite every `checkpoint_wal_bytes`), and recovery replays at most
    /// `max(checkpoint_wal_bytes, last snapshot)` of log.
    ///
    /// With an approximate index each logged byte counts [`INDEX_REPLAY_WEIGHT`] times: recovery
    /// replays an insert into the index at the index's build rate, far slower than it loads
    /// the same record from a snapshot, so the log is kept that much shorter.
    fn checkpoint_due(&self, st: &State) -> bool {
        let limit = self.options.checkpoint_wal_bytes;
        let weight = if st.kernel.index_params().is_some() {
            INDEX_REPLAY_WEIGHT
        } else {
            1
        };
        limit > 0 && st.segment_bytes.saturating_mul(weight) >= limit.max(st.snapshot_bytes)
    }

    fn checkpoint_if_due(&self, turn: &WriterTurn<'_>) {
        let due = self.state.read().is_ok_and(|st| self.checkpoint_due(&st));
        if due {
            let _ = self.checkpoint_in_turn(turn);
        }
    }

    /// Writes (and with `fsync`, syncs) the log through record `seq`; a failure poisons the
    /// handle.
    fn sync_through(&self, seq: u64, fsync: bool) -> Result<()> {
        match self.log.flush_through(seq, fsync) {
            Ok(()) => Ok(()),
            Err(FlushError::Stopped) => {
                self.poison();
                Err(Error::Poisoned)
            }
            Err(FlushError::Io(source)) => {
                self.poison();
                Err(Error::Io {
                    op: if fsync {
                        "writing and syncing the WAL in"
                    } else {
                        "writing the WAL in"
                    },
                    path: self.dir.clone(),
                    source,
                })
            }
        }
    }

    /// Writes a snapshot of the current state atomically and retires the WAL it covers.
    /// Writers wait for it; readers do not.
    pub fn checkpoint(&self) -> Result<()> {
        let turn = self.writer_turn()?;
        self.checkpoint_in_turn(&turn)
    }

    /// A checkpoint, while no writer can change the state (the caller holds the writers'
    /// turn): the snapshot is written under the shared state lock, so readers go on.
    fn checkpoint_in_turn(&self, _turn: &WriterTurn<'_>) -> Result<()> {
        let (seq, chain) = {
            let st = self.read_state()?;
            if st.seq == st.snapshot_seq {
                return Ok(());
            }
            (st.seq, st.chain)
        };
        self.sync_through(seq, true)?;
        let result = {
            let st = self.read_state()?;
            directory::install_checkpoint(
                &*self.storage,
                &self.dir,
                seq,
                &chain,
                &st.kernel,
                self.retention(),
            )
        };
        match result {
            Ok(file) => {
                self.log
                    .switch_segment(file, wal::SEGMENT_HEADER_LEN as u64);
                let mut st = self.state.write().map_err(|_| Error::Poisoned)?;
                st.snapshot_seq = seq;
                st.segment_bytes = wal::SEGMENT_HEADER_LEN as u64;
                st.snapshot_bytes = st.kernel.encoded_len_hint();
                Ok(())
            }
            Err(e) => {
                self.poison();
                Err(e)
            }
        }
    }

    /// Makes every acknowledged commit durable and closes the database, releasing the lock.
    pub fn close(self) -> Result<()> {
        self.flush()
    }

    /// Makes everything applied so far durable (useful with [`Durability::None`]).
    pub fn flush(&self) -> Result<()> {
        let seq = self.read_state()?.seq;
        if self.read_only() {
            return Ok(());
        }
        self.sync_through(seq, true)
    }

    /// Inserts a vector with an optional tag and metadata; returns its id.
    pub fn insert(&self, vector: &[f32], tag: Option<u64>, meta: &[u8]) -> Result<u64> {
        self.insert_fixed(&fxp::to_vec(vector)?, tag, meta)
    }

    /// [`Engine::insert`] of a vector already in Q16.16 (converted with [`fxp`], from `f32`
    /// or `f64`).
    pub fn insert_fixed(&self, vector: &[Fxp], tag: Option<u64>, meta: &[u8]) -> Result<u64> {
        created(self.apply(&Command::Insert {
            id: None,
            tag,
            vector: vector.into(),
            meta,
        })?)
    }

    /// Inserts `n` vectors (`vectors.len() == n * dim`, row-major) atomically as one WAL
    /// record, with no tags or one per vector; returns their (consecutive) ids. A batch over
    /// the log's record limit (1 GiB encoded) is refused with [`Error::TooLarge`].
    pub fn insert_batch(&self, vectors: &[f32], tags: &[u64]) -> Result<Range<u64>> {
        // Each component encodes to 4 bytes: refuse an oversize batch before converting it.
        check_record_len(4 * vectors.len() as u64)?;
        self.insert_batch_fixed(&fxp::to_vec(vectors)?, tags)
    }

    /// [`Engine::insert_batch`] of vectors already in Q16.16.
    pub fn insert_batch_fixed(&self, vectors: &[Fxp], tags: &[u64]) -> Result<Range<u64>> {
        let cmd = Command::InsertBatch {
            ids: Words::EMPTY,
            tags: Words::Native(tags),
            vectors: vectors.into(),
        };
        match self.apply(&cmd)? {
            Applied::Batch { first_id, count } => Ok(first_id..first_id + count),
            other => Err(Error::Internal(format!("batch insert answered {other:?}"))),
        }
    }

    /// Deletes a record, the nodes linked to it and their edges.
    pub fn delete(&self, id: u64) -> Result<()> {
        self.apply(&Command::Delete { id }).map(drop)
    }

    /// Replaces a record's metadata.
    pub fn set_meta(&self, id: u64, meta: &[u8]) -> Result<()> {
        self.apply(&Command::SetMeta { id, meta }).map(drop)
    }

    /// Replaces a record's tag.
    pub fn set_tag(&self, id: u64, tag: Option<u64>) -> Result<()> {
        self.apply(&Command::SetTag { id, tag }).map(drop)
    }

    /// Creates a graph node, optionally linked to a record; returns its id.
    pub fn create_node(&self, kind: u32, record: Option<u64>, label: &[u8]) -> Result<u64> {
        created(self.apply(&Command::CreateNode {
            id: None,
            kind,
            record,
            label,
        })?)
    }

    /// Deletes a node and its edges.
    pub fn delete_node(&self, id: u64) -> Result<()> {
        self.apply(&Command::DeleteNode { id }).map(drop)
    }

    /// Creates a directed edge; returns its id.
    pub fn create_edge(&self, kind: u32, from: u64, to: u64, weight: Option<f32>) -> Result<u64> {
        let weight = weight.map(|w| Fxp::from_f32(w, 0)).transpose()?;
        self.create_edge_fixed(kind, from, to, weight)
    }

    /// [`Engine::create_edge`] with a weight already in Q16.16.
    pub fn create_edge_fixed(
        &self,
        kind: u32,
        from: u64,
        to: u64,
        weight: Option<Fxp>,
    ) -> Result<u64> {
        created(self.apply(&Command::CreateEdge {
            id: None,
            kind,
            from,
            to,
            weight,
        })?)
    }

    /// Deletes an edge.
    pub fn delete_edge(&self, id: u64) -> Result<()> {
        self.apply(&Command::DeleteEdge { id }).map(drop)
    }

    /// Exact k nearest records to `query`, optionally only those tagged `tag`.
    pub fn search(&self, query: &[f32], k: u32, tag: Option<u64>) -> Result<Vec<Hit>> {
        self.search_fixed(&fxp::to_vec(query)?, k, tag)
    }

    /// [`Engine::search`] with a query already in Q16.16.
    pub fn search_fixed(&self, query: &[Fxp], k: u32, tag: Option<u64>) -> Result<Vec<Hit>> {
        Ok(self.read_state()?.kernel.search_vec(query, k, tag)?)
    }

    /// Approximate k nearest records through the index, keeping `ef` candidates
    /// ([`Kernel::search_approx`]); `InvalidInput` if the database has no index.
    pub fn search_approx(
        &self,
        query: &[f32],
        k: u32,
        tag: Option<u64>,
        ef: u32,
    ) -> Result<Vec<Hit>> {
        self.search_approx_fixed(&fxp::to_vec(query)?, k, tag, ef)
    }

    /// [`Engine::search_approx`] with a query already in Q16.16.
    pub fn search_approx_fixed(
        &self,
        query: &[Fxp],
        k: u32,
        tag: Option<u64>,
        ef: u32,
    ) -> Result<Vec<Hit>> {
        Ok(self
            .read_state()?
            .kernel
            .search_vec_approx(query, k, tag, ef)?)
    }

    /// The k nearest records as `opts` says ([`Kernel::search_vec_with`]): through the index
    /// if the database has one, unless `opts.exact`.
    pub fn search_with(
        &self,
        query: &[Fxp],
        k: u32,
        tag: Option<u64>,
        opts: SearchOptions,
    ) -> Result<Vec<Hit>> {
        Ok(self
            .read_state()?
            .kernel
            .search_vec_with(query, k, tag, opts)?)
    }

    /// [`Engine::search_with`] for each row of `queries`: the hits per query and the hits, as
    /// [`Engine::search_batch_fixed`].
    pub fn search_batch_with(
        &self,
        queries: &[Fxp],
        k: u32,
        tag: Option<u64>,
        opts: SearchOptions,
    ) -> Result<(usize, Vec<Hit>)> {
        Ok(self
            .read_state()?
            .kernel
            .search_batch_vec_with(queries, k, tag, opts)?)
    }

    /// The approximate index's parameters, if the database has one.
    pub fn index_params(&self) -> Result<Option<valori_kernel::IndexParams>> {
        Ok(self.read_state()?.kernel.index_params())
    }

    /// Exact k nearest records to each row of `queries` (a multiple of the dimension), in one
    /// pass over the store: the number of hits per query (`min(k, matching records)`) and the
    /// hits, that many per query in query order. Errors as [`Engine::search`].
    pub fn search_batch_fixed(
        &self,
        queries: &[Fxp],
        k: u32,
        tag: Option<u64>,
    ) -> Result<(usize, Vec<Hit>)> {
        let st = self.read_state()?;
        let dim = (st.kernel.config().dim as usize).max(1);
        let width = st.kernel.result_count(k, tag);
        let mut hits = vec![Hit::default(); (queries.len() / dim).saturating_mul(width)];
        let got = st.kernel.search_batch(queries, k, tag, &mut hits)?;
        hits.truncate((queries.len() / dim) * got);
        Ok((got, hits))
    }

    /// The record with this id.
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        Ok(self.read_state()?.kernel.get(id).map(|r| Record {
            id: r.id,
            tag: r.tag,
            meta: r.meta.to_vec(),
            vector: r.vector.to_vec(),
        }))
    }

    /// Edges out of a node.
    pub fn outgoing(&self, node: u64) -> Result<Vec<Edge>> {
        Ok(self.read_state()?.kernel.outgoing(node).collect())
    }

    /// Edges into a node.
    pub fn incoming(&self, node: u64) -> Result<Vec<Edge>> {
        Ok(self.read_state()?.kernel.incoming(node).collect())
    }

    /// Nodes within `max_hops` of `start` in `(depth, node)` order (see `Kernel::traverse`).
    pub fn traverse(
        &self,
        start: u64,
        max_hops: u32,
        direction: Direction,
        kind: Option<u32>,
    ) -> Result<Vec<Hop>> {
        let st = self.read_state()?;
        let mut out = vec![Hop::default(); st.kernel.node_count()];
        let n = st
            .kernel
            .traverse(start, max_hops, direction, kind, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Runs `f` with read access to the whole kernel (concurrently with other readers).
    pub fn with_kernel<R>(&self, f: impl FnOnce(&Kernel<'static>) -> R) -> Result<R> {
        Ok(f(&self.read_state()?.kernel))
    }

    /// Figures for monitoring: records, sequence numbers, WAL size, fsync counts and times.
    pub fn stats(&self) -> Result<Stats> {
        let log = self.log.stats();
        let st = self.read_state()?;
        Ok(Stats {
            records: st.kernel.len() as u64,
            seq: st.seq,
            snapshot_seq: st.snapshot_seq,
            wal_bytes: st.segment_bytes,
            log,
        })
    }

    /// The state hash (identical on every machine for the same commands).
    pub fn state_hash(&self) -> Result<[u8; 32]> {
        Ok(self.read_state()?.kernel.state_hash())
    }

    /// The state hash and the sequence number of the last command it includes, read together.
    pub fn state_hash_at(&self) -> Result<([u8; 32], u64)> {
        let st = self.read_state()?;
        Ok((st.kernel.state_hash(), st.seq))
    }

    /// Number of records.
    pub fn len(&self) -> Result<usize> {
        Ok(self.read_state()?.kernel.len())
    }

    /// True when there are no records.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The dimension and metric.
    pub fn config(&self) -> Result<Config> {
        Ok(self.read_state()?.kernel.config())
    }

    /// Sequence number of the last command applied (visible to readers; acknowledged once its
    /// writer's call returns).
    pub fn sequence(&self) -> Result<u64> {
        Ok(self.read_state()?.seq)
    }

    /// Holds writers off (unless read-only) and writes out every applied command, so the files
    /// hold exactly the state through the returned sequence number while the turn is held.
    fn files_turn(&self) -> Result<(Option<WriterTurn<'_>>, u64)> {
        let turn = if self.read_only() {
            None
        } else {
            Some(self.writer_turn()?)
        };
        let seq = self.read_state()?.seq;
        if turn.is_some() {
            self.sync_through(seq, false)?;
        }
        Ok((turn, seq))
    }

    /// The newest snapshot's state and the commands logged after it, read back from disk.
    /// Writers wait for it (the files must not change under it); readers do not.
    pub fn export(&self) -> Result<Export> {
        let (_turn, _) = self.files_turn()?;
        let (seq, snapshot_seq, state_hash) = {
            let st = self.read_state()?;
            (st.seq, st.snapshot_seq, st.kernel.state_hash())
        };
        let (base_state, commands) =
            directory::read_back(&*self.storage, &self.dir, snapshot_seq, seq)?;
        Ok(Export {
            base_state,
            base_seq: snapshot_seq,
            commands,
            state_hash,
        })
    }

    /// Up to `limit` logged commands from sequence number `from` on, read back from the
    /// retained log ([`Options::retain_snapshots`]). Writers wait for it.
    pub fn history(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>> {
        let (_turn, seq) = self.files_turn()?;
        history::entries(&*self.storage, &self.dir, from, seq, limit)
    }

    /// Holds the logged commands from sequence number `from` on against retention until the
    /// pin is dropped, so a reader can page through them with [`Engine::history`] while
    /// checkpoints go on. [`Error::NotRetained`] if the log no longer reaches `from`;
    /// [`Error::Invalid`] if `from` is past the next command.
    pub fn pin_log(&self, from: u64) -> Result<LogPin> {
        let (_turn, last) = self.files_turn()?;
        if from > last.saturating_add(1) {
            return Err(Error::Invalid(format!(
                "sequence number {from} is past the end of the log (the last command is {last})"
            )));
        }
        let listing = directory::list(&*self.storage, &self.dir)?;
        let first = listing
            .segments
            .first()
            .map_or(last.saturating_add(1), |(s, _)| *s);
        if from < first {
            return Err(Error::NotRetained {
                seq: from,
                first: Some(first),
                last: Some(last),
            });
        }
        Ok(LogPin::new(Arc::clone(&self.pins), from))
    }

    /// The next up to `max` logged commands a pinned reader has not read, through sequence
    /// number `through` (none once past it), and advances the pin past them. `Corrupt` if the
    /// log no longer holds every one of them.
    pub fn read_pinned(&self, pin: &mut LogPin, through: u64, max: usize) -> Result<Vec<LogEntry>> {
        let from = pin.from();
        if from > through {
            return Ok(Vec::new());
        }
        let want = usize::try_from(through - from + 1).map_or(max, |n| n.min(max));
        // Where the last read ended, if it is still this segment's next record; else (a new
        // segment, or anything that did not read back) the log is read the usual way.
        let resumed = pin.cursor().and_then(|c| {
            history::entries_at(&*self.storage, &c.path, c, through, want)
                .filter(|e| e.len() == want)
        });
        let entries = match resumed {
            Some(e) => e,
            None => self.history(from, want)?,
        };
        if entries.len() != want || entries.iter().zip(from..).any(|(e, seq)| e.seq != seq) {
            return Err(Error::corrupt(
                &self.dir,
                0,
                format!("the log no longer holds commands {from}..={through}"),
            ));
        }
        pin.advance(from + want as u64);
        if let Some(last) = entries.last() {
            pin.set_cursor(crate::pin::Cursor {
                path: last.file.clone(),
                pos: last.offset
                    + (wal::RECORD_HEADER_LEN + last.command.len() + wal::CHAIN_LEN) as u64,
                seq: last.seq + 1,
                chain: last.chain,
            });
        }
        Ok(entries)
    }

    /// Reads this database's export (`docs/FORMAT.md` §12) a piece at a time: the newest
    /// snapshot's state now, the commands after it page by page (held against retention
    /// meanwhile), so an export of any size streams in bounded memory.
    pub fn export_reader(&self) -> Result<ExportReader> {
        let (_turn, _) = self.files_turn()?;
        let (seq, snapshot_seq, state_hash) = {
            let st = self.read_state()?;
            (st.seq, st.snapshot_seq, st.kernel.state_hash())
        };
        let base_state = directory::read_snapshot_state(&*self.storage, &self.dir, snapshot_seq)?;
        let pin = LogPin::new(Arc::clone(&self.pins), snapshot_seq + 1);
        Ok(ExportReader::new(
            base_state,
            snapshot_seq,
            seq,
            state_hash,
            pin,
        ))
    }

    /// The sequence numbers whose past states [`Engine::state_at_seq`] can rebuild.
    pub fn span(&self) -> Result<Span> {
        let (_turn, last) = self.files_turn()?;
        Ok(Span {
            first: history::first_reachable(&*self.storage, &self.dir)?,
            last,
        })
    }

    /// The state after command `seq` and the chain value there, rebuilt from the retained
    /// snapshots and log; [`Error::NotRetained`] if they no longer reach it. Writers wait for
    /// it.
    pub fn state_at_seq(&self, seq: u64) -> Result<(Kernel<'static>, [u8; 32])> {
        let (_turn, last) = self.files_turn()?;
        if seq > last {
            let first = history::first_reachable(&*self.storage, &self.dir).ok();
            return Err(Error::NotRetained {
                seq,
                first,
                last: Some(last),
            });
        }
        history::state_at(&*self.storage, &self.dir, seq)
    }

    /// The database's history tags (named points; not the records' tags).
    pub fn history_tags(&self) -> Result<Vec<HistoryTag>> {
        let (_turn, _) = self.files_turn()?;
        directory::read_tags(&*self.storage, &self.dir)
    }

    /// Names the state after command `seq`, pinning it against retention (replaces a history
    /// tag of that name).
    pub fn tag_history(&self, name: &str, seq: u64) -> Result<()> {
        if self.read_only() {
            return Err(Error::ReadOnly);
        }
        let (_turn, last) = self.files_turn()?;
        let first = history::first_reachable(&*self.storage, &self.dir)?;
        history::set_tag(&*self.storage, &self.dir, name, seq, Span { first, last })
    }

    /// Removes a history tag.
    pub fn untag_history(&self, name: &str) -> Result<()> {
        let _turn = self.writer_turn()?;
        history::remove_tag(&*self.storage, &self.dir, name)
    }

    /// Writes the state after command `seq` as a new database in `dir` (which must hold
    /// none), at the same sequence number and chain value. Returns its state hash.
    pub fn checkout(&self, seq: u64, dir: impl AsRef<Path>) -> Result<[u8; 32]> {
        let (kernel, chain) = self.state_at_seq(seq)?;
        directory::create_with_state(&*self.storage, dir.as_ref(), seq, &chain, &kernel)?;
        Ok(kernel.state_hash())
    }

    /// Creates a database in `dir` (which must hold none) holding `export`: its base state at
    /// the export's base sequence number, then every command logged with its own sequence
    /// number, so the import's numbers are the source's (its chain values start afresh: an
    /// export does not carry them). The export is replayed and its hash checked in memory
    /// before any file is written. `progress` gets the commands logged so far and the total.
    /// Returns the database, open with `options` (dimension and metric are the export's).
    pub fn import(
        dir: impl AsRef<Path>,
        export: &Export,
        options: Options,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Engine> {
        export.replay()?;
        let dir = dir.as_ref();
        let base = Kernel::from_bytes(&export.base_state)?;
        directory::create_with_state(
            &FsStorage,
            dir,
            export.base_seq,
            &wal::genesis_chain(),
            &base,
        )?;
        let engine = Engine::open_created(dir, base.config(), options)?;
        let total = export.commands.len() as u64;
        for (i, bytes) in export.commands.iter().enumerate() {
            let cmd = Command::decode(bytes).map_err(|e| {
                Error::corrupt(
                    crate::export::EXPORT_NAME,
                    i as u64,
                    format!("command {i} does not decode: {e}"),
                )
            })?;
            engine.apply(&cmd)?;
            progress(i as u64 + 1, total);
        }
        engine.flush()?;
        if engine.state_hash()? != export.state_hash {
            return Err(Error::Internal(
                "the imported database's state hash differs from the export's".into(),
            ));
        }
        Ok(engine)
    }

    /// Sets how many snapshots (and the log after the oldest of them) later checkpoints keep
    /// (see [`Options::retain_snapshots`]; 0 is taken as 1).
    pub fn set_retain_snapshots(&self, n: u32) {
        self.retain.store(n, Ordering::SeqCst);
    }

    /// Sets how long later checkpoints keep snapshots at least (whole seconds; see
    /// [`Options::retain_for`]); `None` keeps by count only.
    pub fn set_retain_for(&self, d: Option<std::time::Duration>) {
        self.retain_secs
            .store(d.map_or(u64::MAX, |d| d.as_secs()), Ordering::SeqCst);
    }

    fn retention(&self) -> directory::Retention {
        let secs = self.retain_secs.load(Ordering::SeqCst);
        directory::Retention {
            snapshots: self.retain.load(Ordering::SeqCst),
            within: (secs != u64::MAX).then(|| std::time::Duration::from_secs(secs)),
            log_from: self.pins.lowest(),
        }
    }

    /// Creates a database in `dir` (which must hold none) from a snapshot file's bytes
    /// (`docs/FORMAT.md` §9; [`Engine::newest_snapshot`] names a database's newest), verified
    /// first, and opens it with `options` (dimension and metric are the snapshot's): a
    /// replica's starting point. Its sequence number and chain value are the snapshot's, so
    /// [`Engine::apply_replica`] takes the source's records after it. The bytes are written
    /// while they are verified; `Corrupt` if they do not verify (or `Mismatch` if `options`
    /// name another index), with nothing left in `dir`.
    pub fn create_from_snapshot(
        dir: impl AsRef<Path>,
        snapshot: &[u8],
        options: Options,
    ) -> Result<Engine> {
        let dir = dir.as_ref();
        let storage: Arc<dyn Storage> = Arc::new(FsStorage);
        let incoming = directory::incoming(Arc::clone(&storage), dir)?;
        Engine::from_incoming(dir, storage, incoming, snapshot, snapshot, options)
    }

    /// [`Engine::create_from_snapshot`] for a snapshot that arrives in pieces (from the
    /// network): each piece is written to the database's directory as it comes
    /// ([`SnapshotReceiver::write`]), and [`SnapshotReceiver::finish`] verifies the whole and
    /// opens the database. `Exists` at once if `dir` holds a database. Dropped unfinished,
    /// the receiver leaves nothing in `dir`. `expected_len` (the file's size, if known)
    /// reserves the memory for it.
    pub fn receive_snapshot(
        dir: impl AsRef<Path>,
        expected_len: usize,
    ) -> Result<SnapshotReceiver> {
        let dir = dir.as_ref();
        let storage: Arc<dyn Storage> = Arc::new(FsStorage);
        let incoming = directory::incoming(Arc::clone(&storage), dir)?;
        Ok(SnapshotReceiver {
            dir: dir.to_path_buf(),
            storage,
            incoming,
            bytes: Vec::with_capacity(expected_len.min(MAX_RESERVE)),
            failed: false,
        })
    }

    /// Verifies and decodes `bytes` (the snapshot file written to `incoming`, but for its end
    /// `unwritten`, written and synced meanwhile), makes it the database's first snapshot and
    /// opens the state decoded: nothing is encoded or decoded twice.
    fn from_incoming(
        dir: &Path,
        storage: Arc<dyn Storage>,
        incoming: directory::Incoming,
        bytes: &[u8],
        unwritten: &[u8],
        options: Options,
    ) -> Result<Engine> {
        let verify = |bytes: &[u8]| {
            let snap = crate::snapshot::decode(bytes)
                .map_err(|(at, why)| Error::corrupt("snapshot", at, why))?;
            let config = snap.kernel.config();
            let options = Options {
                dim: Some(config.dim),
                metric: Some(config.metric),
                create: false,
                salvage: false,
                ..options
            };
            recovery::check_index(snap.kernel.index_params(), &options)?;
            Ok((snap.seq, snap.chain, (snap, options)))
        };
        let (lock, segment, (snap, options)) = incoming.finish(bytes, unwritten, verify)?;
        let recovered = Recovered {
            kernel: snap.kernel,
            seq: snap.seq,
            chain: snap.chain,
            snapshot_seq: snap.seq,
            segment: Some(segment),
            segment_bytes: crate::wal::SEGMENT_HEADER_LEN as u64,
            salvage: None,
            report: RecoveryReport {
                snapshot_seq: snap.seq,
                seq: snap.seq,
                ..RecoveryReport::default()
            },
        };
        Engine::start(dir, storage, options, lock, recovered)
    }

    /// Opens a database just written in `dir` (by an import) with
    /// `options`, its dimension and metric taken from the state written.
    fn open_created(dir: &Path, config: Config, options: Options) -> Result<Engine> {
        Engine::open(
            dir,
            Options {
                dim: Some(config.dim),
                metric: Some(config.metric),
                create: false,
                ..options
            },
        )
    }

    /// The newest snapshot file in the database's directory: its sequence number and path
    /// (`None` before the first checkpoint of a database created empty). A checkpoint may
    /// remove it later (retention); read it soon, and treat a missing file as "take the next".
    pub fn newest_snapshot(&self) -> Result<Option<(u64, PathBuf)>> {
        let (_turn, _) = self.files_turn()?;
        let listing = directory::list(&*self.storage, &self.dir)?;
        Ok(listing
            .snapshots
            .last()
            .map(|(seq, name)| (*seq, self.dir.join(name))))
    }

    /// Writes the current state as a new database in `dir` (which must hold none), at the
    /// same sequence number and chain value. Works on a salvage handle: the way to copy a
    /// damaged database's intact prefix. Returns the state hash.
    pub fn save_as(&self, dir: impl AsRef<Path>) -> Result<[u8; 32]> {
        let st = self.read_state()?;
        directory::create_with_state(&*self.storage, dir.as_ref(), st.seq, &st.chain, &st.kernel)?;
        Ok(st.kernel.state_hash())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Best effort for `Durability::None`; `close` reports errors.
        let _ = self.flush();
    }
}

/// Refuses a command whose log record the reader would not accept.
fn check_record_len(len: u64) -> Result<()> {
    if len > u64::from(wal::MAX_PAYLOAD) {
        return Err(Error::TooLarge {
            bytes: len,
            limit: u64::from(wal::MAX_PAYLOAD),
        });
    }
    Ok(())
}

fn created(a: Applied) -> Result<u64> {
    match a {
        Applied::Created(id) => Ok(id),
        other => Err(Error::Internal(format!("create answered {other:?}"))),
    }
}

/// At most this much memory is reserved ahead for a received snapshot whose size a sender
/// announced (more is allocated as it arrives).
const MAX_RESERVE: usize = 1 << 30;

/// A new database's snapshot arriving in pieces ([`Engine::receive_snapshot`]).
pub struct SnapshotReceiver {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    incoming: directory::Incoming,
    bytes: Vec<u8>,
    failed: bool,
}

impl SnapshotReceiver {
    /// The next piece of the snapshot file: written to the directory (and synced every few
    /// tens of megabytes, so that little is left to sync at the end).
    pub fn write(&mut self, piece: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Error::Invalid(
                "a write to this received snapshot failed before: start again".into(),
            ));
        }
        // A failed write may have left part of the piece in the file: nothing after it may
        // be written or finished.
        self.failed = true;
        self.incoming.append(piece)?;
        self.bytes.extend_from_slice(piece);
        self.failed = false;
        Ok(())
    }

    /// The bytes received so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing was received yet.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The snapshot is complete: verifies it (while the last bytes are synced), makes it the
    /// database's first snapshot and opens the database with `options`, as
    /// [`Engine::create_from_snapshot`] does. `Corrupt` if it does not verify, with nothing
    /// left in the directory.
    pub fn finish(self, options: Options) -> Result<Engine> {
        let SnapshotReceiver {
            dir,
            storage,
            incoming,
            bytes,
            failed,
        } = self;
        if failed {
            return Err(Error::Invalid(
                "a write to this received snapshot failed before: start again".into(),
            ));
        }
        Engine::from_incoming(&dir, storage, incoming, &bytes, &[], options)
    }
}

impl std::fmt::Debug for SnapshotReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReceiver")
            .field("dir", &self.dir)
            .field("received", &self.bytes.len())
            .finish()
    }
}

/// A listener of a database's durable records ([`Engine::on_durable`]); dropping it stops
/// the calls.
pub struct DurableListener {
    log: std::sync::Weak<Writer>,
    id: u64,
}

impl Drop for DurableListener {
    fn drop(&mut self) {
        if let Some(log) = self.log.upgrade() {
            log.unlisten(self.id);
        }
    }
}

impl std::fmt::Debug for DurableListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableListener")
            .field("id", &self.id)
            .finish()
    }
}
