//! Checked conversions from C pointers, shared output writers, and the C-visible structs used
//! by both the hosted and the embedded API.

use crate::{VALORI_INSUFFICIENT_SIZE, VALORI_INVALID_INPUT, VALORI_MISUSE, VALORI_OK};
use core::ffi::c_int;
use vk::{Direction, Edge, Fxp, Hit, HitSlot, Hop, HopSlot, Metric};

/// Returns early with the code when a check fails.
macro_rules! check {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return code,
        }
    };
}
pub(crate) use check;

/// One search result.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct valori_hit {
    /// Record id.
    pub id: u64,
    /// Distance as a real number (lower is closer).
    pub distance: f64,
    /// The exact distance in units of 2^-32, as a signed 128-bit value: high 64 bits.
    pub distance_raw_hi: i64,
    /// Low 64 bits of the exact distance.
    pub distance_raw_lo: u64,
}

/// One graph edge.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct valori_edge {
    /// Edge id.
    pub id: u64,
    /// Source node.
    pub from: u64,
    /// Target node.
    pub to: u64,
    /// Application-defined kind.
    pub kind: u32,
    /// 1 if the edge has a weight, else 0.
    pub has_weight: u32,
    /// The weight (exact: every Q16.16 value is a double), 0 if none.
    pub weight: f64,
}

/// One node reached by a traversal.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct valori_hop {
    /// The node.
    pub node: u64,
    /// Edges from the start node.
    pub depth: u32,
    /// Always 0.
    pub reserved: u32,
}

fn aligned<T>(p: *const T) -> bool {
    p.is_aligned()
}

/// A shared reference from a pointer that must not be NULL.
///
/// # Safety
/// A non-NULL `p` must point to a valid `T` for `'a` (the C caller's contract).
pub(crate) unsafe fn get<'a, T>(p: *const T) -> Result<&'a T, c_int> {
    if p.is_null() || !aligned(p) {
        return Err(VALORI_MISUSE);
    }
    Ok(&*p)
}

/// An optional input (NULL means absent).
///
/// # Safety
/// As [`get`].
pub(crate) unsafe fn opt<'a, T>(p: *const T) -> Result<Option<&'a T>, c_int> {
    if p.is_null() {
        Ok(None)
    } else {
        get(p).map(Some)
    }
}

/// An output location that must not be NULL.
///
/// # Safety
/// A non-NULL `p` must point to writable memory for a `T`.
pub(crate) unsafe fn out<'a, T>(p: *mut T) -> Result<&'a mut T, c_int> {
    if p.is_null() || !aligned(p) {
        return Err(VALORI_MISUSE);
    }
    Ok(&mut *p)
}

/// An input buffer: `(NULL, 0)` is empty; NULL with a length is misuse.
///
/// # Safety
/// A non-NULL `p` must point to `len` valid `T`s.
pub(crate) unsafe fn slice<'a, T>(p: *const T, len: usize) -> Result<&'a [T], c_int> {
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(VALORI_MISUSE)
        };
    }
    if !aligned(p) || len > isize::MAX as usize / core::mem::size_of::<T>().max(1) {
        return Err(VALORI_MISUSE);
    }
    Ok(core::slice::from_raw_parts(p, len))
}

/// An output buffer of capacity `cap`: `(NULL, 0)` is an empty buffer.
///
/// # Safety
/// A non-NULL `p` must point to `cap` writable `T`s.
pub(crate) unsafe fn slice_mut<'a, T>(p: *mut T, cap: usize) -> Result<&'a mut [T], c_int> {
    if p.is_null() {
        return if cap == 0 {
            Ok(&mut [])
        } else {
            Err(VALORI_MISUSE)
        };
    }
    if !aligned(p) || cap > isize::MAX as usize / core::mem::size_of::<T>().max(1) {
        return Err(VALORI_MISUSE);
    }
    Ok(core::slice::from_raw_parts_mut(p, cap))
}

/// A fixed-size output array (e.g. the 32-byte hash).
///
/// # Safety
/// A non-NULL `p` must point to `N` writable bytes.
pub(crate) unsafe fn array_mut<'a, const N: usize>(p: *mut u8) -> Result<&'a mut [u8; N], c_int> {
    if p.is_null() {
        return Err(VALORI_MISUSE);
    }
    Ok(&mut *p.cast::<[u8; N]>())
}

pub(crate) fn metric(m: u32) -> Result<Metric, c_int> {
    u8::try_from(m)
        .ok()
        .and_then(Metric::from_u8)
        .ok_or(VALORI_INVALID_INPUT)
}

pub(crate) fn direction(d: u32) -> Result<Direction, c_int> {
    match d {
        crate::VALORI_DIRECTION_OUT => Ok(Direction::Outgoing),
        crate::VALORI_DIRECTION_IN => Ok(Direction::Incoming),
        crate::VALORI_DIRECTION_BOTH => Ok(Direction::Both),
        _ => Err(VALORI_INVALID_INPUT),
    }
}

impl HitSlot for valori_hit {
    fn hit(&self) -> Hit {
        Hit {
            distance: (i128::from(self.distance_raw_hi) << 64) | i128::from(self.distance_raw_lo),
            id: self.id,
        }
    }
    fn set_hit(&mut self, h: Hit) {
        self.id = h.id;
        self.distance_raw_hi = (h.distance >> 64) as i64;
        self.distance_raw_lo = h.distance as u64;
    }
}

impl HopSlot for valori_hop {
    fn hop(&self) -> Hop {
        Hop {
            depth: self.depth,
            node: self.node,
        }
    }
    fn set_hop(&mut self, h: Hop) {
        self.node = h.node;
        self.depth = h.depth;
        self.reserved = 0;
    }
}

pub(crate) fn edge(e: &Edge) -> valori_edge {
    valori_edge {
        id: e.id,
        from: e.from,
        to: e.to,
        kind: e.kind,
        has_weight: u32::from(e.weight.is_some()),
        weight: e.weight.map_or(0.0, Fxp::to_f64),
    }
}

/// Writes `items` (converted) to the caller's buffer and its length to `out_len`; if the
/// buffer is too small, writes only the needed length and returns
/// `VALORI_INSUFFICIENT_SIZE`.
pub(crate) fn write_all<S, T>(
    items: impl ExactSizeIterator<Item = S>,
    convert: impl Fn(&S) -> T,
    out: &mut [T],
    out_len: &mut usize,
) -> c_int {
    let n = items.len();
    if n > out.len() {
        *out_len = n;
        return VALORI_INSUFFICIENT_SIZE;
    }
    for (slot, item) in out.iter_mut().zip(items) {
        *slot = convert(&item);
    }
    *out_len = n;
    VALORI_OK
}

/// Q16.16 vector components as floats (nearest float; exact below 256 in magnitude).
pub(crate) fn to_f32(v: &Fxp) -> f32 {
    v.to_f64() as f32
}
