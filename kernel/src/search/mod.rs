//! Exact k-nearest-neighbour search: the public entry points and result types.
//!
//! A search plans, once per query, which exact kernel scores the store (`plan.rs`), scans the
//! rows with it (`scan.rs`) and keeps the best in a bounded heap (`topk.rs`).

#[cfg(feature = "alloc")]
mod approx;
#[cfg(feature = "alloc")]
pub use self::approx::SearchOptions;
mod plan;
mod scan;
mod topk;

use self::plan::Scorer;
use self::topk::TopK;
use crate::error::{Error, Invalid, Result};
use crate::fxp::Fxp;
use crate::state::Kernel;
use crate::tables::ROW_HAS_TAG;
// Used only with an allocator: the batch search and the `i16` copy of the query.
#[cfg(feature = "alloc")]
use {
    self::plan::{query_copy, Plan},
    self::scan::{block_l2_x4, BATCH_BLOCK},
    crate::config::Metric,
    crate::tables::Row,
    crate::vectors::Layout,
};

/// One search result. Results are ordered by `(distance, id)`.
///
/// `distance` is exact, in units of 2^-32: the squared L2 distance (L2), the negated inner
/// product (InnerProduct), or `2^32 - round(ip(x, q) * 2^32 / r)` with
/// `r = floor(|q| * 2^16)`, i.e. one minus the cosine similarity (Cosine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hit {
    /// Distance (lower is closer).
    pub distance: i128,
    /// Record id.
    pub id: u64,
}

/// Storage for one search result: lets a caller search straight into its own result type
/// (e.g. a C struct) without an intermediate buffer.
pub trait HitSlot: Copy {
    /// The hit stored here.
    fn hit(&self) -> Hit;
    /// Stores a hit.
    fn set_hit(&mut self, hit: Hit);
}

impl HitSlot for Hit {
    fn hit(&self) -> Hit {
        *self
    }
    fn set_hit(&mut self, hit: Hit) {
        *self = hit;
    }
}

impl<'m> Kernel<'m> {
    /// Number of results a search with this `k` and tag filter returns:
    /// `min(k, matching records)`.
    pub fn result_count(&self, k: u32, tag: Option<u64>) -> usize {
        let matching = match tag {
            None => self.rows.len(),
            Some(t) => self
                .rows
                .as_slice()
                .iter()
                .filter(|r| r.flags & ROW_HAS_TAG != 0 && r.tag == t)
                .count(),
        };
        matching.min(k as usize)
    }

    /// Exact k nearest records to `query`, optionally only those tagged `tag`, written to
    /// `out` in `(distance, id)` order; returns how many (`min(k, matching records)`).
    ///
    /// Errors before writing anything: `Dimension` for a wrong-length query, `InvalidInput`
    /// for `k = 0` (or an all-zero query under cosine), `InsufficientSize` (with the count
    /// needed) when `out` is shorter than the result. Without feature `alloc` it uses no
    /// memory beyond `out` and 1 KiB of stack buffers; with it, also an `i16` copy of the
    /// query (`2 * dim` bytes).
    pub fn search<S: HitSlot>(
        &self,
        query: &[Fxp],
        k: u32,
        tag: Option<u64>,
        out: &mut [S],
    ) -> Result<usize> {
        if query.len() == self.config.dim as usize && k == 0 {
            return Err(Error::InvalidInput(Invalid::ZeroK));
        }
        #[cfg(feature = "alloc")]
        let copy = query_copy(self, query);
        #[cfg(feature = "alloc")]
        let narrow = copy.as_deref();
        #[cfg(not(feature = "alloc"))]
        let narrow = None;
        let scorer = Scorer::new(self, query, narrow)?;
        let want = self.result_count(k, tag);
        let heap = match out.get_mut(..want) {
            Some(h) => h,
            None => {
                return Err(Error::InsufficientSize {
                    needed: want as u64,
                })
            }
        };
        if want == 0 {
            return Ok(0);
        }
        let mut top = TopK::new(heap);
        let rows = self.rows.as_slice();
        let layout = self.vectors.layout();
        match tag {
            None => scorer.scan(&layout, rows, &|_| true, &mut top),
            // A filter: score only the matching rows.
            Some(t) => {
                let dim = query.len();
                for (i, row) in rows.iter().enumerate() {
                    if row.flags & ROW_HAS_TAG != 0 && row.tag == t {
                        top.offer(Hit {
                            distance: scorer.one(&layout.rows(i, 1, dim)),
                            id: row.id,
                        });
                    }
                }
            }
        }
        Ok(top.finish())
    }

