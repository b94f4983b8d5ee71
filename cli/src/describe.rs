//! Commands, records and differences between states, as JSON values for display.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use valori_engine::valori_kernel::{Applied, Command, Fxp, Kernel, RecordRef};

/// Bytes as text if they are UTF-8, else as hex (`hex:...`).
fn bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => json!(s),
        Err(_) => json!(format!("hex:{}", hex::encode(b))),
    }
}

fn floats(v: impl Iterator<Item = Fxp>) -> Value {
    json!(v.map(Fxp::to_f64).collect::<Vec<_>>())
}

/// Kind and affected ids (`applied`, from replay, gives the ids automatic-id commands took).
pub fn summary(cmd: &Command<'_>, applied: Option<&Applied>) -> Value {
    let created = |explicit: Option<u64>, what: &str| match (explicit, applied) {
        (Some(id), _) | (None, Some(&Applied::Created(id))) => format!("{what} {id}"),
        _ => format!("{what} (automatic id)"),
    };
    let ids = match cmd {
        Command::Insert { id, .. } => created(*id, "record"),
        Command::InsertBatch { ids, vectors, .. } => {
            let n = if ids.is_empty() {
                match applied {
                    Some(Applied::Batch { count, .. }) => *count as usize,
                    _ => 0,
                }
            } else {
                ids.len()
            };
            match (ids.get(0), ids.get(ids.len().saturating_sub(1)), applied) {
                (Some(a), Some(b), _) => format!("records {a}..{b} ({n})"),
                (None, _, Some(Applied::Batch { first_id, count })) => format!(
                    "records {first_id}..{} ({count})",
                    first_id + count.saturating_sub(1)
                ),
                _ => format!("{} components", vectors.len()),
            }
        }
        Command::Delete { id } => format!("record {id}"),
        Command::SetMeta { id, .. } | Command::SetTag { id, .. } => format!("record {id}"),
        Command::CreateNode { id, .. } => created(*id, "node"),
        Command::DeleteNode { id } => format!("node {id}"),
        Command::CreateEdge { id, from, to, .. } => {
            format!("{} {from}->{to}", created(*id, "edge"))
        }
        Command::DeleteEdge { id } => format!("edge {id}"),
    };
    json!({"kind": cmd.name(), "ids": ids})
}

/// Every field of a command (vectors as floats; `dim` splits a batch into rows).
pub fn full(cmd: &Command<'_>, dim: u32) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!(cmd.name()));
    match cmd {
        Command::Insert {
            id,
            tag,
            vector,
            meta,
        } => {
            m.insert("id".into(), json!(id));
            m.insert("tag".into(), json!(tag));
            m.insert("meta".into(), bytes(meta));
            m.insert("vector".into(), floats(vector.iter()));
        }
        Command::InsertBatch { ids, tags, vectors } => {
            m.insert("ids".into(), json!(ids.iter().collect::<Vec<u64>>()));
            m.insert("tags".into(), json!(tags.iter().collect::<Vec<u64>>()));
            let all: Vec<Fxp> = vectors.iter().collect();
            let rows: Vec<Value> = all
                .chunks((dim as usize).max(1))
                .map(|r| floats(r.iter().copied()))
                .collect();
            m.insert("vectors".into(), json!(rows));
        }
        Command::Delete { id } | Command::DeleteNode { id } | Command::DeleteEdge { id } => {
            m.insert("id".into(), json!(id));
        }
        Command::SetMeta { id, meta } => {
            m.insert("id".into(), json!(id));
            m.insert("meta".into(), bytes(meta));
        }
        Command::SetTag { id, tag } => {
            m.insert("id".into(), json!(id));
            m.insert("tag".into(), json!(tag));
        }
        Command::CreateNode {
            id,
            kind,
            record,
            label,
        } => {
            m.insert("id".into(), json!(id));
            m.insert("node_kind".into(), json!(kind));
            m.insert("record".into(), json!(record));
            m.insert("label".into(), bytes(label));
        }
        Command::CreateEdge {
            id,
            kind,
            from,
            to,
            weight,
        } => {
            m.insert("id".into(), json!(id));
            m.insert("edge_kind".into(), json!(kind));
            m.insert("from".into(), json!(from));
            m.insert("to".into(), json!(to));
            m.insert("weight".into(), json!(weight.map(Fxp::to_f64)));
        }
    }
    Value::Object(m)
}

/// A record's fields.
pub fn record(r: &RecordRef<'_>) -> Value {
    json!({
        "id": r.id,
        "tag": r.tag,
        "meta": bytes(r.meta),
        "vector": floats(r.vector.iter()),
    })
}

fn changes<V: PartialEq>(a: &BTreeMap<u64, V>, b: &BTreeMap<u64, V>) -> Value {
    let added: Vec<u64> = b.keys().filter(|k| !a.contains_key(k)).copied().collect();
    let removed: Vec<u64> = a.keys().filter(|k| !b.contains_key(k)).copied().collect();
    let changed: Vec<u64> = a
        .iter()
        .filter(|(k, v)| b.get(k).is_some_and(|w| w != *v))
        .map(|(k, _)| *k)
        .collect();
    json!({"added": added, "removed": removed, "changed": changed})
}

type RecordKey = (Option<u64>, Vec<u8>, Vec<i32>);

fn records(k: &Kernel<'_>) -> BTreeMap<u64, RecordKey> {
    k.records()
        .map(|r| {
            (
                r.id,
                (
                    r.tag,
                    r.meta.to_vec(),
                    r.vector.iter().map(|f: Fxp| f.0).collect(),
                ),
            )
        })
        .collect()
}

/// Records, nodes and edges added, removed and changed from `a` to `b` (ids).
pub fn diff(a: &Kernel<'_>, b: &Kernel<'_>) -> Value {
    let nodes = |k: &Kernel<'_>| -> BTreeMap<u64, (u32, Option<u64>, Vec<u8>)> {
        k.nodes()
            .map(|n| (n.id, (n.kind, n.record, n.label.to_vec())))
            .collect()
    };
    let edges = |k: &Kernel<'_>| -> BTreeMap<u64, (u32, u64, u64, Option<i32>)> {
        k.edges()
            .map(|e| (e.id, (e.kind, e.from, e.to, e.weight.map(|f: Fxp| f.0))))
            .collect()
    };
    json!({
        "identical": a.state_hash() == b.state_hash(),
        "records": changes(&records(a), &records(b)),
        "nodes": changes(&nodes(a), &nodes(b)),
        "edges": changes(&edges(a), &edges(b)),
    })
}
