//! The embedded C API (`valori_kernel_*` of crate `valori-c`) driven by arbitrary call
//! sequences on a kernel in a heap buffer (any alignment, small capacities), checked against
//! a growable Rust kernel by the harness in `src/lib.rs` (result codes, outputs written only
//! on success, results equal to the mirror's, NULL/misaligned pointers are misuse). Special
//! operations: snapshot + restore into a second buffer (same hash, same bytes; changed
//! capacities fit or are `VALORI_FULL`; a wrong configuration or a truncated snapshot is
//! refused without writing the handle) and `valori_kernel_apply` on raw or well-formed
//! command bytes.
#![no_main]

use arbitrary::Arbitrary;
use core::ffi::{c_int, c_void};
use core::ptr::null_mut;
use libfuzzer_sys::fuzz_target;
use valori::*;
use valori_fuzz::valori_kernel::{Command, Config, Kernel};
use valori_fuzz::{
    check_rc, metric, primary, valori_edge, valori_hit, valori_hop, Api, Caps, Harness, Mirror, Op,
    Special, SENT_BYTE, SENT_USIZE,
};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Dimension: `1 + n % 8`; 255 is the invalid 0.
    dim: u8,
    /// `n % 4`: 3 is an invalid metric.
    metric: u8,
    caps: Caps,
    /// Misalign the buffer by `n % 8` bytes.
    offset: u8,
    ops: Vec<Op>,
}

/// A kernel handle and the buffer it lives in.
struct KernelApi {
    k: *mut valori_kernel,
    cfg: valori_kernel_config,
    /// Owns the memory `k` points into (never touched while the kernel lives).
    _mem: Vec<u8>,
}

/// A sentinel handle pointer (never dereferenced).
const SENT_PTR: *mut valori_kernel = 0x5e57_1e10 as *mut valori_kernel;

/// Allocates `mem_size + offset` bytes and initialises (or restores) a kernel at `offset`.
fn place(
    cfg: &valori_kernel_config,
    offset: usize,
    mut make: impl FnMut(*mut c_void, usize, *mut *mut valori_kernel) -> c_int,
) -> Result<(Vec<u8>, *mut valori_kernel), c_int> {
    let mut size = SENT_USIZE;
    let rc = valori_kernel_mem_size(cfg, &mut size);
    check_rc(rc);
    if rc != VALORI_OK {
        assert_eq!(size, SENT_USIZE);
        return Err(rc);
    }
    let mut mem = vec![SENT_BYTE; size + offset];
    // SAFETY: offset < mem.len() + 1.
    let base = unsafe { mem.as_mut_ptr().add(offset) }.cast::<c_void>();
    let mut out = SENT_PTR;
    // One byte short: refused, nothing written.
    let rc = make(base, size - 1, &mut out);
    check_rc(rc);
    if rc == VALORI_OK {
        panic!(
            "a kernel was placed in {} bytes, below mem_size {size}",
            size - 1
        );
    }
    assert_eq!(out, SENT_PTR);
    let rc = make(base, size, &mut out);
    check_rc(rc);
    if rc != VALORI_OK {
        assert_eq!(out, SENT_PTR, "out_kernel written on failure {rc:#x}");
        return Err(rc);
    }
    assert!(!out.is_null() && out != SENT_PTR);
    Ok((mem, out))
}

impl KernelApi {
    fn hash(&self) -> [u8; 32] {
        let mut h = [SENT_BYTE; 32];
        assert_eq!(valori_kernel_state_hash(self.k, h.as_mut_ptr()), VALORI_OK);
        h
    }

