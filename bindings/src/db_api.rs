//! The hosted API: the durable database (`valori_open` ... `valori_close`).

use crate::entry::{self, Op, Read, Target};
use crate::ffi::{self, check, valori_edge, valori_hit, valori_hop};
use crate::messages::{self, HandleId};
use crate::{boundary, kernel_code, primary, VALORI_MISUSE, VALORI_OK};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use valori_engine::{Durability, Engine, Export, Hint, Options};
use vk::{fxp, Fxp, Kernel};

/// Durability: every commit fsynced before it returns (default).
pub const VALORI_DURABILITY_FSYNC: u32 = 0;
/// Durability: fsynced before return, concurrent writers share the fsync.
pub const VALORI_DURABILITY_GROUP_COMMIT: u32 = 1;
/// Durability: written to the OS only (bulk loads; a power loss may lose recent commits).
pub const VALORI_DURABILITY_NONE: u32 = 2;

/// Metric for `valori_options` (the default of `valori_options_init`): the database's own
/// metric when opening an existing one, L2 when creating. Not a metric of its own, so not
/// valid in `valori_kernel_config`.
pub const VALORI_METRIC_ANY: u32 = u32::MAX;

/// Options for `valori_open`. Initialise with `valori_options_init`, then set fields: new
/// fields are only ever appended, and `struct_size` tells the library which ones you have.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct valori_options {
    /// `sizeof(valori_options)` as compiled by the caller (set by `valori_options_init`).
    pub struct_size: u32,
    /// Dimension: required to create a database; 0 (default) to accept an existing one's.
    pub dim: u32,
    /// `VALORI_METRIC_ANY` (default): the database's metric when opening, L2 when creating.
    /// A specific `VALORI_METRIC_*` creates with that metric and must equal an existing
    /// database's (else `VALORI_INVALID_INPUT`).
    pub metric: u32,
    /// `VALORI_DURABILITY_*` (default FSYNC).
    pub durability: u32,
    /// Checkpoint when the WAL passes this many bytes and the size of the last snapshot
    /// (default 256 MiB; 0 disables).
    pub checkpoint_wal_bytes: u64,
    /// 1 to create the database if missing (default), 0 to fail instead.
    pub create: u32,
    /// 1 to open read-only up to the first damage (salvage), default 0.
    pub salvage: u32,
    /// Links per node of an approximate (HNSW) index, 2 to 64 (16 is usual); 0 (default): no
    /// index for a new database, and an existing database's as it is. Creating with it indexes
    /// every record; given for an existing database without an index, one is built over its
    /// records; other parameters than an existing index's are `VALORI_INVALID_INPUT`.
    /// (Appended in version 2 of the struct.)
    pub index_m: u32,
    /// Candidates per insert of the index, `index_m` to 65536 (200 is usual); used only with
    /// `index_m`. (Version 2.)
    pub index_ef_construction: u32,
}

/// Bytes of the first version of `valori_options` (through `salvage`): the smallest
/// `struct_size` accepted.
const OPTIONS_V1_SIZE: usize = core::mem::offset_of!(valori_options, salvage) + 4;

/// A database handle (opaque). Every call except `valori_close` may run concurrently on one
/// handle from several threads.
pub struct valori_db {
    magic: u32,
    /// The key of this handle's `valori_errmsg` messages.
    id: HandleId,
    engine: std::sync::Arc<Engine>,
    /// The follower applying a stream's records to it (`valori_follow`), if any.
    #[cfg(feature = "fleet")]
    follower: Option<valori_fleet::BackgroundFollower>,
}

const DB_MAGIC: u32 = 0x564c_5244;

