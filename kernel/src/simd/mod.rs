//! Exact integer distance kernels with explicit SIMD, chosen at run time.
//!
//! Every kernel here computes an exact integer result: the SIMD variants perform the same
//! integer products and sums as the scalar reference, only in a different order, and integer
//! addition is associative as long as nothing overflows. Each function states the bound on its
//! inputs that rules overflow out; the callers (`Kernel::search`) prove those bounds from the
//! largest stored component (`fxp::max_abs`) before choosing a kernel. Property tests check
//! every backend against the scalar reference bit for bit (`tests/simd.rs`), on x86_64 here and
//! on aarch64 under QEMU in CI.
//!
//! Backends: AVX2 on x86_64 (detected at run time with `std`, or enabled at compile time),
//! NEON on aarch64 (part of the baseline), scalar everywhere.
//!
//! Two element types:
//! - `i16`: vectors of a store whose every component fits in `[-32767, 32767]` (see
//!   `kernel::vectors`). AVX2 multiplies pairs with `vpmaddwd` (16 products per instruction)
//!   into 32-bit lanes, which are widened to 64 bits before they can overflow (`group`).
//! - [`Fxp`] (`i32`) under `fxp::SMALL_LIMIT`: products and squares are exact in 64 bits.
#![allow(unsafe_code)]

use crate::fxp::Fxp;

/// Largest |component| of a narrow (`i16`) vector: `-32768` is excluded so that a pair of
/// products never reaches 2^31.
pub const NARROW_MAX: u32 = i16::MAX as u32;

/// Largest |component| of a mid-width (3-byte) vector: the `i24` range without `-2^23`.
pub const MID_MAX: u32 = (1 << 23) - 1;

/// An implementation of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Portable Rust (autovectorised for the target's baseline).
    Scalar,
    /// x86_64 AVX2.
    Avx2,
    /// aarch64 Advanced SIMD.
    Neon,
}

impl Backend {
    /// The fastest backend this CPU runs.
    #[inline]
    pub fn detect() -> Backend {
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        {
            if std::is_x86_feature_detected!("avx2") {
                return Backend::Avx2;
            }
        }
        #[cfg(all(target_arch = "x86_64", not(feature = "std"), target_feature = "avx2"))]
        {
            return Backend::Avx2;
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        {
            return Backend::Neon;
        }
        #[allow(unreachable_code)]
        Backend::Scalar
    }

    /// Every backend this CPU runs, scalar first (for tests and benchmarks).
    pub fn available() -> impl Iterator<Item = Backend> {
        let best = Backend::detect();
        [Backend::Scalar, best]
            .into_iter()
            .enumerate()
            .filter(move |&(i, b)| i == 0 || b != Backend::Scalar)
            .map(|(_, b)| b)
    }

    /// The backend if this CPU runs it, else scalar (a backend value can come from outside).
    #[inline]
    fn usable(self) -> Backend {
        if self == Backend::Scalar || self == Backend::detect() {
            self
        } else {
            Backend::Scalar
        }
    }
}

/// How many `vpmaddwd` results a 32-bit lane can sum before it must be widened: each result is
/// a pair of products, at most `2 * mx * mq` in magnitude. At least 1 whenever
/// `mx, mq <= NARROW_MAX`.
#[inline]
pub fn narrow_group(mx: u32, mq: u32) -> usize {
    let pair = 2 * u64::from(mx) * u64::from(mq);
    let g = (i32::MAX as u64) / pair.max(1);
    g.clamp(1, 1 << 16) as usize
}

/// Exact `sum(x[i] * q[i])` over the common length. Requires every |component| <=
/// `NARROW_MAX` and `group <= narrow_group(max|x|, max|q|)`.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[inline]
pub fn dot_i16(backend: Backend, x: &[i16], q: &[i16], group: usize) -> i64 {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe { avx2::dot_i16(x, q, group.max(1)) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `usable` returned Neon only because the CPU has NEON (aarch64 baseline).
        Backend::Neon => unsafe { neon::dot_i16(x, q) },
        _ => scalar::dot_i16(x, q),
    }
}

/// [`dot_i16`] of one stored vector against four queries at once (the batch scan's inner
/// kernel: each loaded component of `x` is used four times).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[inline]
pub fn dot_i16_x4(backend: Backend, x: &[i16], q: [&[i16]; 4], group: usize) -> [i64; 4] {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe { avx2::dot_i16_x4(x, q, group.max(1)) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `usable` returned Neon only because the CPU has NEON (aarch64 baseline).
        Backend::Neon => unsafe { neon::dot_i16_x4(x, q) },
        _ => q.map(|q| scalar::dot_i16(x, q)),
    }
}

/// [`dot_i16_x4`] for `out.len()` consecutive rows of `data` (`stride` apart), in one call.
#[inline]
pub fn rows_dot_i16_x4(
    backend: Backend,
    data: &[i16],
    stride: usize,
    q: [&[i16]; 4],
    group: usize,
    out: &mut [[i64; 4]],
) {
    let dim = q[0].len();
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe { avx2::rows_dot_i16_x4(data, stride, q, group.max(1), out) },
        b => {
            for (o, x) in out.iter_mut().zip(data.chunks(stride.max(1))) {
                *o = dot_i16_x4(b, x.get(..dim).unwrap_or(x), q, group);
            }
        }
    }
}

