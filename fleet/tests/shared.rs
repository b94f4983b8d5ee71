//! Shared fleet memory through a real 3-server JetStream cluster (`nats-server` 2.9, started
//! here on loopback ports this test picks, stopped when it ends): three writers sharing one
//! stream end with identical hashes on every member, ids unique across writers and conflicts
//! refused alike; a device offline for a while (and restarted while offline) queues its
//! commands durably and converges when it reconnects; a member whose position is behind its
//! database (a crash between the two) matches the commands again instead of applying them
//! twice; a member of another dimension is stopped; checkpoints' snapshots let the stream drop
//! what they cover, a new member starts from the newest, and a member that missed dropped
//! commands stops and is made again from it on reopening.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::start;
use valori_engine::Options;
use valori_fleet::{Outcome, Shared, SharedStatus};
use valori_kernel::{fxp, Applied, Command, Fxp, Metric, Words};

const DIM: usize = 8;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("valori-shared-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options() -> Options {
    Options::new(DIM as u32, Metric::Cosine)
}

async fn open(url: &str, dir: &Path, writer: &str) -> Shared {
    Shared::open(url, "fleet", dir, options(), 3, Some(writer))
        .await
        .unwrap()
}

fn vector(i: u32) -> Vec<Fxp> {
    let v: Vec<f32> = (0..DIM)
        .map(|j| ((i as usize * 31 + j * 17) % 97) as f32 / 97.0 - 0.5)
        .collect();
    fxp::to_vec(&v).unwrap()
}

