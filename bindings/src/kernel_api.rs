//! The embedded API: the kernel alone, in memory the caller provides (no allocator, no
//! files). Builds for bare-metal targets.

use crate::ffi::{self, check, valori_edge, valori_hit, valori_hop};
use crate::{boundary, kernel_code, VALORI_INSUFFICIENT_SIZE, VALORI_MISUSE, VALORI_OK};
use core::ffi::{c_int, c_void};
use core::mem::{align_of, size_of};
use vk::{Capacity, Command, Config, Fxp, HitSlot, Kernel};

/// What an embedded kernel holds and how much room it has.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct valori_kernel_config {
    /// Components per vector (1..=65536).
    pub dim: u32,
    /// `VALORI_METRIC_*`.
    pub metric: u32,
    /// Record capacity.
    pub max_records: u32,
    /// Graph node capacity.
    pub max_nodes: u32,
    /// Graph edge capacity.
    pub max_edges: u32,
    /// Total bytes of record metadata.
    pub meta_bytes: u32,
    /// Total bytes of node labels.
    pub label_bytes: u32,
}

/// A kernel living in caller memory (opaque). Created by `valori_kernel_init` or
/// `valori_kernel_restore`; it needs no destructor: reuse or free the memory.
pub struct valori_kernel {
    magic: u32,
    kernel: Kernel<'static>,
    /// Room for one converted vector (float inputs).
    scratch: &'static mut [Fxp],
}

const KERNEL_MAGIC: u32 = 0x564c_524b;

fn parse_config(cfg: &valori_kernel_config) -> Result<(Config, Capacity), c_int> {
    let config = Config::new(cfg.dim, ffi::metric(cfg.metric)?).map_err(|e| kernel_code(&e))?;
    let cap = Capacity {
        records: cfg.max_records,
        nodes: cfg.max_nodes,
        edges: cfg.max_edges,
        meta_bytes: cfg.meta_bytes,
        label_bytes: cfg.label_bytes,
    };
    Ok((config, cap))
}

/// Bytes needed: the handle, one vector of scratch, the tables, worst-case alignment.
fn mem_size(config: Config, cap: Capacity) -> Option<usize> {
    let tables = Kernel::mem_size(config, cap)?;
    let handle = size_of::<valori_kernel>() + align_of::<valori_kernel>() - 1;
    let scratch = (config.dim as usize).checked_mul(4)? + 3;
    tables.checked_add(handle)?.checked_add(scratch)
}

