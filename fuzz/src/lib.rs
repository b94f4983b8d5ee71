//! The harness shared by the C-API targets (`c_api`: the embedded kernel in a heap buffer;
//! `c_api_db`: the hosted database). An input is a configuration and a sequence of [`Op`]s;
//! each op calls one exported function through [`Api`] and checks, against a growable Rust
//! kernel (the mirror) that applies the same commands:
//!
//! - every result code is known (`VALORI_PRIMARY(rc)` in 0..=12, a known extended code) and
//!   never `VALORI_INTERNAL` (a panic inside the library aborts the fuzzer anyway);
//! - a write succeeds exactly when the mirror's does (except `VALORI_FULL`, which only the
//!   fixed-capacity kernel has), with the same created id and the same error class;
//! - every read returns what the mirror returns (hits with exact distances, edges, hops,
//!   vectors, metadata, tags, counts, the state hash);
//! - outputs are written only on success: buffers and out-parameters are filled with a
//!   sentinel first and must be untouched after an error; after `VALORI_INSUFFICIENT_SIZE`
//!   only the needed length is written, and it is exact (a retry with that room succeeds
//!   with that many items); on success nothing past the returned length is written (except
//!   by the traversal, which may run in its buffer);
//! - NULL where a pointer is required, NULL with a length, or a misaligned out-pointer is
//!   `VALORI_MISUSE` and changes nothing.
//!
//! Target-specific operations (snapshot/restore and raw commands for the kernel; batches,
//! checkpoints, export/replay and reopening for the database) are in [`Special`].

// A harness: an assertion failure is the finding.
#![allow(
    clippy::missing_panics_doc,
    clippy::too_many_arguments,
    non_camel_case_types
)]

pub mod fixup;

use arbitrary::Arbitrary;
use core::ffi::c_int;
use core::fmt::Debug;
use core::ptr::{null, null_mut};
use valori::{
    valori_errstr, VALORI_DIMENSION, VALORI_FULL, VALORI_INSUFFICIENT_SIZE, VALORI_INTERNAL,
    VALORI_INVALID_INPUT, VALORI_MISUSE, VALORI_NOT_FOUND, VALORI_OK,
};
use valori_kernel::{
    fxp, Applied, Command, Config, Direction, ErrorCode, Fxp, Hop, Kernel, Metric, Words,
    MAX_LABEL_LEN, MAX_META_LEN,
};

/// What an untouched `u64` out-parameter holds.
pub const SENT_U64: u64 = 0x5e57_1e17_5e57_1e17;
/// What an untouched byte holds.
pub const SENT_BYTE: u8 = 0xa5;
/// What an untouched `size_t` out-parameter holds.
pub const SENT_USIZE: usize = 0x5e57_1e17;
/// `valori_hit` as `include/valori.h` lays it out. The crate does not export its Rust type
/// (it lives in a private module), so the targets pass these through `.cast()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct valori_hit {
    /// Record id.
    pub id: u64,
    /// Distance as a real number.
    pub distance: f64,
    /// Exact distance, high 64 bits.
    pub distance_raw_hi: i64,
    /// Exact distance, low 64 bits.
    pub distance_raw_lo: u64,
}

/// `valori_edge` as `include/valori.h` lays it out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct valori_edge {
    /// Edge id.
    pub id: u64,
    /// Source node.
    pub from: u64,
    /// Target node.
    pub to: u64,
    /// Kind.
    pub kind: u32,
    /// 1 if weighted.
    pub has_weight: u32,
    /// The weight.
    pub weight: f64,
}

/// `valori_hop` as `include/valori.h` lays it out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct valori_hop {
    /// The node.
    pub node: u64,
    /// Edges from the start.
    pub depth: u32,
    /// Always 0.
    pub reserved: u32,
}

/// Largest output buffer a retry after `VALORI_INSUFFICIENT_SIZE` allocates.
const RETRY_LIMIT: usize = 1 << 22;

/// Checks that `rc` is a code the header defines and not `VALORI_INTERNAL`.
pub fn check_rc(rc: c_int) {
    assert!(rc >= 0, "negative result code {rc}");
    let primary = rc & 0xff;
    let extended = rc >> 8;
    assert!(
        (0..=12).contains(&primary),
        "unknown primary code in {rc:#x}"
    );
    assert_ne!(
        primary, VALORI_INTERNAL,
        "VALORI_INTERNAL: a caught panic or a bug"
    );
    if extended != 0 {
        assert!(extended <= 4, "unknown extended code {rc:#x}");
        assert!(
            matches!(
                primary,
                VALORI_INVALID_INPUT | VALORI_FULL | VALORI_NOT_FOUND
            ),
            "extended code {rc:#x} on a primary code without extensions"
        );
    }
    let s = valori_errstr(rc);
    assert!(!s.is_null());
    // SAFETY: valori_errstr returns a static NUL-terminated string.
    let s = unsafe { core::ffi::CStr::from_ptr(s) };
    assert!(!s.to_bytes().is_empty());
}

/// `VALORI_PRIMARY(rc)`.
pub fn primary(rc: c_int) -> c_int {
    rc & 0xff
}

fn code_of(e: &valori_kernel::Error) -> c_int {
    e.code().value() as c_int
}

/// Values that can be filled with a recognisable pattern and checked for it.
pub trait Sentinel: Copy + Debug {
    /// The pattern.
    fn sentinel() -> Self;
    /// Whether `self` still holds it (compared as bytes: these types have no padding).
    fn is_sentinel(&self) -> bool {
        let a = Self::sentinel();
        // SAFETY: both are initialised values of a type without padding bytes.
        unsafe { bytes_of(self) == bytes_of(&a) }
    }
}

/// The bytes of a value of a type without padding.
///
/// # Safety
/// `T` must have no padding bytes.
unsafe fn bytes_of<T>(v: &T) -> &[u8] {
    core::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>())
}

