//! The kernel alone: build a small robot memory, search it, link it in the graph, print the state
//! hash, save the snapshot to the data directory and prove it reloads to the same hash.
//!
//! `cargo run --release -p valori-kernel --example snapshot [DATA_DIR]`
//! (default data directory: `./data`, or `$VALORI_DATA_DIR`).

use std::path::PathBuf;
use valori_kernel::{fxp, Command, Config, Direction, Fxp, Hop, Kernel, Metric};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("VALORI_DATA_DIR").ok())
        .unwrap_or_else(|| "data".into())
        .into();
    std::fs::create_dir_all(&dir)?;

    let mut k = Kernel::new(Config::new(4, Metric::L2)?)?;
    let observations: [(&str, [f32; 4]); 4] = [
        ("red cup on table", [0.9, 0.1, 0.0, 0.2]),
        ("blue cup in sink", [0.8, 0.2, 0.1, 0.9]),
        ("door to kitchen", [0.0, 0.9, 0.8, 0.1]),
        ("charging dock", [-0.5, 0.0, 0.3, -0.7]),
    ];
    let mut ids = Vec::new();
    for (i, (label, emb)) in observations.iter().enumerate() {
        let mut v = [Fxp::ZERO; 4];
        fxp::convert_f32(emb, &mut v)?;
        let id = match k.apply(&Command::Insert {
            id: None,
            tag: Some(i as u64 % 2),
            vector: v[..].into(),
            meta: label.as_bytes(),
        })? {
            valori_kernel::Applied::Created(id) => id,
            other => return Err(format!("unexpected {other:?}").into()),
        };
        k.apply(&Command::CreateNode {
            id: None,
            kind: 1,
            record: Some(id),
            label: label.as_bytes(),
        })?;
        ids.push(id);
    }
    k.apply(&Command::CreateEdge {
        id: None,
        kind: 7,
        from: 0,
        to: 2,
        weight: Some(Fxp::ONE),
    })?;
    k.apply(&Command::CreateEdge {
        id: None,
        kind: 7,
        from: 2,
        to: 1,
        weight: None,
    })?;

    let mut query = [Fxp::ZERO; 4];
    fxp::convert_f32(&[0.85, 0.15, 0.05, 0.5], &mut query)?;
    println!("nearest memories to the query:");
    for hit in k.search_vec(&query, 3, None)? {
        let r = k.get(hit.id).ok_or("hit without record")?;
        println!(
            "  id {:>2}  d^2 = {:.6}  {}",
            hit.id,
            Metric::L2.distance_to_f64(hit.distance),
            String::from_utf8_lossy(r.meta)
        );
    }
    let mut hops = [Hop::default(); 8];
    let n = k.traverse(0, 2, Direction::Outgoing, None, &mut hops)?;
    println!(
        "reachable from node 0 within 2 hops: {:?}",
        hops.get(..n).unwrap_or(&[])
    );

    let hash = hex(&k.state_hash());
    println!("state hash: {hash}");

    let path = dir.join("kernel-snapshot.vlrk");
    if let Ok(previous) = std::fs::read(&path) {
        let old = Kernel::from_bytes(&previous)?;
        let same = hex(&old.state_hash()) == hash;
        println!(
            "previous snapshot in {}: {}",
            path.display(),
            if same { "same hash" } else { "DIFFERENT hash" }
        );
        if !same {
            return Err("the same commands gave a different state hash".into());
        }
    }
    let bytes = k.to_bytes();
    let tmp = dir.join("kernel-snapshot.vlrk.tmp");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, &path)?;
    let reloaded = Kernel::from_bytes(&std::fs::read(&path)?)?;
    if hex(&reloaded.state_hash()) != hash {
        return Err("snapshot reload changed the state hash".into());
    }
    println!(
        "snapshot: {} ({} bytes), reloads to the same hash",
        path.display(),
        bytes.len()
    );
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
