//! A kernel's configuration (dimension and metric, part of the state) and the limits on what
//! it accepts.

use crate::error::{Error, Invalid, Result};

/// Largest supported dimension.
pub const MAX_DIM: u32 = 65_536;
/// Largest metadata per record, in bytes.
pub const MAX_META_LEN: usize = 65_536;
/// Largest label per node, in bytes.
pub const MAX_LABEL_LEN: usize = 4_096;

/// How distances are measured. Part of the state (hashed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Metric {
    /// Squared Euclidean distance.
    L2 = 0,
    /// Negated inner product (larger products rank first).
    InnerProduct = 1,
    /// One minus cosine similarity; stored vectors are normalised on insert.
    Cosine = 2,
}

impl Metric {
    /// The metric with encoding byte `b`.
    pub fn from_u8(b: u8) -> Option<Metric> {
        match b {
            0 => Some(Metric::L2),
            1 => Some(Metric::InnerProduct),
            2 => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// The metric of a [`Metric::name`] (`"inner_product"` is also read as `"ip"`).
    pub fn from_name(name: &str) -> Option<Metric> {
        match name {
            "l2" => Some(Metric::L2),
            "ip" | "inner_product" => Some(Metric::InnerProduct),
            "cosine" => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// The metric's stable user-facing name: `"l2"`, `"ip"` or `"cosine"` (the strings the
    /// Python API accepts). Messages name metrics with it, never with `Debug`.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
        }
    }

    /// Whether this build has the metric: all of them, except cosine without the kernel's
    /// `cosine` feature (bare-metal builds that leave it out).
    pub const fn is_built(self) -> bool {
        !matches!(self, Metric::Cosine) || cfg!(feature = "cosine")
    }

    /// Cosine, in a build that has it: the test that guards cosine's code, so that a build
    /// without the feature compiles that code out.
    #[inline(always)]
    pub(crate) fn is_cosine(self) -> bool {
        cfg!(feature = "cosine") && matches!(self, Metric::Cosine)
    }

    /// A distance of this metric as a real number (for display at the edge only).
    pub fn distance_to_f64(self, distance: i128) -> f64 {
        distance as f64 / 4_294_967_296.0
    }
}

/// Writes [`Metric::name`].
impl core::fmt::Display for Metric {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a kernel holds: its dimension and metric. Part of the state (hashed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Components per vector, `1..=MAX_DIM`.
    pub dim: u32,
    /// Distance metric.
    pub metric: Metric,
}

impl Config {
    /// A configuration; checks the dimension.
    pub fn new(dim: u32, metric: Metric) -> Result<Config> {
        if !metric.is_built() {
            return Err(Error::InvalidInput(Invalid::MetricNotBuilt { metric }));
        }
        if dim == 0 || dim > MAX_DIM {
            return Err(Error::InvalidInput(Invalid::BadDimension {
                dim: u64::from(dim),
            }));
        }
        Ok(Config { dim, metric })
    }
}