/// Lays out a handle in `mem` around a kernel made by `make` from the table memory.
///
/// # Safety
/// `mem` must be valid for `len` writable bytes for as long as the kernel is used.
unsafe fn place(
    config: Config,
    cap: Capacity,
    mem: *mut c_void,
    len: usize,
    make: impl FnOnce(&'static mut [u8]) -> Result<Kernel<'static>, vk::Error>,
) -> Result<*mut valori_kernel, c_int> {
    let need = mem_size(config, cap).ok_or(VALORI_INSUFFICIENT_SIZE)?;
    if len < need {
        return Err(VALORI_INSUFFICIENT_SIZE);
    }
    let base = mem.cast::<u8>();
    let pad = base.align_offset(align_of::<valori_kernel>());
    let handle = base.add(pad).cast::<valori_kernel>();
    let after = pad + size_of::<valori_kernel>();
    let spad = base.add(after).align_offset(align_of::<Fxp>());
    let scratch_at = after + spad;
    let dim = config.dim as usize;
    let tables_at = scratch_at + dim * size_of::<Fxp>();
    if tables_at > len {
        return Err(VALORI_INSUFFICIENT_SIZE);
    }
    let scratch = core::slice::from_raw_parts_mut(base.add(scratch_at).cast::<Fxp>(), dim);
    let tables = core::slice::from_raw_parts_mut(base.add(tables_at), len - tables_at);
    let kernel = make(tables).map_err(|e| kernel_code(&e))?;
    handle.write(valori_kernel {
        magic: KERNEL_MAGIC,
        kernel,
        scratch,
    });
    Ok(handle)
}

/// # Safety
/// A non-NULL `k` must be a handle from `valori_kernel_init`/`valori_kernel_restore`.
unsafe fn handle<'a>(k: *const valori_kernel) -> Result<&'a valori_kernel, c_int> {
    let h = ffi::get(k)?;
    if h.magic != KERNEL_MAGIC {
        return Err(VALORI_MISUSE);
    }
    Ok(h)
}

/// # Safety
/// As [`handle`].
unsafe fn handle_mut<'a>(k: *mut valori_kernel) -> Result<&'a mut valori_kernel, c_int> {
    let h = ffi::out(k)?;
    if h.magic != KERNEL_MAGIC {
        return Err(VALORI_MISUSE);
    }
    Ok(h)
}

impl valori_kernel {
    fn apply(&mut self, cmd: &Command<'_>) -> Result<vk::Applied, c_int> {
        self.kernel.apply(cmd).map_err(|e| kernel_code(&e))
    }
}

/// Converts a float vector into the handle's scratch space.
fn convert<'s>(scratch: &'s mut [Fxp], v: &[f32]) -> Result<&'s [Fxp], c_int> {
    vk::fxp::convert_f32(v, scratch).map_err(|e| kernel_code(&e))?;
    Ok(scratch)
}

/// Writes the id a create command produced.
fn created(a: vk::Applied, out_id: &mut u64) -> c_int {
    if let vk::Applied::Created(id) = a {
        *out_id = id;
    }
    VALORI_OK
}

/// Bytes of memory a kernel with this configuration needs.
///
/// - `cfg`: [in] the configuration.
/// - `out_size`: [out] the size in bytes.
///
/// Returns `VALORI_INVALID_INPUT` for a bad dimension or metric.
#[no_mangle]
pub extern "C" fn valori_kernel_mem_size(
    cfg: *const valori_kernel_config,
    out_size: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: the C caller passes a valid config and output pointer (checked for NULL).
        let (cfg, out_size) = unsafe { (check!(ffi::get(cfg)), check!(ffi::out(out_size))) };
        let (config, cap) = check!(parse_config(cfg));
        *out_size = check!(mem_size(config, cap).ok_or(crate::VALORI_INVALID_INPUT));
        VALORI_OK
    })
}

/// Initialises an empty kernel inside `mem` (at least `valori_kernel_mem_size` bytes; any
/// alignment). The memory must stay valid and untouched while the kernel is used.
///
/// - `cfg`: [in] the configuration.
/// - `mem`: [in] caller memory, `mem_len` bytes.
/// - `out_kernel`: [out] the handle (points into `mem`).
///
/// Returns `VALORI_INSUFFICIENT_SIZE` if `mem_len` is too small.
#[no_mangle]
pub extern "C" fn valori_kernel_init(
    cfg: *const valori_kernel_config,
    mem: *mut c_void,
    mem_len: usize,
    out_kernel: *mut *mut valori_kernel,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked for NULL; `mem` is valid for `mem_len` bytes by contract.
        unsafe {
            let cfg = check!(ffi::get(cfg));
            let out = check!(ffi::out(out_kernel));
            if mem.is_null() {
                return VALORI_MISUSE;
            }
            let (config, cap) = check!(parse_config(cfg));
            *out = check!(place(config, cap, mem, mem_len, |t| Kernel::with_memory(
                config, cap, t
            )));
        }
        VALORI_OK
    })
}

