//! `Kernel::traverse` against a reference breadth-first search: every result in order, and a
//! buffer too small is refused with exactly the size needed and left untouched.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use valori_kernel::{Capacity, Command, Config, Direction, Error, Hop, Kernel, Metric, Object};

/// A hop no traversal returns: marks slots that must stay untouched.
const SENTINEL: Hop = Hop {
    depth: u32::MAX,
    node: 0xDEAD_BEEF_DEAD_BEEF,
};

#[derive(Clone, Debug)]
struct Graph {
    nodes: Vec<u64>,
    /// (from index, to index, kind)
    edges: Vec<(usize, usize, u32)>,
}

fn build<'m>(k: &mut Kernel<'m>, g: &Graph) {
    for &id in &g.nodes {
        k.apply(&Command::CreateNode {
            id: Some(id),
            kind: 0,
            record: None,
            label: &[],
        })
        .unwrap();
    }
    for &(from, to, kind) in &g.edges {
        k.apply(&Command::CreateEdge {
            id: None,
            kind,
            from: g.nodes[from],
            to: g.nodes[to],
            weight: None,
        })
        .unwrap();
    }
}

fn growable(g: &Graph) -> Kernel<'static> {
    let mut k = Kernel::new(Config::new(1, Metric::L2).unwrap()).unwrap();
    build(&mut k, g);
    k
}

/// The reference: plain BFS over an edge list.
fn reference(g: &Graph, start: u64, hops: u32, d: Direction, kind: Option<u32>) -> Vec<Hop> {
    let mut adj: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &(f, t, k) in &g.edges {
        if kind.is_some_and(|want| want != k) {
            continue;
        }
        let (f, t) = (g.nodes[f], g.nodes[t]);
        if d != Direction::Incoming {
            adj.entry(f).or_default().push(t);
        }
        if d != Direction::Outgoing {
            adj.entry(t).or_default().push(f);
        }
    }
    let mut seen = BTreeSet::from([start]);
    let mut frontier = BTreeSet::from([start]);
    let mut out = vec![];
    for depth in 1..=hops {
        let next: BTreeSet<u64> = frontier
            .iter()
            .flat_map(|n| adj.get(n).into_iter().flatten().copied())
            .filter(|n| !seen.contains(n))
            .collect();
        if next.is_empty() {
            break;
        }
        seen.extend(&next);
        out.extend(next.iter().map(|&node| Hop { depth, node }));
        frontier = next;
    }
    out
}

fn graph() -> impl Strategy<Value = Graph> {
    prop::collection::btree_set(0u64..1_000, 1..24).prop_flat_map(|ids| {
        let nodes: Vec<u64> = ids.into_iter().collect();
        let n = nodes.len();
        prop::collection::vec((0..n, 0..n, 0u32..3), 0..60).prop_map(move |edges| Graph {
            nodes: nodes.clone(),
            edges,
        })
    })
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::Outgoing),
        Just(Direction::Incoming),
        Just(Direction::Both)
    ]
}

