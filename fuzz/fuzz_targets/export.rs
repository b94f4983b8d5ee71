//! `Export::decode` on any bytes. Oracles: no panic, no allocation sized by a hostile length
//! or count; an accepted export re-encodes to exactly the input; replaying it never panics,
//! and a successful replay reproduces the recorded hash and agrees with `replay_export`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valori_engine::{replay_export, Export};

fuzz_target!(|data: &[u8]| {
    let Ok(export) = Export::decode(data) else {
        return;
    };
    assert!(
        export.encode() == data,
        "an accepted export re-encodes to other bytes"
    );
    let replayed = export.replay();
    let unchecked = replay_export(&export);
    match (replayed, unchecked) {
        (Ok(k), Ok(u)) => {
            assert_eq!(k.state_hash(), export.state_hash);
            assert_eq!(u.state_hash(), export.state_hash);
        }
        (Err(_), Ok(u)) => assert_ne!(u.state_hash(), export.state_hash),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("replay accepted what replay_export refused: {e}"),
    }
});
