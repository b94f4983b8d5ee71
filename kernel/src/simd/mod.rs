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
//!   `crate::vectors`). AVX2 multiplies pairs with `vpmaddwd` (16 products per instruction)
//!   into 32-bit lanes, which are widened to 64 bits before they can overflow (`group`).
//! - [`Fxp`] (`i32`) under `fxp::SMALL_LIMIT`: products and squares are exact in 64 bits.
//!
//! Files: this one holds the bounds, the backend choice and the safe public functions;
//! `scalar.rs` the reference; `avx2.rs` and `neon.rs` the architecture kernels, the only
//! code in the crate allowed to use `unsafe`. They are reached only through a proof that
//! their CPU feature was detected (`Usable`), so nothing here needs `unsafe`.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod scalar;

use crate::fxp::Fxp;
#[cfg(target_arch = "x86_64")]
use avx2::Avx2;
#[cfg(target_arch = "aarch64")]
use neon::Neon;

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
        #[cfg(target_arch = "x86_64")]
        if Avx2::detect().is_some() {
            return Backend::Avx2;
        }
        #[cfg(target_arch = "aarch64")]
        if Neon::detect().is_some() {
            return Backend::Neon;
        }
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

    /// The backend with the proof that this CPU runs it, else scalar (a backend value can
    /// come from outside).
    #[inline]
    fn usable(self) -> Usable {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => Avx2::detect().map_or(Usable::Scalar, Usable::Avx2),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon => Neon::detect().map_or(Usable::Scalar, Usable::Neon),
            _ => Usable::Scalar,
        }
    }
}

/// A backend this CPU was checked to run: an architecture variant carries the proof of
/// detection that its module's safe entry points require.
#[derive(Clone, Copy)]
enum Usable {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    #[cfg(target_arch = "aarch64")]
    Neon(Neon),
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
        Usable::Avx2(cpu) => cpu.dot_i16(x, q, group.max(1)),
        #[cfg(target_arch = "aarch64")]
        Usable::Neon(cpu) => cpu.dot_i16(x, q),
        _ => scalar::dot_i16(x, q),
    }
}

/// Exact `sum(x[i] * q[i])` when the two vectors' lane bounds fit ([`lanes_fit`]), so no
/// 32-bit lane needs widening: the fastest form (independent accumulators).
#[inline]
pub fn dot_i16_free(backend: Backend, x: &[i16], q: &[i16]) -> i64 {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        Usable::Avx2(cpu) => cpu.dot_i16_free(x, q),
        #[cfg(target_arch = "aarch64")]
        Usable::Neon(cpu) => cpu.dot_i16(x, q),
        _ => scalar::dot_i16(x, q),
    }
}

/// Asks the cache to fetch every line of `data` (a hint: nothing else changes).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[inline]
pub fn prefetch_all(backend: Backend, data: &[i16]) {
    #[cfg(target_arch = "x86_64")]
    if let Usable::Avx2(cpu) = backend.usable() {
        cpu.prefetch_all(data);
    }
}

/// [`dot_i16`] of one stored vector against four queries at once (the batch scan's inner
/// kernel: each loaded component of `x` is used four times).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[inline]
pub fn dot_i16_x4(backend: Backend, x: &[i16], q: [&[i16]; 4], group: usize) -> [i64; 4] {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        Usable::Avx2(cpu) => cpu.dot_i16_x4(x, q, group.max(1)),
        #[cfg(target_arch = "aarch64")]
        Usable::Neon(cpu) => cpu.dot_i16_x4(x, q),
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
        Usable::Avx2(cpu) => cpu.rows_dot_i16_x4(data, stride, q, group.max(1), out),
        _ => {
            for (o, x) in out.iter_mut().zip(data.chunks(stride.max(1))) {
                *o = dot_i16_x4(backend, x.get(..dim).unwrap_or(x), q, group);
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
        Usable::Avx2(cpu) => cpu.l2_i16(x, q, group.max(1)),
        #[cfg(target_arch = "aarch64")]
        Usable::Neon(cpu) => cpu.l2_i16(x, q),
        _ => scalar::l2_i16(x, q),
    }
}

/// Exact squared L2 distance of two Q16.16 vectors when `max|x| + max|q| < fxp::SMALL_LIMIT`
/// and the length is at most `MAX_DIM` (the sum stays below 2^62).
#[inline]
pub fn l2_fxp_small(backend: Backend, x: &[Fxp], q: &[Fxp]) -> u64 {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        Usable::Avx2(cpu) => cpu.l2_fxp_small(x, q),
        #[cfg(target_arch = "aarch64")]
        Usable::Neon(cpu) => cpu.l2_fxp_small(x, q),
        _ => scalar::l2_fxp_small(x, q),
    }
}

/// Exact inner product of two Q16.16 vectors under the bound of [`l2_fxp_small`].
#[inline]
pub fn dot_fxp_small(backend: Backend, x: &[Fxp], q: &[Fxp]) -> i64 {
    match backend.usable() {
        #[cfg(target_arch = "x86_64")]
        Usable::Avx2(cpu) => cpu.dot_fxp_small(x, q),
        #[cfg(target_arch = "aarch64")]
        Usable::Neon(cpu) => cpu.dot_fxp_small(x, q),
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
        Usable::Avx2(cpu) => cpu.dot2_i16(x, q, group.max(1)),
        #[cfg(target_arch = "aarch64")]
        Usable::Neon(cpu) => (cpu.dot_i16(x, x), cpu.dot_i16(x, q)),
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
        Usable::Avx2(cpu) => cpu.norms_i16(x),
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
        Usable::Avx2(cpu) => cpu.rows_i16(kernel, data, stride, q, out),
        _ => {
            for (o, x) in out.iter_mut().zip(data.chunks(stride.max(1))) {
                let x = x.get(..q.len()).unwrap_or(x);
                *o = match kernel {
                    RowKernel::L2I16(g) => l2_i16(backend, x, q, g),
                    RowKernel::L2ExpandI16 { group, qq } => {
                        let (xx, xq) = dot2_i16(backend, x, q, group);
                        xx + qq - 2 * xq
                    }
                    RowKernel::DotI16(g) => dot_i16(backend, x, q, g),
                    RowKernel::L2I16Short => l2_i16(backend, x, q, usize::MAX),
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
        Usable::Avx2(cpu) => {
            let stride = q.len();
            if l2 {
                cpu.rows_fxp_small::<true>(data, stride, q, limit, out)
            } else {
                cpu.rows_fxp_small::<false>(data, stride, q, limit, out)
            }
        }
        _ => {
            for (o, x) in out.iter_mut().zip(data.chunks_exact(q.len().max(1))) {
                *o = if l2 {
                    l2_fxp_small(backend, x, q) as i64
                } else {
                    dot_fxp_small(backend, x, q)
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
        Usable::Avx2(cpu) => {
            if l2 {
                cpu.rows_mid_small::<true>(data, stride, q, limit, out)
            } else {
                cpu.rows_mid_small::<false>(data, stride, q, limit, out)
            }
        }
        _ => {
            for (o, x) in out.iter_mut().zip(data.chunks(stride.max(1))) {
                *o = scalar::mid_small(l2, x, q);
            }
            mask_at_most(out, limit)
        }
    }
}
