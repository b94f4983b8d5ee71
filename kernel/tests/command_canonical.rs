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
