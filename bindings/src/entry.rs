//! The entry bodies shared by the hosted database (`valori_*`) and the embedded kernel
//! (`valori_kernel_*`): pointer checks, the call, and the copy into the caller's buffers are
//! written once here, against [`Target`]. Each exported function is a plain `extern "C"` fn
//! (what cbindgen reads) whose body calls one of these.

// The entries take the exported functions' parameter lists, which the header fixes.
#![allow(clippy::too_many_arguments)]

use crate::ffi::{self, check, valori_edge, valori_hit, valori_hop};
use crate::{boundary, VALORI_INSUFFICIENT_SIZE, VALORI_OK};
use core::ffi::c_int;
use vk::{Direction, Fxp, HitSlot, Kernel, Object};

/// A write, in the terms of the C API (floats as given; the target converts them).
pub(crate) enum Op<'a> {
    Insert {
        vector: &'a [f32],
        tag: Option<u64>,
        meta: &'a [u8],
    },
    Delete(u64),
    SetMeta {
        id: u64,
        meta: &'a [u8],
    },
    SetTag {
        id: u64,
        tag: Option<u64>,
    },
    CreateNode {
        kind: u32,
        record: Option<u64>,
        label: &'a [u8],
    },
    DeleteNode(u64),
    CreateEdge {
        kind: u32,
        from: u64,
        to: u64,
        weight: Option<f32>,
    },
    DeleteEdge(u64),
}

/// A read's outcome: a code for the caller (`VALORI_OK`, or `VALORI_INSUFFICIENT_SIZE` with
/// the needed length stored), or the kernel's error.
pub(crate) type Read = Result<c_int, vk::Error>;

/// What a handle type offers the shared entries.
pub(crate) trait Target: Sized {
    /// Runs `f` on the kernel behind handle `p`; a NULL or dead handle is `VALORI_MISUSE`,
    /// and an error from `f` goes through the handle's error reporting.
    ///
    /// # Safety
    /// A non-NULL `p` must be a handle of this type (the C caller's contract).
    unsafe fn read(p: *const Self, f: impl FnOnce(&Kernel<'_>) -> Read) -> c_int;

    /// Converts `query` to Q16.16 and runs `f` on it and the kernel. The embedded kernel
    /// converts into its handle's scratch space, so its callers pass a pointer they hold
    /// exclusively (its C signature takes `valori_kernel *`).
    ///
    /// # Safety
    /// As [`Target::read`].
    unsafe fn read_query(
        p: *const Self,
        query: &[f32],
        f: impl FnOnce(&Kernel<'_>, &[Fxp]) -> Read,
    ) -> c_int;

    /// Applies a write; stores the created id in `out_id` where the write creates one.
    ///
    /// # Safety
    /// As [`Target::read`], and `p` must allow the write (a `valori_db *` may be shared, a
    /// `valori_kernel *` is exclusive).
    unsafe fn write(p: *mut Self, op: Op<'_>, out_id: Option<&mut u64>) -> c_int;
}

/// Writes the needed size for an `InsufficientSize` error; other errors pass through.
pub(crate) fn sized(r: Result<usize, vk::Error>, out_len: &mut usize) -> Read {
    match r {
        Ok(n) => {
            *out_len = n;
            Ok(VALORI_OK)
        }
        Err(vk::Error::InsufficientSize { needed }) => {
            *out_len = usize::try_from(needed).unwrap_or(usize::MAX);
            Ok(VALORI_INSUFFICIENT_SIZE)
        }
        Err(e) => Err(e),
    }
}

/// Searches straight into the caller's hits (see `HitSlot`), then fills in the real-valued
/// distances.
fn search_into(
    kern: &Kernel<'_>,
    q: &[Fxp],
    k: u32,
    tag: Option<u64>,
    out: &mut [valori_hit],
    out_len: &mut usize,
) -> Read {
    let code = sized(kern.search(q, k, tag, out), out_len)?;
    Ok(finish_hits(kern, code, out, out_len))
}

/// Fills in the float distances of the hits a search wrote.
fn finish_hits(kern: &Kernel<'_>, code: c_int, out: &mut [valori_hit], out_len: &usize) -> c_int {
    if code == VALORI_OK {
        let metric = kern.config().metric;
        for h in out.iter_mut().take(*out_len) {
            h.distance = metric.distance_to_f64(h.hit().distance);
        }
    }
    code
}

fn neighbors_into(
    k: &Kernel<'_>,
    node: u64,
    d: Direction,
    out: &mut [valori_edge],
    out_len: &mut usize,
) -> Read {
    if k.node(node).is_none() {
        return Err(vk::Error::NotFound(Object::Node, node));
    }
    let want_out = matches!(d, Direction::Outgoing | Direction::Both);
    let want_in = matches!(d, Direction::Incoming | Direction::Both);
    let edges = || {
        let outs = want_out.then(|| k.outgoing(node)).into_iter().flatten();
        let ins = want_in.then(|| k.incoming(node)).into_iter().flatten();
        outs.chain(ins)
    };
    Ok(ffi::write_all(
        ExactLen(edges(), edges().count()),
        ffi::edge,
        out,
        out_len,
    ))
}

/// An iterator with a known length.
struct ExactLen<I>(I, usize);

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let x = self.0.next()?;
        self.1 = self.1.saturating_sub(1);
        Some(x)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.1, Some(self.1))
    }
}

impl<I: Iterator> ExactSizeIterator for ExactLen<I> {}

/// The filter and the hit buffer of a search call.
///
/// # Safety
/// Non-NULL pointers must be valid for their lengths (the C caller's contract).
unsafe fn hits_out<'a>(
    tag: *const u64,
    out_hits: *mut valori_hit,
    cap: usize,
    out_len: *mut usize,
) -> Result<(Option<u64>, &'a mut [valori_hit], &'a mut usize), c_int> {
    Ok((
        ffi::opt(tag)?.copied(),
        ffi::slice_mut(out_hits, cap)?,
        ffi::out(out_len)?,
    ))
}

