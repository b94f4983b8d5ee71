//! Every `valori` subcommand run as a process: on intact, empty and damaged databases, with
//! good and bad arguments. Each failure has its documented exit code and a one-line message,
//! never a panic or a backtrace.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use valori_engine::valori_kernel::Metric;
use valori_engine::{Engine, Options};

/// The tests run one at a time: a test's in-process database lock (flock) is inherited by a
/// child another test forks, until that child execs, so a tool run could find it held.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const DAMAGED: i32 = 1;
const USAGE: i32 = 2;
const NOT_FOUND: i32 = 3;
const BUSY: i32 = 4;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn valori(args: &[&str]) -> Run {
    let out = Command::cargo_bin("valori")
        .unwrap()
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("backtrace"),
        "{args:?}: {}",
        run.stderr
    );
    run
}

fn ok(args: &[&str]) -> String {
    let r = valori(args);
    assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
    r.stdout
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

/// Fails with `code`, and a message on stderr containing `needle`.
fn fails(args: &[&str], code: i32, needle: &str) {
    let r = valori(args);
    assert_eq!(r.code, code, "{args:?}: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A database of every metric's kind of content: 12 commands (inserts, a batch, metadata,
/// a delete, graph), a checkpoint after the 6th, every snapshot retained. Returns the state
/// hash after each sequence number.
fn build(dir: &Path, metric: Metric) -> Vec<String> {
    let db = Engine::open(dir, Options::new(3, metric).retain_snapshots(u32::MAX)).unwrap();
    let mut hashes = vec![hex::encode(db.state_hash().unwrap())];
    let mut step = |db: &Engine| hashes.push(hex::encode(db.state_hash().unwrap()));
    db.insert(&[1.0, 0.0, 0.0], Some(7), b"first").unwrap();
    step(&db);
    db.insert(&[0.0, 1.0, 0.0], None, b"").unwrap();
    step(&db);
    db.insert_batch(&[0.0, 0.0, 1.0, 0.5, 0.5, 0.0], &[])
        .unwrap();
    step(&db);
    db.set_meta(1, b"second").unwrap();
    step(&db);
    db.delete(0).unwrap();
    step(&db);
    let n = db.create_node(1, Some(1), b"n1").unwrap();
    step(&db);
    db.checkpoint().unwrap();
    let m = db.create_node(1, Some(2), b"n2").unwrap();
    step(&db);
    db.create_edge(3, n, m, Some(0.5)).unwrap();
    step(&db);
    db.set_tag(2, Some(9)).unwrap();
    step(&db);
    db.insert(&[0.2, 0.2, 0.9], None, b"late").unwrap();
    step(&db);
    db.delete_node(m).unwrap();
    step(&db);
    db.insert(&[-1.0, 0.0, 0.0], None, b"").unwrap();
    step(&db);
    db.close().unwrap();
    hashes
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[test]
fn info_verify_hash_and_log_on_every_metric() {
    let _serial = serial();
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("db");
        let hashes = build(&db, metric);
        let info = json(&["info", s(&db), "--json"]);
        assert_eq!(info["dim"], 3);
        assert_eq!(info["metric"], metric.to_string());
        assert_eq!(info["records"], 5);
        assert_eq!(info["nodes"], 1);
        assert_eq!(info["edges"], 0);
        assert_eq!(info["seq"], 12);
        assert_eq!(info["state_hash"], hashes[12].as_str());
        assert_eq!(info["snapshots"].as_array().unwrap().len(), 2);
        let text = ok(&["info", s(&db)]);
        assert!(text.contains(&hashes[12]), "{text}");
        assert!(text.contains("records:     5"), "{text}");

        let v = json(&["verify", s(&db), "--json"]);
        assert_eq!(v["ok"], true);
        assert_eq!(
            (v["records"].as_u64(), v["snapshots"].as_u64()),
            (Some(12), Some(2))
        );
        assert_eq!(v["state_hash"], hashes[12].as_str());
        assert!(ok(&["verify", s(&db)]).starts_with("ok: 2 snapshots"));

        for (seq, want) in hashes.iter().enumerate() {
            let h = json(&["hash", s(&db), "--at", &seq.to_string(), "--json"]);
            assert_eq!(h["state_hash"], want.as_str(), "{metric} seq {seq}");
        }
        assert!(ok(&["hash", s(&db)]).starts_with(&hashes[12]));
    }
}

#[test]
fn log_and_show_list_the_history_with_ids_and_tags() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    build(&db, Metric::L2);
    ok(&["tag", s(&db), "before-delete", "--at", "4"]);
    let log = json(&["log", s(&db), "--json"]);
    let cmds = log["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 12);
    let kinds: Vec<&str> = cmds.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "insert",
            "insert",
            "insert_batch",
            "set_meta",
            "delete",
            "create_node",
            "create_node",
            "create_edge",
            "set_tag",
            "insert",
            "delete_node",
            "insert"
        ]
    );
    // Automatic ids are resolved by replay.
    assert_eq!(cmds[1]["ids"], "record 1");
    assert_eq!(cmds[2]["ids"], "records 2..3 (2)");
    assert_eq!(cmds[9]["ids"], "record 4");
    assert_eq!(cmds[3]["tags"], serde_json::json!(["before-delete"]));
    assert_eq!(cmds[0]["chain"].as_str().unwrap().len(), 64);
    let page = json(&["log", s(&db), "--from", "5", "--limit", "2", "--json"]);
    let seqs: Vec<u64> = page["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [5, 6]);
    let text = ok(&["log", s(&db)]);
    assert!(text.contains("(tag: before-delete)"), "{text}");
    assert_eq!(text.lines().count(), 12);

    let show = json(&["show", s(&db), "3", "--json"]);
    assert_eq!(show["kind"], "insert_batch");
    assert_eq!(
        show["vectors"],
        serde_json::json!([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    );
    let show = ok(&["show", s(&db), "1"]);
    assert!(show.contains("meta: first"), "{show}");
    fails(
        &["show", s(&db), "13"],
        NOT_FOUND,
        "not in the retained log",
    );
    fails(
        &["show", s(&db), "18446744073709551615"],
        NOT_FOUND,
        "not in the retained log",
    );
    fails(&["show", s(&db), "-1"], USAGE, "");
}

#[test]
fn checkout_and_tags_travel_in_time() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let hashes = build(&db, Metric::Cosine);
    ok(&["tag", s(&db), "v1", "--at", "6"]);
    let h = json(&["hash", s(&db), "--at", "v1", "--json"]);
    assert_eq!(
        (h["seq"].as_u64(), h["state_hash"].as_str()),
        (Some(6), Some(hashes[6].as_str()))
    );
    let out = t.path().join("at6");
    let text = ok(&["checkout", s(&db), "--at", "v1", "--out", s(&out)]);
    assert!(text.contains(&hashes[6]), "{text}");
    let copy = Engine::open(&out, Options::default()).unwrap();
    assert_eq!(hex::encode(copy.state_hash().unwrap()), hashes[6]);
    assert_eq!(copy.sequence().unwrap(), 6);
    drop(copy);
    // Refused: an existing database, an unknown tag, a point past the end, a bad tag name.
    fails(
        &["checkout", s(&db), "--at", "3", "--out", s(&out)],
        USAGE,
        "already holds a database",
    );
    fails(
        &[
            "checkout",
            s(&db),
            "--at",
            "nope",
            "--out",
            s(&t.path().join("x")),
        ],
        NOT_FOUND,
        "neither a sequence number nor a tag",
    );
    fails(&["hash", s(&db), "--at", "13"], NOT_FOUND, "not retained");
    fails(
        &["hash", s(&db), "--at", "18446744073709551615"],
        NOT_FOUND,
        "not retained",
    );
    fails(
        &["tag", s(&db), "bad name", "--at", "2"],
        USAGE,
        "bad tag name",
    );
    fails(
        &["tag", s(&db), "late", "--at", "99"],
        NOT_FOUND,
        "not retained",
    );
    ok(&["tag", s(&db), "head"]);
    let tags = json(&["log", s(&db), "--json"])["tags"].clone();
    assert_eq!(
        tags,
        serde_json::json!([{"name": "v1", "seq": 6}, {"name": "head", "seq": 12}])
    );
    ok(&["tag", s(&db), "v1", "--delete"]);
    fails(
        &["tag", s(&db), "v1", "--delete"],
        NOT_FOUND,
        "no tag named",
    );
}

#[test]
fn diff_between_points_and_databases() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    build(&db, Metric::L2);
    let d = json(&[
        "diff",
        &format!("{}@3", s(&db)),
        &format!("{}@12", s(&db)),
        "--json",
    ]);
    assert_eq!(d["identical"], false);
    assert_eq!(d["records"]["added"], serde_json::json!([4, 5]));
    assert_eq!(d["records"]["removed"], serde_json::json!([0]));
    assert_eq!(d["records"]["changed"], serde_json::json!([1, 2]));
    assert_eq!(d["nodes"]["added"], serde_json::json!([0]));
    assert_eq!(d["edges"]["added"], serde_json::json!([]));
    let text = ok(&["diff", &format!("{}@3", s(&db)), s(&db)]);
    assert!(text.contains("records removed (1): 0"), "{text}");
    let out = t.path().join("copy");
    ok(&["checkout", s(&db), "--at", "12", "--out", s(&out)]);
    let same = json(&["diff", s(&db), s(&out), "--json"]);
    assert_eq!(same["identical"], true);
    fails(
        &["diff", s(&db), s(&t.path().join("missing"))],
        NOT_FOUND,
        "no database",
    );
}

#[test]
fn export_import_and_replay() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let hashes = build(&db, Metric::InnerProduct);
    let file = t.path().join("db.vlrx");
    ok(&["export", s(&db), s(&file)]);
    let r = json(&["replay", s(&file), "--expect-hash", &hashes[12], "--json"]);
    assert_eq!(
        (r["matches"].as_bool(), r["seq"].as_u64()),
        (Some(true), Some(12))
    );
    let wrong = "00".repeat(32);
    fails(
        &["replay", s(&file), "--expect-hash", &wrong],
        DAMAGED,
        "state hash mismatch",
    );
    fails(
        &["replay", s(&file), "--expect-hash", "xyz"],
        USAGE,
        "64 hex digits",
    );
    let imported = t.path().join("imported");
    ok(&["import", s(&file), s(&imported)]);
    let info = json(&["info", s(&imported), "--json"]);
    assert_eq!(
        (info["state_hash"].as_str(), info["seq"].as_u64()),
        (Some(hashes[12].as_str()), Some(12))
    );
    fails(
        &["import", s(&file), s(&imported)],
        USAGE,
        "already holds a database",
    );
    // A damaged export is refused and writes nothing.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 1;
    let bad = t.path().join("bad.vlrx");
    std::fs::write(&bad, &bytes).unwrap();
    fails(&["replay", s(&bad)], DAMAGED, "");
    let never = t.path().join("never");
    fails(
        &["import", s(&bad), s(&never)],
        DAMAGED,
        "nothing was written",
    );
    assert!(!never.exists());
    fails(
        &["replay", s(&t.path().join("missing.vlrx"))],
        NOT_FOUND,
        "missing.vlrx",
    );
}

#[test]
fn search_and_get_read_json_and_npy_vectors() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    build(&db, Metric::L2);
    let hits = json(&[
        "search",
        s(&db),
        "--vector",
        "[0.0, 0.9, 0.1]",
        "--k",
        "2",
        "--json",
    ]);
    assert_eq!(hits["hits"][0]["id"], 1);
    assert_eq!(hits["hits"].as_array().unwrap().len(), 2);
    let tagged = json(&[
        "search",
        s(&db),
        "--vector",
        "[0,0,1]",
        "--tag",
        "9",
        "--json",
    ]);
    assert_eq!(tagged["hits"].as_array().unwrap().len(), 1);
    assert_eq!(tagged["hits"][0]["id"], 2);
    // At seq 1 only record 0 existed.
    let past = json(&[
        "search",
        s(&db),
        "--vector",
        "[0,1,0]",
        "--at",
        "1",
        "--json",
    ]);
    assert_eq!(past["hits"].as_array().unwrap().len(), 1);
    assert_eq!(past["hits"][0]["id"], 0);
    // .npy, float32, 1-D.
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    for x in [-1.0f32, 0.0, 0.0] {
        npy.extend_from_slice(&x.to_le_bytes());
    }
    let q = t.path().join("q.npy");
    std::fs::write(&q, npy).unwrap();
    let hits = json(&["search", s(&db), "--npy", s(&q), "--k", "1", "--json"]);
    assert_eq!(hits["hits"][0]["id"], 5);
    assert_eq!(hits["hits"][0]["distance"], 0.0);
    fails(
        &["search", s(&db), "--vector", "[1, 2]"],
        USAGE,
        "dimension",
    );
    fails(
        &["search", s(&db), "--vector", "not json"],
        USAGE,
        "not JSON",
    );
    fails(
        &["search", s(&db), "--vector", "[1, \"a\", 2]"],
        USAGE,
        "component 1",
    );
    fails(
        &["search", s(&db), "--vector", "[1,2,3]", "--k", "0"],
        USAGE,
        "",
    );
    fails(&["search", s(&db)], USAGE, "--vector");

    let rec = json(&["get", s(&db), "1", "--json"]);
    assert_eq!(rec["meta"], "second");
    assert_eq!(rec["vector"], serde_json::json!([0.0, 1.0, 0.0]));
    let rec = json(&["get", s(&db), "0", "--at", "1", "--json"]);
    assert_eq!(rec["tag"], 7);
    fails(&["get", s(&db), "0"], NOT_FOUND, "no record 0");
}