impl Sentinel for u8 {
    fn sentinel() -> u8 {
        SENT_BYTE
    }
}
impl Sentinel for f32 {
    fn sentinel() -> f32 {
        f32::from_bits(0x7fc5_e571)
    }
}
impl Sentinel for valori_hit {
    fn sentinel() -> Self {
        valori_hit {
            id: SENT_U64,
            distance: f64::from_bits(SENT_U64),
            distance_raw_hi: SENT_U64 as i64,
            distance_raw_lo: SENT_U64,
        }
    }
}
impl Sentinel for valori_edge {
    fn sentinel() -> Self {
        valori_edge {
            id: SENT_U64,
            from: SENT_U64,
            to: SENT_U64,
            kind: 0x5e57_1e17,
            has_weight: 0x5e57_1e17,
            weight: f64::from_bits(SENT_U64),
        }
    }
}
impl Sentinel for valori_hop {
    fn sentinel() -> Self {
        valori_hop {
            node: SENT_U64,
            depth: 0x5e57_1e17,
            reserved: 0x5e57_1e17,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Input generators

/// An id: mostly small (so it often exists), the last one created, or anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum IdSel {
    /// `n % 24`.
    Small(u8),
    /// The last id created of this kind.
    Last,
    /// Any value.
    Any(u64),
    /// `u64::MAX` (reserved).
    Max,
}

impl IdSel {
    fn pick(self, last: u64) -> u64 {
        match self {
            IdSel::Small(n) => u64::from(n % 24),
            IdSel::Last => last,
            IdSel::Any(v) => v,
            IdSel::Max => u64::MAX,
        }
    }
}

/// A float component.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum F32 {
    /// `n / 4`.
    Quarter(i8),
    /// `n / 256`.
    Fine(i16),
    /// Any bit pattern (NaN, infinities, huge, subnormal).
    Bits(u32),
    /// The largest accepted `f32` (32767.998).
    Max,
    /// The smallest accepted value, -32768.0.
    Min,
    /// Just out of range, 32768.0.
    Over,
}

impl F32 {
    fn value(self) -> f32 {
        match self {
            F32::Quarter(n) => f32::from(n) / 4.0,
            F32::Fine(n) => f32::from(n) / 256.0,
            F32::Bits(b) => f32::from_bits(b),
            F32::Max => f32::from_bits(0x46ff_ffff),
            F32::Min => -32768.0,
            F32::Over => 32768.0,
        }
    }
}

/// A raw Q16.16 component.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Raw {
    /// `n << 12`: small values.
    Small(i8),
    /// Any value.
    Any(i32),
    /// `i32::MIN`.
    Min,
    /// `i32::MAX`.
    Max,
}

impl Raw {
    fn value(self) -> i32 {
        match self {
            Raw::Small(n) => i32::from(n) << 12,
            Raw::Any(v) => v,
            Raw::Min => i32::MIN,
            Raw::Max => i32::MAX,
        }
    }
}

/// A length: the dimension, or another one (a dimension error).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Len {
    /// The kernel's dimension.
    Dim,
    /// `n % (2 * dim + 2)`.
    Other(u8),
}

impl Len {
    fn get(self, dim: usize) -> usize {
        match self {
            Len::Dim => dim,
            Len::Other(n) => usize::from(n) % (2 * dim + 2),
        }
    }
}

/// A float vector: components cycled to the chosen length.
#[derive(Arbitrary, Debug, Clone)]
pub struct FVec {
    len: Len,
    vals: Vec<F32>,
}

impl FVec {
    /// The vector for a kernel of dimension `dim`.
    pub fn build(&self, dim: usize) -> Vec<f32> {
        self.build_len(self.len.get(dim))
    }

    /// `n` components.
    pub fn build_len(&self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| match self.vals.len() {
                0 => 0.0,
                l => self.vals[i % l].value(),
            })
            .collect()
    }
}

/// A raw vector.
#[derive(Arbitrary, Debug, Clone)]
pub struct RVec {
    len: Len,
    vals: Vec<Raw>,
}

impl RVec {
    fn build_len(&self, n: usize) -> Vec<i32> {
        (0..n)
            .map(|i| match self.vals.len() {
                0 => 0,
                l => self.vals[i % l].value(),
            })
            .collect()
    }
    fn build(&self, dim: usize) -> Vec<i32> {
        self.build_len(self.len.get(dim))
    }
}

/// A byte-string input (metadata, labels, commands).
#[derive(Arbitrary, Debug, Clone)]
pub enum Bytes {
    /// A non-NULL pointer with length 0.
    Empty,
    /// `(NULL, 0)`.
    Null,
    /// These bytes.
    Some(Vec<u8>),
    /// `n` copies of a byte.
    Fill(u8, u8),
    /// One byte over the metadata limit.
    TooLongMeta,
    /// One byte over the label limit.
    TooLongLabel,
}

impl Bytes {
    fn build(&self) -> (bool, Vec<u8>) {
        match self {
            Bytes::Empty => (false, Vec::new()),
            Bytes::Null => (true, Vec::new()),
            Bytes::Some(v) => (false, v.clone()),
            Bytes::Fill(n, b) => (false, vec![*b; usize::from(*n)]),
            Bytes::TooLongMeta => (false, vec![7; MAX_META_LEN + 1]),
            Bytes::TooLongLabel => (false, vec![7; MAX_LABEL_LEN + 1]),
        }
    }
}

/// An output buffer's capacity.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Cap {
    /// A non-NULL buffer of capacity 0.
    Zero,
    /// `(NULL, 0)`: a valid empty buffer.
    Null,
    /// NULL with a capacity: misuse.
    NullWithLen(u8),
    /// `n % 8` items.
    Small(u8),
    /// Room for any plausible result.
    Plenty,
}

/// A search's `k`.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum K {
    /// `n % 8` (0 is an error).
    Small(u8),
    /// Any value.
    Any(u32),
}

impl K {
    fn get(self) -> u32 {
        match self {
            K::Small(n) => u32::from(n % 8),
            K::Any(v) => v,
        }
    }
}

fn tag_of(t: Option<u8>) -> Option<u64> {
    t.map(|t| u64::from(t % 4))
}

fn opt_ptr<T>(v: &Option<T>) -> *const T {
    v.as_ref().map_or(null(), |x| x as *const T)
}

fn bytes_ptr(null_ptr: bool, v: &[u8]) -> *const u8 {
    if null_ptr {
        null()
    } else {
        v.as_ptr()
    }
}

