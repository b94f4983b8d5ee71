//! Writes `include/valori.h` from the C-ABI crate (`bindings/`, configured by
//! `bindings/cbindgen.toml`). With `--verify`, writes nothing and fails if the committed
//! header differs from what the code generates.
//!
//! `cargo run -p valori-gen-header [-- --verify]`

#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let verify = std::env::args().any(|a| a == "--verify");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let crate_dir = root.join("bindings");
    let header = root.join("include/valori.h");
    let bindings = match cbindgen::generate(&crate_dir) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cbindgen failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let current = std::fs::read(&header).unwrap_or_default();
    if verify {
        if current == fresh {
            println!("{} is up to date", header.display());
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "{} is stale: run `cargo run -p valori-gen-header` and commit the result",
                header.display()
            );
            ExitCode::FAILURE
        }
    } else if current == fresh {
        println!("{} unchanged", header.display());
        ExitCode::SUCCESS
    } else {
        match std::fs::write(&header, &fresh) {
            Ok(()) => {
                println!("wrote {}", header.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot write {}: {e}", header.display());
                ExitCode::FAILURE
            }
        }
    }
}
