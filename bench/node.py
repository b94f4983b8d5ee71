"""valori-node over loopback next to the in-process Python API, in one run, on the same data.

For each side (``in-process``: ``valori.Database``; ``http``: ``valori.KernelClient`` against a
``valori-node`` this script starts on 127.0.0.1 and a port it picks):

- **durable batch insert**: vectors per second, N rows in batches of ``--batch`` (binary
  little-endian f32 bodies over HTTP), every batch one fsynced WAL record (fsync mode);
- **one search**: p50 / p99 latency of ``--queries`` sequential ``search`` calls (k = 10);
- **8 clients**: searches per second with ``--clients`` threads, each with its own client
  (its own connection) over HTTP, or sharing the ``Database`` in process (searches release
  the GIL);
- **transport**: the same single-search latency on a store of ``--small`` rows, where the search
  itself costs microseconds, so the difference between the sides is what HTTP + JSON cost;
- **with the HNSW index** (``index="hnsw"``, m = 16, ef_construction = 200): the durable batch
  insert, one approximate search (``ef`` = ``--ef``) p50 / p99, and the concurrent clients again,
  with the approximate answers' recall@k against the exact search checked on both sides.

Both databases are checked to hold the same state hash. Results go to stdout as a Markdown
table, with the CPU model, and with ``--out FILE`` to that file too.

    python bench/node.py                       # N = 100k, d = 384 (about 3 minutes)
    python bench/node.py --quick               # seconds (what .ci/run runs)
"""

import argparse
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import data  # noqa: E402
from machine import cpu_name, simd  # noqa: E402
import valori  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def start_node(binary, data_dir):
    proc = subprocess.Popen([binary, "--data", data_dir, "--listen", "127.0.0.1:0",
                             "--durability", "fsync", "--checkpoint-wal-bytes", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "RUST_LOG": "warn"})
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        sys.exit(f"valori-node did not start: {line!r}")
    return proc, line.strip().rsplit(" ", 1)[-1]


def load(store, n, d, batch, seed):
    rows = 0
    start = time.perf_counter()
    for _, chunk in data.chunks(n, d, seed):
        for at in range(0, len(chunk), batch):
            store.insert_batch(chunk[at:at + batch])
            rows += len(chunk[at:at + batch])
    return rows / (time.perf_counter() - start)


def latencies(store, queries, k, **opts):
    out = []
    for q in queries:
        t = time.perf_counter()
        store.search(q, k=k, **opts)
        out.append(time.perf_counter() - t)
    return out


