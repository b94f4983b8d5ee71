//! Exact k-nearest-neighbour search.

use crate::config::Metric;
use crate::error::{Error, Invalid, Result};
use crate::fxp::{self, Fxp};
use crate::simd::{self, Backend, RowKernel};
use crate::state::Kernel;
use crate::tables::{Row, ROW_HAS_TAG};
use crate::vectors::Layout;

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

/// How a query scores the store, chosen once from the store's width and the proved bounds.
/// Every plan gives the exact distance (tests/simd.rs checks each against 128-bit brute force).
#[derive(Clone, Copy)]
enum Plan {
    /// Narrow store and narrow query: `vpmaddwd`-style kernels over blocks of rows.
    Rows16(RowKernel),
    /// Narrow store, query used as it is (a component beyond `i16`, or no copy): 64/128-bit.
    Mixed,
    /// Mid-width store under `fxp::SMALL_LIMIT`: 64-bit SIMD kernels over blocks of rows.
    MidSmall,
    /// Mid-width store, large query: 128-bit loops.
    MidBig,
    /// Wide store under `fxp::SMALL_LIMIT`: 64-bit SIMD kernels over blocks of rows.
    WideSmall,
    /// Wide store, large values: 128-bit loops.
    WideBig,
}

struct Scorer<'q> {
    metric: Metric,
    backend: Backend,
    plan: Plan,
    query: &'q [Fxp],
    /// The query as `i16` (plan `Rows16`).
    narrow: &'q [i16],
    /// `q . q` and the AVX2 lane bound of the narrow query (batch scan).
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    qq: i64,
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    q_lanes: u64,
    /// `vpmaddwd` group for `x . q` (global bound; batch scan).
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    group: usize,
    /// The query's scaled norm (cosine).
    r: u128,
    /// `max|x| + max|q| < fxp::SMALL_LIMIT`: 64-bit sums are exact.
    small: bool,
    /// Mid-width store under L2: the query's top halves (`q >> 8`) and the kernel over the
    /// stored top halves (the lower-bound filter), if usable.
    top: Option<(&'q [i16], RowKernel)>,
}

