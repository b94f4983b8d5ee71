//! Property tests against a simple reference model (BTreeMaps, brute-force search).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::type_complexity,
    missing_docs
)]

use proptest::prelude::*;
use std::collections::BTreeMap;
use valori_kernel::{
    Applied, Capacity, Command, Config, Direction, ErrorCode, Fxp, Hit, Hop, Kernel, Metric, Words,
};

const DIM: usize = 3;

/// An owned command, turned into a borrowed `Command` for applying.
#[derive(Clone, Debug)]
enum Op {
    Insert(Option<u64>, Option<u64>, Vec<i32>, Vec<u8>),
    Batch(Vec<u64>, Vec<u64>, Vec<i32>),
    Delete(u64),
    SetMeta(u64, Vec<u8>),
    SetTag(u64, Option<u64>),
    Node(Option<u64>, u32, Option<u64>, Vec<u8>),
    DelNode(u64),
    Edge(Option<u64>, u32, u64, u64, Option<i32>),
    DelEdge(u64),
}

fn with_cmd<R>(op: &Op, vecs: &mut Vec<Fxp>, f: impl FnOnce(&Command<'_>) -> R) -> R {
    match op {
        Op::Insert(id, tag, v, meta) => {
            *vecs = v.iter().map(|&x| Fxp(x)).collect();
            f(&Command::Insert {
                id: *id,
                tag: *tag,
                vector: vecs[..].into(),
                meta,
            })
        }
        Op::Batch(ids, tags, v) => {
            *vecs = v.iter().map(|&x| Fxp(x)).collect();
            f(&Command::InsertBatch {
                ids: Words::Native(ids),
                tags: Words::Native(tags),
                vectors: vecs[..].into(),
            })
        }
        Op::Delete(id) => f(&Command::Delete { id: *id }),
        Op::SetMeta(id, m) => f(&Command::SetMeta { id: *id, meta: m }),
        Op::SetTag(id, t) => f(&Command::SetTag { id: *id, tag: *t }),
        Op::Node(id, kind, rec, label) => f(&Command::CreateNode {
            id: *id,
            kind: *kind,
            record: *rec,
            label,
        }),
        Op::DelNode(id) => f(&Command::DeleteNode { id: *id }),
        Op::Edge(id, kind, from, to, w) => f(&Command::CreateEdge {
            id: *id,
            kind: *kind,
            from: *from,
            to: *to,
            weight: w.map(Fxp),
        }),
        Op::DelEdge(id) => f(&Command::DeleteEdge { id: *id }),
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    records: BTreeMap<u64, (Option<u64>, Vec<u8>, Vec<i32>)>,
    nodes: BTreeMap<u64, (u32, Option<u64>, Vec<u8>)>,
    edges: BTreeMap<u64, (u32, u64, u64, Option<i32>)>,
    next: [u64; 3],
}

type R = Result<Applied, ErrorCode>;

impl Model {
    fn pick(next: u64, req: Option<u64>, exists: bool) -> Result<u64, ErrorCode> {
        match req {
            Some(u64::MAX) => Err(ErrorCode::InvalidInput),
            Some(_) if exists => Err(ErrorCode::Exists),
            Some(id) => Ok(id),
            None if next == u64::MAX => Err(ErrorCode::Full),
            None => Ok(next),
        }
    }

    fn delete_node(&mut self, id: u64) {
        self.nodes.remove(&id);
        self.edges.retain(|_, e| e.1 != id && e.2 != id);
    }

    fn apply(&mut self, op: &Op) -> R {
        match op.clone() {
            Op::Insert(id, tag, v, meta) => {
                if v.len() != DIM {
                    return Err(ErrorCode::Dimension);
                }
                if meta.len() > valori_kernel::MAX_META_LEN {
                    return Err(ErrorCode::InvalidInput);
                }
                let id = Self::pick(
                    self.next[0],
                    id,
                    id.is_some_and(|i| self.records.contains_key(&i)),
                )?;
                self.records.insert(id, (tag, meta, v));
                self.next[0] = self.next[0].max(id + 1);
                Ok(Applied::Created(id))
            }
            Op::Batch(ids, tags, v) => {
                if v.len() % DIM != 0 {
                    return Err(ErrorCode::Dimension);
                }
                let n = v.len() / DIM;
                if n == 0
                    || !(ids.is_empty() || ids.len() == n)
                    || !(tags.is_empty() || tags.len() == n)
                {
                    return Err(ErrorCode::InvalidInput);
                }
                let ids: Vec<u64> = if ids.is_empty() {
                    if n as u64 > u64::MAX - self.next[0] {
                        return Err(ErrorCode::Full);
                    }
                    (self.next[0]..self.next[0] + n as u64).collect()
                } else {
                    for id in &ids {
                        if *id == u64::MAX {
                            return Err(ErrorCode::InvalidInput);
                        }
                        if self.records.contains_key(id) {
                            return Err(ErrorCode::Exists);
                        }
                    }
                    let mut s = ids.clone();
                    s.sort();
                    s.dedup();
                    if s.len() != ids.len() {
                        return Err(ErrorCode::InvalidInput);
                    }
                    ids
                };
                for (i, id) in ids.iter().enumerate() {
                    self.records.insert(
                        *id,
                        (
                            tags.get(i).copied(),
                            vec![],
                            v[i * DIM..(i + 1) * DIM].to_vec(),
                        ),
                    );
                    self.next[0] = self.next[0].max(id + 1);
                }
                Ok(Applied::Batch {
                    first_id: ids[0],
                    count: n as u64,
                })
            }
            Op::Delete(id) => {
                if self.records.remove(&id).is_none() {
                    return Err(ErrorCode::NotFound);
                }
                let linked: Vec<u64> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.1 == Some(id))
                    .map(|(k, _)| *k)
                    .collect();
                for n in linked {
                    self.delete_node(n);
                }
                Ok(Applied::Done)
            }
            Op::SetMeta(id, m) => match self.records.get_mut(&id) {
                Some(r) => {
                    r.1 = m;
                    Ok(Applied::Done)
                }
                None => Err(ErrorCode::NotFound),
            },
            Op::SetTag(id, t) => match self.records.get_mut(&id) {
                Some(r) => {
                    r.0 = t;
                    Ok(Applied::Done)
                }
                None => Err(ErrorCode::NotFound),
            },
            Op::Node(id, kind, rec, label) => {
                let id = Self::pick(
                    self.next[1],
                    id,
                    id.is_some_and(|i| self.nodes.contains_key(&i)),
                )?;
                if rec.is_some_and(|r| !self.records.contains_key(&r)) {
                    return Err(ErrorCode::NotFound);
                }
                self.nodes.insert(id, (kind, rec, label));
                self.next[1] = self.next[1].max(id + 1);
                Ok(Applied::Created(id))
            }
            Op::DelNode(id) => {
                if !self.nodes.contains_key(&id) {
                    return Err(ErrorCode::NotFound);
                }
                self.delete_node(id);
                Ok(Applied::Done)
            }
            Op::Edge(id, kind, from, to, w) => {
                let id = Self::pick(
                    self.next[2],
                    id,
                    id.is_some_and(|i| self.edges.contains_key(&i)),
                )?;
                if !self.nodes.contains_key(&from) || !self.nodes.contains_key(&to) {
                    return Err(ErrorCode::NotFound);
                }
                self.edges.insert(id, (kind, from, to, w));
                self.next[2] = self.next[2].max(id + 1);
                Ok(Applied::Created(id))
            }
            Op::DelEdge(id) => match self.edges.remove(&id) {
                Some(_) => Ok(Applied::Done),
                None => Err(ErrorCode::NotFound),
            },
        }
    }

    fn search(&self, q: &[i32], k: usize, tag: Option<u64>) -> Vec<(i128, u64)> {
        let mut all: Vec<(i128, u64)> = self
            .records
            .iter()
            .filter(|(_, r)| tag.is_none() || r.0 == tag)
            .map(|(id, r)| {
                let d: i128 =
                    r.2.iter()
                        .zip(q)
                        .map(|(a, b)| {
                            let d = i128::from(*a) - i128::from(*b);
                            d * d
                        })
                        .sum();
                (d, *id)
            })
            .collect();
        all.sort();
        all.truncate(k);
        all
    }

    fn traverse(&self, start: u64, hops: u32) -> Vec<(u32, u64)> {
        let mut seen = std::collections::BTreeSet::from([start]);
        let mut frontier = vec![start];
        let mut out = vec![];
        for depth in 1..=hops {
            let mut next = std::collections::BTreeSet::new();
            for f in &frontier {
                for e in self.edges.values() {
                    if e.1 == *f && !seen.contains(&e.2) {
                        next.insert(e.2);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            seen.extend(next.iter().copied());
            out.extend(next.iter().map(|n| (depth, *n)));
            frontier = next.into_iter().collect();
        }
        out
    }
}

fn visible(k: &Kernel<'_>) -> Model {
    Model {
        records: k
            .records()
            .map(|r| {
                (
                    r.id,
                    (
                        r.tag,
                        r.meta.to_vec(),
                        r.vector.iter().map(|x| x.0).collect(),
                    ),
                )
            })
            .collect(),
        nodes: k
            .nodes()
            .map(|n| (n.id, (n.kind, n.record, n.label.to_vec())))
            .collect(),
        edges: k
            .edges()
            .map(|e| (e.id, (e.kind, e.from, e.to, e.weight.map(|w| w.0))))
            .collect(),
        next: [k.next_record_id(), 0, 0],
    }
}

fn value() -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => -3i32..=3,
        2 => any::<i32>(),
        1 => Just(i32::MAX),
        1 => Just(i32::MIN),
    ]
}

fn small_id() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..12, 1 => Just(u64::MAX), 1 => Just(u64::MAX - 1)]
}

