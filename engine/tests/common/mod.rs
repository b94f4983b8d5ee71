//! A scripted workload and its reference hashes, shared by the crash tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::Arc;
use valori_engine::sim::SimStorage;
use valori_engine::{Engine, Options, Storage};
use valori_kernel::{Command, Config, Fxp, Kernel, Metric, Words};

pub const DIM: u32 = 4;

/// One workload step: an encoded command, or a checkpoint.
#[derive(Clone, Debug)]
pub enum Step {
    Cmd(Vec<u8>),
    Checkpoint,
}

fn v(x: i32) -> Vec<Fxp> {
    (0..DIM as i32).map(|i| Fxp(x * 65536 + i * 1000)).collect()
}

/// Inserts, batches, metadata and tag updates, deletes with cascades, graph operations and
/// checkpoints; every command succeeds when applied in order.
pub fn workload() -> Vec<Step> {
    let mut s = Vec::new();
    let mut cmd = |c: Command<'_>| s.push(Step::Cmd(c.to_vec()));
    for i in 0..3 {
        let vv = v(i);
        cmd(Command::Insert {
            id: None,
            tag: Some(i as u64 % 2),
            vector: vv[..].into(),
            meta: b"observation",
        });
    }
    let batch: Vec<Fxp> = (10..14).flat_map(v).collect();
    cmd(Command::InsertBatch {
        ids: Words::EMPTY,
        tags: Words::EMPTY,
        vectors: batch[..].into(),
    });
    cmd(Command::CreateNode {
        id: None,
        kind: 1,
        record: Some(0),
        label: b"robot",
    });
    cmd(Command::CreateNode {
        id: None,
        kind: 2,
        record: Some(1),
        label: b"kitchen",
    });
    cmd(Command::CreateNode {
        id: None,
        kind: 3,
        record: None,
        label: b"",
    });
    cmd(Command::CreateEdge {
        id: None,
        kind: 1,
        from: 0,
        to: 1,
        weight: Some(Fxp(65536)),
    });
    cmd(Command::CreateEdge {
        id: None,
        kind: 1,
        from: 1,
        to: 2,
        weight: None,
    });
    let mut s2 = std::mem::take(&mut s);
    s2.push(Step::Checkpoint);
    let mut s = s2;
    let mut cmd = |c: Command<'_>| s.push(Step::Cmd(c.to_vec()));
    cmd(Command::Delete { id: 1 });
    cmd(Command::SetMeta {
        id: 0,
        meta: b"updated",
    });
    cmd(Command::SetTag {
        id: 2,
        tag: Some(9),
    });
    for i in 20..24 {
        let vv = v(i);
        cmd(Command::Insert {
            id: Some(100 + i as u64),
            tag: None,
            vector: vv[..].into(),
            meta: b"",
        });
    }
    cmd(Command::CreateEdge {
        id: None,
        kind: 2,
        from: 2,
        to: 0,
        weight: Some(Fxp(-3)),
    });
    cmd(Command::CreateEdge {
        id: None,
        kind: 2,
        from: 0,
        to: 2,
        weight: None,
    });
    cmd(Command::DeleteEdge { id: 2 });
    let batch: Vec<Fxp> = (30..36).flat_map(v).collect();
    let tags = [1u64, 2, 3, 4, 5, 6];
    cmd(Command::InsertBatch {
        ids: Words::EMPTY,
        tags: Words::Native(&tags),
        vectors: batch[..].into(),
    });
    let mut s2 = std::mem::take(&mut s);
    s2.push(Step::Checkpoint);
    let mut s = s2;
    let mut cmd = |c: Command<'_>| s.push(Step::Cmd(c.to_vec()));
    cmd(Command::DeleteNode { id: 0 });
    cmd(Command::Delete { id: 121 });
    for i in 40..46 {
        let vv = v(i);
        cmd(Command::Insert {
            id: None,
            tag: Some(7),
            vector: vv[..].into(),
            meta: b"late",
        });
    }
    cmd(Command::Delete { id: 0 });
    s
}

/// `hashes[k]`: the state hash after the first `k` commands of the workload.
pub fn reference_hashes(steps: &[Step]) -> Vec<[u8; 32]> {
    let mut k = Kernel::new(Config::new(DIM, Metric::L2).unwrap()).unwrap();
    let mut out = vec![k.state_hash()];
    for s in steps {
        if let Step::Cmd(b) = s {
            k.apply(&Command::decode(b).unwrap()).unwrap();
            out.push(k.state_hash());
        }
    }
    out
}

pub fn options() -> Options {
    // A small threshold so automatic checkpoints happen inside the workload too.
    Options::new(DIM, Metric::L2).checkpoint_wal_bytes(700)
}

/// `marker = acknowledged << 32 | issued`.
pub fn marker(acked: u64, issued: u64) -> u64 {
    acked << 32 | issued
}

/// Runs the workload on `storage`, keeping `sim`'s marker current; stops at the first error.
/// Returns (acknowledged, issued) commands.
pub fn run(
    storage: Arc<dyn Storage>,
    sim: Option<&SimStorage>,
    dir: &Path,
    steps: &[Step],
) -> (u64, u64, Option<valori_engine::Error>) {
    let set = |a, i| {
        if let Some(s) = sim {
            s.set_marker(marker(a, i));
        }
    };
    let db = match Engine::open_with_storage(dir, options(), storage) {
        Ok(db) => db,
        Err(e) => return (0, 0, Some(e)),
    };
    let (mut acked, mut issued) = (0u64, 0u64);
    for s in steps {
        let r = match s {
            Step::Cmd(b) => {
                issued += 1;
                set(acked, issued);
                db.apply(&Command::decode(b).unwrap()).map(|_| {
                    acked += 1;
                    set(acked, issued);
                })
            }
            Step::Checkpoint => db.checkpoint(),
        };
        if let Err(e) = r {
            // A failed write or fsync poisons the handle: it refuses all further work.
            if matches!(e, valori_engine::Error::Io { .. }) {
                let after = db.search(&[0.0; DIM as usize], 1, None);
                assert!(
                    matches!(after, Err(valori_engine::Error::Poisoned)),
                    "not poisoned after {e}: {after:?}"
                );
            }
            return (acked, issued, Some(e));
        }
    }
    if let Err(e) = db.close() {
        return (acked, issued, Some(e));
    }
    (acked, issued, None)
}

/// The k in `acked..=issued` whose reference hash equals `hash`.
pub fn matching_prefix(
    hashes: &[[u8; 32]],
    hash: &[u8; 32],
    acked: u64,
    issued: u64,
) -> Option<u64> {
    (acked..=issued).find(|&k| hashes.get(k as usize) == Some(hash))
}
