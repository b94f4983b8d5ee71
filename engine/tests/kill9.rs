//! kill -9 loop, in every durability mode: a child process runs `THREADS` writer threads on
//! one handle, each printing `ack <thread> <op>` after every acknowledged command; the parent
//! kills it (SIGKILL) at a random moment (often inside open or a checkpoint), reopens the
//! database and checks that its state is exactly every acknowledged command plus, per thread,
//! at most the one command it had in flight. A process crash loses nothing the engine
//! acknowledged, in any mode (docs/FORMAT.md §11).
//!
//! Each thread's commands are a fixed sequence with ids of its own (inserts, batches,
//! metadata and tag updates, deletes that keep the database small), so the state after any
//! interleaving is known: the kernel's state hash does not depend on the order of commands
//! that touch different ids. The parent keeps a reference kernel of what was acknowledged and
//! compares state hashes.
//!
//! The suite runs a short loop per mode (`VALORI_KILL9_CYCLES`, default 60);
//! `scripts/kill9-gate.sh` runs thousands. `VALORI_KILL9_DIR` puts the databases on another
//! file system (default: the temp directory). A failing cycle's directory is kept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use valori_engine::sim::Rng;
use valori_engine::{Durability, Engine, Options};
use valori_kernel::{Command, Config, Fxp, Kernel, Metric, Words};

const DIM: u32 = 8;
const THREADS: usize = 3;
/// Each thread deletes the records it inserted this many blocks of six commands ago.
const WINDOW: u64 = 20;
const CHILD_DIR: &str = "VALORI_KILL9_CHILD_DIR";
const CHILD_MODE: &str = "VALORI_KILL9_CHILD_MODE";
const CHILD_START: &str = "VALORI_KILL9_CHILD_START";
/// Set for the planted-bug control: the child acknowledges each command before applying it.
const CHILD_ACK_EARLY: &str = "VALORI_KILL9_CHILD_ACK_EARLY";

fn options(mode: Durability) -> Options {
    // Small checkpoints so kills also land inside checkpoints.
    Options::new(DIM, Metric::L2)
        .durability(mode)
        .checkpoint_wal_bytes(32 * 1024)
}

fn parse_mode(s: &str) -> Durability {
    match s {
        "fsync" => Durability::Fsync,
        "group" => Durability::GroupCommit,
        "none" => Durability::None,
        other => panic!("unknown durability {other:?}"),
    }
}

fn mode_name(mode: Durability) -> &'static str {
    match mode {
        Durability::Fsync => "fsync",
        Durability::GroupCommit => "group",
        Durability::None => "none",
    }
}

/// Record `i` of thread `t`: ids of different threads never meet.
fn id(t: usize, i: u64) -> u64 {
    (t as u64) << 40 | i
}

fn vector(t: usize, i: u64) -> Vec<Fxp> {
    (0..u64::from(DIM))
        .map(|c| Fxp(((t as u64 * 7919 + i * 31 + c * 7) % 100_000) as i32 * 16))
        .collect()
}

/// Command `j` of thread `t`, in blocks of six: insert (metadata of varying length, so records
/// cross sectors), a batch of two, a metadata update; then three tag updates for the first
/// `WINDOW` blocks, and afterwards three deletes of block `k - WINDOW`'s records.
fn op(t: usize, j: u64) -> Vec<u8> {
    let (k, r) = (j / 6, j % 6);
    match r {
        0 => {
            let v = vector(t, 3 * k);
            let mut meta = format!("{t}:{k}:first ").into_bytes();
            meta.resize(meta.len() + (k * 37 % 900) as usize, b'.');
            Command::Insert {
                id: Some(id(t, 3 * k)),
                tag: Some(k % 5),
                vector: v[..].into(),
                meta: &meta,
            }
            .to_vec()
        }
        1 => {
            let ids = [id(t, 3 * k + 1), id(t, 3 * k + 2)];
            let v: Vec<Fxp> = [3 * k + 1, 3 * k + 2]
                .iter()
                .flat_map(|&i| vector(t, i))
                .collect();
            Command::InsertBatch {
                ids: Words::Native(&ids),
                tags: Words::Native(&[k, k]),
                vectors: v[..].into(),
            }
            .to_vec()
        }
        2 => Command::SetMeta {
            id: id(t, 3 * k),
            meta: format!("{t}:{k}:second").as_bytes(),
        }
        .to_vec(),
        _ => {
            let s = r - 3;
            if k >= WINDOW {
                Command::Delete {
                    id: id(t, 3 * (k - WINDOW) + s),
                }
                .to_vec()
            } else {
                Command::SetTag {
                    id: id(t, 3 * k + s),
                    tag: Some(1000 * (s + 1) + k),
                }
                .to_vec()
            }
        }
    }
}