fn op() -> impl Strategy<Value = Op> {
    let bytes = prop::collection::vec(any::<u8>(), 0..6);
    prop_oneof![
        6 => (prop::option::of(small_id()), prop::option::of(0u64..3), prop_oneof![9 => prop::collection::vec(value(), DIM..=DIM), 1 => prop::collection::vec(value(), 0..5)], bytes.clone())
            .prop_map(|(i, t, v, m)| Op::Insert(i, t, v, m)),
        2 => (1usize..4, any::<bool>(), any::<bool>(), prop::collection::vec(value(), 12), prop::collection::vec(0u64..14, 4))
            .prop_map(|(n, explicit, tagged, v, ids)| {
                let ids = if explicit { ids[..n].to_vec() } else { vec![] };
                let tags = if tagged { (0..n as u64).map(|t| t % 3).collect() } else { vec![] };
                Op::Batch(ids, tags, v[..n * DIM].to_vec())
            }),
        3 => small_id().prop_map(Op::Delete),
        1 => (small_id(), bytes.clone()).prop_map(|(i, m)| Op::SetMeta(i, m)),
        1 => (small_id(), prop::option::of(0u64..3)).prop_map(|(i, t)| Op::SetTag(i, t)),
        3 => (prop::option::of(small_id()), 0u32..3, prop::option::of(small_id()), bytes)
            .prop_map(|(i, k, r, l)| Op::Node(i, k, r, l)),
        1 => small_id().prop_map(Op::DelNode),
        4 => (prop::option::of(small_id()), 0u32..3, small_id(), small_id(), prop::option::of(value()))
            .prop_map(|(i, k, f, t, w)| Op::Edge(i, k, f, t, w)),
        1 => small_id().prop_map(Op::DelEdge),
    ]
}

