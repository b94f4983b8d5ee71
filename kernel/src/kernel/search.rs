//! Exact k-nearest-neighbour search.

use super::{Kernel, Metric, ROW_HAS_TAG};
use crate::error::{Error, Invalid, Result};
use crate::fxp::{self, Fxp};

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

/// How each stored vector is scored against one query. `small`: every stored component and
/// the query are within `fxp::SMALL_LIMIT` combined, so the exact 64-bit loops apply (same
/// results as the 128-bit ones, which a property test checks).
enum Scorer {
    L2 { small: bool },
    Ip { small: bool },
    Cosine { r: u128, small: bool },
}

impl Scorer {
    #[inline]
    fn ip(small: bool, x: &[Fxp], q: &[Fxp]) -> i128 {
        if small {
            fxp::inner_product_small(x, q)
        } else {
            fxp::inner_product(x, q)
        }
    }

    #[inline]
    fn score(&self, x: &[Fxp], q: &[Fxp]) -> i128 {
        match *self {
            // < 2^80 for every accepted input: fits i128.
            Scorer::L2 { small: true } => fxp::l2_squared_small(x, q) as i128,
            Scorer::L2 { small: false } => fxp::l2_squared(x, q) as i128,
            Scorer::Ip { small } => -Scorer::ip(small, x, q),
            Scorer::Cosine { r, small } => {
                // |ip| < 2^56 (x is unit length), so the shift fits.
                (1i128 << 32) - fxp::div_round(Scorer::ip(small, x, q) << 32, r)
            }
        }
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
    /// needed) when `out` is shorter than the result. Uses no memory beyond `out`.
    pub fn search<S: HitSlot>(
        &self,
        query: &[Fxp],
        k: u32,
        tag: Option<u64>,
        out: &mut [S],
    ) -> Result<usize> {
        let dim = self.config.dim as usize;
        if query.len() != dim {
            return Err(Error::Dimension {
                expected: self.config.dim,
                got: query.len() as u64,
            });
        }
        if k == 0 {
            return Err(Error::InvalidInput(Invalid::ZeroK));
        }
        let small =
            u64::from(self.max_abs) + u64::from(fxp::max_abs(query)) < u64::from(fxp::SMALL_LIMIT);
        let scorer = match self.config.metric {
            Metric::L2 => Scorer::L2 { small },
            Metric::InnerProduct => Scorer::Ip { small },
            Metric::Cosine => {
                let r = fxp::scaled_norm(fxp::norm_squared(query));
                if r == 0 {
                    return Err(Error::InvalidInput(Invalid::ZeroVector));
                }
                Scorer::Cosine { r, small }
            }
        };
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
        let mut filled = 0usize;
        let rows = self.rows.as_slice();
        let vectors = self.vectors.as_slice();
        for (row, x) in rows.iter().zip(vectors.chunks_exact(dim)) {
            if let Some(t) = tag {
                if row.flags & ROW_HAS_TAG == 0 || row.tag != t {
                    continue;
                }
            }
            let hit = Hit {
                distance: scorer.score(x, query),
                id: row.id,
            };
            if filled < want {
                push_heap(heap, filled, hit);
                filled += 1;
            } else if heap.first().is_some_and(|top| hit < top.hit()) {
                replace_top(heap, hit);
            }
        }
        let result = heap.get_mut(..filled).unwrap_or(&mut []);
        result.sort_unstable_by_key(HitSlot::hit);
        Ok(filled)
    }

    /// [`Kernel::search`] into a new vector of exactly the result's length.
    #[cfg(feature = "alloc")]
    pub fn search_vec(
        &self,
        query: &[Fxp],
        k: u32,
        tag: Option<u64>,
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
        let got = self.search(query, k, tag, &mut out)?;
        out.truncate(got);
        Ok(out)
    }
}

/// Max-heap on `(distance, id)` in `heap[..len + 1]` after adding `hit` at `len`.
fn push_heap<S: HitSlot>(heap: &mut [S], len: usize, hit: Hit) {
    let mut i = len;
    if let Some(slot) = heap.get_mut(i) {
        slot.set_hit(hit);
    }
    while i > 0 {
        let parent = (i - 1) / 2;
        match (heap.get(parent).map(S::hit), heap.get(i).map(S::hit)) {
            (Some(p), Some(c)) if c > p => heap.swap(parent, i),
            _ => break,
        }
        i = parent;
    }
}

/// Replaces the largest element of a full max-heap and restores the heap.
fn replace_top<S: HitSlot>(heap: &mut [S], hit: Hit) {
    let n = heap.len();
    let mut i = 0usize;
    if let Some(top) = heap.first_mut() {
        top.set_hit(hit);
    }
    let key = |heap: &[S], j: usize| heap.get(j).map(S::hit);
    loop {
        let l = 2 * i + 1;
        let r = l + 1;
        let mut largest = i;
        if l < n && key(heap, l) > key(heap, largest) {
            largest = l;
        }
        if r < n && key(heap, r) > key(heap, largest) {
            largest = r;
        }
        if largest == i {
            break;
        }
        heap.swap(i, largest);
        i = largest;
    }
}