/// Rebuilds a kernel inside `mem` from a snapshot made by `valori_kernel_snapshot` (or the
/// kernel section of a database snapshot). The configuration's dimension and metric must
/// match the snapshot's; its capacities must hold it (else `VALORI_FULL`).
///
/// - `cfg`: [in] the configuration.
/// - `snapshot`: [in] `snapshot_len` bytes.
/// - `mem`: [in] caller memory, `mem_len` bytes.
/// - `out_kernel`: [out] the handle.
#[no_mangle]
pub extern "C" fn valori_kernel_restore(
    cfg: *const valori_kernel_config,
    snapshot: *const u8,
    snapshot_len: usize,
    mem: *mut c_void,
    mem_len: usize,
    out_kernel: *mut *mut valori_kernel,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked for NULL; buffers valid for their lengths by contract.
        unsafe {
            let cfg = check!(ffi::get(cfg));
            let bytes = check!(ffi::slice(snapshot, snapshot_len));
            let out = check!(ffi::out(out_kernel));
            if mem.is_null() {
                return VALORI_MISUSE;
            }
            let (config, cap) = check!(parse_config(cfg));
            let h = check!(place(config, cap, mem, mem_len, |t| {
                let k = Kernel::from_bytes_in(bytes, cap, t)?;
                if k.config() != config {
                    return Err(vk::Error::Dimension {
                        expected: config.dim,
                        got: u64::from(k.config().dim),
                    });
                }
                Ok(k)
            }));
            *out = h;
        }
        VALORI_OK
    })
}

/// Inserts a vector (converted from floats) with an optional tag and metadata.
///
/// - `kernel`: [in] the kernel.
/// - `vector`: [in] `dim` floats.
/// - `tag`: [in, nullable] the tag, or NULL for none.
/// - `meta`: [in] `meta_len` bytes of metadata (NULL with 0 for none).
/// - `out_id`: [out] the new record's id.
#[no_mangle]
pub extern "C" fn valori_kernel_insert(
    kernel: *mut valori_kernel,
    vector: *const f32,
    dim: usize,
    tag: *const u64,
    meta: *const u8,
    meta_len: usize,
    out_id: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; buffers valid for their lengths by contract.
        let (k, v, tag, meta, out_id) = unsafe {
            (
                check!(handle_mut(kernel)),
                check!(ffi::slice(vector, dim)),
                check!(ffi::opt(tag)).copied(),
                check!(ffi::slice(meta, meta_len)),
                check!(ffi::out(out_id)),
            )
        };
        let v = check!(convert(k.scratch, v));
        // `v` borrows the handle's scratch, so apply through the kernel field directly.
        let cmd = Command::Insert {
            id: None,
            tag,
            vector: v.into(),
            meta,
        };
        let applied = check!(k.kernel.apply(&cmd).map_err(|e| kernel_code(&e)));
        created(applied, out_id)
    })
}

/// Applies one encoded command (as carried by the WAL and `valori_export`).
///
/// - `kernel`: [in] the kernel.
/// - `command`: [in] `len` bytes: one command in the wire format of docs/FORMAT.md §5.
#[no_mangle]
pub extern "C" fn valori_kernel_apply(
    kernel: *mut valori_kernel,
    command: *const u8,
    len: usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; buffer valid for `len` by contract.
        let (k, bytes) = unsafe { (check!(handle_mut(kernel)), check!(ffi::slice(command, len))) };
        let cmd = check!(Command::decode(bytes).map_err(|e| kernel_code(&e)));
        check!(k.apply(&cmd));
        VALORI_OK
    })
}

/// Deletes a record, the nodes linked to it and their edges.
///
/// - `kernel`: [in] the kernel.
#[no_mangle]
pub extern "C" fn valori_kernel_delete(kernel: *mut valori_kernel, id: u64) -> c_int {
    boundary(|| {
        // SAFETY: handle checked.
        let k = unsafe { check!(handle_mut(kernel)) };
        check!(k.apply(&Command::Delete { id }));
        VALORI_OK
    })
}