/// `valori_search` / `valori_kernel_search`.
pub(crate) fn search<H: Target>(
    h: *const H,
    query: *const f32,
    dim: usize,
    k: u32,
    tag: *const u64,
    out_hits: *mut valori_hit,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; buffers valid for their lengths by contract.
        unsafe {
            let q = check!(ffi::slice(query, dim));
            let (tag, out, out_len) = check!(hits_out(tag, out_hits, cap, out_len));
            H::read_query(h, q, |kern, q| search_into(kern, q, k, tag, out, out_len))
        }
    })
}

/// `valori_search_approx`.
#[cfg(feature = "hosted")]
#[allow(clippy::too_many_arguments, reason = "the C signature")]
pub(crate) fn search_approx<H: Target>(
    h: *const H,
    query: *const f32,
    dim: usize,
    k: u32,
    tag: *const u64,
    ef: u32,
    out_hits: *mut valori_hit,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; buffers valid for their lengths by contract.
        unsafe {
            let q = check!(ffi::slice(query, dim));
            let (tag, out, out_len) = check!(hits_out(tag, out_hits, cap, out_len));
            H::read_query(h, q, |kern, q| {
                let code = sized(kern.search_approx(q, k, tag, ef, out), out_len)?;
                Ok(finish_hits(kern, code, out, out_len))
            })
        }
    })
}

/// `valori_index_params`.
#[cfg(feature = "hosted")]
pub(crate) fn index_params<H: Target>(
    h: *const H,
    out_m: *mut u32,
    out_ef_construction: *mut u32,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        unsafe {
            let m = check!(ffi::out(out_m));
            let ef = check!(ffi::out(out_ef_construction));
            H::read(h, |kern| {
                let p = kern.index_params();
                *m = p.map_or(0, |p| p.m);
                *ef = p.map_or(0, |p| p.ef_construction);
                Ok(VALORI_OK)
            })
        }
    })
}

