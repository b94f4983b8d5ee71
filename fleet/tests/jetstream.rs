//! Replication through real NATS JetStream servers (`nats-server` 2.9, started here on
//! loopback ports this test picks, and stopped when it ends): a leader and two followers end
//! with equal state hashes at equal sequence numbers; a follower refuses a tampered record; a
//! second leader is fenced off; a 3-server cluster (R3) loses a server mid-stream and no
//! acknowledged record is lost.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{start, Server};
use valori_engine::wal::replica_record;
use valori_engine::{Engine, Options};
use valori_fleet::{Fleet, FleetError, STREAM, SUBJECT_PREFIX};
use valori_kernel::Metric;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("valori-fleet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Connects (creating the stream and bucket), retrying while the servers elect their
/// JetStream leaders.
async fn connect(url: &str, replicas: usize) -> Fleet {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match Fleet::connect(url, replicas).await {
            Ok(f) => return f,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("JetStream at {url} not ready: {e}"),
        }
    }
}

fn vector(i: u32, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| ((i as usize * 31 + j * 17) % 97) as f32 / 97.0 - 0.5)
        .collect()
}

/// Inserts (single and batched), deletes and graph commands.
fn work(db: &Engine, from: u32, n: u32, dim: usize) {
    for i in from..from + n {
        let id = db
            .insert(&vector(i, dim), Some(u64::from(i % 3)), b"")
            .unwrap();
        if i % 3 == 0 {
            let batch: Vec<f32> = (0..20).flat_map(|k| vector(i * 20 + k, dim)).collect();
            db.insert_batch(&batch, &[]).unwrap();
        }
        if i % 7 == 0 {
            let a = db.create_node(1, Some(id), b"robot").unwrap();
            let b = db.create_node(2, None, b"place").unwrap();
            db.create_edge(1, a, b, Some(1.0)).unwrap();
        }
        if i % 5 == 4 {
            db.delete(id).unwrap();
        }
    }
}

