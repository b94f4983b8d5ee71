//! Records: vectors with an optional tag and metadata.

use crate::command::{Ids, Vector};
use crate::config::MAX_META_LEN;
use crate::error::{Error, Invalid, Object, Resource, Result};
use crate::fxp::{self, Fxp};
use crate::state::{resolve_id, Applied, Kernel};
use crate::tables::{arena_push, arena_remove, full, IndexEntry, Row, ROW_HAS_TAG};
use crate::vectors::VectorRef;

/// A record as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'k> {
    /// Its id.
    pub id: u64,
    /// Its tag, if any.
    pub tag: Option<u64>,
    /// Its metadata (empty if none).
    pub meta: &'k [u8],
    /// Its vector (normalised, under the cosine metric).
    pub vector: VectorRef<'k>,
}

impl<'m> Kernel<'m> {
    /// Position of `id` in the index, or where it would go.
    pub(crate) fn index_pos(&self, id: u64) -> core::result::Result<usize, usize> {
        self.index.as_slice().binary_search_by_key(&id, |e| e.id)
    }

    fn row_of(&self, id: u64) -> Result<usize> {
        self.index_pos(id)
            .ok()
            .and_then(|p| self.index.as_slice().get(p))
            .map(|e| e.row as usize)
            .ok_or(Error::NotFound(Object::Record, id))
    }

