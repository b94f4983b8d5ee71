//! The C ABI through the rlib, with NULL, short, misaligned and empty buffers: small enough for
//! Miri (`cargo +nightly miri test -p valori-c --test miri_ffi`, CI leg `miri`), which checks
//! that every pointer the library builds from C arguments stays in bounds and aligned, and that
//! nothing is written where the contract says it is not. Runs natively in `cargo test` too.
//!
//! The result structs live in a private module of the crate, so this test declares them as
//! `include/valori.h` lays them out and passes them with `.cast()`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]
// Reading the C strings the library returns (`valori_errmsg`, `valori_errstr`) takes
// `CStr::from_ptr`; everything else goes through the exported functions.
#![allow(unsafe_code)]

use core::ffi::{c_int, c_void, CStr};
use core::ptr::{null, null_mut};
use valori::*;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Hit {
    id: u64,
    distance: f64,
    raw_hi: i64,
    raw_lo: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Edge {
    id: u64,
    from: u64,
    to: u64,
    kind: u32,
    has_weight: u32,
    weight: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Hop {
    node: u64,
    depth: u32,
    reserved: u32,
}

const SENT: u64 = 0x5e57_1e17_5e57_1e17;
const SENT_LEN: usize = 0x5e57_1e17;
const HIT: Hit = Hit {
    id: SENT,
    distance: -1.0,
    raw_hi: -1,
    raw_lo: SENT,
};

/// A pointer one byte into an 8-aligned buffer: misaligned for every wider type.
fn misaligned(buf: &mut [u64; 2]) -> *mut u8 {
    buf.as_mut_ptr().cast::<u8>().wrapping_add(1)
}

fn config() -> valori_kernel_config {
    valori_kernel_config {
        dim: 3,
        metric: VALORI_METRIC_L2,
        max_records: 4,
        max_nodes: 4,
        max_edges: 4,
        meta_bytes: 32,
        label_bytes: 16,
    }
}

/// A kernel in `mem`, `offset` bytes into it (any alignment must work).
fn init(cfg: &valori_kernel_config, mem: &mut Vec<u8>, offset: usize) -> *mut valori_kernel {
    let mut size = SENT_LEN;
    assert_eq!(valori_kernel_mem_size(cfg, &mut size), VALORI_OK);
    *mem = vec![0xa5; size + offset];
    let base = mem[offset..].as_mut_ptr().cast::<c_void>();
    let mut k = null_mut();
    assert_eq!(
        valori_kernel_init(cfg, base, size - 1, &mut k),
        VALORI_INSUFFICIENT_SIZE
    );
    assert!(k.is_null(), "out_kernel written on failure");
    assert_eq!(valori_kernel_init(cfg, base, size, &mut k), VALORI_OK);
    assert!(!k.is_null());
    k
}

fn hash(k: *const valori_kernel) -> [u8; 32] {
    let mut h = [0u8; 32];
    assert_eq!(valori_kernel_state_hash(k, h.as_mut_ptr()), VALORI_OK);
    h
}

#[test]
fn configuration_and_placement() {
    let cfg = config();
    let mut size = SENT_LEN;
    assert_eq!(valori_kernel_mem_size(null(), &mut size), VALORI_MISUSE);
    assert_eq!(valori_kernel_mem_size(&cfg, null_mut()), VALORI_MISUSE);
    assert_eq!(size, SENT_LEN);
    let bad = valori_kernel_config { dim: 0, ..cfg };
    assert_eq!(
        valori_kernel_mem_size(&bad, &mut size),
        VALORI_INVALID_INPUT
    );
    let bad = valori_kernel_config { metric: 9, ..cfg };
    assert_eq!(
        valori_kernel_mem_size(&bad, &mut size),
        VALORI_INVALID_INPUT
    );
    assert_eq!(size, SENT_LEN);

    let mut k = null_mut();
    assert_eq!(
        valori_kernel_init(&cfg, null_mut(), 4096, &mut k),
        VALORI_MISUSE
    );
    let mut mem = vec![0u8; 64];
    let base = mem.as_mut_ptr().cast::<c_void>();
    assert_eq!(valori_kernel_init(null(), base, 64, &mut k), VALORI_MISUSE);
    assert_eq!(
        valori_kernel_init(&cfg, base, 64, null_mut()),
        VALORI_MISUSE
    );
    assert!(k.is_null());

    // Every alignment of the caller's buffer gives the same empty state.
    let mut first = None;
    for offset in 0..8 {
        let mut mem = Vec::new();
        let k = init(&cfg, &mut mem, offset);
        let h = hash(k);
        assert_eq!(*first.get_or_insert(h), h);
    }
}

#[test]
fn writes_check_their_pointers() {
    let mut mem = Vec::new();
    let k = init(&config(), &mut mem, 3);
    let v = [0.5f32, -1.0, 2.0];
    let tag = 7u64;
    let mut id = SENT;
    assert_eq!(
        valori_kernel_insert(k, null(), 3, null(), null(), 0, &mut id),
        VALORI_MISUSE
    );
    assert_eq!(
        valori_kernel_insert(k, v.as_ptr(), 3, null(), null(), 5, &mut id),
        VALORI_MISUSE
    );
    assert_eq!(
        valori_kernel_insert(k, v.as_ptr(), 3, null(), null(), 0, null_mut()),
        VALORI_MISUSE
    );
    // An out-parameter one byte off its alignment is refused, not written.
    let mut raw = [SENT; 2];
    let odd = misaligned(&mut raw).cast::<u64>();
    assert_eq!(
        valori_kernel_insert(k, v.as_ptr(), 3, null(), null(), 0, odd),
        VALORI_MISUSE
    );
    assert_eq!(raw, [SENT; 2]);
    assert_eq!(
        valori_kernel_insert(k, v.as_ptr(), 2, null(), null(), 0, &mut id),
        VALORI_DIMENSION
    );
    let nan = [f32::NAN, 0.0, 0.0];
    assert_eq!(
        valori_kernel_insert(k, nan.as_ptr(), 3, null(), null(), 0, &mut id),
        VALORI_INVALID_INPUT_NOT_FINITE
    );
    assert_eq!(id, SENT, "out_id written on failure");
    let empty = hash(k);

    // (NULL, 0) is an empty input.
    assert_eq!(
        valori_kernel_insert(k, v.as_ptr(), 3, &tag, null(), 0, &mut id),
        VALORI_OK
    );
    assert_eq!(id, 0);
    assert_ne!(hash(k), empty);
    let meta = *b"meta";
    assert_eq!(
        valori_kernel_insert(k, v.as_ptr(), 3, null(), meta.as_ptr(), 4, &mut id),
        VALORI_OK
    );
    assert_eq!(id, 1);
    assert_eq!(valori_kernel_set_meta(k, 0, null(), 3), VALORI_MISUSE);
    assert_eq!(valori_kernel_set_meta(k, 0, null(), 0), VALORI_OK);
    assert_eq!(valori_kernel_set_tag(k, 0, null()), VALORI_OK);
    assert_eq!(valori_kernel_delete(k, 99), VALORI_NOT_FOUND_RECORD);

    let mut node = SENT;
    let label = *b"robot";
    assert_eq!(
        valori_kernel_create_node(k, 1, null(), null(), 2, &mut node),
        VALORI_MISUSE
    );
    assert_eq!(
        valori_kernel_create_node(k, 1, &id, label.as_ptr(), label.len(), &mut node),
        VALORI_OK
    );
    let mut other = SENT;
    assert_eq!(
        valori_kernel_create_node(k, 1, null(), null(), 0, &mut other),
        VALORI_OK
    );
    let mut edge = SENT;
    let w = 0.25f32;
    assert_eq!(
        valori_kernel_create_edge(k, 2, node, other, &w, null_mut()),
        VALORI_MISUSE
    );
    assert_eq!(
        valori_kernel_create_edge(k, 2, node, other, &w, &mut edge),
        VALORI_OK
    );
    assert_eq!(
        valori_kernel_delete_edge(k, edge + 1),
        VALORI_NOT_FOUND_EDGE
    );

    // Garbage and empty commands are damage, and change nothing.
    let before = hash(k);
    assert_eq!(valori_kernel_apply(k, null(), 4), VALORI_MISUSE);
    assert_eq!(valori_kernel_apply(k, null(), 0), VALORI_CORRUPT);
    let junk = [0xffu8; 9];
    assert_eq!(
        valori_kernel_apply(k, junk.as_ptr(), junk.len()),
        VALORI_CORRUPT
    );
    assert_eq!(hash(k), before);
}

#[test]
fn reads_write_only_on_success() {
    let mut mem = Vec::new();
    let k = init(&config(), &mut mem, 5);
    let v = [1.0f32, 2.0, 3.0];
    let meta = *b"abcdef";
    let mut id = SENT;
    for _ in 0..3 {
        assert_eq!(
            valori_kernel_insert(k, v.as_ptr(), 3, null(), meta.as_ptr(), meta.len(), &mut id),
            VALORI_OK
        );
    }

    // Search: size query with (NULL, 0), a short buffer, the exact one.
    let mut len = SENT_LEN;
    let rc = valori_kernel_search(k, v.as_ptr(), 3, 3, null(), null_mut(), 0, &mut len);
    assert_eq!((rc, len), (VALORI_INSUFFICIENT_SIZE, 3));
    let mut hits = [HIT; 4];
    let mut len = SENT_LEN;
    let rc = valori_kernel_search(
        k,
        v.as_ptr(),
        3,
        3,
        null(),
        hits.as_mut_ptr().cast(),
        2,
        &mut len,
    );
    assert_eq!((rc, len), (VALORI_INSUFFICIENT_SIZE, 3));
    assert_eq!(hits, [HIT; 4], "hits written on INSUFFICIENT_SIZE");
    let rc = valori_kernel_search(
        k,
        v.as_ptr(),
        3,
        0,
        null(),
        hits.as_mut_ptr().cast(),
        4,
        &mut len,
    );
    assert_eq!(rc, VALORI_INVALID_INPUT_ZERO_K);
    assert_eq!(hits, [HIT; 4]);
    let rc = valori_kernel_search(k, v.as_ptr(), 3, 3, null(), null_mut(), 4, &mut len);
    assert_eq!(rc, VALORI_MISUSE, "NULL buffer with a capacity");
    let rc = valori_kernel_search(
        k,
        v.as_ptr(),
        3,
        3,
        null(),
        hits.as_mut_ptr().cast(),
        4,
        null_mut(),
    );
    assert_eq!(rc, VALORI_MISUSE);
    let mut raw = [SENT; 2];
    let odd = misaligned(&mut raw).cast::<usize>();
    let rc = valori_kernel_search(
        k,
        v.as_ptr(),
        3,
        3,
        null(),
        hits.as_mut_ptr().cast(),
        4,
        odd,
    );
    assert_eq!(rc, VALORI_MISUSE);
    assert_eq!(raw, [SENT; 2]);
    let mut len = SENT_LEN;
    let rc = valori_kernel_search(
        k,
        v.as_ptr(),
        3,
        3,
        null(),
        hits.as_mut_ptr().cast(),
        4,
        &mut len,
    );
    assert_eq!((rc, len), (VALORI_OK, 3));
    assert_eq!(hits[0].id, 0);
    assert_eq!(hits[3], HIT, "written past out_len");
    let q = [65536i32, 2 * 65536, 3 * 65536];
    let mut raw_hits = [HIT; 4];
    let rc = valori_kernel_search_raw(
        k,
        q.as_ptr(),
        3,
        3,
        null(),
        raw_hits.as_mut_ptr().cast(),
        4,
        &mut len,
    );
    assert_eq!((rc, len), (VALORI_OK, 3));
    assert_eq!(raw_hits, hits);

    // Metadata and vectors.
    let mut out = [0xa5u8; 8];
    let mut len = SENT_LEN;
    assert_eq!(
        valori_kernel_get_meta(k, 0, out.as_mut_ptr(), 5, &mut len),
        VALORI_INSUFFICIENT_SIZE
    );
    assert_eq!((len, out), (6, [0xa5; 8]));
    assert_eq!(
        valori_kernel_get_meta(k, 0, out.as_mut_ptr(), 8, &mut len),
        VALORI_OK
    );
    assert_eq!(
        (len, &out[..6], &out[6..]),
        (6, &meta[..], &[0xa5u8, 0xa5][..])
    );
    assert_eq!(
        valori_kernel_get_meta(k, 42, out.as_mut_ptr(), 8, &mut len),
        VALORI_NOT_FOUND_RECORD
    );
    let mut vec_out = [f32::MAX; 3];
    let mut len = SENT_LEN;
    assert_eq!(
        valori_kernel_get_vector(k, 1, vec_out.as_mut_ptr(), 2, &mut len),
        VALORI_INSUFFICIENT_SIZE
    );
    assert_eq!((len, vec_out), (3, [f32::MAX; 3]));
    assert_eq!(
        valori_kernel_get_vector(k, 1, vec_out.as_mut_ptr(), 3, &mut len),
        VALORI_OK
    );
    assert_eq!(vec_out, v);
    let (mut tag, mut has) = (SENT, 7 as c_int);
    assert_eq!(
        valori_kernel_get_tag(k, 1, null_mut(), &mut has),
        VALORI_MISUSE
    );
    assert_eq!(
        valori_kernel_get_tag(k, 1, &mut tag, null_mut()),
        VALORI_MISUSE
    );
    assert_eq!(valori_kernel_get_tag(k, 1, &mut tag, &mut has), VALORI_OK);
    assert_eq!((tag, has), (0, 0));
    let mut count = SENT;
    assert_eq!(valori_kernel_count(k, null_mut()), VALORI_MISUSE);
    assert_eq!(valori_kernel_count(k, &mut count), VALORI_OK);
    assert_eq!(count, 3);
    assert_eq!(valori_kernel_state_hash(k, null_mut()), VALORI_MISUSE);
}

#[test]
fn graph_reads_with_short_buffers() {
    let mut mem = Vec::new();
    let k = init(&config(), &mut mem, 1);
    let mut nodes = [SENT; 3];
    for n in &mut nodes {
        assert_eq!(
            valori_kernel_create_node(k, 0, null(), null(), 0, n),
            VALORI_OK
        );
    }
    let mut e = SENT;
    for (from, to) in [(0, 1), (1, 2), (0, 2)] {
        assert_eq!(
            valori_kernel_create_edge(k, 1, nodes[from], nodes[to], null(), &mut e),
            VALORI_OK
        );
    }
    let blank = Edge {
        id: SENT,
        from: SENT,
        to: SENT,
        kind: 9,
        has_weight: 9,
        weight: -1.0,
    };
    let mut edges = [blank; 3];
    let mut len = SENT_LEN;
    let rc = valori_kernel_neighbors(
        k,
        nodes[0],
        VALORI_DIRECTION_OUT,
        edges.as_mut_ptr().cast(),
        1,
        &mut len,
    );
    assert_eq!((rc, len), (VALORI_INSUFFICIENT_SIZE, 2));
    assert_eq!(edges, [blank; 3]);
    let rc = valori_kernel_neighbors(k, nodes[0], 7, edges.as_mut_ptr().cast(), 3, &mut len);
    assert_eq!(rc, VALORI_INVALID_INPUT);
    let rc = valori_kernel_neighbors(
        k,
        nodes[0],
        VALORI_DIRECTION_BOTH,
        edges.as_mut_ptr().cast(),
        3,
        &mut len,
    );
    assert_eq!((rc, len), (VALORI_OK, 2));
    assert_eq!(edges[2], blank);

    let blank = Hop {
        node: SENT,
        depth: 9,
        reserved: 9,
    };
    let mut hops = [blank; 4];
    let mut len = SENT_LEN;
    let rc = valori_kernel_traverse(
        k,
        nodes[0],
        2,
        VALORI_DIRECTION_OUT,
        null(),
        hops.as_mut_ptr().cast(),
        1,
        &mut len,
    );
    assert_eq!((rc, len), (VALORI_INSUFFICIENT_SIZE, 2));
    assert_eq!(hops, [blank; 4], "hops written on INSUFFICIENT_SIZE");
    let rc = valori_kernel_traverse(
        k,
        nodes[0],
        2,
        VALORI_DIRECTION_OUT,
        null(),
        null_mut(),
        2,
        &mut len,
    );
    assert_eq!(rc, VALORI_MISUSE);
    let kind = 1u32;
    let rc = valori_kernel_traverse(
        k,
        nodes[0],
        2,
        VALORI_DIRECTION_OUT,
        &kind,
        hops.as_mut_ptr().cast(),
        2,
        &mut len,
    );
    assert_eq!((rc, len), (VALORI_OK, 2));
    assert_eq!((hops[0].node, hops[0].depth), (nodes[1], 1));
    assert_eq!((hops[1].node, hops[1].depth), (nodes[2], 1));
    assert_eq!(hops[3], blank);
    assert_eq!(valori_kernel_delete_node(k, nodes[1]), VALORI_OK);
    assert_eq!(
        valori_kernel_delete_node(k, nodes[1]),
        VALORI_NOT_FOUND_NODE
    );
}

#[test]
fn snapshot_and_restore_into_other_memory() {
    let cfg = config();
    let mut mem = Vec::new();
    let k = init(&cfg, &mut mem, 2);
    let v = [0.25f32, 0.5, -0.75];
    let mut id = SENT;
    assert_eq!(
        valori_kernel_insert(k, v.as_ptr(), 3, null(), b"m".as_ptr(), 1, &mut id),
        VALORI_OK
    );
    let mut n = SENT_LEN;
    assert_eq!(
        valori_kernel_snapshot(k, null_mut(), 0, &mut n),
        VALORI_INSUFFICIENT_SIZE
    );
    let mut snap = vec![0xa5u8; n + 2];
    let mut short_len = SENT_LEN;
    assert_eq!(
        valori_kernel_snapshot(k, snap.as_mut_ptr(), n - 1, &mut short_len),
        VALORI_INSUFFICIENT_SIZE
    );
    assert_eq!(short_len, n);
    assert!(
        snap.iter().all(|&b| b == 0xa5),
        "short snapshot buffer written"
    );
    let mut len = SENT_LEN;
    assert_eq!(
        valori_kernel_snapshot(k, snap.as_mut_ptr(), snap.len(), &mut len),
        VALORI_OK
    );
    assert_eq!(len, n);
    assert_eq!(&snap[n..], &[0xa5, 0xa5]);
    snap.truncate(n);

    let mut size = SENT_LEN;
    assert_eq!(valori_kernel_mem_size(&cfg, &mut size), VALORI_OK);
    let mut mem2 = vec![0u8; size + 7];
    let base = mem2[7..].as_mut_ptr().cast::<c_void>();
    let mut r = null_mut();
    for cut in [0, 1, n / 2, n - 1] {
        assert_eq!(
            valori_kernel_restore(&cfg, snap.as_ptr(), cut, base, size, &mut r),
            VALORI_CORRUPT,
            "a snapshot cut at {cut}"
        );
    }
    let mut flipped = snap.clone();
    flipped[n / 2] ^= 1;
    assert_eq!(
        valori_kernel_restore(&cfg, flipped.as_ptr(), n, base, size, &mut r),
        VALORI_CORRUPT
    );
    assert_eq!(
        valori_kernel_restore(&cfg, null(), n, base, size, &mut r),
        VALORI_MISUSE
    );
    let small = valori_kernel_config {
        max_records: 0,
        ..cfg
    };
    let mut small_size = SENT_LEN;
    assert_eq!(valori_kernel_mem_size(&small, &mut small_size), VALORI_OK);
    assert_eq!(
        valori_kernel_restore(&small, snap.as_ptr(), n, base, small_size, &mut r),
        VALORI_FULL_RECORDS
    );
    assert!(r.is_null(), "out_kernel written on failure");
    assert_eq!(
        valori_kernel_restore(&cfg, snap.as_ptr(), n, base, size, &mut r),
        VALORI_OK
    );
    assert_eq!(hash(r), hash(k));
    let mut again = vec![0u8; n];
    assert_eq!(
        valori_kernel_snapshot(r, again.as_mut_ptr(), n, &mut len),
        VALORI_OK
    );
    assert_eq!(again, snap);
}

#[test]
fn a_null_handle_is_misuse_everywhere() {
    let k: *mut valori_kernel = null_mut();
    let v = [0.0f32; 3];
    let q = [0i32; 3];
    let (mut id, mut len, mut has) = (SENT, SENT_LEN, 0 as c_int);
    let mut h = [0u8; 32];
    let mut hits = [HIT; 1];
    let mut buf = [0u8; 8];
    let mut fl = [0f32; 3];
    let rcs = [
        valori_kernel_insert(k, v.as_ptr(), 3, null(), null(), 0, &mut id),
        valori_kernel_apply(k, buf.as_ptr(), 1),
        valori_kernel_delete(k, 0),
        valori_kernel_set_meta(k, 0, null(), 0),
        valori_kernel_set_tag(k, 0, null()),
        valori_kernel_create_node(k, 0, null(), null(), 0, &mut id),
        valori_kernel_delete_node(k, 0),
        valori_kernel_create_edge(k, 0, 0, 0, null(), &mut id),
        valori_kernel_delete_edge(k, 0),
        valori_kernel_search(
            k,
            v.as_ptr(),
            3,
            1,
            null(),
            hits.as_mut_ptr().cast(),
            1,
            &mut len,
        ),
        valori_kernel_search_raw(
            k,
            q.as_ptr(),
            3,
            1,
            null(),
            hits.as_mut_ptr().cast(),
            1,
            &mut len,
        ),
        valori_kernel_neighbors(k, 0, 0, null_mut(), 0, &mut len),
        valori_kernel_traverse(k, 0, 1, 0, null(), null_mut(), 0, &mut len),
        valori_kernel_count(k, &mut id),
        valori_kernel_state_hash(k, h.as_mut_ptr()),
        valori_kernel_snapshot(k, buf.as_mut_ptr(), 8, &mut len),
        valori_kernel_get_vector(k, 0, fl.as_mut_ptr(), 3, &mut len),
        valori_kernel_get_meta(k, 0, buf.as_mut_ptr(), 8, &mut len),
        valori_kernel_get_tag(k, 0, &mut id, &mut has),
    ];
    assert!(rcs.iter().all(|&rc| rc == VALORI_MISUSE), "{rcs:?}");
    assert_eq!((id, len, has), (SENT, SENT_LEN, 0));
}

#[test]
fn hosted_entry_points_without_files() {
    let mut db = null_mut();
    assert_eq!(valori_open(null(), null(), &mut db), VALORI_MISUSE);
    assert!(db.is_null());
    // SAFETY: valori_errmsg returns a NUL-terminated string.
    let msg = unsafe { CStr::from_ptr(valori_errmsg(null())) };
    assert!(!msg.to_bytes().is_empty(), "no message for a failed open");
    assert_eq!(
        valori_open(c"/nonexistent".as_ptr(), null(), null_mut()),
        VALORI_MISUSE
    );
    assert_eq!(valori_close(null_mut()), VALORI_OK);
    assert_eq!(valori_close(&mut db), VALORI_OK);
    assert_eq!(valori_options_init(null_mut()), VALORI_MISUSE);
    let mut h = [0xa5u8; 32];
    assert_eq!(valori_replay(null(), 4, h.as_mut_ptr()), VALORI_MISUSE);
    let junk = *b"VLRX\x01\0\0\0 not an export";
    assert_eq!(
        valori_replay(junk.as_ptr(), junk.len(), h.as_mut_ptr()),
        VALORI_CORRUPT
    );
    assert_eq!(
        valori_replay(junk.as_ptr(), junk.len(), null_mut()),
        VALORI_MISUSE
    );
    assert_eq!(h, [0xa5; 32], "hash written on failure");
    let mut n = 0u64;
    assert_eq!(valori_count(null(), &mut n), VALORI_MISUSE);
    // SAFETY: static NUL-terminated strings.
    unsafe {
        assert!(!CStr::from_ptr(valori_errstr(-1)).to_bytes().is_empty());
        assert!(!CStr::from_ptr(valori_libversion()).to_bytes().is_empty());
    }
}

/// The hosted database through its C entry points: open, write, read with short buffers,
/// export and replay, close. Under Miri it needs the file system
/// (`MIRIFLAGS=-Zmiri-disable-isolation`, as the CI leg sets).
#[test]
fn hosted_database_round_trip() {
    let dir = std::env::temp_dir().join(format!("valori-miri-ffi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = std::ffi::CString::new(dir.to_string_lossy().into_owned()).unwrap();
    let mut opts = core::mem::MaybeUninit::<valori_options>::uninit();
    assert_eq!(valori_options_init(opts.as_mut_ptr()), VALORI_OK);
    // SAFETY: valori_options_init filled every field.
    let mut opts = unsafe { opts.assume_init() };
    opts.dim = 2;
    opts.durability = VALORI_DURABILITY_NONE;
    let mut db = null_mut();
    assert_eq!(valori_open(path.as_ptr(), &opts, &mut db), VALORI_OK);
    let v = [1.0f32, -1.0];
    let mut id = SENT;
    assert_eq!(
        valori_insert(db, v.as_ptr(), 2, null(), b"x".as_ptr(), 1, &mut id),
        VALORI_OK
    );
    assert_eq!(
        valori_insert(db, v.as_ptr(), 1, null(), null(), 0, &mut id),
        VALORI_DIMENSION
    );
    // SAFETY: valori_errmsg returns a NUL-terminated string.
    let msg = unsafe { CStr::from_ptr(valori_errmsg(db)) };
    assert!(!msg.to_bytes().is_empty(), "no message for a failed call");
    let mut hits = [HIT; 2];
    let mut len = SENT_LEN;
    let rc = valori_search(
        db,
        v.as_ptr(),
        2,
        5,
        null(),
        hits.as_mut_ptr().cast(),
        0,
        &mut len,
    );
    assert_eq!((rc, len), (VALORI_INSUFFICIENT_SIZE, 1));
    assert_eq!(hits, [HIT; 2]);
    let rc = valori_search(
        db,
        v.as_ptr(),
        2,
        5,
        null(),
        hits.as_mut_ptr().cast(),
        2,
        &mut len,
    );
    assert_eq!((rc, len, hits[0].id, hits[1]), (VALORI_OK, 1, 0, HIT));
    let mut n = SENT_LEN;
    assert_eq!(
        valori_export(db, null_mut(), 0, &mut n),
        VALORI_INSUFFICIENT_SIZE
    );
    let mut export = vec![0u8; n];
    assert_eq!(valori_export(db, export.as_mut_ptr(), n, &mut n), VALORI_OK);
    let (mut h, mut replayed) = ([0u8; 32], [0u8; 32]);
    assert_eq!(valori_state_hash(db, h.as_mut_ptr()), VALORI_OK);
    assert_eq!(
        valori_replay(export.as_ptr(), n, replayed.as_mut_ptr()),
        VALORI_OK
    );
    assert_eq!(h, replayed);
    assert_eq!(valori_close(&mut db), VALORI_OK);
    assert!(db.is_null());
    let _ = std::fs::remove_dir_all(&dir);
}