/// The child: `THREADS` writers from the commands each has applied already (`CHILD_START`),
/// printing `ack <thread> <op>` after each acknowledged command. Runs only when the parent
/// starts this test binary with the child variables set.
#[test]
#[ignore = "child process of the kill9 loops"]
fn kill9_child() {
    let dir = std::env::var(CHILD_DIR).expect("run by a kill9 loop");
    let mode = parse_mode(&std::env::var(CHILD_MODE).unwrap());
    let start: Vec<u64> = std::env::var(CHILD_START)
        .unwrap()
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let db = match Engine::open(&dir, options(mode)) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("child: open failed: {e}");
            std::process::exit(2);
        }
    };
    let early = std::env::var_os(CHILD_ACK_EARLY).is_some();
    std::thread::scope(|s| {
        for (t, &first) in start.iter().enumerate() {
            let db = &db;
            s.spawn(move || {
                for j in first.. {
                    let cmd = op(t, j);
                    if early {
                        println!("ack {t} {j}");
                    }
                    if let Err(e) = db.apply(&Command::decode(&cmd).unwrap()) {
                        eprintln!("child: thread {t} command {j}: {e}");
                        std::process::exit(2);
                    }
                    if !early {
                        println!("ack {t} {j}");
                    }
                }
            });
        }
    });
}

/// One running child and what it printed.
struct Child {
    process: std::process::Child,
    /// Per thread, the last acknowledged command (`u64::MAX`: none yet).
    acks: Arc<[AtomicU64; THREADS]>,
    lines: Arc<AtomicU64>,
    stdout: std::thread::JoinHandle<()>,
    stderr: std::thread::JoinHandle<String>,
}

