"""Exact k-NN search, side by side: valori (in memory and durable) against NumPy brute force,
faiss IndexFlatL2, usearch exact search, hnswlib BFIndex and sqlite-vec, on the same seeded
synthetic clustered vectors, single thread.

    python bench/peers.py                 # N = 100k and 1M, d = 16 and 384, 1,000 queries, k = 10
    python bench/peers.py --tiny          # a tiny configuration (CI): proves the script runs
    python bench/peers.py --configs 100000x384 --libs valori-mem,faiss

Each library runs in its own process (so its resident memory can be measured alone): the
process generates the data in chunks, inserts them (timed), measures its RSS growth, runs the
queries one at a time (timed, up to --single-seconds), then all of them in one call (timed;
fewer if the single-query rate predicts more than --batch-seconds), and reports recall@k against an exact float64 ground truth.
Results: bench/results/peers.md (table), peers.json, peers.png (plot).

Approximate k-NN (HNSW: valori's deterministic index against hnswlib, faiss IndexHNSWFlat and
usearch, recall/QPS over ef, build rate, memory, the durable database's reopen time):

    python bench/peers.py ann [options]   # the same as python bench/ann.py [options]
"""
import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import cpu_name  # noqa: E402

LIBS = ["valori-mem", "valori-durable", "numpy", "faiss", "usearch", "hnswlib", "sqlite-vec"]
SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


# --------------------------------------------------------------------------- worker side


def rss_bytes():
    import psutil

    return psutil.Process().memory_info().rss


class Lib:
    """One library: build from chunks, then search one query or a batch."""

    batch_api = True
    builds = True

    def __init__(self, n, d, k, tmp):
        self.n, self.d, self.k, self.tmp = n, d, k, tmp

    def finish_build(self):
        pass


class ValoriMem(Lib):
    def __init__(self, *a):
        super().__init__(*a)
        import valori

        self.db = valori.EmbeddedKernel(dim=self.d)
        self.note = ""

    def add(self, start, chunk):
        self.db.insert_batch(chunk)

    def finish_build(self):
        self.note = self.storage_note()

    def storage_note(self):
        return ""

    def one(self, q):
        return [r.id for r in self.db.search(q, self.k)]

    def batch(self, qs):
        ids, _ = self.db.search_batch(qs, self.k)
        return ids


class ValoriDurable(ValoriMem):
    def __init__(self, n, d, k, tmp):
        Lib.__init__(self, n, d, k, tmp)
        import valori

        self.db = valori.Database(os.path.join(tmp, "valori-db"), dim=d)  # default: fsync
        self.note = "fsync per batch of 1,000"

    def add(self, start, chunk):
        for i in range(0, len(chunk), 1000):
            self.db.insert_batch(chunk[i:i + 1000])


class NumpyBrute(Lib):
    builds = False

    def __init__(self, *a):
        super().__init__(*a)
        import numpy as np

        self.np = np
        self.x = np.empty((self.n, self.d), dtype=np.float32)

    def add(self, start, chunk):
        self.x[start:start + len(chunk)] = chunk

    def finish_build(self):
        self.norms = (self.x * self.x).sum(1)

    def _topk(self, qs):
        np = self.np
        dist = self.norms[None, :] - 2.0 * (qs @ self.x.T)
        idx = np.argpartition(dist, self.k, axis=1)[:, :self.k]
        order = np.take_along_axis(dist, idx, 1).argsort(1)
        return np.take_along_axis(idx, order, 1)

    def one(self, q):
        return self._topk(q[None, :])[0]

    def batch(self, qs):
        # Blocks of 100 queries keep the distance matrix at 100 x N.
        return [row for i in range(0, len(qs), 100) for row in self._topk(qs[i:i + 100])]


class Faiss(Lib):
    def __init__(self, *a):
        super().__init__(*a)
        import faiss

        faiss.omp_set_num_threads(1)
        self.index = faiss.IndexFlatL2(self.d)

    def add(self, start, chunk):
        self.index.add(chunk)

    def one(self, q):
        return self.index.search(q[None, :], self.k)[1][0]

    def batch(self, qs):
        return self.index.search(qs, self.k)[1]


class USearch(NumpyBrute):
    """usearch's exact (brute-force) search over a NumPy matrix: no index to build."""

    def finish_build(self):
        pass

    def one(self, q):
        from usearch.index import search

        m = search(self.x, q, self.k, "l2sq", exact=True, threads=1)
        return m.keys

    def batch(self, qs):
        from usearch.index import search

        m = search(self.x, qs, self.k, "l2sq", exact=True, threads=1)
        return m.keys


