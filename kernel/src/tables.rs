//! The tables a kernel's state lives in, and the arena helpers over them.
//!
//! Tables (all plain integers, so they can live in caller memory):
//! - `index`: `(id, row)` sorted by id: lookups and the canonical (id) order;
//! - `rows` + `vectors`: one row per record, vectors contiguous (`row * dim`), unordered
//!   (delete moves the last row into the hole), so a search scans memory linearly;
//! - `meta`, `labels`: byte arenas, compacted on removal;
//! - `nodes`, `edges`: sorted by id; `out_adj`/`in_adj`: `(node, edge)` sorted, for adjacency.

use crate::error::{Error, Resource, Result};
use crate::slab::{NoRoom, Slab};
use bytemuck::{Pod, Zeroable};

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

/// Maps a table's lack of room to the resource a user can act on.
pub(crate) fn full(r: Resource) -> impl Fn(NoRoom) -> Error {
    move |_| Error::Full(r)
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
