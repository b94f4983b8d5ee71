//! The embedded API: the kernel alone, in memory the caller provides (no allocator, no
//! files). Builds for bare-metal targets.

use crate::entry::{self, Op, Read, Target};
use crate::ffi::{self, check, valori_edge, valori_hit, valori_hop};
use crate::{boundary, kernel_code, VALORI_INSUFFICIENT_SIZE, VALORI_MISUSE, VALORI_OK};
use core::ffi::{c_int, c_void};
use core::mem::{align_of, size_of};
use vk::{Applied, Capacity, Command, Config, Fxp, Invalid, Kernel};

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
    let scratch = (config.dim as usize).checked_mul(size_of::<Fxp>())? + align_of::<Fxp>() - 1;
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
    // Field by field: the kernel moves once, from `make`'s result into place (a whole
    // `valori_kernel` built on the stack first would be one more copy of it there).
    match make(tables) {
        Ok(kernel) => core::ptr::addr_of_mut!((*handle).kernel).write(kernel),
        Err(e) => return Err(kernel_code(&e)),
    }
    core::ptr::addr_of_mut!((*handle).magic).write(KERNEL_MAGIC);
    core::ptr::addr_of_mut!((*handle).scratch).write(scratch);
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

/// Converts a float vector into the handle's scratch space.
fn convert<'s>(scratch: &'s mut [Fxp], v: &[f32]) -> Result<&'s [Fxp], c_int> {
    vk::fxp::convert_f32(v, scratch).map_err(|e| kernel_code(&e))?;
    Ok(scratch)
}

fn code(r: Read) -> c_int {
    r.unwrap_or_else(|e| kernel_code(&e))
}

