//! The hosted C API (`valori_open` ... `valori_close`) driven by a short arbitrary call
//! sequence on a fresh database in a temporary directory (on /dev/shm when present;
//! durability NONE, small automatic-checkpoint thresholds), checked against a growable Rust
//! kernel by the harness in `src/lib.rs`. Special operations: `valori_insert_batch`,
//! `valori_checkpoint`, `valori_export` + `valori_replay` (the replayed hash is the state
//! hash; the export decodes and re-encodes to the same bytes), and close + reopen (the
//! state hash survives). Every failure other than misuse leaves a message in
//! `valori_errmsg`.
//!
//! Each input opens and removes a database, so this target runs far fewer executions per
//! second than the others.
#![no_main]

use arbitrary::Arbitrary;
use core::ffi::{c_int, CStr};
use core::ptr::null_mut;
use libfuzzer_sys::fuzz_target;
use std::ffi::CString;
use std::path::PathBuf;
use valori::*;
use valori_fuzz::valori_kernel::{fxp, Command, Config, Words};
use valori_fuzz::{
    check_rc, metric, valori_edge, valori_hit, valori_hop, Api, Cap, FVec, Harness, Mirror, Op,
    Special, SENT_BYTE, SENT_U64, SENT_USIZE,
};

/// At most this many operations per input: each write is a WAL append.
const MAX_OPS: usize = 48;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Dimension: `1 + n % 8`.
    dim: u8,
    /// `n % 3`.
    metric: u8,
    /// Automatic checkpoints: `n % 4` picks off, 256 B, 2 KiB, 64 KiB of WAL.
    checkpoint: u8,
    ops: Vec<Op>,
}

struct DbApi {
    db: *mut valori_db,
    path: CString,
    opts: valori_options,
}

fn dir() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("valori-fuzz-db-{}", std::process::id()))
}

impl DbApi {
    fn open(&mut self) {
        let mut db = null_mut();
        let rc = valori_open(self.path.as_ptr(), &self.opts, &mut db);
        check_rc(rc);
        assert_eq!(rc, VALORI_OK, "open: {}", errmsg(null_mut()));
        assert!(!db.is_null());
        self.db = db;
    }

    fn close(&mut self) {
        let rc = valori_close(&mut self.db);
        assert_eq!(rc, VALORI_OK);
        assert!(self.db.is_null());
    }

    fn hash(&self) -> [u8; 32] {
        let mut h = [SENT_BYTE; 32];
        assert_eq!(valori_state_hash(self.db, h.as_mut_ptr()), VALORI_OK);
        h
    }

    fn insert_batch(
        &mut self,
        rows: u8,
        v: &FVec,
        wrong_dim: Option<u8>,
        tags: Option<&Vec<u8>>,
        m: &mut Mirror,
    ) {
        let dim = m.dim;
        let n = usize::from(rows % 5);
        let pass_dim = wrong_dim.map_or(dim, |d| usize::from(d % 10));
        let flat = v.build_len(n * pass_dim);
        let tags: Option<Vec<u64>> = tags.map(|t| {
            (0..n)
                .map(|i| t.get(i).map_or(0, |x| u64::from(x % 4)))
                .collect()
        });
        let mut first = SENT_U64;
        let rc = valori_insert_batch(
            self.db,
            flat.as_ptr(),
            n,
            pass_dim,
            tags.as_ref().map_or(core::ptr::null(), |t| t.as_ptr()),
            &mut first,
        );
        self.check_failure_message(rc);
        const DIM: &[c_int] = &[VALORI_DIMENSION];
        const INVALID: &[c_int] = &[VALORI_INVALID_INPUT];
        if pass_dim != dim {
            return m.write(rc, Some(first), Err(DIM));
        }
        let q = fxp::to_vec(&flat);
        let empty = Vec::new();
        let tags = tags.as_ref().unwrap_or(&empty);
        match &q {
            Ok(q) => m.write(
                rc,
                Some(first),
                Ok(Command::InsertBatch {
                    ids: Words::EMPTY,
                    tags: Words::Native(tags),
                    vectors: q[..].into(),
                }),
            ),
            Err(_) => m.write(rc, Some(first), Err(INVALID)),
        }
    }

