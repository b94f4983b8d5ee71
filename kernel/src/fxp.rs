//! Q16.16 fixed point: conversion from floats at the edge, exact distances, normalisation.
//!
//! Conversion reads the IEEE-754 bit pattern and rounds with integer arithmetic, so it gives the
//! same result with or without an FPU, on every target. Distances accumulate in 128-bit
//! integers and are exact for every accepted input and every dimension up to
//! [`crate::MAX_DIM`]: a squared difference is below 2^64, a product below 2^62 in magnitude, and
//! 2^16 of either fit an `i128` with room to spare.

use crate::error::{Error, Invalid, Result};
use bytemuck::{Pod, Zeroable};

/// Number of fractional bits.
pub const FRAC_BITS: u32 = 16;
/// The raw value of 1.0.
pub const ONE: i32 = 1 << FRAC_BITS;
/// Largest accepted input, `i32::MAX / 65536` (about 32767.99998).
pub const MAX_F64: f64 = i32::MAX as f64 / ONE as f64;
/// Smallest accepted input, `-32768.0`.
pub const MIN_F64: f64 = -32768.0;

/// A Q16.16 fixed-point number: the real value is `raw / 65536`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Pod,
    Zeroable,
    serde::Serialize,
    serde::Deserialize,
)]
#[repr(transparent)]
pub struct Fxp(pub i32);

impl Fxp {
    /// 0.0
    pub const ZERO: Fxp = Fxp(0);
    /// 1.0
    pub const ONE: Fxp = Fxp(ONE);

    /// Converts an `f32`: finite and within `[-32768.0, 32767.99998]`, rounded to nearest with
    /// ties away from zero. `index` names the component in the error.
    pub fn from_f32(value: f32, index: u32) -> Result<Fxp> {
        // 32-bit integer arithmetic only (no 64-bit shifts, no f64): this runs once per
        // component of every vector a firmware inserts. `from_f64` gives the same result for
        // every f32 (a test compares them); the f64 of the value is made only for an error.
        let bits = value.to_bits();
        let negative = bits >> 31 == 1;
        let exp = (bits >> 23) & 0xff;
        if exp == 0xff {
            return Err(Error::InvalidInput(Invalid::NotFinite {
                index,
                value: f64::from(value),
            }));
        }
        // value = m * 2^(e - 150); raw = value * 2^16 = m * 2^(e - 134), with m < 2^24.
        let (m, e) = if exp == 0 {
            (bits & 0x7f_ffff, 1)
        } else {
            (bits & 0x7f_ffff | 1 << 23, exp)
        };
        let limit: u32 = if negative { 1 << 31 } else { (1 << 31) - 1 };
        let magnitude = if e >= 134 {
            // m << s <= limit exactly when m <= limit >> s (the shifted-out bits are zero);
            // s > 8 always exceeds it (m >= 2^23 for these exponents).
            let s = e - 134;
            if s > 8 || m > limit >> s {
                return Err(Error::InvalidInput(Invalid::OutOfRange {
                    index,
                    value: f64::from(value),
                }));
            }
            m << s
        } else {
            // Round to nearest, ties away from zero: add half of 2^r, shift by r. For r >= 25,
            // m < 2^24 <= half of 2^r and the result is 0. The sum stays below 2^25.
            let r = 134 - e;
            if r >= 25 {
                0
            } else {
                (m + (1 << (r - 1))) >> r
            }
        };
        // magnitude <= limit: -2^31 (negative) or 2^31 - 1 at most.
        Ok(Fxp(if negative {
            0i32.wrapping_sub(magnitude as i32)
        } else {
            magnitude as i32
        }))
    }

