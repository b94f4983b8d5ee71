//! History and time travel: retention keeps past states reachable, every reachable state is
//! rebuilt with the hash it had, tags pin points against retention, verify reads every file
//! and names the first damage, and a checkout is a database holding exactly the past state.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use valori_engine::sim::SimStorage;
use valori_engine::{Engine, Error, History, Options, Storage};
use valori_kernel::{Command, ErrorCode, Metric};

fn dir() -> PathBuf {
    PathBuf::from("/db")
}

fn open(sim: &SimStorage, options: Options) -> Engine {
    Engine::open_with_storage(dir(), options, Arc::new(sim.clone())).unwrap()
}

fn history(sim: &SimStorage) -> History {
    History::open_with_storage(dir(), Arc::new(sim.clone())).unwrap()
}

/// 30 commands with a checkpoint after every 7th; returns the hash after each (index = seq).
fn build(sim: &SimStorage, options: Options) -> Vec<[u8; 32]> {
    let db = open(sim, options.clone());
    let mut hashes = vec![db.state_hash().unwrap()];
    let mut ids = Vec::new();
    for i in 0..30u32 {
        let x = i as f32;
        match i % 5 {
            0..=2 => ids.push(
                db.insert(&[x, -x, 0.5], Some(u64::from(i % 3)), b"m")
                    .unwrap(),
            ),
            3 => db.set_meta(*ids.last().unwrap(), b"changed").unwrap(),
            _ => db.delete(ids.remove(0)).unwrap(),
        }
        hashes.push(db.state_hash().unwrap());
        if i % 7 == 6 {
            db.checkpoint().unwrap();
        }
    }
    db.close().unwrap();
    hashes
}

fn options(retain: u32) -> Options {
    Options::new(3, Metric::Cosine).retain_snapshots(retain)
}

fn replace(sim: &SimStorage, path: &Path, bytes: &[u8]) {
    let mut f = sim.create(path).unwrap();
    f.append(bytes).unwrap();
    f.sync().unwrap();
}

fn file_named(sim: &SimStorage, suffix: &str, nth: usize) -> (PathBuf, Vec<u8>) {
    let files: Vec<_> = sim
        .state()
        .files()
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(suffix))
        .collect();
    files[nth].clone()
}

#[test]
fn every_retained_state_is_rebuilt_with_its_hash() {
    let sim = SimStorage::new();
    let hashes = build(&sim, options(u32::MAX));
    let h = history(&sim);
    let span = h.span().unwrap();
    assert_eq!((span.first, span.last), (0, 30));
    let config = h.config().unwrap();
    assert_eq!((config.dim, config.metric), (3, Metric::Cosine));
    for (seq, want) in hashes.iter().enumerate() {
        let (k, _) = h.state_at(seq as u64).unwrap();
        assert_eq!(&k.state_hash(), want, "seq {seq}");
    }
    let e = h.state_at(31).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
    assert!(e.to_string().contains("0..=30"), "{e}");
    // The log lists every command, in order, with its chain value.
    let all = h.entries(1, usize::MAX).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    assert!(matches!(
        valori_engine::decode_entry(&all[3]).unwrap(),
        Command::SetMeta { id: 2, .. }
    ));
    let page = h.entries(10, 5).unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    assert_eq!(page[0], all[9]);
    let v = h.verify(&mut |_, _| {}).unwrap();
    assert_eq!((v.seq, v.state_hash, v.records), (30, hashes[30], 30));
    assert_eq!(v.snapshots, 5);
    assert_eq!(v.torn_tail, None);
}

#[test]
fn default_retention_keeps_only_the_newest_snapshot() {
    let sim = SimStorage::new();
    let hashes = build(&sim, options(1));
    let h = history(&sim);
    assert_eq!(h.span().unwrap().first, 28);
    assert_eq!(h.state_at(30).unwrap().0.state_hash(), hashes[30]);
    let e = h.state_at(27).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NotRetained {
                seq: 27,
                first: Some(28),
                last: Some(30)
            }
        ),
        "{e}"
    );
    assert_eq!(h.files().unwrap().snapshots.len(), 1);
    assert_eq!(h.files().unwrap().segments.len(), 1);
}