impl<'q> Scorer<'q> {
    /// Plans the scoring of `query` (checked: dimension, zero vector under cosine).
    /// `copy` is [`query_copy`]'s `i16` form of the query: the query itself for a narrow
    /// store, its top halves for a mid-width one.
    fn new(kernel: &Kernel<'_>, query: &'q [Fxp], copy: Option<&'q [i16]>) -> Result<Self> {
        let narrow = copy.filter(|_| kernel.vectors.is_narrow());
        let dim = kernel.config.dim as usize;
        if query.len() != dim {
            return Err(Error::Dimension {
                expected: kernel.config.dim,
                got: query.len() as u64,
            });
        }
        let metric = kernel.config.metric;
        let r = if metric == Metric::Cosine {
            fxp::unit_divisor(query.iter().copied())?
        } else {
            0
        };
        let backend = Backend::detect();
        let (mx, mq) = (kernel.vectors.max_abs(), fxp::max_abs(query));
        let sum = u64::from(mx) + u64::from(mq);
        let narrow = narrow
            .filter(|n| kernel.vectors.is_narrow() && mq <= simd::NARROW_MAX && n.len() == dim);
        let (qq, q_lanes) = narrow.map_or((0, 0), |n| simd::norms_i16(backend, n));
        // Group sizes: from the largest components, or unlimited when the stored rows' and
        // the query's lane bounds prove that no 32-bit lane can overflow (simd::norms_i16).
        let x_lanes = kernel.vectors.lane_bound();
        let lanes_ip = simd::lanes_fit(x_lanes, q_lanes);
        let group = if lanes_ip {
            usize::MAX
        } else {
            simd::narrow_group(mx, mq)
        };
        let group_xx = if x_lanes <= i32::MAX as u64 {
            usize::MAX
        } else {
            simd::narrow_group(mx, mx)
        };
        // A lane of (x - q)^2 is at most (sqrt(bx) + sqrt(bq))^2.
        let diff_lanes = (x_lanes.isqrt() + 1) + (q_lanes.isqrt() + 1);
        let group_diff = if diff_lanes * diff_lanes <= i32::MAX as u64 {
            usize::MAX
        } else {
            simd::narrow_group(sum as u32, sum as u32)
        };
        // L2: differences (one multiply-add per 16 components) when they fit an i16 and the
        // lanes rarely need widening, else x.x + q.q - 2 x.q (two per 16).
        let group_expand = group.min(group_xx);
        let use_diff =
            sum <= u64::from(simd::NARROW_MAX) && (group_diff >= 8 || group_diff >= group_expand);
        let plan = match (kernel.vectors.is_narrow(), narrow) {
            (true, Some(_)) => Plan::Rows16(match metric {
                Metric::L2 if use_diff => RowKernel::L2I16(group_diff),
                Metric::L2 => RowKernel::L2ExpandI16 {
                    group: group_expand,
                    qq,
                },
                _ => RowKernel::DotI16(group),
            }),
            (true, None) => Plan::Mixed,
            (false, _) => {
                let small = sum < u64::from(fxp::SMALL_LIMIT);
                match (kernel.vectors.is_mid(), small) {
                    (true, true) => Plan::MidSmall,
                    (true, false) => Plan::MidBig,
                    (false, true) => Plan::WideSmall,
                    (false, false) => Plan::WideBig,
                }
            }
        };
        // Top halves differ from `x / 256` by less than 1, so their maxima are bounded by
        // `mx >> 8` plus one; the filter needs their differences to fit an i16.
        let top = copy
            .filter(|c| kernel.vectors.is_mid() && metric == Metric::L2 && c.len() == dim)
            .and_then(|c| {
                let mt =
                    u64::from(mx >> 8) + 1 + c.iter().map(|v| v.unsigned_abs() as u64).max()?;
                // Every sum of squared top-half differences is at most dim * (2 mt)^2.
                let short = (dim as u64).saturating_mul(4 * mt * mt) < 1 << 31;
                let kernel = if short {
                    RowKernel::L2I16Short
                } else {
                    RowKernel::L2I16(simd::narrow_group(mt as u32, mt as u32))
                };
                (mt <= u64::from(simd::NARROW_MAX)).then_some((c, kernel))
            });
        Ok(Scorer {
            metric,
            backend,
            plan,
            query,
            narrow: narrow.unwrap_or(&[]),
            qq,
            q_lanes,
            group,
            r,
            small: sum < u64::from(fxp::SMALL_LIMIT),
            top,
        })
    }

    /// The distance of an inner product under this metric.
    #[inline]
    fn ip_distance(&self, ip: i128) -> i128 {
        match self.metric {
            Metric::Cosine => {
                // |ip| < 2^56 (x is unit length), so the shift fits.
                (1i128 << 32) - fxp::div_round(ip << 32, self.r)
            }
            _ => -ip,
        }
    }

    /// The distance from a block kernel's raw value (a squared distance under L2, else an
    /// inner product).
    #[inline]
    fn finish(&self, raw: i64) -> i128 {
        if self.metric == Metric::L2 {
            i128::from(raw)
        } else {
            self.ip_distance(i128::from(raw))
        }
    }

    /// Exact distance to one stored row (`x` holds its components, narrow or wide).
    fn one(&self, layout: &Layout<'_>) -> i128 {
        let mut raw = [0i64; 1];
        match (*layout, self.plan) {
            (Layout::Narrow { data, stride }, Plan::Rows16(k)) => {
                simd::rows_i16(self.backend, k, data, stride, self.narrow, &mut raw);
                self.finish(raw[0])
            }
            (Layout::Narrow { data, .. }, _) => {
                self.mixed(data.get(..self.query.len()).unwrap_or(data))
            }
            (Layout::Mid { data, stride, .. }, Plan::MidSmall) => {
                let l2 = self.metric == Metric::L2;
                simd::rows_mid_small(
                    self.backend,
                    l2,
                    data,
                    stride,
                    self.query,
                    i64::MAX,
                    &mut raw,
                );
                self.finish(raw[0])
            }
            (Layout::Mid { data, .. }, _) => self.mid_big(data),
            (Layout::Wide { data }, Plan::WideSmall) => {
                let l2 = self.metric == Metric::L2;
                simd::rows_fxp_small(self.backend, l2, data, self.query, i64::MAX, &mut raw);
                self.finish(raw[0])
            }
            (Layout::Wide { data }, _) => self.wide_big(data),
        }
    }