thread_local! {
    /// The message of this thread's last failed `valori_open` (for `valori_errmsg(NULL)`).
    static OPEN_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records why a `valori_open` or `valori_follow` failed, for `valori_errmsg(NULL)` on this
/// thread; returns `code`.
fn open_failed(code: c_int, msg: String) -> c_int {
    OPEN_ERROR.with(|e| *e.borrow_mut() = cstring(msg));
    code
}

fn cstring(s: String) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// An engine error as C callers read it: the detail, then the remedy in terms of this API
/// (the engine's `Display` names the Rust API's).
fn message(e: &valori_engine::Error) -> String {
    let detail = e.detail();
    match e.hint() {
        Some(Hint::Salvage) => {
            format!("{detail}; open with opts.salvage = 1 to read the intact prefix")
        }
        Some(Hint::Create) => format!(
            "{detail}; to create one, open with options from valori_options_init with opts.dim set"
        ),
        _ => detail,
    }
}

/// Result code of an engine error.
fn engine_code(e: &valori_engine::Error) -> c_int {
    match e {
        valori_engine::Error::Kernel(k) => kernel_code(k),
        other => primary(other.code()),
    }
}

/// # Safety
/// A non-NULL `db` must be a handle from `valori_open` that was not closed.
unsafe fn db_ref<'a>(db: *const valori_db) -> Result<&'a valori_db, c_int> {
    let h = ffi::get(db)?;
    if h.magic != DB_MAGIC {
        return Err(VALORI_MISUSE);
    }
    Ok(h)
}

impl valori_db {
    /// Records a failure's message for this thread and returns its code.
    fn fail(&self, e: &valori_engine::Error) -> c_int {
        messages::set(self.id, cstring(message(e)));
        engine_code(e)
    }

    fn fail_kernel(&self, e: vk::Error) -> c_int {
        self.fail(&valori_engine::Error::Kernel(e))
    }
}

impl Target for valori_db {
    unsafe fn read(p: *const Self, f: impl FnOnce(&Kernel<'_>) -> Read) -> c_int {
        let h = check!(db_ref(p));
        match h.engine.with_kernel(f) {
            Ok(Ok(code)) => code,
            Ok(Err(e)) => h.fail_kernel(e),
            Err(e) => h.fail(&e),
        }
    }

    unsafe fn read_query(
        p: *const Self,
        query: &[f32],
        f: impl FnOnce(&Kernel<'_>, &[Fxp]) -> Read,
    ) -> c_int {
        let h = check!(db_ref(p));
        match fxp::to_vec(query) {
            Ok(q) => Self::read(p, |k| f(k, &q)),
            Err(e) => h.fail_kernel(e),
        }
    }

    unsafe fn write(p: *mut Self, op: Op<'_>, out_id: Option<&mut u64>) -> c_int {
        let h = check!(db_ref(p));
        let e = &h.engine;
        let created = match op {
            Op::Insert { vector, tag, meta } => e.insert(vector, tag, meta).map(Some),
            Op::Delete(id) => e.delete(id).map(|()| None),
            Op::SetMeta { id, meta } => e.set_meta(id, meta).map(|()| None),
            Op::SetTag { id, tag } => e.set_tag(id, tag).map(|()| None),
            Op::CreateNode {
                kind,
                record,
                label,
            } => e.create_node(kind, record, label).map(Some),
            Op::DeleteNode(id) => e.delete_node(id).map(|()| None),
            Op::CreateEdge {
                kind,
                from,
                to,
                weight,
            } => e.create_edge(kind, from, to, weight).map(Some),
            Op::DeleteEdge(id) => e.delete_edge(id).map(|()| None),
        };
        match created {
            Ok(id) => {
                if let (Some(out), Some(id)) = (out_id, id) {
                    *out = id;
                }
                VALORI_OK
            }
            Err(e) => h.fail(&e),
        }
    }
}

/// Fills `opts` with the defaults (and `struct_size`): dimension 0 and `VALORI_METRIC_ANY`
/// (accept an existing database's), `VALORI_DURABILITY_FSYNC`, checkpoints at 256 MiB,
/// create 1, salvage 0. So defaults reopen any database; set `dim` (and `metric`) to create.
///
/// - `opts`: [out] the options.
#[no_mangle]
pub extern "C" fn valori_options_init(opts: *mut valori_options) -> c_int {
    boundary(|| {
        // SAFETY: pointer checked.
        let o = unsafe { check!(ffi::out(opts)) };
        *o = valori_options {
            struct_size: core::mem::size_of::<valori_options>() as u32,
            dim: 0,
            metric: VALORI_METRIC_ANY,
            durability: VALORI_DURABILITY_FSYNC,
            checkpoint_wal_bytes: 256 << 20,
            create: 1,
            salvage: 0,
            index_m: 0,
            index_ef_construction: 0,
        };
        VALORI_OK
    })
}

/// A copy of the caller's options: the fields its `struct_size` covers, zero after them (a
/// caller built against an older header has a shorter struct).
///
/// # Safety
/// A non-NULL `p` must point to at least `struct_size` readable bytes, `struct_size` first.
unsafe fn read_options(p: *const valori_options) -> Result<Option<valori_options>, c_int> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL; `struct_size` is its first field by contract.
    let size = unsafe { core::ptr::read_unaligned(p.cast::<u32>()) } as usize;
    if size < OPTIONS_V1_SIZE {
        return Err(VALORI_MISUSE);
    }
    let mut o = valori_options {
        struct_size: 0,
        dim: 0,
        metric: 0,
        durability: 0,
        checkpoint_wal_bytes: 0,
        create: 0,
        salvage: 0,
        index_m: 0,
        index_ef_construction: 0,
    };
    let n = size.min(core::mem::size_of::<valori_options>());
    // SAFETY: the caller's struct has `size >= n` bytes; `o` has `size_of` >= n; no overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(p.cast::<u8>(), core::ptr::addr_of_mut!(o).cast::<u8>(), n);
    }
    Ok(Some(o))
}

fn parse_options(o: Option<valori_options>) -> Result<Options, c_int> {
    let Some(o) = o else {
        return Ok(Options::default());
    };
    let index = match o.index_m {
        0 => None,
        m => Some(
            valori_engine::valori_kernel::IndexParams::new(m, o.index_ef_construction)
                .map_err(|_| crate::VALORI_INVALID_INPUT)?,
        ),
    };
    Ok(Options {
        index,
        dim: (o.dim != 0).then_some(o.dim),
        metric: match o.metric {
            VALORI_METRIC_ANY => None,
            m => Some(ffi::metric(m)?),
        },
        durability: match o.durability {
            VALORI_DURABILITY_FSYNC => Durability::Fsync,
            VALORI_DURABILITY_GROUP_COMMIT => Durability::GroupCommit,
            VALORI_DURABILITY_NONE => Durability::None,
            _ => return Err(crate::VALORI_INVALID_INPUT),
        },
        checkpoint_wal_bytes: o.checkpoint_wal_bytes,
        create: o.create != 0,
        salvage: o.salvage != 0,
        ..Options::default()
    })
}

/// Opens (or creates) the database in directory `path`.
///
/// - `path`: [in] NUL-terminated UTF-8 directory path.
/// - `opts`: [in, nullable] options, or NULL for the defaults (then the database must exist).
/// - `out_db`: [out] the handle; close it with `valori_close`.
///
/// Returns `VALORI_BUSY` if another handle or process has it open, `VALORI_CORRUPT` if its
/// files are damaged. On failure, `valori_errmsg(NULL)` on the same thread says why.
#[no_mangle]
pub extern "C" fn valori_open(
    path: *const c_char,
    opts: *const valori_options,
    out_db: *mut *mut valori_db,
) -> c_int {
    boundary(|| {
        let set_err = open_failed;
        // SAFETY: pointers checked; `path` is NUL-terminated by contract.
        let (opts, out) = unsafe {
            if path.is_null() {
                return set_err(VALORI_MISUSE, "valori_open: path is NULL".into());
            }
            (check!(read_options(opts)), check!(ffi::out(out_db)))
        };
        // SAFETY: checked non-NULL above; NUL-terminated by contract.
        let path = unsafe { CStr::from_ptr(path) };
        let Ok(path) = path.to_str() else {
            return set_err(
                crate::VALORI_INVALID_INPUT,
                "valori_open: path is not UTF-8".into(),
            );
        };
        let options = match parse_options(opts) {
            Ok(o) => o,
            Err(code) => return set_err(code, "valori_open: invalid options".into()),
        };
        match Engine::open(path, options) {
            Ok(engine) => {
                *out = Box::into_raw(Box::new(valori_db {
                    magic: DB_MAGIC,
                    id: HandleId::new(),
                    engine: std::sync::Arc::new(engine),
                    #[cfg(feature = "fleet")]
                    follower: None,
                }));
                VALORI_OK
            }
            Err(e) => set_err(engine_code(&e), message(&e)),
        }
    })
}

/// Makes everything durable, closes the database and sets `*db` to NULL (so the handle
/// cannot be used again through that variable). NULL or `*db == NULL` is a no-op.
///
/// - `db`: [in, out, nullable] address of the handle.
///
/// The handle is freed even if the final flush fails (the error is returned).
#[no_mangle]
pub extern "C" fn valori_close(db: *mut *mut valori_db) -> c_int {
    boundary(|| {
        if db.is_null() {
            return VALORI_OK;
        }
        // SAFETY: `db` is non-NULL and points to a handle pointer by contract.
        unsafe {
            let h = *db;
            if h.is_null() {
                return VALORI_OK;
            }
            check!(db_ref(h));
            *db = core::ptr::null_mut();
            let mut boxed = Box::from_raw(h);
            messages::forget(boxed.id);
            boxed.magic = 0;
            #[cfg(feature = "fleet")]
            if let Some(f) = boxed.follower.take() {
                drop(f.stop());
            }
            match boxed.engine.flush() {
                Ok(()) => VALORI_OK,
                Err(e) => engine_code(&e),
            }
        }
    })
}

/// The message of this thread's last failed call on `db` (or, with NULL, of this thread's
/// last failed `valori_open`); empty if none. Per thread: other threads' calls on the same
/// handle never change or free it. Valid until this thread's next failing call on the handle
/// or `valori_close` (which drops every thread's messages for the handle: a handle opened
/// later starts with none); never NULL.
///
/// - `db`: [in, nullable] the handle.
#[no_mangle]
pub extern "C" fn valori_errmsg(db: *const valori_db) -> *const c_char {
    const EMPTY: &[u8] = b"\0";
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if db.is_null() {
            return OPEN_ERROR.with(|e| e.borrow().as_ptr());
        }
        // SAFETY: checked non-NULL; a handle from valori_open by contract.
        match unsafe { db_ref(db) } {
            Ok(h) => messages::get(h.id).unwrap_or(EMPTY.as_ptr().cast()),
            Err(_) => EMPTY.as_ptr().cast(),
        }
    }));
    r.unwrap_or(EMPTY.as_ptr().cast())
}

