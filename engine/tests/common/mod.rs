//! Workloads for the crash tests and the oracles that judge a recovered state: a scripted
//! single-threaded workload with its reference hashes, and a concurrent one whose log order is
//! read back from the WAL and whose acknowledgments are recorded per thread.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use valori_engine::sim::{DiskState, SimStorage};
use valori_engine::wal::check_segment;
use valori_engine::{Durability, Engine, Options, Storage};
use valori_kernel::{Applied, Command, Config, Fxp, Kernel, Metric, Words};

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

/// Whether a path names a WAL segment.
pub fn is_segment(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "log")
}

/// One record of a WAL segment, located as `docs/FORMAT.md` §8 lays it out.
#[derive(Clone, Debug)]
pub struct Logged {
    pub seq: u64,
    /// Offset of its header in the segment.
    pub offset: usize,
    /// Offset one past its chain value.
    pub end: usize,
    pub payload: Vec<u8>,
}

/// The whole records of an undamaged segment's bytes, by the layout of §8 alone (the checks
/// are `check_segment`'s job; callers compare their count with it).
pub fn wal_records(bytes: &[u8]) -> Vec<Logged> {
    let mut out = Vec::new();
    let mut pos = 64;
    while bytes.len() >= pos + 24 && &bytes[pos..pos + 4] == b"VLRR" {
        // The low 31 bits: bit 31 is the fence flag (WAL version 2).
        let len = (u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap())
            & !valori_engine::wal::RECORD_FENCE) as usize;
        let seq = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
        let end = pos + 24 + len + 32;
        if end > bytes.len() {
            break;
        }
        out.push(Logged {
            seq,
            offset: pos,
            end,
            payload: bytes[pos + 24..pos + 24 + len].to_vec(),
        });
        pos = end;
    }
    out
}

/// The last WAL segment (by name) among `files` and its bytes.
pub fn last_segment(files: &BTreeMap<PathBuf, Vec<u8>>) -> Option<(&PathBuf, &Vec<u8>)> {
    files.iter().rfind(|(p, _)| is_segment(p))
}

/// Writer threads of the concurrent workload.
pub const THREADS: usize = 3;

/// Options of the concurrent workload: small automatic checkpoints, the given durability.
pub fn threaded_options(mode: Durability) -> Options {
    Options::new(DIM, Metric::L2)
        .durability(mode)
        .checkpoint_wal_bytes(4096)
}

/// How far the writer threads had got at one moment: a sync point's marker indexes a list of
/// these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Per thread, commands acknowledged.
    pub acked: [u32; THREADS],
    /// Per thread, commands that must survive a power loss: with `Fsync` and `GroupCommit`
    /// every acknowledged one; with `None` those acknowledged before a flush or checkpoint
    /// started that has since returned (docs/FORMAT.md §11).
    pub durable: [u32; THREADS],
}

/// Records each acknowledgment as a new [`Progress`] and points the disk's marker at it, so
/// every sync point knows what had been acknowledged when it was taken.
pub struct Oracle {
    sim: SimStorage,
    fsynced: bool,
    progress: Mutex<Vec<Progress>>,
}

