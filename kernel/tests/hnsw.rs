//! The approximate index: recall floors on generated data (not timings), exhaustive `ef`
//! equals exact search, tag filters never drop below `k` when enough records match, and
//! determinism: the same commands give the same index bytes, also after churn, also when one
//! kernel was restored from a snapshot and its index loaded on the way.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use valori_kernel::{Command, Config, ErrorCode, Fxp, IndexParams, Kernel, Metric};

const METRICS: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

/// A deterministic stream of vectors in clusters (so neighbours are meaningful).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
    fn vector(&mut self, dim: usize, centres: &[Vec<f32>]) -> Vec<Fxp> {
        let c = &centres[(self.next() % centres.len() as u64) as usize];
        (0..dim)
            .map(|i| Fxp::from_f32(c[i] + 0.15 * self.unit(), i as u32).unwrap())
            .collect()
    }
}

fn centres(g: &mut Gen, n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| (0..dim).map(|_| 0.6 * g.unit()).collect())
        .collect()
}

fn insert(k: &mut Kernel<'static>, v: &[Fxp], tag: Option<u64>) -> u64 {
    match k
        .apply(&Command::Insert {
            id: None,
            tag,
            vector: v.into(),
            meta: b"",
        })
        .unwrap()
    {
        valori_kernel::Applied::Created(id) => id,
        other => panic!("{other:?}"),
    }
}

fn delete(k: &mut Kernel<'static>, id: u64) {
    k.apply(&Command::Delete { id }).unwrap();
}

/// Sizes of the heavier tests: full on x86_64; a quarter where the suite runs under emulation
/// (aarch64 and s390x under QEMU, wasm32 under Node: the cross leg), where determinism is what
/// is checked and `golden_index` pins the answers.
fn sized(n: usize) -> usize {
    if cfg!(target_arch = "x86_64") {
        n
    } else {
        n / 4
    }
}

fn params() -> IndexParams {
    IndexParams::new(16, 100).unwrap()
}

fn indexed(metric: Metric, dim: u32) -> Kernel<'static> {
    let mut k = Kernel::new(Config::new(dim, metric).unwrap()).unwrap();
    k.set_index(Some(params())).unwrap();
    k
}

/// Mean recall@k of approximate against exact search over `queries`.
fn recall(k: &Kernel<'static>, queries: &[Vec<Fxp>], n: u32, ef: u32) -> f64 {
    let mut found = 0usize;
    let mut total = 0usize;
    for q in queries {
        let exact = k.search_vec(q, n, None).unwrap();
        let approx = k.search_vec_approx(q, n, None, ef).unwrap();
        assert_eq!(approx.len(), exact.len());
        // Distances are exact: a found record has its exact distance.
        for h in &approx {
            let want = exact.iter().find(|e| e.id == h.id);
            if let Some(e) = want {
                assert_eq!(e.distance, h.distance);
            }
        }
        // Sorted by (distance, id).
        assert!(approx.windows(2).all(|w| w[0] < w[1]));
        // Ties at the k-th distance count as found.
        let kth = exact.last().unwrap().distance;
        found += approx.iter().filter(|h| h.distance <= kth).count();
        total += exact.len();
    }
    found as f64 / total as f64
}

fn build(metric: Metric, n: usize, dim: usize, seed: u64) -> (Kernel<'static>, Vec<Vec<Fxp>>) {
    let mut g = Gen(seed);
    let cs = centres(&mut g, 20, dim);
    let mut k = indexed(metric, dim as u32);
    for i in 0..n {
        let v = g.vector(dim, &cs);
        insert(&mut k, &v, Some(i as u64 % 4));
    }
    let queries = (0..50).map(|_| g.vector(dim, &cs)).collect();
    (k, queries)
}

