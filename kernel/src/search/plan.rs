//! Choosing, once per query, which exact distance kernel scores the store: from the store's
//! width (narrow, mid, wide), the metric and the bounds proved from the largest stored and
//! query components.

use crate::config::Metric;
use crate::error::{Error, Result};
use crate::fxp::{self, Fxp};
use crate::simd::{self, Backend, RowKernel};
use crate::state::Kernel;

/// How a query scores the store, chosen once from the store's width and the proved bounds.
/// Every plan gives the exact distance (tests/simd.rs checks each against 128-bit brute force).
#[derive(Clone, Copy)]
pub(super) enum Plan {
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

/// One query's plan and what its kernels need: the query, its `i16` form, the proved
/// bounds and group sizes.
pub(super) struct Scorer<'q> {
    pub(super) metric: Metric,
    pub(super) backend: Backend,
    pub(super) plan: Plan,
    pub(super) query: &'q [Fxp],
    /// The query as `i16` (plan `Rows16`).
    pub(super) narrow: &'q [i16],
    /// `q . q` and the AVX2 lane bound of the narrow query (batch scan).
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    pub(super) qq: i64,
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    pub(super) q_lanes: u64,
    /// `vpmaddwd` group for `x . q` (global bound; batch scan).
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    pub(super) group: usize,
    /// The query's scaled norm (cosine).
    pub(super) r: u128,
    /// `max|x| + max|q| < fxp::SMALL_LIMIT`: 64-bit sums are exact.
    pub(super) small: bool,
    /// Mid-width store under L2: the query's top halves (`q >> 8`) and the kernel over the
    /// stored top halves (the lower-bound filter), if usable.
    pub(super) top: Option<(&'q [i16], RowKernel)>,
}

impl<'q> Scorer<'q> {
    /// Plans the scoring of `query` (checked: dimension, zero vector under cosine).
    /// `copy` is [`query_copy`]'s `i16` form of the query: the query itself for a narrow
    /// store, its top halves for a mid-width one.
    pub(super) fn new(
        kernel: &Kernel<'_>,
        query: &'q [Fxp],
        copy: Option<&'q [i16]>,
    ) -> Result<Self> {
        let narrow = copy.filter(|_| kernel.vectors.is_narrow());
        let dim = kernel.config.dim as usize;
        if query.len() != dim {
            return Err(Error::Dimension {
                expected: kernel.config.dim,
                got: query.len() as u64,
            });
        }
        let metric = kernel.config.metric;
        let r = if metric.is_cosine() {
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
        let diff_lanes = (crate::fxp::isqrt(x_lanes.into()) as u64 + 1)
            + (crate::fxp::isqrt(q_lanes.into()) as u64 + 1);
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
}

/// An `i16` form of the queries that lets the SIMD kernels run (`None` when it does not fit,
/// or no memory): for a narrow store the queries themselves, for a mid-width store under L2
/// their top halves `q >> 8` (the lower-bound filter).
#[cfg(feature = "alloc")]
pub(super) fn query_copy(kernel: &Kernel<'_>, queries: &[Fxp]) -> Option<alloc::vec::Vec<i16>> {
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
