//! Writes the fuzz seed corpora from real data:
//!
//! - `command/`: every command of the golden scripts in `tests/vectors/` (README there),
//!   encoded;
//! - `kernel_state/`, `kernel_snapshot/`: each script's kernel state encoding and portable
//!   snapshot when empty, after its first half and at its end;
//! - `wal_segment/`, `snapshot_file/`, `export/`: the WAL segments, snapshot files and export
//!   of a database the engine builds from each script (first half, checkpoint, second half),
//!   WAL and snapshot seeds twice, with the targets' mode byte 0 (as is) and 1 (checksums
//!   fixed up);
//! - `recovery/`: those database directories whole, and with the last segment's tail torn.
//!
//! Files larger than [`MAX_SEED`] are left out (the 4096-dimension scripts' states): libFuzzer
//! mutates small inputs faster, and the small scripts cover the same code.
//!
//! Usage: `valori-fuzz-seed VECTORS_DIR OUT_DIR` (scripts/fuzz.sh runs it).

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use valori_engine::{Durability, Engine, Options};
use valori_kernel::{Command, Config, Fxp, Kernel, Metric, Words};

/// Largest seed file written.
const MAX_SEED: usize = 64 << 10;

type Failure = Box<dyn std::error::Error>;

fn fail(msg: impl Into<String>) -> Failure {
    msg.into().into()
}

/// A command with owned data (a golden step).
enum Owned {
    Insert {
        id: Option<u64>,
        tag: Option<u64>,
        vector: Vec<Fxp>,
        meta: Vec<u8>,
    },
    Batch {
        ids: Vec<u64>,
        tags: Vec<u64>,
        vectors: Vec<Fxp>,
    },
    Delete(u64),
    SetMeta(u64, Vec<u8>),
    SetTag(u64, Option<u64>),
    CreateNode {
        id: Option<u64>,
        kind: u32,
        record: Option<u64>,
        label: Vec<u8>,
    },
    DeleteNode(u64),
    CreateEdge {
        id: Option<u64>,
        kind: u32,
        from: u64,
        to: u64,
        weight: Option<Fxp>,
    },
    DeleteEdge(u64),
}

impl Owned {
    fn command(&self) -> Command<'_> {
        match self {
            Owned::Insert {
                id,
                tag,
                vector,
                meta,
            } => Command::Insert {
                id: *id,
                tag: *tag,
                vector: vector[..].into(),
                meta,
            },
            Owned::Batch { ids, tags, vectors } => Command::InsertBatch {
                ids: Words::Native(ids),
                tags: Words::Native(tags),
                vectors: vectors[..].into(),
            },
            Owned::Delete(id) => Command::Delete { id: *id },
            Owned::SetMeta(id, meta) => Command::SetMeta { id: *id, meta },
            Owned::SetTag(id, tag) => Command::SetTag { id: *id, tag: *tag },
            Owned::CreateNode {
                id,
                kind,
                record,
                label,
            } => Command::CreateNode {
                id: *id,
                kind: *kind,
                record: *record,
                label,
            },
            Owned::DeleteNode(id) => Command::DeleteNode { id: *id },
            Owned::CreateEdge {
                id,
                kind,
                from,
                to,
                weight,
            } => Command::CreateEdge {
                id: *id,
                kind: *kind,
                from: *from,
                to: *to,
                weight: *weight,
            },
            Owned::DeleteEdge(id) => Command::DeleteEdge { id: *id },
        }
    }
}

fn raw(v: &Value) -> Result<Fxp, Failure> {
    let x = v
        .as_i64()
        .ok_or_else(|| fail(format!("not an integer: {v}")))?;
    Ok(Fxp(i32::try_from(x)?))
}

/// A vector spec (`[raw...]`, `{"ramp": [start, step]}`, `{"fill": raw}`).
fn vector(spec: &Value, dim: usize) -> Result<Vec<Fxp>, Failure> {
    if let Some(a) = spec.as_array() {
        return a.iter().map(raw).collect();
    }
    if let Some(r) = spec.get("ramp") {
        let start = r[0].as_i64().ok_or_else(|| fail("ramp start"))?;
        let step = r[1].as_i64().ok_or_else(|| fail("ramp step"))?;
        return (0..dim as i64)
            .map(|i| Ok(Fxp(i32::try_from(start + step * i)?)))
            .collect();
    }
    if let Some(f) = spec.get("fill") {
        return Ok(vec![raw(f)?; dim]);
    }
    Err(fail(format!("bad vector spec {spec}")))
}

