//! Writes a database whose whole content is in its WAL (no checkpoint), for timing
//! `valori verify`: `cargo run --release -p valori-cli --example make_log -- DIR VECTORS DIM
//! [BATCH]`. Vectors are generated deterministically and inserted in batches of `BATCH`
//! (default 1,000; 1 logs one insert per record).

use std::process::ExitCode;
use valori_engine::valori_kernel::Metric;
use valori_engine::{Durability, Engine, Options};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(n), Some(dim)) = (
        args.get(1),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
        args.get(3).and_then(|s| s.parse::<u32>().ok()),
    ) else {
        eprintln!("usage: make_log DIR VECTORS DIM [BATCH]");
        return ExitCode::from(2);
    };
    let options = Options::new(dim, Metric::L2)
        .durability(Durability::None)
        .checkpoint_wal_bytes(0);
    let db = match Engine::open(dir, options) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("make_log: {e}");
            return ExitCode::from(1);
        }
    };
    let batch_size = args
        .get(4)
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1000)
        .max(1);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut done = 0;
    while done < n {
        let rows = batch_size.min(n - done);
        let batch: Vec<f32> = (0..rows * dim as usize)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let r = if rows == 1 {
            db.insert(&batch, None, b"").map(drop)
        } else {
            db.insert_batch(&batch, &[]).map(drop)
        };
        if let Err(e) = r {
            eprintln!("make_log: {e}");
            return ExitCode::from(1);
        }
        done += rows;
    }
    match db.close() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make_log: {e}");
            ExitCode::from(1)
        }
    }
}
