//! Builds an HNSW index over generated vectors and searches it, for profiling:
//! `cargo run --release -p valori-kernel --example hnsw_profile -- N DIM SEARCHES EF`.

use std::time::Instant;
use valori_kernel::{Command, Config, Fxp, IndexParams, Kernel, Metric};

fn main() -> Result<(), valori_kernel::Error> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(20_000);
    let dim = args.get(1).copied().unwrap_or(64);
    let searches = args.get(2).copied().unwrap_or(2000);
    let ef = args.get(3).copied().unwrap_or(64) as u32;
    let mut k = Kernel::new(Config::new(dim as u32, Metric::L2)?)?;
    k.set_index(Some(IndexParams::new(16, 100)?))?;
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.3
    };
    let rows: Vec<Vec<Fxp>> = (0..n)
        .map(|_| (0..dim).map(|i| Fxp::from_f32(next(), i as u32)).collect())
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for r in &rows {
        k.apply(&Command::Insert {
            id: None,
            tag: None,
            vector: r[..].into(),
            meta: b"",
        })?;
    }
    let build = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut found = 0;
    for r in rows.iter().cycle().take(searches) {
        found += k.search_vec_approx(r, 10, None, ef)?.len();
    }
    let search = t.elapsed().as_secs_f64();
    println!(
        "n {n} dim {dim}: build {:.0}/s, search (ef {ef}) {:.0} q/s ({found} hits)",
        n as f64 / build,
        searches as f64 / search
    );
    Ok(())
}
