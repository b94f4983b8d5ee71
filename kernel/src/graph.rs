//! The knowledge graph: nodes (optionally linked to a record) and directed edges.
//!
//! Cascades: deleting a node deletes every edge into or out of it; deleting a record deletes
//! the nodes linked to it (and so their edges). No command leaves a dangling reference.

use crate::config::MAX_LABEL_LEN;
use crate::error::{Error, Invalid, Object, Resource, Result};
use crate::fxp::Fxp;
use crate::state::{resolve_id, Kernel};
use crate::tables::{
    arena_push, arena_remove, full, Adj, EdgeSlot, NodeSlot, EDGE_HAS_WEIGHT, NODE_HAS_RECORD,
};

/// A node as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRef<'k> {
    /// Its id.
    pub id: u64,
    /// Application-defined kind.
    pub kind: u32,
    /// The linked record, if any.
    pub record: Option<u64>,
    /// Label bytes (empty if none).
    pub label: &'k [u8],
}

/// An edge as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// Its id.
    pub id: u64,
    /// Application-defined kind.
    pub kind: u32,
    /// Source node.
    pub from: u64,
    /// Target node.
    pub to: u64,
    /// Weight, if any.
    pub weight: Option<Fxp>,
}

/// Which edges a traversal follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From source to target.
    Outgoing,
    /// From target to source.
    Incoming,
    /// Both ways.
    Both,
}

impl Direction {
    /// The name the bindings use: `"out"`, `"in"` or `"both"`.
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Outgoing => "out",
            Direction::Incoming => "in",
            Direction::Both => "both",
        }
    }

    /// The direction of a [`Direction::name`].
    pub fn from_name(name: &str) -> Option<Direction> {
        [Direction::Outgoing, Direction::Incoming, Direction::Both]
            .into_iter()
            .find(|d| d.name() == name)
    }
}

/// A node reached by a traversal, `depth` edges from the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hop {
    /// Edges from the start node (1 for a direct neighbour).
    pub depth: u32,
    /// The node reached.
    pub node: u64,
}

/// Storage for one traversal result (see [`crate::HitSlot`] for the idea).
pub trait HopSlot: Copy {
    /// The hop stored here.
    fn hop(&self) -> Hop;
    /// Stores a hop.
    fn set_hop(&mut self, hop: Hop);
}

impl HopSlot for Hop {
    fn hop(&self) -> Hop {
        *self
    }
    fn set_hop(&mut self, hop: Hop) {
        *self = hop;
    }
}

fn edge_of(e: &EdgeSlot) -> Edge {
    Edge {
        id: e.id,
        kind: e.kind,
        from: e.from,
        to: e.to,
        weight: (e.flags & EDGE_HAS_WEIGHT != 0).then_some(Fxp(e.weight)),
    }
}

/// The entries of a sorted adjacency table whose node is `node`.
fn adj_range(adj: &[Adj], node: u64) -> &[Adj] {
    let lo = adj.partition_point(|a| a.node < node);
    let hi = adj.partition_point(|a| a.node <= node);
    adj.get(lo..hi).unwrap_or(&[])
}

impl<'m> Kernel<'m> {
    fn node_pos(&self, id: u64) -> core::result::Result<usize, usize> {
        self.nodes.as_slice().binary_search_by_key(&id, |n| n.id)
    }

    fn edge_pos(&self, id: u64) -> core::result::Result<usize, usize> {
        self.edges.as_slice().binary_search_by_key(&id, |e| e.id)
    }

