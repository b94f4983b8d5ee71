//! `Command::kind` and `Command::name` agree with the encoding (docs/FORMAT.md §5): the
//! variant index is the first byte every encoder writes.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use valori_kernel::{Command, Fxp, Ids, Vector, COMMAND_NAMES, COMMAND_NAMES_C};

#[test]
fn kind_is_the_first_encoded_byte_and_names_are_distinct() {
    let v = [Fxp(1), Fxp(-2)];
    let cmds = [
        Command::Insert {
            id: None,
            tag: Some(3),
            vector: Vector::from(&v[..]),
            meta: b"m",
        },
        Command::InsertBatch {
            ids: Ids::from(&[][..]),
            tags: Ids::from(&[][..]),
            vectors: Vector::from(&v[..]),
        },
        Command::Delete { id: 1 },
        Command::SetMeta { id: 1, meta: b"" },
        Command::SetTag { id: 1, tag: None },
        Command::CreateNode {
            id: None,
            kind: 2,
            record: None,
            label: b"l",
        },
        Command::DeleteNode { id: 4 },
        Command::CreateEdge {
            id: Some(9),
            kind: 1,
            from: 1,
            to: 2,
            weight: None,
        },
        Command::DeleteEdge { id: 9 },
    ];
    for (i, c) in cmds.iter().enumerate() {
        assert_eq!(c.kind() as usize, i);
        assert_eq!(c.to_vec()[0] as usize, i, "{c:?}");
        assert_eq!(c.name(), COMMAND_NAMES[i]);
        assert_eq!(COMMAND_NAMES_C[i].to_str().unwrap(), COMMAND_NAMES[i]);
    }
    let mut names = COMMAND_NAMES.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cmds.len());
}
