//! How a database is opened.

use valori_kernel::{IndexParams, Metric};

/// When a commit is acknowledged, and so what survives a power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is written and fsynced before it returns (the default). A power loss
    /// loses nothing that was acknowledged. Writers take turns: one fsync per commit.
    #[default]
    Fsync,
    /// Every commit is fsynced before it returns, but concurrent writers share one write and
    /// one fsync (group commit). The same guarantee as `Fsync`, with more throughput when
    /// several threads write at once.
    GroupCommit,
    /// Commits are written to the OS but not fsynced (bulk loads). A process crash loses
    /// nothing acknowledged; a power loss can lose any commit since the last checkpoint or
    /// close, and recovery then returns an earlier, consistent state.
    None,
}

/// How many times a logged byte counts towards the automatic checkpoint when the database has
/// an approximate index. Recovery replays each logged insert into the index at the index's build
/// rate (about 2,000 records/s at d = 384, N = 1M on one core), some 60 times slower than it
/// loads the same record from a snapshot; counting the log 16 times keeps the replay after the
/// newest snapshot to at most a sixteenth of that snapshot's records, at the price of a
/// checkpoint every sixteenth of the store (bench/README.md measures both).
pub const INDEX_REPLAY_WEIGHT: u64 = 16;

/// Options for [`crate::Engine::open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Dimension: required to create a database; if given for an existing one, it must match.
    pub dim: Option<u32>,
    /// Metric: used when creating; if given for an existing one, it must match.
    pub metric: Option<Metric>,
    /// When commits are acknowledged.
    pub durability: Durability,
    /// Checkpoint automatically when the current WAL segment grows past this many bytes and
    /// past the size of the last snapshot (0 disables automatic checkpoints). Default 256 MiB.
    /// With an approximate index the log counts [`INDEX_REPLAY_WEIGHT`] times its size.
    pub checkpoint_wal_bytes: u64,
    /// Create the database if the directory holds none. Default true.
    pub create: bool,
    /// Open read-only, recovering the intact prefix and stopping at the first damage instead
    /// of failing (see [`crate::Engine::salvage_report`]). Changes no file.
    pub salvage: bool,
    /// A follower: it takes its leader's records ([`crate::Engine::apply_replica`]) and
    /// refuses commands of its own ([`crate::Error::ReadOnly`]), which would make it diverge.
    /// Default false.
    pub follower: bool,
    /// How many of the newest snapshots a checkpoint keeps, with every WAL segment after the
    /// oldest of them, so that past states stay reachable ([`crate::History`]). Default 1 (only
    /// the newest); 0 is taken as 1. Tags ([`crate::History::set_tag`]) pin older points too.
    pub retain_snapshots: u32,
    /// Checkpoints also keep every snapshot written within this long (by its file's
    /// modification time), with the log after it. Default `None`.
    pub retain_for: Option<std::time::Duration>,
    /// The approximate (HNSW) index: part of the database's configuration, kept in its
    /// snapshots. Creating a database with it indexes every record from the start; given for an
    /// existing database without one, the index is built over its records (in id order) and a
    /// snapshot written at once; given with other parameters than the database's, opening
    /// fails (`Mismatch`). `None` (the default) keeps whatever the database has.
    pub index: Option<IndexParams>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dim: None,
            metric: None,
            durability: Durability::Fsync,
            checkpoint_wal_bytes: 256 << 20,
            create: true,
            salvage: false,
            follower: false,
            retain_snapshots: 1,
            retain_for: None,
            index: None,
        }
    }
}

impl Options {
    /// Options to create (or open) a database of this dimension and metric.
    pub fn new(dim: u32, metric: Metric) -> Options {
        Options {
            dim: Some(dim),
            metric: Some(metric),
            ..Options::default()
        }
    }

    /// Sets the durability mode.
    pub fn durability(mut self, d: Durability) -> Options {
        self.durability = d;
        self
    }

    /// Sets the automatic checkpoint threshold (0 disables it).
    pub fn checkpoint_wal_bytes(mut self, bytes: u64) -> Options {
        self.checkpoint_wal_bytes = bytes;
        self
    }

    /// Sets how many snapshots (and the log after the oldest of them) checkpoints keep.
    pub fn retain_snapshots(mut self, n: u32) -> Options {
        self.retain_snapshots = n;
        self
    }

    /// Opens as a follower (see [`Options::follower`]).
    pub fn follower(mut self) -> Options {
        self.follower = true;
        self
    }

    /// Sets the approximate index's parameters.
    pub fn index(mut self, params: IndexParams) -> Options {
        self.index = Some(params);
        self
    }

    /// Sets how long checkpoints keep snapshots (and the log after them) at least.
    pub fn retain_for(mut self, d: std::time::Duration) -> Options {
        self.retain_for = Some(d);
        self
    }

    pub(crate) fn retention(&self) -> crate::directory::Retention {
        crate::directory::Retention {
            snapshots: self.retain_snapshots,
            within: self.retain_for,
            log_from: None,
        }
    }

    /// Options to open an existing database read-only for salvage.
    pub fn salvage() -> Options {
        Options {
            create: false,
            salvage: true,
            ..Options::default()
        }
    }
}
