//! Carving a kernel's tables out of one caller-provided byte buffer (the embedded path).

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fxp::Fxp;
use crate::slab::Slab;
use crate::state::Kernel;
use crate::tables::{Adj, EdgeSlot, IndexEntry, NodeSlot, Row};
use bytemuck::Pod;
use core::mem::{align_of, size_of};

/// Fixed capacities of a kernel in caller memory. Not part of the state: kernels with
/// different capacities that applied the same commands have the same hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Capacity {
    /// Records.
    pub records: u32,
    /// Graph nodes.
    pub nodes: u32,
    /// Graph edges.
    pub edges: u32,
    /// Total bytes of record metadata.
    pub meta_bytes: u32,
    /// Total bytes of node labels.
    pub label_bytes: u32,
}

fn section<T>(n: u64) -> Option<u64> {
    n.checked_mul(size_of::<T>() as u64)?
        .checked_add(align_of::<T>() as u64 - 1)
}

pub(crate) fn mem_size(config: Config, cap: Capacity) -> Option<usize> {
    let config = Config::new(config.dim, config.metric).ok()?;
    let r = u64::from(cap.records);
    let e = u64::from(cap.edges);
    let total = [
        section::<IndexEntry>(r)?,
        section::<Row>(r)?,
        section::<Fxp>(r.checked_mul(u64::from(config.dim))?)?,
        section::<u8>(u64::from(cap.meta_bytes))?,
        section::<NodeSlot>(u64::from(cap.nodes))?,
        section::<u8>(u64::from(cap.label_bytes))?,
        section::<EdgeSlot>(e)?,
        section::<Adj>(e)?,
        section::<Adj>(e)?,
    ]
    .iter()
    .try_fold(0u64, |acc, s| acc.checked_add(*s))?;
    usize::try_from(total).ok()
}

/// Takes an aligned table of `n` elements from the front of `buf`.
fn take<'m, T: Pod>(buf: &mut &'m mut [u8], n: u64) -> Option<&'m mut [T]> {
    let b = core::mem::take(buf);
    let pad = b.as_ptr().align_offset(align_of::<T>());
    if pad > b.len() {
        return None;
    }
    let (_, rest) = b.split_at_mut(pad);
    let bytes = usize::try_from(n).ok()?.checked_mul(size_of::<T>())?;
    if bytes > rest.len() {
        return None;
    }
    let (mine, rest) = rest.split_at_mut(bytes);
    *buf = rest;
    bytemuck::try_cast_slice_mut(mine).ok()
}

pub(crate) fn carve(config: Config, cap: Capacity, mem: &mut [u8]) -> Result<Kernel<'_>> {
    let needed = mem_size(config, cap).ok_or(Error::InsufficientSize { needed: u64::MAX })?;
    if mem.len() < needed {
        return Err(Error::InsufficientSize {
            needed: needed as u64,
        });
    }
    let mut buf = mem;
    let vec_words = u64::from(cap.records) * u64::from(config.dim);
    // mem_size counted every table with worst-case padding, so each take succeeds.
    let short = Error::InsufficientSize {
        needed: needed as u64,
    };
    let index = take::<IndexEntry>(&mut buf, u64::from(cap.records)).ok_or(short)?;
    let rows = take::<Row>(&mut buf, u64::from(cap.records)).ok_or(short)?;
    let vectors = take::<Fxp>(&mut buf, vec_words).ok_or(short)?;
    let meta = take::<u8>(&mut buf, u64::from(cap.meta_bytes)).ok_or(short)?;
    let nodes = take::<NodeSlot>(&mut buf, u64::from(cap.nodes)).ok_or(short)?;
    let labels = take::<u8>(&mut buf, u64::from(cap.label_bytes)).ok_or(short)?;
    let edges = take::<EdgeSlot>(&mut buf, u64::from(cap.edges)).ok_or(short)?;
    let out_adj = take::<Adj>(&mut buf, u64::from(cap.edges)).ok_or(short)?;
    let in_adj = take::<Adj>(&mut buf, u64::from(cap.edges)).ok_or(short)?;
    Ok(Kernel {
        config,
        next_record: 0,
        next_node: 0,
        next_edge: 0,
        index: Slab::fixed(index),
        rows: Slab::fixed(rows),
        vectors: crate::vectors::Vectors::new(Slab::fixed(vectors), config.dim as usize),
        meta: Slab::fixed(meta),
        nodes: Slab::fixed(nodes),
        labels: Slab::fixed(labels),
        edges: Slab::fixed(edges),
        out_adj: Slab::fixed(out_adj),
        in_adj: Slab::fixed(in_adj),
        #[cfg(feature = "alloc")]
        bounds: crate::Bounds::default(),
        #[cfg(feature = "alloc")]
        ann: None,
    })
}