    /// Offers every row of `layout` (rows `rows`, same order) that passes `keep` to `top`,
    /// scoring a block of rows per kernel call; a row whose distance cannot enter the top-k
    /// costs one comparison.
    fn scan<S: HitSlot>(
        &self,
        layout: &Layout<'_>,
        rows: &[Row],
        keep: &impl Fn(&Row) -> bool,
        top: &mut TopK<'_, S>,
    ) {
        let mut raw = [0i64; SCAN_BLOCK];
        let dim = self.query.len();
        let mut offer = |top: &mut TopK<'_, S>, i: usize, distance: i128| {
            if top.wants(distance) {
                if let Some(row) = rows.get(i).filter(|r| keep(r)) {
                    top.offer(Hit {
                        distance,
                        id: row.id,
                    });
                }
            }
        };
        match (*layout, self.plan) {
            (Layout::Narrow { data, stride }, Plan::Rows16(k)) => {
                for (b, block) in data.chunks(SCAN_BLOCK * stride).enumerate() {
                    let out = raw.get_mut(..block.len() / stride).unwrap_or(&mut []);
                    simd::rows_i16(self.backend, k, block, stride, self.narrow, out);
                    self.offer_block(b * SCAN_BLOCK, out, top, &mut offer);
                }
            }
            (Layout::Narrow { data, stride }, _) => {
                for (i, x) in data.chunks_exact(stride).enumerate() {
                    offer(top, i, self.mixed(x.get(..dim).unwrap_or(x)));
                }
            }
            (
                Layout::Mid {
                    data,
                    top: tops,
                    stride,
                },
                Plan::MidSmall,
            ) if self.top.is_some() => {
                let (top_q, k) = self.top.unwrap_or((&[], RowKernel::L2I16(1)));
                let mut coarse = [0i64; SCAN_BLOCK];
                let blocks = data.chunks(SCAN_BLOCK * stride);
                for (b, (block, tblock)) in
                    blocks.zip(tops.chunks(SCAN_BLOCK * stride / 2)).enumerate()
                {
                    let n = block.len() / stride;
                    let all = u64::MAX >> (64 - n.clamp(1, 64));
                    // Rows that can still enter the top-k: all while it fills, then those
                    // whose top halves pass the lower bound.
                    let candidates = match top.limit() {
                        None => all,
                        Some(tau) => {
                            let out = coarse.get_mut(..n).unwrap_or(&mut []);
                            simd::rows_i16(self.backend, k, tblock, stride / 2, top_q, out);
                            let t = coarse_threshold(tau, dim);
                            out.iter()
                                .enumerate()
                                .fold(0u64, |m, (i, &c)| m | (u64::from(c <= t) << i))
                        }
                    };
                    if candidates == 0 {
                        continue;
                    }
                    let limit = self.raw_limit(top.limit());
                    let out = raw.get_mut(..n).unwrap_or(&mut []);
                    let mask = if candidates.count_ones() > 8 {
                        simd::rows_mid_small(
                            self.backend,
                            true,
                            block,
                            stride,
                            self.query,
                            limit,
                            out,
                        ) & candidates
                    } else {
                        let mut m = candidates;
                        let mut keep = 0u64;
                        while m != 0 {
                            let i = m.trailing_zeros() as usize;
                            m &= m - 1;
                            let row = block.get(i * stride..(i + 1) * stride).unwrap_or(&[]);
                            let one = raw.get_mut(i..i + 1).unwrap_or(&mut []);
                            keep |= simd::rows_mid_small(
                                self.backend,
                                true,
                                row,
                                stride,
                                self.query,
                                limit,
                                one,
                            ) << i;
                        }
                        keep
                    };
                    self.offer_masked(b * SCAN_BLOCK, &raw, mask, top, &mut offer);
                }
            }
            (Layout::Mid { data, stride, .. }, Plan::MidSmall) => {
                let l2 = self.metric == Metric::L2;
                for (b, block) in data.chunks(SCAN_BLOCK * stride).enumerate() {
                    let out = raw.get_mut(..block.len() / stride).unwrap_or(&mut []);
                    let limit = self.raw_limit(top.limit());
                    let mask = simd::rows_mid_small(
                        self.backend,
                        l2,
                        block,
                        stride,
                        self.query,
                        limit,
                        out,
                    );
                    self.offer_masked(b * SCAN_BLOCK, out, mask, top, &mut offer);
                }
            }
            (Layout::Mid { data, stride, .. }, _) => {
                for (i, x) in data.chunks_exact(stride).enumerate() {
                    offer(top, i, self.mid_big(x));
                }
            }
            (Layout::Wide { data }, Plan::WideSmall) => {
                let l2 = self.metric == Metric::L2;
                for (b, block) in data.chunks(SCAN_BLOCK * dim).enumerate() {
                    let out = raw.get_mut(..block.len() / dim).unwrap_or(&mut []);
                    let limit = self.raw_limit(top.limit());
                    let mask =
                        simd::rows_fxp_small(self.backend, l2, block, self.query, limit, out);
                    self.offer_masked(b * SCAN_BLOCK, out, mask, top, &mut offer);
                }
            }
            (Layout::Wide { data }, _) => {
                for (i, x) in data.chunks_exact(dim).enumerate() {
                    offer(top, i, self.wide_big(x));
                }
            }
        }
    }

    /// Offers a block of raw kernel values (rows from `start`), with the metric's
    /// conversion hoisted out of the loop.
    #[inline(always)]
    fn offer_block<T>(
        &self,
        start: usize,
        raw: &[i64],
        top: &mut T,
        offer: &mut impl FnMut(&mut T, usize, i128),
    ) {
        if self.metric == Metric::L2 {
            for (i, &r) in raw.iter().enumerate() {
                offer(top, start + i, i128::from(r));
            }
        } else {
            for (i, &r) in raw.iter().enumerate() {
                offer(top, start + i, self.ip_distance(i128::from(r)));
            }
        }
    }

    /// The largest raw kernel value that can still enter a top-k whose worst distance is
    /// `limit` (L2: the distance itself; other metrics: no filter).
    #[inline]
    fn raw_limit(&self, limit: Option<i128>) -> i64 {
        match (self.metric, limit) {
            (Metric::L2, Some(l)) => i64::try_from(l).unwrap_or(i64::MAX),
            _ => i64::MAX,
        }
    }

    /// Offers the rows of a block whose bit is set in `mask`.
    #[inline(always)]
    fn offer_masked<T>(
        &self,
        start: usize,
        raw: &[i64],
        mut mask: u64,
        top: &mut T,
        offer: &mut impl FnMut(&mut T, usize, i128),
    ) {
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if let Some(&r) = raw.get(i) {
                offer(top, start + i, self.finish(r));
            }
        }
    }

    /// Wide row, values beyond the 64-bit bound: 128-bit loops.
    fn wide_big(&self, x: &[Fxp]) -> i128 {
        if self.metric == Metric::L2 {
            // < 2^80 for every accepted input: fits i128.
            fxp::l2_squared(x, self.query) as i128
        } else {
            self.ip_distance(fxp::inner_product(x, self.query))
        }
    }

    /// Mid-width row (3 bytes per component), values beyond the 64-bit bound.
    fn mid_big(&self, x: &[u8]) -> i128 {
        let q = self.query;
        let xs = (0..q.len()).map(|i| simd::scalar::mid(x, i, q.len()));
        if self.metric == Metric::L2 {
            xs.zip(q)
                .map(|(a, b)| {
                    // |a - b| < 2^32: the square fits u64; 2^16 of them fit u128.
                    let d = (i64::from(a) - i64::from(b.0)).unsigned_abs();
                    u128::from(d * d)
                })
                .sum::<u128>() as i128
        } else {
            // Each product is below 2^54 in magnitude, 2^16 of them below 2^70: i128.
            let ip: i128 = xs
                .zip(q)
                .map(|(a, b)| i128::from(i64::from(a) * i64::from(b.0)))
                .sum();
            self.ip_distance(ip)
        }
    }

    /// Narrow row, query used as it is.
    fn mixed(&self, x: &[i16]) -> i128 {
        let q = self.query;
        if self.metric == Metric::L2 && self.small {
            // |a - b| < 2^23: squares below 2^46, 2^16 of them below 2^62.
            x.iter()
                .zip(q)
                .map(|(&a, b)| {
                    let d = (i64::from(a) - i64::from(b.0)).unsigned_abs();
                    d * d
                })
                .sum::<u64>() as i128
        } else if self.metric == Metric::L2 {
            x.iter()
                .zip(q)
                .map(|(&a, b)| {
                    // |a - b| < 2^32: the square fits u64; 2^16 of them fit u128.
                    let d = (i64::from(a) - i64::from(b.0)).unsigned_abs();
                    u128::from(d * d)
                })
                .sum::<u128>() as i128
        } else {
            // Each product is below 2^46 in magnitude, 2^16 of them below 2^62.
            let ip: i64 = x
                .iter()
                .zip(q)
                .map(|(&a, b)| i64::from(a) * i64::from(b.0))
                .sum();
            self.ip_distance(i128::from(ip))
        }
    }
}