/// Every buffer size on one kernel: too small is refused exactly and untouched, big enough
/// gives the reference result.
fn check_all_sizes(
    k: &Kernel<'_>,
    want: &[Hop],
    start: u64,
    hops: u32,
    d: Direction,
    kind: Option<u32>,
) -> Result<(), TestCaseError> {
    for cap in 0..=k.node_count() + 1 {
        let mut out = vec![SENTINEL; cap];
        let got = k.traverse(start, hops, d, kind, &mut out);
        if cap < want.len() {
            prop_assert_eq!(
                got,
                Err(Error::InsufficientSize {
                    needed: want.len() as u64
                })
            );
            prop_assert!(out.iter().all(|h| *h == SENTINEL), "cap {} written", cap);
        } else {
            prop_assert_eq!(got, Ok(want.len()), "cap {}", cap);
            prop_assert_eq!(&out[..want.len()], want);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn traverse_matches_the_reference_and_sizes_exactly(
        g in graph(),
        pick in any::<prop::sample::Index>(),
        hops in 0u32..8,
        d in direction(),
        kind in prop::option::of(0u32..3),
    ) {
        let start = g.nodes[pick.index(g.nodes.len())];
        let want = reference(&g, start, hops, d, kind);

        let grow = growable(&g);
        check_all_sizes(&grow, &want, start, hops, d, kind)?;

        // A kernel in caller memory answers the same.
        let cap = Capacity { records: 0, nodes: 24, edges: 60, meta_bytes: 0, label_bytes: 0 };
        let config = Config::new(1, Metric::L2).unwrap();
        let mut mem = vec![0u8; Kernel::mem_size(config, cap).unwrap()];
        let mut fixed = Kernel::with_memory(config, cap, &mut mem).unwrap();
        build(&mut fixed, &g);
        check_all_sizes(&fixed, &want, start, hops, d, kind)?;

        // With scratch for every other node, a small buffer is answered from the scratch.
        let mut scratch = vec![SENTINEL; g.nodes.len() - 1];
        for cap in 0..=want.len() {
            let mut out = vec![SENTINEL; cap];
            let got = fixed.traverse_with_scratch(start, hops, d, kind, &mut out, &mut scratch);
            if cap < want.len() {
                prop_assert_eq!(got, Err(Error::InsufficientSize { needed: want.len() as u64 }));
                prop_assert!(out.iter().all(|h| *h == SENTINEL));
            } else {
                prop_assert_eq!(got, Ok(want.len()));
                prop_assert_eq!(&out[..], &want[..]);
            }
        }
    }
}

#[test]
fn a_buffer_of_exactly_the_result_size_takes_a_level_with_repeats() {
    // start -> a, start -> b, a -> c, b -> c: level 2 meets c twice with the buffer full.
    let g = Graph {
        nodes: vec![1, 2, 3, 4],
        edges: vec![(0, 1, 0), (0, 2, 0), (1, 3, 0), (2, 3, 0)],
    };
    let k = growable(&g);
    let mut out = [SENTINEL; 3];
    assert_eq!(k.traverse(1, 2, Direction::Outgoing, None, &mut out), Ok(3));
    let hop = |depth, node| Hop { depth, node };
    assert_eq!(out, [hop(1, 2), hop(1, 3), hop(2, 4)]);
}

#[test]
fn an_unknown_start_is_not_found_and_writes_nothing() {
    let k = growable(&Graph {
        nodes: vec![5, 6],
        edges: vec![(0, 1, 0)],
    });
    let mut out = [SENTINEL; 4];
    assert_eq!(
        k.traverse(7, 3, Direction::Both, None, &mut out),
        Err(Error::NotFound(Object::Node, 7))
    );
    assert_eq!(out, [SENTINEL; 4]);
}

#[test]
fn neighbors_follow_the_direction_and_refuse_an_unknown_node() {
    let g = Graph {
        nodes: vec![10, 20, 30],
        edges: vec![(0, 1, 1), (2, 0, 2), (0, 0, 3)],
    };
    let k = growable(&g);
    let ends = |d| -> Vec<(u64, u64, u64)> {
        k.neighbors(10, d)
            .unwrap()
            .map(|e| (e.id, e.from, e.to))
            .collect()
    };
    let edge_ids: Vec<u64> = k.edges().map(|e| e.id).collect();
    let (a, b, c) = (edge_ids[0], edge_ids[1], edge_ids[2]);
    assert_eq!(ends(Direction::Outgoing), [(a, 10, 20), (c, 10, 10)]);
    assert_eq!(ends(Direction::Incoming), [(b, 30, 10), (c, 10, 10)]);
    assert_eq!(
        ends(Direction::Both),
        [(a, 10, 20), (c, 10, 10), (b, 30, 10), (c, 10, 10)]
    );
    assert!(matches!(
        k.neighbors(99, Direction::Both).map(|i| i.count()),
        Err(Error::NotFound(Object::Node, 99))
    ));
    for d in [Direction::Outgoing, Direction::Incoming, Direction::Both] {
        assert_eq!(Direction::from_name(d.name()), Some(d));
    }
    assert_eq!(Direction::from_name("sideways"), None);
    for m in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        assert_eq!(Metric::from_name(m.name()), Some(m));
    }
    assert_eq!(Metric::from_name("L2"), None);
}
