//! Replication throughput and lag (bench/README.md, "Replication"): a 3-server JetStream
//! cluster on loopback ports (R3 stream), a leader inserting batches of d = 384 vectors with
//! the stream's acknowledgment awaited for each (`--durability stream`), a follower applying
//! them; then a new follower catching up from the bucket's snapshot and the stream.
//!
//! ```text
//! cargo run --release -p valori-fleet --example fleet_bench -- [BATCHES] [BATCH] [SERVERS] [WINDOW]
//! ```
//!
//! Defaults: 100 batches of 1,000 vectors, 3 servers, a window of 1: each batch is committed
//! only once the stream has acknowledged the one before (one writer waiting for each write).
//! With a window of `W`, up to `W` committed batches wait for the stream's acknowledgment at
//! once (as `W` concurrent writers each waiting for its own): the leader commits the next
//! batch locally while the stream stores the previous one. Prints the insert rate (vectors
//! acknowledged by the stream per second), the follower's lag per batch (from the leader's
//! local commit to the follower's apply: p50, p99, max) and the catch-up rate.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use valori_engine::valori_kernel::Metric;
use valori_engine::{Engine, Options};
use valori_fleet::Fleet;

const DIM: usize = 384;

fn batch(round: usize, n: usize) -> Vec<f32> {
    // A cheap deterministic generator (splitmix-like), values in [-1, 1).
    let mut x = (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n * DIM)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let batches = args.first().copied().unwrap_or(100);
    let per = args.get(1).copied().unwrap_or(1000);
    let servers = args.get(2).copied().unwrap_or(3);
    let window = args.get(3).copied().unwrap_or(1).max(1);
    let dir = std::env::temp_dir().join(format!("valori-fleet-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let nats = support::start(servers, &dir);
    let urls: Vec<String> = nats.iter().map(support::Server::url).collect();
    let replicas = if servers >= 3 { 3 } else { 1 };
    let deadline = Instant::now() + Duration::from_secs(60);
    let fleet = loop {
        match Fleet::connect(&urls.join(","), replicas).await {
            Ok(f) => break f,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    println!(
        "replication benchmark: {servers} nats-server(s) (stream R{replicas}), {batches} batches of {per} vectors, d = {DIM}, window {window}"
    );
    let leader = Arc::new(Engine::open(
        dir.join("leader"),
        Options::new(DIM as u32, Metric::L2),
    )?);
    let lead = fleet.lead("bench", Arc::clone(&leader)).await?;
    let follower = fleet.follow("bench", &dir.join("follower")).await?;

    // Load: each batch committed locally (fsync), then acknowledged by the stream; meanwhile
    // the follower's progress is sampled every 0.2 ms (when it first applied each record).
    let data: Vec<Vec<f32>> = (0..batches).map(|r| batch(r, per)).collect();
    let start = Instant::now();
    let load = async {
        let mut committed = Vec::with_capacity(batches);
        let mut waiting = std::collections::VecDeque::new();
        // Where the time goes: committing locally, and waiting for the stream.
        let (mut committing, mut acknowledging) = (Duration::ZERO, Duration::ZERO);
        for b in &data {
            if waiting.len() >= window {
                if let Some(seq) = waiting.pop_front() {
                    let t = Instant::now();
                    lead.wait_published(seq).await?;
                    acknowledging += t.elapsed();
                }
            }
            let t = Instant::now();
            leader.insert_batch(b, &[])?;
            committing += t.elapsed();
            let seq = leader.sequence()?;
            committed.push((seq, Instant::now()));
            waiting.push_back(seq);
        }
        if let Some(&seq) = waiting.back() {
            let t = Instant::now();
            lead.wait_published(seq).await?;
            acknowledging += t.elapsed();
        }
        Ok::<_, Box<dyn std::error::Error>>((
            committed,
            start.elapsed().as_secs_f64(),
            (committing, acknowledging),
        ))
    };
    let target = data.len() as u64 + leader.sequence()?;
    let watch = async {
        let mut seen: Vec<(u64, Instant)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let s = follower.status();
            if seen.last().is_none_or(|(a, _)| *a < s.applied) {
                seen.push((s.applied, Instant::now()));
            }
            if let Some(e) = s.error {
                return Err(e);
            }
            if s.applied >= target {
                return Ok(seen);
            }
            if Instant::now() > deadline {
                return Err("the follower did not catch up".to_string());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    };
    let (loaded, seen) = tokio::join!(load, watch);
    let (committed, load, (committing, acknowledging)) = loaded?;
    let seen = seen?;
    let lags: Vec<f64> = committed
        .iter()
        .filter_map(|(seq, at)| {
            let applied = seen.iter().find(|(a, _)| a >= seq)?.1;
            Some(applied.saturating_duration_since(*at).as_secs_f64() * 1e3)
        })
        .collect();
    let vectors = (batches * per) as f64;
    println!(
        "RESULT per batch: {:.1} ms committing locally (conversion, kernel, fsync), {:.1} ms waiting for the stream's acknowledgment",
        committing.as_secs_f64() * 1e3 / batches as f64,
        acknowledging.as_secs_f64() * 1e3 / batches as f64
    );
    println!(
        "RESULT replicated insert, window {window}: {:.0} vectors/s ({vectors} vectors in {load:.2} s, each batch fsynced and acknowledged by the stream)",
        vectors / load
    );
    let mut sorted = lags.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "RESULT follower lag (leader commit -> follower applied, per batch): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN)
    );
    assert_eq!(follower.engine().state_hash()?, leader.state_hash()?);

    // Catch-up: a checkpoint puts a snapshot in the bucket, more batches go to the stream,
    // then a new follower starts from the bucket and the stream.
    leader.checkpoint()?;
    let snap = leader.newest_snapshot()?.map_or(0, |(s, _)| s);
    let more = (batches / 5).max(1);
    for r in 0..more {
        leader.insert_batch(&batch(batches + r, per), &[])?;
    }
    let last = leader.sequence()?;
    eprintln!("checkpoint at {snap}; {more} more batches committed; waiting for the stream");
    lead.wait_published(last).await?;
    eprintln!("published through {last}; waiting for the bucket");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let bytes = fleet.snapshot("bench").await?;
        if valori_engine::decode_snapshot(&bytes)?.0 >= snap {
            break;
        }
        if Instant::now() > deadline {
            return Err("the bucket never got the checkpoint's snapshot".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = Instant::now();
    let bytes = fleet.snapshot("bench").await?;
    let fetched = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let probe = dir.join("probe");
    Engine::create_from_snapshot(&probe, &bytes, Options::default())?;
    let created = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&probe);
    println!(
        "RESULT catch-up parts: the snapshot ({:.0} MB) read from the bucket in {fetched:.2} s, a database made from it in {created:.2} s",
        bytes.len() as f64 / 1e6
    );
    eprintln!("the bucket holds the snapshot; starting a new follower");
    let start = Instant::now();
    let late = fleet.follow("bench", &dir.join("late")).await?;
    let opened = start.elapsed().as_secs_f64();
    late.wait_applied(last).await?;
    let catch_up = start.elapsed().as_secs_f64();
    let total = leader.len()? as f64;
    assert_eq!(late.engine().state_hash()?, leader.state_hash()?);
    println!(
        "RESULT new follower catch-up: {:.0} vectors/s ({total} vectors: the snapshot at sequence number {} and {} batches from the stream, in {catch_up:.2} s)",
        total / catch_up,
        snap,
        more
    );
    println!(
        "RESULT new follower's parts: open after {opened:.2} s (the snapshot read, written and verified, the stream's records fetched meanwhile), caught up {:.2} s later",
        catch_up - opened
    );
    drop((lead, follower, late));

    // The stream's own ceiling on this machine, for comparison: the same bytes as the load
    // above (each batch's record, in messages of the size the leader uses) published by a bare
    // JetStream client to a stream of the same replication, each message's acknowledgment
    // awaited before the next (as the leader does), then all in flight at once.
    let addrs = urls
        .iter()
        .map(|u| u.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()?;
    let client = async_nats::connect(addrs).await?;
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "CEILING".into(),
        subjects: vec!["ceiling.>".into()],
        num_replicas: replicas,
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let record = per * DIM * 4 + 64;
    let room = js.client().max_payload() - 4096;
    let piece = bytes::Bytes::from(vec![7u8; room]);
    let messages: Vec<bytes::Bytes> = (0..batches)
        .flat_map(|_| {
            let mut left = record;
            let mut out = Vec::new();
            while left > 0 {
                let n = left.min(room);
                out.push(piece.slice(..n));
                left -= n;
            }
            out
        })
        .collect();
    let start = Instant::now();
    for m in &messages {
        js.publish("ceiling.one", m.clone()).await?.await?;
    }
    let one = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut acks = Vec::with_capacity(messages.len());
    for m in &messages {
        acks.push(js.publish("ceiling.all", m.clone()).await?);
    }
    for a in acks {
        a.await?;
    }
    let all = start.elapsed().as_secs_f64();
    println!(
        "RESULT stream ceiling (bare JetStream client, the same {} messages, R{replicas}): {:.0} vectors/s ({:.0} MB/s) one acknowledgment at a time; {:.0} vectors/s ({:.0} MB/s) all in flight",
        messages.len(),
        vectors / one,
        (batches * record) as f64 / one / 1e6,
        vectors / all,
        (batches * record) as f64 / all / 1e6
    );
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