/// The lower-bound filter of a mid-width L2 scan. A stored component is `x = 256 t + l` with
/// `t = x >> 8` (stored as the top half) and `0 <= l < 256`, the query likewise, so
/// `x - q = 256 (t_x - t_q) + e` with `|e| <= 255`, and by the triangle inequality
/// `|x - q| >= 256 |D| - 255 sqrt(dim)` where `D` is the difference of the top halves. A row
/// with `|D|^2 > T`, `T >= ((sqrt(tau) + 255 sqrt(dim)) / 256)^2`, is therefore farther than
/// `tau` and cannot enter a top-k whose worst distance is `tau`. Integer arithmetic, rounded
/// so that `T` is never too small.
fn coarse_threshold(tau: i128, dim: usize) -> i64 {
    let Ok(tau) = u128::try_from(tau) else {
        return -1; // no L2 distance is negative: nothing passes
    };
    let a = tau.isqrt() + 1;
    let b = 255 * ((dim as u128).isqrt() + 1);
    let c = (a + b).div_ceil(256);
    i64::try_from(c.saturating_mul(c)).unwrap_or(i64::MAX)
}

/// Rows scored per kernel call in a single-query scan: a stack buffer of 512 bytes on hosts,
/// 128 bytes without an allocator (firmware stacks are small). At most 64 (the row masks).
const SCAN_BLOCK: usize = if cfg!(feature = "alloc") { 64 } else { 16 };