fn bytes(step: &Value, key: &str) -> Result<Vec<u8>, Failure> {
    match step.get(key) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Object(o)) => {
            let h = o
                .get("hex")
                .and_then(Value::as_str)
                .ok_or_else(|| fail("hex"))?;
            (0..h.len())
                .step_by(2)
                .map(|i| Ok(u8::from_str_radix(&h[i..i + 2], 16)?))
                .collect()
        }
        _ => Ok(Vec::new()),
    }
}

fn u64_of(step: &Value, key: &str) -> Option<u64> {
    step.get(key).and_then(Value::as_u64)
}

fn need(step: &Value, key: &str) -> Result<u64, Failure> {
    u64_of(step, key).ok_or_else(|| fail(format!("step lacks {key}: {step}")))
}

fn ids(step: &Value, key: &str) -> Vec<u64> {
    step.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// The mutating steps of a script as commands (queries are skipped).
fn commands(script: &Value, dim: usize) -> Result<Vec<Owned>, Failure> {
    let steps = script["steps"].as_array().ok_or_else(|| fail("no steps"))?;
    let mut out = Vec::new();
    for step in steps {
        let op = step["op"].as_str().ok_or_else(|| fail("op"))?;
        out.push(match op {
            "insert" => Owned::Insert {
                id: u64_of(step, "id"),
                tag: u64_of(step, "tag"),
                vector: vector(&step["vector"], dim)?,
                meta: bytes(step, "meta")?,
            },
            "insert_batch" => Owned::Batch {
                ids: ids(step, "ids"),
                tags: ids(step, "tags"),
                vectors: step["vectors"]
                    .as_array()
                    .ok_or_else(|| fail("vectors"))?
                    .iter()
                    .map(|v| vector(v, dim))
                    .collect::<Result<Vec<_>, _>>()?
                    .concat(),
            },
            "delete" => Owned::Delete(need(step, "id")?),
            "set_meta" => Owned::SetMeta(need(step, "id")?, bytes(step, "meta")?),
            "set_tag" => Owned::SetTag(need(step, "id")?, u64_of(step, "tag")),
            "create_node" => Owned::CreateNode {
                id: u64_of(step, "id"),
                kind: u32::try_from(need(step, "kind")?)?,
                record: u64_of(step, "record"),
                label: bytes(step, "label")?,
            },
            "delete_node" => Owned::DeleteNode(need(step, "id")?),
            "create_edge" => Owned::CreateEdge {
                id: u64_of(step, "id"),
                kind: u32::try_from(need(step, "kind")?)?,
                from: need(step, "from")?,
                to: need(step, "to")?,
                weight: step.get("weight").map(raw).transpose()?,
            },
            "delete_edge" => Owned::DeleteEdge(need(step, "id")?),
            "search" | "search_approx" | "traverse" | "get" => continue,
            other => return Err(fail(format!("unknown op {other}"))),
        });
    }
    Ok(out)
}

/// Writes seed files, skipping duplicates and oversize ones.
struct Corpus {
    root: PathBuf,
    seen: BTreeSet<(String, Vec<u8>)>,
    written: usize,
    bytes: usize,
}

impl Corpus {
    fn put(&mut self, target: &str, name: &str, data: &[u8]) -> Result<(), Failure> {
        if data.len() > MAX_SEED || !self.seen.insert((target.to_string(), data.to_vec())) {
            return Ok(());
        }
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), data)?;
        self.written += 1;
        self.bytes += data.len();
        Ok(())
    }

    /// A seed for a target whose first byte picks a mode: both modes.
    fn put_modes(&mut self, target: &str, name: &str, data: &[u8]) -> Result<(), Failure> {
        for mode in [0u8, 1] {
            let seed = [&[mode][..], data].concat();
            self.put(target, &format!("{name}-m{mode}"), &seed)?;
        }
        Ok(())
    }

    /// The database files in `dir` (WAL segments, snapshots), under `tag`: one seed each for
    /// their targets, and the whole directory as one `recovery` seed (`kind, len, bytes` per
    /// file: kind 0 a segment, 1 a snapshot), also with the last segment cut in its last
    /// record (a torn tail).
    fn put_files(&mut self, dir: &Path, tag: &str) -> Result<(), Failure> {
        let mut names: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        let mut whole = Vec::new();
        let mut torn = Vec::new();
        for name in names {
            let data = std::fs::read(dir.join(&name))?;
            let kind = if name.ends_with(".log") {
                self.put_modes("wal_segment", &format!("{tag}-{name}"), &data)?;
                0u8
            } else if name.ends_with(".vsnap") {
                self.put_modes("snapshot_file", &format!("{tag}-{name}"), &data)?;
                1u8
            } else {
                continue;
            };
            let cut = if kind == 0 {
                data.len().saturating_sub(7)
            } else {
                data.len()
            };
            for (out, bytes) in [(&mut whole, &data[..]), (&mut torn, &data[..cut])] {
                out.push(kind);
                out.extend_from_slice(&u32::try_from(bytes.len())?.to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
        self.put("recovery", &format!("{tag}-dir"), &whole)?;
        self.put("recovery", &format!("{tag}-torn"), &torn)?;
        Ok(())
    }
}

fn metric(s: &str) -> Result<Metric, Failure> {
    match s {
        "L2" => Ok(Metric::L2),
        "InnerProduct" => Ok(Metric::InnerProduct),
        "Cosine" => Ok(Metric::Cosine),
        other => Err(fail(format!("metric {other}"))),
    }
}

fn seed_script(path: &Path, corpus: &mut Corpus, scratch: &Path) -> Result<(), Failure> {
    let script: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let name = script["name"]
        .as_str()
        .ok_or_else(|| fail("name"))?
        .to_string();
    let dim = u32::try_from(script["dim"].as_u64().ok_or_else(|| fail("dim"))?)?;
    let metric = metric(script["metric"].as_str().ok_or_else(|| fail("metric"))?)?;
    let config = Config::new(dim, metric)?;
    let cmds = commands(&script, dim as usize)?;
    let half = cmds.len() / 2;

    for (i, c) in cmds.iter().enumerate() {
        corpus.put("command", &format!("{name}-{i:03}"), &c.command().to_vec())?;
    }

    let mut k = Kernel::new(config)?;
    corpus.put("kernel_state", &format!("{name}-empty"), &k.to_bytes())?;
    corpus.put_modes("kernel_snapshot", &format!("{name}-empty"), &k.snapshot())?;
    for (i, c) in cmds.iter().enumerate() {
        // Steps that expect an error fail here too and change nothing.
        let _ = k.apply(&c.command());
        if i + 1 == half {
            corpus.put("kernel_state", &format!("{name}-half"), &k.to_bytes())?;
            corpus.put_modes("kernel_snapshot", &format!("{name}-half"), &k.snapshot())?;
        }
    }
    corpus.put("kernel_state", &format!("{name}-end"), &k.to_bytes())?;
    corpus.put_modes("kernel_snapshot", &format!("{name}-end"), &k.snapshot())?;

    let dir = scratch.join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    let options = Options::new(dim, metric)
        .durability(Durability::None)
        .checkpoint_wal_bytes(0);
    let db = Engine::open(&dir, options)?;
    for c in &cmds[..half] {
        let _ = db.apply(&c.command());
    }
    db.flush()?;
    corpus.put_files(&dir, &format!("{name}-a"))?;
    corpus.put("export", &format!("{name}-a"), &db.export()?.encode())?;
    db.checkpoint()?;
    for c in &cmds[half..] {
        let _ = db.apply(&c.command());
    }
    db.flush()?;
    corpus.put_files(&dir, &format!("{name}-b"))?;
    let export = db.export()?;
    if db.state_hash()? != k.state_hash() {
        return Err(fail(format!(
            "{name}: the database and the kernel disagree"
        )));
    }
    corpus.put("export", &format!("{name}-b"), &export.encode())?;
    db.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(vectors), Some(out)) = (args.get(1), args.get(2)) else {
        return Err(fail("usage: valori-fuzz-seed VECTORS_DIR OUT_DIR"));
    };
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(vectors)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().as_bytes()[0].is_ascii_digit())
        })
        .collect();
    scripts.sort();
    if scripts.is_empty() {
        return Err(fail(format!("no golden scripts in {vectors}")));
    }
    let scratch = std::env::temp_dir().join(format!("valori-fuzz-seed-{}", std::process::id()));
    let mut corpus = Corpus {
        root: PathBuf::from(out),
        seen: BTreeSet::new(),
        written: 0,
        bytes: 0,
    };
    for s in &scripts {
        seed_script(s, &mut corpus, &scratch)?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "seeded {} files ({} bytes) from {} scripts into {out}",
        corpus.written,
        corpus.bytes,
        scripts.len()
    );
    Ok(())
}