def recall(store, queries, k, ef):
    exact, _ = store.search_batch(queries, k, exact=True)
    approx, _ = store.search_batch(queries, k, ef=ef)
    return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact)]))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def concurrent(make_store, queries, k, clients, seconds, **opts):
    """Searches per second with `clients` threads for about `seconds`."""
    stores = [make_store() for _ in range(clients)]
    done = [0] * clients
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(clients + 1)

    def run(i):
        s = stores[i]
        barrier.wait()
        j = i
        while time.perf_counter() < stop:
            s.search(queries[j % len(queries)], k=k, **opts)
            done[i] += 1
            j += clients

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=15.0, help="per concurrent run")
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ef", type=int, default=64, help="ef of the approximate searches")
    ap.add_argument("--no-index", action="store_true", help="skip the HNSW measures")
    ap.add_argument("--quick", action="store_true", help="N = 5,000, d = 64, short runs")
    ap.add_argument("--node", default=os.environ.get("VALORI_NODE_BIN", str(ROOT / "target/release/valori-node")))
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.quick:
        a.n, a.dim, a.batch, a.queries, a.seconds, a.small = 5_000, 64, 1_000, 50, 1.0, 200
    if not os.path.exists(a.node):
        sys.exit(f"no valori-node at {a.node}: cargo build --release -p valori-node")

    tmp = tempfile.TemporaryDirectory(prefix="valori-http-bench-")
    proc, url = start_node(a.node, os.path.join(tmp.name, "node"))
    try:
        queries = data.queries(a.queries, a.dim, a.seed)
        small_q = data.queries(a.queries, 16, a.seed)
        rows = {}
        db = valori.Database(os.path.join(tmp.name, "local"), dim=a.dim)
        remote = valori.KernelClient(url=url, database="bench", dim=a.dim)
        print(f"loading {a.n:,} x {a.dim} into each side ...", file=sys.stderr, flush=True)
        rows["durable batch insert (vectors/s)"] = (load(db, a.n, a.dim, a.batch, a.seed),
                                                     load(remote, a.n, a.dim, a.batch, a.seed))
        if db.state_hash() != remote.state_hash():
            sys.exit("the two sides hold different states")
        print("single searches ...", file=sys.stderr, flush=True)
        for store in (db, remote):  # warm up
            latencies(store, queries[:10], a.k)
        local_lat, remote_lat = latencies(db, queries, a.k), latencies(remote, queries, a.k)
        rows["one search p50 (ms)"] = (pct(local_lat, 50) * 1e3, pct(remote_lat, 50) * 1e3)
        rows["one search p99 (ms)"] = (pct(local_lat, 99) * 1e3, pct(remote_lat, 99) * 1e3)
        print(f"{a.clients} concurrent clients ...", file=sys.stderr, flush=True)
        rows[f"{a.clients} clients (searches/s)"] = (
            concurrent(lambda: db, queries, a.k, a.clients, a.seconds),
            concurrent(lambda: valori.KernelClient(url=url, database="bench"), queries, a.k, a.clients, a.seconds))
        # Transport cost: a store where the search itself is nearly free.
        sdb = valori.Database(os.path.join(tmp.name, "small"), dim=16)
        sremote = valori.KernelClient(url=url, database="small", dim=16)
        for s in (sdb, sremote):
            s.insert_batch(next(data.chunks(a.small, 16, a.seed))[1])
            latencies(s, small_q[:10], a.k)
        sl, sr = latencies(sdb, small_q, a.k), latencies(sremote, small_q, a.k)
        rows[f"one search p50, N = {a.small:,}, d = 16 (ms)"] = (pct(sl, 50) * 1e3, pct(sr, 50) * 1e3)
        rows[f"one search p99, N = {a.small:,}, d = 16 (ms)"] = (pct(sl, 99) * 1e3, pct(sr, 99) * 1e3)
        db.close()
        sdb.close()
        if not a.no_index:
            print("with the HNSW index: loading ...", file=sys.stderr, flush=True)
            opts = dict(index="hnsw", m=16, ef_construction=200)
            idb = valori.Database(os.path.join(tmp.name, "indexed"), dim=a.dim, **opts)
            iremote = valori.KernelClient(url=url, database="indexed", dim=a.dim, **opts)
            rows["HNSW: durable batch insert (vectors/s)"] = (
                load(idb, a.n, a.dim, a.batch, a.seed), load(iremote, a.n, a.dim, a.batch, a.seed))
            if idb.state_hash() != iremote.state_hash():
                sys.exit("the two indexed sides hold different states")
            r_local, r_remote = recall(idb, queries, a.k, a.ef), recall(iremote, queries, a.k, a.ef)
            if r_local != r_remote:
                sys.exit(f"the two indexed sides answer differently: recall {r_local} / {r_remote}")
            rows[f"HNSW: recall@{a.k} at ef = {a.ef}"] = (r_local, r_remote)
            for store in (idb, iremote):
                latencies(store, queries[:10], a.k, ef=a.ef)
            il, ir = latencies(idb, queries, a.k, ef=a.ef), latencies(iremote, queries, a.k, ef=a.ef)
            rows["HNSW: one search p50 (ms)"] = (pct(il, 50) * 1e3, pct(ir, 50) * 1e3)
            rows["HNSW: one search p99 (ms)"] = (pct(il, 99) * 1e3, pct(ir, 99) * 1e3)
            rows[f"HNSW: {a.clients} clients (searches/s)"] = (
                concurrent(lambda: idb, queries, a.k, a.clients, a.seconds, ef=a.ef),
                concurrent(lambda: valori.KernelClient(url=url, database="indexed"), queries, a.k,
                           a.clients, a.seconds, ef=a.ef))
            idb.close()
    finally:
        proc.terminate()
        code = proc.wait(60)
        tmp.cleanup()
    if code != 0:
        sys.exit(f"valori-node exited with {code}")

    lines = [
        f"Command: `python bench/node.py{' --quick' if a.quick else ''}` "
        f"(N = {a.n:,}, d = {a.dim}, batches of {a.batch:,}, {a.queries} queries, k = {a.k}, "
        f"{a.clients} clients for {a.seconds:g} s; durability fsync on both sides).",
        f"Machine: {cpu_name()} ({simd()}), {os.cpu_count()} logical CPUs, "
        f"{platform.system()} {platform.machine()}; run {time.strftime('%Y-%m-%d')}.",
        "",
        "| measure | in-process `Database` | HTTP `KernelClient` | HTTP / in-process |",
        "|---|---|---|---|",
    ]
    for name, (local, http) in rows.items():
        fmt = "{:,.0f}" if "/s" in name else "{:.3f}"
        lines.append(f"| {name} | {fmt.format(local)} | {fmt.format(http)} | {http / local:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        pathlib.Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
