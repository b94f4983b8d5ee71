//! NEON kernels (aarch64 Advanced SIMD). Each gives the scalar reference's result bit for
//! bit: the same integer products and sums in another order, exact under the bounds stated in
//! `super`.
//!
//! The kernels are `#[target_feature(enable = "neon")]` functions, so calling one is only
//! sound where NEON is available. The rest of the crate reaches them only through [`Neon`], a
//! proof that exists only on targets that have it.

// Unsafe code is allowed here and in `avx2.rs` only: the kernels load vectors through raw
// pointers (`vld1q_*`), and calling a `#[target_feature]` function from code compiled
// without the feature is `unsafe` (sound once the feature is known to be present).
#![allow(unsafe_code)]

use super::scalar;
use crate::fxp::Fxp;
use core::arch::aarch64::*;

/// Proof that this CPU has NEON: only [`Neon::detect`] makes one, so its methods (the safe
/// entry points to this module's kernels) can call them.
#[derive(Clone, Copy)]
pub(super) struct Neon(());

impl Neon {
    /// `Some` when the target has NEON (part of the aarch64 baseline; absent only on
    /// soft-float targets).
    #[inline]
    pub(super) fn detect() -> Option<Neon> {
        cfg!(target_feature = "neon").then_some(Neon(()))
    }

    /// [`super::dot_i16`].
    #[inline]
    pub(super) fn dot_i16(self, x: &[i16], q: &[i16]) -> i64 {
        // SAFETY: `self` exists only because `Neon::detect` found NEON (aarch64 baseline).
        unsafe { dot_i16(x, q) }
    }

    /// [`super::dot_i16_x4`].
    #[inline]
    pub(super) fn dot_i16_x4(self, x: &[i16], q: [&[i16]; 4]) -> [i64; 4] {
        // SAFETY: `self` exists only because `Neon::detect` found NEON (aarch64 baseline).
        unsafe { dot_i16_x4(x, q) }
    }

    /// [`super::l2_i16`].
    #[inline]
    pub(super) fn l2_i16(self, x: &[i16], q: &[i16]) -> i64 {
        // SAFETY: `self` exists only because `Neon::detect` found NEON (aarch64 baseline).
        unsafe { l2_i16(x, q) }
    }

    /// [`super::l2_fxp_small`].
    #[inline]
    pub(super) fn l2_fxp_small(self, x: &[Fxp], q: &[Fxp]) -> u64 {
        // SAFETY: `self` exists only because `Neon::detect` found NEON (aarch64 baseline).
        unsafe { l2_fxp_small(x, q) }
    }

    /// [`super::dot_fxp_small`].
    #[inline]
    pub(super) fn dot_fxp_small(self, x: &[Fxp], q: &[Fxp]) -> i64 {
        // SAFETY: `self` exists only because `Neon::detect` found NEON (aarch64 baseline).
        unsafe { dot_fxp_small(x, q) }
    }
}

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
fn dot_i16(x: &[i16], q: &[i16]) -> i64 {
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
fn dot_i16_x4(x: &[i16], q: [&[i16]; 4]) -> [i64; 4] {
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
fn l2_i16(x: &[i16], q: &[i16]) -> i64 {
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
fn l2_fxp_small(x: &[Fxp], q: &[Fxp]) -> u64 {
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
fn dot_fxp_small(x: &[Fxp], q: &[Fxp]) -> i64 {
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