/// `valori_kernel_search_raw`: the query is already Q16.16.
pub(crate) fn search_raw<H: Target>(
    h: *const H,
    query: *const i32,
    dim: usize,
    k: u32,
    tag: *const u64,
    out_hits: *mut valori_hit,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; buffers valid for their lengths by contract; `Fxp` is a
        // transparent `i32`.
        unsafe {
            let q = check!(ffi::slice(query.cast::<Fxp>(), dim));
            let (tag, out, out_len) = check!(hits_out(tag, out_hits, cap, out_len));
            H::read(h, |kern| search_into(kern, q, k, tag, out, out_len))
        }
    })
}

/// `valori_neighbors` / `valori_kernel_neighbors`.
pub(crate) fn neighbors<H: Target>(
    h: *const H,
    node: u64,
    direction: u32,
    out_edges: *mut valori_edge,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        unsafe {
            let out = check!(ffi::slice_mut(out_edges, cap));
            let out_len = check!(ffi::out(out_len));
            let d = check!(ffi::direction(direction));
            H::read(h, |kern| neighbors_into(kern, node, d, out, out_len))
        }
    })
}

/// `valori_traverse` / `valori_kernel_traverse`.
pub(crate) fn traverse<H: Target>(
    h: *const H,
    start: u64,
    hops: u32,
    direction: u32,
    kind: *const u32,
    out_hops: *mut valori_hop,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        unsafe {
            let kind = check!(ffi::opt(kind)).copied();
            let out = check!(ffi::slice_mut(out_hops, cap));
            let out_len = check!(ffi::out(out_len));
            let d = check!(ffi::direction(direction));
            H::read(h, |kern| match kern.traverse(start, hops, d, kind, out) {
                // Only a build without an allocator (bare metal) has no room to find the exact
                // size of a traversal that does not fit `out`: it asks for room for every
                // other node, which always suffices.
                Err(vk::Error::Full(vk::Resource::Memory)) => {
                    *out_len = kern.node_count().saturating_sub(1);
                    Ok(VALORI_INSUFFICIENT_SIZE)
                }
                r => sized(r, out_len),
            })
        }
    })
}

/// `valori_count` / `valori_kernel_count`.
pub(crate) fn count<H: Target>(h: *const H, out_count: *mut u64) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        unsafe {
            let out = check!(ffi::out(out_count));
            H::read(h, |kern| {
                *out = kern.len() as u64;
                Ok(VALORI_OK)
            })
        }
    })
}

/// `valori_state_hash` / `valori_kernel_state_hash`.
pub(crate) fn state_hash<H: Target>(h: *const H, out_hash: *mut u8) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; 32 bytes by contract.
        unsafe {
            let out = check!(ffi::array_mut::<32>(out_hash));
            H::read(h, |kern| {
                *out = kern.state_hash();
                Ok(VALORI_OK)
            })
        }
    })
}

/// Runs `f` on record `id` of the handle's kernel (`NotFound` if there is none).
///
/// # Safety
/// As [`Target::read`].
unsafe fn read_record<H: Target>(
    h: *const H,
    id: u64,
    f: impl FnOnce(vk::RecordRef<'_>) -> c_int,
) -> c_int {
    H::read(h, |kern| {
        kern.get(id)
            .map(f)
            .ok_or(vk::Error::NotFound(Object::Record, id))
    })
}

/// Copies items of record `id` (its vector, its metadata) to the caller's buffer.
fn record_items<H: Target, T>(
    h: *const H,
    id: u64,
    out_items: *mut T,
    cap: usize,
    out_len: *mut usize,
    copy: impl FnOnce(vk::RecordRef<'_>, &mut [T], &mut usize) -> c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; the buffer is valid for `cap` items by contract.
        unsafe {
            let out = check!(ffi::slice_mut(out_items, cap));
            let out_len = check!(ffi::out(out_len));
            read_record(h, id, |r| copy(r, out, out_len))
        }
    })
}

