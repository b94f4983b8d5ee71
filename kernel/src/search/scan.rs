//! Running a plan: exact distances of stored rows, a block of rows per kernel call, offered
//! to a top-k (single-query scans, and the four-queries-per-load batch block).

use super::plan::{Plan, Scorer};
use super::topk::TopK;
use super::{Hit, HitSlot};
use crate::config::Metric;
use crate::fxp::{self, Fxp};
use crate::simd::{self, RowKernel};
use crate::tables::Row;
use crate::vectors::Layout;

impl Scorer<'_> {
    /// The distance of an inner product under this metric.
    #[inline]
    pub(super) fn ip_distance(&self, ip: i128) -> i128 {
        if self.metric.is_cosine() {
            // |ip| < 2^56 (x is unit length), so the shift fits.
            (1i128 << 32) - fxp::div_round(ip << 32, self.r)
        } else {
            -ip
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
    pub(super) fn one(&self, layout: &Layout<'_>) -> i128 {
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
    pub(super) fn scan<S: HitSlot>(
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
    let a = crate::fxp::isqrt(tau) + 1;
    let b = 255 * (crate::fxp::isqrt(dim as u128) + 1);
    let c = (a + b).div_ceil(256);
    i64::try_from(c.saturating_mul(c)).unwrap_or(i64::MAX)
}

/// Rows scored per kernel call in a single-query scan: a stack buffer of 512 bytes on hosts,
/// 128 bytes without an allocator (firmware stacks are small). At most 64 (the row masks).
const SCAN_BLOCK: usize = if cfg!(feature = "alloc") { 64 } else { 16 };

/// Rows per block of the batch scan: a block's vectors stay in cache while every query
/// passes over them (at d = 384 narrow, 96 KiB).
#[cfg(feature = "alloc")]
pub(super) const BATCH_BLOCK: usize = 128;

/// One block of the narrow L2 batch scan: `x . x` and the row's lane bound once per row,
/// then `x . q` for four queries per pass over the row
/// (`|x - q|^2 = x . x + q . q - 2 x . q`, exact in i64). When the lane bounds prove it,
/// the 32-bit lanes are widened only once per row.
#[cfg(feature = "alloc")]
pub(super) fn block_l2_x4<S: HitSlot>(
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
