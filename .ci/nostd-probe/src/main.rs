//! Links the kernel into a `no_std`, `no_main` binary with no global allocator.
#![no_std]
#![no_main]
// A bare-metal image has nowhere to return to: spinning is the intended end state.
#![allow(clippy::empty_loop)]

use core::panic::PanicInfo;
use valori_kernel::{Capacity, Command, Config, Fxp, Hit, Kernel, Metric};

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

/// Entry point: builds a kernel in a stack buffer, inserts, searches and hashes.
#[no_mangle]
pub extern "C" fn _start() -> ! {
    let mut mem = [0u8; 8192];
    let cap = Capacity { records: 16, nodes: 4, edges: 4, meta_bytes: 64, label_bytes: 64 };
    let mut ok = false;
    if let Ok(config) = Config::new(4, Metric::L2) {
        if let Ok(mut k) = Kernel::with_memory(config, cap, &mut mem) {
            let v = [Fxp::ONE, Fxp::ZERO, Fxp::ZERO, Fxp::ONE];
            let cmd = Command::Insert { id: None, tag: None, vector: v[..].into(), meta: &[] };
            let mut wire = [0u8; 64];
            if let Ok(n) = cmd.encode(&mut wire) {
                if let Ok(decoded) = Command::decode(&wire[..n]) {
                    ok = k.apply(&decoded).is_ok();
                }
            }
            let mut hits = [Hit::default(); 4];
            ok &= k.search(&v, 4, None, &mut hits) == Ok(1);
            ok &= k.state_hash()[0] != 0 || k.state_hash()[1] != 0;
        }
    }
    core::hint::black_box(ok);
    loop {}
}