impl Oracle {
    pub fn new(sim: &SimStorage, mode: Durability) -> Oracle {
        sim.set_marker(0);
        Oracle {
            sim: sim.clone(),
            fsynced: mode != Durability::None,
            progress: Mutex::new(vec![Progress::default()]),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        let mut all = self.progress.lock().unwrap();
        let mut p = *all.last().unwrap();
        f(&mut p);
        all.push(p);
        // Under the lock, so markers only grow.
        self.sim.set_marker(all.len() as u64 - 1);
    }

    /// Thread `t` had its next command acknowledged.
    pub fn ack(&self, t: usize) {
        let fsynced = self.fsynced;
        self.update(|p| {
            p.acked[t] += 1;
            if fsynced {
                p.durable[t] = p.acked[t];
            }
        });
    }

    /// A flush or checkpoint that started at `before` returned: what was acknowledged then
    /// is durable.
    pub fn durable_through(&self, before: Progress) {
        self.update(|p| {
            for t in 0..THREADS {
                p.durable[t] = p.durable[t].max(before.acked[t]);
            }
        });
    }

    pub fn now(&self) -> Progress {
        *self.progress.lock().unwrap().last().unwrap()
    }

    pub fn history(&self) -> Vec<Progress> {
        self.progress.lock().unwrap().clone()
    }
}

/// The objects one writer thread created and still owns: every command it issues touches
/// only these, so each succeeds in any interleaving with the other threads.
#[derive(Default)]
struct Owned {
    records: Vec<u64>,
    nodes: Vec<u64>,
    edges: Vec<u64>,
}

/// What a command's result adds to or removes from the thread's objects.
enum Effect {
    Record,
    Records,
    Node,
    Edge,
    RemoveRecord,
    RemoveEdge,
    RemoveNode,
    Nothing,
}

/// Command `j` of thread `t`: inserts (every other one with 700 bytes of metadata, so records
/// cross 512-byte sectors), batches, metadata and tag updates, deletes, graph nodes and
/// edges. Every payload is unique (it names `t` and `j` or an id used once), so the log order
/// maps back to who issued what.
fn thread_command(t: usize, j: u32, own: &Owned) -> (Vec<u8>, Effect) {
    let u = (t as u32 + 1) * 10_000 + j;
    let row = |r: u32| -> Vec<Fxp> { (0..DIM).map(|i| Fxp((u * 16 + r * 4 + i) as i32)).collect() };
    let label = format!("t{t} j{j}");
    let long = format!("{label} {}", "m".repeat(700));
    let meta = if j % 16 < 8 { &long } else { &label };
    let mut rule = j % 8;
    if own.records.len() < 2 && matches!(rule, 2 | 5 | 6) {
        rule = 0;
    }
    if own.nodes.is_empty() && rule == 4 {
        rule = 3;
    }
    let (cmd, effect) = match rule {
        0 => {
            let v = row(0);
            let c = Command::Insert {
                id: None,
                tag: Some(t as u64),
                vector: v[..].into(),
                meta: meta.as_bytes(),
            };
            (c.to_vec(), Effect::Record)
        }
        1 => {
            let v: Vec<Fxp> = (0..3).flat_map(row).collect();
            let tags = [u64::from(u); 3];
            let c = Command::InsertBatch {
                ids: Words::EMPTY,
                tags: Words::Native(&tags),
                vectors: v[..].into(),
            };
            (c.to_vec(), Effect::Records)
        }
        2 => {
            let id = own.records[j as usize % own.records.len()];
            let c = Command::SetMeta {
                id,
                meta: meta.as_bytes(),
            };
            (c.to_vec(), Effect::Nothing)
        }
        3 => {
            let c = Command::CreateNode {
                id: None,
                kind: u,
                record: None,
                label: label.as_bytes(),
            };
            (c.to_vec(), Effect::Node)
        }
        4 => {
            let c = Command::CreateEdge {
                id: None,
                kind: u,
                from: *own.nodes.last().unwrap(),
                to: own.nodes[0],
                weight: Some(Fxp(u as i32)),
            };
            (c.to_vec(), Effect::Edge)
        }
        5 => {
            let id = own.records[own.records.len() / 2];
            let c = Command::SetTag {
                id,
                tag: Some(u64::from(u)),
            };
            (c.to_vec(), Effect::Nothing)
        }
        6 => {
            let c = Command::Delete { id: own.records[0] };
            (c.to_vec(), Effect::RemoveRecord)
        }
        _ => match (own.edges.first(), own.nodes.first()) {
            (Some(&id), _) => (Command::DeleteEdge { id }.to_vec(), Effect::RemoveEdge),
            (None, Some(&id)) if own.nodes.len() > 1 => {
                (Command::DeleteNode { id }.to_vec(), Effect::RemoveNode)
            }
            _ => {
                let c = Command::CreateNode {
                    id: None,
                    kind: u,
                    record: None,
                    label: label.as_bytes(),
                };
                (c.to_vec(), Effect::Node)
            }
        },
    };
    (cmd, effect)
}

impl Owned {
    fn apply(&mut self, effect: Effect, applied: Applied) {
        match (effect, applied) {
            (Effect::Record, Applied::Created(id)) => self.records.push(id),
            (Effect::Records, Applied::Batch { first_id, count }) => {
                self.records.extend(first_id..first_id + count)
            }
            (Effect::Node, Applied::Created(id)) => self.nodes.push(id),
            (Effect::Edge, Applied::Created(id)) => self.edges.push(id),
            (Effect::RemoveRecord, _) => {
                self.records.remove(0);
            }
            (Effect::RemoveEdge, _) => {
                self.edges.remove(0);
            }
            (Effect::RemoveNode, _) => {
                // Its edges went with it.
                self.nodes.remove(0);
                self.edges.clear();
            }
            (Effect::Nothing, _) => {}
            (_, other) => panic!("unexpected result {other:?}"),
        }
    }
}

/// What a concurrent run issued and when each command was acknowledged.
pub struct ThreadedRun {
    /// Per thread, the encoded commands it issued, in its order (all acknowledged).
    pub issued: Vec<Vec<Vec<u8>>>,
    /// Every [`Progress`]; a sync point's marker indexes it.
    pub progress: Vec<Progress>,
}

/// Runs `ops` commands on each of [`THREADS`] threads sharing one engine on `sim`, recording
/// every acknowledgment in the disk's markers. The threads also flush and checkpoint now and
/// then. Every command must succeed; the engine is closed at the end.
pub fn run_threads(sim: &SimStorage, dir: &Path, mode: Durability, ops: u32) -> ThreadedRun {
    let oracle = Oracle::new(sim, mode);
    let db = Engine::open_with_storage(dir, threaded_options(mode), Arc::new(sim.clone())).unwrap();
    let issued = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (db, oracle) = (&db, &oracle);
                s.spawn(move || {
                    let mut own = Owned::default();
                    let mut issued = Vec::new();
                    for j in 0..ops {
                        let (payload, effect) = thread_command(t, j, &own);
                        let applied = db
                            .apply(&Command::decode(&payload).unwrap())
                            .unwrap_or_else(|e| panic!("thread {t} command {j}: {e}"));
                        oracle.ack(t);
                        own.apply(effect, applied);
                        issued.push(payload);
                        // Each thread flushes or checkpoints now and then, at its own
                        // moments: the only syncs `None` mode has besides automatic ones.
                        if j % 8 == 3 + t as u32 {
                            let before = oracle.now();
                            if j % 16 < 8 {
                                db.flush().unwrap();
                            } else {
                                db.checkpoint().unwrap();
                            }
                            oracle.durable_through(before);
                        }
                    }
                    issued
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    let before = oracle.now();
    db.close().unwrap();
    oracle.durable_through(before);
    ThreadedRun {
        issued,
        progress: oracle.history(),
    }
}

/// The log order of a run: `log[k - 1]` is the payload of sequence number `k`, read from
/// every WAL segment of every recorded disk state (segments are retired by checkpoints, so
/// no single state holds them all). Checks that the states agree and leave no gap.
pub fn log_order<'a>(states: impl IntoIterator<Item = &'a DiskState>) -> Vec<Vec<u8>> {
    let mut by_seq: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for state in states {
        for (path, bytes) in state.files() {
            if !is_segment(&path) {
                continue;
            }
            let records = wal_records(&bytes);
            assert_eq!(
                check_segment(&bytes),
                Ok((records.len() as u64, false)),
                "{}: the reference run left a damaged segment",
                path.display()
            );
            for r in records {
                let old = by_seq.insert(r.seq, r.payload.clone());
                assert!(
                    old.is_none_or(|o| o == r.payload),
                    "two different records {}",
                    r.seq
                );
            }
        }
    }
    let log: Vec<Vec<u8>> = by_seq.values().cloned().collect();
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=log.len() as u64).collect::<Vec<_>>(),
        "the log has gaps"
    );
    log
}