    fn export_replay(&mut self, cap: Cap) {
        let n = match cap {
            Cap::Plenty => 1 << 16,
            Cap::Small(n) => usize::from(n) * 16,
            _ => 0,
        };
        let mut buf = vec![SENT_BYTE; n];
        let mut len = SENT_USIZE;
        let mut rc = valori_export(self.db, buf.as_mut_ptr(), n, &mut len);
        check_rc(rc);
        if rc == VALORI_INSUFFICIENT_SIZE {
            assert!(len > n);
            assert!(
                buf.iter().all(|&b| b == SENT_BYTE),
                "export wrote a short buffer"
            );
            buf = vec![SENT_BYTE; len];
            let need = len;
            len = SENT_USIZE;
            rc = valori_export(self.db, buf.as_mut_ptr(), buf.len(), &mut len);
            assert_eq!(len, need);
        }
        assert_eq!(rc, VALORI_OK, "export: {}", errmsg(self.db));
        assert!(
            buf[len..].iter().all(|&b| b == SENT_BYTE),
            "export wrote past out_len"
        );
        buf.truncate(len);
        let ex = match valori_engine::Export::decode(&buf) {
            Ok(ex) => ex,
            Err(e) => panic!("valori_export's bytes do not decode: {e}"),
        };
        assert!(ex.encode() == buf);
        let mut h = [SENT_BYTE; 32];
        let rc = valori_replay(buf.as_ptr(), buf.len(), h.as_mut_ptr());
        assert_eq!(rc, VALORI_OK);
        assert_eq!(h, self.hash(), "replayed export hashes differently");
        // A truncated export is refused without writing the hash.
        if let Some(cut) = buf.len().checked_sub(1) {
            let mut h = [SENT_BYTE; 32];
            let rc = valori_replay(buf.as_ptr(), cut, h.as_mut_ptr());
            assert_eq!(rc, VALORI_CORRUPT);
            assert_eq!(h, [SENT_BYTE; 32]);
        }
    }
}

