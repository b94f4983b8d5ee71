//! The server on an ephemeral loopback port, driven over real TCP connections: JSON and binary
//! bodies give the same state as the engine in-process, errors have one shape, keys are
//! enforced, limits answer 4xx, and shutdown closes every database.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use serde_json::{json, Value};
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use valori_engine::valori_kernel::Metric;
use valori_engine::{Engine, Options};
use valori_node::auth::{KeyKind, Keys};
use valori_node::registry::{OpenSettings, Registry};
use valori_node::{serve, App, Limits};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("valori-node-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

async fn start(dir: &std::path::Path, keys: Keys, limits: Limits) -> Server {
    let registry = Registry::open(
        dir,
        OpenSettings {
            durability: valori_engine::Durability::Fsync,
            checkpoint_wal_bytes: 1 << 20,
            retain_snapshots: 1,
            retain_for: None,
            follower: false,
        },
    )
    .unwrap();
    let app = App::new(registry, keys, limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, None, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
    }
}

impl Server {
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }

    /// One request on a new connection: (status, body).
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&out[..split]).to_string();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut body = out[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        (status, body)
    }

    async fn json(&self, method: &str, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let data = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        let (status, out) = self.call(method, path, &headers, &data).await;
        let v = if out.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out).unwrap_or_else(|_| json!(String::from_utf8_lossy(&out)))
        };
        (status, v)
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_binary_bodies_match_the_engine_in_process() {
    let dir = tempdir("parity");
    let server = start(&dir, Keys::none(), Limits::default()).await;
    for metric in ["l2", "ip", "cosine"] {
        let db = format!("/v1/databases/m{metric}");
        let (s, v) = server
            .json("PUT", &db, None, json!({"dim": 3, "metric": metric}))
            .await;
        assert_eq!((s, v["dim"].as_u64()), (201, Some(3)), "{v}");
        let (s, _) = server
            .json("PUT", &db, None, json!({"dim": 3, "metric": metric}))
            .await;
        assert_eq!(s, 200, "creating again is idempotent");
        let (s, v) = server
            .json(
                "POST",
                &format!("{db}/records"),
                None,
                json!({"vector": [0.1, -0.2, 0.3], "tag": 4, "metadata": "aGk="}),
            )
            .await;
        assert_eq!((s, v["id"].as_u64()), (201, Some(0)), "{v}");
        let rows: Vec<f32> = vec![1.0, 2.0, 3.0, -1.5, 0.25, 8.0];
        let bytes: Vec<u8> = rows.iter().flat_map(|f| f.to_le_bytes()).collect();
        let (s, out) = server
            .call(
                "POST",
                &format!("{db}/records/batch?dtype=f32"),
                &[("Content-Type", "application/octet-stream")],
                &bytes,
            )
            .await;
        assert_eq!(s, 201, "{}", String::from_utf8_lossy(&out));
        let (_, hash) = server
            .json("GET", &format!("{db}/state"), None, Value::Null)
            .await;

        // The same commands in process.
        let local = tempdir(&format!("parity-local-{metric}"));
        let m = Metric::from_name(metric).unwrap();
        let e = Engine::open(&local, Options::new(3, m)).unwrap();
        let q = valori_engine::valori_kernel::fxp::to_vec(&[0.1f64, -0.2, 0.3][..]).unwrap();
        e.insert_fixed(&q, Some(4), b"hi").unwrap();
        e.insert_batch(&rows, &[]).unwrap();
        assert_eq!(
            hash["state_hash"],
            hex(&e.state_hash().unwrap()),
            "{metric}"
        );
        assert_eq!(hash["seq"], 2);

        let (s, v) = server
            .json(
                "POST",
                &format!("{db}/search"),
                None,
                json!({"vector": [1.0, 2.0, 2.5], "k": 2}),
            )
            .await;
        assert_eq!(s, 200);
        let want: Vec<Value> = e
            .search(&[1.0, 2.0, 2.5], 2, None)
            .unwrap()
            .iter()
            .map(|h| json!({"id": h.id, "distance": m.distance_to_f64(h.distance)}))
            .collect();
        assert_eq!(v["hits"], json!(want), "{metric}");
        // The JSON batch answers each query as the single search does (and an empty row
        // for a tag nothing has).
        let (s, v) = server
            .json(
                "POST",
                &format!("{db}/search/batch"),
                None,
                json!({"vectors": [[1.0, 2.0, 2.5], [-1.0, 0.5, 8.0]], "k": 2}),
            )
            .await;
        assert_eq!((s, v["width"].as_u64()), (200, Some(2)), "{v}");
        for (row, q) in [[1.0f32, 2.0, 2.5], [-1.0, 0.5, 8.0]].iter().enumerate() {
            let one = e.search(q, 2, None).unwrap();
            let ids: Vec<u64> = one.iter().map(|h| h.id).collect();
            let d: Vec<f64> = one.iter().map(|h| m.distance_to_f64(h.distance)).collect();
            assert_eq!(v["ids"][row], json!(ids), "{metric}");
            assert_eq!(v["distances"][row], json!(d), "{metric}");
        }
        let (_, v) = server
            .json(
                "POST",
                &format!("{db}/search/batch"),
                None,
                json!({"vectors": [[1.0, 2.0, 2.5]], "k": 2, "tag": 99}),
            )
            .await;
        assert_eq!(
            (v["width"].as_u64(), &v["ids"]),
            (Some(0), &json!([[]])),
            "{v}"
        );
        e.close().unwrap();
        std::fs::remove_dir_all(&local).unwrap();
    }
    server.stop().await;
    // Closed on shutdown: the engine opens them again (no lock left behind).
    Engine::open(dir.join("ml2"), Options::default()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keys_and_limits() {
    let dir = tempdir("errors");
    let mut keys = Keys::none();
    keys.add("read-write-key-000001", KeyKind::ReadWrite)
        .unwrap();
    keys.add("read-only-key-0000001", KeyKind::ReadOnly)
        .unwrap();
    let limits = Limits {
        max_body_bytes: 1000,
        max_batch: 4,
        max_k: 3,
        ..Limits::default()
    };
    let server = start(&dir, keys, limits).await;
    let rw = Some("read-write-key-000001");
    let ro = Some("read-only-key-0000001");
    let (s, v) = server
        .json("PUT", "/v1/databases/a", None, json!({"dim": 2}))
        .await;
    assert_eq!((s, v["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (s, v) = server
        .json("PUT", "/v1/databases/a", ro, json!({"dim": 2}))
        .await;
    assert_eq!((s, v["code"].as_str()), (403, Some("FORBIDDEN")));
    let (s, _) = server
        .json("PUT", "/v1/databases/a", rw, json!({"dim": 2}))
        .await;
    assert_eq!(s, 201);
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/v1/databases/a/records",
            json!({"vector": [1.0]}),
            422,
            "DIMENSION",
        ),
        (
            "POST",
            "/v1/databases/a/records",
            json!({"vector": [1e9, 0.0]}),
            400,
            "INVALID_INPUT",
        ),
        (
            "POST",
            "/v1/databases/a/records",
            json!({"vector": [1.0, 2.0], "metadata": "***"}),
            400,
            "INVALID_INPUT",
        ),
        (
            "POST",
            "/v1/databases/a/search",
            json!({"vector": [1.0, 2.0], "k": 0}),
            400,
            "INVALID_INPUT",
        ),
        (
            "POST",
            "/v1/databases/a/records/batch",
            json!({"vectors": [[1, 2], [1, 2], [1, 2], [1, 2], [1, 2]]}),
            413,
            "INVALID_INPUT",
        ),
        (
            "POST",
            "/v1/databases/a/records/batch",
            json!({"vectors": [[1, 2], [1]]}),
            422,
            "DIMENSION",
        ),
        (
            "DELETE",
            "/v1/databases/a/records/9",
            Value::Null,
            404,
            "NOT_FOUND",
        ),
        (
            "POST",
            "/v1/databases/a/edges",
            json!({"kind": 1, "source": 1, "target": 2}),
            404,
            "NOT_FOUND",
        ),
        (
            "GET",
            "/v1/databases/nope/state",
            Value::Null,
            404,
            "NOT_FOUND",
        ),
        (
            "GET",
            "/v1/databases/Bad!/state",
            Value::Null,
            400,
            "INVALID_INPUT",
        ),
        (
            "PUT",
            "/v1/databases/a",
            json!({"dim": 3}),
            400,
            "INVALID_INPUT",
        ),
        (
            "PUT",
            "/v1/databases/b",
            json!({"dim": 2, "metric": "manhattan"}),
            400,
            "INVALID_INPUT",
        ),
        (
            "PATCH",
            "/v1/databases/a",
            Value::Null,
            405,
            "INVALID_INPUT",
        ),
        ("GET", "/v2/anything", Value::Null, 404, "NOT_FOUND"),
    ];
    for (method, path, body, status, code) in cases {
        let (s, v) = server.json(method, path, rw, body.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body}: {v}"
        );
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let big = vec![b'1'; 2000];
    let (s, out) = server
        .call(
            "POST",
            "/v1/databases/a/records",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", "Bearer read-write-key-000001"),
            ],
            &big,
        )
        .await;
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((s, v["code"].as_str()), (413, Some("INVALID_INPUT")));
    // Nothing above changed the database; a read-only key reads.
    let (s, v) = server.json("GET", "/v1/databases/a", ro, Value::Null).await;
    assert_eq!(
        (s, v["records"].as_u64(), v["seq"].as_u64()),
        (200, Some(0), Some(0))
    );
    let (s, _) = server
        .json(
            "POST",
            "/v1/databases/a/search",
            ro,
            json!({"vector": [1.0, 2.0], "k": 2}),
        )
        .await;
    assert_eq!(s, 200);
    // Health is open; metrics need a key.
    assert_eq!(server.call("GET", "/healthz", &[], b"").await.0, 200);
    assert_eq!(server.call("GET", "/metrics", &[], b"").await.0, 401);
    let (s, text) = server
        .call(
            "GET",
            "/metrics",
            &[("Authorization", "Bearer read-only-key-0000001")],
            b"",
        )
        .await;
    let text = String::from_utf8(text).unwrap();
    assert_eq!(s, 200);
    assert!(text.contains("valori_http_requests_total{method=\"POST\",route=\"/v1/databases/{db}/records\",status=\"422\"} 1"), "{text}");
    assert!(text.contains("valori_records{database=\"a\"} 0"), "{text}");
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_concurrency_limit_is_429_and_drop_is_clean() {
    let dir = tempdir("limit");
    let limits = Limits {
        max_concurrency: 1,
        max_k: 2,
        ..Limits::default()
    };
    let server = start(&dir, Keys::none(), limits).await;
    let (s, _) = server
        .json(
            "PUT",
            "/v1/databases/c",
            None,
            json!({"dim": 2, "metric": "inner_product"}),
        )
        .await;
    assert_eq!(s, 201, "inner_product is read as ip, as in process");
    // A request whose body has not arrived holds the only slot.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /v1/databases/c/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"vec")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (s, v) = server
        .json("GET", "/v1/databases/c", None, Value::Null)
        .await;
    assert_eq!((s, v["code"].as_str()), (429, Some("BUSY")), "{v}");
    // Every route shares the one limit.
    let (s, _) = server.json("GET", "/v1/databases", None, Value::Null).await;
    assert_eq!(s, 429);
    drop(slow);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (s, _) = server
        .json("GET", "/v1/databases/c", None, Value::Null)
        .await;
    assert_eq!(s, 200, "the slot is free again");

    // k over the limit is refused only when the answer would be over it.
    let (s, _) = server
        .json(
            "POST",
            "/v1/databases/c/records/batch",
            None,
            json!({"vectors": [[1, 0], [0, 1]], "tags": [1, 2]}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, v) = server
        .json(
            "POST",
            "/v1/databases/c/search",
            None,
            json!({"vector": [1, 1], "k": 100}),
        )
        .await;
    assert_eq!(
        (s, v["hits"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{v}"
    );
    server
        .json(
            "POST",
            "/v1/databases/c/records",
            None,
            json!({"vector": [1, 1]}),
        )
        .await;
    let (s, _) = server
        .json(
            "POST",
            "/v1/databases/c/search",
            None,
            json!({"vector": [1, 1], "k": 100}),
        )
        .await;
    assert_eq!(s, 400);
    // A tag list of the wrong length is refused, as in process.
    let (s, v) = server
        .json(
            "POST",
            "/v1/databases/c/records/batch",
            None,
            json!({"vectors": [[1, 0]], "tags": []}),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("INVALID_INPUT")), "{v}");
    // A bad dimension creates nothing on disk.
    let (s, _) = server
        .json("PUT", "/v1/databases/zero", None, json!({"dim": 0}))
        .await;
    assert_eq!(s, 400);
    assert!(!dir.join("zero").exists());
    // Drop removes everything, leaving no tombstone.
    let (s, _) = server
        .json("DELETE", "/v1/databases/c", None, Value::Null)
        .await;
    assert_eq!(s, 204);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let (s, _) = server
        .json("GET", "/v1/databases/c", None, Value::Null)
        .await;
    assert_eq!(s, 404);
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_interrupted_drop_is_finished_at_start() {
    let dir = tempdir("tomb");
    std::fs::create_dir_all(dir.join(".dropped-old/inner")).unwrap();
    std::fs::create_dir_all(dir.join("not-a-database")).unwrap();
    let registry = Registry::open(
        &dir,
        OpenSettings {
            durability: valori_engine::Durability::Fsync,
            checkpoint_wal_bytes: 0,
            retain_snapshots: 1,
            retain_for: None,
            follower: false,
        },
    )
    .unwrap();
    assert!(registry.all().is_empty());
    assert!(!dir.join(".dropped-old").exists());
    assert!(
        dir.join("not-a-database").exists(),
        "other directories are left alone"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_public_address_needs_a_key() {
    let public: std::net::SocketAddr = "0.0.0.0:3000".parse().unwrap();
    let e = valori_node::check_listen(&public, &Keys::none()).unwrap_err();
    assert!(e.contains("without an API key"), "{e}");
    let mut keys = Keys::none();
    keys.add("read-write-key-000001", KeyKind::ReadWrite)
        .unwrap();
    valori_node::check_listen(&public, &keys).unwrap();
    for local in ["127.0.0.1:3000", "[::1]:3000"] {
        valori_node::check_listen(&local.parse().unwrap(), &Keys::none()).unwrap();
    }
}

#[tokio::test]
async fn history_and_past_state_hashes() {
    let dir = tempdir("history");
    let server = start(&dir, Keys::none(), Limits::default()).await;
    let db = "/v1/databases/h";
    let (s, _) = server
        .json("PUT", db, None, json!({"dim": 2, "metric": "cosine"}))
        .await;
    assert_eq!(s, 201);
    let mut hashes = Vec::new();
    let (_, v) = server
        .json("GET", &format!("{db}/state"), None, Value::Null)
        .await;
    hashes.push(v["state_hash"].as_str().unwrap().to_string());
    for i in 0..3 {
        let (s, _) = server
            .json(
                "POST",
                &format!("{db}/records"),
                None,
                json!({"vector": [1.0, i]}),
            )
            .await;
        assert_eq!(s, 201);
        let (_, v) = server
            .json("GET", &format!("{db}/state"), None, Value::Null)
            .await;
        hashes.push(v["state_hash"].as_str().unwrap().to_string());
    }
    let (s, _) = server
        .json("DELETE", &format!("{db}/records/1"), None, Value::Null)
        .await;
    assert_eq!(s, 204);
    for (seq, want) in hashes.iter().enumerate() {
        let (s, v) = server
            .json("GET", &format!("{db}/state?at={seq}"), None, Value::Null)
            .await;
        assert_eq!((s, v["seq"].as_u64()), (200, Some(seq as u64)), "{v}");
        assert_eq!(v["state_hash"].as_str(), Some(want.as_str()));
    }
    let (s, v) = server
        .json("GET", &format!("{db}/state?at=5"), None, Value::Null)
        .await;
    assert_eq!((s, v["code"].as_str()), (404, Some("NOT_FOUND")), "{v}");
    let (s, v) = server
        .json(
            "GET",
            &format!("{db}/history?from=2&limit=5"),
            None,
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let entries = v["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["insert", "insert", "delete"]);
    assert_eq!(entries[0]["seq"], 2);
    assert_eq!(entries[2]["chain"].as_str().unwrap().len(), 64);
    let (s, v) = server
        .json(
            "GET",
            &format!("{db}/history?limit=10001"),
            None,
            Value::Null,
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("INVALID_INPUT")), "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_and_the_export_stream_in_pages() {
    let dir = tempdir("stream");
    let server = start(&dir, Keys::none(), Limits::default()).await;
    let db = "/v1/databases/s";
    let (s, _) = server.json("PUT", db, None, json!({"dim": 2})).await;
    assert_eq!(s, 201);
    // Five batches (one command each, sequence numbers 1..=5), a checkpoint, then 2,500 single
    // inserts: the log after the snapshot is three pages of /wal.
    let rows: Vec<f32> = (0..2 * 500).map(|i| i as f32).collect();
    let body: Vec<u8> = bytemuck_bytes(&rows);
    for _ in 0..5 {
        let (s, _) = server
            .call(
                "POST",
                &format!("{db}/records/batch"),
                &[("Content-Type", "application/octet-stream")],
                &body,
            )
            .await;
        assert_eq!(s, 201);
    }
    let (s, _) = server
        .json("POST", &format!("{db}/checkpoint"), None, Value::Null)
        .await;
    assert_eq!(s, 204);
    for i in 0..2_500 {
        let (s, _) = server
            .json(
                "POST",
                &format!("{db}/records"),
                None,
                json!({"vector": [i, 1]}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let (s, body) = server
        .call("GET", &format!("{db}/wal?after=5"), &[], &[])
        .await;
    assert_eq!(s, 200);
    let seqs: Vec<u64> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (6..=2_505).collect::<Vec<_>>());
    let (s, body) = server
        .call("GET", &format!("{db}/wal?after=2400"), &[], &[])
        .await;
    assert_eq!(
        (s, String::from_utf8(body).unwrap().lines().count()),
        (200, 105)
    );
    let (s, v) = server
        .json("GET", &format!("{db}/wal?after=4"), None, Value::Null)
        .await;
    assert_eq!((s, v["code"].as_str()), (404, Some("NOT_FOUND")), "{v}");
    let (s, v) = server
        .json("GET", &format!("{db}/wal?after=2506"), None, Value::Null)
        .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("INVALID_INPUT")), "{v}");
    let (s, body) = server.call("GET", &format!("{db}/export"), &[], &[]).await;
    assert_eq!(s, 200);
    let export = valori_engine::Export::decode(&body).unwrap();
    assert_eq!((export.base_seq, export.commands.len()), (5, 2_500));
    let (_, v) = server
        .json("GET", &format!("{db}/state"), None, Value::Null)
        .await;
    assert_eq!(
        hex(&export.replay().unwrap().state_hash()),
        v["state_hash"].as_str().unwrap()
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn bytemuck_bytes(rows: &[f32]) -> Vec<u8> {
    rows.iter().flat_map(|x| x.to_le_bytes()).collect()
}