/// `pos[t][j]`: the sequence number of thread `t`'s command `j` in `log`.
pub fn positions(run: &ThreadedRun, log: &[Vec<u8>]) -> Vec<Vec<u64>> {
    let mut seq_of: BTreeMap<&[u8], u64> = BTreeMap::new();
    for (i, p) in log.iter().enumerate() {
        assert!(
            seq_of.insert(p, i as u64 + 1).is_none(),
            "two logged commands are equal: the oracle cannot tell them apart"
        );
    }
    let pos: Vec<Vec<u64>> = run
        .issued
        .iter()
        .map(|cmds| cmds.iter().map(|c| seq_of[&c[..]]).collect())
        .collect();
    assert_eq!(
        pos.iter().map(Vec::len).sum::<usize>(),
        log.len(),
        "the log holds commands nobody issued"
    );
    pos
}

/// The smallest sequence number a recovered state may have: every command counted in
/// `counts` (per thread, a prefix of its commands) is in it.
pub fn required_seq(pos: &[Vec<u64>], counts: &[u32; THREADS]) -> u64 {
    (0..THREADS)
        .filter(|&t| counts[t] > 0)
        .map(|t| pos[t][counts[t] as usize - 1])
        .max()
        .unwrap_or(0)
}

/// `hashes[k]`: the state hash after the first `k` commands of `log`.
pub fn log_hashes(log: &[Vec<u8>]) -> Vec<[u8; 32]> {
    let mut k = Kernel::new(Config::new(DIM, Metric::L2).unwrap()).unwrap();
    let mut out = vec![k.state_hash()];
    for c in log {
        k.apply(&Command::decode(c).unwrap()).unwrap();
        out.push(k.state_hash());
    }
    out
}
