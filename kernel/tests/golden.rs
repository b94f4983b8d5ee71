//! Replays every golden script in `tests/vectors/` on a growable kernel and on a kernel in
//! fixed caller memory, and checks each step's result and state hash against the file.
//!
//! `VALORI_BLESS=1 cargo test -p valori-kernel --test golden` rewrites the expectations from
//! the current code (review the diff: it is the determinism contract).
//! The script format is documented in `tests/vectors/README.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::type_complexity,
    missing_docs
)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use valori_kernel::{
    Applied, Capacity, Command, Config, Direction, Fxp, Hit, Hop, IndexParams, Kernel, Metric,
    Words,
};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A vector spec: `[raw, ...]`, `{"ramp": [start, step]}` (raw[i] = start + step * i) or
/// `{"fill": raw}`.
fn vector(spec: &Value, dim: usize) -> Vec<Fxp> {
    match spec {
        Value::Array(a) => a
            .iter()
            .map(|x| Fxp(i32::try_from(x.as_i64().expect("int")).expect("i32")))
            .collect(),
        Value::Object(o) if o.contains_key("ramp") => {
            let r = &o["ramp"];
            let (start, step) = (r[0].as_i64().expect("start"), r[1].as_i64().expect("step"));
            (0..dim as i64)
                .map(|i| Fxp(i32::try_from(start + step * i).expect("ramp stays in i32")))
                .collect()
        }
        Value::Object(o) if o.contains_key("fill") => {
            vec![Fxp(i32::try_from(o["fill"].as_i64().expect("fill")).expect("i32")); dim]
        }
        other => panic!("bad vector spec {other}"),
    }
}