#[test]
fn damaged_databases_are_reported_with_file_and_offset() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let build_fresh = |name: &str| {
        let db = t.path().join(name);
        let hashes = build(&db, Metric::L2);
        (db, hashes)
    };
    // Bit flip inside the first record after the newest snapshot (valid records follow).
    let (db, hashes) = build_fresh("flip");
    let seg = files(&db, ".log").pop().unwrap();
    let mut b = std::fs::read(&seg).unwrap();
    b[64 + 30] ^= 0x40;
    std::fs::write(&seg, &b).unwrap();
    let r = valori(&["verify", s(&db)]);
    assert_eq!(r.code, DAMAGED, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(seg.file_name().unwrap().to_str().unwrap()),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("damaged at byte"), "{}", r.stderr);
    assert!(r.stderr.contains("valori salvage"), "{}", r.stderr);
    let v: Value = serde_json::from_str(&valori(&["verify", s(&db), "--json"]).stdout).unwrap();
    assert_eq!(v["ok"], false);
    // Salvage copies the intact prefix; the copy verifies.
    let out = t.path().join("salvaged");
    let text = ok(&["salvage", s(&db), "--out", s(&out)]);
    assert!(text.contains("damage at byte"), "{text}");
    assert!(text.contains(&hashes[6]), "{text}");
    let v = json(&["verify", s(&out), "--json"]);
    assert_eq!(
        (v["seq"].as_u64(), v["state_hash"].as_str()),
        (Some(6), Some(hashes[6].as_str()))
    );
    fails(
        &["salvage", s(&db), "--out", s(&out)],
        USAGE,
        "already holds a database",
    );

    // A truncated segment in the middle of the log.
    let (db, _) = build_fresh("trunc");
    let seg = files(&db, ".log")[0].clone();
    let b = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &b[..b.len() - 7]).unwrap();
    fails(
        &["verify", s(&db)],
        DAMAGED,
        "incomplete record in the middle of the log",
    );

    // The only snapshots missing.
    let (db, _) = build_fresh("nosnap");
    for p in files(&db, ".vsnap") {
        std::fs::remove_file(p).unwrap();
    }
    fails(
        &["verify", s(&db)],
        DAMAGED,
        "WAL segment without any snapshot",
    );
    fails(
        &["info", s(&db)],
        DAMAGED,
        "WAL segment without any snapshot",
    );

    // A torn tail is not damage: verify says so and succeeds; the state is unchanged.
    let (db, hashes) = build_fresh("torn");
    let seg = files(&db, ".log").pop().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 100]).unwrap();
    drop(f);
    let out = ok(&["verify", s(&db)]);
    assert!(out.contains("interrupted append"), "{out}");
    assert!(out.contains(&hashes[12]), "{out}");
}