    fn node_ref(&self, n: &NodeSlot) -> NodeRef<'_> {
        let off = n.label_off as usize;
        NodeRef {
            id: n.id,
            kind: n.kind,
            record: (n.flags & NODE_HAS_RECORD != 0).then_some(n.record),
            label: self
                .labels
                .as_slice()
                .get(off..off + n.label_len as usize)
                .unwrap_or(&[]),
        }
    }

    /// The node with this id.
    pub fn node(&self, id: u64) -> Option<NodeRef<'_>> {
        let pos = self.node_pos(id).ok()?;
        self.nodes.as_slice().get(pos).map(|n| self.node_ref(n))
    }

    /// All nodes in ascending id order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeRef<'_>> + '_ {
        self.nodes.as_slice().iter().map(move |n| self.node_ref(n))
    }

    /// The edge with this id.
    pub fn edge(&self, id: u64) -> Option<Edge> {
        let pos = self.edge_pos(id).ok()?;
        self.edges.as_slice().get(pos).map(edge_of)
    }

    /// All edges in ascending id order.
    pub fn edges(&self) -> impl Iterator<Item = Edge> + '_ {
        self.edges.as_slice().iter().map(edge_of)
    }

    /// Edges out of `node`, in ascending edge id order (empty for an unknown node).
    pub fn outgoing(&self, node: u64) -> impl Iterator<Item = Edge> + '_ {
        adj_range(self.out_adj.as_slice(), node)
            .iter()
            .filter_map(move |a| self.edge(a.edge))
    }

    /// Edges into `node`, in ascending edge id order (empty for an unknown node).
    pub fn incoming(&self, node: u64) -> impl Iterator<Item = Edge> + '_ {
        adj_range(self.in_adj.as_slice(), node)
            .iter()
            .filter_map(move |a| self.edge(a.edge))
    }

    /// Edges at `node` that `direction` follows: outgoing, incoming, or both (outgoing first),
    /// each in ascending edge id order. An unknown node is `NotFound`.
    pub fn neighbors(
        &self,
        node: u64,
        direction: Direction,
    ) -> Result<impl Iterator<Item = Edge> + '_> {
        if self.node(node).is_none() {
            return Err(Error::NotFound(Object::Node, node));
        }
        let outs =
            matches!(direction, Direction::Outgoing | Direction::Both).then(|| self.outgoing(node));
        let ins =
            matches!(direction, Direction::Incoming | Direction::Both).then(|| self.incoming(node));
        Ok(outs.into_iter().flatten().chain(ins.into_iter().flatten()))
    }

    /// The first node (lowest id) linked to `record`.
    pub(crate) fn nodes_linked_to(&self, record: u64) -> Option<u64> {
        self.nodes
            .as_slice()
            .iter()
            .find(|n| n.flags & NODE_HAS_RECORD != 0 && n.record == record)
            .map(|n| n.id)
    }

    pub(crate) fn create_node(
        &mut self,
        id: Option<u64>,
        kind: u32,
        record: Option<u64>,
        label: &[u8],
    ) -> Result<u64> {
        if label.len() > MAX_LABEL_LEN {
            return Err(Error::InvalidInput(Invalid::LabelTooLong {
                len: label.len() as u64,
            }));
        }
        let id = resolve_id(
            id,
            self.next_node,
            |i| self.node_pos(i).is_ok(),
            Object::Node,
        )?;
        if let Some(r) = record {
            if !self.contains(r) {
                return Err(Error::NotFound(Object::Record, r));
            }
        }
        self.nodes.reserve(1).map_err(full(Resource::Nodes))?;
        self.labels
            .reserve(label.len())
            .map_err(full(Resource::LabelBytes))?;
        let label_off = arena_push(&mut self.labels, label, Resource::LabelBytes)?;
        let pos = self.node_pos(id).unwrap_or_else(|p| p);
        self.nodes
            .insert(pos, NodeSlot::new(id, kind, record, label_off, label.len()))
            .map_err(full(Resource::Nodes))?;
        self.next_node = self.next_node.max(id + 1);
        Ok(id)
    }

    pub(crate) fn delete_node(&mut self, id: u64) -> Result<()> {
        if self.node_pos(id).is_err() {
            return Err(Error::NotFound(Object::Node, id));
        }
        while let Some(a) = adj_range(self.out_adj.as_slice(), id).first().copied() {
            self.delete_edge(a.edge)?;
        }
        while let Some(a) = adj_range(self.in_adj.as_slice(), id).first().copied() {
            self.delete_edge(a.edge)?;
        }
        let pos = self
            .node_pos(id)
            .map_err(|_| Error::NotFound(Object::Node, id))?;
        let (off, len) = self
            .nodes
            .as_slice()
            .get(pos)
            .map_or((0, 0), |n| (n.label_off, n.label_len));
        arena_remove(&mut self.labels, self.nodes.as_mut_slice(), off, len, |n| {
            &mut n.label_off
        });
        self.nodes.remove_range(pos, 1);
        Ok(())
    }

    pub(crate) fn create_edge(
        &mut self,
        id: Option<u64>,
        kind: u32,
        from: u64,
        to: u64,
        weight: Option<Fxp>,
    ) -> Result<u64> {
        let id = resolve_id(
            id,
            self.next_edge,
            |i| self.edge_pos(i).is_ok(),
            Object::Edge,
        )?;
        for n in [from, to] {
            if self.node_pos(n).is_err() {
                return Err(Error::NotFound(Object::Node, n));
            }
        }
        self.edges.reserve(1).map_err(full(Resource::Edges))?;
        self.out_adj.reserve(1).map_err(full(Resource::Edges))?;
        self.in_adj.reserve(1).map_err(full(Resource::Edges))?;
        let pos = self.edge_pos(id).unwrap_or_else(|p| p);
        self.edges
            .insert(
                pos,
                EdgeSlot {
                    id,
                    from,
                    to,
                    kind,
                    flags: if weight.is_some() { EDGE_HAS_WEIGHT } else { 0 },
                    weight: weight.map_or(0, |w| w.0),
                    _pad: 0,
                },
            )
            .map_err(full(Resource::Edges))?;
        for (adj, node) in [(&mut self.out_adj, from), (&mut self.in_adj, to)] {
            let entry = Adj { node, edge: id };
            let at = adj.as_slice().partition_point(|a| *a < entry);
            adj.insert(at, entry).map_err(full(Resource::Edges))?;
        }
        self.next_edge = self.next_edge.max(id + 1);
        Ok(id)
    }

    pub(crate) fn delete_edge(&mut self, id: u64) -> Result<()> {
        let pos = self
            .edge_pos(id)
            .map_err(|_| Error::NotFound(Object::Edge, id))?;
        let (from, to) = self
            .edges
            .as_slice()
            .get(pos)
            .map_or((0, 0), |e| (e.from, e.to));
        for (adj, node) in [(&mut self.out_adj, from), (&mut self.in_adj, to)] {
            if let Ok(at) = adj.as_slice().binary_search(&Adj { node, edge: id }) {
                adj.remove_range(at, 1);
            }
        }
        self.edges.remove_range(pos, 1);
        Ok(())
    }

    /// Nodes within `max_hops` edges of `start` (not counting `start`), following edges in
    /// `direction`, optionally only edges of kind `kind`. Written to `out` ordered by
    /// `(depth, node id)`, each node once at its smallest depth; returns how many.
    ///
    /// If the result does not fit `out`, returns `InsufficientSize` with exactly the number of
    /// nodes it holds, and `out` is not written. With room for every other node
    /// (`node_count() - 1`) the traversal runs in `out` and needs no other memory; with less
    /// it runs in scratch space: a growable build (feature `alloc`) allocates it, a build
    /// without an allocator returns `Full(Memory)` (pass the scratch to
    /// [`Kernel::traverse_with_scratch`]).
    pub fn traverse<S: HopSlot>(
        &self,
        start: u64,
        max_hops: u32,
        direction: Direction,
        kind: Option<u32>,
        out: &mut [S],
    ) -> Result<usize> {
        self.traverse_with_scratch(start, max_hops, direction, kind, out, &mut [] as &mut [Hop])
    }

    /// [`Kernel::traverse`], running in `scratch` when `out` has no room for every other node
    /// (`node_count() - 1`): give `scratch` that much room (its contents afterwards are
    /// unspecified). Without room in either, a growable build allocates and a build without
    /// an allocator returns `Full(Memory)`.
    pub fn traverse_with_scratch<S: HopSlot, T: HopSlot>(
        &self,
        start: u64,
        max_hops: u32,
        direction: Direction,
        kind: Option<u32>,
        out: &mut [S],
        scratch: &mut [T],
    ) -> Result<usize> {
        if self.node_pos(start).is_err() {
            return Err(Error::NotFound(Object::Node, start));
        }
        let walk = Walk {
            kernel: self,
            start,
            max_hops,
            direction,
            kind,
        };
        // Every node but `start` may be reached; with room for all of them a walk cannot run
        // out of room, so `out` is written only when the result is certain to fit.
        let room = self.node_count().saturating_sub(1);
        // The `ok_or`s below cannot fire: each walk has room for every node it can reach.
        let no_room = Error::Full(Resource::Memory);
        if out.len() >= room {
            return walk.run(out).ok_or(no_room);
        }
        if scratch.len() >= room {
            let n = walk.run(scratch).ok_or(no_room)?;
            return copy_hops(scratch.get(..n).unwrap_or(&[]), out);
        }
        #[cfg(feature = "alloc")]
        {
            let mut buf = alloc::vec::Vec::new();
            buf.try_reserve_exact(room).map_err(|_| no_room)?;
            buf.resize(room, Hop::default());
            let n = walk.run(&mut buf).ok_or(no_room)?;
            copy_hops(buf.get(..n).unwrap_or(&[]), out)
        }
        #[cfg(not(feature = "alloc"))]
        Err(no_room)
    }
}