async fn until<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_and_two_followers_hash_the_same_at_the_same_sequence_number() {
    let dir = tempdir("one");
    let _servers = start(1, &dir);
    let url = _servers[0].url();
    let fleet = connect(&url, 1).await;
    for (name, metric) in [
        ("l2", Metric::L2),
        ("ip", Metric::InnerProduct),
        ("cos", Metric::Cosine),
    ] {
        let leader = Arc::new(
            Engine::open(dir.join(format!("leader-{name}")), Options::new(8, metric)).unwrap(),
        );
        work(&leader, 0, 20, 8);
        let lead = fleet.lead(name, Arc::clone(&leader)).await.unwrap();
        // Two followers: one from the snapshot the leader published, one later.
        let f1 = fleet
            .follow(name, &dir.join(format!("f1-{name}")))
            .await
            .unwrap();
        work(&leader, 20, 20, 8);
        let f2 = fleet
            .follow(name, &dir.join(format!("f2-{name}")))
            .await
            .unwrap();
        work(&leader, 40, 10, 8);
        let last = leader.sequence().unwrap();
        lead.wait_published(last).await.unwrap();
        f1.wait_applied(last).await.unwrap();
        f2.wait_applied(last).await.unwrap();
        let want = (leader.position().unwrap(), leader.state_hash().unwrap());
        for f in [&f1, &f2] {
            let e = f.engine();
            assert_eq!(
                (e.position().unwrap(), e.state_hash().unwrap()),
                want,
                "{name}"
            );
            // A follower refuses writes of its own.
            assert!(matches!(
                e.insert(&vector(0, 8), None, b""),
                Err(valori_engine::Error::ReadOnly)
            ));
        }
        assert!(fleet.databases().await.unwrap().contains(&name.to_string()));
        // A follower reopened from its directory continues from where it was.
        let dir2 = dir.join(format!("f1-{name}"));
        drop(f1.stop().await);
        work(&leader, 50, 5, 8);
        let last = leader.sequence().unwrap();
        let f1 = fleet.follow(name, &dir2).await.unwrap();
        f1.wait_applied(last).await.unwrap();
        assert_eq!(
            f1.engine().state_hash().unwrap(),
            leader.state_hash().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_record_stops_the_follower_with_nothing_applied() {
    let dir = tempdir("tamper");
    let servers = start(1, &dir);
    let fleet = connect(&servers[0].url(), 1).await;
    let leader = Arc::new(Engine::open(dir.join("leader"), Options::new(4, Metric::L2)).unwrap());
    work(&leader, 0, 5, 4);
    let lead = fleet.lead("t", Arc::clone(&leader)).await.unwrap();
    let follower = fleet.follow("t", &dir.join("f")).await.unwrap();
    let last = leader.sequence().unwrap();
    lead.wait_published(last).await.unwrap();
    follower.wait_applied(last).await.unwrap();
    let before = follower.engine().state_hash().unwrap();
    drop(lead);
    // The next record, altered in flight, published straight to the subject.
    leader.insert(&vector(99, 4), None, b"").unwrap();
    let e = leader.history(last + 1, 1).unwrap().remove(0);
    let mut record = replica_record(e.seq, &e.command, &e.chain);
    let n = record.len();
    record[n - 33] ^= 1;
    let client = async_nats::connect(servers[0].url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Valori-Seq", e.seq.to_string().as_str());
    headers.insert("Valori-Part", "1/1");
    let chain: String = e.chain.iter().map(|b| format!("{b:02x}")).collect();
    headers.insert("Valori-Chain", chain.as_str());
    js.publish_with_headers(format!("{SUBJECT_PREFIX}t"), headers, record.into())
        .await
        .unwrap()
        .await
        .unwrap();
    until("the follower to stop", || follower.status().error.is_some()).await;
    let error = follower.status().error.unwrap();
    assert!(error.contains("chain value does not follow"), "{error}");
    assert_eq!(follower.status().applied, last);
    assert_eq!(follower.engine().state_hash().unwrap(), before);
    assert_eq!(follower.engine().sequence().unwrap(), last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_leader_is_fenced_off() {
    let dir = tempdir("fence");
    let servers = start(1, &dir);
    let fleet = connect(&servers[0].url(), 1).await;
    let a = Arc::new(Engine::open(dir.join("a"), Options::new(4, Metric::L2)).unwrap());
    work(&a, 0, 5, 4);
    let lead_a = fleet.lead("db", Arc::clone(&a)).await.unwrap();
    // A follower promoted to leader (the old leader still running, as after a partition).
    let f = fleet.follow("db", &dir.join("b")).await.unwrap();
    lead_a.wait_published(a.sequence().unwrap()).await.unwrap();
    f.wait_applied(a.sequence().unwrap()).await.unwrap();
    drop(f.stop().await);
    let b = Arc::new(Engine::open(dir.join("b"), Options::default()).unwrap());
    let lead_b = fleet.lead("db", Arc::clone(&b)).await.unwrap();
    b.insert(&vector(1000, 4), None, b"promoted").unwrap();
    lead_b.wait_published(b.sequence().unwrap()).await.unwrap();
    // The old leader's next write is fenced off: never interleaved with the new leader's.
    a.insert(&vector(2000, 4), None, b"late").unwrap();
    until("the old leader to be fenced", || {
        lead_a.status().error.is_some()
    })
    .await;
    let error = lead_a.status().error.unwrap();
    assert!(error.contains("fenced off"), "{error}");
    assert_eq!(lead_a.status().published, a.sequence().unwrap() - 1);
    // Starting it again is refused too: the stream's last record is not in its log.
    drop(lead_a);
    match fleet.lead("db", Arc::clone(&a)).await {
        Err(FleetError::Diverged(m)) => assert!(m.contains("differs"), "{m}"),
        other => panic!("expected Diverged, got {other:?}"),
    }
    // A follower sees only the new leader's history.
    let g = fleet.follow("db", &dir.join("g")).await.unwrap();
    g.wait_applied(b.sequence().unwrap()).await.unwrap();
    assert_eq!(g.engine().state_hash().unwrap(), b.state_hash().unwrap());
    // A leader behind the stream is refused before it publishes anything.
    let c = Arc::new(Engine::open(dir.join("c"), Options::new(4, Metric::L2)).unwrap());
    match fleet.lead("db", c).await {
        Err(FleetError::Fenced(m)) => assert!(m.contains("another leader"), "{m}"),
        other => panic!("expected Fenced, got {other:?}"),
    }
    // A leader whose subject was emptied by hand (a purge) is fenced off at its next write,
    // not left retrying: the message its next one follows is gone.
    let d = Arc::new(Engine::open(dir.join("d"), Options::new(4, Metric::L2)).unwrap());
    let lead_d = fleet.lead("db2", Arc::clone(&d)).await.unwrap();
    work(&d, 0, 2, 4);
    lead_d.wait_published(d.sequence().unwrap()).await.unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(servers[0].url()).await.unwrap());
    js.get_stream(STREAM)
        .await
        .unwrap()
        .purge()
        .filter(format!("{SUBJECT_PREFIX}db2"))
        .await
        .unwrap();
    d.insert(&vector(3000, 4), None, b"after the purge")
        .unwrap();
    until("the leader of the emptied subject to be fenced", || {
        lead_d.status().error.is_some()
    })
    .await;
    let error = lead_d.status().error.unwrap();
    assert!(error.contains("fenced off"), "{error}");
    assert_eq!(lead_d.status().published, d.sequence().unwrap() - 1);
}

/// Two leaders start at the same moment, each through another server of a 3-server cluster
/// (R3), each with its own next record after the stream's last, again and again: in every
/// round the stream takes one leader's record and the other leader is fenced off.
/// nats-server before 2.9.21 stores both in most rounds if only the expected last subject
/// sequence guards the publish (nats-server issue 4320).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leaders_writing_at_once_never_both_reach_the_stream() {
    let dir = tempdir("race");
    let servers = start(3, &dir);
    let fa = connect(&servers[0].url(), 3).await;
    let fb = connect(&servers[1].url(), 3).await;
    for round in 0..12 {
        let db = format!("race{round}");
        let a = Arc::new(
            Engine::open(dir.join(format!("a{round}")), Options::new(4, Metric::L2)).unwrap(),
        );
        work(&a, 0, 3, 4);
        // Its first records go to the bucket's snapshot, the ones after to the stream.
        let lead_a = fa.lead(&db, Arc::clone(&a)).await.unwrap();
        work(&a, 3, 2, 4);
        let start_seq = a.sequence().unwrap();
        lead_a.wait_published(start_seq).await.unwrap();
        lead_a.stop().await;
        let bdir = dir.join(format!("b{round}"));
        let f = fb.follow(&db, &bdir).await.unwrap();
        f.wait_applied(start_seq).await.unwrap();
        drop(f.stop().await);
        let b = Arc::new(Engine::open(&bdir, Options::default()).unwrap());
        // Each writes its own next record, then both start publishing at once (the old
        // leader back while a follower is promoted).
        a.insert(&vector(1000 + round, 4), None, b"a").unwrap();
        b.insert(&vector(2000 + round, 4), None, b"b").unwrap();
        let (ra, rb) = tokio::join!(fa.lead(&db, Arc::clone(&a)), fb.lead(&db, Arc::clone(&b)));
        let next = start_seq + 1;
        // A leader refused at its start (the other's record already there) or fenced off
        // while it publishes: `None` once it has published its record.
        let outcome = |r: &valori_fleet::Result<valori_fleet::Leader>| -> Option<String> {
            match r {
                Err(e) => Some(e.to_string()),
                Ok(l) => l.status().error,
            }
        };
        let settled = |r: &valori_fleet::Result<valori_fleet::Leader>| match r {
            Err(_) => true,
            Ok(l) => {
                let s = l.status();
                s.published >= next || s.error.is_some()
            }
        };
        until("both leaders to publish or be fenced", || {
            settled(&ra) && settled(&rb)
        })
        .await;
        let (oa, ob) = (outcome(&ra), outcome(&rb));
        assert!(
            oa.is_some() != ob.is_some(),
            "round {round}: exactly one leader must be fenced off; a: {oa:?}, b: {ob:?}"
        );
        let winner = if oa.is_none() { &a } else { &b };
        // A new follower holds the winner's history.
        let g = fa
            .follow(&db, &dir.join(format!("g{round}")))
            .await
            .unwrap();
        g.wait_applied(next).await.unwrap();
        assert_eq!(
            g.engine().state_hash().unwrap(),
            winner.state_hash().unwrap()
        );
        drop(g.stop().await);
    }
}

/// What the fencing of leaders and of the shared memory's pointer rests on, checked on the
/// servers CI installs (3 servers, R3): of 12 publishes sent at once through the three
/// servers, each expecting the same last message of the subject and carrying the same message
/// id, the stream stores exactly one, in every round. (The expected sequence alone does not
/// do it before nats-server 2.9.21: the count of rounds where it stored more than one is
/// printed, not asserted, since newer servers store one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_publishes_extending_one_message_the_servers_store_one() {
    use async_nats::jetstream::{self, message::PublishMessage, stream};
    let dir = tempdir("cas");
    let servers = start(3, &dir);
    // The fleet's connect waits until the cluster has a JetStream leader.
    drop(connect(&servers[0].url(), 3).await);
    let mut js = Vec::new();
    for s in &servers {
        js.push(jetstream::new(async_nats::connect(s.url()).await.unwrap()));
    }
    let config = stream::Config {
        name: "CAS".into(),
        subjects: vec!["cas.>".into()],
        num_replicas: 3,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = js[0].get_or_create_stream(config.clone()).await {
        assert!(Instant::now() < deadline, "creating the stream: {e}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut more_than_one_without_id = 0;
    for with_id in [true, false] {
        for round in 0..20 {
            let base = js[0]
                .publish("cas.x", "base".into())
                .await
                .unwrap()
                .await
                .unwrap()
                .sequence;
            let tries: Vec<_> = (0..12)
                .map(|i| {
                    let js = js[i % 3].clone();
                    tokio::spawn(async move {
                        let m = PublishMessage::build()
                            .payload(format!("{round}.{i}").into())
                            .expected_last_subject_sequence(base);
                        let m = if with_id {
                            m.message_id(format!("after.{base}"))
                        } else {
                            m
                        };
                        match js.send_publish("cas.x", m).await {
                            Ok(ack) => ack.await.is_ok_and(|a| !a.duplicate),
                            Err(_) => false,
                        }
                    })
                })
                .collect();
            let mut stored = 0;
            for t in tries {
                stored += usize::from(t.await.unwrap());
            }
            if with_id {
                assert_eq!(stored, 1, "round {round}: {stored} of 12 publishes stored");
            } else if stored > 1 {
                more_than_one_without_id += 1;
            }
        }
    }
    eprintln!(
        "without a message id, more than one publish was stored in {more_than_one_without_id} \
         of 20 rounds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_server_cluster_loses_a_server_and_no_acknowledged_record() {
    let dir = tempdir("cluster");
    let mut servers = start(3, &dir);
    let urls: Vec<String> = servers.iter().map(Server::url).collect();
    let all = urls.join(",");
    let fleet = connect(&all, 3).await;
    let leader = Arc::new(Engine::open(dir.join("leader"), Options::new(16, Metric::L2)).unwrap());
    let lead = fleet.lead("fleet", Arc::clone(&leader)).await.unwrap();
    let follower = fleet.follow("fleet", &dir.join("f")).await.unwrap();
    work(&leader, 0, 30, 16);
    let acked = leader.sequence().unwrap();
    lead.wait_published(acked).await.unwrap();
    // One server dies mid-stream; the stream keeps a quorum of two.
    servers[0].kill();
    work(&leader, 30, 30, 16);
    let last = leader.sequence().unwrap();
    lead.wait_published(last).await.unwrap();
    follower.wait_applied(last).await.unwrap();
    assert_eq!(
        follower.engine().state_hash().unwrap(),
        leader.state_hash().unwrap()
    );
    // A new follower through the surviving servers has everything acknowledged.
    let survivors = connect(&urls[1..].join(","), 3).await;
    let late = survivors.follow("fleet", &dir.join("late")).await.unwrap();
    late.wait_applied(last).await.unwrap();
    assert_eq!(
        late.engine().state_hash().unwrap(),
        leader.state_hash().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_puts_its_snapshot_in_the_bucket_and_the_stream_drops_what_it_covers() {
    let dir = tempdir("retain");
    let servers = start(1, &dir);
    let fleet = connect(&servers[0].url(), 1).await;
    let leader = Arc::new(Engine::open(dir.join("leader"), Options::new(8, Metric::L2)).unwrap());
    let lead = fleet.lead("r", Arc::clone(&leader)).await.unwrap();
    work(&leader, 0, 20, 8);
    lead.wait_published(leader.sequence().unwrap())
        .await
        .unwrap();
    leader.checkpoint().unwrap();
    let first = leader.newest_snapshot().unwrap().unwrap().0;
    assert!(first > 10);
    work(&leader, 20, 3, 8);
    lead.wait_published(leader.sequence().unwrap())
        .await
        .unwrap();
    // The bucket gets the first snapshot; the stream keeps everything (no older snapshot).
    let deadline = Instant::now() + Duration::from_secs(30);
    while valori_engine::decode_snapshot(&fleet.snapshot("r").await.unwrap())
        .unwrap()
        .0
        != first
    {
        assert!(
            Instant::now() < deadline,
            "the bucket never got snapshot {first}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    leader.checkpoint().unwrap();
    let snap = leader.newest_snapshot().unwrap().unwrap().0;
    assert!(snap > first);
    work(&leader, 23, 3, 8);
    lead.wait_published(leader.sequence().unwrap())
        .await
        .unwrap();
    let first_on_stream = || async {
        let client = async_nats::connect(servers[0].url()).await.unwrap();
        let stream = async_nats::jetstream::new(client)
            .get_stream(valori_fleet::STREAM)
            .await
            .unwrap();
        let m = stream
            .get_first_raw_message_by_subject(format!("{SUBJECT_PREFIX}r"), 1)
            .await
            .unwrap();
        u64::from_le_bytes(m.payload[8..16].try_into().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let bytes = fleet.snapshot("r").await.unwrap();
        let (seq, _) = valori_engine::decode_snapshot(&bytes).unwrap();
        // The second snapshot in the bucket; the stream starts at the first one's record.
        if seq == snap && first_on_stream().await == first {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bucket holds {seq}, want {snap}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A new follower starts from that snapshot and the records after it.
    let f = fleet.follow("r", &dir.join("f")).await.unwrap();
    f.wait_applied(leader.sequence().unwrap()).await.unwrap();
    assert_eq!(
        f.engine().state_hash().unwrap(),
        leader.state_hash().unwrap()
    );
    assert_eq!(f.engine().newest_snapshot().unwrap().unwrap().0, snap);
    // What an interrupted download leaves (the lock, a part of the snapshot) is still a new
    // follower's directory: the snapshot is fetched again.
    let interrupted = dir.join("i");
    std::fs::create_dir_all(&interrupted).unwrap();
    std::fs::write(interrupted.join(valori_engine::LOCK_NAME), b"").unwrap();
    std::fs::write(interrupted.join("incoming-snapshot.tmp"), b"part of it").unwrap();
    let i = fleet.follow("r", &interrupted).await.unwrap();
    i.wait_applied(leader.sequence().unwrap()).await.unwrap();
    assert_eq!(
        i.engine().state_hash().unwrap(),
        leader.state_hash().unwrap()
    );

    // The bucket's snapshot names the stream message of its record, and a new follower
    // consumes from the message after it rather than from the subject's first.
    let client = async_nats::connect(servers[0].url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let bucket = js.get_object_store(valori_fleet::BUCKET).await.unwrap();
    let info = bucket.info("r").await.unwrap();
    let after: u64 = info.metadata["valori-stream-seq"].parse().unwrap();
    assert_eq!(info.metadata["valori-seq"], snap.to_string());
    let stream = js.get_stream(valori_fleet::STREAM).await.unwrap();
    let record_of = |m: async_nats::jetstream::message::StreamMessage| {
        m.headers
            .get("Valori-Seq")
            .map(|v| v.as_str().parse::<u64>().unwrap())
    };
    assert_eq!(
        record_of(stream.get_raw_message(after).await.unwrap()),
        Some(snap)
    );
    assert_eq!(
        record_of(stream.get_raw_message(after + 1).await.unwrap()),
        Some(snap + 1)
    );
    // Control: the same snapshot naming one message too late. A follower that used the name
    // starts after record snap + 1 and stops with a gap; one that read the subject from its
    // first message would not notice.
    let bytes = fleet.snapshot("r").await.unwrap();
    let planted = async_nats::jetstream::object_store::ObjectMetadata {
        name: "r".into(),
        metadata: [
            ("valori-seq".to_string(), snap.to_string()),
            ("valori-stream-seq".to_string(), (after + 1).to_string()),
        ]
        .into(),
        ..Default::default()
    };
    bucket.put(planted, &mut bytes.as_slice()).await.unwrap();
    let g = fleet.follow("r", &dir.join("g")).await.unwrap();
    let err = g
        .wait_applied(leader.sequence().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("gap"), "{err}");
    // So does a database reopened at the snapshot's sequence number (it needs nothing before
    // the named message either).
    let reopened =
        Engine::create_from_snapshot(dir.join("h"), &bytes, Options::default().follower()).unwrap();
    assert_eq!(reopened.sequence().unwrap(), snap);
    let h = fleet.follow_engine("r", Arc::new(reopened)).await.unwrap();
    let err = h
        .wait_applied(leader.sequence().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("gap"), "{err}");
}

/// A batch insert of 6,000 vectors of dimension 64 is one record of about 1.5 MB, over the
/// server's 1 MiB message limit: it travels in parts and the follower joins and verifies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_a_message_travels_in_parts() {
    let dir = tempdir("parts");
    let servers = start(1, &dir);
    let fleet = connect(&servers[0].url(), 1).await;
    let leader =
        Arc::new(Engine::open(dir.join("leader"), Options::new(64, Metric::InnerProduct)).unwrap());
    let lead = fleet.lead("big", Arc::clone(&leader)).await.unwrap();
    let f = fleet.follow("big", &dir.join("f")).await.unwrap();
    let batch: Vec<f32> = (0..6000).flat_map(|i| vector(i, 64)).collect();
    leader.insert_batch(&batch, &[]).unwrap();
    leader.insert(&vector(7, 64), None, b"after").unwrap();
    let last = leader.sequence().unwrap();
    lead.wait_published(last).await.unwrap();
    f.wait_applied(last).await.unwrap();
    assert_eq!(
        f.engine().state_hash().unwrap(),
        leader.state_hash().unwrap()
    );
    let client = async_nats::connect(servers[0].url()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(valori_fleet::STREAM)
        .await
        .unwrap();
    let messages = stream.info().await.unwrap().state.messages;
    assert_eq!(messages, 3, "two parts for the batch, one for the insert");
}
