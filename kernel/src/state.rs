//! The kernel: records (vectors with tag and metadata) and a knowledge graph, changed only
//! by [`Kernel::apply`].
//!
//! Tables (all plain integers, so they can live in caller memory):
//! - `index`: `(id, row)` sorted by id: lookups and the canonical (id) order;
//! - `rows` + `vectors`: one row per record, vectors contiguous (`row * dim`), unordered
//!   (delete moves the last row into the hole), so a search scans memory linearly;
//! - `meta`, `labels`: byte arenas, compacted on removal;
//! - `nodes`, `edges`: sorted by id; `out_adj`/`in_adj`: `(node, edge)` sorted, for adjacency.

use crate::command::Command;
use crate::error::{Error, Invalid, Resource, Result};
use crate::memory::{self, Capacity};
use crate::slab::{NoRoom, Slab};
use crate::vectors;
use bytemuck::{Pod, Zeroable};

/// Largest supported dimension.
pub const MAX_DIM: u32 = 65_536;
/// Largest metadata per record, in bytes.
pub const MAX_META_LEN: usize = 65_536;
/// Largest label per node, in bytes.
pub const MAX_LABEL_LEN: usize = 4_096;

/// How distances are measured. Part of the state (hashed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Metric {
    /// Squared Euclidean distance.
    L2 = 0,
    /// Negated inner product (larger products rank first).
    InnerProduct = 1,
    /// One minus cosine similarity; stored vectors are normalised on insert.
    Cosine = 2,
}

impl Metric {
    /// The metric with encoding byte `b`.
    pub fn from_u8(b: u8) -> Option<Metric> {
        match b {
            0 => Some(Metric::L2),
            1 => Some(Metric::InnerProduct),
            2 => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// A distance of this metric as a real number (for display at the edge only).
    pub fn distance_to_f64(self, distance: i128) -> f64 {
        distance as f64 / 4_294_967_296.0
    }
}

/// What a kernel holds: its dimension and metric. Part of the state (hashed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Components per vector, `1..=MAX_DIM`.
    pub dim: u32,
    /// Distance metric.
    pub metric: Metric,
}

impl Config {
    /// A configuration; checks the dimension.
    pub fn new(dim: u32, metric: Metric) -> Result<Config> {
        if dim == 0 || dim > MAX_DIM {
            return Err(Error::InvalidInput(Invalid::BadDimension {
                dim: u64::from(dim),
            }));
        }
        Ok(Config { dim, metric })
    }
}

/// What a successful command produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The id of the created record, node or edge.
    Created(u64),
    /// A batch: `count` records; with automatic ids they are `first_id..first_id + count`.
    Batch {
        /// The first record's id.
        first_id: u64,
        /// Records inserted.
        count: u64,
    },
    /// A delete or update took effect.
    Done,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, Pod, Zeroable)]
pub(crate) struct IndexEntry {
    pub(crate) id: u64,
    pub(crate) row: u64,
}

pub(crate) const ROW_HAS_TAG: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, Pod, Zeroable)]
pub(crate) struct Row {
    pub(crate) id: u64,
    pub(crate) tag: u64,
    pub(crate) meta_off: u64,
    pub(crate) meta_len: u32,
    pub(crate) flags: u32,
}

impl Row {
    pub(crate) fn new(id: u64, tag: Option<u64>, meta_off: u64, meta_len: usize) -> Row {
        Row {
            id,
            tag: tag.unwrap_or(0),
            meta_off,
            meta_len: meta_len as u32,
            flags: if tag.is_some() { ROW_HAS_TAG } else { 0 },
        }
    }
}

pub(crate) const NODE_HAS_RECORD: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, Pod, Zeroable)]
pub(crate) struct NodeSlot {
    pub(crate) id: u64,
    pub(crate) record: u64,
    pub(crate) label_off: u64,
    pub(crate) kind: u32,
    pub(crate) flags: u32,
    pub(crate) label_len: u32,
    pub(crate) _pad: u32,
}

impl NodeSlot {
    pub(crate) fn new(
        id: u64,
        kind: u32,
        record: Option<u64>,
        label_off: u64,
        label_len: usize,
    ) -> NodeSlot {
        NodeSlot {
            id,
            record: record.unwrap_or(0),
            label_off,
            kind,
            flags: if record.is_some() { NODE_HAS_RECORD } else { 0 },
            label_len: label_len as u32,
            _pad: 0,
        }
    }
}

pub(crate) const EDGE_HAS_WEIGHT: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, Pod, Zeroable)]
pub(crate) struct EdgeSlot {
    pub(crate) id: u64,
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) kind: u32,
    pub(crate) flags: u32,
    pub(crate) weight: i32,
    pub(crate) _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, PartialOrd, Ord, Pod, Zeroable)]
pub(crate) struct Adj {
    pub(crate) node: u64,
    pub(crate) edge: u64,
}

/// The deterministic state machine. `'m` is the lifetime of caller-provided memory
/// (`'static` for a growable kernel).
pub struct Kernel<'m> {
    pub(crate) config: Config,
    pub(crate) next_record: u64,
    pub(crate) next_node: u64,
    pub(crate) next_edge: u64,
    pub(crate) index: Slab<'m, IndexEntry>,
    pub(crate) rows: Slab<'m, Row>,
    /// Row `r`'s vector; also tracks an upper bound of |component| over every vector ever
    /// stored (derived, not state) that lets search prove its narrow integer paths exact.
    pub(crate) vectors: vectors::Vectors<'m>,
    pub(crate) meta: Slab<'m, u8>,
    pub(crate) nodes: Slab<'m, NodeSlot>,
    pub(crate) labels: Slab<'m, u8>,
    pub(crate) edges: Slab<'m, EdgeSlot>,
    pub(crate) out_adj: Slab<'m, Adj>,
    pub(crate) in_adj: Slab<'m, Adj>,
}