fn cap(n: u32) -> Capacity {
    Capacity {
        records: n,
        nodes: n,
        edges: n,
        meta_bytes: 8 * n,
        label_bytes: 8 * n,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random command sequences: same results and visible state as the model, on both kinds of
    /// store; failed commands leave the hash unchanged; searches and traversals agree with
    /// brute force; snapshots round-trip.
    #[test]
    fn kernel_matches_model(ops in prop::collection::vec(op(), 1..60), q in prop::collection::vec(value(), DIM), k in 1u32..8) {
        let config = Config::new(DIM as u32, Metric::L2).unwrap();
        let mut model = Model::default();
        let mut grow = Kernel::new(config).unwrap();
        let mut mem = vec![0u8; Kernel::mem_size(config, cap(512)).unwrap()];
        let mut fixed = Kernel::with_memory(config, cap(512), &mut mem).unwrap();
        let mut buf = Vec::new();
        for op in &ops {
            let before = grow.state_hash();
            let want = model.apply(op);
            let got = with_cmd(op, &mut buf, |c| grow.apply(c)).map_err(|e| e.code());
            let got_fixed = with_cmd(op, &mut buf, |c| fixed.apply(c)).map_err(|e| e.code());
            prop_assert_eq!(&got, &want, "{:?}", op);
            prop_assert_eq!(&got_fixed, &want, "{:?}", op);
            let after = grow.state_hash();
            prop_assert_eq!(after, fixed.state_hash());
            if want.is_err() {
                prop_assert_eq!(after, before, "failed command changed the hash: {:?}", op);
            }
            let mut seen = visible(&grow);
            seen.next = model.next;
            prop_assert_eq!(&seen, &model);
        }
        let qf: Vec<Fxp> = q.iter().map(|&x| Fxp(x)).collect();
        for tag in [None, Some(0), Some(1)] {
            let hits: Vec<(i128, u64)> = grow.search_vec(&qf, k, tag).unwrap().iter().map(|h| (h.distance, h.id)).collect();
            prop_assert_eq!(hits, model.search(&q, k as usize, tag));
        }
        for start in model.nodes.keys().copied().take(3) {
            let mut out = vec![Hop::default(); 64];
            let n = grow.traverse(start, 3, Direction::Outgoing, None, &mut out).unwrap();
            let got: Vec<(u32, u64)> = out[..n].iter().map(|h| (h.depth, h.node)).collect();
            prop_assert_eq!(got, model.traverse(start, 3));
        }
        let bytes = grow.to_bytes();
        prop_assert_eq!(grow.encoded_len_hint(), bytes.len() as u64);
        let mut fixed_bytes = vec![0u8; fixed.encoded_len() as usize];
        prop_assert_eq!(fixed.encode(&mut fixed_bytes).unwrap(), bytes.len());
        prop_assert_eq!(&fixed_bytes, &bytes);
        let back = Kernel::from_bytes(&bytes).unwrap();
        prop_assert_eq!(back.to_bytes(), bytes);
        prop_assert_eq!(back.state_hash(), grow.state_hash());
    }

    /// With small fixed capacities, a command either does what the growable kernel does or
    /// fails with `Full` and changes nothing.
    #[test]
    fn full_fixed_store_changes_nothing(ops in prop::collection::vec(op(), 1..60)) {
        let config = Config::new(DIM as u32, Metric::L2).unwrap();
        let mut grow = Kernel::new(config).unwrap();
        let mut mem = vec![0u8; Kernel::mem_size(config, cap(3)).unwrap()];
        let mut fixed = Kernel::with_memory(config, cap(3), &mut mem).unwrap();
        let mut buf = Vec::new();
        for op in &ops {
            let before = fixed.state_hash();
            let got = with_cmd(op, &mut buf, |c| fixed.apply(c));
            match got {
                Err(e) if e.code() == ErrorCode::Full => {
                    prop_assert_eq!(fixed.state_hash(), before);
                }
                other => {
                    // Keep the growable twin in step; it must agree.
                    let want = with_cmd(op, &mut buf, |c| grow.apply(c));
                    prop_assert_eq!(other.map_err(|e| e.code()), want.map_err(|e| e.code()));
                    prop_assert_eq!(fixed.state_hash(), grow.state_hash());
                }
            }
            prop_assert_eq!(fixed.state_hash(), grow.state_hash(), "diverged after {:?}", op);
        }
    }

    /// Commands round-trip through their wire encoding, from native and from wire form.
    #[test]
    fn commands_round_trip(op in op()) {
        let mut buf = Vec::new();
        with_cmd(&op, &mut buf, |c| {
            let bytes = c.to_vec();
            assert_eq!(bytes.len(), c.encoded_len());
            let back = Command::decode(&bytes).unwrap();
            assert_eq!(&back, c);
            assert_eq!(back.to_vec(), bytes);
            let mut small = vec![0u8; bytes.len().saturating_sub(1)];
            assert!(matches!(c.encode(&mut small), Err(valori_kernel::Error::InsufficientSize { needed }) if needed == bytes.len() as u64));
        });
    }

    /// Random bytes never panic the decoders; whatever decodes re-encodes to the same bytes.
    #[test]
    fn decoders_survive_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(k) = Kernel::from_bytes(&bytes) {
            prop_assert_eq!(k.to_bytes(), bytes.clone());
        }
        let _ = Command::decode(&bytes);
    }

    /// Every bit flip of a valid encoding is rejected or decodes to a canonical state (which
    /// then has a different hash).
    #[test]
    fn bit_flips_are_detected_or_canonical(ops in prop::collection::vec(op(), 1..20), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let config = Config::new(DIM as u32, Metric::L2).unwrap();
        let mut k = Kernel::new(config).unwrap();
        let mut buf = Vec::new();
        for op in &ops {
            let _ = with_cmd(op, &mut buf, |c| k.apply(c));
        }
        let mut bytes = k.to_bytes();
        let i = flip.index(bytes.len());
        bytes[i] ^= 1 << bit;
        match Kernel::from_bytes(&bytes) {
            Ok(d) => {
                prop_assert_eq!(d.to_bytes(), bytes);
                prop_assert_ne!(d.state_hash(), k.state_hash());
            }
            Err(e) => prop_assert_eq!(e.code(), ErrorCode::Corrupt, "{}", e),
        }
        let mut cmd_bytes = Vec::new();
        if let Some(op) = ops.first() {
            with_cmd(op, &mut buf, |c| cmd_bytes = c.to_vec());
            let j = flip.index(cmd_bytes.len());
            cmd_bytes[j] ^= 1 << bit;
            let _ = Command::decode(&cmd_bytes);
        }
    }
}