/// A command for `valori_kernel_apply`, built from parts so that it usually decodes.
#[derive(Arbitrary, Debug, Clone)]
pub enum CmdSel {
    /// Insert with an explicit or automatic id.
    Insert {
        /// Id.
        id: Option<IdSel>,
        /// Tag.
        tag: Option<u8>,
        /// Vector.
        v: RVec,
        /// Metadata.
        meta: Bytes,
    },
    /// A batch.
    InsertBatch {
        /// Ids (empty: automatic).
        ids: Vec<IdSel>,
        /// Tags (empty: none).
        tags: Vec<u8>,
        /// Rows.
        rows: u8,
        /// Components.
        v: RVec,
        /// Add this many stray components.
        extra: u8,
    },
    /// Delete a record.
    Delete(IdSel),
    /// Set metadata.
    SetMeta(IdSel, Bytes),
    /// Set a tag.
    SetTag(IdSel, Option<u8>),
    /// Create a node.
    CreateNode {
        /// Id.
        id: Option<IdSel>,
        /// Kind.
        kind: u32,
        /// Linked record.
        record: Option<IdSel>,
        /// Label.
        label: Bytes,
    },
    /// Delete a node.
    DeleteNode(IdSel),
    /// Create an edge.
    CreateEdge {
        /// Id.
        id: Option<IdSel>,
        /// Kind.
        kind: u8,
        /// Source.
        from: IdSel,
        /// Target.
        to: IdSel,
        /// Weight.
        weight: Option<i32>,
    },
    /// Delete an edge.
    DeleteEdge(IdSel),
}

impl CmdSel {
    /// The command's encoding.
    pub fn encode(&self, m: &Mirror) -> Vec<u8> {
        let [rec, node, edge] = m.last;
        let dim = m.dim;
        match self {
            CmdSel::Insert { id, tag, v, meta } => {
                let v: Vec<Fxp> = v.build(dim).into_iter().map(Fxp).collect();
                let (_, meta) = meta.build();
                Command::Insert {
                    id: id.map(|i| i.pick(rec)),
                    tag: tag_of(*tag),
                    vector: v[..].into(),
                    meta: &meta,
                }
                .to_vec()
            }
            CmdSel::InsertBatch {
                ids,
                tags,
                rows,
                v,
                extra,
            } => {
                let n = usize::from(rows % 6) * dim + usize::from(extra % 2);
                let v: Vec<Fxp> = v.build_len(n).into_iter().map(Fxp).collect();
                let ids: Vec<u64> = ids.iter().map(|i| i.pick(rec)).collect();
                let tags: Vec<u64> = tags.iter().map(|t| u64::from(t % 4)).collect();
                Command::InsertBatch {
                    ids: Words::Native(&ids),
                    tags: Words::Native(&tags),
                    vectors: v[..].into(),
                }
                .to_vec()
            }
            CmdSel::Delete(id) => Command::Delete { id: id.pick(rec) }.to_vec(),
            CmdSel::SetMeta(id, meta) => {
                let (_, meta) = meta.build();
                Command::SetMeta {
                    id: id.pick(rec),
                    meta: &meta,
                }
                .to_vec()
            }
            CmdSel::SetTag(id, tag) => Command::SetTag {
                id: id.pick(rec),
                tag: tag_of(*tag),
            }
            .to_vec(),
            CmdSel::CreateNode {
                id,
                kind,
                record,
                label,
            } => {
                let (_, label) = label.build();
                Command::CreateNode {
                    id: id.map(|i| i.pick(node)),
                    kind: *kind,
                    record: record.map(|r| r.pick(rec)),
                    label: &label,
                }
                .to_vec()
            }
            CmdSel::DeleteNode(id) => Command::DeleteNode { id: id.pick(node) }.to_vec(),
            CmdSel::CreateEdge {
                id,
                kind,
                from,
                to,
                weight,
            } => Command::CreateEdge {
                id: id.map(|i| i.pick(edge)),
                kind: u32::from(kind % 4),
                from: from.pick(node),
                to: to.pick(node),
                weight: weight.map(Fxp),
            }
            .to_vec(),
            CmdSel::DeleteEdge(id) => Command::DeleteEdge { id: id.pick(edge) }.to_vec(),
        }
    }
}

/// A call that breaks the pointer rules.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Misuse {
    /// A NULL handle, on the function with this number.
    NullHandle(u8),
    /// A NULL out-parameter, on the function with this number.
    NullOut(u8),
    /// An out-parameter one byte off its alignment, on the function with this number.
    MisalignedOut(u8),
    /// A NULL input with a non-zero length, on the function with this number.
    NullInput(u8),
}

/// Operations only one of the targets has.
#[derive(Arbitrary, Debug, Clone)]
pub enum Special {
    /// Kernel: snapshot (size query, short buffer, exact buffer), restore into a second buffer
    /// with changed capacities (or a wrong configuration, or a truncated snapshot), compare
    /// hashes, and optionally carry on with the restored kernel.
    SnapshotRestore {
        /// New capacities (`None`: the same).
        caps: Option<Caps>,
        /// Give the restore a wrong dimension (1) or metric (2).
        wrong: u8,
        /// Restore only a prefix of this many bytes (modulo the length).
        truncate: Option<u16>,
        /// Continue with the restored kernel.
        switch: bool,
        /// Misalign the new buffer by this much (mod 8).
        offset: u8,
    },
    /// Kernel: `valori_kernel_apply` on any bytes.
    ApplyBytes(Vec<u8>),
    /// Kernel: `valori_kernel_apply` on a well-formed command.
    ApplyCommand(CmdSel),
    /// Database: `valori_insert_batch`.
    InsertBatch {
        /// Rows.
        rows: u8,
        /// Components.
        v: FVec,
        /// Pass this dimension instead of the right one.
        wrong_dim: Option<u8>,
        /// Tags (`None`: NULL).
        tags: Option<Vec<u8>>,
    },
    /// Database: `valori_checkpoint`.
    Checkpoint,
    /// Database: `valori_export` then `valori_replay`: the replayed hash is the state hash.
    ExportReplay {
        /// Capacity of the first try.
        cap: Cap,
    },
    /// Database: close and reopen; the state hash survives.
    Reopen,
}

/// Capacities for a kernel in caller memory.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Caps {
    /// Records (`% 24`).
    pub records: u8,
    /// Nodes (`% 24`).
    pub nodes: u8,
    /// Edges (`% 48`).
    pub edges: u8,
    /// Metadata bytes (`% 512`).
    pub meta_bytes: u16,
    /// Label bytes (`% 256`).
    pub label_bytes: u16,
}

impl Caps {
    /// Into the C configuration.
    pub fn apply(self, cfg: &mut valori::valori_kernel_config) {
        cfg.max_records = u32::from(self.records % 24);
        cfg.max_nodes = u32::from(self.nodes % 24);
        cfg.max_edges = u32::from(self.edges % 48);
        cfg.meta_bytes = u32::from(self.meta_bytes % 512);
        cfg.label_bytes = u32::from(self.label_bytes % 256);
    }
}

