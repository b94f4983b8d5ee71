//! Two terminals, one memory: a writer publishes its database through NATS JetStream, a
//! follower applies it, and both print the same state hash at the same sequence number.
//!
//! ```text
//! nats-server -js -sd /tmp/nats -a 127.0.0.1 -p 4222
//! cargo run -p valori-fleet --example fleet -- write  nats://127.0.0.1:4222 /tmp/writer
//! cargo run -p valori-fleet --example fleet -- follow nats://127.0.0.1:4222 /tmp/follower
//! ```
//!
//! `write URL DIR [ROUNDS]` inserts a batch of memories a round (5 rounds by default, one a
//! second), and prints `seq N hash H` once the stream has acknowledged each. `follow URL DIR
//! [SEQ]` prints `seq N hash H` each time it has applied more, and exits once it reaches `SEQ`
//! (if given).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use valori_engine::valori_kernel::Metric;
use valori_engine::{Engine, Options};
use valori_fleet::Fleet;

const DATABASE: &str = "demo";

fn hex(h: [u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fleet write URL DIR [ROUNDS] | fleet follow URL DIR [SEQ]";
    let (mode, url, dir) = match args.as_slice() {
        [m, u, d, ..] => (m.as_str(), u.as_str(), Path::new(d)),
        _ => return Err(usage.into()),
    };
    let fleet = Fleet::connect(url, 1).await?;
    match mode {
        "write" => {
            let rounds: u32 = args.get(3).map_or(Ok(5), |s| s.parse())?;
            let db = Arc::new(Engine::open(dir, Options::new(8, Metric::Cosine))?);
            let leader = fleet.lead(DATABASE, Arc::clone(&db)).await?;
            for round in 0..rounds {
                let batch: Vec<f32> = (0..8 * 100)
                    .map(|i| ((round * 800 + i) % 97) as f32 / 97.0 - 0.5)
                    .collect();
                db.insert_batch(&batch, &[])?;
                let seq = db.sequence()?;
                leader.wait_published(seq).await?;
                println!("seq {seq} hash {}", hex(db.state_hash()?));
                if round + 1 < rounds {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        "follow" => {
            let until: Option<u64> = args.get(3).map(|s| s.parse()).transpose()?;
            let follower = fleet.follow(DATABASE, dir).await?;
            let mut shown = None;
            loop {
                let status = follower.status();
                if let Some(e) = status.error {
                    return Err(e.into());
                }
                if shown != Some(status.applied) {
                    let db = follower.engine();
                    let (hash, seq) = db.state_hash_at()?;
                    println!("seq {seq} hash {}", hex(hash));
                    shown = Some(seq);
                    if until.is_some_and(|u| seq >= u) {
                        return Ok(());
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