/// Exact `sum((x[i] - q[i])^2)` when `max|x| + max|q| <= NARROW_MAX` (every difference fits
/// an `i16`) and `group <= narrow_group(m, m)` with `m = max|x| + max|q|`.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[inline]
pub fn l2_i16(backend: Backend, x: &[i16], q: &[i16], group: usize) -> i64 {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe { avx2::l2_i16(x, q, group.max(1)) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `usable` returned Neon only because the CPU has NEON (aarch64 baseline).
        Backend::Neon => unsafe { neon::l2_i16(x, q) },
        _ => scalar::l2_i16(x, q),
    }
}

/// Exact squared L2 distance of two Q16.16 vectors when `max|x| + max|q| < fxp::SMALL_LIMIT`
/// and the length is at most `MAX_DIM` (the sum stays below 2^62).
#[inline]
pub fn l2_fxp_small(backend: Backend, x: &[Fxp], q: &[Fxp]) -> u64 {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe { avx2::l2_fxp_small(x, q) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `usable` returned Neon only because the CPU has NEON (aarch64 baseline).
        Backend::Neon => unsafe { neon::l2_fxp_small(x, q) },
        _ => scalar::l2_fxp_small(x, q),
    }
}

/// Exact inner product of two Q16.16 vectors under the bound of [`l2_fxp_small`].
#[inline]
pub fn dot_fxp_small(backend: Backend, x: &[Fxp], q: &[Fxp]) -> i64 {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe { avx2::dot_fxp_small(x, q) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `usable` returned Neon only because the CPU has NEON (aarch64 baseline).
        Backend::Neon => unsafe { neon::dot_fxp_small(x, q) },
        _ => scalar::dot_fxp_small(x, q),
    }
}

/// `(x . x, x . q)` in one pass, exact under the preconditions of [`dot_i16`] for both pairs
/// (`group` valid for `x . x` and for `x . q`).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[inline]
pub fn dot2_i16(backend: Backend, x: &[i16], q: &[i16], group: usize) -> (i64, i64) {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe { avx2::dot2_i16(x, q, group.max(1)) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `usable` returned Neon only because the CPU has NEON (aarch64 baseline).
        Backend::Neon => unsafe { (neon::dot_i16(x, x), neon::dot_i16(x, q)) },
        _ => (scalar::dot_i16(x, x), scalar::dot_i16(x, q)),
    }
}

/// `(x . x, lane bound)`: the lane bound is the largest sum of squares over the coordinate
/// sets that the AVX2 kernels accumulate in one 32-bit lane (coordinate `i` of the first
/// `16 * floor(len / 16)` goes to lane `(i mod 16) / 2`; the tail is summed in 64 bits).
/// By Cauchy-Schwarz every partial lane sum of `x . q` is at most
/// `sqrt(bound(x) * bound(q))`, so when `bound(x) * bound(q) < (2^31 - 1)^2` no group limit is
/// needed ([`lanes_fit`]). Requires |components| <= `NARROW_MAX`.
#[inline]
pub fn norms_i16(backend: Backend, x: &[i16]) -> (i64, u64) {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe { avx2::norms_i16(x) },
        _ => scalar::norms_i16(x),
    }
}

/// True when two vectors' lane bounds ([`norms_i16`]) prove that no 32-bit lane of their
/// `vpmaddwd` dot product can overflow, whatever the group size.
#[inline]
pub fn lanes_fit(bx: u64, bq: u64) -> bool {
    const LIM: u128 = (i32::MAX as u128) * (i32::MAX as u128);
    u128::from(bx) * u128::from(bq) <= LIM
}

/// Distances of consecutive rows, one call per block (the per-row work inlines into the SIMD
/// code): `out[r]` for row `r` of `data` (rows `stride` apart, the first `q.len()`
/// components used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKernel {
    /// [`l2_i16`] with this group.
    L2I16(usize),
    /// `x . x + qq - 2 x . q` from [`dot2_i16`] with this group.
    L2ExpandI16 {
        /// Group size valid for `x . x` and `x . q`.
        group: usize,
        /// `q . q`.
        qq: i64,
    },
    /// [`dot_i16`] with this group.
    DotI16(usize),
    /// [`l2_i16`] when every row's whole sum is below 2^31 (and the differences fit an
    /// `i16`): 32-bit lanes throughout, two rows reduced together (short rows).
    L2I16Short,
}

/// Applies `kernel` to `out.len()` narrow rows.
#[inline]
pub fn rows_i16(
    backend: Backend,
    kernel: RowKernel,
    data: &[i16],
    stride: usize,
    q: &[i16],
    out: &mut [i64],
) {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe { avx2::rows_i16(kernel, data, stride, q, out) },
        b => {
            for (o, x) in out.iter_mut().zip(data.chunks(stride.max(1))) {
                let x = x.get(..q.len()).unwrap_or(x);
                *o = match kernel {
                    RowKernel::L2I16(g) => l2_i16(b, x, q, g),
                    RowKernel::L2ExpandI16 { group, qq } => {
                        let (xx, xq) = dot2_i16(b, x, q, group);
                        xx + qq - 2 * xq
                    }
                    RowKernel::DotI16(g) => dot_i16(b, x, q, g),
                    RowKernel::L2I16Short => l2_i16(b, x, q, usize::MAX),
                };
            }
        }
    }
}

