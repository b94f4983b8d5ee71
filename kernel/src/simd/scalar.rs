//! The reference implementations: one integer loop each. Every other backend must give
//! these results bit for bit (`tests/simd.rs`).

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