/// Copies a finished traversal to the caller's buffer, or reports its exact size without
/// writing anything.
fn copy_hops<T: HopSlot, S: HopSlot>(hops: &[T], out: &mut [S]) -> Result<usize> {
    if hops.len() > out.len() {
        return Err(Error::InsufficientSize {
            needed: hops.len() as u64,
        });
    }
    for (slot, h) in out.iter_mut().zip(hops) {
        slot.set_hop(h.hop());
    }
    Ok(hops.len())
}

/// One traversal's parameters.
struct Walk<'k, 'm> {
    kernel: &'k Kernel<'m>,
    start: u64,
    max_hops: u32,
    direction: Direction,
    kind: Option<u32>,
}

impl Walk<'_, '_> {
    /// Breadth-first, level by level, in `buf`: each level is collected after the finished
    /// ones, then sorted and deduplicated (also whenever `buf` fills up mid-level). Returns
    /// the number of nodes found, or `None` if they do not fit `buf`.
    fn run<S: HopSlot>(&self, buf: &mut [S]) -> Option<usize> {
        let k = self.kernel;
        let mut len = 0usize;
        let mut prev_start = 0usize;
        for depth in 1..=self.max_hops {
            let level_start = len;
            let frontier_len = if depth == 1 {
                1
            } else {
                level_start - prev_start
            };
            for f in 0..frontier_len {
                let from = if depth == 1 {
                    self.start
                } else {
                    buf.get(prev_start + f)?.hop().node
                };
                let out_edges = match self.direction {
                    Direction::Incoming => &[][..],
                    _ => adj_range(k.out_adj.as_slice(), from),
                };
                let in_edges = match self.direction {
                    Direction::Outgoing => &[][..],
                    _ => adj_range(k.in_adj.as_slice(), from),
                };
                let steps = out_edges
                    .iter()
                    .map(|a| (a.edge, true))
                    .chain(in_edges.iter().map(|a| (a.edge, false)));
                for (edge, forward) in steps {
                    let Some(e) = k.edge(edge) else { continue };
                    if self.kind.is_some_and(|kind| kind != e.kind) {
                        continue;
                    }
                    let next = if forward { e.to } else { e.from };
                    if next == self.start || visited(buf, level_start, next) {
                        continue;
                    }
                    let hop = Hop { depth, node: next };
                    if len == buf.len() {
                        let level = buf.get_mut(level_start..len)?;
                        len = level_start + sort_dedup(level);
                        if len == buf.len() {
                            // Full of distinct nodes: `next` fits only if it is one of them.
                            let level = buf.get(level_start..len)?;
                            if level.binary_search_by(|h| h.hop().cmp(&hop)).is_ok() {
                                continue;
                            }
                            return None;
                        }
                    }
                    buf.get_mut(len)?.set_hop(hop);
                    len += 1;
                }
            }
            len = level_start + sort_dedup(buf.get_mut(level_start..len)?);
            if len == level_start {
                break;
            }
            prev_start = level_start;
        }
        Some(len)
    }
}

/// True when `node` is among the finished levels `out[..done]` (sorted by (depth, node)).
fn visited<S: HopSlot>(out: &[S], done: usize, node: u64) -> bool {
    let finished = out.get(..done).unwrap_or(&[]);
    let max_depth = finished.last().map_or(0, |h| h.hop().depth);
    (1..=max_depth).any(|d| {
        let want = Hop { depth: d, node };
        finished.binary_search_by(|h| h.hop().cmp(&want)).is_ok()
    })
}

/// Sorts and removes duplicates in place; returns the new length.
fn sort_dedup<S: HopSlot>(level: &mut [S]) -> usize {
    level.sort_unstable_by_key(S::hop);
    let mut w = 0usize;
    for r in 0..level.len() {
        let cur = level.get(r).map(S::hop);
        let keep = w == 0 || level.get(w - 1).map(S::hop) != cur;
        if keep {
            if let (Some(c), Some(slot)) = (cur, level.get_mut(w)) {
                slot.set_hop(c);
            }
            w += 1;
        }
    }
    w
}