/// Replaces a record's metadata.
///
/// - `kernel`: [in] the kernel.
/// - `meta`: [in] `meta_len` bytes (NULL with 0 removes it).
#[no_mangle]
pub extern "C" fn valori_kernel_set_meta(
    kernel: *mut valori_kernel,
    id: u64,
    meta: *const u8,
    meta_len: usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (k, meta) = unsafe {
            (
                check!(handle_mut(kernel)),
                check!(ffi::slice(meta, meta_len)),
            )
        };
        check!(k.apply(&Command::SetMeta { id, meta }));
        VALORI_OK
    })
}

/// Replaces a record's tag.
///
/// - `kernel`: [in] the kernel.
/// - `tag`: [in, nullable] the new tag, or NULL to remove it.
#[no_mangle]
pub extern "C" fn valori_kernel_set_tag(
    kernel: *mut valori_kernel,
    id: u64,
    tag: *const u64,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (k, tag) = unsafe { (check!(handle_mut(kernel)), check!(ffi::opt(tag)).copied()) };
        check!(k.apply(&Command::SetTag { id, tag }));
        VALORI_OK
    })
}

/// Creates a graph node.
///
/// - `kernel`: [in] the kernel.
/// - `record`: [in, nullable] the record to link, or NULL.
/// - `label`: [in] `label_len` bytes (NULL with 0 for none).
/// - `out_id`: [out] the node id.
#[no_mangle]
pub extern "C" fn valori_kernel_create_node(
    kernel: *mut valori_kernel,
    kind: u32,
    record: *const u64,
    label: *const u8,
    label_len: usize,
    out_id: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (k, record, label, out_id) = unsafe {
            (
                check!(handle_mut(kernel)),
                check!(ffi::opt(record)).copied(),
                check!(ffi::slice(label, label_len)),
                check!(ffi::out(out_id)),
            )
        };
        let a = check!(k.apply(&Command::CreateNode {
            id: None,
            kind,
            record,
            label
        }));
        created(a, out_id)
    })
}

/// Deletes a node and its edges.
///
/// - `kernel`: [in] the kernel.
#[no_mangle]
pub extern "C" fn valori_kernel_delete_node(kernel: *mut valori_kernel, id: u64) -> c_int {
    boundary(|| {
        // SAFETY: handle checked.
        let k = unsafe { check!(handle_mut(kernel)) };
        check!(k.apply(&Command::DeleteNode { id }));
        VALORI_OK
    })
}

/// Creates a directed edge between existing nodes.
///
/// - `kernel`: [in] the kernel.
/// - `weight`: [in, nullable] the weight, or NULL for none.
/// - `out_id`: [out] the edge id.
#[no_mangle]
pub extern "C" fn valori_kernel_create_edge(
    kernel: *mut valori_kernel,
    kind: u32,
    from: u64,
    to: u64,
    weight: *const f32,
    out_id: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (k, weight, out_id) = unsafe {
            (
                check!(handle_mut(kernel)),
                check!(ffi::opt(weight)).copied(),
                check!(ffi::out(out_id)),
            )
        };
        let weight = match weight.map(|w| Fxp::from_f32(w, 0)).transpose() {
            Ok(w) => w,
            Err(e) => return kernel_code(&e),
        };
        let a = check!(k.apply(&Command::CreateEdge {
            id: None,
            kind,
            from,
            to,
            weight
        }));
        created(a, out_id)
    })
}

/// Deletes an edge.
///
/// - `kernel`: [in] the kernel.
#[no_mangle]
pub extern "C" fn valori_kernel_delete_edge(kernel: *mut valori_kernel, id: u64) -> c_int {
    boundary(|| {
        // SAFETY: handle checked.
        let k = unsafe { check!(handle_mut(kernel)) };
        check!(k.apply(&Command::DeleteEdge { id }));
        VALORI_OK
    })
}