impl core::fmt::Debug for Kernel<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernel")
            .field("config", &self.config)
            .field("records", &self.len())
            .field("nodes", &self.node_count())
            .field("edges", &self.edge_count())
            .finish()
    }
}

#[cfg(feature = "alloc")]
impl Kernel<'static> {
    /// An empty growable kernel (needs feature `alloc`).
    pub fn new(config: Config) -> Result<Kernel<'static>> {
        let config = Config::new(config.dim, config.metric)?;
        Ok(Kernel {
            config,
            next_record: 0,
            next_node: 0,
            next_edge: 0,
            index: Slab::growable(),
            rows: Slab::growable(),
            vectors: vectors::Vectors::new(Slab::growable(), config.dim as usize),
            meta: Slab::growable(),
            nodes: Slab::growable(),
            labels: Slab::growable(),
            edges: Slab::growable(),
            out_adj: Slab::growable(),
            in_adj: Slab::growable(),
        })
    }
}

/// Maps a table's lack of room to the resource a user can act on.
pub(crate) fn full(r: Resource) -> impl Fn(NoRoom) -> Error {
    move |_| Error::Full(r)
}

impl<'m> Kernel<'m> {
    /// Bytes of caller memory a kernel with this configuration and capacity needs (including
    /// worst-case alignment padding), or `None` if it does not fit `usize` or the dimension is
    /// invalid.
    pub fn mem_size(config: Config, cap: Capacity) -> Option<usize> {
        memory::mem_size(config, cap)
    }

    /// An empty kernel whose tables are carved from `mem` (no allocator). A buffer smaller than
    /// [`Kernel::mem_size`] is an `InsufficientSize` error naming the size needed.
    pub fn with_memory(config: Config, cap: Capacity, mem: &'m mut [u8]) -> Result<Kernel<'m>> {
        let config = Config::new(config.dim, config.metric)?;
        memory::carve(config, cap, mem)
    }

    /// The dimension and metric.
    pub fn config(&self) -> Config {
        self.config
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// Number of graph nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of graph edges.
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// The id the next record inserted without an id will get.
    pub fn next_record_id(&self) -> u64 {
        self.next_record
    }

    /// Applies a command: the only way state changes. On error nothing has changed.
    pub fn apply(&mut self, cmd: &Command<'_>) -> Result<Applied> {
        match *cmd {
            Command::Insert {
                id,
                tag,
                vector,
                meta,
            } => self.insert(id, tag, vector, meta).map(Applied::Created),
            Command::InsertBatch { ids, tags, vectors } => self.insert_batch(ids, tags, vectors),
            Command::Delete { id } => self.delete(id).map(|()| Applied::Done),
            Command::SetMeta { id, meta } => self.set_meta(id, meta).map(|()| Applied::Done),
            Command::SetTag { id, tag } => self.set_tag(id, tag).map(|()| Applied::Done),
            Command::CreateNode {
                id,
                kind,
                record,
                label,
            } => self
                .create_node(id, kind, record, label)
                .map(Applied::Created),
            Command::DeleteNode { id } => self.delete_node(id).map(|()| Applied::Done),
            Command::CreateEdge {
                id,
                kind,
                from,
                to,
                weight,
            } => self
                .create_edge(id, kind, from, to, weight)
                .map(Applied::Created),
            Command::DeleteEdge { id } => self.delete_edge(id).map(|()| Applied::Done),
        }
    }
}

/// Picks the id for a new object: the caller's (not reserved, not in use) or the next
/// automatic one (`u64::MAX` is reserved, so the counter never overflows).
pub(crate) fn resolve_id(
    requested: Option<u64>,
    next: u64,
    exists: impl Fn(u64) -> bool,
    object: crate::error::Object,
) -> Result<u64> {
    match requested {
        Some(u64::MAX) => Err(Error::InvalidInput(Invalid::ReservedId)),
        Some(id) if exists(id) => Err(Error::Exists(object, id)),
        Some(id) => Ok(id),
        None if next == u64::MAX => Err(Error::Full(Resource::Ids)),
        None => Ok(next),
    }
}

/// Appends bytes to an arena (reserving first, so a failure changes nothing); returns their
/// offset.
pub(crate) fn arena_push(arena: &mut Slab<'_, u8>, bytes: &[u8], r: Resource) -> Result<u64> {
    arena.reserve(bytes.len()).map_err(full(r))?;
    let off = arena.len() as u64;
    arena.extend(bytes.iter().copied()).map_err(full(r))?;
    Ok(off)
}

/// Removes `len` bytes at `off` from an arena and shifts the offsets of every later entry.
pub(crate) fn arena_remove<T>(
    arena: &mut Slab<'_, u8>,
    owners: &mut [T],
    off: u64,
    len: u32,
    offset_of: impl Fn(&mut T) -> &mut u64,
) {
    if len == 0 {
        return;
    }
    arena.remove_range(off as usize, len as usize);
    for o in owners.iter_mut() {
        let p = offset_of(o);
        if *p > off {
            *p -= u64::from(len);
        }
    }
}