/// Inserts a vector with an optional tag and metadata; durable when it returns (by the
/// durability mode).
///
/// - `db`: [in] the database.
/// - `vector`: [in] `dim` floats.
/// - `tag`: [in, nullable] the tag, or NULL for none.
/// - `meta`: [in] `meta_len` bytes (NULL with 0 for none).
/// - `out_id`: [out] the new record's id.
#[no_mangle]
pub extern "C" fn valori_insert(
    db: *mut valori_db,
    vector: *const f32,
    dim: usize,
    tag: *const u64,
    meta: *const u8,
    meta_len: usize,
    out_id: *mut u64,
) -> c_int {
    entry::insert(db, vector, dim, tag, meta, meta_len, out_id)
}

/// Inserts `n` vectors (`n * dim` floats, row-major) atomically as one WAL record. Ids are
/// consecutive from `*out_first_id`.
///
/// - `db`: [in] the database.
/// - `vectors`: [in] `n * dim` floats.
/// - `tags`: [in, nullable] `n` tags, or NULL for none.
/// - `out_first_id`: [out] the first new id.
#[no_mangle]
pub extern "C" fn valori_insert_batch(
    db: *mut valori_db,
    vectors: *const f32,
    n: usize,
    dim: usize,
    tags: *const u64,
    out_first_id: *mut u64,
) -> c_int {
    boundary(|| {
        let Some(total) = n.checked_mul(dim) else {
            return crate::VALORI_INVALID_INPUT;
        };
        // SAFETY: pointers checked; buffers valid for their lengths by contract.
        let (h, v, tags, out) = unsafe {
            (
                check!(db_ref(db)),
                check!(ffi::slice(vectors, total)),
                if tags.is_null() {
                    &[][..]
                } else {
                    check!(ffi::slice(tags, n))
                },
                check!(ffi::out(out_first_id)),
            )
        };
        // The engine sees a flat array: the row length the caller meant is checked here.
        let expected = match h.engine.config() {
            Ok(c) => c.dim,
            Err(e) => return h.fail(&e),
        };
        if expected as usize != dim {
            return h.fail_kernel(vk::Error::Dimension {
                expected,
                got: dim as u64,
            });
        }
        match h.engine.insert_batch(v, tags) {
            Ok(ids) => {
                *out = ids.start;
                VALORI_OK
            }
            Err(e) => h.fail(&e),
        }
    })
}

/// Deletes a record, the nodes linked to it and their edges.
///
/// - `db`: [in] the database.
#[no_mangle]
pub extern "C" fn valori_delete(db: *mut valori_db, id: u64) -> c_int {
    entry::delete(db, Op::Delete(id))
}