#[test]
fn recall_is_high_on_every_metric() {
    for metric in METRICS {
        let (k, queries) = build(metric, sized(3000), 24, 11);
        let r = recall(&k, &queries, 10, 64);
        assert!(r >= 0.95, "{metric:?}: recall@10 {r}");
        // A larger ef is at least as good here, and ef = 10 still finds most.
        assert!(recall(&k, &queries, 10, 200) >= r.min(0.99), "{metric:?}");
        assert!(recall(&k, &queries, 10, 10) >= 0.6, "{metric:?}");
    }
}

#[test]
fn exhaustive_ef_is_the_exact_search() {
    for metric in METRICS {
        let (k, queries) = build(metric, 400, 8, 5);
        for q in &queries {
            let exact = k.search_vec(q, 7, None).unwrap();
            assert_eq!(k.search_vec_approx(q, 7, None, 400).unwrap(), exact);
            assert_eq!(k.search_vec_approx(q, 7, None, 65536).unwrap(), exact);
            let tagged = k.search_vec(q, 7, Some(2)).unwrap();
            assert_eq!(k.search_vec_approx(q, 7, Some(2), 100).unwrap(), tagged);
        }
    }
}

#[test]
fn a_tag_filter_returns_k_when_enough_records_match() {
    for metric in METRICS {
        let (mut k, queries) = build(metric, 2000.min(sized(8000)), 16, 9);
        // Tag 9 on only 30 records: rarer than ef, so found exactly.
        for id in (0..2000).step_by(67) {
            k.apply(&Command::SetTag { id, tag: Some(9) }).unwrap();
        }
        for q in &queries[..10] {
            let a = k.search_vec_approx(q, 10, Some(1), 32).unwrap();
            assert_eq!(a.len(), 10);
            let exact = k.search_vec(q, 10, Some(1)).unwrap();
            let common = a.iter().filter(|h| exact.contains(h)).count();
            assert!(common >= 8, "{metric:?}: {common} of 10");
            let rare = k.search_vec_approx(q, 50, Some(9), 32).unwrap();
            assert_eq!(rare, k.search_vec(q, 50, Some(9)).unwrap());
            assert_eq!(rare.len(), 30);
        }
    }
}

#[test]
fn recall_holds_under_churn() {
    for metric in METRICS {
        let dim = 16;
        let mut g = Gen(77);
        let cs = centres(&mut g, 15, dim);
        let mut k = indexed(metric, dim as u32);
        let mut live = std::collections::VecDeque::new();
        for _ in 0..sized(1500) {
            live.push_back(insert(&mut k, &g.vector(dim, &cs), None));
        }
        // Replace the whole store twice over, oldest first, with some random deletes.
        for round in 0..sized(3000) {
            let id = if round % 3 == 0 {
                let i = (g.next() % live.len() as u64) as usize;
                live.remove(i).unwrap()
            } else {
                live.pop_front().unwrap()
            };
            delete(&mut k, id);
            live.push_back(insert(&mut k, &g.vector(dim, &cs), None));
        }
        assert_eq!(k.len(), sized(1500));
        let queries: Vec<_> = (0..50).map(|_| g.vector(dim, &cs)).collect();
        let r = recall(&k, &queries, 10, 64);
        assert!(r >= 0.95, "{metric:?}: recall@10 after churn {r}");
    }
}

/// Applies the same script to `k`: inserts, deletes, re-inserts with explicit ids, batches.
fn script(k: &mut Kernel<'static>, g: &mut Gen, dim: usize, cs: &[Vec<f32>], steps: usize) {
    for step in 0..steps {
        let n = k.len() as u64;
        match g.next() % 10 {
            0..=5 => {
                insert(k, &g.vector(dim, cs), None);
            }
            6 | 7 if n > 0 => {
                let id = k.records().nth((g.next() % n) as usize).unwrap().id;
                delete(k, id);
            }
            8 => {
                let v: Vec<Fxp> = (0..3).flat_map(|_| g.vector(dim, cs)).collect();
                k.apply(&Command::InsertBatch {
                    ids: valori_kernel::Ids::EMPTY,
                    tags: valori_kernel::Ids::EMPTY,
                    vectors: v[..].into(),
                })
                .unwrap();
            }
            _ => {
                // Re-use a freed id (explicit id below the counter).
                let id = (step as u64 * 7) % (k.records().map(|r| r.id).max().unwrap_or(0) + 1);
                if k.get(id).is_none() {
                    k.apply(&Command::Insert {
                        id: Some(id),
                        tag: None,
                        vector: g.vector(dim, cs)[..].into(),
                        meta: b"",
                    })
                    .unwrap();
                }
            }
        }
    }
}