#[test]
fn empty_databases_missing_ones_busy_ones_and_bad_arguments() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("empty");
    Engine::open(&db, Options::new(4, Metric::L2))
        .unwrap()
        .close()
        .unwrap();
    let info = json(&["info", s(&db), "--json"]);
    assert_eq!(
        (info["records"].as_u64(), info["seq"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(json(&["verify", s(&db), "--json"])["records"], 0);
    assert!(ok(&["log", s(&db)]).contains("no commands"));
    let h = json(&["hash", s(&db), "--at", "0", "--json"]);
    assert_eq!(h["state_hash"], info["state_hash"]);
    let hits = json(&["search", s(&db), "--vector", "[1,2,3,4]", "--json"]);
    assert_eq!(hits["hits"], serde_json::json!([]));

    let missing = t.path().join("missing");
    for cmd in ["info", "verify", "log", "hash"] {
        fails(&[cmd, s(&missing)], NOT_FOUND, "no database in");
    }
    fails(&["info", s(t.path())], NOT_FOUND, "no database in");

    let held = Engine::open(&db, Options::default()).unwrap();
    fails(&["info", s(&db)], BUSY, "in use");
    drop(held);

    fails(&[], USAGE, "Usage");
    fails(&["frobnicate"], USAGE, "unrecognized subcommand");
    fails(&["info"], USAGE, "<DIR>");
    fails(&["log", s(&db), "--limit", "lots"], USAGE, "invalid value");
    fails(&["checkout", s(&db), "--at", "0"], USAGE, "--out");
    assert!(ok(&["--help"]).contains("Exit codes"));
    assert!(ok(&["completions", "bash"]).contains("valori"));
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let e = Engine::open(
        &db,
        Options::new(2, Metric::L2).durability(valori_engine::Durability::None),
    )
    .unwrap();
    for i in 0..3000u16 {
        e.insert(&[f32::from(i), 1.0], None, b"").unwrap();
    }
    e.close().unwrap();
    // More output than a pipe holds; the reader takes a little and goes away (`| head`).
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("valori"))
        .args(["log", s(&db), "--limit", "5000", "--json"])
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