/// Exact k nearest records, ordered by (distance, id). Uses the handle's scratch space for
/// the query, so it needs a non-const handle.
///
/// - `kernel`: [in] the kernel.
/// - `query`: [in] `dim` floats.
/// - `tag`: [in, nullable] only records with this tag, or NULL for all.
/// - `out_hits`: [out] room for `cap` hits.
/// - `out_len`: [out] hits written; with `VALORI_INSUFFICIENT_SIZE`, hits needed.
#[no_mangle]
pub extern "C" fn valori_kernel_search(
    kernel: *mut valori_kernel,
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
        let (h, q, tag, out, out_len) = unsafe {
            (
                check!(handle_mut(kernel)),
                check!(ffi::slice(query, dim)),
                check!(ffi::opt(tag)).copied(),
                check!(ffi::slice_mut(out_hits, cap)),
                check!(ffi::out(out_len)),
            )
        };
        let q = check!(convert(h.scratch, q));
        search(&h.kernel, q, k, tag, out, out_len)
    })
}

/// Exact k nearest records to a query given in raw Q16.16 (`value * 65536` as `int32_t`),
/// ordered by (distance, id). Needs no conversion, so the handle is const: concurrent
/// searches on one kernel are allowed.
///
/// - `kernel`: [in] the kernel.
/// - `query`: [in] `dim` raw Q16.16 values.
/// - `tag`: [in, nullable] only records with this tag, or NULL for all.
/// - `out_hits`: [out] room for `cap` hits.
/// - `out_len`: [out] hits written; with `VALORI_INSUFFICIENT_SIZE`, hits needed.
#[no_mangle]
pub extern "C" fn valori_kernel_search_raw(
    kernel: *const valori_kernel,
    query: *const i32,
    dim: usize,
    k: u32,
    tag: *const u64,
    out_hits: *mut valori_hit,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; buffers valid for their lengths by contract.
        let (h, q, tag, out, out_len) = unsafe {
            (
                check!(handle(kernel)),
                check!(ffi::slice(query.cast::<Fxp>(), dim)),
                check!(ffi::opt(tag)).copied(),
                check!(ffi::slice_mut(out_hits, cap)),
                check!(ffi::out(out_len)),
            )
        };
        search(&h.kernel, q, k, tag, out, out_len)
    })
}

/// Searches straight into the caller's hits (see `HitSlot`), then fills in the real-valued
/// distances.
pub(crate) fn search(
    kern: &Kernel<'_>,
    q: &[Fxp],
    k: u32,
    tag: Option<u64>,
    out: &mut [valori_hit],
    out_len: &mut usize,
) -> c_int {
    match kern.search(q, k, tag, out) {
        Ok(n) => {
            let metric = kern.config().metric;
            for h in out.iter_mut().take(n) {
                h.distance = metric.distance_to_f64(h.hit().distance);
            }
            *out_len = n;
            VALORI_OK
        }
        Err(vk::Error::InsufficientSize { needed }) => {
            *out_len = needed as usize;
            VALORI_INSUFFICIENT_SIZE
        }
        Err(e) => kernel_code(&e),
    }
}

/// Edges at a node.
///
/// - `kernel`: [in] the kernel.
/// - `direction`: `VALORI_DIRECTION_OUT`, `_IN` or `_BOTH`.
/// - `out_edges`: [out] room for `cap` edges.
/// - `out_len`: [out] edges written; with `VALORI_INSUFFICIENT_SIZE`, edges needed.
#[no_mangle]
pub extern "C" fn valori_kernel_neighbors(
    kernel: *const valori_kernel,
    node: u64,
    direction: u32,
    out_edges: *mut valori_edge,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, out, out_len) = unsafe {
            (
                check!(handle(kernel)),
                check!(ffi::slice_mut(out_edges, cap)),
                check!(ffi::out(out_len)),
            )
        };
        neighbors(
            &h.kernel,
            node,
            check!(ffi::direction(direction)),
            out,
            out_len,
        )
    })
}