proptest! {
    /// Stores whose values allow the narrow (64-bit) search loops rank exactly like a 128-bit
    /// brute force, for L2 and inner product; one large value switches to the wide loops with
    /// the same results.
    #[test]
    fn narrow_and_wide_search_paths_agree(
        rows in prop::collection::vec(prop::collection::vec(-(1i32 << 21)..(1 << 21), 5), 1..40),
        q in prop::collection::vec(-(1i32 << 21)..(1 << 21), 5),
        large in any::<bool>(),
        k in 1u32..10,
    ) {
        for metric in [Metric::L2, Metric::InnerProduct] {
            let mut kern = Kernel::new(Config::new(5, metric).unwrap()).unwrap();
            let mut all = rows.clone();
            if large {
                all.push(vec![i32::MIN, 0, 0, 0, i32::MAX]);
            }
            for r in &all {
                let v: Vec<Fxp> = r.iter().map(|&x| Fxp(x)).collect();
                kern.apply(&Command::Insert { id: None, tag: None, vector: v[..].into(), meta: b"" }).unwrap();
            }
            let mut want: Vec<(i128, u64)> = all
                .iter()
                .enumerate()
                .map(|(id, r)| {
                    let d: i128 = match metric {
                        Metric::L2 => r.iter().zip(&q).map(|(a, b)| (i128::from(*a) - i128::from(*b)).pow(2)).sum(),
                        _ => -r.iter().zip(&q).map(|(a, b)| i128::from(*a) * i128::from(*b)).sum::<i128>(),
                    };
                    (d, id as u64)
                })
                .collect();
            want.sort();
            want.truncate(k as usize);
            let qf: Vec<Fxp> = q.iter().map(|&x| Fxp(x)).collect();
            let got: Vec<(i128, u64)> = kern.search_vec(&qf, k, None).unwrap().iter().map(|h| (h.distance, h.id)).collect();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn search_does_not_allocate_for_absurd_k() {
    let config = Config::new(2, Metric::L2).unwrap();
    let mut k = Kernel::new(config).unwrap();
    let v = [Fxp(1), Fxp(2)];
    k.apply(&Command::Insert {
        id: None,
        tag: None,
        vector: v[..].into(),
        meta: b"",
    })
    .unwrap();
    // u32::MAX results requested, one exists: one slot suffices.
    let mut out = [Hit::default(); 1];
    assert_eq!(k.search(&v, u32::MAX, None, &mut out), Ok(1));
    assert_eq!(k.search_vec(&v, u32::MAX, None).unwrap().len(), 1);
    let mut none: [Hit; 0] = [];
    assert_eq!(
        k.search(&v, 5, None, &mut none),
        Err(valori_kernel::Error::InsufficientSize { needed: 1 })
    );
    let empty = Kernel::new(config).unwrap();
    assert_eq!(empty.search(&v, 10, None, &mut none), Ok(0));
}