/// Replaces a record's metadata.
///
/// - `db`: [in] the database.
/// - `meta`: [in] `meta_len` bytes (NULL with 0 removes it).
#[no_mangle]
pub extern "C" fn valori_set_meta(
    db: *mut valori_db,
    id: u64,
    meta: *const u8,
    meta_len: usize,
) -> c_int {
    entry::set_meta(db, id, meta, meta_len)
}

/// Replaces a record's tag.
///
/// - `db`: [in] the database.
/// - `tag`: [in, nullable] the new tag, or NULL to remove it.
#[no_mangle]
pub extern "C" fn valori_set_tag(db: *mut valori_db, id: u64, tag: *const u64) -> c_int {
    entry::set_tag(db, id, tag)
}

/// Creates a graph node.
///
/// - `db`: [in] the database.
/// - `record`: [in, nullable] the record to link, or NULL.
/// - `label`: [in] `label_len` bytes (NULL with 0 for none).
/// - `out_id`: [out] the node id.
#[no_mangle]
pub extern "C" fn valori_create_node(
    db: *mut valori_db,
    kind: u32,
    record: *const u64,
    label: *const u8,
    label_len: usize,
    out_id: *mut u64,
) -> c_int {
    entry::create_node(db, kind, record, label, label_len, out_id)
}

/// Deletes a node and its edges.
///
/// - `db`: [in] the database.
#[no_mangle]
pub extern "C" fn valori_delete_node(db: *mut valori_db, id: u64) -> c_int {
    entry::delete(db, Op::DeleteNode(id))
}

/// Creates a directed edge between existing nodes.
///
/// - `db`: [in] the database.
/// - `weight`: [in, nullable] the weight, or NULL for none.
/// - `out_id`: [out] the edge id.
#[no_mangle]
pub extern "C" fn valori_create_edge(
    db: *mut valori_db,
    kind: u32,
    from: u64,
    to: u64,
    weight: *const f32,
    out_id: *mut u64,
) -> c_int {
    entry::create_edge(db, kind, from, to, weight, out_id)
}

/// Deletes an edge.
///
/// - `db`: [in] the database.
#[no_mangle]
pub extern "C" fn valori_delete_edge(db: *mut valori_db, id: u64) -> c_int {
    entry::delete(db, Op::DeleteEdge(id))
}

/// Exact k nearest records, ordered by (distance, id).
///
/// - `db`: [in] the database.
/// - `query`: [in] `dim` floats.
/// - `tag`: [in, nullable] only records with this tag, or NULL for all.
/// - `out_hits`: [out] room for `cap` hits.
/// - `out_len`: [out] hits written; with `VALORI_INSUFFICIENT_SIZE`, hits needed.
#[no_mangle]
pub extern "C" fn valori_search(
    db: *const valori_db,
    query: *const f32,
    dim: usize,
    k: u32,
    tag: *const u64,
    out_hits: *mut valori_hit,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    entry::search(db, query, dim, k, tag, out_hits, cap, out_len)
}

/// Approximate k nearest records through the database's index (`valori_options.index_m`),
/// keeping `ef` candidates (1 to 65536; raised to `k`; at least the number of records is the
/// exact search), ordered by (distance, id). The distances are exact; the same commands give
/// the same answers on every machine.
///
/// - `db`: [in] the database.
/// - `query`: [in] `dim` floats.
/// - `tag`: [in, nullable] only records with this tag, or NULL for all.
/// - `out_hits`: [out] room for `cap` hits.
/// - `out_len`: [out] hits written; with `VALORI_INSUFFICIENT_SIZE`, hits needed.
///
/// Returns `VALORI_INVALID_INPUT` if the database has no index or `ef` is out of range.
#[no_mangle]
pub extern "C" fn valori_search_approx(
    db: *const valori_db,
    query: *const f32,
    dim: usize,
    k: u32,
    tag: *const u64,
    ef: u32,
    out_hits: *mut valori_hit,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    entry::search_approx(db, query, dim, k, tag, ef, out_hits, cap, out_len)
}

/// The database's approximate index: its `m` and `ef_construction`, or 0 and 0 without one.
///
/// - `db`: [in] the database.
/// - `out_m`: [out] links per node (0: no index).
/// - `out_ef_construction`: [out] candidates per insert (0: no index).
#[no_mangle]
pub extern "C" fn valori_index_params(
    db: *const valori_db,
    out_m: *mut u32,
    out_ef_construction: *mut u32,
) -> c_int {
    entry::index_params(db, out_m, out_ef_construction)
}

/// Edges at a node.
///
/// - `db`: [in] the database.
/// - `direction`: `VALORI_DIRECTION_OUT`, `_IN` or `_BOTH`.
/// - `out_edges`: [out] room for `cap` edges.
/// - `out_len`: [out] edges written; with `VALORI_INSUFFICIENT_SIZE`, edges needed.
#[no_mangle]
pub extern "C" fn valori_neighbors(
    db: *const valori_db,
    node: u64,
    direction: u32,
    out_edges: *mut valori_edge,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    entry::neighbors(db, node, direction, out_edges, cap, out_len)
}

/// Nodes within `hops` edges of `start`, ordered by (depth, node id).
///
/// - `db`: [in] the database.
/// - `kind`: [in, nullable] follow only edges of this kind, or NULL for all.
/// - `out_hops`: [out] room for `cap` nodes.
/// - `out_len`: [out] nodes written; with `VALORI_INSUFFICIENT_SIZE`, exactly the nodes needed
///   (and `out_hops` is not written).
#[no_mangle]
pub extern "C" fn valori_traverse(
    db: *const valori_db,
    start: u64,
    hops: u32,
    direction: u32,
    kind: *const u32,
    out_hops: *mut valori_hop,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    entry::traverse(db, start, hops, direction, kind, out_hops, cap, out_len)
}