fn opt_u64(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn bytes_field(v: &Value, key: &str) -> Vec<u8> {
    match v.get(key) {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(Value::Object(o)) => unhex(o["hex"].as_str().expect("hex")),
        _ => Vec::new(),
    }
}

fn metric(s: &str) -> Metric {
    match s {
        "L2" => Metric::L2,
        "InnerProduct" => Metric::InnerProduct,
        "Cosine" => Metric::Cosine,
        _ => panic!("metric {s}"),
    }
}

fn direction(s: &str) -> Direction {
    match s {
        "out" => Direction::Outgoing,
        "in" => Direction::Incoming,
        "both" => Direction::Both,
        _ => panic!("direction {s}"),
    }
}

fn err_value(e: valori_kernel::Error) -> Value {
    json!({ "error": e.code().name() })
}

/// Runs one step on one kernel; returns its observable result (without the hash).
fn run_step(k: &mut Kernel<'_>, step: &Value) -> Value {
    let dim = k.config().dim as usize;
    let op = step["op"].as_str().expect("op");
    let apply = |k: &mut Kernel<'_>, cmd: Command<'_>| -> Value {
        match k.apply(&cmd) {
            Ok(Applied::Created(id)) => json!({ "created": id }),
            Ok(Applied::Batch { first_id, count }) => json!({ "batch": [first_id, count] }),
            Ok(Applied::Done) => json!("ok"),
            Err(e) => err_value(e),
        }
    };
    match op {
        "insert" => {
            let v = vector(&step["vector"], dim);
            let meta = bytes_field(step, "meta");
            apply(
                k,
                Command::Insert {
                    id: opt_u64(step, "id"),
                    tag: opt_u64(step, "tag"),
                    vector: v[..].into(),
                    meta: &meta,
                },
            )
        }
        "insert_batch" => {
            let flat: Vec<Fxp> = step["vectors"]
                .as_array()
                .expect("vectors")
                .iter()
                .flat_map(|s| vector(s, dim))
                .collect();
            let ids: Vec<u64> = step
                .get("ids")
                .map(|a| {
                    a.as_array()
                        .expect("ids")
                        .iter()
                        .map(|x| x.as_u64().expect("id"))
                        .collect()
                })
                .unwrap_or_default();
            let tags: Vec<u64> = step
                .get("tags")
                .map(|a| {
                    a.as_array()
                        .expect("tags")
                        .iter()
                        .map(|x| x.as_u64().expect("tag"))
                        .collect()
                })
                .unwrap_or_default();
            apply(
                k,
                Command::InsertBatch {
                    ids: Words::Native(&ids),
                    tags: Words::Native(&tags),
                    vectors: flat[..].into(),
                },
            )
        }
        "delete" => apply(
            k,
            Command::Delete {
                id: opt_u64(step, "id").expect("id"),
            },
        ),
        "set_meta" => {
            let meta = bytes_field(step, "meta");
            apply(
                k,
                Command::SetMeta {
                    id: opt_u64(step, "id").expect("id"),
                    meta: &meta,
                },
            )
        }
        "set_tag" => apply(
            k,
            Command::SetTag {
                id: opt_u64(step, "id").expect("id"),
                tag: opt_u64(step, "tag"),
            },
        ),
        "create_node" => {
            let label = bytes_field(step, "label");
            apply(
                k,
                Command::CreateNode {
                    id: opt_u64(step, "id"),
                    kind: step["kind"].as_u64().expect("kind") as u32,
                    record: opt_u64(step, "record"),
                    label: &label,
                },
            )
        }
        "delete_node" => apply(
            k,
            Command::DeleteNode {
                id: opt_u64(step, "id").expect("id"),
            },
        ),
        "create_edge" => apply(
            k,
            Command::CreateEdge {
                id: opt_u64(step, "id"),
                kind: step["kind"].as_u64().expect("kind") as u32,
                from: opt_u64(step, "from").expect("from"),
                to: opt_u64(step, "to").expect("to"),
                weight: step
                    .get("weight")
                    .and_then(Value::as_i64)
                    .map(|w| Fxp(w as i32)),
            },
        ),
        "delete_edge" => apply(
            k,
            Command::DeleteEdge {
                id: opt_u64(step, "id").expect("id"),
            },
        ),
        "search" => {
            let q = vector(&step["query"], dim);
            let k_ = step["k"].as_u64().expect("k") as u32;
            let mut out = vec![Hit::default(); 64];
            match k.search(&q, k_, opt_u64(step, "tag"), &mut out) {
                Ok(n) => json!({
                    "hits": out[..n].iter().map(|h| json!([h.id, h.distance.to_string()])).collect::<Vec<_>>()
                }),
                Err(e) => err_value(e),
            }
        }
        "search_approx" => {
            let q = vector(&step["query"], dim);
            let k_ = step["k"].as_u64().expect("k") as u32;
            let ef = step["ef"].as_u64().expect("ef") as u32;
            let mut out = vec![Hit::default(); 64];
            match k.search_approx(&q, k_, opt_u64(step, "tag"), ef, &mut out) {
                Ok(n) => json!({
                    "hits": out[..n].iter().map(|h| json!([h.id, h.distance.to_string()])).collect::<Vec<_>>()
                }),
                Err(e) => err_value(e),
            }
        }
        "traverse" => {
            let mut out = vec![
                Hop::default();
                step.get("max").and_then(Value::as_u64).unwrap_or(64) as usize
            ];
            let kind = step.get("kind").and_then(Value::as_u64).map(|x| x as u32);
            match k.traverse(
                opt_u64(step, "start").expect("start"),
                step["hops"].as_u64().expect("hops") as u32,
                direction(step["direction"].as_str().expect("direction")),
                kind,
                &mut out,
            ) {
                Ok(n) => {
                    json!({ "hops": out[..n].iter().map(|h| json!([h.depth, h.node])).collect::<Vec<_>>() })
                }
                Err(e) => err_value(e),
            }
        }
        "get" => match k.get(opt_u64(step, "id").expect("id")) {
            Some(r) => json!({
                "tag": r.tag,
                "meta": hex(r.meta),
                "vector": r.vector.iter().map(|x| x.0).collect::<Vec<_>>(),
            }),
            None => json!(null),
        },
        _ => panic!("unknown op {op}"),
    }
}

fn is_query(op: &str) -> bool {
    matches!(op, "search" | "search_approx" | "traverse" | "get")
}

/// The script's approximate index (`"index": {"m", "ef_construction"}`), if it has one.
fn index_params(script: &Value) -> Option<IndexParams> {
    let i = script.get("index")?;
    Some(
        IndexParams::new(
            i["m"].as_u64().expect("index m") as u32,
            i["ef_construction"]
                .as_u64()
                .expect("index ef_construction") as u32,
        )
        .expect("index parameters"),
    )
}

fn index_hex(k: &Kernel<'_>) -> Option<String> {
    k.index_hash().map(|h| hex(&h))
}

fn replay(path: &Path, bless: bool) -> usize {
    let text = std::fs::read_to_string(path).expect("read script");
    let mut script: Value = serde_json::from_str(&text).expect("parse script");
    let dim = script["dim"].as_u64().expect("dim") as u32;
    let m = metric(script["metric"].as_str().expect("metric"));
    if !m.is_built() {
        // A build without the `cosine` feature runs every script it can (and only those).
        eprintln!("SKIP {} (metric {m} is not in this build)", path.display());
        assert!(!bless, "blessing needs every metric");
        return 0;
    }
    let config = Config::new(dim, m).expect("config");
    let cap = &script["capacity"];
    let cap = Capacity {
        records: cap["records"].as_u64().expect("records") as u32,
        nodes: cap["nodes"].as_u64().expect("nodes") as u32,
        edges: cap["edges"].as_u64().expect("edges") as u32,
        meta_bytes: cap["meta_bytes"].as_u64().expect("meta_bytes") as u32,
        label_bytes: cap["label_bytes"].as_u64().expect("label_bytes") as u32,
    };
    let mut grow = Kernel::new(config).expect("growable");
    let mem_len = Kernel::mem_size(config, cap).expect("size");
    let mut mem = vec![0u8; mem_len];
    let mut fixed = Kernel::with_memory(config, cap, &mut mem).expect("fixed");
    let index = index_params(&script);
    if index.is_some() {
        grow.set_index(index).expect("index");
        fixed.set_index(index).expect("index");
    }
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut checked = 0;
    let initial = hex(&grow.state_hash());
    if bless {
        script["initial_hash"] = json!(initial);
    } else {
        assert_eq!(
            script["initial_hash"],
            json!(initial),
            "{name}: initial hash"
        );
    }
    let steps = script["steps"].as_array_mut().expect("steps");
    for (i, step) in steps.iter_mut().enumerate() {
        let before = grow.state_hash();
        let a = run_step(&mut grow, step);
        let b = run_step(&mut fixed, step);
        assert_eq!(a, b, "{name} step {i}: growable and fixed kernels disagree");
        let hash = grow.state_hash();
        assert_eq!(
            hash,
            fixed.state_hash(),
            "{name} step {i}: hashes differ between stores"
        );
        let index_hash = index_hex(&grow);
        assert_eq!(
            index_hash,
            index_hex(&fixed),
            "{name} step {i}: index hashes differ between stores"
        );
        if a.get("error").is_some() {
            assert_eq!(
                hash, before,
                "{name} step {i}: a failed command changed the state"
            );
        }
        let op = step["op"].as_str().unwrap().to_string();
        let step = step.as_object_mut().unwrap();
        if bless {
            step.insert("expect".into(), a);
            if !is_query(&op) {
                step.insert("hash".into(), json!(hex(&hash)));
                if let Some(h) = &index_hash {
                    step.insert("index_hash".into(), json!(h));
                }
            }
        } else {
            assert_eq!(
                step.get("expect"),
                Some(&a),
                "{name} step {i} ({op}): result"
            );
            if !is_query(&op) {
                assert_eq!(
                    step.get("hash"),
                    Some(&json!(hex(&hash))),
                    "{name} step {i} ({op}): state hash"
                );
                assert_eq!(
                    step.get("index_hash").and_then(Value::as_str),
                    index_hash.as_deref(),
                    "{name} step {i} ({op}): index hash"
                );
            }
            checked += 1;
        }
        // Snapshots round-trip at every step, into both kinds of store.
        let bytes = grow.to_bytes();
        assert_eq!(
            Kernel::from_bytes(&bytes).expect("decode").state_hash(),
            hash,
            "{name} step {i}"
        );
        let mut mem2 = vec![0u8; mem_len];
        let k2 = Kernel::from_bytes_in(&bytes, cap, &mut mem2).expect("decode fixed");
        assert_eq!(k2.state_hash(), hash, "{name} step {i}");
    }
    if bless {
        let mut out = serde_json::to_string_pretty(&script).expect("json");
        out.push('\n');
        std::fs::write(path, out).expect("write");
    }
    checked
}

fn scripts() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .expect("tests/vectors")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("conversions.json"))
        .collect();
    v.sort();
    v
}