    fn snapshot_restore(
        &mut self,
        caps: Option<Caps>,
        wrong: u8,
        truncate: Option<u16>,
        switch: bool,
        offset: u8,
        m: &Mirror,
    ) {
        // Size query, then one byte short, then exact.
        let mut need = SENT_USIZE;
        let rc = valori_kernel_snapshot(self.k, null_mut(), 0, &mut need);
        assert_eq!(rc, VALORI_INSUFFICIENT_SIZE);
        let want = m.k.snapshot();
        assert_eq!(
            need,
            want.len(),
            "snapshot size differs from the mirror's snapshot"
        );
        let mut short = vec![SENT_BYTE; need - 1];
        let mut n = SENT_USIZE;
        let rc = valori_kernel_snapshot(self.k, short.as_mut_ptr(), short.len(), &mut n);
        assert_eq!((rc, n), (VALORI_INSUFFICIENT_SIZE, need));
        assert!(
            short.iter().all(|&b| b == SENT_BYTE),
            "short buffer written"
        );
        let mut snap = vec![SENT_BYTE; need + 3];
        let mut n = SENT_USIZE;
        let rc = valori_kernel_snapshot(self.k, snap.as_mut_ptr(), snap.len(), &mut n);
        assert_eq!((rc, n), (VALORI_OK, need));
        assert!(
            snap[need..].iter().all(|&b| b == SENT_BYTE),
            "written past out_len"
        );
        snap.truncate(need);
        assert!(
            snap == want,
            "snapshot bytes differ from the mirror's snapshot"
        );

        let mut cfg = self.cfg;
        if let Some(c) = caps {
            c.apply(&mut cfg);
        }
        match wrong % 3 {
            1 => cfg.dim = cfg.dim % 8 + 1,
            2 => cfg.metric = (cfg.metric + 1) % 3,
            _ => {}
        }
        let wrong_config = cfg.dim != self.cfg.dim || cfg.metric != self.cfg.metric;
        let bytes = match truncate {
            Some(t) => &snap[..usize::from(t) % snap.len()],
            None => &snap[..],
        };
        let placed = place(&cfg, usize::from(offset % 8), |mem, len, out| {
            valori_kernel_restore(&cfg, bytes.as_ptr(), bytes.len(), mem, len, out)
        });
        let k = &m.k;
        let fits = cfg.max_records as usize >= k.len()
            && cfg.max_nodes as usize >= k.node_count()
            && cfg.max_edges as usize >= k.edge_count()
            && cfg.meta_bytes as usize >= k.records().map(|r| r.meta.len()).sum::<usize>()
            && cfg.label_bytes as usize >= k.nodes().map(|n| n.label.len()).sum::<usize>();
        match placed {
            Ok((mem, handle)) => {
                assert!(truncate.is_none(), "a truncated snapshot was restored");
                assert!(
                    !wrong_config,
                    "restored under a different dimension or metric"
                );
                assert!(fits, "restored into capacities too small for the state");
                let restored = KernelApi {
                    k: handle,
                    cfg,
                    _mem: mem,
                };
                assert_eq!(
                    restored.hash(),
                    self.hash(),
                    "restored kernel's hash differs"
                );
                assert_eq!(restored.hash(), m.k.state_hash());
                if switch {
                    *self = restored;
                }
            }
            Err(rc) => {
                let p = primary(rc);
                if truncate.is_some() {
                    assert!(
                        matches!(p, VALORI_CORRUPT | VALORI_FULL) || wrong_config,
                        "truncated snapshot gave {rc:#x}"
                    );
                } else if wrong_config {
                    assert!(
                        matches!(
                            p,
                            VALORI_DIMENSION
                                | VALORI_INVALID_INPUT
                                | VALORI_FULL
                                | VALORI_INSUFFICIENT_SIZE
                        ),
                        "wrong configuration gave {rc:#x}"
                    );
                } else {
                    assert!(!fits, "a fitting snapshot was refused: {rc:#x}");
                    assert_eq!(p, VALORI_FULL, "a snapshot too big gave {rc:#x}");
                }
            }
        }
    }

    fn apply(&mut self, bytes: &[u8], m: &mut Mirror) {
        let rc = valori_kernel_apply(self.k, bytes.as_ptr(), bytes.len());
        match Command::decode(bytes) {
            Ok(cmd) => m.write(rc, None, Ok(cmd)),
            Err(_) => {
                check_rc(rc);
                assert_eq!(rc, VALORI_CORRUPT, "undecodable command gave {rc:#x}");
            }
        }
    }
}