/// One call.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// `insert`.
    Insert {
        /// Vector.
        v: FVec,
        /// Tag.
        tag: Option<u8>,
        /// Metadata.
        meta: Bytes,
    },
    /// `delete`.
    Delete(IdSel),
    /// `set_meta`.
    SetMeta(IdSel, Bytes),
    /// `set_tag`.
    SetTag(IdSel, Option<u8>),
    /// `create_node`.
    CreateNode {
        /// Kind (`% 4`).
        kind: u8,
        /// Linked record.
        record: Option<IdSel>,
        /// Label.
        label: Bytes,
    },
    /// `delete_node`.
    DeleteNode(IdSel),
    /// `create_edge`.
    CreateEdge {
        /// Kind (`% 4`).
        kind: u8,
        /// Source.
        from: IdSel,
        /// Target.
        to: IdSel,
        /// Weight.
        weight: Option<F32>,
    },
    /// `delete_edge`.
    DeleteEdge(IdSel),
    /// `search`.
    Search {
        /// Query.
        q: FVec,
        /// k.
        k: K,
        /// Tag filter.
        tag: Option<u8>,
        /// Output capacity.
        cap: Cap,
    },
    /// `search_raw` (the kernel only).
    SearchRaw {
        /// Query.
        q: RVec,
        /// k.
        k: K,
        /// Tag filter.
        tag: Option<u8>,
        /// Output capacity.
        cap: Cap,
    },
    /// `neighbors`.
    Neighbors {
        /// Node.
        node: IdSel,
        /// Direction (`% 4`; 3 is invalid).
        dir: u8,
        /// Output capacity.
        cap: Cap,
    },
    /// `traverse`.
    Traverse {
        /// Start node.
        start: IdSel,
        /// Hops: small, or any.
        hops: K,
        /// Direction (`% 4`; 3 is invalid).
        dir: u8,
        /// Edge kind filter (`% 4`).
        kind: Option<u8>,
        /// Output capacity.
        cap: Cap,
    },
    /// `get_vector`.
    GetVector(IdSel, Cap),
    /// `get_meta`.
    GetMeta(IdSel, Cap),
    /// `get_tag`.
    GetTag(IdSel),
    /// `count`.
    Count,
    /// `state_hash`.
    StateHash,
    /// Pointer misuse.
    Misuse(Misuse),
    /// A target-specific operation.
    Special(Special),
}

// ---------------------------------------------------------------------------------------------
// The API under test

/// The exported functions of one handle kind, with the handle bound.
pub trait Api: Sized {
    /// A value with a NULL handle (every call must be `VALORI_MISUSE`).
    fn null_handle() -> Self;
    /// `insert`.
    fn insert(
        &mut self,
        v: *const f32,
        dim: usize,
        tag: *const u64,
        meta: *const u8,
        meta_len: usize,
        out_id: *mut u64,
    ) -> c_int;
    /// `delete`.
    fn delete(&mut self, id: u64) -> c_int;
    /// `set_meta`.
    fn set_meta(&mut self, id: u64, meta: *const u8, meta_len: usize) -> c_int;
    /// `set_tag`.
    fn set_tag(&mut self, id: u64, tag: *const u64) -> c_int;
    /// `create_node`.
    fn create_node(
        &mut self,
        kind: u32,
        record: *const u64,
        label: *const u8,
        label_len: usize,
        out_id: *mut u64,
    ) -> c_int;
    /// `delete_node`.
    fn delete_node(&mut self, id: u64) -> c_int;
    /// `create_edge`.
    fn create_edge(
        &mut self,
        kind: u32,
        from: u64,
        to: u64,
        weight: *const f32,
        out_id: *mut u64,
    ) -> c_int;
    /// `delete_edge`.
    fn delete_edge(&mut self, id: u64) -> c_int;
    /// `search`.
    fn search(
        &mut self,
        q: *const f32,
        dim: usize,
        k: u32,
        tag: *const u64,
        out: *mut valori_hit,
        cap: usize,
        out_len: *mut usize,
    ) -> c_int;
    /// Whether the handle kind has `search_raw`.
    const HAS_SEARCH_RAW: bool;
    /// `search_raw` (only called if [`Api::HAS_SEARCH_RAW`]).
    fn search_raw(
        &mut self,
        q: *const i32,
        dim: usize,
        k: u32,
        tag: *const u64,
        out: *mut valori_hit,
        cap: usize,
        out_len: *mut usize,
    ) -> c_int;
    /// `neighbors`.
    fn neighbors(
        &self,
        node: u64,
        dir: u32,
        out: *mut valori_edge,
        cap: usize,
        out_len: *mut usize,
    ) -> c_int;
    /// `traverse`.
    fn traverse(
        &self,
        start: u64,
        hops: u32,
        dir: u32,
        kind: *const u32,
        out: *mut valori_hop,
        cap: usize,
        out_len: *mut usize,
    ) -> c_int;
    /// `count`.
    fn count(&self, out: *mut u64) -> c_int;
    /// `state_hash`.
    fn state_hash(&self, out: *mut u8) -> c_int;
    /// `get_vector`.
    fn get_vector(&self, id: u64, out: *mut f32, cap: usize, out_len: *mut usize) -> c_int;
    /// `get_meta`.
    fn get_meta(&self, id: u64, out: *mut u8, cap: usize, out_len: *mut usize) -> c_int;
    /// `get_tag`.
    fn get_tag(&self, id: u64, tag: *mut u64, has: *mut c_int) -> c_int;
    /// Checks what the handle says about its last failure (the database's `valori_errmsg`).
    fn check_failure_message(&self, _rc: c_int) {}
    /// Runs a target-specific operation (ignores the others).
    fn special(&mut self, op: &Special, m: &mut Mirror);
}

/// The growable Rust kernel that applies the same commands.
pub struct Mirror {
    /// The kernel.
    pub k: Kernel<'static>,
    /// Its dimension.
    pub dim: usize,
    /// Last created record, node and edge ids.
    pub last: [u64; 3],
}

impl Mirror {
    /// An empty mirror.
    pub fn new(config: Config) -> Mirror {
        let k = match Kernel::new(config) {
            Ok(k) => k,
            Err(e) => panic!("mirror kernel: {e}"),
        };
        Mirror {
            k,
            dim: config.dim as usize,
            last: [0; 3],
        }
    }