    /// Converts an `f64` with the same rules as [`Fxp::from_f32`] (one rounding, from the
    /// `f64` value itself).
    pub fn from_f64(value: f64, index: u32) -> Result<Fxp> {
        let bits = value.to_bits();
        let negative = bits >> 63 == 1;
        let exp = ((bits >> 52) & 0x7ff) as i32;
        let man = bits & 0x000f_ffff_ffff_ffff;
        if exp == 0x7ff {
            return Err(Error::InvalidInput(Invalid::NotFinite { index, value }));
        }
        // value = m * 2^(e - 1075); raw = m * 2^(e - 1059).
        let (m, shift) = if exp == 0 {
            (man, 1 - 1059)
        } else {
            (man | 1 << 52, exp - 1059)
        };
        scale(negative, m, shift).ok_or(Error::InvalidInput(Invalid::OutOfRange { index, value }))
    }

    /// The value as `f64` (exact: every Q16.16 value is representable).
    pub fn to_f64(self) -> f64 {
        f64::from(self.0) / f64::from(ONE)
    }
}

/// `±m * 2^shift` rounded to nearest, ties away from zero, if the exact value lies in
/// `[-2^31, 2^31 - 1]` (the documented range; rounding can then not leave it).
fn scale(negative: bool, m: u64, shift: i32) -> Option<Fxp> {
    let limit: u128 = if negative { 1 << 31 } else { (1 << 31) - 1 };
    let magnitude: u64 = if shift >= 0 {
        // m < 2^53; any shift past 31 exceeds the range whatever m is (m > 0 here).
        if shift > 31 {
            return (m == 0).then_some(Fxp(0));
        }
        let v = u128::from(m) << shift;
        if v > limit {
            return None;
        }
        v as u64
    } else {
        let r = shift.unsigned_abs();
        if r > 54 {
            0 // m < 2^53 <= half of 2^r: rounds to zero
        } else {
            if u128::from(m) > limit << r {
                return None;
            }
            (m + (1u64 << (r - 1))) >> r
        }
    };
    // magnitude <= 2^31 here.
    let signed = if negative {
        -(magnitude as i64)
    } else {
        magnitude as i64
    };
    i32::try_from(signed).ok().map(Fxp)
}

/// Converts a slice of `f32` into `out` (same length) with per-component errors.
pub fn convert_f32(input: &[f32], out: &mut [Fxp]) -> Result<()> {
    if input.len() != out.len() {
        return Err(Error::Dimension {
            expected: u32::try_from(out.len()).unwrap_or(u32::MAX),
            got: input.len() as u64,
        });
    }
    for (i, (x, o)) in input.iter().zip(out.iter_mut()).enumerate() {
        *o = Fxp::from_f32(*x, u32::try_from(i).unwrap_or(u32::MAX))?;
    }
    Ok(())
}

/// Converts a slice of `f64` into `out` (same length) with per-component errors. Rounds the
/// `f64` value directly (never through `f32`).
pub fn convert_f64(input: &[f64], out: &mut [Fxp]) -> Result<()> {
    if input.len() != out.len() {
        return Err(Error::Dimension {
            expected: u32::try_from(out.len()).unwrap_or(u32::MAX),
            got: input.len() as u64,
        });
    }
    for (i, (x, o)) in input.iter().zip(out.iter_mut()).enumerate() {
        *o = Fxp::from_f64(*x, u32::try_from(i).unwrap_or(u32::MAX))?;
    }
    Ok(())
}

/// The floats every binding hands in, converted once, here: `f32` or `f64` components.
pub trait Float: Copy {
    /// Converts `input` into `out` (same length), naming the first bad component.
    fn convert(input: &[Self], out: &mut [Fxp]) -> Result<()>;
}

impl Float for f32 {
    fn convert(input: &[f32], out: &mut [Fxp]) -> Result<()> {
        convert_f32(input, out)
    }
}

impl Float for f64 {
    fn convert(input: &[f64], out: &mut [Fxp]) -> Result<()> {
        convert_f64(input, out)
    }
}

/// Converts floats to a new vector of Q16.16 values (the allocating form of [`convert_f32`]
/// and [`convert_f64`]).
#[cfg(feature = "alloc")]
pub fn to_vec<F: Float>(input: &[F]) -> Result<alloc::vec::Vec<Fxp>> {
    let mut out = alloc::vec![Fxp::ZERO; input.len()];
    F::convert(input, &mut out)?;
    Ok(out)
}