/// Where a follower stands (`valori_replication_status`). New fields come with a new function,
/// never in this struct.
#[cfg(feature = "fleet")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct valori_replication {
    /// 1 if the handle follows a stream (`valori_follow`), else 0 (and the rest is 0).
    pub following: c_int,
    /// The last record applied (its sequence number).
    pub applied: u64,
    /// Records on the stream not yet applied (the lag).
    pub pending: u64,
    /// 1 if the follower has stopped: a record did not verify (`valori_wait_applied` returns
    /// `VALORI_CORRUPT` and `valori_errmsg` says which and why). It never applies such a
    /// record.
    pub stopped: c_int,
    /// 1 while the servers fail and it retries (it resumes by itself).
    pub retrying: c_int,
}

/// Follows database `database` as its leader publishes it to the NATS JetStream servers at
/// `url` (docs/REPLICATION.md), into directory `path`: a read-only handle whose records
/// arrive in the background, each checked against its chain value before it is applied.
/// A `path` without a database starts from the newest snapshot in the stream's bucket.
/// Reads work as on any handle; writes return `VALORI_MISUSE`. `valori_close` stops
/// following.
///
/// - `url`: [in] NUL-terminated, `nats://host:port` (several separated by commas).
/// - `database`: [in] NUL-terminated, the database's name on the stream.
/// - `path`: [in] NUL-terminated UTF-8 directory path.
/// - `out_db`: [out] the handle; close it with `valori_close`.
///
/// Returns `VALORI_NOT_FOUND` if the servers hold no such database, `VALORI_IO` if they
/// cannot be reached. On failure, `valori_errmsg(NULL)` on the same thread says why.
#[cfg(feature = "fleet")]
#[no_mangle]
pub extern "C" fn valori_follow(
    url: *const c_char,
    database: *const c_char,
    path: *const c_char,
    out_db: *mut *mut valori_db,
) -> c_int {
    boundary(|| {
        let set_err = open_failed;
        // SAFETY: checked.
        let out = unsafe { check!(ffi::out(out_db)) };
        let text = |p: *const c_char, what: &str| -> Result<&str, c_int> {
            if p.is_null() {
                return Err(set_err(
                    VALORI_MISUSE,
                    format!("valori_follow: {what} is NULL"),
                ));
            }
            // SAFETY: non-NULL; NUL-terminated by contract.
            unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| {
                set_err(
                    crate::VALORI_INVALID_INPUT,
                    format!("valori_follow: {what} is not UTF-8"),
                )
            })
        };
        // In order: the message names the first argument that is wrong.
        let args = (|| {
            Ok((
                text(url, "url")?,
                text(database, "database")?,
                text(path, "path")?,
            ))
        })();
        let (url, database, path) = match args {
            Ok(a) => a,
            Err(rc) => return rc,
        };
        match valori_fleet::BackgroundFollower::start(url, database, std::path::Path::new(path)) {
            Ok(f) => {
                *out = Box::into_raw(Box::new(valori_db {
                    magic: DB_MAGIC,
                    id: HandleId::new(),
                    engine: std::sync::Arc::clone(f.engine()),
                    follower: Some(f),
                }));
                VALORI_OK
            }
            Err(e) => set_err(fleet_code(&e), e.to_string()),
        }
    })
}

/// Result code of a follower's failure.
#[cfg(feature = "fleet")]
fn fleet_code(e: &valori_fleet::FleetError) -> c_int {
    use valori_fleet::FleetError;
    match e {
        FleetError::Engine(e) => engine_code(e),
        FleetError::NotFound(_) => crate::VALORI_NOT_FOUND,
        FleetError::InvalidName(_) => crate::VALORI_INVALID_INPUT,
        FleetError::Diverged(_) => crate::VALORI_CORRUPT,
        _ => crate::VALORI_IO,
    }
}

/// Where this handle stands in a replication stream.
///
/// - `db`: [in] the database.
/// - `out`: [out] its position (all 0 for a handle that follows nothing).
#[cfg(feature = "fleet")]
#[no_mangle]
pub extern "C" fn valori_replication_status(
    db: *const valori_db,
    out: *mut valori_replication,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, out) = unsafe { (check!(db_ref(db)), check!(ffi::out(out))) };
        *out = match &h.follower {
            None => valori_replication::default(),
            Some(f) => {
                let s = f.status();
                valori_replication {
                    following: 1,
                    applied: s.applied,
                    pending: s.pending,
                    stopped: c_int::from(s.error.is_some()),
                    retrying: c_int::from(s.retrying.is_some()),
                }
            }
        };
        VALORI_OK
    })
}

/// Waits up to `timeout_ms` milliseconds until a follower has applied record `seq`.
///
/// - `db`: [in] a handle from `valori_follow`.
/// - `out_applied`: [out] 1 if record `seq` is applied, 0 if the time ran out.
///
/// Returns `VALORI_MISUSE` for a handle that follows nothing, `VALORI_CORRUPT` if the
/// follower stopped on a record that did not verify (`valori_errmsg` says which and why).
#[cfg(feature = "fleet")]
#[no_mangle]
pub extern "C" fn valori_wait_applied(
    db: *const valori_db,
    seq: u64,
    timeout_ms: u64,
    out_applied: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, out) = unsafe { (check!(db_ref(db)), check!(ffi::out(out_applied))) };
        let Some(f) = &h.follower else {
            messages::set(
                h.id,
                cstring(
                    "valori_wait_applied: this handle follows no stream (valori_follow)".into(),
                ),
            );
            return VALORI_MISUSE;
        };
        match f.wait_applied(seq, std::time::Duration::from_millis(timeout_ms)) {
            Ok(done) => {
                *out = c_int::from(done);
                VALORI_OK
            }
            Err(e) => {
                let why = f.status().error.unwrap_or_else(|| e.to_string());
                messages::set(h.id, cstring(why));
                fleet_code(&e)
            }
        }
    })
}