#[test]
fn retention_keeps_the_newest_n_snapshots_and_the_log_after_them() {
    let sim = SimStorage::new();
    let hashes = build(&sim, options(2));
    let h = history(&sim);
    // Checkpoints at 7, 14, 21, 28: the newest two are 21 and 28.
    assert_eq!(h.span().unwrap().first, 21);
    for seq in 21..=30 {
        assert_eq!(
            h.state_at(seq).unwrap().0.state_hash(),
            hashes[seq as usize]
        );
    }
    assert!(h.state_at(20).is_err());
}

#[test]
fn a_tag_pins_its_point_and_removing_it_releases_it() {
    let sim = SimStorage::new();
    let db = open(&sim, options(1));
    db.insert(&[1.0, 0.0, 0.0], None, b"").unwrap();
    db.insert(&[0.0, 1.0, 0.0], None, b"").unwrap();
    let at2 = db.state_hash().unwrap();
    db.tag_history("before-delete", 2).unwrap();
    db.delete(1).unwrap();
    db.checkpoint().unwrap();
    db.insert(&[0.0, 0.0, 1.0], None, b"").unwrap();
    db.checkpoint().unwrap();
    assert_eq!(db.state_at_seq(2).unwrap().0.state_hash(), at2);
    assert_eq!(db.span().unwrap().first, 0);
    let tags = db.history_tags().unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!((tags[0].name.as_str(), tags[0].seq), ("before-delete", 2));
    // Bad names and unreachable points are refused, nothing changed.
    for bad in ["", "has space", &"x".repeat(65)] {
        let e = db.tag_history(bad, 1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
    }
    let e = db.tag_history("future", 99).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
    assert_eq!(db.history_tags().unwrap().len(), 1);
    db.untag_history("before-delete").unwrap();
    assert_eq!(
        db.untag_history("before-delete").unwrap_err().code(),
        ErrorCode::NotFound
    );
    db.insert(&[0.5, 0.5, 0.0], None, b"").unwrap();
    db.checkpoint().unwrap();
    assert!(matches!(
        db.state_at_seq(2).unwrap_err(),
        Error::NotRetained { .. }
    ));
    db.close().unwrap();
    // The database reopens to the same state with history files pruned or kept.
    let db = open(&sim, options(1));
    assert_eq!(db.sequence().unwrap(), 5);
}

#[test]
fn reopening_skips_retained_segments_and_keeps_them() {
    let sim = SimStorage::new();
    let hashes = build(&sim, options(u32::MAX));
    let before = history(&sim).files().unwrap();
    drop(history(&sim));
    let db = open(&sim, options(u32::MAX));
    assert_eq!(db.state_hash().unwrap(), hashes[30]);
    db.close().unwrap();
    assert_eq!(history(&sim).files().unwrap(), before);
    // Damage in a retained old segment does not stop the database from opening (recovery
    // starts at the newest snapshot), but verify finds it.
    let (path, mut bytes) = file_named(&sim, ".log", 0);
    let at = bytes.len() - 5;
    bytes[at] ^= 1;
    replace(&sim, &path, &bytes);
    let db = open(&sim, options(u32::MAX));
    assert_eq!(db.state_hash().unwrap(), hashes[30]);
    db.close().unwrap();
    let e = history(&sim).verify(&mut |_, _| {}).unwrap_err();
    match e {
        Error::Corrupt { file, .. } => assert_eq!(file, path),
        other => panic!("{other}"),
    }
}

#[test]
fn verify_names_the_first_damage() {
    // Each case damages one file of an intact database; verify must name that file.
    type Damage = fn(&SimStorage) -> PathBuf;
    let cases: [(&str, Damage); 4] = [
        ("bit flip in a middle segment", |sim| {
            let (p, mut b) = file_named(sim, ".log", 2);
            b[70] ^= 0x10;
            replace(sim, &p, &b);
            p
        }),
        ("truncated middle segment", |sim| {
            let (p, b) = file_named(sim, ".log", 1);
            replace(sim, &p, &b[..b.len() - 3]);
            p
        }),
        ("bit flip in an old snapshot", |sim| {
            let (p, mut b) = file_named(sim, ".vsnap", 1);
            let at = b.len() / 2;
            b[at] ^= 1;
            replace(sim, &p, &b);
            p
        }),
        ("missing segment", |sim| {
            let (p, _) = file_named(sim, ".log", 1);
            sim.remove(&p).unwrap();
            // The next segment no longer continues the one before.
            file_named(sim, ".log", 1).0
        }),
    ];
    for (what, damage) in cases {
        let sim = SimStorage::new();
        build(&sim, options(u32::MAX));
        history(&sim).verify(&mut |_, _| {}).unwrap();
        let file = damage(&sim);
        let e = history(&sim).verify(&mut |_, _| {}).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Corrupt, "{what}: {e}");
        match &e {
            Error::Corrupt { file: f, .. } => assert_eq!(f, &file, "{what}: {e}"),
            other => panic!("{what}: {other}"),
        }
    }
}

