#!/usr/bin/env python3
"""Writes the command lists of the approximate-index golden scripts, tests/vectors/09-11.

Each script configures an HNSW index (M = 4, ef_construction = 16: small, so that the graph
matters and approximate answers can differ from exact ones), inserts 200 clustered vectors of
dimension 8, searches approximately (with and without a tag filter, at several ef, next to
the exact search of the same query), deletes and re-inserts a quarter of the store (reusing
the index's free slots), and searches again. Expectations and hashes are filled in by
`VALORI_BLESS=1 cargo test -p valori-kernel --test golden`; this script only writes the
steps. The data is fixed by the seed; run it again only to change the scripts.
"""
import json
import random
import sys
from pathlib import Path

DIM = 8
OUT = Path(__file__).resolve().parents[1] / "tests" / "vectors"
SCRIPTS = [("09-index-l2", "L2"), ("10-index-ip", "InnerProduct"), ("11-index-cosine", "Cosine")]


def main():
    for n, (name, metric) in enumerate(SCRIPTS):
        rng = random.Random(20261202 + n)
        centers = [[rng.uniform(-1, 1) for _ in range(DIM)] for _ in range(10)]

        def point():
            c = rng.choice(centers)
            return [int(round((x + rng.gauss(0, 0.2)) * 65536)) for x in c]

        steps = []
        for first in (0, 100):
            steps.append({"op": "insert_batch", "tags": [(first + i) % 3 for i in range(100)],
                          "vectors": [point() for _ in range(100)]})

        def queries(efs):
            for j in range(6):
                q = point()
                for ef in efs:
                    steps.append({"op": "search_approx", "query": q, "k": 5, "ef": ef})
                steps.append({"op": "search", "query": q, "k": 5})
                steps.append({"op": "search_approx", "query": q, "k": 5, "ef": efs[0], "tag": j % 3})

        queries([5, 16])
        for i in range(0, 200, 4):
            steps.append({"op": "delete", "id": i})
        for i in range(1, 200, 20):
            steps.append({"op": "set_tag", "id": i, "tag": 7})
        for i in range(50):
            steps.append({"op": "insert", "vector": point(), "tag": i % 3, "meta": f"re-{i}"})
        steps.append({"op": "insert", "id": 1000, "vector": point()})
        queries([5, 32])
        steps.append({"op": "search_approx", "query": point(), "k": 5, "ef": 1, "tag": 7})
        q = point()
        steps.append({"op": "search_approx", "query": q, "k": 5, "ef": 0})
        steps.append({"op": "search_approx", "query": q, "k": 5, "ef": 65537})
        steps.append({"op": "search_approx", "query": q, "k": 0, "ef": 8})
        script = {
            "name": name,
            "description": f"HNSW index (M 4, ef_construction 16) on {metric}: 200 clustered vectors, "
                           "approximate searches (tag-filtered, several ef) next to exact ones, a "
                           "quarter deleted and re-inserted, searched again; every mutating step "
                           "pins the state hash and the index hash (scripts/gen_index_vectors.py)",
            "dim": DIM,
            "metric": metric,
            "index": {"m": 4, "ef_construction": 16},
            "capacity": {"records": 256, "nodes": 1, "edges": 1, "meta_bytes": 1024, "label_bytes": 64},
            "initial_hash": "",
            "steps": steps,
        }
        (OUT / f"{name}.json").write_text(json.dumps(script, indent=2) + "\n")
        print(f"{name}: {len(steps)} steps", file=sys.stderr)


if __name__ == "__main__":
    main()