/// What `valori_open` found and did (see `valori_recovery_report`). New fields come with a
/// new function, never in this struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct valori_recovery {
    /// Sequence number of the snapshot recovery started from.
    pub snapshot_seq: u64,
    /// WAL records replayed after it.
    pub replayed: u64,
    /// The last sequence number recovered.
    pub seq: u64,
    /// Bytes of a damaged or incomplete tail cut off the end of the WAL at open (never
    /// acknowledged: an interrupted append or a power cut's leftovers); 0 if none.
    pub torn_bytes: u64,
    /// Offset in the last WAL segment where that tail was cut (0 if none).
    pub torn_offset: u64,
}

/// What opening this database found and did: the snapshot recovery started from, the WAL
/// records it replayed, and the damaged tail of the log it cut off, if any (docs/FORMAT.md
/// §10). The file and the reason are in the Rust and Python reports; C gets the numbers.
///
/// - `db`: [in] the database.
/// - `out`: [out] the report.
#[no_mangle]
pub extern "C" fn valori_recovery_report(db: *const valori_db, out: *mut valori_recovery) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, out) = unsafe { (check!(db_ref(db)), check!(ffi::out(out))) };
        let r = h.engine.recovery_report();
        let torn = r.torn_tail.as_ref();
        *out = valori_recovery {
            snapshot_seq: r.snapshot_seq,
            replayed: r.replayed,
            seq: r.seq,
            torn_bytes: torn.map_or(0, |t| t.bytes),
            torn_offset: torn.map_or(0, |t| t.offset),
        };
        VALORI_OK
    })
}

/// Number of records.
///
/// - `db`: [in] the database.
/// - `out_count`: [out] the count.
#[no_mangle]
pub extern "C" fn valori_count(db: *const valori_db, out_count: *mut u64) -> c_int {
    entry::count(db, out_count)
}

/// A record's vector as floats (exact below 256 in magnitude).
///
/// - `db`: [in] the database.
/// - `out_vector`: [out] room for `cap` floats.
/// - `out_len`: [out] floats written; with `VALORI_INSUFFICIENT_SIZE`, floats needed.
#[no_mangle]
pub extern "C" fn valori_get_vector(
    db: *const valori_db,
    id: u64,
    out_vector: *mut f32,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    entry::get_vector(db, id, out_vector, cap, out_len)
}

/// A record's metadata.
///
/// - `db`: [in] the database.
/// - `out_meta`: [out] room for `cap` bytes.
/// - `out_len`: [out] bytes written; with `VALORI_INSUFFICIENT_SIZE`, bytes needed.
#[no_mangle]
pub extern "C" fn valori_get_meta(
    db: *const valori_db,
    id: u64,
    out_meta: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    entry::get_meta(db, id, out_meta, cap, out_len)
}

/// A record's tag.
///
/// - `db`: [in] the database.
/// - `out_tag`: [out] the tag (0 if none).
/// - `out_has_tag`: [out] 1 if the record has a tag, else 0.
#[no_mangle]
pub extern "C" fn valori_get_tag(
    db: *const valori_db,
    id: u64,
    out_tag: *mut u64,
    out_has_tag: *mut c_int,
) -> c_int {
    entry::get_tag(db, id, out_tag, out_has_tag)
}

/// The state hash: identical on every platform for the same commands.
///
/// - `db`: [in] the database.
/// - `out_hash`: [out] 32 bytes.
#[no_mangle]
pub extern "C" fn valori_state_hash(db: *const valori_db, out_hash: *mut u8) -> c_int {
    entry::state_hash(db, out_hash)
}

/// Writes a snapshot and retires the WAL it covers.
///
/// - `db`: [in] the database.
#[no_mangle]
pub extern "C" fn valori_checkpoint(db: *mut valori_db) -> c_int {
    boundary(|| {
        // SAFETY: handle checked.
        let h = unsafe { check!(db_ref(db)) };
        match h.engine.checkpoint() {
            Ok(()) => VALORI_OK,
            Err(e) => h.fail(&e),
        }
    })
}

/// Exports the newest snapshot's state and the commands logged after it (the format of
/// docs/C-API.md), so another machine can replay them with `valori_replay` and compare hashes.
///
/// - `db`: [in] the database.
/// - `out`: [out] room for `cap` bytes.
/// - `out_len`: [out] bytes written; with `VALORI_INSUFFICIENT_SIZE`, bytes needed.
#[no_mangle]
pub extern "C" fn valori_export(
    db: *const valori_db,
    out: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, buf, out_len) = unsafe {
            (
                check!(db_ref(db)),
                check!(ffi::slice_mut(out, cap)),
                check!(ffi::out(out_len)),
            )
        };
        let bytes = match h.engine.export() {
            Ok(ex) => ex.encode(),
            Err(e) => return h.fail(&e),
        };
        ffi::write_all(bytes.iter(), |b| **b, buf, out_len)
    })
}

/// Rebuilds the state an export describes (base state + commands) and writes its hash;
/// `VALORI_CORRUPT` if the export is damaged or the replayed hash differs from the one the
/// export recorded.
///
/// - `export`: [in] `len` bytes from `valori_export`.
/// - `out_hash`: [out] 32 bytes.
#[no_mangle]
pub extern "C" fn valori_replay(export: *const u8, len: usize, out_hash: *mut u8) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (bytes, out) = unsafe {
            (
                check!(ffi::slice(export, len)),
                check!(ffi::array_mut::<32>(out_hash)),
            )
        };
        match Export::decode(bytes).and_then(|ex| ex.replay()) {
            Ok(k) => {
                *out = k.state_hash();
                VALORI_OK
            }
            Err(e) => engine_code(&e),
        }
    })
}