/// The running top-k of one query: a max-heap on `(distance, id)` in the caller's slots,
/// with the current worst kept aside so most rows are rejected with one comparison.
struct TopK<'o, S> {
    heap: &'o mut [S],
    filled: usize,
    worst: Hit,
}

impl<'o, S: HitSlot> TopK<'o, S> {
    fn new(heap: &'o mut [S]) -> Self {
        TopK {
            heap,
            filled: 0,
            worst: Hit::default(),
        }
    }

    /// The worst distance kept once the top-k is full (a row beyond it cannot enter).
    #[inline]
    fn limit(&self) -> Option<i128> {
        (self.filled == self.heap.len()).then_some(self.worst.distance)
    }

    /// False when a row at `distance` cannot enter the top-k (whatever its id).
    #[inline(always)]
    fn wants(&self, distance: i128) -> bool {
        self.filled < self.heap.len() || distance <= self.worst.distance
    }

    /// Keeps `hit` if it is among the best so far. The common case (rejected) is one
    /// comparison, inlined into the scan.
    #[inline(always)]
    fn offer(&mut self, hit: Hit) {
        if self.filled < self.heap.len() || hit < self.worst {
            self.keep(hit);
        }
    }

    #[inline(never)]
    fn keep(&mut self, hit: Hit) {
        if self.filled == self.heap.len() {
            replace_top(self.heap, hit);
        } else {
            push_heap(self.heap, self.filled, hit);
            self.filled += 1;
        }
        if self.filled == self.heap.len() {
            self.worst = self.heap.first().map_or(hit, S::hit);
        }
    }

