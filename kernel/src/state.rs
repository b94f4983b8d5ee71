//! The kernel: records (vectors with tag and metadata) and a knowledge graph, held in plain
//! integer tables (`tables.rs`) and changed only by [`Kernel::apply`].

use crate::command::Command;
use crate::config::Config;
use crate::error::{Error, Invalid, Resource, Result};
use crate::memory::{self, Capacity};
use crate::slab::Slab;
use crate::tables::{Adj, EdgeSlot, IndexEntry, NodeSlot, Row};
use crate::vectors;

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
    /// How far a growable kernel may grow (not state: neither encoded nor hashed).
    #[cfg(feature = "alloc")]
    pub(crate) bounds: Bounds,
    /// The approximate index, if one is configured (not state: neither encoded nor hashed;
    /// it has its own encoding and hash).
    #[cfg(feature = "alloc")]
    pub(crate) ann: Option<alloc::boxed::Box<crate::hnsw::Hnsw>>,
}

/// Upper bounds for a growable kernel, checked before a command changes anything (a kernel in
/// caller memory is bounded by its [`Capacity`](crate::Capacity) instead). `None` is
/// unbounded. Not part of the state: neither encoded nor hashed, and a restored kernel has
/// none until they are set again.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Most records.
    pub records: Option<u64>,
    /// Most graph nodes.
    pub nodes: Option<u64>,
    /// Most graph edges.
    pub edges: Option<u64>,
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
            bounds: Bounds::default(),
            ann: None,
        })
    }

    /// Sets how far this kernel may grow: a command that would exceed a bound fails with
    /// [`Error::Full`](crate::Error::Full) and changes nothing.
    pub fn set_bounds(&mut self, bounds: Bounds) {
        self.bounds = bounds;
    }

    /// The bounds set with [`Kernel::set_bounds`].
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }
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
    // On bare metal, inlined into each caller: a caller that builds one kind of command (the
    // C API's insert, say) then links only that kind's code, not every command's.
    #[cfg_attr(not(feature = "std"), inline(always))]
    pub fn apply(&mut self, cmd: &Command<'_>) -> Result<Applied> {
        #[cfg(feature = "alloc")]
        self.check_bounds(cmd)?;
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

    /// Refuses a command that would grow the kernel past its [`Bounds`].
    #[cfg(feature = "alloc")]
    fn check_bounds(&self, cmd: &Command<'_>) -> Result<()> {
        let (bound, have, add, what) = match cmd {
            Command::Insert { .. } => (self.bounds.records, self.len(), 1, Resource::Records),
            Command::InsertBatch { vectors, .. } => (
                self.bounds.records,
                self.len(),
                vectors.len() / (self.config.dim as usize).max(1),
                Resource::Records,
            ),
            Command::CreateNode { .. } => {
                (self.bounds.nodes, self.node_count(), 1, Resource::Nodes)
            }
            Command::CreateEdge { .. } => {
                (self.bounds.edges, self.edge_count(), 1, Resource::Edges)
            }
            _ => return Ok(()),
        };
        match bound {
            Some(max) if have as u64 + add as u64 > max => Err(Error::Full(what)),
            _ => Ok(()),
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
