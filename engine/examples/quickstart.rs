//! Quickstart: open a database directory, store a robot's observations, link them in the
//! graph, search, print the state hash, close; run it again and the database reopens from its
//! snapshot and WAL with the same hash.
//!
//! `cargo run --release -p valori-engine --example quickstart [DATA_DIR]`
//! (default `./data/quickstart`, or `$VALORI_DATA_DIR/quickstart`).

use std::path::PathBuf;
use valori_engine::{Engine, Options};
use valori_kernel::{Direction, Metric};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = match std::env::args().nth(1) {
        Some(d) => d.into(),
        None => PathBuf::from(std::env::var("VALORI_DATA_DIR").unwrap_or_else(|_| "data".into()))
            .join("quickstart"),
    };
    let db = Engine::open(&dir, Options::new(4, Metric::L2))?;
    if db.is_empty()? {
        println!("creating {}", dir.display());
        let observations: [(&str, [f32; 4]); 4] = [
            ("red cup on table", [0.9, 0.1, 0.0, 0.2]),
            ("blue cup in sink", [0.8, 0.2, 0.1, 0.9]),
            ("door to kitchen", [0.0, 0.9, 0.8, 0.1]),
            ("charging dock", [-0.5, 0.0, 0.3, -0.7]),
        ];
        let mut nodes = Vec::new();
        for (i, (label, embedding)) in observations.iter().enumerate() {
            let id = db.insert(embedding, Some(i as u64 % 2), label.as_bytes())?;
            nodes.push(db.create_node(1, Some(id), label.as_bytes())?);
        }
        if let [red_cup, blue_cup, door, _] = nodes[..] {
            db.create_edge(7, red_cup, door, Some(1.0))?;
            db.create_edge(7, door, blue_cup, None)?;
        }
    } else {
        println!(
            "reopened {} ({} records, sequence {})",
            dir.display(),
            db.len()?,
            db.sequence()?
        );
    }

    println!("nearest memories to the query:");
    for hit in db.search(&[0.85, 0.15, 0.05, 0.5], 3, None)? {
        let r = db.get(hit.id)?.ok_or("hit without a record")?;
        println!(
            "  id {:>2}  d^2 = {:.6}  {}",
            hit.id,
            Metric::L2.distance_to_f64(hit.distance),
            String::from_utf8_lossy(&r.meta)
        );
    }
    let hops = db.traverse(0, 2, Direction::Outgoing, None)?;
    println!(
        "reachable from node 0 within 2 hops: {:?}",
        hops.iter().map(|h| (h.depth, h.node)).collect::<Vec<_>>()
    );
    let hash: String = db
        .state_hash()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("state hash: {hash}");
    db.close()?;
    Ok(())
}