    fn finish(self) -> usize {
        let result = self.heap.get_mut(..self.filled).unwrap_or(&mut []);
        result.sort_unstable_by_key(HitSlot::hit);
        self.filled
    }
}

/// Rows per block of the batch scan: a block's vectors stay in cache while every query
/// passes over them (at d = 384 narrow, 96 KiB).
#[cfg(feature = "alloc")]
const BATCH_BLOCK: usize = 128;

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
        if !queries.len().is_multiple_of(dim) {
            return Err(Error::Dimension {
                expected: self.config.dim,
                got: queries.len() as u64,
            });
        }
        if k == 0 {
            return Err(Error::InvalidInput(Invalid::ZeroK));
        }
        let nq = queries.len() / dim;
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

/// One block of the narrow L2 batch scan: `x . x` and the row's lane bound once per row,
/// then `x . q` for four queries per pass over the row
/// (`|x - q|^2 = x . x + q . q - 2 x . q`, exact in i64). When the lane bounds prove it,
/// the 32-bit lanes are widened only once per row.
#[cfg(feature = "alloc")]
fn block_l2_x4<S: HitSlot>(
    scorers: &[Scorer<'_>],
    tops: &mut [TopK<'_, S>],
    rows: &[Row],
    data: &[i16],
    stride: usize,
    keep: &impl Fn(&Row) -> bool,
) {
    let Some(first) = scorers.first() else { return };
    let b = first.backend;
    let dim = first.query.len();
    let mut norms = [(0i64, 0u64); BATCH_BLOCK];
    for (slot, x) in norms.iter_mut().zip(data.chunks_exact(stride)) {
        *slot = simd::norms_i16(b, x.get(..dim).unwrap_or(x));
    }
    let n = rows.len().min(BATCH_BLOCK);
    let x_lanes = norms.iter().take(n).map(|&(_, l)| l).max().unwrap_or(0);
    let mut ips = [[0i64; 4]; BATCH_BLOCK];
    let ips = ips.get_mut(..n).unwrap_or(&mut []);
    for (sq, tq) in scorers.chunks(4).zip(tops.chunks_mut(4)) {
        let pick = |j: usize| sq.get(j).or(sq.first());
        let qs = [0, 1, 2, 3].map(|j| pick(j).map_or(&[][..], |s| s.narrow));
        let q_lanes = sq.iter().map(|s| s.q_lanes).max().unwrap_or(0);
        // Unlimited groups when every row of the block and every query of the four fit.
        let group = if simd::lanes_fit(x_lanes, q_lanes) {
            usize::MAX
        } else {
            sq.iter().map(|s| s.group).min().unwrap_or(1)
        };
        simd::rows_dot_i16_x4(b, data, stride, qs, group, ips);
        for (j, (s, top)) in sq.iter().zip(tq.iter_mut()).enumerate() {
            for ((row, &(xx, _)), ip) in rows.iter().zip(&norms).zip(ips.iter()) {
                let distance = i128::from(xx + s.qq - 2 * ip.get(j).copied().unwrap_or(0));
                if top.wants(distance) && keep(row) {
                    top.offer(Hit {
                        distance,
                        id: row.id,
                    });
                }
            }
        }
    }
}

/// An `i16` form of the queries that lets the SIMD kernels run (`None` when it does not fit,
/// or no memory): for a narrow store the queries themselves, for a mid-width store under L2
/// their top halves `q >> 8` (the lower-bound filter).
#[cfg(feature = "alloc")]
fn query_copy(kernel: &Kernel<'_>, queries: &[Fxp]) -> Option<alloc::vec::Vec<i16>> {
    let max = fxp::max_abs(queries);
    let shift = if kernel.vectors.is_narrow() && max <= simd::NARROW_MAX {
        0
    } else if kernel.vectors.is_mid() && kernel.config.metric == Metric::L2 && max <= simd::MID_MAX
    {
        8
    } else {
        return None;
    };
    let mut v = alloc::vec::Vec::new();
    v.try_reserve_exact(queries.len()).ok()?;
    v.extend(queries.iter().map(|x| (x.0 >> shift) as i16));
    Some(v)
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