    /// Exact k nearest records for each of `queries.len() / dim` queries at once, with the
    /// same results as [`Kernel::search`] for each: query `i`'s results are
    /// `out[i * n..(i + 1) * n]` where `n` (returned) is `min(k, matching records)`, the same
    /// for every query.
    ///
    /// The store is scanned once, a block of rows at a time, and every query passes over a
    /// block while it is in cache; with a narrow store and queries under L2, four queries
    /// share each load. Errors as [`Kernel::search`] (a `queries` length that is not a
    /// multiple of the dimension is a `Dimension` error), before writing anything.
    #[cfg(feature = "alloc")]
    pub fn search_batch<S: HitSlot>(
        &self,
        queries: &[Fxp],
        k: u32,
        tag: Option<u64>,
        out: &mut [S],
    ) -> Result<usize> {
        let dim = self.config.dim as usize;
        let nq = self.batch_len(queries, k)?;
        let copy = query_copy(self, queries);
        let narrow = copy.as_deref();
        let scorers = queries
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, q)| {
                let n = narrow.and_then(|n| n.get(i * dim..(i + 1) * dim));
                Scorer::new(self, q, n)
            })
            .collect::<Result<alloc::vec::Vec<_>>>()?;
        let want = self.result_count(k, tag);
        let needed = nq.saturating_mul(want);
        let Some(out) = out.get_mut(..needed) else {
            return Err(Error::InsufficientSize {
                needed: needed as u64,
            });
        };
        if want == 0 || nq == 0 {
            return Ok(want);
        }
        let mut tops: alloc::vec::Vec<TopK<'_, S>> =
            out.chunks_exact_mut(want).map(TopK::new).collect();
        let rows = self.rows.as_slice();
        let keep = |row: &Row| tag.is_none_or(|t| row.flags & ROW_HAS_TAG != 0 && row.tag == t);
        let layout = self.vectors.layout();
        let x4 = self.config.metric == Metric::L2
            && scorers.iter().all(|s| matches!(s.plan, Plan::Rows16(_)));
        for (b, rblock) in rows.chunks(BATCH_BLOCK).enumerate() {
            let start = b * BATCH_BLOCK;
            let block = layout.rows(start, rblock.len(), dim);
            if let (true, Layout::Narrow { data, stride }) = (x4, block) {
                block_l2_x4(&scorers, &mut tops, rblock, data, stride, &keep);
                continue;
            }
            for (s, top) in scorers.iter().zip(tops.iter_mut()) {
                s.scan(&block, rblock, &keep, top);
            }
        }
        for top in tops {
            top.finish();
        }
        Ok(want)
    }

    /// [`Kernel::search`] into a new vector of exactly the result's length.
    #[cfg(feature = "alloc")]
    pub fn search_vec(
        &self,
        query: &[Fxp],
        k: u32,
        tag: Option<u64>,
    ) -> Result<alloc::vec::Vec<Hit>> {
        self.hits_vec(query, k, tag, |out| self.search(query, k, tag, out))
    }

    /// A search (`fill`) into a new vector of exactly the result's length.
    #[cfg(feature = "alloc")]
    pub(super) fn hits_vec(
        &self,
        query: &[Fxp],
        k: u32,
        tag: Option<u64>,
        fill: impl FnOnce(&mut [Hit]) -> Result<usize>,
    ) -> Result<alloc::vec::Vec<Hit>> {
        let mut out = alloc::vec::Vec::new();
        let n = if query.len() == self.config.dim as usize && k != 0 {
            self.result_count(k, tag)
        } else {
            0
        };
        out.try_reserve_exact(n)
            .map_err(|_| Error::Full(crate::error::Resource::Memory))?;
        out.resize(n, Hit::default());
        let got = fill(&mut out)?;
        out.truncate(got);
        Ok(out)
    }

    /// The number of queries in a batch (`queries.len() / dim`), after the checks every batch
    /// search makes first: a whole number of vectors (`Dimension`), `k > 0`.
    #[cfg(feature = "alloc")]
    pub(super) fn batch_len(&self, queries: &[Fxp], k: u32) -> Result<usize> {
        let dim = self.config.dim as usize;
        if !queries.len().is_multiple_of(dim) {
            return Err(Error::Dimension {
                expected: self.config.dim,
                got: queries.len() as u64,
            });
        }
        if k == 0 {
            return Err(Error::InvalidInput(Invalid::ZeroK));
        }
        Ok(queries.len() / dim)
    }
}