#[test]
fn verify_reports_a_torn_tail_without_calling_it_damage() {
    let sim = SimStorage::new();
    let hashes = build(&sim, options(1));
    let (p, mut b) = file_named(&sim, ".log", 0);
    b.extend_from_slice(&[0xAB; 10]);
    replace(&sim, &p, &b);
    let v = history(&sim).verify(&mut |_, _| {}).unwrap();
    assert_eq!(v.state_hash, hashes[30]);
    let (file, _, bytes) = v.torn_tail.unwrap();
    assert_eq!((file, bytes), (p, 10));
}

#[test]
fn a_checkout_holds_the_past_state_and_continues_its_log() {
    let sim = SimStorage::new();
    let hashes = build(&sim, options(u32::MAX));
    let h = history(&sim);
    let hash = h.checkout(12, "/out").unwrap();
    assert_eq!(hash, hashes[12]);
    // Refused over an existing database, nothing changed.
    let e = h.checkout(13, "/out").unwrap_err();
    assert!(matches!(e, Error::Exists { .. }), "{e}");
    drop(h);
    let out = Engine::open_with_storage("/out", Options::default(), Arc::new(sim.clone())).unwrap();
    assert_eq!(out.state_hash().unwrap(), hashes[12]);
    assert_eq!(out.sequence().unwrap(), 12);
    assert_eq!(out.config().unwrap().metric, Metric::Cosine);
    // Its next command is 13, as in the original, and gives the same state when it is the
    // original's command 13.
    let orig13 = history(&sim).entries(13, 1).unwrap();
    out.apply(&valori_engine::decode_entry(&orig13[0]).unwrap())
        .unwrap();
    assert_eq!(out.state_hash().unwrap(), hashes[13]);
}

#[test]
fn salvage_then_save_as_copies_the_intact_prefix() {
    let sim = SimStorage::new();
    let hashes = build(&sim, options(1));
    // Damage followed by a valid record: strict open refuses, salvage reads through seq 28
    // or 29.
    let (p, mut b) = file_named(&sim, ".log", 0);
    let mid = 64 + 30;
    b[mid] ^= 0xFF;
    replace(&sim, &p, &b);
    assert!(Engine::open_with_storage(dir(), Options::default(), Arc::new(sim.clone())).is_err());
    let db = Engine::open_with_storage(dir(), Options::salvage(), Arc::new(sim.clone())).unwrap();
    let seq = db.sequence().unwrap();
    let hash = db.save_as("/copy").unwrap();
    assert_eq!(hash, hashes[seq as usize]);
    drop(db);
    let copy =
        Engine::open_with_storage("/copy", Options::default(), Arc::new(sim.clone())).unwrap();
    assert_eq!(copy.state_hash().unwrap(), hashes[seq as usize]);
    copy.insert(&[1.0, 1.0, 1.0], None, b"").unwrap();
}

