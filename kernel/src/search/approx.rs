//! Approximate search through the HNSW index (`crate::hnsw`): the same exact distances as
//! exact search, over the records the graph leads to. Deterministic: the same commands give
//! the same index and so the same answers on every CPU.

use super::plan::{query_copy, Scorer};
use super::{Hit, HitSlot};
use crate::error::{Error, Invalid, Resource, Result};
use crate::fxp::Fxp;
use crate::hnsw::{Hnsw, IndexParams, Space, INDEX_HASH_DOMAIN, MAX_EF};
use crate::simd::Backend;
use crate::state::Kernel;
use crate::tables::ROW_HAS_TAG;
use alloc::boxed::Box;
use alloc::vec::Vec;

impl Kernel<'_> {
    fn space(&self) -> Space<'_, '_> {
        Space {
            vectors: &self.vectors,
            metric: self.config.metric,
            backend: Backend::detect(),
        }
    }

    /// Configures the approximate index (`None` removes it). A new index is built over the
    /// stored records in ascending id order, so the same state gives the same index; from then
    /// on every insert and delete updates it. The same parameters again change nothing.
    pub fn set_index(&mut self, params: Option<IndexParams>) -> Result<()> {
        let Some(params) = params else {
            self.ann = None;
            return Ok(());
        };
        let params = IndexParams::new(params.m, params.ef_construction)?;
        if self.ann.as_ref().is_some_and(|a| a.params() == params) {
            return Ok(());
        }
        let mut ann = Hnsw::new(params);
        ann.reserve(self.len())
            .map_err(|()| Error::Full(Resource::Memory))?;
        let space = self.space();
        for e in self.index.as_slice() {
            ann.insert(e.id, e.row as u32, &space);
        }
        self.ann = Some(Box::new(ann));
        Ok(())
    }

    /// The approximate index's parameters, if one is configured.
    pub fn index_params(&self) -> Option<IndexParams> {
        self.ann.as_ref().map(|a| a.params())
    }

    /// The index's canonical encoding (`docs/FORMAT.md` §15), if one is configured: two
    /// kernels that applied the same commands give the same bytes.
    pub fn index_bytes(&self) -> Option<Vec<u8>> {
        self.ann.as_ref().map(|a| {
            let mut out = Vec::new();
            a.encode(&mut out);
            out
        })
    }

    /// `BLAKE3("valori-index-v1\0" || index encoding)`, if an index is configured. The state
    /// hash does not cover the index; this does.
    pub fn index_hash(&self) -> Option<[u8; 32]> {
        self.index_bytes().map(|b| {
            let mut h = blake3::Hasher::new();
            h.update(INDEX_HASH_DOMAIN);
            h.update(&b);
            *h.finalize().as_bytes()
        })
    }

    /// Loads an index encoding made over this same state (as [`Kernel::index_bytes`] gives),
    /// checking it against the records; `Corrupt` (and nothing changed) if it does not fit.
    pub fn load_index(&mut self, bytes: &[u8]) -> Result<()> {
        let index = &self.index;
        let row_of = |id: u64| {
            index
                .as_slice()
                .binary_search_by_key(&id, |e| e.id)
                .ok()
                .and_then(|p| index.as_slice().get(p))
                .map(|e| e.row as usize)
        };
        let ann = Hnsw::decode(bytes, &self.space(), &row_of, self.len())?;
        self.ann = Some(Box::new(ann));
        Ok(())
    }

    /// Approximate k nearest records to `query` through the index, optionally only those
    /// tagged `tag`, written to `out` in `(distance, id)` order; returns how many
    /// (`min(k, matching records)`, as exact search: never fewer when enough match).
    ///
    /// `ef` (1 to 65536; raised to `k`) is how many candidates the search keeps: higher is
    /// closer to exact and slower. With `ef` at or above the number of records (or of
    /// matching records, with a tag) the search is exhaustive: it is the exact search. The
    /// distances are exact; only which records are found is approximate.
    ///
    /// Errors as [`Kernel::search`], and `InvalidInput` without an index or with `ef` out of
    /// range, before writing anything.
    pub fn search_approx<S: HitSlot>(
        &self,
        query: &[Fxp],
        k: u32,
        tag: Option<u64>,
        ef: u32,
        out: &mut [S],
    ) -> Result<usize> {
        let Some(ann) = self.ann.as_deref() else {
            return Err(Error::InvalidInput(Invalid::NoIndex));
        };
        if ef == 0 || ef > MAX_EF {
            return Err(Error::InvalidInput(Invalid::IndexParam {
                what: "ef",
                value: u64::from(ef),
            }));
        }
        let ef = ef.max(k) as usize;
        let matching = match tag {
            None => ann.len(),
            Some(_) => self.result_count(u32::MAX, tag),
        };
        if ef >= matching || query.len() != self.config.dim as usize || k == 0 {
            // Exhaustive (or an error exact search reports the same way).
            return self.search(query, k, tag, out);
        }
        let copy = query_copy(self, query);
        let scorer = Scorer::new(self, query, copy.as_deref())?;
        let want = self.result_count(k, tag);
        let Some(out) = out.get_mut(..want) else {
            return Err(Error::InsufficientSize {
                needed: want as u64,
            });
        };
        let layout = self.vectors.layout();
        let dim = query.len();
        let rows = self.rows.as_slice();
        let mut dist = |r: usize| scorer.one(&layout.rows(r, 1, dim));
        let keep = |r: usize| {
            tag.is_none_or(|t| {
                rows.get(r)
                    .is_some_and(|row| row.flags & ROW_HAS_TAG != 0 && row.tag == t)
            })
        };
        let found = ann.search(ef, &mut dist, &keep);
        if found.len() < want {
            // The graph did not lead to enough matching records: the exact answer instead.
            return self.search(query, k, tag, out);
        }
        for (slot, &(distance, id)) in out.iter_mut().zip(found.iter()) {
            slot.set_hit(Hit { distance, id });
        }
        Ok(want)
    }

    /// [`Kernel::search_approx`] into a new vector of exactly the result's length.
    pub fn search_vec_approx(
        &self,
        query: &[Fxp],
        k: u32,
        tag: Option<u64>,
        ef: u32,
    ) -> Result<Vec<Hit>> {
        let n = if query.len() == self.config.dim as usize && k != 0 {
            self.result_count(k, tag)
        } else {
            0
        };
        let mut out = Vec::new();
        out.try_reserve_exact(n)
            .map_err(|_| Error::Full(Resource::Memory))?;
        out.resize(n, Hit::default());
        let got = self.search_approx(query, k, tag, ef, &mut out)?;
        out.truncate(got);
        Ok(out)
    }
}