pub(crate) fn neighbors(
    k: &Kernel<'_>,
    node: u64,
    d: vk::Direction,
    out: &mut [valori_edge],
    out_len: &mut usize,
) -> c_int {
    use vk::Direction::{Both, Incoming, Outgoing};
    if k.node(node).is_none() {
        return kernel_code(&vk::Error::NotFound(vk::Object::Node, node));
    }
    let want_out = matches!(d, Outgoing | Both);
    let want_in = matches!(d, Incoming | Both);
    let edges = || {
        let outs = want_out.then(|| k.outgoing(node)).into_iter().flatten();
        let ins = want_in.then(|| k.incoming(node)).into_iter().flatten();
        outs.chain(ins)
    };
    ffi::write_all(ExactLen(edges(), edges().count()), ffi::edge, out, out_len)
}

/// An iterator with a known length.
pub(crate) struct ExactLen<I>(pub(crate) I, pub(crate) usize);

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

/// Nodes within `hops` edges of `start`, ordered by (depth, node id).
///
/// - `kernel`: [in] the kernel.
/// - `kind`: [in, nullable] follow only edges of this kind, or NULL for all.
/// - `out_hops`: [out] room for `cap` nodes.
/// - `out_len`: [out] nodes written; with `VALORI_INSUFFICIENT_SIZE`, at least this many are
///   needed.
#[no_mangle]
pub extern "C" fn valori_kernel_traverse(
    kernel: *const valori_kernel,
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
        let (h, kind, out, out_len) = unsafe {
            (
                check!(handle(kernel)),
                check!(ffi::opt(kind)).copied(),
                check!(ffi::slice_mut(out_hops, cap)),
                check!(ffi::out(out_len)),
            )
        };
        traverse(
            &h.kernel,
            start,
            hops,
            check!(ffi::direction(direction)),
            kind,
            out,
            out_len,
        )
    })
}

pub(crate) fn traverse(
    k: &Kernel<'_>,
    start: u64,
    hops: u32,
    d: vk::Direction,
    kind: Option<u32>,
    out: &mut [valori_hop],
    out_len: &mut usize,
) -> c_int {
    match k.traverse(start, hops, d, kind, out) {
        Ok(n) => {
            *out_len = n;
            VALORI_OK
        }
        Err(vk::Error::InsufficientSize { needed }) => {
            *out_len = needed as usize;
            VALORI_INSUFFICIENT_SIZE
        }
        Err(e) => kernel_code(&e),
    }
}

/// Number of records.
///
/// - `kernel`: [in] the kernel.
/// - `out_count`: [out] the count.
#[no_mangle]
pub extern "C" fn valori_kernel_count(kernel: *const valori_kernel, out_count: *mut u64) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, out) = unsafe { (check!(handle(kernel)), check!(ffi::out(out_count))) };
        *out = h.kernel.len() as u64;
        VALORI_OK
    })
}

/// The state hash: identical on every platform for the same commands.
///
/// - `kernel`: [in] the kernel.
/// - `out_hash`: [out] 32 bytes.
#[no_mangle]
pub extern "C" fn valori_kernel_state_hash(
    kernel: *const valori_kernel,
    out_hash: *mut u8,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; `out_hash` has 32 bytes by contract.
        let (h, out) = unsafe {
            (
                check!(handle(kernel)),
                check!(ffi::array_mut::<32>(out_hash)),
            )
        };
        *out = h.kernel.state_hash();
        VALORI_OK
    })
}

/// Writes the canonical state encoding (a snapshot for `valori_kernel_restore`).
///
/// - `kernel`: [in] the kernel.
/// - `out`: [out] room for `cap` bytes.
/// - `out_len`: [out] bytes written; with `VALORI_INSUFFICIENT_SIZE`, bytes needed.
#[no_mangle]
pub extern "C" fn valori_kernel_snapshot(
    kernel: *const valori_kernel,
    out: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, buf, out_len) = unsafe {
            (
                check!(handle(kernel)),
                check!(ffi::slice_mut(out, cap)),
                check!(ffi::out(out_len)),
            )
        };
        match h.kernel.encode(buf) {
            Ok(n) => {
                *out_len = n;
                VALORI_OK
            }
            Err(vk::Error::InsufficientSize { needed }) => {
                *out_len = needed as usize;
                VALORI_INSUFFICIENT_SIZE
            }
            Err(e) => kernel_code(&e),
        }
    })
}