class Hnswlib(Lib):
    def __init__(self, *a):
        super().__init__(*a)
        import hnswlib
        import numpy as np

        self.np = np
        self.index = hnswlib.BFIndex(space="l2", dim=self.d)
        self.index.init_index(max_elements=self.n)

    def add(self, start, chunk):
        self.index.add_items(chunk, self.np.arange(start, start + len(chunk)))

    def one(self, q):
        return self.index.knn_query(q[None, :], k=self.k, num_threads=1)[0][0]

    def batch(self, qs):
        return self.index.knn_query(qs, k=self.k, num_threads=1)[0]


class SqliteVec(Lib):
    batch_api = False

    def __init__(self, *a):
        super().__init__(*a)
        import apsw
        import sqlite_vec

        self.db = apsw.Connection(":memory:")
        self.db.enable_load_extension(True)
        self.db.load_extension(sqlite_vec.loadable_path())
        self.db.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{self.d}])")

    def add(self, start, chunk):
        with self.db:
            self.db.executemany(
                "INSERT INTO v(rowid, embedding) VALUES (?, ?)",
                ((start + i, row.tobytes()) for i, row in enumerate(chunk)),
            )

    def one(self, q):
        rows = self.db.execute(
            "SELECT rowid FROM v WHERE embedding MATCH ? AND k = ? ORDER BY distance",
            (q.tobytes(), self.k),
        )
        return [r[0] for r in rows]


LIB_CLASSES = {
    "valori-mem": ValoriMem,
    "valori-durable": ValoriDurable,
    "numpy": NumpyBrute,
    "faiss": Faiss,
    "usearch": USearch,
    "hnswlib": Hnswlib,
    "sqlite-vec": SqliteVec,
}


def recall(results, gt, k):
    hits = 0
    for got, want in zip(results, gt):
        hits += len(set(int(i) for i in list(got)[:k]) & set(int(i) for i in want[:k]))
    return hits / (k * len(results)) if len(results) else float("nan")


def worker(a):
    import numpy as np

    import data

    base = rss_bytes()
    # All the data first, so that the memory measured below is the library's alone (the
    # generator's temporaries are gone by then).
    x = np.concatenate([c for _, c in data.chunks(a.n, a.d, a.seed)])
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        lib = LIB_CLASSES[a.lib](a.n, a.d, a.k, tmp)
        gc.collect()
        before = rss_bytes()
        build = 0.0
        for start in range(0, a.n, data.CHUNK):
            chunk = x[start:start + data.CHUNK]
            t = time.perf_counter()
            lib.add(start, chunk)
            build += time.perf_counter() - t
        t = time.perf_counter()
        lib.finish_build()
        build += time.perf_counter() - t
        gc.collect()
        after = rss_bytes()
        queries = data.queries(a.q, a.d, a.seed)
        gt = np.load(a.gt)

        single, t0 = [], time.perf_counter()
        for q in queries:
            single.append(lib.one(q))
            if time.perf_counter() - t0 > a.single_seconds:
                break
        single_s = time.perf_counter() - t0

        # All queries in one call, unless the single-query rate says that would take longer
        # than --batch-seconds: then the first queries that fit (at least 100).
        batch, batch_s = [], 0.0
        if lib.batch_api:
            rate = len(single) / single_s
            nb = min(len(queries), max(100, int(rate * a.batch_seconds)))
            t = time.perf_counter()
            batch = list(lib.batch(queries[:nb]))
            batch_s = time.perf_counter() - t
        out = {
            "lib": a.lib,
            "n": a.n,
            "d": a.d,
            "k": a.k,
            "build_per_s": a.n / build if lib.builds and build > 0 else None,
            "single_qps": len(single) / single_s,
            "single_queries": len(single),
            "batch_qps": len(batch) / batch_s if batch else None,
            "batch_queries": len(batch),
            "recall": recall(batch if batch else single, gt, a.k),
            "recall_single": recall(single, gt, a.k),
            "rss_per_vector": (after - before) / a.n,
            "rss_base_mb": base / 2**20,
        "rss_data_mb": (before - base) / 2**20,
            "note": getattr(lib, "note", ""),
        }
    print(json.dumps(out), flush=True)