impl Target for valori_kernel {
    unsafe fn read(p: *const Self, f: impl FnOnce(&Kernel<'_>) -> Read) -> c_int {
        let h = check!(handle(p));
        code(f(&h.kernel))
    }

    unsafe fn read_query(
        p: *const Self,
        query: &[f32],
        f: impl FnOnce(&Kernel<'_>, &[Fxp]) -> Read,
    ) -> c_int {
        // The only caller is `valori_kernel_search`, whose `valori_kernel *` is exclusive.
        let h = check!(handle_mut(p.cast_mut()));
        let q = check!(convert(h.scratch, query));
        code(f(&h.kernel, q))
    }

    // Inlined into each entry point, whose operation is then a constant: a firmware links the
    // code of the operations it calls and no other (see `Kernel::apply`).
    #[inline(always)]
    unsafe fn write(p: *mut Self, op: Op<'_>, out_id: Option<&mut u64>) -> c_int {
        let h = check!(handle_mut(p));
        let cmd = match op {
            Op::Insert { vector, tag, meta } => Command::Insert {
                id: None,
                tag,
                vector: check!(convert(h.scratch, vector)).into(),
                meta,
            },
            Op::Delete(id) => Command::Delete { id },
            Op::SetMeta { id, meta } => Command::SetMeta { id, meta },
            Op::SetTag { id, tag } => Command::SetTag { id, tag },
            Op::CreateNode {
                kind,
                record,
                label,
            } => Command::CreateNode {
                id: None,
                kind,
                record,
                label,
            },
            Op::DeleteNode(id) => Command::DeleteNode { id },
            Op::CreateEdge {
                kind,
                from,
                to,
                weight,
            } => Command::CreateEdge {
                id: None,
                kind,
                from,
                to,
                weight: check!(weight
                    .map(|w| Fxp::from_f32(w, 0))
                    .transpose()
                    .map_err(|e| kernel_code(&e))),
            },
            Op::DeleteEdge(id) => Command::DeleteEdge { id },
        };
        match h.kernel.apply(&cmd) {
            Ok(applied) => {
                if let (Some(out), Applied::Created(id)) = (out_id, applied) {
                    *out = id;
                }
                VALORI_OK
            }
            Err(e) => kernel_code(&e),
        }
    }
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

/// Rebuilds a kernel inside `mem` from a snapshot made by `valori_kernel_snapshot`, which
/// carries its state hash: a damaged snapshot is `VALORI_CORRUPT`. The configuration's
/// dimension and metric must match the snapshot's (else `VALORI_DIMENSION` or
/// `VALORI_INVALID_INPUT`); its capacities must hold it (else `VALORI_FULL`).
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
                let k = Kernel::from_snapshot_in(bytes, cap, t)?;
                let stored = k.config();
                if stored.dim != config.dim {
                    return Err(vk::Error::Dimension {
                        expected: config.dim,
                        got: u64::from(stored.dim),
                    });
                }
                if stored.metric != config.metric {
                    return Err(vk::Error::InvalidInput(Invalid::MetricMismatch {
                        stored: stored.metric,
                        given: config.metric,
                    }));
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
    entry::insert(kernel, vector, dim, tag, meta, meta_len, out_id)
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
        check!(k.kernel.apply(&cmd).map_err(|e| kernel_code(&e)));
        VALORI_OK
    })
}

/// Deletes a record, the nodes linked to it and their edges.
///
/// - `kernel`: [in] the kernel.
#[no_mangle]
pub extern "C" fn valori_kernel_delete(kernel: *mut valori_kernel, id: u64) -> c_int {
    entry::delete(kernel, Op::Delete(id))
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
    entry::set_meta(kernel, id, meta, meta_len)
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
    entry::set_tag(kernel, id, tag)
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
    entry::create_node(kernel, kind, record, label, label_len, out_id)
}

/// Deletes a node and its edges.
///
/// - `kernel`: [in] the kernel.
#[no_mangle]
pub extern "C" fn valori_kernel_delete_node(kernel: *mut valori_kernel, id: u64) -> c_int {
    entry::delete(kernel, Op::DeleteNode(id))
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
    entry::create_edge(kernel, kind, from, to, weight, out_id)
}

/// Deletes an edge.
///
/// - `kernel`: [in] the kernel.
#[no_mangle]
pub extern "C" fn valori_kernel_delete_edge(kernel: *mut valori_kernel, id: u64) -> c_int {
    entry::delete(kernel, Op::DeleteEdge(id))
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
    entry::search(
        kernel.cast_const(),
        query,
        dim,
        k,
        tag,
        out_hits,
        cap,
        out_len,
    )
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
    entry::search_raw(kernel, query, dim, k, tag, out_hits, cap, out_len)
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
    entry::neighbors(kernel, node, direction, out_edges, cap, out_len)
}

/// Nodes within `hops` edges of `start`, ordered by (depth, node id). With room in `out_hops`
/// for every other node of the kernel it needs no other memory; with less, the hosted library
/// finds the exact size needed, and the bare-metal library (no allocator) asks for room for
/// every other node.
///
/// - `kernel`: [in] the kernel.
/// - `kind`: [in, nullable] follow only edges of this kind, or NULL for all.
/// - `out_hops`: [out] room for `cap` nodes.
/// - `out_len`: [out] nodes written; with `VALORI_INSUFFICIENT_SIZE` (and `out_hops` not
///   written), the nodes needed: exactly, in the hosted library; the kernel's node count
///   minus one, which always suffices, in the bare-metal library.
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
    entry::traverse(kernel, start, hops, direction, kind, out_hops, cap, out_len)
}

/// Number of records.
///
/// - `kernel`: [in] the kernel.
/// - `out_count`: [out] the count.
#[no_mangle]
pub extern "C" fn valori_kernel_count(kernel: *const valori_kernel, out_count: *mut u64) -> c_int {
    entry::count(kernel, out_count)
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
    entry::state_hash(kernel, out_hash)
}

/// Writes a snapshot for `valori_kernel_restore`: the canonical state encoding framed with
/// its state hash (docs/FORMAT.md §13), so that restore detects any damage.
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
        code(entry::sized(h.kernel.write_snapshot(buf), out_len))
    })
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
    entry::get_vector(kernel, id, out_vector, cap, out_len)
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
    entry::get_meta(kernel, id, out_meta, cap, out_len)
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
    entry::get_tag(kernel, id, out_tag, out_has_tag)
}