#[test]
fn golden_scripts_replay_identically() {
    let bless = std::env::var_os("VALORI_BLESS").is_some();
    let scripts = scripts();
    assert!(
        scripts.len() >= 6,
        "expected at least 6 golden scripts, found {}",
        scripts.len()
    );
    let mut steps = 0;
    for s in &scripts {
        steps += replay(s, bless);
    }
    if !bless {
        assert!(steps > 100, "only {steps} steps checked");
    }
}

#[test]
fn golden_conversions() {
    let path = vectors_dir().join("conversions.json");
    let text = std::fs::read_to_string(&path).expect("conversions.json");
    let mut doc: Value = serde_json::from_str(&text).expect("parse");
    let bless = std::env::var_os("VALORI_BLESS").is_some();
    let cases = doc["f32"].as_array_mut().expect("f32 cases");
    for c in cases.iter_mut() {
        let bits = u32::from_str_radix(c["bits"].as_str().expect("bits"), 16).expect("hex bits");
        let got = match Fxp::from_f32(f32::from_bits(bits), 0) {
            Ok(f) => json!(f.0),
            Err(e) => json!(e.code().name()),
        };
        if bless {
            c.as_object_mut().unwrap().insert("expect".into(), got);
        } else {
            assert_eq!(c["expect"], got, "f32 bits {bits:08x}");
        }
    }
    if bless {
        let mut out = serde_json::to_string_pretty(&doc).expect("json");
        out.push('\n');
        std::fs::write(&path, out).expect("write");
    }
}