impl Api for KernelApi {
    fn null_handle() -> Self {
        KernelApi {
            k: null_mut(),
            cfg: valori_kernel_config::default(),
            _mem: Vec::new(),
        }
    }
    fn insert(
        &mut self,
        v: *const f32,
        dim: usize,
        tag: *const u64,
        meta: *const u8,
        meta_len: usize,
        out_id: *mut u64,
    ) -> c_int {
        valori_kernel_insert(self.k, v, dim, tag, meta, meta_len, out_id)
    }
    fn delete(&mut self, id: u64) -> c_int {
        valori_kernel_delete(self.k, id)
    }
    fn set_meta(&mut self, id: u64, meta: *const u8, meta_len: usize) -> c_int {
        valori_kernel_set_meta(self.k, id, meta, meta_len)
    }
    fn set_tag(&mut self, id: u64, tag: *const u64) -> c_int {
        valori_kernel_set_tag(self.k, id, tag)
    }
    fn create_node(
        &mut self,
        kind: u32,
        record: *const u64,
        label: *const u8,
        label_len: usize,
        out_id: *mut u64,
    ) -> c_int {
        valori_kernel_create_node(self.k, kind, record, label, label_len, out_id)
    }
    fn delete_node(&mut self, id: u64) -> c_int {
        valori_kernel_delete_node(self.k, id)
    }
    fn create_edge(
        &mut self,
        kind: u32,
        from: u64,
        to: u64,
        weight: *const f32,
        out_id: *mut u64,
    ) -> c_int {
        valori_kernel_create_edge(self.k, kind, from, to, weight, out_id)
    }
    fn delete_edge(&mut self, id: u64) -> c_int {
        valori_kernel_delete_edge(self.k, id)
    }
    fn search(
        &mut self,
        q: *const f32,
        dim: usize,
        k: u32,
        tag: *const u64,
        out: *mut valori_hit,
        cap: usize,
        out_len: *mut usize,
    ) -> c_int {
        valori_kernel_search(self.k, q, dim, k, tag, out.cast(), cap, out_len)
    }
    const HAS_SEARCH_RAW: bool = true;
    fn search_raw(
        &mut self,
        q: *const i32,
        dim: usize,
        k: u32,
        tag: *const u64,
        out: *mut valori_hit,
        cap: usize,
        out_len: *mut usize,
    ) -> c_int {
        valori_kernel_search_raw(self.k, q, dim, k, tag, out.cast(), cap, out_len)
    }
    fn neighbors(
        &self,
        node: u64,
        dir: u32,
        out: *mut valori_edge,
        cap: usize,
        out_len: *mut usize,
    ) -> c_int {
        valori_kernel_neighbors(self.k, node, dir, out.cast(), cap, out_len)
    }
    fn traverse(
        &self,
        start: u64,
        hops: u32,
        dir: u32,
        kind: *const u32,
        out: *mut valori_hop,
        cap: usize,
        out_len: *mut usize,
    ) -> c_int {
        valori_kernel_traverse(self.k, start, hops, dir, kind, out.cast(), cap, out_len)
    }
    fn count(&self, out: *mut u64) -> c_int {
        valori_kernel_count(self.k, out)
    }
    fn state_hash(&self, out: *mut u8) -> c_int {
        valori_kernel_state_hash(self.k, out)
    }
    fn get_vector(&self, id: u64, out: *mut f32, cap: usize, out_len: *mut usize) -> c_int {
        valori_kernel_get_vector(self.k, id, out, cap, out_len)
    }
    fn get_meta(&self, id: u64, out: *mut u8, cap: usize, out_len: *mut usize) -> c_int {
        valori_kernel_get_meta(self.k, id, out, cap, out_len)
    }
    fn get_tag(&self, id: u64, tag: *mut u64, has: *mut c_int) -> c_int {
        valori_kernel_get_tag(self.k, id, tag, has)
    }
    fn special(&mut self, op: &Special, m: &mut Mirror) {
        match op {
            Special::SnapshotRestore {
                caps,
                wrong,
                truncate,
                switch,
                offset,
            } => self.snapshot_restore(*caps, *wrong, *truncate, *switch, *offset, m),
            Special::ApplyBytes(bytes) => self.apply(bytes, m),
            Special::ApplyCommand(c) => {
                let bytes = c.encode(m);
                self.apply(&bytes, m);
            }
            _ => {}
        }
    }
}

fuzz_target!(|input: Input| {
    let mut cfg = valori_kernel_config {
        dim: if input.dim == 255 {
            0
        } else {
            1 + u32::from(input.dim % 8)
        },
        metric: u32::from(input.metric % 4),
        ..Default::default()
    };
    input.caps.apply(&mut cfg);
    let placed = place(&cfg, usize::from(input.offset % 8), |mem, len, out| {
        valori_kernel_init(&cfg, mem, len, out)
    });
    let (mem, k) = match (placed, metric(cfg.metric)) {
        (Ok(p), Some(_)) if cfg.dim != 0 => p,
        (Err(rc), m) => {
            assert!(
                m.is_none() || cfg.dim == 0,
                "a valid configuration was refused: {rc:#x}"
            );
            assert_eq!(primary(rc), VALORI_INVALID_INPUT);
            return;
        }
        (Ok(_), _) => panic!("an invalid configuration was accepted: {cfg:?}"),
    };
    let Some(metric) = metric(cfg.metric) else {
        return;
    };
    let Ok(config) = Config::new(cfg.dim, metric) else {
        return;
    };
    let mut h = Harness {
        api: KernelApi { k, cfg, _mem: mem },
        m: Mirror::new(config),
    };
    // Sanity: both empty kernels hash alike.
    assert_eq!(
        h.api.hash(),
        Kernel::new(config)
            .map(|k| k.state_hash())
            .ok()
            .unwrap_or_default()
    );
    h.run(&input.ops);
});
