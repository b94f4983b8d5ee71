//! AVX2 kernels (x86_64). Each gives the scalar reference's result bit for bit: the same
//! integer products and sums in another order, exact under the bounds stated in `super`.
//!
//! The kernels are `#[target_feature(enable = "avx2")]` functions, so calling one is only
//! sound on a CPU with AVX2. The rest of the crate reaches them only through [`Avx2`], a proof
//! that exists only once that was checked.

// Unsafe code is allowed here and in `neon.rs` only: the kernels load vectors through raw
// pointers (unaligned `_mm256_loadu_si256`), and calling a `#[target_feature]` function from
// code compiled without the feature is `unsafe` (sound once the feature was detected).
#![allow(unsafe_code)]

use super::scalar;
use crate::fxp::Fxp;
use core::arch::x86_64::*;

/// Proof that this CPU runs AVX2: only [`Avx2::detect`] makes one, so its methods (the safe
/// entry points to this module's kernels) can call them.
#[derive(Clone, Copy)]
pub(super) struct Avx2(());

impl Avx2 {
    /// `Some` when this CPU runs AVX2: detected at run time with `std`, else enabled at
    /// compile time.
    #[inline]
    pub(super) fn detect() -> Option<Avx2> {
        #[cfg(feature = "std")]
        let found = std::is_x86_feature_detected!("avx2");
        #[cfg(not(feature = "std"))]
        let found = cfg!(target_feature = "avx2");
        found.then_some(Avx2(()))
    }

    /// [`super::dot_i16`]; `group >= 1`.
    #[inline]
    pub(super) fn dot_i16(self, x: &[i16], q: &[i16], group: usize) -> i64 {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { dot_i16(x, q, group) }
    }

    /// [`super::dot_i16_free`].
    #[inline]
    pub(super) fn dot_i16_free(self, x: &[i16], q: &[i16]) -> i64 {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { dot_i16_free(x, q) }
    }

    /// [`super::prefetch_all`].
    #[inline]
    pub(super) fn prefetch_all(self, data: &[i16]) {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { prefetch_lines(data) }
    }

    /// [`super::dot_i16_x4`]; `group >= 1`.
    #[inline]
    pub(super) fn dot_i16_x4(self, x: &[i16], q: [&[i16]; 4], group: usize) -> [i64; 4] {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { dot_i16_x4(x, q, group) }
    }

    /// [`super::rows_dot_i16_x4`]; `group >= 1`.
    #[inline]
    pub(super) fn rows_dot_i16_x4(
        self,
        data: &[i16],
        stride: usize,
        q: [&[i16]; 4],
        group: usize,
        out: &mut [[i64; 4]],
    ) {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { rows_dot_i16_x4(data, stride, q, group, out) }
    }

    /// [`super::l2_i16`]; `group >= 1`.
    #[inline]
    pub(super) fn l2_i16(self, x: &[i16], q: &[i16], group: usize) -> i64 {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { l2_i16(x, q, group) }
    }

    /// [`super::l2_fxp_small`].
    #[inline]
    pub(super) fn l2_fxp_small(self, x: &[Fxp], q: &[Fxp]) -> u64 {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { l2_fxp_small(x, q) }
    }

    /// [`super::dot_fxp_small`].
    #[inline]
    pub(super) fn dot_fxp_small(self, x: &[Fxp], q: &[Fxp]) -> i64 {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { dot_fxp_small(x, q) }
    }

    /// [`super::dot2_i16`]; `group >= 1`.
    #[inline]
    pub(super) fn dot2_i16(self, x: &[i16], q: &[i16], group: usize) -> (i64, i64) {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { dot2_i16(x, q, group) }
    }

    /// [`super::norms_i16`].
    #[inline]
    pub(super) fn norms_i16(self, x: &[i16]) -> (i64, u64) {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { norms_i16(x) }
    }

    /// [`super::rows_i16`].
    #[inline]
    pub(super) fn rows_i16(
        self,
        kernel: super::RowKernel,
        data: &[i16],
        stride: usize,
        q: &[i16],
        out: &mut [i64],
    ) {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { rows_i16(kernel, data, stride, q, out) }
    }