    /// Checks a write's result code and created id (`out_id`: `None` if the call has no id
    /// output, else what it holds, `SENT_U64` if untouched) against the mirror applying `cmd`
    /// (`Err(codes)`: the call must fail before reaching the kernel with one of these codes).
    pub fn write(&mut self, rc: c_int, out_id: Option<u64>, cmd: Result<Command<'_>, &[c_int]>) {
        check_rc(rc);
        let untouched = out_id.is_none_or(|id| id == SENT_U64);
        let cmd = match cmd {
            Ok(cmd) => cmd,
            Err(codes) => {
                assert!(
                    codes.contains(&primary(rc)),
                    "rc {rc:#x}, expected one of {codes:?}"
                );
                assert!(untouched, "out_id written on failure");
                return;
            }
        };
        if rc == VALORI_OK {
            match self.k.apply(&cmd) {
                Ok(Applied::Created(id)) => {
                    if let Some(out) = out_id {
                        assert_eq!(out, id, "created id differs from the mirror's");
                    }
                    let slot = match cmd {
                        Command::CreateNode { .. } => 1,
                        Command::CreateEdge { .. } => 2,
                        _ => 0,
                    };
                    self.last[slot] = id;
                }
                Ok(Applied::Batch { first_id, count }) => {
                    if let Some(out) = out_id {
                        assert_eq!(out, first_id, "batch's first id differs from the mirror's");
                    }
                    if count > 0 {
                        self.last[0] = first_id + count - 1;
                    }
                }
                Ok(Applied::Done) => assert!(untouched, "out_id written by {cmd:?}"),
                Err(e) => panic!("the C call succeeded, the mirror refused {cmd:?}: {e}"),
            }
            return;
        }
        assert!(untouched, "out_id written on failure {rc:#x}");
        if primary(rc) == VALORI_FULL {
            // Only a kernel in caller memory fills up; the mirror stays as it is.
            return;
        }
        match self.k.apply(&cmd) {
            Ok(a) => panic!("the C call failed with {rc:#x}, the mirror applied {cmd:?}: {a:?}"),
            Err(e) => assert_eq!(
                primary(rc),
                code_of(&e),
                "the C call failed with {rc:#x}, the mirror with {e} on {cmd:?}"
            ),
        }
    }
}

/// The outcome of a read into a caller buffer: the items (after retrying with the needed
/// capacity), the needed size if the first try was too small, or the error code. `None`: an
/// expected misuse.
type ReadOutcome<T> = Option<(Result<Vec<T>, c_int>, Option<usize>)>;

/// Calls a read with an output buffer of capacity `cap`, checks the output rules, and
/// retries with the needed capacity after `VALORI_INSUFFICIENT_SIZE`. `scratch`: on success
/// the function may have used its buffer past the returned length (the traversal runs in it).
fn read_buf<T: Sentinel>(
    cap: Cap,
    plenty: usize,
    scratch: bool,
    mut call: impl FnMut(*mut T, usize, *mut usize) -> c_int,
) -> ReadOutcome<T> {
    let (null_ptr, mut n) = match cap {
        Cap::Zero => (false, 0),
        Cap::Null => (true, 0),
        Cap::NullWithLen(n) => (true, usize::from(n % 8) + 1),
        Cap::Small(n) => (false, usize::from(n % 8)),
        Cap::Plenty => (false, plenty),
    };
    let mut needed_first = None;
    for attempt in 0..16 {
        let mut buf = vec![T::sentinel(); if null_ptr { 0 } else { n }];
        let ptr = if null_ptr {
            null_mut()
        } else {
            buf.as_mut_ptr()
        };
        let mut out_len = SENT_USIZE;
        let rc = call(ptr, n, &mut out_len);
        check_rc(rc);
        let untouched = |from: usize| buf.iter().skip(from).all(Sentinel::is_sentinel);
        if null_ptr && n > 0 {
            assert_eq!(rc, VALORI_MISUSE, "NULL buffer with capacity {n}");
            assert_eq!(out_len, SENT_USIZE);
            return None;
        }
        match rc {
            VALORI_OK => {
                assert!(out_len <= n, "out_len {out_len} over the capacity {n}");
                if !scratch {
                    assert!(untouched(out_len), "written past out_len {out_len}");
                }
                buf.truncate(out_len);
                return Some((Ok(buf), needed_first));
            }
            VALORI_INSUFFICIENT_SIZE => {
                assert!(
                    out_len > n,
                    "INSUFFICIENT_SIZE names {out_len} for capacity {n}"
                );
                assert!(untouched(0), "buffer written on INSUFFICIENT_SIZE");
                needed_first.get_or_insert(out_len);
                if out_len > RETRY_LIMIT || attempt == 15 {
                    return Some((Err(rc), needed_first));
                }
                n = out_len;
                // The retry uses a real buffer even if the first try passed NULL.
                if null_ptr {
                    return retry_real(n, scratch, call, needed_first);
                }
            }
            _ => {
                assert!(untouched(0), "buffer written on failure {rc:#x}");
                assert_eq!(out_len, SENT_USIZE, "out_len written on failure {rc:#x}");
                return Some((Err(rc), None));
            }
        }
    }
    Some((Err(VALORI_INSUFFICIENT_SIZE), needed_first))
}

fn retry_real<T: Sentinel>(
    n: usize,
    scratch: bool,
    call: impl FnMut(*mut T, usize, *mut usize) -> c_int,
    needed_first: Option<usize>,
) -> ReadOutcome<T> {
    let (r, _) = read_buf(Cap::Plenty, n, scratch, call)?;
    Some((r, needed_first))
}

fn direction(d: u8) -> (u32, Option<Direction>) {
    match d % 4 {
        0 => (valori::VALORI_DIRECTION_OUT, Some(Direction::Outgoing)),
        1 => (valori::VALORI_DIRECTION_IN, Some(Direction::Incoming)),
        2 => (valori::VALORI_DIRECTION_BOTH, Some(Direction::Both)),
        _ => (7, None),
    }
}

/// Converts as the C API does: a wrong length is a dimension error (the embedded kernel) or
/// the conversion's error may come first (the database converts before checking).
fn convert(v: &[f32], dim: usize) -> Result<Vec<Fxp>, &'static [c_int]> {
    const DIM: &[c_int] = &[VALORI_DIMENSION];
    const DIM_OR_INVALID: &[c_int] = &[VALORI_DIMENSION, VALORI_INVALID_INPUT];
    const INVALID: &[c_int] = &[VALORI_INVALID_INPUT];
    match fxp::to_vec(v) {
        Ok(q) if q.len() == dim => Ok(q),
        Ok(_) => Err(DIM),
        Err(_) if v.len() != dim => Err(DIM_OR_INVALID),
        Err(_) => Err(INVALID),
    }
}