    fn row_ref(&self, row: usize) -> Option<RecordRef<'_>> {
        let r = self.rows.as_slice().get(row)?;
        let vector = self.vectors.row(row)?;
        let meta = self
            .meta
            .as_slice()
            .get(r.meta_off as usize..r.meta_off as usize + r.meta_len as usize)?;
        Some(RecordRef {
            id: r.id,
            tag: (r.flags & ROW_HAS_TAG != 0).then_some(r.tag),
            meta,
            vector,
        })
    }

    /// The record with this id.
    pub fn get(&self, id: u64) -> Option<RecordRef<'_>> {
        self.row_ref(self.row_of(id).ok()?)
    }

    /// True when a record with this id exists.
    pub fn contains(&self, id: u64) -> bool {
        self.index_pos(id).is_ok()
    }

    /// All records in ascending id order.
    pub fn records(&self) -> impl Iterator<Item = RecordRef<'_>> + '_ {
        self.index
            .as_slice()
            .iter()
            .filter_map(move |e| self.row_ref(e.row as usize))
    }

    fn check_vector(&self, v: &Vector<'_>) -> Result<()> {
        if v.len() != self.config.dim as usize {
            return Err(Error::Dimension {
                expected: self.config.dim,
                got: v.len() as u64,
            });
        }
        if self.config.metric.is_cosine() && v.iter().all(|x| x.0 == 0) {
            return Err(Error::InvalidInput(Invalid::ZeroVector));
        }
        Ok(())
    }

    /// Largest |component| of `v` as it would be stored (after normalisation under cosine).
    fn stored_max(&self, v: &Vector<'_>) -> Result<u32> {
        // In blocks through a buffer: a loop the compiler vectorises (replay's hot path).
        let mut buf = [Fxp(0); crate::vectors::STAGE];
        let (mut m, mut at) = (0u32, 0);
        loop {
            let n = v.copy_values(at, &mut buf);
            if n == 0 {
                break;
            }
            let part = buf.get(..n).unwrap_or(&[]);
            m = part.iter().fold(m, |m, x| m.max(x.0.unsigned_abs()));
            at += n;
        }
        if self.config.metric.is_cosine() {
            let r = fxp::unit_divisor(v.iter())?;
            // m <= sqrt(sum): the quotient is at most 2^16 + 1.
            Ok(fxp::div_round(i128::from(m) << 32, r).unsigned_abs() as u32)
        } else {
            Ok(m)
        }
    }

    /// Appends a row whose vector, tag and metadata fit (space reserved by the caller).
    fn push_row(
        &mut self,
        id: u64,
        tag: Option<u64>,
        vector: Vector<'_>,
        meta: &[u8],
    ) -> Result<()> {
        let row = self.rows.len();
        if self.config.metric.is_cosine() {
            let r = fxp::unit_divisor(vector.iter())?;
            self.vectors
                .push(vector.iter().map(|x| fxp::to_unit(x, r)))
                .map_err(full(Resource::Records))?;
        } else {
            self.vectors
                .push_words(&vector)
                .map_err(full(Resource::Records))?;
        }
        let meta_off = arena_push(&mut self.meta, meta, Resource::MetadataBytes)?;
        self.rows
            .push(Row::new(id, tag, meta_off, meta.len()))
            .map_err(full(Resource::Records))?;
        let pos = self.index_pos(id).unwrap_or_else(|p| p);
        self.index
            .insert(
                pos,
                IndexEntry {
                    id,
                    row: row as u64,
                },
            )
            .map_err(full(Resource::Records))?;
        self.next_record = self.next_record.max(id + 1);
        #[cfg(feature = "alloc")]
        if let Some(ann) = self.ann.as_mut() {
            let space = crate::hnsw::Space::new(&self.vectors, self.config.metric);
            ann.insert(id, row as u32, &space);
        }
        Ok(())
    }

    pub(crate) fn insert(
        &mut self,
        id: Option<u64>,
        tag: Option<u64>,
        vector: Vector<'_>,
        meta: &[u8],
    ) -> Result<u64> {
        self.check_vector(&vector)?;
        if meta.len() > MAX_META_LEN {
            return Err(Error::InvalidInput(Invalid::MetadataTooLong {
                len: meta.len() as u64,
            }));
        }
        let id = resolve_id(id, self.next_record, |i| self.contains(i), Object::Record)?;
        let max = self.stored_max(&vector)?;
        self.reserve_records(1, max)?;
        self.meta
            .reserve(meta.len())
            .map_err(full(Resource::MetadataBytes))?;
        self.push_row(id, tag, vector, meta)?;
        Ok(id)
    }

    /// Room for `n` records whose largest stored |component| is `max`.
    fn reserve_records(&mut self, n: usize, max: u32) -> Result<()> {
        #[cfg(feature = "alloc")]
        if let Some(ann) = self.ann.as_mut() {
            ann.reserve(n).map_err(|()| Error::Full(Resource::Memory))?;
        }
        self.index.reserve(n).map_err(full(Resource::Records))?;
        self.rows.reserve(n).map_err(full(Resource::Records))?;
        self.vectors
            .reserve(n, max)
            .map_err(full(Resource::Records))
    }

    pub(crate) fn insert_batch(
        &mut self,
        ids: Ids<'_>,
        tags: Ids<'_>,
        vectors: Vector<'_>,
    ) -> Result<Applied> {
        let dim = self.config.dim as usize;
        if !vectors.len().is_multiple_of(dim) {
            return Err(Error::Dimension {
                expected: self.config.dim,
                got: vectors.len() as u64,
            });
        }
        let n = vectors.len() / dim;
        if n == 0 || !(ids.is_empty() || ids.len() == n) || !(tags.is_empty() || tags.len() == n) {
            return Err(Error::InvalidInput(Invalid::BatchShape));
        }
        let mut max = 0;
        for i in 0..n {
            let v = vectors.slice(i * dim, dim);
            self.check_vector(&v)?;
            max = max.max(self.stored_max(&v)?);
        }
        self.reserve_records(n, max)?;
        let first_id = if ids.is_empty() {
            // n automatic ids next..next + n - 1, all below the reserved u64::MAX.
            if (n as u64) > u64::MAX - self.next_record {
                return Err(Error::Full(Resource::Ids));
            }
            self.next_record
        } else {
            self.check_batch_ids(ids)?;
            ids.get(0).unwrap_or(0)
        };
        for i in 0..n {
            // Lazily: with explicit ids `first_id + i` can overflow, and is not used.
            let id = ids.get(i).unwrap_or_else(|| first_id + i as u64);
            self.push_row(id, tags.get(i), vectors.slice(i * dim, dim), &[])?;
        }
        Ok(Applied::Batch {
            first_id,
            count: n as u64,
        })
    }

    /// Explicit batch ids: none reserved, none in use, none repeated. The repeat check sorts a
    /// copy in the index's reserved spare space, so it needs no allocator.
    fn check_batch_ids(&mut self, ids: Ids<'_>) -> Result<()> {
        for id in ids.iter() {
            if id == u64::MAX {
                return Err(Error::InvalidInput(Invalid::ReservedId));
            }
            if self.contains(id) {
                return Err(Error::Exists(Object::Record, id));
            }
        }
        let repeated = self
            .index
            .with_scratch(ids.len(), |scratch| {
                for (slot, id) in scratch.iter_mut().zip(ids.iter()) {
                    slot.id = id;
                }
                scratch.sort_unstable_by_key(|e| e.id);
                scratch.windows(2).find_map(|w| match w {
                    [a, b] if a.id == b.id => Some(a.id),
                    _ => None,
                })
            })
            .map_err(full(Resource::Records))?;
        match repeated {
            Some(id) => Err(Error::InvalidInput(Invalid::DuplicateInBatch { id })),
            None => Ok(()),
        }
    }

    pub(crate) fn delete(&mut self, id: u64) -> Result<()> {
        let pos = self
            .index_pos(id)
            .map_err(|_| Error::NotFound(Object::Record, id))?;
        // Cascade: nodes linked to the record go, with their edges.
        while let Some(node) = self.nodes_linked_to(id) {
            self.delete_node(node)?;
        }
        let row = self.index.as_slice().get(pos).map_or(0, |e| e.row as usize);
        let (meta_off, meta_len) = self
            .rows
            .as_slice()
            .get(row)
            .map_or((0, 0), |r| (r.meta_off, r.meta_len));
        arena_remove(
            &mut self.meta,
            self.rows.as_mut_slice(),
            meta_off,
            meta_len,
            |r| &mut r.meta_off,
        );
        let last = self.rows.len() - 1;
        #[cfg(feature = "alloc")]
        if let Some(ann) = self.ann.as_mut() {
            let space = crate::hnsw::Space::new(&self.vectors, self.config.metric);
            ann.remove(row, &space);
            ann.row_moved(row, last);
        }
        if row != last {
            let moved = self.rows.as_slice().get(last).map_or(0, |r| r.id);
            if let Ok(p) = self.index_pos(moved) {
                if let Some(e) = self.index.as_mut_slice().get_mut(p) {
                    e.row = row as u64;
                }
            }
        }
        self.rows.swap_remove_chunk(row, 1);
        self.vectors.swap_remove(row);
        self.index.remove_range(pos, 1);
        Ok(())
    }

    pub(crate) fn set_meta(&mut self, id: u64, meta: &[u8]) -> Result<()> {
        if meta.len() > MAX_META_LEN {
            return Err(Error::InvalidInput(Invalid::MetadataTooLong {
                len: meta.len() as u64,
            }));
        }
        let row = self.row_of(id)?;
        let (old_off, old_len) = self
            .rows
            .as_slice()
            .get(row)
            .map_or((0, 0), |r| (r.meta_off, r.meta_len));
        self.meta
            .reserve(meta.len().saturating_sub(old_len as usize))
            .map_err(full(Resource::MetadataBytes))?;
        arena_remove(
            &mut self.meta,
            self.rows.as_mut_slice(),
            old_off,
            old_len,
            |r| &mut r.meta_off,
        );
        let off = arena_push(&mut self.meta, meta, Resource::MetadataBytes)?;
        if let Some(r) = self.rows.as_mut_slice().get_mut(row) {
            r.meta_off = off;
            r.meta_len = meta.len() as u32;
        }
        Ok(())
    }

    pub(crate) fn set_tag(&mut self, id: u64, tag: Option<u64>) -> Result<()> {
        let row = self.row_of(id)?;
        if let Some(r) = self.rows.as_mut_slice().get_mut(row) {
            r.tag = tag.unwrap_or(0);
            r.flags = if tag.is_some() { ROW_HAS_TAG } else { 0 };
        }
        Ok(())
    }
}