#[test]
fn the_same_commands_give_the_same_index_bytes_also_after_a_restore() {
    for metric in METRICS {
        let dim = 12;
        let mut a = indexed(metric, dim as u32);
        let mut b = indexed(metric, dim as u32);
        let (mut ga, mut gb) = (Gen(3), Gen(3));
        let cs = centres(&mut Gen(4), 10, dim);
        script(&mut a, &mut ga, dim, &cs, sized(1500));
        script(&mut b, &mut gb, dim, &cs, sized(1500));
        assert_eq!(a.index_bytes(), b.index_bytes(), "{metric:?}");
        assert_eq!(a.index_hash(), b.index_hash());
        // Restart: the state from its encoding (rows in id order, not the live order) and the
        // index from its bytes; the same commands after that keep both identical.
        let mut c = Kernel::from_bytes(&a.to_bytes()).unwrap();
        c.load_index(&a.index_bytes().unwrap()).unwrap();
        assert_eq!(c.index_bytes(), a.index_bytes());
        let mut gc = Gen(ga.0);
        script(&mut a, &mut ga, dim, &cs, sized(1500));
        script(&mut c, &mut gc, dim, &cs, sized(1500));
        assert_eq!(c.state_hash(), a.state_hash());
        assert_eq!(
            c.index_bytes(),
            a.index_bytes(),
            "{metric:?} after a restore"
        );
        let q = Gen(5).vector(dim, &cs);
        assert_eq!(
            c.search_vec_approx(&q, 10, None, 20).unwrap(),
            a.search_vec_approx(&q, 10, None, 20).unwrap()
        );
        // Building the index over the same state from scratch gives one graph (id order).
        let mut d = Kernel::from_bytes(&a.to_bytes()).unwrap();
        d.set_index(Some(params())).unwrap();
        let mut e = Kernel::from_bytes(&a.to_bytes()).unwrap();
        e.set_index(Some(params())).unwrap();
        assert_eq!(d.index_bytes(), e.index_bytes());
    }
}

#[test]
fn the_state_hash_does_not_cover_the_index() {
    let (k, _) = build(Metric::L2, 100, 8, 1);
    let mut plain = Kernel::from_bytes(&k.to_bytes()).unwrap();
    assert_eq!(plain.state_hash(), k.state_hash());
    assert_eq!(plain.index_hash(), None);
    let e = plain
        .search_vec_approx(&[Fxp(0); 8], 3, None, 10)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    plain.set_index(Some(params())).unwrap();
    assert_eq!(plain.state_hash(), k.state_hash());
    assert!(plain.index_hash().is_some());
}

#[test]
fn bad_parameters_are_refused() {
    for (m, ef) in [(1, 100), (65, 100), (16, 15), (16, 65537)] {
        let e = IndexParams::new(m, ef).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{m} {ef}: {e}");
    }
    let (k, q) = build(Metric::L2, 50, 8, 2);
    for ef in [0, 65537] {
        let e = k.search_vec_approx(&q[0], 3, None, ef).unwrap_err();
        assert!(e.to_string().contains("ef"), "{e}");
    }
    let e = k.search_vec_approx(&q[0], 0, None, 10).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let e = k.search_vec_approx(&q[0][..7], 3, None, 10).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Dimension);
}