/// One command of a database's history (`valori_history`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct valori_log_entry {
    /// Its sequence number.
    pub seq: u64,
    /// `VALORI_COMMAND_*`: which command it is (`valori_command_name` names it).
    pub kind: u32,
    /// Bytes of its encoding (docs/FORMAT.md §5).
    pub bytes: u32,
    /// The WAL chain value after it (docs/FORMAT.md §8).
    pub chain: [u8; 32],
}

/// `valori_log_entry.kind`: insert one record.
pub const VALORI_COMMAND_INSERT: u32 = 0;
/// `valori_log_entry.kind`: insert a batch of records.
pub const VALORI_COMMAND_INSERT_BATCH: u32 = 1;
/// `valori_log_entry.kind`: delete a record.
pub const VALORI_COMMAND_DELETE: u32 = 2;
/// `valori_log_entry.kind`: replace a record's metadata.
pub const VALORI_COMMAND_SET_META: u32 = 3;
/// `valori_log_entry.kind`: replace a record's tag.
pub const VALORI_COMMAND_SET_TAG: u32 = 4;
/// `valori_log_entry.kind`: create a graph node.
pub const VALORI_COMMAND_CREATE_NODE: u32 = 5;
/// `valori_log_entry.kind`: delete a graph node.
pub const VALORI_COMMAND_DELETE_NODE: u32 = 6;
/// `valori_log_entry.kind`: create a graph edge.
pub const VALORI_COMMAND_CREATE_EDGE: u32 = 7;
/// `valori_log_entry.kind`: delete a graph edge.
pub const VALORI_COMMAND_DELETE_EDGE: u32 = 8;

/// The name of a `VALORI_COMMAND_*` kind (`"insert"`, `"insert_batch"`, ...), or `"unknown"`.
/// The string is static.
#[no_mangle]
pub extern "C" fn valori_command_name(kind: u32) -> *const c_char {
    vk::COMMAND_NAMES_C
        .get(kind as usize)
        .copied()
        .unwrap_or(c"unknown")
        .as_ptr()
}

/// Sets how many snapshots later checkpoints keep, with the log after the oldest of them, so
/// that past states stay reachable (`valori_state_hash_at_seq`, `valori_checkout`). The
/// default is 1 (only the newest); 0 is taken as 1. Not stored: set it after each open.
///
/// - `db`: [in] the database.
#[no_mangle]
pub extern "C" fn valori_set_retention(db: *mut valori_db, snapshots: u32) -> c_int {
    boundary(|| {
        // SAFETY: handle checked.
        let h = unsafe { check!(db_ref(db)) };
        h.engine.set_retain_snapshots(snapshots);
        VALORI_OK
    })
}

/// Sets how long later checkpoints also keep snapshots (by their files' modification time),
/// with the log after them: every snapshot written within `seconds`. 0 (the default) keeps by
/// count only (`valori_set_retention`). Not stored: set it after each open.
///
/// - `db`: [in] the database.
#[no_mangle]
pub extern "C" fn valori_set_retention_time(db: *mut valori_db, seconds: u64) -> c_int {
    boundary(|| {
        // SAFETY: handle checked.
        let h = unsafe { check!(db_ref(db)) };
        h.engine
            .set_retain_for((seconds != 0).then(|| std::time::Duration::from_secs(seconds)));
        VALORI_OK
    })
}

/// The state hash after command `seq`, rebuilt from the retained snapshots and log.
/// `VALORI_NOT_FOUND` if retention no longer reaches `seq` or it is past the last command.
///
/// - `db`: [in] the database.
/// - `out_hash`: [out] 32 bytes.
#[no_mangle]
pub extern "C" fn valori_state_hash_at_seq(
    db: *const valori_db,
    seq: u64,
    out_hash: *mut u8,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked; 32 bytes by contract.
        let (h, out) = unsafe { (check!(db_ref(db)), check!(ffi::array_mut::<32>(out_hash))) };
        match h.engine.state_at_seq(seq) {
            Ok((k, _)) => {
                *out = k.state_hash();
                VALORI_OK
            }
            Err(e) => h.fail(&e),
        }
    })
}

/// The logged commands from sequence number `from` on, as far as `cap` entries reach (the
/// retained log; see `valori_set_retention`).
///
/// - `db`: [in] the database.
/// - `out_entries`: [out] room for `cap` entries.
/// - `out_len`: [out] entries written (fewer than `cap` when the log ends).
#[no_mangle]
pub extern "C" fn valori_history(
    db: *const valori_db,
    from: u64,
    out_entries: *mut valori_log_entry,
    cap: usize,
    out_len: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, buf, out_len) = unsafe {
            (
                check!(db_ref(db)),
                check!(ffi::slice_mut(out_entries, cap)),
                check!(ffi::out(out_len)),
            )
        };
        let entries = match h.engine.history(from, cap) {
            Ok(e) => e,
            Err(e) => return h.fail(&e),
        };
        let mut rows = Vec::with_capacity(entries.len());
        for e in &entries {
            let kind = match valori_engine::decode_entry(e) {
                Ok(cmd) => cmd.kind(),
                Err(err) => return h.fail(&err),
            };
            rows.push(valori_log_entry {
                seq: e.seq,
                kind,
                bytes: e.command.len() as u32,
                chain: e.chain,
            });
        }
        for (slot, row) in buf.iter_mut().zip(&rows) {
            *slot = *row;
        }
        *out_len = rows.len();
        VALORI_OK
    })
}

/// Reads a NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn utf8_arg<'a>(p: *const c_char) -> Result<Result<&'a str, ()>, c_int> {
    if p.is_null() {
        return Err(VALORI_MISUSE);
    }
    // SAFETY: non-NULL, NUL-terminated by contract.
    Ok(unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| ()))
}