/// Prints `HASH <script> <final state hash>` for every golden script, and `INDEX <script>
/// <final index hash>` for those with an approximate index: the rows of the cross-architecture
/// table (`scripts/cross-hashes.sh` runs this on every target). The scripts are replayed here,
/// and every query's answer (approximate ones included) must be the file's.
#[test]
fn final_hashes() {
    for path in scripts() {
        let text = std::fs::read_to_string(&path).expect("read script");
        let script: Value = serde_json::from_str(&text).expect("parse script");
        let last = script["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .rev()
            .find_map(|s| s.get("hash").and_then(Value::as_str))
            .expect("a step with a hash");
        // Recompute rather than echo: replay on this machine and compare to the file.
        let dim = script["dim"].as_u64().expect("dim") as u32;
        let m = metric(script["metric"].as_str().expect("metric"));
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !m.is_built() {
            println!("SKIP {name} (metric {m} is not in this build)");
            continue;
        }
        let config = Config::new(dim, m).expect("config");
        let mut k = Kernel::new(config).expect("kernel");
        k.set_index(index_params(&script)).expect("index");
        for (i, step) in script["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .enumerate()
        {
            let got = run_step(&mut k, step);
            if is_query(step["op"].as_str().expect("op")) {
                assert_eq!(step.get("expect"), Some(&got), "{name} step {i}");
            }
        }
        let hash = hex(&k.state_hash());
        assert_eq!(hash, last, "{}", path.display());
        println!("HASH {name} {hash}");
        if let Some(index) = index_hex(&k) {
            let last_index = script["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .rev()
                .find_map(|s| s.get("index_hash").and_then(Value::as_str))
                .expect("a step with an index hash");
            assert_eq!(index, last_index, "{name}: index hash");
            println!("INDEX {name} {index}");
        }
    }
}

/// Without the `cosine` feature a cosine configuration is refused with a message that names
/// the feature, and nothing else changes; with it (every hosted build) it is accepted.
#[test]
fn cosine_needs_its_feature() {
    let got = Config::new(4, valori_kernel::Metric::Cosine);
    if cfg!(feature = "cosine") {
        assert!(got.is_ok());
    } else {
        let e = got.expect_err("cosine without its feature");
        assert_eq!(
            e.to_string(),
            "invalid input: metric cosine is not in this build (it was built without the \"cosine\" feature)"
        );
        assert!(Config::new(4, valori_kernel::Metric::L2).is_ok());
    }
}