/// [`l2_fxp_small`] (`l2 = true`) or [`dot_fxp_small`] of `out.len()` consecutive wide rows
/// of `q.len()` components each. Returns a mask of the rows (the first 64) whose value is at
/// most `limit`, so that a scan looks only at rows that can enter its top-k.
#[inline]
pub fn rows_fxp_small(
    backend: Backend,
    l2: bool,
    data: &[Fxp],
    q: &[Fxp],
    limit: i64,
    out: &mut [i64],
) -> u64 {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe {
            let stride = q.len();
            if l2 {
                avx2::rows_fxp_small::<true>(data, stride, q, limit, out)
            } else {
                avx2::rows_fxp_small::<false>(data, stride, q, limit, out)
            }
        },
        b => {
            for (o, x) in out.iter_mut().zip(data.chunks_exact(q.len().max(1))) {
                *o = if l2 {
                    l2_fxp_small(b, x, q) as i64
                } else {
                    dot_fxp_small(b, x, q)
                };
            }
            mask_at_most(out, limit)
        }
    }
}

/// Bit `i` set when `out[i] <= limit` (the first 64 values).
fn mask_at_most(out: &[i64], limit: i64) -> u64 {
    out.iter()
        .take(64)
        .enumerate()
        .fold(0, |m, (i, &v)| m | (u64::from(v <= limit) << i))
}

/// [`l2_fxp_small`] (`l2 = true`) or [`dot_fxp_small`] of `out.len()` consecutive mid-width
/// rows (`stride` bytes apart; a row of `d = q.len()` components is `d` native `i16` top
/// halves `x >> 8`, then `d` low bytes) against `q`, under the same bound
/// (`max|x| + max|q| < fxp::SMALL_LIMIT`). Returns the mask of [`rows_fxp_small`].
#[inline]
pub fn rows_mid_small(
    backend: Backend,
    l2: bool,
    data: &[u8],
    stride: usize,
    q: &[Fxp],
    limit: i64,
    out: &mut [i64],
) -> u64 {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `usable` returned Avx2 only because the CPU supports AVX2.
        Backend::Avx2 => unsafe {
            if l2 {
                avx2::rows_mid_small::<true>(data, stride, q, limit, out)
            } else {
                avx2::rows_mid_small::<false>(data, stride, q, limit, out)
            }
        },
        _ => {
            for (o, x) in out.iter_mut().zip(data.chunks(stride.max(1))) {
                *o = scalar::mid_small(l2, x, q);
            }
            mask_at_most(out, limit)
        }
    }
}

/// The reference implementations: one integer loop each.
pub mod scalar {
    use crate::fxp::Fxp;

    /// Reference for [`super::dot_i16`].
    #[inline]
    pub fn dot_i16(x: &[i16], q: &[i16]) -> i64 {
        x.iter()
            .zip(q)
            .map(|(&a, &b)| i64::from(i32::from(a) * i32::from(b)))
            .sum()
    }

    /// Reference for [`super::l2_i16`] (exact for any `i16` input: 64-bit arithmetic).
    #[inline]
    pub fn l2_i16(x: &[i16], q: &[i16]) -> i64 {
        x.iter()
            .zip(q)
            .map(|(&a, &b)| {
                let d = i64::from(a) - i64::from(b);
                d * d
            })
            .sum()
    }

    /// Reference for [`super::norms_i16`].
    pub fn norms_i16(x: &[i16]) -> (i64, u64) {
        let mut lanes = [0u64; 8];
        let full = x.len() / 16 * 16;
        for (i, &v) in x.iter().enumerate().take(full) {
            if let Some(l) = lanes.get_mut((i % 16) / 2) {
                *l += (i64::from(v) * i64::from(v)) as u64;
            }
        }
        (dot_i16(x, x), lanes.iter().copied().max().unwrap_or(0))
    }

    /// Component `i` of a mid-width row of `dim` components (see [`super::rows_mid_small`]).
    #[inline]
    pub fn mid(x: &[u8], i: usize, dim: usize) -> i32 {
        let top = match x.get(2 * i..2 * i + 2) {
            Some(&[a, b]) => i32::from(bytemuck::cast::<[u8; 2], i16>([a, b])),
            _ => 0,
        };
        let low = x.get(2 * dim + i).copied().map_or(0, i32::from);
        (top << 8) | low
    }

    /// Reference for [`super::rows_mid_small`] (one row, `q.len()` components).
    #[inline]
    pub fn mid_small(l2: bool, x: &[u8], q: &[Fxp]) -> i64 {
        let mut acc: i64 = 0;
        let dim = q.len();
        for (i, b) in q.iter().enumerate() {
            let a = mid(x, i, dim);
            acc = acc.wrapping_add(if l2 {
                let d = i64::from(a) - i64::from(b.0);
                d * d
            } else {
                i64::from(a) * i64::from(b.0)
            });
        }
        acc
    }

