//! `Command::decode` on any bytes. Oracles: no panic, no allocation sized by a hostile length;
//! an accepted command re-encodes to exactly the input (`to_vec`, `encode`, `encoded_len`
//! agree); applied to a fresh kernel it either succeeds or fails without changing the state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valori_kernel::{Command, Config, Kernel, Metric};

fuzz_target!(|data: &[u8]| {
    let Ok(cmd) = Command::decode(data) else {
        return;
    };
    assert_eq!(
        cmd.to_vec(),
        data,
        "decoded {cmd:?} re-encodes to other bytes"
    );
    assert_eq!(cmd.encoded_len(), data.len());
    let mut buf = vec![0u8; data.len()];
    assert_eq!(cmd.encode(&mut buf), Ok(data.len()));
    assert_eq!(buf, data);
    if let Some(short) = data.len().checked_sub(1) {
        let mut small = vec![0xa5u8; short];
        assert!(
            cmd.encode(&mut small).is_err(),
            "encoded into a short buffer"
        );
    }
    assert_eq!(Command::decode(&buf).as_ref(), Ok(&cmd));

    // Two dimensions so that small vectors from the corpus apply.
    let Ok(config) = Config::new(2, Metric::L2) else {
        return;
    };
    let Ok(mut k) = Kernel::new(config) else {
        return;
    };
    let before = k.state_hash();
    if k.apply(&cmd).is_err() {
        assert_eq!(k.state_hash(), before, "a failed {cmd:?} changed the state");
    }
});