/// Runs one input's operations and checks each against the mirror.
pub struct Harness<A: Api> {
    /// The handle under test.
    pub api: A,
    /// The reference.
    pub m: Mirror,
}

impl<A: Api> Harness<A> {
    /// Runs every op, then compares the state hashes.
    pub fn run(&mut self, ops: &[Op]) {
        for op in ops {
            self.step(op);
        }
        self.check_hash();
    }

    /// The C state hash equals the mirror's.
    pub fn check_hash(&mut self) {
        let mut h = [SENT_BYTE; 32];
        let rc = self.api.state_hash(h.as_mut_ptr());
        assert_eq!(rc, VALORI_OK);
        assert_eq!(
            h,
            self.m.k.state_hash(),
            "the C kernel's hash differs from the mirror's"
        );
        let mut n = SENT_U64;
        assert_eq!(self.api.count(&mut n), VALORI_OK);
        assert_eq!(n, self.m.k.len() as u64);
    }

    fn fail_msg(&self, rc: c_int) {
        if rc != VALORI_OK && rc != VALORI_INSUFFICIENT_SIZE && rc != VALORI_MISUSE {
            self.api.check_failure_message(rc);
        }
    }

    /// One operation.
    pub fn step(&mut self, op: &Op) {
        let dim = self.m.dim;
        let [rec, node, edge] = self.m.last;
        match op {
            Op::Insert { v, tag, meta } => {
                let v = v.build(dim);
                let tag = tag_of(*tag);
                let (null_meta, meta) = meta.build();
                let mut id = SENT_U64;
                let rc = self.api.insert(
                    v.as_ptr(),
                    v.len(),
                    opt_ptr(&tag),
                    bytes_ptr(null_meta, &meta),
                    meta.len(),
                    &mut id,
                );
                self.fail_msg(rc);
                let q = convert(&v, dim);
                let cmd = q.as_ref().map(|q| Command::Insert {
                    id: None,
                    tag,
                    vector: q[..].into(),
                    meta: &meta,
                });
                self.m.write(rc, Some(id), cmd.map_err(|c| *c));
            }
            Op::Delete(id) => {
                let id = id.pick(rec);
                let rc = self.api.delete(id);
                self.fail_msg(rc);
                self.m.write(rc, None, Ok(Command::Delete { id }));
            }
            Op::SetMeta(id, meta) => {
                let id = id.pick(rec);
                let (null_meta, meta) = meta.build();
                let rc = self
                    .api
                    .set_meta(id, bytes_ptr(null_meta, &meta), meta.len());
                self.fail_msg(rc);
                self.m
                    .write(rc, None, Ok(Command::SetMeta { id, meta: &meta }));
            }
            Op::SetTag(id, tag) => {
                let id = id.pick(rec);
                let tag = tag_of(*tag);
                let rc = self.api.set_tag(id, opt_ptr(&tag));
                self.fail_msg(rc);
                self.m.write(rc, None, Ok(Command::SetTag { id, tag }));
            }
            Op::CreateNode {
                kind,
                record,
                label,
            } => {
                let kind = u32::from(kind % 4);
                let record = record.map(|r| r.pick(rec));
                let (null_label, label) = label.build();
                let mut id = SENT_U64;
                let rc = self.api.create_node(
                    kind,
                    opt_ptr(&record),
                    bytes_ptr(null_label, &label),
                    label.len(),
                    &mut id,
                );
                self.fail_msg(rc);
                let cmd = Command::CreateNode {
                    id: None,
                    kind,
                    record,
                    label: &label,
                };
                self.m.write(rc, Some(id), Ok(cmd));
            }
            Op::DeleteNode(id) => {
                let id = id.pick(node);
                let rc = self.api.delete_node(id);
                self.fail_msg(rc);
                self.m.write(rc, None, Ok(Command::DeleteNode { id }));
            }
            Op::CreateEdge {
                kind,
                from,
                to,
                weight,
            } => {
                let kind = u32::from(kind % 4);
                let (from, to) = (from.pick(node), to.pick(node));
                let w = weight.map(F32::value);
                let mut id = SENT_U64;
                let rc = self.api.create_edge(kind, from, to, opt_ptr(&w), &mut id);
                self.fail_msg(rc);
                const INVALID: &[c_int] = &[VALORI_INVALID_INPUT];
                let cmd = match w.map(|w| Fxp::from_f32(w, 0)).transpose() {
                    Ok(weight) => Ok(Command::CreateEdge {
                        id: None,
                        kind,
                        from,
                        to,
                        weight,
                    }),
                    Err(_) => Err(INVALID),
                };
                self.m.write(rc, Some(id), cmd);
            }
            Op::DeleteEdge(id) => {
                let id = id.pick(edge);
                let rc = self.api.delete_edge(id);
                self.fail_msg(rc);
                self.m.write(rc, None, Ok(Command::DeleteEdge { id }));
            }
            Op::Search { q, k, tag, cap } => {
                let q = q.build(dim);
                let (k, tag) = (k.get(), tag_of(*tag));
                let api = &mut self.api;
                let got = read_buf(*cap, 64, false, |out, c, len| {
                    api.search(q.as_ptr(), q.len(), k, opt_ptr(&tag), out, c, len)
                });
                let want = convert(&q, dim).map(|fq| self.m.k.search_vec(&fq, k, tag));
                self.check_hits(got, want);
            }
            Op::SearchRaw { q, k, tag, cap } => {
                if !A::HAS_SEARCH_RAW {
                    return;
                }
                let q = q.build(dim);
                let (k, tag) = (k.get(), tag_of(*tag));
                let api = &mut self.api;
                let got = read_buf(*cap, 64, false, |out, c, len| {
                    api.search_raw(q.as_ptr(), q.len(), k, opt_ptr(&tag), out, c, len)
                });
                let fq: Vec<Fxp> = q.iter().copied().map(Fxp).collect();
                let want = self.m.k.search_vec(&fq, k, tag);
                self.check_hits(got, Ok(want));
            }
            Op::Neighbors { node: n, dir, cap } => {
                let n = n.pick(node);
                let (d, dir) = direction(*dir);
                let api = &self.api;
                let got = read_buf(*cap, 64, false, |out, c, len| {
                    api.neighbors(n, d, out, c, len)
                });
                let Some((got, needed)) = got else { return };
                let want = match (dir, self.m.k.node(n)) {
                    (None, _) => Err(VALORI_INVALID_INPUT),
                    (Some(_), None) => Err(VALORI_NOT_FOUND),
                    (Some(d), Some(_)) => {
                        let outs = matches!(d, Direction::Outgoing | Direction::Both);
                        let ins = matches!(d, Direction::Incoming | Direction::Both);
                        let mut v: Vec<_> = Vec::new();
                        if outs {
                            v.extend(self.m.k.outgoing(n));
                        }
                        if ins {
                            v.extend(self.m.k.incoming(n));
                        }
                        Ok(v)
                    }
                };
                match (got, want) {
                    (Ok(g), Ok(w)) => {
                        assert_eq!(g.len(), w.len());
                        if let Some(needed) = needed {
                            assert_eq!(needed, w.len());
                        }
                        for (g, w) in g.iter().zip(&w) {
                            assert_eq!((g.id, g.from, g.to, g.kind), (w.id, w.from, w.to, w.kind));
                            assert_eq!(g.has_weight, u32::from(w.weight.is_some()));
                            let wf = w.weight.map_or(0.0, Fxp::to_f64);
                            assert_eq!(g.weight.to_bits(), wf.to_bits());
                        }
                    }
                    (Err(rc), Err(code)) => assert_eq!(primary(rc), code),
                    (g, w) => panic!("neighbors: C {g:?}, mirror {w:?}"),
                }
            }
            Op::Traverse {
                start,
                hops,
                dir,
                kind,
                cap,
            } => {
                let start = start.pick(node);
                let hops = match hops {
                    K::Small(n) => u32::from(n % 6),
                    K::Any(v) => *v,
                };
                let (d, dir) = direction(*dir);
                let kind = kind.map(|k| u32::from(k % 4));
                let api = &self.api;
                let got = read_buf(*cap, 64, true, |out, c, len| {
                    api.traverse(start, hops, d, opt_ptr(&kind), out, c, len)
                });
                let Some((got, needed)) = got else { return };
                let want = match dir {
                    None => Err(VALORI_INVALID_INPUT),
                    Some(dir) => {
                        let n = match &got {
                            Ok(g) => g.len(),
                            Err(_) => 0,
                        };
                        let mut out = vec![Hop::default(); n];
                        match self.m.k.traverse(start, hops, dir, kind, &mut out) {
                            Ok(len) => {
                                out.truncate(len);
                                Ok(out)
                            }
                            Err(e) => Err(code_of(&e)),
                        }
                    }
                };
                match (got, want) {
                    (Ok(g), Ok(w)) => {
                        if let Some(needed) = needed {
                            assert_eq!(needed, w.len(), "traverse asked for the wrong room");
                        }
                        let g: Vec<Hop> = g
                            .iter()
                            .map(|h| {
                                assert_eq!(h.reserved, 0);
                                Hop {
                                    depth: h.depth,
                                    node: h.node,
                                }
                            })
                            .collect();
                        assert_eq!(g, w);
                        assert!(g.windows(2).all(|p| p[0] < p[1]), "hops not ordered");
                        assert!(g.iter().all(|h| h.depth >= 1 && h.depth <= hops));
                    }
                    (Err(rc), Err(code)) => assert_eq!(primary(rc), code),
                    (Err(rc), Ok(w)) if rc == VALORI_INSUFFICIENT_SIZE => {
                        panic!(
                            "traverse kept asking for more room; mirror found {}",
                            w.len()
                        )
                    }
                    (g, w) => panic!("traverse: C {g:?}, mirror {w:?}"),
                }
            }
            Op::GetVector(id, cap) => {
                let id = id.pick(rec);
                let api = &self.api;
                let got = read_buf(*cap, dim + 1, false, |out, c, len| {
                    api.get_vector(id, out, c, len)
                });
                let Some((got, needed)) = got else { return };
                match (got, self.m.k.get(id)) {
                    (Ok(g), Some(r)) => {
                        let w: Vec<u32> = r
                            .vector
                            .iter()
                            .map(|x| (x.to_f64() as f32).to_bits())
                            .collect();
                        let g: Vec<u32> = g.iter().map(|x| x.to_bits()).collect();
                        assert_eq!(g, w);
                        if let Some(needed) = needed {
                            assert_eq!(needed, dim);
                        }
                    }
                    (Err(rc), None) => assert_eq!(primary(rc), VALORI_NOT_FOUND),
                    (g, w) => panic!("get_vector: C {g:?}, mirror {w:?}"),
                }
            }
            Op::GetMeta(id, cap) => {
                let id = id.pick(rec);
                let api = &self.api;
                let got = read_buf(*cap, 1024, false, |out, c, len| {
                    api.get_meta(id, out, c, len)
                });
                let Some((got, needed)) = got else { return };
                match (got, self.m.k.get(id)) {
                    (Ok(g), Some(r)) => {
                        assert_eq!(g, r.meta);
                        if let Some(needed) = needed {
                            assert_eq!(needed, r.meta.len());
                        }
                    }
                    (Err(rc), None) => assert_eq!(primary(rc), VALORI_NOT_FOUND),
                    (g, w) => panic!("get_meta: C {g:?}, mirror {w:?}"),
                }
            }
            Op::GetTag(id) => {
                let id = id.pick(rec);
                let (mut tag, mut has) = (SENT_U64, 0x5e57_1e17);
                let rc = self.api.get_tag(id, &mut tag, &mut has);
                check_rc(rc);
                self.fail_msg(rc);
                match self.m.k.get(id) {
                    Some(r) => {
                        assert_eq!(rc, VALORI_OK);
                        assert_eq!(
                            (tag, has),
                            (r.tag.unwrap_or(0), c_int::from(r.tag.is_some()))
                        );
                    }
                    None => {
                        assert_eq!(primary(rc), VALORI_NOT_FOUND);
                        assert_eq!((tag, has), (SENT_U64, 0x5e57_1e17));
                    }
                }
            }
            Op::Count => {
                let mut n = SENT_U64;
                assert_eq!(self.api.count(&mut n), VALORI_OK);
                assert_eq!(n, self.m.k.len() as u64);
            }
            Op::StateHash => self.check_hash(),
            Op::Misuse(m) => self.misuse(*m),
            Op::Special(s) => self.api.special(s, &mut self.m),
        }
    }