def ground_truth(a):
    """Exact k-NN in float64: float32 BLAS picks 4k candidates per query, float64 re-ranks."""
    import numpy as np

    import data

    x = np.concatenate([c for _, c in data.chunks(a.n, a.d, a.seed)])
    qs = data.queries(a.q, a.d, a.seed)
    norms = (x * x).sum(1)
    c = max(4 * a.k, a.k + 32)
    out = np.empty((len(qs), a.k), dtype=np.int64)
    for i in range(0, len(qs), 50):
        qb = qs[i:i + 50]
        dist = norms[None, :] - 2.0 * (qb @ x.T)
        cand = np.argpartition(dist, c, axis=1)[:, :c]
        for j, row in enumerate(cand):
            exact = ((x[row].astype(np.float64) - qb[j].astype(np.float64)) ** 2).sum(1)
            order = np.lexsort((row, exact))[:a.k]
            out[i + j] = row[order]
    np.save(a.gt, out)


# --------------------------------------------------------------------------- driver side


def versions():
    v = {"python": platform.python_version()}
    for mod in ["numpy", "faiss", "usearch", "hnswlib", "sqlite_vec", "apsw", "psutil", "valori"]:
        try:
            __import__(mod)
        except Exception as e:  # a missing peer must fail loudly, not vanish from the table
            raise SystemExit(f"bench: cannot import {mod}: {e}; pip install -r bench/requirements.txt")
    from importlib import metadata

    for dist in ["valori", "numpy", "faiss-cpu", "usearch", "hnswlib", "sqlite-vec", "apsw"]:
        try:
            v[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return v


def run(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"bench: {' '.join(cmd[2:])} failed with status {p.returncode}")
    return p.stdout


def fmt(v, kind):
    if v is None:
        return "—"
    if kind == "rate":
        return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
    if kind == "recall":
        return f"{v:.4f}"
    return str(v)


def table(results, configs, a):
    lines = []
    for n, d in configs:
        rows = [r for r in results if r["n"] == n and r["d"] == d]
        if not rows:
            continue
        lines.append(f"### N = {n:,}, d = {d}, {a.q:,} queries, k = {a.k}\n")
        lines.append("| library | build (vectors/s) | single query (q/s) | batch (q/s) | recall@10 | RSS per vector (bytes) | RSS / raw f32 | notes |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in rows:
            notes = [r["note"]] if r["note"] else []
            if r["single_queries"] < a.q:
                notes.append(f"single: {r['single_queries']} queries timed")
            if r["batch_queries"] and r["batch_queries"] < a.q:
                notes.append(f"batch: {r['batch_queries']} queries timed")
            if r["lib"] == "usearch":
                notes.append("exact search over a NumPy matrix, no index")
            if r["lib"] == "sqlite-vec":
                notes.append("no batch API")
            lines.append(
                f"| {r['lib']} | {fmt(r['build_per_s'], 'rate')} | {fmt(r['single_qps'], 'rate')} | "
                f"{fmt(r['batch_qps'], 'rate')} | {fmt(r['recall'], 'recall')} | "
                f"{r['rss_per_vector']:,.0f} | {r['rss_per_vector'] / (4 * d):.2f} | {'; '.join(notes)} |"
            )
        by = {r["lib"]: r for r in rows}
        f = by.get("faiss")
        ratios = []
        for lib in ["valori-mem", "valori-durable"]:
            v = by.get(lib)
            if v and f:
                s = v["single_qps"] / f["single_qps"]
                b = (v["batch_qps"] / f["batch_qps"]) if v["batch_qps"] and f["batch_qps"] else None
                ratios.append(f"{lib} / faiss: single {s:.2f}x" + (f", batch {b:.2f}x" if b else ""))
        if ratios:
            lines.append("\n" + "; ".join(ratios) + ".\n")
        else:
            lines.append("")
    return "\n".join(lines)


def plot(results, configs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [c for c in configs if any(r["n"] == c[0] and r["d"] == c[1] for r in results)]
    fig, axes = plt.subplots(1, len(configs), figsize=(5.5 * len(configs), 4.5), squeeze=False)
    for ax, (n, d) in zip(axes[0], configs):
        rows = [r for r in results if r["n"] == n and r["d"] == d]
        names = [r["lib"] for r in rows]
        xs = range(len(rows))
        single = [r["single_qps"] for r in rows]
        batch = [r["batch_qps"] or 0 for r in rows]
        ax.bar([x - 0.2 for x in xs], single, 0.4, label="single query")
        ax.bar([x + 0.2 for x in xs], batch, 0.4, label="batch")
        ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=35, ha="right")
        ax.set_title(f"N = {n:,}, d = {d}")
        ax.set_ylabel("queries / s (1 thread, exact, k = 10)")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="N = 2,000, d = 16 and 40, 50 queries (CI)")
    p.add_argument("--configs", default="100000x16,100000x384,1000000x16,1000000x384",
                   help="comma-separated NxD")
    p.add_argument("--libs", default=",".join(LIBS))
    p.add_argument("-q", type=int, default=1000)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument("--single-seconds", type=float, default=30.0)
    p.add_argument("--batch-seconds", type=float, default=120.0)
    p.add_argument("--out", default=str(HERE / "results"), help="directory for the results")
    p.add_argument("--tmp", default=None, help="directory for databases and ground truth")
    # worker modes (internal)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--gt-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--lib", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--d", type=int, help=argparse.SUPPRESS)
    p.add_argument("--gt", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return ground_truth(a) if a.gt_only else worker(a)

    if a.tiny:
        a.configs, a.q = "2000x16,2000x40", 50
    configs = [tuple(int(v) for v in c.split("x")) for c in a.configs.split(",")]
    libs = a.libs.split(",")
    unknown = [lib for lib in libs if lib not in LIB_CLASSES]
    if unknown:
        raise SystemExit(f"bench: unknown libraries {unknown}; choose from {LIBS}")
    info = versions()
    env = dict(os.environ, **SINGLE_THREAD)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = a.tmp or tempfile.mkdtemp(prefix="valori-bench-")
    os.makedirs(tmp, exist_ok=True)
    results = []
    started = time.time()
    common = ["-q", str(a.q), "-k", str(a.k), "--seed", str(a.seed), "--tmp", tmp,
              "--single-seconds", str(a.single_seconds), "--batch-seconds", str(a.batch_seconds)]
    for n, d in configs:
        gt = os.path.join(tmp, f"gt-{n}-{d}-{a.q}-{a.k}-{a.seed}.npy")
        if not os.path.exists(gt):
            print(f"[{time.time() - started:6.0f}s] N={n:,} d={d}: exact ground truth", flush=True)
            run([sys.executable, __file__, "--worker", "1", "--gt-only", "--n", str(n), "--d", str(d),
                 "--gt", gt] + common, env)
        for lib in libs:
            print(f"[{time.time() - started:6.0f}s] N={n:,} d={d}: {lib}", flush=True)
            line = run([sys.executable, __file__, "--worker", "1", "--lib", lib, "--n", str(n),
                        "--d", str(d), "--gt", gt] + common, env)
            r = json.loads(line.strip().splitlines()[-1])
            results.append(r)
            print("    " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in r.items() if k not in ("lib", "n", "d", "k")), flush=True)
    cmd = "python bench/peers.py" + (" --tiny" if a.tiny else "") + (
        f" --configs {a.configs}" if not a.tiny and a.configs != p.get_default("configs") else "")
    header = [
        "# Exact k-NN: valori next to its peers",
        "",
        f"Command: `{cmd}` (single thread: {', '.join(f'{k}=1' for k in list(SINGLE_THREAD)[:3])}; "
        "faiss.omp_set_num_threads(1), usearch threads=1, hnswlib num_threads=1).",
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}; "
        f"run {time.strftime('%Y-%m-%d', time.gmtime())}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        "Data: seeded synthetic clustered unit vectors (`bench/data.py`: 1,024 cluster centres, "
        "Gaussian spread, rows normalised), queries drawn from the same clusters. Recall@10 is "
        "against an exact float64 ground truth (valori's distances are exact on its Q16.16 "
        "values, so a recall below 1 there means near-ties that rounding to 2^-16 reordered). "
        "Build: insert throughput from chunks of 10,000 (valori-durable: `insert_batch` of 1,000 "
        "with the default fsync durability). RSS per vector: growth of the process's resident "
        "memory over the build, divided by N.",
        "",
        "",
    ]
    (out / "peers.md").write_text("\n".join(header) + table(results, configs, a) + "\n")
    (out / "peers.json").write_text(json.dumps({"versions": info, "cpu": cpu_name(), "results": results}, indent=1) + "\n")
    plot(results, configs, out / "peers.png")
    print(f"[{time.time() - started:6.0f}s] wrote {out / 'peers.md'}, peers.json, peers.png")


if __name__ == "__main__":
    if sys.argv[1:2] == ["ann"]:
        os.execv(sys.executable, [sys.executable, str(HERE / "ann.py"), *sys.argv[2:]])
    main()
