//! The documented layout (docs/FORMAT.md) rebuilt by hand, byte by byte, without the encoder:
//! its BLAKE3 must equal a golden hash and the kernel's own hash.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::type_complexity,
    missing_docs
)]

use valori_kernel::{Command, Config, Fxp, Kernel, Metric};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hash_of(body: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"valori-state-v1\0");
    h.update(body);
    hex(h.finalize().as_bytes())
}

fn golden_hash(file: &str, step: usize) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(file);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["steps"][step]["hash"].as_str().unwrap().to_string()
}

#[test]
fn empty_state_layout() {
    // dim 4, L2, all counters 0, no records, nodes or edges.
    let mut b = Vec::new();
    b.extend_from_slice(b"VLRK");
    b.extend_from_slice(&[1, 0, 0, 0]); // format version 1
    b.extend_from_slice(&[4, 0, 0, 0]); // dim
    b.push(0); // metric L2
    b.extend_from_slice(&[0; 24]); // next record, node, edge ids
    b.extend_from_slice(&[0; 8]); // record count
    b.extend_from_slice(&[0; 8]); // node count
    b.extend_from_slice(&[0; 8]); // edge count
    let k = Kernel::new(Config::new(4, Metric::L2).unwrap()).unwrap();
    assert_eq!(k.to_bytes(), b);
    assert_eq!(hex(&k.state_hash()), hash_of(&b));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/01-records-l2.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(v["initial_hash"].as_str().unwrap(), hash_of(&b));
}

#[test]
fn golden_hash_from_hand_written_bytes() {
    // tests/vectors/05-dim1-ties.json, step 0: insert (auto id 0) tag 5, vector [5.0].
    let mut b = Vec::new();
    b.extend_from_slice(b"VLRK");
    b.extend_from_slice(&[1, 0, 0, 0]);
    b.extend_from_slice(&[1, 0, 0, 0]); // dim 1
    b.push(0); // L2
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // next record id 1
    b.extend_from_slice(&[0; 16]); // next node id 0, next edge id 0
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // 1 record
    b.extend_from_slice(&[0; 8]); // id 0
    b.push(1); // has tag
    b.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0]); // tag 5
    b.extend_from_slice(&[0, 0, 0, 0]); // no metadata
    b.extend_from_slice(&[0x00, 0x00, 0x05, 0x00]); // 5.0 = 327680 = 0x00050000 LE
    b.extend_from_slice(&[0; 8]); // 0 nodes
    b.extend_from_slice(&[0; 8]); // 0 edges
    assert_eq!(hash_of(&b), golden_hash("05-dim1-ties.json", 0));
}

#[test]
fn graph_layout_by_hand() {
    let mut k = Kernel::new(Config::new(2, Metric::Cosine).unwrap()).unwrap();
    let v = [Fxp(0), Fxp(-65536)];
    k.apply(&Command::Insert {
        id: Some(7),
        tag: None,
        vector: v[..].into(),
        meta: b"ab",
    })
    .unwrap();
    k.apply(&Command::CreateNode {
        id: None,
        kind: 3,
        record: Some(7),
        label: b"x",
    })
    .unwrap();
    k.apply(&Command::CreateNode {
        id: None,
        kind: 4,
        record: None,
        label: b"",
    })
    .unwrap();
    k.apply(&Command::CreateEdge {
        id: Some(2),
        kind: 9,
        from: 1,
        to: 0,
        weight: Some(Fxp(-2)),
    })
    .unwrap();

    let mut b = Vec::new();
    b.extend_from_slice(b"VLRK");
    b.extend_from_slice(&[1, 0, 0, 0]);
    b.extend_from_slice(&[2, 0, 0, 0]); // dim 2
    b.push(2); // cosine
    b.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]); // next record id 8
    b.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]); // next node id 2
    b.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]); // next edge id 3
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // 1 record
    b.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]); // id 7
    b.push(0); // no tag
    b.extend_from_slice(&[0; 8]); // tag field 0
    b.extend_from_slice(&[2, 0, 0, 0]); // metadata length 2
    b.extend_from_slice(b"ab");
    b.extend_from_slice(&[0, 0, 0, 0]); // 0.0
    b.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]); // -1.0 = -65536 = 0xffff0000 LE (already unit)
    b.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]); // 2 nodes
    b.extend_from_slice(&[0; 8]); // node 0
    b.extend_from_slice(&[3, 0, 0, 0]); // kind 3
    b.push(1); // linked
    b.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]); // record 7
    b.extend_from_slice(&[1, 0, 0, 0]); // label length 1
    b.extend_from_slice(b"x");
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // node 1
    b.extend_from_slice(&[4, 0, 0, 0]); // kind 4
    b.push(0); // not linked
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[0, 0, 0, 0]); // no label
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // 1 edge
    b.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]); // edge id 2
    b.extend_from_slice(&[9, 0, 0, 0]); // kind 9
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // from node 1
    b.extend_from_slice(&[0; 8]); // to node 0
    b.push(1); // has weight
    b.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff]); // weight -2 raw
    assert_eq!(k.to_bytes(), b);
    assert_eq!(hex(&k.state_hash()), hash_of(&b));
}

#[test]
fn command_wire_bytes_by_hand() {
    // postcard: enum variant index as varint, Option as 0/1 byte, u64/u32 as varints,
    // i32 as zigzag varint, byte strings and vectors as varint length + bytes.
    let v = [Fxp(65536), Fxp(-1)];
    let c = Command::Insert {
        id: None,
        tag: Some(300),
        vector: v[..].into(),
        meta: b"hi",
    };
    let want = [
        0x00, // variant 0: Insert
        0x00, // id: None
        0x01, 0xac, 0x02, // tag: Some(300) as varint
        0x08, 0x00, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, // 8 bytes: 65536, -1 LE
        0x02, b'h', b'i', // meta
    ];
    assert_eq!(c.to_vec(), want);
    let e = Command::CreateEdge {
        id: Some(1),
        kind: 2,
        from: 3,
        to: 4,
        weight: Some(Fxp(-3)),
    };
    assert_eq!(e.to_vec(), [7, 1, 1, 2, 3, 4, 1, 5]);
    let d = Command::Delete { id: 128 };
    assert_eq!(d.to_vec(), [2, 0x80, 0x01]);
}