/// Copies a record's vector (as floats: exact below 256 in magnitude) to the caller.
pub(crate) fn get_vector(k: &Kernel<'_>, id: u64, out: &mut [f32], out_len: &mut usize) -> c_int {
    match k.get(id) {
        Some(r) => ffi::write_all(r.vector.iter(), ffi::to_f32, out, out_len),
        None => kernel_code(&vk::Error::NotFound(vk::Object::Record, id)),
    }
}

/// Copies a record's metadata to the caller.
pub(crate) fn get_meta(k: &Kernel<'_>, id: u64, out: &mut [u8], out_len: &mut usize) -> c_int {
    match k.get(id) {
        Some(r) => ffi::write_all(r.meta.iter(), |b| **b, out, out_len),
        None => kernel_code(&vk::Error::NotFound(vk::Object::Record, id)),
    }
}

/// A record's tag: `*out_has_tag` is 1 and `*out_tag` the tag, or `*out_has_tag` is 0.
pub(crate) fn get_tag(
    k: &Kernel<'_>,
    id: u64,
    out_tag: &mut u64,
    out_has_tag: &mut c_int,
) -> c_int {
    match k.get(id) {
        Some(r) => {
            *out_tag = r.tag.unwrap_or(0);
            *out_has_tag = c_int::from(r.tag.is_some());
            VALORI_OK
        }
        None => kernel_code(&vk::Error::NotFound(vk::Object::Record, id)),
    }
}

/// A record's vector as floats.
///
/// - `kernel`: [in] the kernel.
/// - `out_vector`: [out] room for `cap` floats.
/// - `out_len`: [out] floats written; with `VALORI_INSUFFICIENT_SIZE`, floats needed.
#[no_mangle]
pub extern "C" fn valori_kernel_get_vector(
    kernel: *const valori_kernel,
    id: u64,
    out_vector: *mut f32,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, out, out_len) = unsafe {
            (
                check!(handle(kernel)),
                check!(ffi::slice_mut(out_vector, cap)),
                check!(ffi::out(out_len)),
            )
        };
        get_vector(&h.kernel, id, out, out_len)
    })
}

/// A record's metadata.
///
/// - `kernel`: [in] the kernel.
/// - `out_meta`: [out] room for `cap` bytes.
/// - `out_len`: [out] bytes written; with `VALORI_INSUFFICIENT_SIZE`, bytes needed.
#[no_mangle]
pub extern "C" fn valori_kernel_get_meta(
    kernel: *const valori_kernel,
    id: u64,
    out_meta: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, out, out_len) = unsafe {
            (
                check!(handle(kernel)),
                check!(ffi::slice_mut(out_meta, cap)),
                check!(ffi::out(out_len)),
            )
        };
        get_meta(&h.kernel, id, out, out_len)
    })
}

/// A record's tag.
///
/// - `kernel`: [in] the kernel.
/// - `out_tag`: [out] the tag (0 if none).
/// - `out_has_tag`: [out] 1 if the record has a tag, else 0.
#[no_mangle]
pub extern "C" fn valori_kernel_get_tag(
    kernel: *const valori_kernel,
    id: u64,
    out_tag: *mut u64,
    out_has_tag: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, tag, has) = unsafe {
            (
                check!(handle(kernel)),
                check!(ffi::out(out_tag)),
                check!(ffi::out(out_has_tag)),
            )
        };
        get_tag(&h.kernel, id, tag, has)
    })
}