    /// [`l2_fxp_small`] (`l2`) or [`dot_fxp_small`] as one function (block kernels' tails).
    pub fn fxp_small(l2: bool, x: &[Fxp], q: &[Fxp]) -> i64 {
        if l2 {
            l2_fxp_small(x, q) as i64
        } else {
            dot_fxp_small(x, q)
        }
    }

    /// Reference for [`super::l2_fxp_small`].
    #[inline]
    pub fn l2_fxp_small(x: &[Fxp], q: &[Fxp]) -> u64 {
        let mut acc: u64 = 0;
        for (a, b) in x.iter().zip(q) {
            // |a - b| < 2^23 fits i32; its square < 2^46.
            let d = u64::from(a.0.wrapping_sub(b.0).unsigned_abs());
            acc = acc.wrapping_add(d * d);
        }
        acc
    }

    /// Reference for [`super::dot_fxp_small`].
    #[inline]
    pub fn dot_fxp_small(x: &[Fxp], q: &[Fxp]) -> i64 {
        let mut acc: i64 = 0;
        for (a, b) in x.iter().zip(q) {
            acc = acc.wrapping_add(i64::from(a.0) * i64::from(b.0));
        }
        acc
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::scalar;
    use crate::fxp::Fxp;
    use core::arch::x86_64::*;

    /// Loads 16 `i16` (the caller passes a chunk of exactly 16).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load16(c: &[i16]) -> __m256i {
        debug_assert!(c.len() >= 16);
        // SAFETY: `c` holds at least 16 `i16` = 32 bytes (chunks_exact(16)); unaligned load.
        unsafe { _mm256_loadu_si256(c.as_ptr().cast()) }
    }

