//! A command decodes only from the bytes its encoder writes: postcard also reads overlong
//! varints, which would give one command two encodings (found by the `command` fuzz target).

#![allow(clippy::unwrap_used, missing_docs)]

use valori_kernel::{Command, ErrorCode};

#[test]
fn overlong_varints_are_refused() {
    let canonical = Command::Delete { id: 0 }.to_vec();
    assert_eq!(canonical, [2, 0]);
    assert_eq!(
        Command::decode(&canonical).unwrap(),
        Command::Delete { id: 0 }
    );
    for overlong in [&[2u8, 128, 0][..], &[2, 128, 128, 0], &[6, 0, 128, 0]] {
        let e = Command::decode(overlong).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Corrupt, "{overlong:?}");
    }
    // The same id, written canonically at its full width, decodes.
    let big = Command::SetTag {
        id: 300,
        tag: Some(u64::MAX),
    };
    assert_eq!(Command::decode(&big.to_vec()).unwrap(), big);
}

/// A batch with explicit ids near the top of the id space (found by the `command` fuzz
/// target: the automatic id of a later row was computed, and overflowed, although unused).
#[test]
fn a_batch_with_explicit_ids_near_the_top_applies() {
    use valori_kernel::{Applied, Config, Fxp, Kernel, Metric, Words};
    let mut k = Kernel::new(Config::new(1, Metric::L2).unwrap()).unwrap();
    let ids = [u64::MAX - 1, u64::MAX - 2, 5];
    let v = [Fxp(1), Fxp(2), Fxp(3)];
    let applied = k
        .apply(&Command::InsertBatch {
            ids: Words::Native(&ids),
            tags: Words::EMPTY,
            vectors: v[..].into(),
        })
        .unwrap();
    assert_eq!(
        applied,
        Applied::Batch {
            first_id: u64::MAX - 1,
            count: 3
        }
    );
    assert_eq!(k.get(u64::MAX - 2).unwrap().vector.to_vec(), [Fxp(2)]);
    assert_eq!(k.get(5).unwrap().vector.to_vec(), [Fxp(3)]);
}