#[test]
fn history_refuses_what_is_not_a_database() {
    let sim = SimStorage::new();
    let e = History::open_with_storage("/nothing", Arc::new(sim.clone())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
    // While an engine holds the database, History waits its turn (Busy), and vice versa.
    let db = open(&sim, options(1));
    let e = History::open_with_storage(dir(), Arc::new(sim.clone())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Busy, "{e}");
    db.close().unwrap();
    let h = history(&sim);
    let e =
        Engine::open_with_storage(dir(), Options::default(), Arc::new(sim.clone())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Busy, "{e}");
    drop(h);
}

#[test]
fn a_damaged_tags_file_is_reported() {
    let sim = SimStorage::new();
    build(&sim, options(1));
    history(&sim).set_tag("t", 29).unwrap();
    let p = dir().join(valori_engine::TAGS_NAME);
    let mut b = sim.read(&p).unwrap();
    b[13] ^= 1;
    replace(&sim, &p, &b);
    let e = history(&sim).tags().unwrap_err();
    assert_eq!(e.code(), ErrorCode::Corrupt, "{e}");
    assert_eq!(
        history(&sim).verify(&mut |_, _| {}).unwrap_err().code(),
        ErrorCode::Corrupt
    );
}

#[test]
fn time_retention_keeps_young_snapshots_and_lets_old_ones_go() {
    let dir = std::env::temp_dir().join(format!("valori-retain-for-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let hour = std::time::Duration::from_secs(3600);
    let db = Engine::open(&dir, options(1).retain_for(hour)).unwrap();
    for i in 0..3u8 {
        db.insert(&[f32::from(i), 1.0, 0.0], None, b"").unwrap();
        db.checkpoint().unwrap();
    }
    // Every snapshot is younger than an hour: all kept, the whole history reachable.
    assert_eq!(db.span().unwrap().first, 0);
    db.state_at_seq(1).unwrap();
    // Age every snapshot by two hours: the next checkpoint keeps only the newest.
    let two_hours_ago = std::time::SystemTime::now() - 2 * hour;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "vsnap") {
            let f = std::fs::File::options().append(true).open(&p).unwrap();
            f.set_modified(two_hours_ago).unwrap();
        }
    }
    db.insert(&[9.0, 1.0, 0.0], None, b"").unwrap();
    db.checkpoint().unwrap();
    assert_eq!(db.span().unwrap().first, 4);
    assert!(matches!(
        db.state_at_seq(1).unwrap_err(),
        Error::NotRetained { .. }
    ));
    // Control: without time retention the same steps keep only the newest from the start.
    db.set_retain_for(None);
    db.close().unwrap();
    let dir2 = std::env::temp_dir().join(format!("valori-retain-count-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir2);
    let db2 = Engine::open(&dir2, options(1)).unwrap();
    for i in 0..3u8 {
        db2.insert(&[f32::from(i), 1.0, 0.0], None, b"").unwrap();
        db2.checkpoint().unwrap();
    }
    assert_eq!(db2.span().unwrap().first, 3);
    db2.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

/// Reads an export reader to its end.
fn read_all(db: &Engine, reader: &mut valori_engine::ExportReader, pieces: &mut usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(piece) = reader.next_piece(db).unwrap() {
        out.extend_from_slice(&piece);
        *pieces += 1;
    }
    out
}

#[test]
fn a_streamed_export_is_the_export_even_across_checkpoints() {
    let sim = SimStorage::new();
    build(&sim, options(1));
    let db = open(&sim, options(1));
    // 10,002 commands after the newest snapshot (at 28): three pages.
    for i in 0..10_000u32 {
        db.insert(&[i as f32, 1.0, 0.0], None, b"").unwrap();
    }
    let whole = db.export().unwrap();
    let mut reader = db.export_reader().unwrap();
    assert_eq!(
        (reader.seq(), reader.state_hash()),
        (whole.base_seq + 10_002, whole.state_hash)
    );
    let mut pieces = 0;
    let head = reader.next_piece(&db).unwrap().unwrap();
    let first_page = reader.next_piece(&db).unwrap().unwrap();
    // Writes and a checkpoint meanwhile: the default retention would remove the log the
    // reader still needs, but its pin holds it; the export stays the one of its start.
    db.insert(&[9.0, 9.0, 9.0], None, b"").unwrap();
    db.checkpoint().unwrap();
    let rest = read_all(&db, &mut reader, &mut pieces);
    assert_eq!(pieces, 3, "two more pages of commands, then the hash");
    let streamed = [head, first_page, rest].concat();
    assert_eq!(streamed, whole.encode());
    assert_eq!(
        valori_engine::Export::decode(&streamed)
            .unwrap()
            .replay()
            .unwrap()
            .state_hash(),
        whole.state_hash
    );
    // Once the reader is gone, the next checkpoint lets that log go (control: without the
    // pin, it would have gone at the checkpoint above).
    drop(reader);
    db.insert(&[8.0, 8.0, 8.0], None, b"").unwrap();
    db.checkpoint().unwrap();
    let e = db.pin_log(whole.base_seq + 1).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
}

#[test]
fn a_log_pin_holds_the_log_and_refuses_what_is_gone_or_not_yet_written() {
    let sim = SimStorage::new();
    build(&sim, options(1));
    let db = open(&sim, options(1));
    let last = db.sequence().unwrap();
    assert_eq!(last, 30);
    // The newest snapshot is at 28: the log holds 29 and 30.
    let e = db.pin_log(5).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
    let e = db.pin_log(32).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
    let mut pin = db.pin_log(29).unwrap();
    assert_eq!(
        db.pin_log(31).unwrap().from(),
        31,
        "the next command may be pinned"
    );
    for i in 0..3u32 {
        db.insert(&[i as f32, 0.0, 1.0], None, b"").unwrap();
        db.checkpoint().unwrap();
    }
    let held = db.history(29, usize::MAX).unwrap();
    assert_eq!(
        held.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (29..=33).collect::<Vec<_>>()
    );
    // Advancing releases what is before the new point at the next checkpoint.
    pin.advance(33);
    pin.advance(20);
    assert_eq!(pin.from(), 33, "a pin never moves back");
    db.insert(&[5.0, 0.0, 1.0], None, b"").unwrap();
    db.checkpoint().unwrap();
    assert_eq!(db.history(29, usize::MAX).unwrap()[0].seq, 33);
    drop(pin);
    db.insert(&[6.0, 0.0, 1.0], None, b"").unwrap();
    db.checkpoint().unwrap();
    assert!(db.history(29, usize::MAX).unwrap().is_empty());
}

/// A pinned reader continues where its last page ended (no rescan of the segment from its
/// start), on the file system and on the simulated storage: the pages equal the log read
/// whole, across checkpoints that start new segments, while commands are added between pages;
/// a record altered past the reader's place is `Corrupt`, never a short page.
#[test]
fn pinned_pages_continue_where_the_last_ended_and_equal_the_whole_log() {
    let tmp = std::env::temp_dir().join(format!("valori-pinned-pages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let sim = SimStorage::new();
    let fs: Arc<dyn Storage> = Arc::new(valori_engine::FsStorage);
    for (path, storage) in [
        (tmp.clone(), fs),
        (dir(), Arc::new(sim.clone()) as Arc<dyn Storage>),
    ] {
        let db = Engine::open_with_storage(&path, options(100), Arc::clone(&storage)).unwrap();
        let mut pin = db.pin_log(1).unwrap();
        let mut paged = Vec::new();
        for round in 0..12u32 {
            for i in 0..5u32 {
                let x = (round * 5 + i) as f32;
                db.insert(&[x, 1.0, -x], None, b"").unwrap();
            }
            if round % 4 == 3 {
                db.checkpoint().unwrap();
            }
            let through = db.sequence().unwrap();
            loop {
                let page = db.read_pinned(&mut pin, through, 3).unwrap();
                if page.is_empty() {
                    break;
                }
                paged.extend(page);
            }
        }
        let whole = db.history(1, usize::MAX).unwrap();
        assert_eq!(paged.len(), 60);
        for (p, w) in paged.iter().zip(&whole) {
            assert_eq!((p.seq, p.chain, &p.command), (w.seq, w.chain, &w.command));
        }
        // Two more commands; the second's payload altered on disk before the reader gets to it.
        db.insert(&[1.0, 2.0, 3.0], None, b"").unwrap();
        db.insert(&[4.0, 5.0, 6.0], None, b"").unwrap();
        let last = db.history(62, 1).unwrap().remove(0);
        let mut bytes = storage.read(&last.file).unwrap();
        let at = usize::try_from(last.offset).unwrap() + valori_engine::wal::RECORD_HEADER_LEN + 2;
        bytes[at] ^= 0x40;
        if path == tmp {
            std::fs::write(&last.file, &bytes).unwrap();
        } else {
            sim.write_file(&last.file, bytes).unwrap();
        }
        let e = db.read_pinned(&mut pin, 62, 10).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Corrupt, "{e}");
        drop(pin);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
