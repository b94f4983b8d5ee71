//! `Kernel::load_index` on any bytes, over a small kernel the input chooses. The first input
//! byte picks the metric and how the rest is used: even, the rest is the index as is; odd, the
//! rest is XORed over a valid index of that kernel (so near-valid encodings are explored).
//! Oracles: no panic, nothing changed by a refused index; an accepted index re-encodes to
//! exactly its bytes, approximate searches return `min(k, records)` hits in `(distance, id)`
//! order with exact distances, an exhaustive `ef` equals exact search, and inserts and deletes
//! after it keep it loadable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valori_kernel::{Command, Config, Fxp, IndexParams, Kernel, Metric};

fn kernel(metric: Metric, n: u64) -> Kernel<'static> {
    let mut k = Kernel::new(Config::new(4, metric).expect("config")).expect("kernel");
    k.set_index(Some(IndexParams::new(4, 8).expect("params")))
        .expect("index");
    let mut s = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..n {
        let v: Vec<Fxp> = (0..4)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                Fxp((s % 60_000) as i32 - 30_000 + 1)
            })
            .collect();
        k.apply(&Command::Insert {
            id: None,
            tag: Some(i % 2),
            vector: v[..].into(),
            meta: b"",
        })
        .expect("insert");
        if i % 4 == 3 {
            k.apply(&Command::Delete { id: i - 1 }).expect("delete");
        }
    }
    k
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let metric = [Metric::L2, Metric::InnerProduct, Metric::Cosine][usize::from(mode >> 1) % 3];
    let n = u64::from(mode >> 3) % 24;
    let mut k = kernel(metric, n);
    let valid = k.index_bytes().expect("index");
    let bytes: Vec<u8> = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        valid
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ rest.get(i).copied().unwrap_or(0))
            .collect()
    };
    k.set_index(None).expect("remove");
    if k.load_index(&bytes).is_err() {
        assert_eq!(k.index_params(), None, "a refused index changed the kernel");
        return;
    }
    assert_eq!(
        k.index_bytes().expect("index"),
        bytes,
        "accepted index re-encodes differently"
    );
    let q = [Fxp(1000), Fxp(-2000), Fxp(3000), Fxp(-4000)];
    let exact = k.search_vec(&q, 5, None).expect("exact");
    let approx = k.search_vec_approx(&q, 5, None, 2).expect("approx");
    assert_eq!(approx.len(), exact.len());
    assert!(
        approx.windows(2).all(|w| w[0] < w[1]),
        "not in (distance, id) order"
    );
    for h in &approx {
        assert_eq!(
            k.search_vec(&q, u32::MAX, None)
                .expect("all")
                .iter()
                .find(|e| e.id == h.id)
                .map(|e| e.distance),
            Some(h.distance),
            "inexact distance"
        );
    }
    assert_eq!(
        k.search_vec_approx(&q, 5, None, 65536).expect("full"),
        exact
    );
    assert_eq!(
        k.search_vec_approx(&q, 5, Some(1), 2)
            .expect("tagged")
            .len(),
        k.search_vec(&q, 5, Some(1)).expect("tagged").len()
    );
    // Changes after it keep it loadable by a fresh kernel of the same state.
    let first = k.records().next().map(|r| r.id);
    if let Some(id) = first {
        k.apply(&Command::Delete { id }).expect("delete");
    }
    k.apply(&Command::Insert {
        id: None,
        tag: None,
        vector: q[..].into(),
        meta: b"",
    })
    .expect("insert");
    let mut again = Kernel::from_bytes(&k.to_bytes()).expect("state");
    again
        .load_index(&k.index_bytes().expect("index"))
        .expect("an index the kernel wrote loads");
});
