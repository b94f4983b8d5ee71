//! # valori-kernel
//!
//! The deterministic state machine at the heart of Valori: fixed-point (Q16.16) vectors and a
//! knowledge graph, changed only by [`Kernel::apply`] with a [`Command`], hashed with BLAKE3
//! over a canonical little-endian encoding. The same commands give the same
//! [`Kernel::state_hash`] on every CPU (x86, ARM, big-endian, WASM, Cortex-M).
//!
//! `no_std`. With default features off the kernel needs no allocator: its tables are carved
//! from memory the caller provides ([`Kernel::with_memory`], sized by [`Kernel::mem_size`]).
//! Feature `alloc` adds a growable kernel ([`Kernel::new`]); `std` (default) adds
//! `std::error::Error`. Both kinds give the same hash for the same commands.
//!
//! ```
//! use valori_kernel::{Command, Config, Fxp, Kernel, Metric};
//!
//! let mut k = Kernel::new(Config::new(2, Metric::L2)?)?;
//! let v = [Fxp::from_f32(1.0, 0)?, Fxp::from_f32(0.5, 1)?];
//! k.apply(&Command::Insert { id: None, tag: Some(7), vector: v[..].into(), meta: b"hello" })?;
//! let hits = k.search_vec(&v, 10, None)?;
//! assert_eq!(hits[0].id, 0);
//! assert_eq!(hits[0].distance, 0);
//! println!("{:02x?}", k.state_hash());
//! # Ok::<(), valori_kernel::Error>(())
//! ```
//!
//! The byte layout of the encoding and the hash are specified in `docs/FORMAT.md`; the
//! determinism rules in `docs/DETERMINISM.md`.

#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod codec;
mod command;
mod config;
mod error;
pub mod fxp;
mod graph;
mod hash;
#[cfg(feature = "alloc")]
mod hnsw;
mod memory;
mod records;
mod search;
// Public only for kernel/tests/simd.rs and the benches (SIMD == scalar, kernel timings): not API.
#[doc(hidden)]
pub mod simd;
mod slab;
mod snapshot;
mod state;
mod tables;
mod vectors;

pub use codec::{Sink, ENCODING_HEADER_LEN, FORMAT_VERSION, MAGIC, STATE_HASH_DOMAIN};
pub use command::{
    Command, Ids, LeBytes, Vector, Word, Words, WordsIter, COMMAND_NAMES, COMMAND_NAMES_C,
};
pub use config::{Config, Metric, MAX_DIM, MAX_LABEL_LEN, MAX_META_LEN};
pub use error::{Error, ErrorCode, Invalid, Object, Resource, Result};
pub use fxp::Fxp;
pub use graph::{Direction, Edge, Hop, HopSlot, NodeRef};
#[cfg(feature = "alloc")]
pub use hnsw::{
    level_of, IndexParams, INDEX_HASH_DOMAIN, INDEX_MAGIC, INDEX_VERSION, MAX_EF, MAX_LEVEL, MAX_M,
};
pub use memory::Capacity;
pub use records::RecordRef;
#[cfg(feature = "alloc")]
pub use search::SearchOptions;
pub use search::{Hit, HitSlot};
pub use snapshot::{SNAPSHOT_MAGIC, SNAPSHOT_OVERHEAD, SNAPSHOT_VERSION};
#[cfg(feature = "alloc")]
pub use state::Bounds;
pub use state::{Applied, Kernel};
pub use vectors::{VectorIter, VectorRef};