#[test]
fn a_damaged_index_is_refused_and_changes_nothing() {
    let (k, _) = build(Metric::Cosine, 300, 8, 4);
    let bytes = k.index_bytes().unwrap();
    let state = k.to_bytes();
    let mut fresh = Kernel::from_bytes(&state).unwrap();
    for cut in [0, 3, 8, 20, 28, bytes.len() / 2, bytes.len() - 1] {
        let e = fresh.load_index(&bytes[..cut]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Corrupt, "cut {cut}: {e}");
        assert_eq!(fresh.index_params(), None, "nothing changed");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        fresh.load_index(&longer).unwrap_err().code(),
        ErrorCode::Corrupt
    );
    // Every single-byte change is refused or, if it still decodes, is a valid index of this
    // state (a link replaced by another valid one): never a panic.
    let mut refused = 0;
    for at in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5a;
        match fresh.load_index(&bad) {
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::Corrupt);
                refused += 1;
            }
            Ok(()) => {
                let q = [Fxp(100); 8];
                fresh.search_vec_approx(&q, 5, None, 10).unwrap();
                fresh.set_index(None).unwrap();
            }
        }
    }
    assert!(refused > bytes.len() / 7 / 2, "{refused}");
    // An index of another state is refused (a record it names is missing).
    let (other, _) = build(Metric::Cosine, 299, 8, 4);
    assert_eq!(
        fresh
            .load_index(&other.index_bytes().unwrap())
            .unwrap_err()
            .code(),
        ErrorCode::Corrupt
    );
    fresh.load_index(&bytes).unwrap();
    assert_eq!(fresh.index_bytes().unwrap(), bytes);
}

#[test]
fn levels_follow_the_id_hash() {
    // P(level >= 1) = 1/16 for m = 16: about 6.25 % of 100,000 ids.
    let above: usize = (0..100_000u64)
        .filter(|&id| valori_kernel::level_of(id, 16) >= 1)
        .count();
    assert!((5_800..6_700).contains(&above), "{above}");
    let above2 = (0..100_000u64)
        .filter(|&id| valori_kernel::level_of(id, 16) >= 2)
        .count();
    assert!((250..550).contains(&above2), "{above2}");
    // Fixed values (docs/FORMAT.md §15; an independent Python model gives the same).
    let first: Vec<u64> = (0..2000u64)
        .filter(|&id| valori_kernel::level_of(id, 16) >= 1)
        .take(8)
        .collect();
    assert_eq!(first, [10, 21, 48, 68, 82, 83, 120, 133]);
    let third: Vec<u64> = (0..100_000u64)
        .filter(|&id| valori_kernel::level_of(id, 16) >= 3)
        .take(5)
        .collect();
    assert_eq!(third, [7326, 21694, 26372, 38521, 39758]);
}

/// A script of integer-only inputs (no float conversion): `n` inserts of Q16.16 vectors from a
/// xorshift stream, every fifth record deleted again, then re-inserts under freed ids.
fn golden_kernel(metric: Metric) -> Kernel<'static> {
    const DIM: usize = 12;
    let mut k = Kernel::new(Config::new(DIM as u32, metric).unwrap()).unwrap();
    k.set_index(Some(IndexParams::new(6, 24).unwrap())).unwrap();
    let mut g = Gen(0x5eed_1234_abcd_0001);
    let vector = |g: &mut Gen| -> Vec<Fxp> {
        let c = (g.next() % 5) as i32 * 9000 - 18000;
        (0..DIM)
            .map(|_| Fxp(c + (g.next() % 12000) as i32 - 6000))
            .collect()
    };
    for i in 0..300u64 {
        let v = vector(&mut g);
        insert(&mut k, &v, Some(i % 3));
        if i % 5 == 4 {
            delete(&mut k, i - 2);
        }
    }
    for id in (2..300u64).step_by(25) {
        let v = vector(&mut g);
        k.apply(&Command::Insert {
            id: Some(id),
            tag: None,
            vector: v[..].into(),
            meta: b"",
        })
        .unwrap();
    }
    k
}