fn insert(v: &[Fxp], id: Option<u64>, tag: u64) -> Command<'_> {
    Command::Insert {
        id,
        tag: Some(tag),
        vector: Words::Native(v),
        meta: b"",
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every member has taken the same stream message, with nothing of its own
/// queued; their status.
async fn converged(members: &[&Shared]) -> Vec<SharedStatus> {
    until("the members to converge", || {
        let s: Vec<SharedStatus> = members.iter().map(|m| m.status()).collect();
        for x in &s {
            assert_eq!(x.error, None);
        }
        s.iter()
            .all(|x| x.queued == 0 && x.pending == 0 && x.stream_seq == s[0].stream_seq)
    })
    .await;
    // One more look after a quiet moment: nothing arrived late.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s: Vec<SharedStatus> = members.iter().map(|m| m.status()).collect();
    assert!(s.iter().all(|x| x.stream_seq == s[0].stream_seq), "{s:?}");
    s
}

fn hash(m: &Shared) -> [u8; 32] {
    m.engine().state_hash().unwrap()
}

/// One writer's share of the work: 20 single inserts (ids left to the database), a batch of
/// 5, a node per record linked to the previous one, deletes of records 1..=3 (every writer
/// tries: the first in stream order wins, the rest are refused), and an insert under the one
/// caller-chosen id 1,000,000 (one writer gets it).
async fn write_share(m: &Shared, w: u32) -> (Vec<u64>, usize, usize) {
    let mut ids = Vec::new();
    let mut refused = 0;
    let mut tickets = Vec::new();
    let vs: Vec<Vec<Fxp>> = (0..20).map(|i| vector(w * 100 + i)).collect();
    for v in &vs {
        tickets.push(m.submit(&insert(v, None, u64::from(w))).unwrap());
    }
    let batch: Vec<Fxp> = (0..5).flat_map(|i| vector(w * 1000 + i)).collect();
    tickets.push(
        m.submit(&Command::InsertBatch {
            ids: Words::EMPTY,
            tags: Words::EMPTY,
            vectors: Words::Native(&batch),
        })
        .unwrap(),
    );
    for t in tickets {
        match m.wait(t).await.unwrap() {
            Outcome::Applied {
                applied: Applied::Created(id),
                ..
            } => ids.push(id),
            Outcome::Applied {
                applied: Applied::Batch { first_id, count },
                ..
            } => ids.extend(first_id..first_id + count),
            other => panic!("writer {w}: {other:?}"),
        }
    }
    // Graph: a node per record, linked in a chain (ids from the database, in stream order).
    let mut prev = None;
    // (Records 10.. of each writer: never 1..=3, which the deletes below aim at.)
    for &id in ids.iter().skip(10).take(5) {
        let (_, a) = m
            .write(&Command::CreateNode {
                id: None,
                kind: w,
                record: Some(id),
                label: b"memory",
            })
            .await
            .unwrap();
        let Applied::Created(node) = a else {
            panic!("{a:?}")
        };
        if let Some(p) = prev {
            m.write(&Command::CreateEdge {
                id: None,
                kind: 1,
                from: p,
                to: node,
                weight: None,
            })
            .await
            .unwrap();
        }
        prev = Some(node);
    }
    let mut deleted = 0;
    for id in 1..=3 {
        match m.write(&Command::Delete { id }).await {
            Ok(_) => deleted += 1,
            Err(_) => refused += 1,
        }
    }
    let v = vector(7);
    match m.write(&insert(&v, Some(1_000_000), 9)).await {
        Ok(_) => ids.push(1_000_000),
        Err(e) => {
            assert!(e.to_string().contains("refused"), "{e}");
            refused += 1
        }
    }
    (ids, deleted, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_writers_sharing_one_stream_end_with_identical_hashes_on_every_member() {
    let dir = tempdir("three");
    let servers = start(3, &dir);
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    // Each writer reaches the cluster through its own server.
    let a = open(&urls[0], &dir.join("a"), "robot-a").await;
    let b = open(&urls[1], &dir.join("b"), "robot-b").await;
    let c = open(&urls[2], &dir.join("c"), "robot-c").await;
    let ((ia, da, ra), (ib, db, rb), (ic, dc, rc)) =
        tokio::join!(write_share(&a, 1), write_share(&b, 2), write_share(&c, 3));
    let s = converged(&[&a, &b, &c]).await;
    // Every member holds the same state.
    assert_eq!(hash(&a), hash(&b));
    assert_eq!(hash(&a), hash(&c));
    assert_eq!(s[0].applied, s[1].applied);
    // Ids left to the database are unique across writers; the caller-chosen one went to one
    // writer, and each of records 1..=3 was deleted once.
    let mut all: Vec<u64> = ia.iter().chain(&ib).chain(&ic).copied().collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "an id was handed to two writers");
    assert_eq!(n, 3 * 25 + 1);
    assert_eq!(da + db + dc, 3);
    assert_eq!(ra + rb + rc, 3 * 3 + 3 - 3 - 1);
    assert_eq!(a.engine().len().unwrap(), 3 * 25 + 1 - 3);
    // A new member starts from the stream and reaches the same hash.
    let late = Shared::open(&urls[1], "fleet", &dir.join("late"), options(), 3, None)
        .await
        .unwrap();
    until("the late member", || {
        late.status().stream_seq == s[0].stream_seq
    })
    .await;
    assert_eq!(hash(&late), hash(&a));
    assert!(late.writer().starts_with('w'), "{}", late.writer());
    // Its database refuses a direct write: writes go through the stream.
    let v = vector(1);
    assert!(late.engine().insert_fixed(&v, None, b"").is_err());
    let ids: BTreeSet<u64> = a
        .engine()
        .with_kernel(|k| k.records().map(|r| r.id).collect())
        .unwrap();
    assert!(ids.contains(&1_000_000) && !ids.contains(&1));
    // No snapshot exists yet, but robot-b has reported its position: a new directory may not
    // write under its name (the two would skip each other's commands).
    let e = Shared::open(
        &urls[0],
        "fleet",
        &dir.join("b2"),
        options(),
        3,
        Some("robot-b"),
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("already a member"), "{e}");
    drop((a, b, c, late));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_queues_its_commands_durably_and_converges_when_it_reconnects() {
    let dir = tempdir("offline");
    let mut servers = start(3, &dir);
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let hub = open(&urls[0], &dir.join("hub"), "hub").await;
    let device_dir = dir.join("device");
    let device = open(&urls[2], &device_dir, "device").await;
    // Both online: one write each.
    let v = vector(1);
    hub.write(&insert(&v, None, 1)).await.unwrap();
    device.write(&insert(&v, None, 2)).await.unwrap();
    converged(&[&hub, &device]).await;
    // The device's only server goes away.
    servers[2].kill();
    until("the device to notice", || !device.status().connected).await;
    let vs: Vec<Vec<Fxp>> = (0..20).map(|i| vector(100 + i)).collect();
    for v in &vs[..10] {
        device.submit(&insert(v, None, 2)).unwrap();
    }
    // Queued, not applied: the device's state shows what the stream has ordered.
    assert_eq!(device.status().queued, 10);
    assert_eq!(device.engine().len().unwrap(), 2);
    // The rest of the fleet goes on meanwhile.
    for v in &vs[10..] {
        hub.write(&insert(v, None, 1)).await.unwrap();
    }
    // The device restarts while still offline: its queue is on disk.
    drop(device.stop().await);
    let device = open(&urls[2], &device_dir, "device").await;
    assert_eq!(device.status().queued, 10);
    assert!(!device.status().connected);
    for v in &vs[..5] {
        device.submit(&insert(v, None, 3)).unwrap();
    }
    assert_eq!(device.status().queued, 15);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(device.engine().len().unwrap(), 2);
    // Back in reach: it publishes its queue and takes everything in stream order.
    servers[2].restart();
    let s = converged(&[&hub, &device]).await;
    assert_eq!(hash(&hub), hash(&device));
    assert_eq!(hub.engine().len().unwrap(), 2 + 10 + 10 + 5, "{s:?}");
    assert!(std::fs::metadata(device_dir.join("outbox")).unwrap().len() == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_its_database_matches_commands_again_instead_of_applying_twice() {
    let dir = tempdir("crash");
    let servers = start(1, &dir);
    let url = servers[0].url();
    let a = Shared::open(&url, "fleet", &dir.join("a"), options(), 1, Some("a"))
        .await
        .unwrap();
    let bdir = dir.join("b");
    let b = Shared::open(&url, "fleet", &bdir, options(), 1, Some("b"))
        .await
        .unwrap();
    let v = vector(1);
    a.write(&insert(&v, None, 1)).await.unwrap();
    converged(&[&a, &b]).await;
    let old_position = std::fs::read(bdir.join("position")).unwrap();
    // Commands b applies after that position: auto ids (applied twice they would be new
    // records), a refused delete, and one of b's own.
    let vs: Vec<Vec<Fxp>> = (0..6).map(|i| vector(10 + i)).collect();
    for v in &vs[..3] {
        a.write(&insert(v, None, 1)).await.unwrap();
    }
    assert!(a.write(&Command::Delete { id: 999 }).await.is_err());
    let t = b.submit(&insert(&vs[3], None, 2)).unwrap();
    // The outbox as a crash would leave it: b's command is in it until a position that
    // covers it is durable.
    let outbox = std::fs::read(bdir.join("outbox")).unwrap();
    b.wait(t).await.unwrap();
    a.write(&insert(&vs[3], None, 1)).await.unwrap();
    converged(&[&a, &b]).await;
    drop(b.stop().await);
    // As if b crashed after applying them but before writing its position.
    std::fs::write(bdir.join("position"), &old_position).unwrap();
    std::fs::write(bdir.join("outbox"), &outbox).unwrap();
    let b = Shared::open(&url, "fleet", &bdir, options(), 1, Some("b"))
        .await
        .unwrap();
    for v in &vs[4..] {
        a.write(&insert(v, None, 1)).await.unwrap();
    }
    b.write(&insert(&vs[5], None, 2)).await.unwrap();
    converged(&[&a, &b]).await;
    assert_eq!(hash(&a), hash(&b));
    assert_eq!(b.engine().len().unwrap(), 1 + 3 + 1 + 1 + 2 + 1);
    // A command in b's database that the stream never had: matching cannot finish, and b
    // stops with Corrupt instead of skipping the stream's commands as refused.
    drop(b.stop().await);
    let old_position = std::fs::read(bdir.join("position")).unwrap();
    {
        let db =
            valori_engine::Engine::open(bdir.join("db"), Options::default().follower()).unwrap();
        db.apply_ordered(&insert(&vs[0], None, 7)).unwrap();
        db.close().unwrap();
    }
    std::fs::write(bdir.join("position"), &old_position).unwrap();
    let b = Shared::open(&url, "fleet", &bdir, options(), 1, Some("b"))
        .await
        .unwrap();
    a.write(&insert(&vs[1], None, 1)).await.unwrap();
    until("b to stop", || b.status().error.is_some()).await;
    let e = b.status().error.unwrap();
    assert!(
        e.contains("Corrupt") && e.contains("the stream does not"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_dimension_stops_with_a_clear_error() {
    let dir = tempdir("config");
    let servers = start(1, &dir);
    let url = servers[0].url();
    let a = Shared::open(&url, "fleet", &dir.join("a"), options(), 1, Some("a"))
        .await
        .unwrap();
    let v = vector(1);
    a.write(&insert(&v, None, 1)).await.unwrap();
    let other = Shared::open(
        &url,
        "fleet",
        &dir.join("b"),
        Options::new(DIM as u32 * 2, Metric::Cosine),
        1,
        Some("b"),
    )
    .await
    .unwrap();
    until("the mismatch to stop it", || other.status().error.is_some()).await;
    let e = other.status().error.unwrap();
    assert!(e.contains("8/cosine") && e.contains("16/cosine"), "{e}");
    assert_eq!(other.engine().len().unwrap(), 0);
    // And a writer name that does not fit is refused before anything is made.
    let bad = Shared::open(&url, "fleet", &dir.join("c"), options(), 1, Some("a b")).await;
    assert!(bad.is_err());
    drop(a);
}

/// A member that was away while the stream dropped commands it had not taken (a purge, a
/// stream limit) stops with `Corrupt` when it meets the next command of that writer, rather
/// than apply the rest and diverge from the members that took them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_missing_commands_the_stream_dropped_stops_instead_of_diverging() {
    let dir = tempdir("dropped");
    let servers = start(1, &dir);
    let url = servers[0].url();
    let a = Shared::open(&url, "fleet", &dir.join("a"), options(), 1, Some("a"))
        .await
        .unwrap();
    let b = Shared::open(&url, "fleet", &dir.join("b"), options(), 1, Some("b"))
        .await
        .unwrap();
    let v = vector(1);
    a.write(&insert(&v, None, 1)).await.unwrap();
    converged(&[&a, &b]).await;
    drop(b.stop().await);
    // While b is away: three more commands of a; the first two are then dropped.
    for i in 2..5 {
        a.write(&insert(&vector(i), None, 1)).await.unwrap();
    }
    let taken = a.status().stream_seq;
    let client = async_nats::connect(url.clone()).await.unwrap();
    let stream = async_nats::jetstream::new(client)
        .get_stream(valori_fleet::SHARED_STREAM)
        .await
        .unwrap();
    stream
        .purge()
        .filter(valori_fleet::shared_subject("fleet").unwrap())
        .sequence(taken)
        .await
        .unwrap();
    let b = Shared::open(&url, "fleet", &dir.join("b"), options(), 1, Some("b"))
        .await
        .unwrap();
    until("the gap to stop it", || b.status().error.is_some()).await;
    let e = b.status().error.unwrap();
    assert!(
        e.contains("Corrupt")
            && e.contains("command 4 of writer \"a\"")
            && e.contains("needs is 2"),
        "{e}"
    );
    // Nothing of it applied: b holds what it had.
    assert_eq!(b.engine().len().unwrap(), 1);
    drop(a);
}

/// The stream's first message (of any subject).
/// (Asked again while the servers do not answer.)
async fn first_message(url: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let look = async {
            let client = async_nats::connect(url).await.ok()?;
            let mut stream = async_nats::jetstream::new(client)
                .get_stream(valori_fleet::SHARED_STREAM)
                .await
                .ok()?;
            Some(stream.info().await.ok()?.state.first_sequence)
        };
        if let Some(first) = look.await {
            return first;
        }
        assert!(Instant::now() < deadline, "the servers do not answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The names of the shared snapshots of database "fleet" in the bucket (`None` while the
/// servers do not answer: asked again).
async fn snapshots_in_bucket(url: &str) -> Option<Vec<String>> {
    tokio::time::timeout(Duration::from_secs(10), list_snapshots(url))
        .await
        .ok()
        .flatten()
}

async fn list_snapshots(url: &str) -> Option<Vec<String>> {
    let client = async_nats::connect(url).await.ok()?;
    let bucket = async_nats::jetstream::new(client)
        .get_object_store(valori_fleet::SHARED_BUCKET)
        .await
        .ok()?;
    let mut list = bucket.list().await.ok()?;
    let mut names = Vec::new();
    while let Some(info) = futures_util::StreamExt::next(&mut list).await {
        let info = info.ok()?;
        if info.name.starts_with("fleet.") {
            names.push(info.name);
        }
    }
    Some(names)
}

/// Retention: members' checkpoints put snapshots in the bucket and the stream drops what the
/// one before the newest covered. A member away meanwhile (its server down) had not taken the
/// last commands of a writer that wrote nothing after them: no gap in any writer's numbers
/// shows it, and it stops with `Corrupt` when it is back instead of applying what follows;
/// reopened, it is made again from the newest snapshot, its queued commands kept. A new member
/// starts from the newest snapshot, and a new directory cannot take a writer name the
/// snapshot knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_let_the_stream_drop_commands_and_a_member_that_missed_them_is_made_again() {
    let dir = tempdir("retention");
    let mut servers = start(3, &dir);
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    // A checkpoint whenever a member commits its position: at the end of each round below.
    let opts = || options().checkpoint_wal_bytes(1);
    let open = |i: usize, name: &'static str| {
        let (url, d) = (urls[i].clone(), dir.join(name));
        async move {
            Shared::open(&url, "fleet", &d, opts(), 3, Some(name))
                .await
                .unwrap()
        }
    };
    let a = open(0, "a").await;
    let c = open(1, "c").await;
    let b = open(2, "b").await;
    a.write(&insert(&vector(1), None, 1)).await.unwrap();
    converged(&[&a, &b, &c]).await;
    // b's only server goes away; b queues three commands meanwhile.
    servers[2].kill();
    until("b to notice", || !b.status().connected).await;
    let b_taken = b.status().stream_seq;
    let b_len = b.engine().len().unwrap();
    let mine: Vec<Vec<Fxp>> = (0..3).map(|i| vector(500 + i)).collect();
    for v in &mine {
        b.submit(&insert(v, None, 2)).unwrap();
    }
    // a and c go on (their consumers may need a moment after the server's death).
    c.write(&insert(&vector(3), None, 3)).await.unwrap();
    converged(&[&a, &c]).await;
    // c writes 300 commands, then nothing more (in rounds that a keeps up with: a member more
    // than a snapshot behind would be stopped too).
    let vs: Vec<Vec<Fxp>> = (0..300).map(|i| vector(1000 + i)).collect();
    for round in vs.chunks(50) {
        let mut last = None;
        for v in round {
            last = Some(c.submit(&insert(v, None, 3)).unwrap());
        }
        c.wait(last.unwrap()).await.unwrap();
        converged(&[&a, &c]).await;
    }
    // The snapshot at c's last command is in the bucket.
    let c_last = c.status().stream_seq;
    let deadline = Instant::now() + Duration::from_secs(90);
    let prefix = format!("fleet.{c_last}.");
    while !snapshots_in_bucket(&urls[0])
        .await
        .is_some_and(|names| names.iter().any(|n| n.starts_with(&prefix)))
    {
        assert!(Instant::now() < deadline, "no snapshot at message {c_last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Until now b's last reported position held the dropping back (default member horizon,
    // 24 h), though the snapshots moved on. From now on a member not heard from for 2 s does
    // not.
    assert!(
        first_message(&urls[0]).await <= b_taken + 1,
        "dropped what b lacks"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.set_member_horizon(Duration::from_secs(2));
    c.set_member_horizon(Duration::from_secs(2));
    // One command of a: its snapshot replaces that one, and the stream drops what that one
    // covered, c's last commands with the rest. a's command follows a's last one b took
    // without a gap, and c writes nothing after: only the drop point shows what b lacks.
    a.write(&insert(&vector(2), None, 1)).await.unwrap();
    while first_message(&urls[0]).await <= c_last {
        assert!(Instant::now() < deadline, "the stream dropped nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.engine().len().unwrap(), b_len);
    servers[2].restart();
    until("b to stop", || b.status().error.is_some()).await;
    let e = b.status().error.unwrap();
    assert!(
        e.contains("Corrupt") && e.contains("dropped") && e.contains("reopen"),
        "{e}"
    );
    assert_eq!(
        b.engine().len().unwrap(),
        b_len,
        "b applied past what it lacks"
    );
    // Reopened: made again from the newest snapshot (it holds most of c's commands at once),
    // then the stream; its queued commands are published and applied once.
    drop(b.stop().await);
    first_message(&urls[2]).await; // its server answers again
    let b = open(2, "b").await;
    assert!(
        b.engine().len().unwrap() > 100,
        "b did not start from a snapshot"
    );
    converged(&[&a, &b, &c]).await;
    assert_eq!(hash(&a), hash(&b));
    assert_eq!(hash(&a), hash(&c));
    assert_eq!(b.status().queued, 0);
    assert_eq!(a.engine().len().unwrap(), 1 + 1 + 300 + 1 + 3);
    // A new member starts from the newest snapshot, not from the stream's first message.
    let late = Shared::open(&urls[1], "fleet", &dir.join("late"), opts(), 3, None)
        .await
        .unwrap();
    assert!(
        late.engine().len().unwrap() > 100,
        "late did not start from a snapshot"
    );
    converged(&[&a, &late]).await;
    assert_eq!(hash(&a), hash(&late));
    // The bucket keeps the newest snapshot and the one before it: each new one sweeps away
    // the older, and any a try failed during the server's outage left. A sweep that fails
    // (a listing timed out on a loaded machine) is made good by the next: up to three writes.
    let mut names = Vec::new();
    for round in 0..3 {
        tokio::time::timeout(
            Duration::from_secs(60),
            a.write(&insert(&vector(4 + round), None, 1)),
        )
        .await
        .expect("a's last write did not come back")
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            names = snapshots_in_bucket(&urls[0]).await.unwrap_or_default();
            if (1..=2).contains(&names.len()) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if (1..=2).contains(&names.len()) {
            break;
        }
    }
    assert!((1..=2).contains(&names.len()), "{names:?}");
    // A new directory may not write under a name the snapshot knows.
    let e = Shared::open(&urls[0], "fleet", &dir.join("c2"), opts(), 3, Some("c"))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("already a member"), "{e}");
    // Nor may a second opener take a member's directory.
    let e = Shared::open(&urls[0], "fleet", &dir.join("a"), opts(), 3, Some("a"))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("in use"), "{e}");
    drop((a, b, c, late));
}
