//! Approximate search through the HNSW index (`crate::hnsw`): the same exact distances as
//! exact search, over the records the graph leads to. Deterministic: the same commands give
//! the same index and so the same answers on every CPU.

use super::plan::{query_copy, Scorer};
use super::{Hit, HitSlot};
use crate::config::Metric;
use crate::error::{Error, Invalid, Resource, Result};
use crate::fxp::Fxp;
use crate::hnsw::{Dist, Hnsw, IndexParams, Space, INDEX_HASH_DOMAIN, MAX_EF};
use crate::state::Kernel;
use crate::tables::ROW_HAS_TAG;
use crate::vectors::Layout;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// How a search finds its records: [`Kernel::search_vec_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchOptions {
    /// Always the exact search (also with an index).
    pub exact: bool,
    /// Candidates an approximate search keeps (1 to 65536; raised to `k`).
    pub ef: u32,
}

impl Default for SearchOptions {
    /// Approximate through the index if there is one (`ef = 64`), else exact.
    fn default() -> Self {
        SearchOptions {
            exact: false,
            ef: 64,
        }
    }
}

impl Kernel<'_> {
    /// The k nearest records the way `opts` says: through the index (approximate) if there is
    /// one and `opts.exact` is false, else the exact search. An `ef` out of range is refused
    /// either way.
    pub fn search_vec_with(
        &self,
        query: &[Fxp],
        k: u32,
        tag: Option<u64>,
        opts: SearchOptions,
    ) -> Result<Vec<Hit>> {
        check_ef(opts.ef)?;
        if opts.exact || self.ann.is_none() {
            self.search_vec(query, k, tag)
        } else {
            self.search_vec_approx(query, k, tag, opts.ef)
        }
    }

    /// [`Kernel::search_vec_with`] for each of `queries.len() / dim` queries: the hits per
    /// query (`min(k, matching records)`) and the hits, that many per query in query order.
    pub fn search_batch_vec_with(
        &self,
        queries: &[Fxp],
        k: u32,
        tag: Option<u64>,
        opts: SearchOptions,
    ) -> Result<(usize, Vec<Hit>)> {
        check_ef(opts.ef)?;
        let n = self.batch_len(queries, k)?;
        let width = self.result_count(k, tag);
        let mut hits = Vec::new();
        hits.try_reserve_exact(n.saturating_mul(width))
            .map_err(|_| Error::Full(Resource::Memory))?;
        hits.resize(n * width, Hit::default());
        // Exact, or nothing to find (the exact batch still checks every query).
        if opts.exact || self.ann.is_none() || width == 0 {
            let got = self.search_batch(queries, k, tag, &mut hits)?;
            return Ok((got, hits));
        }
        let dim = self.config.dim as usize;
        for (q, out) in queries
            .chunks_exact(dim)
            .zip(hits.chunks_exact_mut(width.max(1)))
        {
            self.search_approx(q, k, tag, opts.ef, out)?;
        }
        Ok((width, hits))
    }

    fn space(&self) -> Space<'_, '_> {
        Space::new(&self.vectors, self.config.metric)
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
            let mut h = crate::hash::Hasher::new();
            h.update(INDEX_HASH_DOMAIN);
            h.update(&b);
            h.finalize()
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
        check_ef(ef)?;
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
        // `result_count(k, tag)`, from the count above (one pass over the rows, not two).
        let want = matching.min(k as usize);
        let Some(out) = out.get_mut(..want) else {
            return Err(Error::InsufficientSize {
                needed: want as u64,
            });
        };
        let space = self.space();
        let narrow = (!scorer.narrow.is_empty() && space.narrow_row(0).is_some()).then(|| {
            let (qq, lanes) = crate::simd::norms_i16(space.backend, scorer.narrow);
            (scorer.narrow, qq, lanes)
        });
        let mut dist = QueryDist {
            scorer: &scorer,
            layout: self.vectors.layout(),
            space,
            ann,
            narrow,
        };
        let rows = self.rows.as_slice();
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
        self.hits_vec(query, k, tag, |out| {
            self.search_approx(query, k, tag, ef, out)
        })
    }
}

fn check_ef(ef: u32) -> Result<()> {
    if ef == 0 || ef > MAX_EF {
        return Err(Error::InvalidInput(Invalid::IndexParam {
            what: "ef",
            value: u64::from(ef),
        }));
    }
    Ok(())
}

/// A query's exact distances to stored nodes: for a narrow store and query whose lane bounds
/// fit, `x . q` by the fastest kernel, turned into the metric's distance exactly as exact
/// search does (`|x|^2 + |q|^2 - 2 x . q` is the squared L2 distance, in integers); else the
/// exact search's own scorer.
struct QueryDist<'a, 'q> {
    scorer: &'a Scorer<'q>,
    layout: Layout<'a>,
    space: Space<'a, 'a>,
    ann: &'a Hnsw,
    /// The `i16` query, `q . q` and its lane bound.
    narrow: Option<(&'q [i16], i64, u64)>,
}

impl Dist for QueryDist<'_, '_> {
    fn prefetch(&self, slot: u32) {
        self.space.prefetch(self.ann.row(slot));
    }

    fn prefetch_words(&self, words: &[u32]) {
        self.space.prefetch_words(words);
    }

    fn dist(&mut self, slot: u32) -> i128 {
        let row = self.ann.row(slot);
        if let Some((q, qq, q_lanes)) = self.narrow {
            let lanes = self.space.vectors.lane_bound();
            if let (Some(x), true) = (
                self.space.narrow_row(row),
                crate::simd::lanes_fit(lanes, q_lanes),
            ) {
                let dot = i128::from(crate::simd::dot_i16_free(self.space.backend, x, q));
                return match self.scorer.metric {
                    Metric::L2 => i128::from(self.ann.norm(slot)) + i128::from(qq) - 2 * dot,
                    _ => self.scorer.ip_distance(dot),
                };
            }
        }
        self.scorer
            .one(&self.layout.rows(row, 1, self.scorer.query.len()))
    }
}