/// Bound for the narrow paths. If `max_abs(a) + max_abs(b) < 2^23` (values within ±64.0 on both
/// sides, roughly), every difference is below 2^23, its square below 2^46, and a sum of at most
/// 65,536 (`MAX_DIM`) squares below 2^62; every product is below 2^44 (AM-GM), a sum of them
/// below 2^60 in magnitude. So `u64` / `i64` accumulators are exact, and the loops vectorise.
pub const SMALL_LIMIT: u32 = 1 << 23;

/// The largest |component| of a vector.
pub fn max_abs(v: &[Fxp]) -> u32 {
    v.iter().map(|x| x.0.unsigned_abs()).max().unwrap_or(0)
}

/// Exact squared L2 distance when `max_abs(a) + max_abs(b) < SMALL_LIMIT` and
/// `a.len() <= MAX_DIM` (the caller checks): equals [`l2_squared`].
#[inline]
pub fn l2_squared_small(a: &[Fxp], b: &[Fxp]) -> u128 {
    let mut acc: u64 = 0;
    for (x, y) in a.iter().zip(b) {
        // |x - y| < 2^23 fits i32; its square < 2^46.
        let d = u64::from(x.0.wrapping_sub(y.0).unsigned_abs());
        acc += d * d;
    }
    u128::from(acc)
}

/// Exact inner product under the same precondition as [`l2_squared_small`]: equals
/// [`inner_product`].
#[inline]
pub fn inner_product_small(a: &[Fxp], b: &[Fxp]) -> i128 {
    let mut acc: i64 = 0;
    for (x, y) in a.iter().zip(b) {
        acc += i64::from(x.0) * i64::from(y.0);
    }
    i128::from(acc)
}

/// Exact squared Euclidean distance, in units of 2^-32.
#[inline]
pub fn l2_squared(a: &[Fxp], b: &[Fxp]) -> u128 {
    let mut acc: u128 = 0;
    for (x, y) in a.iter().zip(b) {
        let d = (i64::from(x.0) - i64::from(y.0)).unsigned_abs();
        // d < 2^32, so d * d < 2^64.
        acc += u128::from(d * d);
    }
    acc
}

/// Exact inner product, in units of 2^-32.
#[inline]
pub fn inner_product(a: &[Fxp], b: &[Fxp]) -> i128 {
    let mut acc: i128 = 0;
    for (x, y) in a.iter().zip(b) {
        // |x * y| <= 2^62 fits an i64.
        acc += i128::from(i64::from(x.0) * i64::from(y.0));
    }
    acc
}

/// Exact sum of squares (the squared norm), in units of 2^-32.
#[inline]
pub fn norm_squared(a: &[Fxp]) -> u128 {
    a.iter()
        .map(|x| {
            let m = u64::from(x.0.unsigned_abs());
            u128::from(m * m)
        })
        .sum()
}

/// `floor(sqrt(norm_squared) * 2^16)`: the norm in units of 2^-32. Zero only for a zero vector.
pub(crate) fn scaled_norm(norm_sq: u128) -> u128 {
    // norm_sq < 2^78 for any accepted vector, so the shift cannot overflow.
    isqrt(norm_sq << 32)
}

/// `floor(sqrt(n))`: `u128::isqrt` on hosts; on bare metal [`isqrt_bitwise`], since the
/// core routine's Newton iteration pulls 64-bit division and a second square root into a
/// firmware (about 2 KB of flash). Both are exact, so both give the same value (a test
/// compares them).
pub(crate) fn isqrt(n: u128) -> u128 {
    #[cfg(feature = "std")]
    return n.isqrt();
    #[cfg(not(feature = "std"))]
    isqrt_bitwise(n)
}

