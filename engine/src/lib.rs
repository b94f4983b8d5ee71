//! # valori-engine
//!
//! The durable Valori database: a [`valori_kernel::Kernel`] behind a write-ahead log and
//! atomic snapshots, with crash recovery that never loses an acknowledged command and never
//! silently drops damaged data.
//!
//! ```
//! use valori_engine::{Engine, Options};
//! use valori_kernel::Metric;
//!
//! let dir = std::env::temp_dir().join(format!("valori-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let db = Engine::open(&dir, Options::new(3, Metric::L2))?;
//! let id = db.insert(&[0.5, 1.0, -2.0], Some(7), b"first memory")?;
//! let ids = db.insert_batch(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], &[])?; // two rows, one record
//! let hits = db.search(&[0.5, 1.0, -2.0], 2, None)?;
//! assert_eq!(hits[0].id, id);
//! let hash = db.state_hash()?;
//! db.close()?;
//!
//! let db = Engine::open(&dir, Options::default())?; // recovers from snapshot + WAL
//! assert_eq!(db.state_hash()?, hash);
//! assert_eq!(db.len()?, 1 + ids.count());
//! # drop(db); std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), valori_engine::Error>(())
//! ```
//!
//! Files, formats, the recovery algorithm and what each durability mode survives:
//! `docs/FORMAT.md` §7–11.

#![forbid(unsafe_code)]

mod directory;
mod engine;
mod error;
mod export;
mod history;
mod options;
mod pin;
mod recovery;
pub mod sim;
pub mod snapshot;
mod storage;
pub mod wal;

pub use directory::{HistoryTag, LOCK_NAME, MAX_TAG_NAME, TAGS_NAME};
pub use engine::{
    DurableListener, Engine, Record, ReplicaApplied, SnapshotReceiver, Stats, REPLICA_STREAM,
};
pub use error::{Error, Hint, Result};
pub use export::{replay_export, replay_into, Export, ExportReader, EXPORT_MAGIC, EXPORT_VERSION};
pub use history::{decode_entry, Files, History, LogEntry, Span, Verified};
pub use options::{Durability, Options, INDEX_REPLAY_WEIGHT};
pub use pin::LogPin;
pub use recovery::{RecoveryReport, SalvageReport, TornTail};
pub use snapshot::decode_file as decode_snapshot;
pub use storage::{FsStorage, LockGuard, Storage, StorageFile};
pub use valori_kernel;

/// The README's Rust examples, compiled and run as doc tests so they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
