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
//!
//! Shared memory (several writers, one stream of commands): in each terminal
//!
//! ```text
//! cargo run -p valori-fleet --example fleet -- share nats://127.0.0.1:4222 /tmp/robot-a robot-a 5 10
//! cargo run -p valori-fleet --example fleet -- share nats://127.0.0.1:4222 /tmp/robot-b robot-b 5 10
//! ```
//!
//! `share URL DIR WRITER ROUNDS TOTAL` submits a memory a round (one a second), prints
//! `stream S seq N id I` as each comes back from the stream (applied in the stream's order),
//! then waits until the stream holds `TOTAL` commands and prints `stream S seq N hash H`: the
//! same line in every terminal.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use valori_engine::valori_kernel::Metric;
use valori_engine::{Engine, Options};
use valori_fleet::{Fleet, Shared};

const DATABASE: &str = "demo";

fn hex(h: [u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fleet write URL DIR [ROUNDS] | fleet follow URL DIR [SEQ] | \
                 fleet share URL DIR WRITER ROUNDS TOTAL";
    let (mode, url, dir) = match args.as_slice() {
        [m, u, d, ..] => (m.as_str(), u.as_str(), Path::new(d)),
        _ => return Err(usage.into()),
    };
    if mode == "share" {
        return share(url, dir, args.get(3..).unwrap_or_default()).await;
    }
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

/// One member of the shared database `demo-shared`: submits `ROUNDS` memories, then waits for
/// `TOTAL` commands on the stream and prints where it stands.
async fn share(url: &str, dir: &Path, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    use valori_engine::valori_kernel::{fxp, Applied, Command, Words};
    let [writer, rounds, total] = args else {
        return Err("usage: fleet share URL DIR WRITER ROUNDS TOTAL".into());
    };
    let (rounds, total): (u32, u64) = (rounds.parse()?, total.parse()?);
    let member = Shared::open(
        url,
        "demo-shared",
        dir,
        Options::new(8, Metric::Cosine),
        1,
        Some(writer),
    )
    .await?;
    let salt = writer.bytes().map(u32::from).sum::<u32>();
    for round in 0..rounds {
        let v: Vec<f32> = (0..8)
            .map(|i| ((salt * 31 + round * 8 + i) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let v = fxp::to_vec(&v)?;
        let (stream, applied) = member
            .write(&Command::Insert {
                id: None,
                tag: Some(u64::from(salt)),
                vector: Words::Native(&v),
                meta: writer.as_bytes(),
            })
            .await?;
        let id = match applied {
            Applied::Created(id) => id,
            other => return Err(format!("unexpected {other:?}").into()),
        };
        println!(
            "stream {stream} seq {} id {id}",
            member.engine().sequence()?
        );
        if round + 1 < rounds {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    member.wait_stream(total).await?;
    let (hash, seq) = member.engine().state_hash_at()?;
    println!(
        "stream {} seq {seq} hash {}",
        member.status().stream_seq,
        hex(hash)
    );
    drop(member.stop().await);
    Ok(())
}