fn errmsg(db: *const valori_db) -> String {
    let p = valori_errmsg(db);
    assert!(!p.is_null());
    // SAFETY: valori_errmsg returns a NUL-terminated string valid until the next failure.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl Api for DbApi {
    fn null_handle() -> Self {
        DbApi {
            db: null_mut(),
            path: CString::default(),
            opts: default_options(),
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
        valori_insert(self.db, v, dim, tag, meta, meta_len, out_id)
    }
    fn delete(&mut self, id: u64) -> c_int {
        valori_delete(self.db, id)
    }
    fn set_meta(&mut self, id: u64, meta: *const u8, meta_len: usize) -> c_int {
        valori_set_meta(self.db, id, meta, meta_len)
    }
    fn set_tag(&mut self, id: u64, tag: *const u64) -> c_int {
        valori_set_tag(self.db, id, tag)
    }
    fn create_node(
        &mut self,
        kind: u32,
        record: *const u64,
        label: *const u8,
        label_len: usize,
        out_id: *mut u64,
    ) -> c_int {
        valori_create_node(self.db, kind, record, label, label_len, out_id)
    }
    fn delete_node(&mut self, id: u64) -> c_int {
        valori_delete_node(self.db, id)
    }
    fn create_edge(
        &mut self,
        kind: u32,
        from: u64,
        to: u64,
        weight: *const f32,
        out_id: *mut u64,
    ) -> c_int {
        valori_create_edge(self.db, kind, from, to, weight, out_id)
    }
    fn delete_edge(&mut self, id: u64) -> c_int {
        valori_delete_edge(self.db, id)
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
        valori_search(self.db, q, dim, k, tag, out.cast(), cap, out_len)
    }
    const HAS_SEARCH_RAW: bool = false;
    fn search_raw(
        &mut self,
        _q: *const i32,
        _dim: usize,
        _k: u32,
        _tag: *const u64,
        _out: *mut valori_hit,
        _cap: usize,
        _out_len: *mut usize,
    ) -> c_int {
        VALORI_MISUSE
    }
    fn neighbors(
        &self,
        node: u64,
        dir: u32,
        out: *mut valori_edge,
        cap: usize,
        out_len: *mut usize,
    ) -> c_int {
        valori_neighbors(self.db, node, dir, out.cast(), cap, out_len)
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
        valori_traverse(self.db, start, hops, dir, kind, out.cast(), cap, out_len)
    }
    fn count(&self, out: *mut u64) -> c_int {
        valori_count(self.db, out)
    }
    fn state_hash(&self, out: *mut u8) -> c_int {
        valori_state_hash(self.db, out)
    }
    fn get_vector(&self, id: u64, out: *mut f32, cap: usize, out_len: *mut usize) -> c_int {
        valori_get_vector(self.db, id, out, cap, out_len)
    }
    fn get_meta(&self, id: u64, out: *mut u8, cap: usize, out_len: *mut usize) -> c_int {
        valori_get_meta(self.db, id, out, cap, out_len)
    }
    fn get_tag(&self, id: u64, tag: *mut u64, has: *mut c_int) -> c_int {
        valori_get_tag(self.db, id, tag, has)
    }
    fn check_failure_message(&self, rc: c_int) {
        if !matches!(rc, VALORI_OK | VALORI_INSUFFICIENT_SIZE | VALORI_MISUSE) {
            assert!(!errmsg(self.db).is_empty(), "no message for {rc:#x}");
        }
    }
    fn special(&mut self, op: &Special, m: &mut Mirror) {
        match op {
            Special::InsertBatch {
                rows,
                v,
                wrong_dim,
                tags,
            } => self.insert_batch(*rows, v, *wrong_dim, tags.as_ref(), m),
            Special::Checkpoint => {
                let before = self.hash();
                assert_eq!(valori_checkpoint(self.db), VALORI_OK);
                assert_eq!(self.hash(), before);
            }
            Special::ExportReplay { cap } => self.export_replay(*cap),
            Special::Reopen => {
                let before = self.hash();
                self.close();
                self.open();
                assert_eq!(
                    self.hash(),
                    before,
                    "state hash changed across close + reopen"
                );
            }
            _ => {}
        }
    }
}

fn default_options() -> valori_options {
    let mut o = core::mem::MaybeUninit::<valori_options>::uninit();
    assert_eq!(valori_options_init(o.as_mut_ptr()), VALORI_OK);
    // SAFETY: valori_options_init filled every field.
    unsafe { o.assume_init() }
}

fuzz_target!(|input: Input| {
    let dim = 1 + u32::from(input.dim % 8);
    let metric_value = u32::from(input.metric % 3);
    let Some(metric) = metric(metric_value) else {
        return;
    };
    let Ok(config) = Config::new(dim, metric) else {
        return;
    };
    let path = dir();
    let _ = std::fs::remove_dir_all(&path);
    let mut opts = default_options();
    opts.dim = dim;
    opts.metric = metric_value;
    opts.durability = VALORI_DURABILITY_NONE;
    opts.checkpoint_wal_bytes = [0, 256, 2048, 65536][usize::from(input.checkpoint % 4)];
    let Ok(cpath) = CString::new(path.to_string_lossy().into_owned()) else {
        return;
    };
    let mut api = DbApi {
        db: null_mut(),
        path: cpath,
        opts,
    };
    api.open();
    let mut h = Harness {
        api,
        m: Mirror::new(config),
    };
    let ops = &input.ops[..input.ops.len().min(MAX_OPS)];
    h.run(ops);
    // The state survives a close and a reopen.
    let before = h.api.hash();
    h.api.close();
    h.api.open();
    assert_eq!(
        h.api.hash(),
        before,
        "state hash changed across close + reopen"
    );
    h.api.close();
    let _ = std::fs::remove_dir_all(&path);
});
