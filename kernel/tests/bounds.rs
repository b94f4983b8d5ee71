//! Bounds on a growable kernel: a command past a bound fails with `Full` and changes nothing;
//! bounds are not state (same hash as an unbounded kernel).

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use valori_kernel::{Bounds, Command, Config, Error, Fxp, Kernel, Metric, Resource, Words};

fn v(x: i32) -> [Fxp; 2] {
    [Fxp(x), Fxp(-x)]
}

fn insert(k: &mut Kernel<'_>, x: i32) -> Result<u64, Error> {
    let vector = v(x);
    k.apply(&Command::Insert {
        id: None,
        tag: None,
        vector: vector[..].into(),
        meta: b"",
    })
    .map(|a| match a {
        valori_kernel::Applied::Created(id) => id,
        other => panic!("insert answered {other:?}"),
    })
}

#[test]
fn records_nodes_and_edges_stop_at_their_bounds() {
    let config = Config::new(2, Metric::L2).unwrap();
    let mut bounded = Kernel::new(config).unwrap();
    let mut free = Kernel::new(config).unwrap();
    bounded.set_bounds(Bounds {
        records: Some(3),
        nodes: Some(2),
        edges: Some(1),
    });
    assert_eq!(bounded.bounds().records, Some(3));
    for x in 0..3 {
        assert_eq!(
            insert(&mut bounded, x).unwrap(),
            insert(&mut free, x).unwrap()
        );
    }
    let before = bounded.state_hash();
    assert_eq!(before, free.state_hash(), "bounds must not be state");
    assert_eq!(insert(&mut bounded, 9), Err(Error::Full(Resource::Records)));
    // A batch that would cross the bound is refused whole.
    bounded.apply(&Command::Delete { id: 0 }).unwrap();
    let rows = [v(5), v(6)].concat();
    let batch = Command::InsertBatch {
        ids: Words::EMPTY,
        tags: Words::EMPTY,
        vectors: rows[..].into(),
    };
    let mid = bounded.state_hash();
    assert_eq!(bounded.apply(&batch), Err(Error::Full(Resource::Records)));
    assert_eq!(
        bounded.state_hash(),
        mid,
        "a refused batch changed the state"
    );
    assert_eq!(bounded.len(), 2);

    for _ in 0..2 {
        bounded
            .apply(&Command::CreateNode {
                id: None,
                kind: 1,
                record: None,
                label: b"",
            })
            .unwrap();
    }
    let node = Command::CreateNode {
        id: None,
        kind: 1,
        record: None,
        label: b"",
    };
    assert_eq!(bounded.apply(&node), Err(Error::Full(Resource::Nodes)));
    let edge = |from, to| Command::CreateEdge {
        id: None,
        kind: 0,
        from,
        to,
        weight: None,
    };
    bounded.apply(&edge(0, 1)).unwrap();
    assert_eq!(
        bounded.apply(&edge(1, 0)),
        Err(Error::Full(Resource::Edges))
    );
    // Lifting the bounds lets the same command through.
    bounded.set_bounds(Bounds::default());
    bounded.apply(&edge(1, 0)).unwrap();
    assert_eq!(bounded.edge_count(), 2);
}