/// `valori_get_vector` / `valori_kernel_get_vector`: floats, exact below 256 in magnitude.
pub(crate) fn get_vector<H: Target>(
    h: *const H,
    id: u64,
    out_vector: *mut f32,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    record_items(h, id, out_vector, cap, out_len, |r, out, n| {
        ffi::write_all(r.vector.iter(), ffi::to_f32, out, n)
    })
}

/// `valori_get_meta` / `valori_kernel_get_meta`.
pub(crate) fn get_meta<H: Target>(
    h: *const H,
    id: u64,
    out_meta: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    record_items(h, id, out_meta, cap, out_len, |r, out, n| {
        ffi::write_all(r.meta.iter(), |b| **b, out, n)
    })
}

/// `valori_get_tag` / `valori_kernel_get_tag`.
pub(crate) fn get_tag<H: Target>(
    h: *const H,
    id: u64,
    out_tag: *mut u64,
    out_has_tag: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        unsafe {
            let tag = check!(ffi::out(out_tag));
            let has = check!(ffi::out(out_has_tag));
            read_record(h, id, |r| {
                *tag = r.tag.unwrap_or(0);
                *has = c_int::from(r.tag.is_some());
                VALORI_OK
            })
        }
    })
}

/// `valori_insert` / `valori_kernel_insert`.
pub(crate) fn insert<H: Target>(
    h: *mut H,
    vector: *const f32,
    dim: usize,
    tag: *const u64,
    meta: *const u8,
    meta_len: usize,
    out_id: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; buffers valid for their lengths by contract.
        unsafe {
            let vector = check!(ffi::slice(vector, dim));
            let tag = check!(ffi::opt(tag)).copied();
            let meta = check!(ffi::slice(meta, meta_len));
            let out = check!(ffi::out(out_id));
            H::write(h, Op::Insert { vector, tag, meta }, Some(out))
        }
    })
}

/// `valori_set_meta` / `valori_kernel_set_meta`.
pub(crate) fn set_meta<H: Target>(h: *mut H, id: u64, meta: *const u8, meta_len: usize) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        unsafe {
            let meta = check!(ffi::slice(meta, meta_len));
            H::write(h, Op::SetMeta { id, meta }, None)
        }
    })
}

/// `valori_set_tag` / `valori_kernel_set_tag`.
pub(crate) fn set_tag<H: Target>(h: *mut H, id: u64, tag: *const u64) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        unsafe {
            let tag = check!(ffi::opt(tag)).copied();
            H::write(h, Op::SetTag { id, tag }, None)
        }
    })
}

/// `valori_create_node` / `valori_kernel_create_node`.
pub(crate) fn create_node<H: Target>(
    h: *mut H,
    kind: u32,
    record: *const u64,
    label: *const u8,
    label_len: usize,
    out_id: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        unsafe {
            let record = check!(ffi::opt(record)).copied();
            let label = check!(ffi::slice(label, label_len));
            let out = check!(ffi::out(out_id));
            let op = Op::CreateNode {
                kind,
                record,
                label,
            };
            H::write(h, op, Some(out))
        }
    })
}

/// `valori_create_edge` / `valori_kernel_create_edge`.
pub(crate) fn create_edge<H: Target>(
    h: *mut H,
    kind: u32,
    from: u64,
    to: u64,
    weight: *const f32,
    out_id: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        unsafe {
            let weight = check!(ffi::opt(weight)).copied();
            let out = check!(ffi::out(out_id));
            let op = Op::CreateEdge {
                kind,
                from,
                to,
                weight,
            };
            H::write(h, op, Some(out))
        }
    })
}

/// The deletes (`valori_delete`, `valori_delete_node`, `valori_delete_edge` and their
/// `valori_kernel_*` twins): `op` names the object.
#[inline(always)]
pub(crate) fn delete<H: Target>(h: *mut H, op: Op<'_>) -> c_int {
    // SAFETY: the handle is checked by `write`.
    boundary(|| unsafe { H::write(h, op, None) })
}