/// The index hash and a digest of approximate answers, pinned for every architecture: the
/// cross leg runs this file on aarch64, s390x (big-endian) and wasm32, and
/// scripts/cross-hashes.sh prints the `HASH` lines next to x86_64's.
#[test]
fn golden_index() {
    let want = [
        (Metric::L2, "index-l2", GOLDEN_L2),
        (Metric::InnerProduct, "index-ip", GOLDEN_IP),
        (Metric::Cosine, "index-cosine", GOLDEN_COSINE),
    ];
    for (metric, name, (index_hash, answers)) in want {
        let k = golden_kernel(metric);
        let hash: String = k
            .index_hash()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut h = blake3::Hasher::new();
        let mut g = Gen(99);
        for _ in 0..20 {
            let q: Vec<Fxp> = (0..12)
                .map(|_| Fxp((g.next() % 40000) as i32 - 20000))
                .collect();
            for hit in k.search_vec_approx(&q, 5, None, 8).unwrap() {
                h.update(&hit.id.to_le_bytes());
                h.update(&hit.distance.to_le_bytes());
            }
        }
        let digest = h.finalize().to_hex().to_string();
        println!("HASH {name} {hash}");
        println!("HASH {name}-answers {digest}");
        assert_eq!(
            (hash.as_str(), digest.as_str()),
            (index_hash, answers),
            "{name}"
        );
    }
}

const GOLDEN_L2: (&str, &str) = (
    "1c1c1e17183bb0f4e31e8dfd4d2f1768cfa518227c981a52057631c69338725b",
    "59ef2513e2e2b913b5db5a23b4c4bb11a204edf181bd622d7a27f13d8ee5af77",
);
const GOLDEN_IP: (&str, &str) = (
    "aa40e05d0f023618d5a7eeddde6d4ece289ce79e632dcc72ab143a78a192ef5c",
    "91ba5682e9ae559c897ad5bcb4f21612372736c5fbdac44534c77b0c327df232",
);
const GOLDEN_COSINE: (&str, &str) = (
    "10de245d3a708deac508dd4343c25f44be80f04f63fd31e45feeeefb84b91574",
    "f6dcb1d33c7c4bec76c4750a6f0b518a18bcb5198b736ba3d32f2149799e5d4b",
);

#[test]
fn an_index_over_a_store_that_widens_stays_exact_and_deterministic() {
    for metric in METRICS {
        let dim = 8;
        let mut g = Gen(21);
        let cs = centres(&mut g, 6, dim);
        let mut k = indexed(metric, dim as u32);
        for _ in 0..300 {
            insert(&mut k, &g.vector(dim, &cs), None);
        }
        // One large component widens the store (narrow -> mid -> wide) under the index.
        let mut big = g.vector(dim, &cs);
        big[0] = Fxp::from_f32(3.0, 0).unwrap();
        insert(&mut k, &big, None);
        big[1] = Fxp::from_f32(300.0, 1).unwrap();
        insert(&mut k, &big, None);
        let mut restored = Kernel::from_bytes(&k.to_bytes()).unwrap();
        restored.load_index(&k.index_bytes().unwrap()).unwrap();
        let mut g2 = Gen(g.0);
        for _ in 0..300 {
            insert(&mut k, &g.vector(dim, &cs), None);
            insert(&mut restored, &g2.vector(dim, &cs), None);
        }
        assert_eq!(k.index_bytes(), restored.index_bytes(), "{metric:?}");
        let queries: Vec<_> = (0..20).map(|_| g.vector(dim, &cs)).collect();
        for q in &queries {
            assert_eq!(
                k.search_vec_approx(q, 10, None, 1000).unwrap(),
                k.search_vec(q, 10, None).unwrap()
            );
            assert_eq!(
                k.search_vec_approx(q, 10, None, 32).unwrap(),
                restored.search_vec_approx(q, 10, None, 32).unwrap()
            );
        }
        assert!(recall(&k, &queries, 10, 64) >= 0.9, "{metric:?}");
    }
}