impl Child {
    fn spawn(dir: &Path, mode: Durability, start: &[u64; THREADS], ack_early: bool) -> Child {
        let mut child = Process::new(std::env::current_exe().unwrap());
        if ack_early {
            child.env(CHILD_ACK_EARLY, "1");
        }
        let mut process = child
            .args([
                "--ignored",
                "--exact",
                "kill9_child",
                "--nocapture",
                "--quiet",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir)
            .env(CHILD_MODE, mode_name(mode))
            .env(CHILD_START, start.map(|s| s.to_string()).join(","))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let acks: Arc<[AtomicU64; THREADS]> =
            Arc::new(std::array::from_fn(|_| AtomicU64::new(u64::MAX)));
        let lines = Arc::new(AtomicU64::new(0));
        let out = process.stdout.take().unwrap();
        let (a, l) = (acks.clone(), lines.clone());
        let stdout = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // The harness may print "test kill9_child ... " before the first line.
                let Some(at) = line.find("ack ") else {
                    continue;
                };
                let mut words = line[at..].split(' ');
                if let (Some("ack"), Some(t), Some(j)) = (words.next(), words.next(), words.next())
                {
                    let (t, j): (usize, u64) = (t.parse().unwrap(), j.parse().unwrap());
                    a[t].store(j, Ordering::SeqCst);
                    l.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let mut err = process.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Child {
            process,
            acks,
            lines,
            stdout,
            stderr,
        }
    }

    /// Kills the child (SIGKILL) unless it already exited; returns the last acknowledged
    /// command of each thread and, if the child exited by itself, why.
    fn kill(mut self) -> ([Option<u64>; THREADS], Option<String>) {
        let exited = self.process.try_wait().unwrap();
        if exited.is_none() {
            self.process.kill().unwrap();
        }
        let status = self.process.wait().unwrap();
        self.stdout.join().unwrap();
        let stderr = self.stderr.join().unwrap();
        let acks = std::array::from_fn(|t| {
            Some(self.acks[t].load(Ordering::SeqCst)).filter(|&j| j != u64::MAX)
        });
        let died = exited.map(|_| {
            format!(
                "the child exited by itself ({status}): {}",
                stderr.lines().last().unwrap_or("")
            )
        });
        (acks, died)
    }
}

fn new_reference() -> Kernel<'static> {
    Kernel::new(Config::new(DIM, Metric::L2).unwrap()).unwrap()
}

fn apply_ops(k: &mut Kernel<'static>, t: usize, ops: std::ops::Range<u64>) {
    for j in ops {
        k.apply(&Command::decode(&op(t, j)).unwrap()).unwrap();
    }
}

/// What a loop did.
struct Summary {
    cycles: u64,
    /// Acknowledgments received.
    acked: u64,
    /// Acknowledged commands checked: each cycle checks every one acknowledged so far.
    checks: u64,
    failures: Vec<String>,
    seconds: f64,
}

/// The loops run one at a time. Run side by side in one process, one loop's spawn can fork
/// while another loop holds its database's lock file open; the forked copy of that file keeps
/// the flock(2) lock until it execs, and the other loop's next child is refused as Busy.
static ONE_LOOP_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `cycles` kill cycles in `mode`. Failures are counted, their directories kept, and the
/// loop goes on with a fresh database. `ack_early` plants a bug in the child.
fn kill9_loop(mode: Durability, cycles: u64, seed: u64, ack_early: bool) -> Summary {
    let _alone = ONE_LOOP_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let base = std::env::var_os("VALORI_KILL9_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!(
        "valori-kill9-{}-{}{}",
        std::process::id(),
        mode_name(mode),
        if ack_early { "-control" } else { "" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = Rng::new(seed);
    let mut reference = new_reference();
    // Per thread, the commands the database holds (all acknowledged ones, plus any in flight
    // that made it).
    let mut applied = [0u64; THREADS];
    let mut s = Summary {
        cycles,
        acked: 0,
        checks: 0,
        failures: Vec::new(),
        seconds: 0.0,
    };
    let started = Instant::now();
    let every = (cycles / 20).max(1);
    for cycle in 0..cycles {
        let child = Child::spawn(&dir, mode, &applied, ack_early);
        // A quarter of the kills land early: in process start-up and recovery.
        let delay = if rng.upto(3) == 0 {
            rng.upto(5)
        } else {
            5 + rng.upto(55)
        };
        std::thread::sleep(Duration::from_millis(delay as u64));
        if cycle == 0 {
            // Another process holds the database: this one is refused, not corrupted.
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.lines.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            let second = Engine::open(&dir, options(mode));
            assert!(
                matches!(second, Err(valori_engine::Error::Busy { .. })),
                "a second process opened a held database: {second:?}"
            );
        }
        let (acks, died) = child.kill();
        let acked: [u64; THREADS] =
            std::array::from_fn(|t| acks[t].map_or(applied[t], |j| (j + 1).max(applied[t])));
        s.acked += (0..THREADS).map(|t| acked[t] - applied[t]).sum::<u64>();
        let verdict = died.map_or_else(|| check(&dir, mode, &mut reference, &applied, &acked), Err);
        match verdict {
            Ok(now) => {
                applied = now;
                s.checks += acked.iter().sum::<u64>();
            }
            Err(e) => {
                let mut what =
                    format!("{mode:?} cycle {cycle}: {e} (acknowledged per thread {acked:?})");
                if !ack_early {
                    let kept = base.join(format!(
                        "valori-kill9-failure-{}-{}-{cycle}",
                        std::process::id(),
                        mode_name(mode)
                    ));
                    if std::fs::rename(&dir, &kept).is_ok() {
                        what += &format!("; directory kept in {}", kept.display());
                    }
                }
                if !ack_early {
                    eprintln!("kill9 FAILURE: {what}");
                }
                s.failures.push(what);
                let _ = std::fs::remove_dir_all(&dir);
                reference = new_reference();
                applied = [0; THREADS];
            }
        }
        if (cycle + 1) % every == 0 {
            eprintln!(
                "kill9 {}: {}/{cycles} cycles, {} acknowledged, {} failures, {:.1} s",
                mode_name(mode),
                cycle + 1,
                s.acked,
                s.failures.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    s.seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "kill9 summary: mode={} cycles={} acked={} checks={} failures={} seconds={:.1}",
        mode_name(mode),
        s.cycles,
        s.acked,
        s.checks,
        s.failures.len(),
        s.seconds
    );
    s
}

/// Reopens the database after a kill and checks it holds exactly thread `t`'s commands
/// `0..acked[t]`, plus possibly command `acked[t]` (in flight when the child died), for every
/// thread. Advances `reference` (which holds `applied`) and returns the new `applied`.
fn check(
    dir: &Path,
    mode: Durability,
    reference: &mut Kernel<'static>,
    applied: &[u64; THREADS],
    acked: &[u64; THREADS],
) -> Result<[u64; THREADS], String> {
    let db = Engine::open(dir, options(mode)).map_err(|e| format!("recovery failed: {e}"))?;
    let hash = db.state_hash().unwrap();
    let len = db.len().unwrap();
    db.close().map_err(|e| format!("close failed: {e}"))?;
    for t in 0..THREADS {
        apply_ops(reference, t, applied[t]..acked[t]);
    }
    let base = reference.to_bytes();
    // Which in-flight commands made it: each subset gives a different state.
    for mask in 0..1u32 << THREADS {
        let mut k = Kernel::from_bytes(&base).unwrap();
        let mut now = *acked;
        for t in (0..THREADS).filter(|t| mask >> t & 1 == 1) {
            apply_ops(&mut k, t, acked[t]..acked[t] + 1);
            now[t] += 1;
        }
        if k.state_hash() == hash {
            *reference = k;
            return Ok(now);
        }
    }
    Err(format!(
        "the recovered state ({len} records) is not the acknowledged commands plus some of those in flight ({} records acknowledged)",
        reference.len()
    ))
}

fn cycles() -> u64 {
    std::env::var("VALORI_KILL9_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

fn assert_loop(mode: Durability, seed: u64) {
    let cycles = cycles();
    let s = kill9_loop(mode, cycles, seed, false);
    assert!(
        s.failures.is_empty(),
        "{} of {cycles} kill -9 cycles failed:\n{}",
        s.failures.len(),
        s.failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        s.acked > cycles,
        "the child acknowledged only {} commands in {cycles} cycles",
        s.acked
    );
}

#[test]
fn kill9_loop_fsync() {
    assert_loop(Durability::Fsync, 42);
}

#[test]
fn kill9_loop_group_commit() {
    assert_loop(Durability::GroupCommit, 43);
}

#[test]
fn kill9_loop_none() {
    assert_loop(Durability::None, 44);
}

/// Control: a child that acknowledges a command before applying it must be caught.
#[test]
fn planted_bug_acknowledging_before_the_write_is_caught() {
    let s = kill9_loop(Durability::Fsync, 20, 45, true);
    assert!(
        !s.failures.is_empty(),
        "20 cycles with early acknowledgments and no failure: the loop cannot see a lost write"
    );
    eprintln!(
        "acknowledging early: {} of 20 cycles failed, e.g. {}",
        s.failures.len(),
        s.failures[0]
    );
}