    fn check_hits(
        &self,
        got: ReadOutcome<valori_hit>,
        want: Result<valori_kernel::Result<Vec<valori_kernel::Hit>>, &[c_int]>,
    ) {
        let Some((got, needed)) = got else { return };
        let metric = self.m.k.config().metric;
        match (got, want) {
            (Ok(g), Ok(Ok(w))) => {
                assert_eq!(g.len(), w.len());
                if let Some(needed) = needed {
                    assert_eq!(needed, w.len());
                }
                for (g, w) in g.iter().zip(&w) {
                    let raw = (i128::from(g.distance_raw_hi) << 64) | i128::from(g.distance_raw_lo);
                    assert_eq!(
                        (g.id, raw),
                        (w.id, w.distance),
                        "hit differs from the mirror's"
                    );
                    let d = metric.distance_to_f64(w.distance);
                    assert_eq!(g.distance.to_bits(), d.to_bits());
                }
            }
            (Err(rc), Ok(Err(e))) => assert_eq!(primary(rc), code_of(&e), "search: {e}"),
            (Err(rc), Err(codes)) => assert!(codes.contains(&primary(rc)), "search rc {rc:#x}"),
            (g, w) => panic!("search: C {g:?}, mirror {w:?}"),
        }
    }

    /// Calls function `which` breaking one pointer rule; expects `VALORI_MISUSE`.
    fn misuse(&mut self, m: Misuse) {
        let mut id = SENT_U64;
        let v = vec![0.5f32; self.m.dim];
        let mut hits = [valori_hit::sentinel(); 4];
        let mut edges = [valori_edge::sentinel(); 4];
        let mut hops = [valori_hop::sentinel(); 4];
        let mut hash = [SENT_BYTE; 32];
        let mut len = SENT_USIZE;
        let mut tag = SENT_U64;
        let mut has: c_int = 0x5e57_1e17;
        // Out-parameters one byte into an 8-aligned buffer: misaligned for every wider type.
        let mut raw = [SENT_U64; 3];
        let odd = raw.as_mut_ptr().cast::<u8>().wrapping_add(1);
        let (odd_u64, odd_usize, odd_int) =
            (odd.cast::<u64>(), odd.cast::<usize>(), odd.cast::<c_int>());
        let rc = match m {
            Misuse::NullHandle(f) => {
                let mut a = A::null_handle();
                let (rec, node) = (self.m.last[0], self.m.last[1]);
                match f % 12 {
                    0 => a.insert(v.as_ptr(), v.len(), null(), null(), 0, &mut id),
                    1 => a.delete(rec),
                    2 => a.set_meta(rec, null(), 0),
                    3 => a.set_tag(rec, null()),
                    4 => a.create_node(0, null(), null(), 0, &mut id),
                    5 => a.create_edge(0, node, node, null(), &mut id),
                    6 => a.search(
                        v.as_ptr(),
                        v.len(),
                        1,
                        null(),
                        hits.as_mut_ptr(),
                        4,
                        &mut len,
                    ),
                    7 => a.neighbors(node, 0, edges.as_mut_ptr(), 4, &mut len),
                    8 => a.traverse(node, 1, 0, null(), hops.as_mut_ptr(), 4, &mut len),
                    9 => a.state_hash(hash.as_mut_ptr()),
                    10 => a.get_tag(rec, &mut tag, &mut has),
                    _ => a.count(&mut tag),
                }
            }
            Misuse::NullOut(f) => {
                let api = &mut self.api;
                let (rec, node) = (self.m.last[0], self.m.last[1]);
                match f % 10 {
                    0 => api.insert(v.as_ptr(), v.len(), null(), null(), 0, null_mut()),
                    1 => api.create_node(0, null(), null(), 0, null_mut()),
                    2 => api.create_edge(0, node, node, null(), null_mut()),
                    3 => api.search(
                        v.as_ptr(),
                        v.len(),
                        1,
                        null(),
                        hits.as_mut_ptr(),
                        4,
                        null_mut(),
                    ),
                    4 => api.neighbors(node, 0, edges.as_mut_ptr(), 4, null_mut()),
                    5 => api.traverse(node, 1, 0, null(), hops.as_mut_ptr(), 4, null_mut()),
                    6 => api.state_hash(null_mut()),
                    7 => api.get_tag(rec, null_mut(), &mut has),
                    8 => api.get_tag(rec, &mut tag, null_mut()),
                    _ => api.count(null_mut()),
                }
            }
            Misuse::MisalignedOut(f) => {
                let api = &mut self.api;
                let (rec, node) = (self.m.last[0], self.m.last[1]);
                match f % 8 {
                    0 => api.insert(v.as_ptr(), v.len(), null(), null(), 0, odd_u64),
                    1 => api.create_node(0, null(), null(), 0, odd_u64),
                    2 => api.search(
                        v.as_ptr(),
                        v.len(),
                        1,
                        null(),
                        hits.as_mut_ptr(),
                        4,
                        odd_usize,
                    ),
                    3 => api.neighbors(node, 0, edges.as_mut_ptr(), 4, odd_usize),
                    4 => api.get_tag(rec, odd_u64, &mut has),
                    5 => api.get_tag(rec, &mut tag, odd_int),
                    6 => api.count(odd_u64),
                    _ => api.get_meta(rec, null_mut(), 0, odd_usize),
                }
            }
            Misuse::NullInput(f) => {
                let api = &mut self.api;
                let rec = self.m.last[0];
                match f % 5 {
                    0 => api.insert(null(), self.m.dim, null(), null(), 0, &mut id),
                    1 => api.insert(v.as_ptr(), v.len(), null(), null(), 3, &mut id),
                    2 => api.set_meta(rec, null(), 1),
                    3 => api.create_node(0, null(), null(), 2, &mut id),
                    _ => api.search(
                        null(),
                        self.m.dim,
                        1,
                        null(),
                        hits.as_mut_ptr(),
                        4,
                        &mut len,
                    ),
                }
            }
        };
        check_rc(rc);
        assert_eq!(rc, VALORI_MISUSE, "{m:?} gave {rc:#x}");
        assert_eq!(
            (id, len, tag, has),
            (SENT_U64, SENT_USIZE, SENT_U64, 0x5e57_1e17)
        );
        assert!(hits.iter().all(Sentinel::is_sentinel));
        assert!(edges.iter().all(Sentinel::is_sentinel));
        assert!(hops.iter().all(Sentinel::is_sentinel));
        assert!(hash.iter().all(Sentinel::is_sentinel));
        assert_eq!(raw, [SENT_U64; 3], "a misaligned out-parameter was written");
    }
}

/// The mirror's configuration for a C metric value.
pub fn metric(m: u32) -> Option<Metric> {
    u8::try_from(m).ok().and_then(Metric::from_u8)
}

/// Re-exported for the targets.
pub use valori_kernel;

/// The hosted-database error code class of an engine error (for the database target).
pub fn error_code_value(c: ErrorCode) -> c_int {
    c.value() as c_int
}