/// `floor(sqrt(n))`, exact, one result bit per step (small code, no division).
#[cfg_attr(all(feature = "std", not(test)), allow(dead_code))]
pub(crate) fn isqrt_bitwise(n: u128) -> u128 {
    let mut rem = n;
    let mut root = 0u128;
    // The highest power of four not above n.
    let mut bit = 1u128 << ((127 - n.leading_zeros().min(127)) & !1);
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// Integer division rounding to nearest, ties away from zero. `d > 0`.
pub(crate) fn div_round(n: i128, d: u128) -> i128 {
    let d = d as i128; // d <= 2^55 for every caller
    let q = (n.unsigned_abs() + (d as u128) / 2) / d as u128;
    let q = q as i128;
    if n < 0 {
        -q
    } else {
        q
    }
}

/// Normalises `v` in place to unit Euclidean length: `x_i <- round(x_i * 2^32 / r)` with
/// `r = floor(sqrt(sum x^2) * 2^16)`. Integer-only and identical on every target.
/// A zero vector is an error and is left unchanged.
pub fn normalize(v: &mut [Fxp]) -> Result<()> {
    let r = unit_divisor(v.iter().copied())?;
    for x in v.iter_mut() {
        *x = to_unit(*x, r);
    }
    Ok(())
}

/// The divisor [`normalize`] uses for these components: `floor(sqrt(sum x^2) * 2^16)`;
/// `InvalidInput(ZeroVector)` for a zero vector.
pub(crate) fn unit_divisor(v: impl Iterator<Item = Fxp>) -> Result<u128> {
    let norm_sq: u128 = v
        .map(|x| {
            let m = u64::from(x.0.unsigned_abs());
            u128::from(m * m)
        })
        .sum();
    match scaled_norm(norm_sq) {
        0 => Err(Error::InvalidInput(Invalid::ZeroVector)),
        r => Ok(r),
    }
}

/// One component of a vector normalised with divisor `r` (from [`unit_divisor`]):
/// `round(x * 2^32 / r)`. Monotonic in `x`, so the largest |component| maps to the largest.
pub(crate) fn to_unit(x: Fxp, r: u128) -> Fxp {
    // |x| <= sqrt(sum) so the quotient is at most 2^16 (+1 for rounding): fits i32.
    Fxp(div_round(i128::from(x.0) << 32, r) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 32-bit `from_f32` equals `from_f64` of the same value (exact: every f32 is an f64)
    /// for both signs of every exponent with mantissas at and around each rounding boundary.
    /// A planted mistake in the tie rule or the range check fails here.
    #[test]
    // A million conversions: far too long under Miri, and only safe integer arithmetic.
    #[cfg_attr(miri, ignore)]
    fn from_f32_equals_from_f64_on_every_exponent() {
        let mut mantissas = alloc::vec![0u32, 1, 2, 3, 0x40_0000, 0x7f_ffff, 0x7f_fffe, 0x3f_ffff];
        for b in 0..23 {
            mantissas.extend([1 << b, (1 << b) - 1, (1 << b) + 1, 3 << b >> 1]);
        }
        let mut x = 0x2545_f491u32;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            mantissas.push(x & 0x7f_ffff);
        }
        let mut checked = 0u32;
        for sign in [0u32, 1] {
            for exp in 0..255u32 {
                for &m in &mantissas {
                    let v = f32::from_bits(sign << 31 | exp << 23 | (m & 0x7f_ffff));
                    let a = Fxp::from_f32(v, 3);
                    let b = Fxp::from_f64(f64::from(v), 3);
                    assert_eq!(a, b, "{v:e} ({:#010x})", v.to_bits());
                    checked += 1;
                }
            }
        }
        assert!(checked > 1_000_000);
        assert!(Fxp::from_f32(f32::NAN, 0).is_err());
        assert!(Fxp::from_f32(f32::NEG_INFINITY, 0).is_err());
    }

    /// The bare-metal square root equals `u128::isqrt` at the edges and on a spread of
    /// values; a planted off-by-one (`+ 1`) would fail at every perfect square below.
    #[test]
    // 20,000 128-bit square roots: minutes under Miri, and only safe integer arithmetic.
    #[cfg_attr(miri, ignore)]
    fn bitwise_isqrt_equals_core() {
        let mut n = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834u128;
        let mut cases = alloc::vec![0u128, 1, 2, 3, 4, 15, 16, 17, u128::MAX, u128::MAX - 1];
        for s in [1u128, 255, 65_535, (1 << 39) - 1, u64::MAX as u128] {
            cases.extend([s * s - 1, s * s, s * s + 1]);
        }
        for _ in 0..20_000 {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            cases.push(n >> (n % 128) as u32);
        }
        for c in cases {
            assert_eq!(isqrt_bitwise(c), c.isqrt(), "{c}");
        }
    }

    fn conv(v: f32) -> i32 {
        match Fxp::from_f32(v, 0) {
            Ok(f) => f.0,
            Err(e) => panic!("{v}: {e}"),
        }
    }

    #[test]
    fn documented_examples() {
        assert_eq!(conv(1.0), 65536);
        assert_eq!(conv(0.5), 32768);
        assert_eq!(conv(0.75), 49152);
        assert_eq!(conv(-1.5), -98304);
        assert_eq!(conv(-32768.0), i32::MIN);
        assert_eq!(conv(32767.998), 2147483520);
        assert_eq!(conv(0.0), 0);
        assert_eq!(conv(-0.0), 0);
        assert_eq!(conv(f32::MIN_POSITIVE), 0);
        assert_eq!(conv(1e-40), 0);
    }

    #[test]
    fn ties_round_away_from_zero() {
        // 2^-17 is exactly half a unit.
        let half = f32::from_bits(((127 - 17) as u32) << 23);
        assert_eq!(conv(half), 1);
        assert_eq!(conv(-half), -1);
        assert_eq!(conv(3.0 * half), 2); // 1.5 units
        assert_eq!(conv(-3.0 * half), -2);
        // just below half rounds to 0
        let below = f32::from_bits(half.to_bits() - 1);
        assert_eq!(conv(below), 0);
        assert_eq!(Fxp::from_f64(2.5 / 65536.0, 0).map(|f| f.0), Ok(3));
        assert_eq!(Fxp::from_f64(-2.5 / 65536.0, 0).map(|f| f.0), Ok(-3));
    }

    #[test]
    fn rejects_non_finite_and_out_of_range() {
        for (i, v) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]
            .into_iter()
            .enumerate()
        {
            let e = Fxp::from_f32(v, i as u32);
            assert!(
                matches!(e, Err(Error::InvalidInput(Invalid::NotFinite { index, .. })) if index == i as u32),
                "{v}: {e:?}"
            );
        }
        for v in [32768.0f32, -32768.004, 1e9, -1e30, f32::MAX] {
            assert!(
                matches!(
                    Fxp::from_f32(v, 7),
                    Err(Error::InvalidInput(Invalid::OutOfRange { index: 7, .. }))
                ),
                "{v}"
            );
        }
        // The range is checked on the exact value, before rounding.
        assert_eq!(Fxp::from_f64(MAX_F64, 0).map(|f| f.0), Ok(i32::MAX));
        assert!(Fxp::from_f64(32767.99999, 0).is_err());
        assert_eq!(Fxp::from_f64(-32768.0, 0).map(|f| f.0), Ok(i32::MIN));
        assert!(Fxp::from_f64(-32768.00001, 0).is_err());
        assert!(Fxp::from_f64(f64::NAN, 0).is_err());
        assert!(Fxp::from_f64(1e300, 0).is_err());
        assert_eq!(Fxp::from_f64(1e-300, 0).map(|f| f.0), Ok(0));
    }

    #[test]
    // 155k float conversions: minutes under Miri, and only safe arithmetic for it to check.
    #[cfg_attr(miri, ignore)]
    fn f32_agrees_with_f64_reference_on_a_sweep() {
        // Reference: round-half-away on the exact f64 product (exact for f32 inputs).
        let mut bits: u32 = 0x3000_0000;
        while bits < 0x4700_0000 {
            for sign in [0u32, 1 << 31] {
                let v = f32::from_bits(bits | sign);
                let exact = f64::from(v) * 65536.0;
                let want = exact.abs().floor() + if exact.abs().fract() >= 0.5 { 1.0 } else { 0.0 };
                let want = if exact < 0.0 { -want } else { want };
                let got = Fxp::from_f32(v, 0)
                    .map(|f| f64::from(f.0))
                    .unwrap_or(f64::NAN);
                if (-2147483648.0..=2147483647.0).contains(&want) {
                    assert_eq!(got, want, "{v:e}");
                } else {
                    assert!(got.is_nan(), "{v:e}");
                }
            }
            bits += 0x1357;
        }
    }

    #[test]
    fn distances_are_exact_at_the_extremes() {
        let a = [Fxp(i32::MAX); 4];
        let b = [Fxp(i32::MIN); 4];
        let d = (u128::from(u32::MAX)) * u128::from(u32::MAX) * 4;
        assert_eq!(l2_squared(&a, &b), d);
        assert_eq!(inner_product(&b, &b), 4 * (1i128 << 62));
        assert_eq!(inner_product(&a, &b), -4 * (i128::from(i32::MAX) << 31));
        let big = [Fxp(i32::MIN); 65536];
        let zero = [Fxp(0); 65536];
        assert_eq!(l2_squared(&big, &zero), 65536u128 << 62);
        assert_eq!(inner_product(&big, &big), 65536i128 << 62);
    }

    #[test]
    // Loops over 65,536-component vectors: minutes under Miri, only safe arithmetic to check.
    #[cfg_attr(miri, ignore)]
    fn narrow_paths_are_exact_at_their_bound() {
        // max_abs(a) + max_abs(b) = 2^23 - 1, at the largest dimension.
        let a = std::vec![Fxp((1 << 22) - 1); 65536];
        let b = std::vec![Fxp(-(1 << 22)); 65536];
        assert!(max_abs(&a) + max_abs(&b) < SMALL_LIMIT);
        assert_eq!(l2_squared_small(&a, &b), l2_squared(&a, &b));
        assert_eq!(l2_squared(&a, &b), 65536 * ((1u128 << 23) - 1).pow(2));
        assert_eq!(inner_product_small(&a, &b), inner_product(&a, &b));
        assert_eq!(inner_product_small(&b, &b), inner_product(&b, &b));
    }

    proptest::proptest! {
        /// The narrow loops equal the 128-bit ones for every input within their bound.
        #[test]
        // proptest's failure file needs the file system (Miri isolates it), and 256 cases
        // of up to 300 components take minutes under Miri; only safe arithmetic to check.
        #[cfg_attr(miri, ignore)]
        fn narrow_paths_equal_wide_paths(
            pairs in proptest::collection::vec((-(1i32 << 22)..(1 << 22), -(1i32 << 22)..(1 << 22)), 0..300),
        ) {
            let a: std::vec::Vec<Fxp> = pairs.iter().map(|p| Fxp(p.0)).collect();
            let b: std::vec::Vec<Fxp> = pairs.iter().map(|p| Fxp(p.1)).collect();
            if max_abs(&a) + max_abs(&b) < SMALL_LIMIT {
                proptest::prop_assert_eq!(l2_squared_small(&a, &b), l2_squared(&a, &b));
                proptest::prop_assert_eq!(inner_product_small(&a, &b), inner_product(&a, &b));
            }
        }
    }

    #[test]
    fn normalize_is_unit_length_and_rejects_zero() {
        let mut v = [Fxp(3 * ONE), Fxp(4 * ONE)];
        assert_eq!(normalize(&mut v), Ok(()));
        assert_eq!(v, [Fxp(39322), Fxp(52429)]); // 0.6, 0.8 rounded
        let mut z = [Fxp(0); 3];
        assert_eq!(
            normalize(&mut z),
            Err(Error::InvalidInput(Invalid::ZeroVector))
        );
        let mut one = [Fxp(i32::MIN), Fxp(0)];
        assert_eq!(normalize(&mut one), Ok(()));
        assert_eq!(one, [Fxp(-ONE), Fxp(0)]);
        let mut tiny = [Fxp(1); 5];
        assert_eq!(normalize(&mut tiny), Ok(()));
        // 1/sqrt(5) = 0.4472135955 -> 29308.9 -> 29309
        assert_eq!(tiny, [Fxp(29309); 5]);
    }
}