    /// [`super::rows_fxp_small`] of rows `stride` apart (`L2`: squared distances, else
    /// inner products).
    #[inline]
    pub(super) fn rows_fxp_small<const L2: bool>(
        self,
        data: &[Fxp],
        stride: usize,
        q: &[Fxp],
        limit: i64,
        out: &mut [i64],
    ) -> u64 {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { rows_fxp_small::<L2>(data, stride, q, limit, out) }
    }

    /// [`super::rows_mid_small`] (`L2`: squared distances, else inner products).
    #[inline]
    pub(super) fn rows_mid_small<const L2: bool>(
        self,
        data: &[u8],
        stride: usize,
        q: &[Fxp],
        limit: i64,
        out: &mut [i64],
    ) -> u64 {
        // SAFETY: `self` exists only because `Avx2::detect` found AVX2 on this CPU.
        unsafe { rows_mid_small::<L2>(data, stride, q, limit, out) }
    }
}

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

/// A hint to fetch the first cache lines of `data` (the hardware prefetcher follows on).
#[inline]
#[target_feature(enable = "avx2")]
fn prefetch_lines(data: &[i16]) {
    let mut at = 0;
    while at < data.len().min(PREFETCH_LINES * 32) {
        prefetch(data, at);
        at += 32;
    }
}

/// Cache lines of a row that [`prefetch_lines`] asks for.
const PREFETCH_LINES: usize = 4;

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
fn dot_i16(x: &[i16], q: &[i16], group: usize) -> i64 {
    grouped::<false>(x, q, group)
}

/// `x . q` with four independent 32-bit accumulators and no widening: each accumulator lane
/// sums a subset of one lane's products, so it is bounded as the lane's whole sum is
/// (`lanes_fit`, required by the caller).
#[inline]
#[target_feature(enable = "avx2")]
fn dot_i16_free(x: &[i16], q: &[i16]) -> i64 {
    let n = x.len().min(q.len());
    let (x, q) = (x.get(..n).unwrap_or(&[]), q.get(..n).unwrap_or(&[]));
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut xs = x.chunks_exact(64);
    let mut qs = q.chunks_exact(64);
    for (a, b) in (&mut xs).zip(&mut qs) {
        for (j, acc) in acc.iter_mut().enumerate() {
            let (Some(a), Some(b)) = (a.get(j * 16..j * 16 + 16), b.get(j * 16..j * 16 + 16))
            else {
                continue;
            };
            *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(load16(a), load16(b)));
        }
    }
    let (xr, qr) = (xs.remainder(), qs.remainder());
    let mut xs = xr.chunks_exact(16);
    let mut qs = qr.chunks_exact(16);
    for (a, b) in (&mut xs).zip(&mut qs) {
        acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(load16(a), load16(b)));
    }
    let lane = _mm256_add_epi32(
        _mm256_add_epi32(acc[0], acc[1]),
        _mm256_add_epi32(acc[2], acc[3]),
    );
    let tail = scalar::dot_i16(xs.remainder(), qs.remainder());
    hsum64(widen_add(_mm256_setzero_si256(), lane)).wrapping_add(tail)
}

#[inline]
#[target_feature(enable = "avx2")]
fn dot_i16_x4(x: &[i16], q: [&[i16]; 4], group: usize) -> [i64; 4] {
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
fn l2_i16(x: &[i16], q: &[i16], group: usize) -> i64 {
    grouped::<true>(x, q, group)
}

#[inline]
#[target_feature(enable = "avx2")]
fn dot2_i16(x: &[i16], q: &[i16], group: usize) -> (i64, i64) {
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
fn norms_i16(x: &[i16]) -> (i64, u64) {
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
fn rows_i16(kernel: super::RowKernel, data: &[i16], stride: usize, q: &[i16], out: &mut [i64]) {
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
fn rows_dot_i16_x4(
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
fn rows_mid_small<const L2: bool>(
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
        fn $name<const L2: bool>(
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
fn l2_fxp_small(x: &[Fxp], q: &[Fxp]) -> u64 {
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
fn dot_fxp_small(x: &[Fxp], q: &[Fxp]) -> i64 {
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