    /// Loads 8 `Fxp` (the caller passes a chunk of exactly 8).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load8(c: &[Fxp]) -> __m256i {
        debug_assert!(c.len() >= 8);
        // SAFETY: `c` holds at least 8 `Fxp` (repr(transparent) i32) = 32 bytes; unaligned.
        unsafe { _mm256_loadu_si256(c.as_ptr().cast()) }
    }

    /// Rows ahead of the current one that a scan asks the cache to fetch.
    const PREFETCH_ROWS: usize = 16;

    /// A hint to fetch the cache line holding `data[at]` (nothing if out of range).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn prefetch<T>(data: &[T], at: usize) {
        if let Some(p) = data.get(at) {
            // Prefetching has no effect on memory contents; `p` points into `data`.
            _mm_prefetch::<_MM_HINT_T0>((p as *const T).cast());
        }
    }

    /// Sign-extends the eight 32-bit lanes of `v` to 64 bits and adds them to `acc`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn widen_add(acc: __m256i, v: __m256i) -> __m256i {
        let lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
        let hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(v));
        _mm256_add_epi64(acc, _mm256_add_epi64(lo, hi))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum64(v: __m256i) -> i64 {
        let s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        _mm_cvtsi128_si64(s).wrapping_add(_mm_extract_epi64::<1>(s))
    }

    /// `x . q` (or, with `L2`, `(x - q) . (x - q)`) with 32-bit lanes widened every `group`
    /// multiply-adds.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn grouped<const L2: bool>(x: &[i16], q: &[i16], group: usize) -> i64 {
        let n = x.len().min(q.len());
        let (x, q) = (x.get(..n).unwrap_or(&[]), q.get(..n).unwrap_or(&[]));
        let mut xs = x.chunks_exact(16);
        let mut qs = q.chunks_exact(16);
        let mut acc = _mm256_setzero_si256();
        loop {
            let mut lane = _mm256_setzero_si256();
            let mut took = 0;
            for (a, b) in (&mut xs).zip(&mut qs).take(group) {
                let (a, b) = (load16(a), load16(b));
                let term = if L2 {
                    let d = _mm256_sub_epi16(a, b);
                    _mm256_madd_epi16(d, d)
                } else {
                    _mm256_madd_epi16(a, b)
                };
                lane = _mm256_add_epi32(lane, term);
                took += 1;
            }
            acc = widen_add(acc, lane);
            if took < group {
                break;
            }
        }
        let (xt, qt) = (xs.remainder(), qs.remainder());
        let tail = if L2 {
            scalar::l2_i16(xt, qt)
        } else {
            scalar::dot_i16(xt, qt)
        };
        hsum64(acc).wrapping_add(tail)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn dot_i16(x: &[i16], q: &[i16], group: usize) -> i64 {
        grouped::<false>(x, q, group)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn dot_i16_x4(x: &[i16], q: [&[i16]; 4], group: usize) -> [i64; 4] {
        let n = q.iter().fold(x.len(), |n, q| n.min(q.len()));
        let x = x.get(..n).unwrap_or(&[]);
        let q = q.map(|q| q.get(..n).unwrap_or(&[]));
        let full = n / 16;
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut at = 0;
        while at < full {
            let end = at.saturating_add(group).min(full);
            let mut lane = [_mm256_setzero_si256(); 4];
            for c in at..end {
                let r = c * 16..c * 16 + 16;
                let (Some(xc), Some(q0), Some(q1), Some(q2), Some(q3)) = (
                    x.get(r.clone()),
                    q[0].get(r.clone()),
                    q[1].get(r.clone()),
                    q[2].get(r.clone()),
                    q[3].get(r),
                ) else {
                    break;
                };
                let xv = load16(xc);
                lane[0] = _mm256_add_epi32(lane[0], _mm256_madd_epi16(xv, load16(q0)));
                lane[1] = _mm256_add_epi32(lane[1], _mm256_madd_epi16(xv, load16(q1)));
                lane[2] = _mm256_add_epi32(lane[2], _mm256_madd_epi16(xv, load16(q2)));
                lane[3] = _mm256_add_epi32(lane[3], _mm256_madd_epi16(xv, load16(q3)));
            }
            for (a, l) in acc.iter_mut().zip(lane) {
                *a = widen_add(*a, l);
            }
            at = end;
        }
        let tail = full * 16;
        let xt = x.get(tail..).unwrap_or(&[]);
        let mut out = [0i64; 4];
        for ((o, a), qj) in out.iter_mut().zip(acc).zip(q) {
            *o = hsum64(a).wrapping_add(scalar::dot_i16(xt, qj.get(tail..).unwrap_or(&[])));
        }
        out
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn l2_i16(x: &[i16], q: &[i16], group: usize) -> i64 {
        grouped::<true>(x, q, group)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn dot2_i16(x: &[i16], q: &[i16], group: usize) -> (i64, i64) {
        let n = x.len().min(q.len());
        let (x, q) = (x.get(..n).unwrap_or(&[]), q.get(..n).unwrap_or(&[]));
        let mut xs = x.chunks_exact(16);
        let mut qs = q.chunks_exact(16);
        let (mut axx, mut axq) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        loop {
            let (mut lxx, mut lxq) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let mut took = 0;
            for (a, b) in (&mut xs).zip(&mut qs).take(group) {
                let a = load16(a);
                lxx = _mm256_add_epi32(lxx, _mm256_madd_epi16(a, a));
                lxq = _mm256_add_epi32(lxq, _mm256_madd_epi16(a, load16(b)));
                took += 1;
            }
            axx = widen_add(axx, lxx);
            axq = widen_add(axq, lxq);
            if took < group {
                break;
            }
        }
        let (xt, qt) = (xs.remainder(), qs.remainder());
        (
            hsum64(axx).wrapping_add(scalar::dot_i16(xt, xt)),
            hsum64(axq).wrapping_add(scalar::dot_i16(xt, qt)),
        )
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn norms_i16(x: &[i16]) -> (i64, u64) {
        // Each vpmaddwd lane of x.x is below 2^31 (NARROW_MAX): widen after every one.
        let mut xs = x.chunks_exact(16);
        let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for a in &mut xs {
            let a = load16(a);
            let m = _mm256_madd_epi16(a, a);
            lo = _mm256_add_epi64(lo, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(m)));
            hi = _mm256_add_epi64(hi, _mm256_cvtepu32_epi64(_mm256_extracti128_si256::<1>(m)));
        }
        let mut lanes = [0u64; 8];
        // SAFETY: `lanes` is 64 bytes = two unaligned 32-byte stores.
        unsafe {
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), lo);
            _mm256_storeu_si256(lanes.as_mut_ptr().add(4).cast(), hi);
        }
        let tail = xs.remainder();
        let xx = lanes.iter().sum::<u64>() as i64 + scalar::dot_i16(tail, tail);
        (xx, lanes.iter().copied().max().unwrap_or(0))
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn rows_i16(
        kernel: super::RowKernel,
        data: &[i16],
        stride: usize,
        q: &[i16],
        out: &mut [i64],
    ) {
        use super::RowKernel;
        let dim = q.len();
        let rows = out.iter_mut().zip(data.chunks(stride.max(1)));
        match kernel {
            RowKernel::L2I16(g) => {
                for (o, x) in rows {
                    *o = l2_i16(x.get(..dim).unwrap_or(x), q, g);
                }
            }
            RowKernel::L2ExpandI16 { group, qq } => {
                for (o, x) in rows {
                    let (xx, xq) = dot2_i16(x.get(..dim).unwrap_or(x), q, group);
                    *o = xx + qq - 2 * xq;
                }
            }
            RowKernel::DotI16(g) => {
                for (o, x) in rows {
                    *o = dot_i16(x.get(..dim).unwrap_or(x), q, g);
                }
            }
            RowKernel::L2I16Short => l2_i16_short(data, stride, q, out),
        }
    }

    /// `|x - q|^2` of short rows whose sums fit 32 bits: per row one `vpmaddwd` per 16
    /// components into 32-bit lanes, and the lanes of two rows reduced together.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn l2_i16_short(data: &[i16], stride: usize, q: &[i16], out: &mut [i64]) {
        let dim = q.len();
        let full = dim / 16;
        let row_sum = |x: &[i16]| -> __m256i {
            let mut acc = _mm256_setzero_si256();
            for (a, b) in x.chunks_exact(16).zip(q.chunks_exact(16)) {
                let d = _mm256_sub_epi16(load16(a), load16(b));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(d, d));
            }
            acc
        };
        let tail = |x: &[i16]| -> i64 {
            scalar::l2_i16(
                x.get(16 * full..dim).unwrap_or(&[]),
                q.get(16 * full..).unwrap_or(&[]),
            )
        };
        let mut rows = data.chunks(stride.max(1));
        let mut pairs = out.chunks_exact_mut(2);
        for o in &mut pairs {
            let (Some(r0), Some(r1)) = (rows.next(), rows.next()) else {
                break;
            };
            let (a, b) = (row_sum(r0), row_sum(r1));
            // [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7] -> two sums.
            let h = _mm256_hadd_epi32(a, b);
            let h = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            let h = _mm_hadd_epi32(h, h);
            let (s0, s1) = (
                i64::from(_mm_cvtsi128_si32(h) as u32),
                i64::from(_mm_extract_epi32::<1>(h) as u32),
            );
            if let [o0, o1] = o {
                *o0 = s0 + tail(r0);
                *o1 = s1 + tail(r1);
            }
        }
        if let (Some(o), Some(r)) = (pairs.into_remainder().first_mut(), rows.next()) {
            let a = row_sum(r);
            let h = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
            let h = _mm_hadd_epi32(h, h);
            let h = _mm_hadd_epi32(h, h);
            *o = i64::from(_mm_cvtsi128_si32(h) as u32) + tail(r);
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn rows_dot_i16_x4(
        data: &[i16],
        stride: usize,
        q: [&[i16]; 4],
        group: usize,
        out: &mut [[i64; 4]],
    ) {
        let dim = q[0].len();
        for (o, x) in out.iter_mut().zip(data.chunks(stride.max(1))) {
            *o = dot_i16_x4(x.get(..dim).unwrap_or(x), q, group);
        }
    }

    /// Eight mid-width components: 16 bytes of `i16` top halves and 8 low bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_mid8(top: &[u8], low: &[u8]) -> __m256i {
        debug_assert!(top.len() >= 16 && low.len() >= 8);
        // SAFETY: `top` holds at least 16 bytes, `low` at least 8 (chunks_exact).
        let (t, l) = unsafe {
            (
                _mm_loadu_si128(top.as_ptr().cast()),
                _mm_loadl_epi64(low.as_ptr().cast()),
            )
        };
        let hi = _mm256_slli_epi32::<8>(_mm256_cvtepi16_epi32(t));
        _mm256_or_si256(hi, _mm256_cvtepu8_epi32(l))
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn rows_mid_small<const L2: bool>(
        data: &[u8],
        stride: usize,
        q: &[Fxp],
        limit: i64,
        out: &mut [i64],
    ) -> u64 {
        let dim = q.len();
        let full = dim / 8;
        let mut mask = 0u64;
        for (i, (o, row)) in out.iter_mut().zip(data.chunks(stride.max(1))).enumerate() {
            prefetch(data, (i + PREFETCH_ROWS) * stride);
            let top = row.get(..16 * full).unwrap_or(&[]).chunks_exact(16);
            let low = row
                .get(2 * dim..2 * dim + 8 * full)
                .unwrap_or(&[])
                .chunks_exact(8);
            let mut acc = _mm256_setzero_si256();
            for ((t, l), qc) in top.zip(low).zip(q.chunks_exact(8)) {
                acc = acc8::<L2>(acc, load_mid8(t, l), load8(qc));
            }
            let mut v = hsum64(acc);
            for (j, b) in q.iter().enumerate().skip(8 * full) {
                let a = i64::from(scalar::mid(row, j, dim));
                v = v.wrapping_add(if L2 {
                    (a - i64::from(b.0)) * (a - i64::from(b.0))
                } else {
                    a * i64::from(b.0)
                });
            }
            *o = v;
            mask |= u64::from(v <= limit).checked_shl(i as u32).unwrap_or(0);
        }
        mask
    }

    /// Adds row `x`'s terms against `q` (eight components) to `acc`: squared differences
    /// (`L2`) or products, exact in 64-bit lanes under `fxp::SMALL_LIMIT`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn acc8<const L2: bool>(acc: __m256i, x: __m256i, q: __m256i) -> __m256i {
        if L2 {
            // |d| < 2^23: exact 64-bit squares of the even and odd lanes.
            let d = _mm256_sub_epi32(x, q);
            let o = _mm256_srli_epi64::<32>(d);
            _mm256_add_epi64(
                acc,
                _mm256_add_epi64(_mm256_mul_epi32(d, d), _mm256_mul_epi32(o, o)),
            )
        } else {
            let (xo, qo) = (_mm256_srli_epi64::<32>(x), _mm256_srli_epi64::<32>(q));
            _mm256_add_epi64(
                acc,
                _mm256_add_epi64(_mm256_mul_epi32(x, q), _mm256_mul_epi32(xo, qo)),
            )
        }
    }

    /// The horizontal sums of two rows' accumulators.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum64x2(a: __m256i, b: __m256i) -> (i64, i64) {
        // [a0+a1, b0+b1, a2+a3, b2+b3] -> [a0+a1+a2+a3, b0+b1+b2+b3]
        let s = _mm256_add_epi64(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
        let t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
        (_mm_cvtsi128_si64(t), _mm_extract_epi64::<1>(t))
    }

    /// The block kernels over small-bound rows, two rows per pass so that each query chunk
    /// is loaded once for both and their sums share one reduction. `$unit` elements per
    /// eight components: 24 bytes (mid width) or 8 `Fxp` (wide).
    macro_rules! rows_small {
        ($name:ident, $t:ty, $per8:expr, $load:ident, $tail:expr) => {
            #[target_feature(enable = "avx2")]
            pub(super) fn $name<const L2: bool>(
                data: &[$t],
                stride: usize,
                q: &[Fxp],
                limit: i64,
                out: &mut [i64],
            ) -> u64 {
                let stride = stride.max(1);
                let mut mask = 0u64;
                let mut at = 0u32;
                let used = q.len() / 8 * $per8;
                let has_tail = q.len() % 8 != 0;
                let tail = |x: &[$t]| -> i64 {
                    $tail(
                        L2,
                        x.get(used..).unwrap_or(&[]),
                        q.get(used / $per8 * 8..).unwrap_or(&[]),
                    )
                };
                let mut rows = data.chunks(stride);
                let mut ahead = PREFETCH_ROWS * stride;
                let mut pairs = out.chunks_exact_mut(2);
                for o in &mut pairs {
                    let (Some(r0), Some(r1)) = (rows.next(), rows.next()) else {
                        break;
                    };
                    prefetch(data, ahead);
                    prefetch(data, ahead + stride);
                    ahead += 2 * stride;
                    let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    let x0 = r0.get(..used).unwrap_or(&[]).chunks_exact($per8);
                    let x1 = r1.get(..used).unwrap_or(&[]).chunks_exact($per8);
                    for ((c0, c1), qc) in x0.zip(x1).zip(q.chunks_exact(8)) {
                        let qv = load8(qc);
                        a0 = acc8::<L2>(a0, $load(c0), qv);
                        a1 = acc8::<L2>(a1, $load(c1), qv);
                    }
                    let (s0, s1) = hsum64x2(a0, a1);
                    let (s0, s1) = if has_tail {
                        (s0.wrapping_add(tail(r0)), s1.wrapping_add(tail(r1)))
                    } else {
                        (s0, s1)
                    };
                    if let [o0, o1] = o {
                        *o0 = s0;
                        *o1 = s1;
                    }
                    mask |= (u64::from(s0 <= limit) | u64::from(s1 <= limit) << 1)
                        .checked_shl(at)
                        .unwrap_or(0);
                    at += 2;
                }
                if let (Some(o), Some(r)) = (pairs.into_remainder().first_mut(), rows.next()) {
                    let mut a = _mm256_setzero_si256();
                    let x = r.get(..used).unwrap_or(&[]).chunks_exact($per8);
                    for (c, qc) in x.zip(q.chunks_exact(8)) {
                        a = acc8::<L2>(a, $load(c), load8(qc));
                    }
                    *o = hsum64(a).wrapping_add(tail(r));
                    mask |= u64::from(*o <= limit).checked_shl(at).unwrap_or(0);
                }
                mask
            }
        };
    }

    rows_small!(rows_fxp_small, Fxp, 8, load8, scalar::fxp_small);

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn l2_fxp_small(x: &[Fxp], q: &[Fxp]) -> u64 {
        let mut xs = x.chunks_exact(8);
        let mut qs = q.chunks_exact(8);
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        for (a, b) in (&mut xs).zip(&mut qs) {
            // |d| < 2^23: the signed 32x32->64 products of the even and odd lanes are exact.
            let d = _mm256_sub_epi32(load8(a), load8(b));
            acc0 = _mm256_add_epi64(acc0, _mm256_mul_epi32(d, d));
            let o = _mm256_srli_epi64::<32>(d);
            acc1 = _mm256_add_epi64(acc1, _mm256_mul_epi32(o, o));
        }
        (hsum64(_mm256_add_epi64(acc0, acc1)) as u64)
            .wrapping_add(scalar::l2_fxp_small(xs.remainder(), qs.remainder()))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn dot_fxp_small(x: &[Fxp], q: &[Fxp]) -> i64 {
        let mut xs = x.chunks_exact(8);
        let mut qs = q.chunks_exact(8);
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        for (a, b) in (&mut xs).zip(&mut qs) {
            let (a, b) = (load8(a), load8(b));
            acc0 = _mm256_add_epi64(acc0, _mm256_mul_epi32(a, b));
            let (ao, bo) = (_mm256_srli_epi64::<32>(a), _mm256_srli_epi64::<32>(b));
            acc1 = _mm256_add_epi64(acc1, _mm256_mul_epi32(ao, bo));
        }
        hsum64(_mm256_add_epi64(acc0, acc1))
            .wrapping_add(scalar::dot_fxp_small(xs.remainder(), qs.remainder()))
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::scalar;
    use crate::fxp::Fxp;
    use core::arch::aarch64::*;

    #[inline]
    #[target_feature(enable = "neon")]
    fn load8(c: &[i16]) -> int16x8_t {
        debug_assert!(c.len() >= 8);
        // SAFETY: `c` holds at least 8 `i16` (chunks_exact(8)); NEON is baseline on aarch64.
        unsafe { vld1q_s16(c.as_ptr()) }
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn load4(c: &[Fxp]) -> int32x4_t {
        debug_assert!(c.len() >= 4);
        // SAFETY: `c` holds at least 4 `Fxp` (repr(transparent) i32).
        unsafe { vld1q_s32(c.as_ptr().cast()) }
    }

    /// Adds the eight exact 32-bit products of `a * b` to `acc` in 64-bit lanes.
    #[inline]
    #[target_feature(enable = "neon")]
    fn mac(acc: int64x2_t, a: int16x8_t, b: int16x8_t) -> int64x2_t {
        let lo = vmull_s16(vget_low_s16(a), vget_low_s16(b));
        let hi = vmull_high_s16(a, b);
        vpadalq_s32(vpadalq_s32(acc, lo), hi)
    }

    #[target_feature(enable = "neon")]
    pub(super) fn dot_i16(x: &[i16], q: &[i16]) -> i64 {
        let mut xs = x.chunks_exact(8);
        let mut qs = q.chunks_exact(8);
        let mut acc = vdupq_n_s64(0);
        for (a, b) in (&mut xs).zip(&mut qs) {
            acc = mac(acc, load8(a), load8(b));
        }
        let s = vaddvq_s64(acc);
        s.wrapping_add(scalar::dot_i16(xs.remainder(), qs.remainder()))
    }

    #[target_feature(enable = "neon")]
    pub(super) fn dot_i16_x4(x: &[i16], q: [&[i16]; 4]) -> [i64; 4] {
        let n = q.iter().fold(x.len(), |n, q| n.min(q.len()));
        let full = n / 8;
        let mut acc = [vdupq_n_s64(0); 4];
        for c in 0..full {
            let r = c * 8..c * 8 + 8;
            let Some(xc) = x.get(r.clone()) else { break };
            let xv = load8(xc);
            for (a, qj) in acc.iter_mut().zip(q) {
                if let Some(qc) = qj.get(r.clone()) {
                    *a = mac(*a, xv, load8(qc));
                }
            }
        }
        let tail = full * 8;
        let xt = x.get(tail..n).unwrap_or(&[]);
        let mut out = [0i64; 4];
        for ((o, a), qj) in out.iter_mut().zip(acc).zip(q) {
            let s = vaddvq_s64(a);
            *o = s.wrapping_add(scalar::dot_i16(xt, qj.get(tail..n).unwrap_or(&[])));
        }
        out
    }

    #[target_feature(enable = "neon")]
    pub(super) fn l2_i16(x: &[i16], q: &[i16]) -> i64 {
        let mut xs = x.chunks_exact(8);
        let mut qs = q.chunks_exact(8);
        let mut acc = vdupq_n_s64(0);
        for (a, b) in (&mut xs).zip(&mut qs) {
            // |a - b| <= NARROW_MAX by the caller's bound: no wrap.
            let d = vsubq_s16(load8(a), load8(b));
            acc = mac(acc, d, d);
        }
        let s = vaddvq_s64(acc);
        s.wrapping_add(scalar::l2_i16(xs.remainder(), qs.remainder()))
    }

    #[target_feature(enable = "neon")]
    pub(super) fn l2_fxp_small(x: &[Fxp], q: &[Fxp]) -> u64 {
        let mut xs = x.chunks_exact(4);
        let mut qs = q.chunks_exact(4);
        let s = {
            let mut acc = vdupq_n_s64(0);
            for (a, b) in (&mut xs).zip(&mut qs) {
                let d = vsubq_s32(load4(a), load4(b));
                acc = vmlal_s32(acc, vget_low_s32(d), vget_low_s32(d));
                acc = vmlal_high_s32(acc, d, d);
            }
            vaddvq_s64(acc)
        };
        (s as u64).wrapping_add(scalar::l2_fxp_small(xs.remainder(), qs.remainder()))
    }

    #[target_feature(enable = "neon")]
    pub(super) fn dot_fxp_small(x: &[Fxp], q: &[Fxp]) -> i64 {
        let mut xs = x.chunks_exact(4);
        let mut qs = q.chunks_exact(4);
        let s = {
            let mut acc = vdupq_n_s64(0);
            for (a, b) in (&mut xs).zip(&mut qs) {
                let (a, b) = (load4(a), load4(b));
                acc = vmlal_s32(acc, vget_low_s32(a), vget_low_s32(b));
                acc = vmlal_high_s32(acc, a, b);
            }
            vaddvq_s64(acc)
        };
        s.wrapping_add(scalar::dot_fxp_small(xs.remainder(), qs.remainder()))
    }
}