/// Names the state after command `seq` (replacing a tag of that name), pinning it against
/// retention. Names are 1 to 64 ASCII letters, digits, '.', '_' or '-'.
///
/// - `db`: [in] the database.
/// - `name`: [in] NUL-terminated tag name.
#[no_mangle]
pub extern "C" fn valori_tag_history(db: *mut valori_db, name: *const c_char, seq: u64) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, name) = unsafe { (check!(db_ref(db)), check!(utf8_arg(name))) };
        let r = match name {
            Ok(n) => h.engine.tag_history(n, seq),
            Err(()) => Err(valori_engine::Error::Invalid(
                "the tag name is not UTF-8".into(),
            )),
        };
        match r {
            Ok(()) => VALORI_OK,
            Err(e) => h.fail(&e),
        }
    })
}

/// Removes a history tag; `VALORI_NOT_FOUND` if there is none of that name.
///
/// - `db`: [in] the database.
/// - `name`: [in] NUL-terminated tag name.
#[no_mangle]
pub extern "C" fn valori_untag_history(db: *mut valori_db, name: *const c_char) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked.
        let (h, name) = unsafe { (check!(db_ref(db)), check!(utf8_arg(name))) };
        let r = match name {
            Ok(n) => h.engine.untag_history(n),
            Err(()) => Err(valori_engine::Error::NoTag {
                name: "(not UTF-8)".into(),
            }),
        };
        match r {
            Ok(()) => VALORI_OK,
            Err(e) => h.fail(&e),
        }
    })
}

/// Writes the state after command `seq` as a new database in directory `path` (which must
/// hold none), keeping its sequence number; `VALORI_NOT_FOUND` if retention no longer
/// reaches `seq`.
///
/// - `db`: [in] the database.
/// - `path`: [in] NUL-terminated UTF-8 directory path.
/// - `out_hash`: [out] 32 bytes: the new database's state hash.
#[no_mangle]
pub extern "C" fn valori_checkout(
    db: *const valori_db,
    seq: u64,
    path: *const c_char,
    out_hash: *mut u8,
) -> c_int {
    boundary(|| {
        // SAFETY: pointers checked before anything is done.
        let (h, path, out) = unsafe {
            (
                check!(db_ref(db)),
                check!(utf8_arg(path)),
                check!(ffi::array_mut::<32>(out_hash)),
            )
        };
        let Ok(path) = path else {
            return h.fail(&valori_engine::Error::Invalid(
                "valori_checkout: path is not UTF-8".into(),
            ));
        };
        match h.engine.checkout(seq, path) {
            Ok(hash) => {
                *out = hash;
                VALORI_OK
            }
            Err(e) => h.fail(&e),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn open(dir: &std::path::Path) -> *mut valori_db {
        let path = CString::new(dir.to_str().unwrap()).unwrap();
        let mut opts = core::mem::MaybeUninit::<valori_options>::uninit();
        assert_eq!(valori_options_init(opts.as_mut_ptr()), VALORI_OK);
        // SAFETY: initialised by valori_options_init.
        let mut opts = unsafe { opts.assume_init() };
        opts.dim = 1;
        opts.durability = VALORI_DURABILITY_NONE;
        let mut db = core::ptr::null_mut();
        assert_eq!(valori_open(path.as_ptr(), &opts, &mut db), VALORI_OK);
        db
    }

    /// Fails a call on `db` and returns this thread's message for it.
    fn fail(db: *mut valori_db) -> String {
        assert_eq!(valori_delete(db, 12345), crate::VALORI_NOT_FOUND_RECORD);
        msg(db)
    }

    fn msg(db: *const valori_db) -> String {
        // SAFETY: valori_errmsg never returns NULL and its message is NUL-terminated.
        unsafe { CStr::from_ptr(valori_errmsg(db)) }
            .to_string_lossy()
            .into_owned()
    }

    /// Many handles, each failed on by several threads, closed while those threads live, then
    /// a new handle: the store returns to its size before, and no thread sees an old message
    /// on the new handle.
    #[test]
    fn errmsg_store_does_not_grow_across_open_fail_close_cycles() {
        const THREADS: usize = 4;
        let root = std::env::temp_dir().join(format!("valori-c-errmsg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let before = messages::len();
        for cycle in 0..25 {
            let first = open(&root.join(format!("a{cycle}")));
            // A pointer, not an address: Miri runs this test with strict provenance in mind.
            let shared = Arc::new(std::sync::atomic::AtomicPtr::new(first));
            let barrier = Arc::new(Barrier::new(THREADS + 1));
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (shared, barrier) = (Arc::clone(&shared), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        let db = shared.load(std::sync::atomic::Ordering::SeqCst);
                        assert!(fail(db).contains("record 12345 does not exist"));
                        barrier.wait(); // failed on the first handle
                        barrier.wait(); // it is closed and a second one is open
                        let db = shared.load(std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(msg(db), "");
                    })
                })
                .collect();
            assert!(!fail(first).is_empty());
            barrier.wait();
            assert_eq!(messages::len(), before + THREADS + 1);
            let mut h = first;
            assert_eq!(valori_close(&mut h), VALORI_OK);
            assert_eq!(
                messages::len(),
                before,
                "cycle {cycle}: close left messages"
            );
            let second = open(&root.join(format!("b{cycle}")));
            shared.store(second, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(msg(second), "");
            barrier.wait();
            for w in workers {
                w.join().unwrap();
            }
            // A thread that failed on an open handle and exited leaves nothing behind.
            let s = std::sync::atomic::AtomicPtr::new(second);
            std::thread::spawn(move || assert!(!fail(s.into_inner()).is_empty()))
                .join()
                .unwrap();
            assert_eq!(
                messages::len(),
                before,
                "cycle {cycle}: thread exit left messages"
            );
            let mut h = second;
            assert_eq!(valori_close(&mut h), VALORI_OK);
        }
        assert_eq!(messages::len(), before);
        let _ = std::fs::remove_dir_all(&root);
    }
}
