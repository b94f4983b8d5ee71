"""Approximate k-NN (HNSW), side by side, one thread: valori's deterministic index (in memory
and durable) against hnswlib, faiss IndexHNSWFlat and usearch, with the same parameters
(M = 16, ef_construction = 200, k = 10) on the same seeded synthetic clustered unit vectors.

    python bench/ann.py                          # N = 100k and 1M, d = 384 (about an hour)
    python bench/ann.py --configs 100000x384     # one size (about 15 minutes)
    python bench/ann.py --tiny                   # seconds (CI: proves the script runs)

Each library runs in its own process (so its resident memory is its own): it builds the index
from the data (timed), measures its RSS growth per vector, then for each ef of the sweep runs
the queries one at a time (up to --seconds per ef) and reports queries per second and
recall@k against an exact float64 ground truth. The durable database also reports how long
reopening it takes (snapshot with the index, and the log after it). Results:
bench/results/ann.md (table), ann.json, ann.png (recall against queries per second).
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
from machine import cpu_name, simd  # noqa: E402

LIBS = ["valori-mem", "valori-durable", "hnswlib", "faiss", "usearch"]
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 256]
M, EF_CONSTRUCTION = 16, 200
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def rss_bytes():
    import psutil

    return psutil.Process().memory_info().rss


class ValoriMem:
    def __init__(self, d, n, tmp):
        import valori

        self.db = valori.EmbeddedKernel(dim=d, index="hnsw", m=M, ef_construction=EF_CONSTRUCTION)

    def add(self, chunk):
        self.db.insert_batch(chunk)

    def finish(self):
        return {}

    def one(self, q, ef):
        return [r.id for r in self.db.search(q, 10, ef=ef)]


class ValoriDurable(ValoriMem):
    def __init__(self, d, n, tmp):
        import valori

        self.path = os.path.join(tmp, "valori-db")
        self.db = valori.Database(self.path, dim=d, index="hnsw", m=M, ef_construction=EF_CONSTRUCTION)

    def finish(self):
        import valori

        # Reopen: the snapshot (with the index) is written at a checkpoint; the log after it is
        # replayed into the index. Both cases are timed.
        self.db.close()
        t = time.perf_counter()
        self.db = valori.Database(self.path)
        log_reopen = time.perf_counter() - t
        self.db.checkpoint()
        self.db.close()
        t = time.perf_counter()
        self.db = valori.Database(self.path)
        snap_reopen = time.perf_counter() - t
        return {"reopen_log_s": log_reopen, "reopen_snapshot_s": snap_reopen}


class Hnswlib:
    def __init__(self, d, n, tmp):
        import hnswlib

        self.index = hnswlib.Index(space="l2", dim=d)
        self.index.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
        self.index.set_num_threads(1)
        self.next = 0

    def add(self, chunk):
        import numpy as np

        self.index.add_items(chunk, np.arange(self.next, self.next + len(chunk)), num_threads=1)
        self.next += len(chunk)

    def finish(self):
        return {}

    def one(self, q, ef):
        self.index.set_ef(ef)
        return self.index.knn_query(q[None, :], k=10, num_threads=1)[0][0]


class Faiss:
    def __init__(self, d, n, tmp):
        import faiss

        faiss.omp_set_num_threads(1)
        self.index = faiss.IndexHNSWFlat(d, M)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION

    def add(self, chunk):
        self.index.add(chunk)

    def finish(self):
        return {}

    def one(self, q, ef):
        self.index.hnsw.efSearch = ef
        return self.index.search(q[None, :], 10)[1][0]


class USearch:
    def __init__(self, d, n, tmp):
        from usearch.index import Index

        self.index = Index(ndim=d, metric="l2sq", dtype="f32", connectivity=M,
                           expansion_add=EF_CONSTRUCTION)
        self.next = 0

    def add(self, chunk):
        import numpy as np

        self.index.add(np.arange(self.next, self.next + len(chunk)), chunk, threads=1)
        self.next += len(chunk)

    def finish(self):
        return {}

    def one(self, q, ef):
        self.index.expansion_search = ef
        return self.index.search(q, 10, threads=1).keys


CLASSES = {"valori-mem": ValoriMem, "valori-durable": ValoriDurable, "hnswlib": Hnswlib,
           "faiss": Faiss, "usearch": USearch}


def recall(results, gt):
    hits = sum(len(set(int(i) for i in got) & set(int(i) for i in want[:10]))
               for got, want in zip(results, gt))
    return hits / (10 * len(results))


def worker(a):
    import numpy as np

    import data

    x = np.concatenate([c for _, c in data.chunks(a.n, a.d, a.seed)])
    queries = data.queries(a.q, a.d, a.seed)
    gt = np.load(a.gt)
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        lib = CLASSES[a.lib](a.d, a.n, tmp)
        gc.collect()
        before = rss_bytes()
        t = time.perf_counter()
        for start in range(0, a.n, data.CHUNK):
            lib.add(x[start:start + data.CHUNK])
            print(f"  {a.lib}: {min(start + data.CHUNK, a.n):,} of {a.n:,} indexed",
                  file=sys.stderr, flush=True)
        build = time.perf_counter() - t
        gc.collect()
        after = rss_bytes()
        extra = lib.finish()
        curve = []
        for ef in a.efs:
            lib.one(queries[0], ef)  # warm
            got, t0 = [], time.perf_counter()
            for q in queries:
                got.append(lib.one(q, ef))
                if time.perf_counter() - t0 > a.seconds:
                    break
            s = time.perf_counter() - t0
            curve.append({"ef": ef, "qps": len(got) / s, "recall": recall(got, gt), "queries": len(got)})
        out = {"lib": a.lib, "n": a.n, "d": a.d, "build_per_s": a.n / build,
               "rss_per_vector": (after - before) / a.n, "curve": curve, **extra}
    print(json.dumps(out), flush=True)


def ground_truth(a):
    """Exact k-NN in float64 (float32 BLAS picks candidates, float64 re-ranks)."""
    import numpy as np

    import data

    x = np.concatenate([c for _, c in data.chunks(a.n, a.d, a.seed)])
    qs = data.queries(a.q, a.d, a.seed)
    norms = (x * x).sum(1)
    out = np.empty((len(qs), 10), dtype=np.int64)
    for i in range(0, len(qs), 50):
        qb = qs[i:i + 50]
        cand = np.argpartition(norms[None, :] - 2.0 * (qb @ x.T), 64, axis=1)[:, :64]
        for j, row in enumerate(cand):
            exact = ((x[row].astype(np.float64) - qb[j].astype(np.float64)) ** 2).sum(1)
            out[i + j] = row[np.lexsort((row, exact))[:10]]
    np.save(a.gt, out)


def at_recall(curve, floor):
    """The fastest point of a curve with recall >= floor (None if none reaches it)."""
    ok = [p for p in curve if p["recall"] >= floor]
    return max(ok, key=lambda p: p["qps"]) if ok else None


def report(results, a):
    lines = [
        f"Command: `python bench/ann.py{' --tiny' if a.tiny else ''} --configs {a.configs}` "
        f"(M = {M}, ef_construction = {EF_CONSTRUCTION}, k = 10, {a.q} queries one at a time, "
        f"one thread each).",
        f"Machine: {cpu_name()} ({simd()}), {os.cpu_count()} logical CPUs, {platform.system()} "
        f"{platform.machine()}; run {time.strftime('%Y-%m-%d')}.",
        "",
    ]
    for (n, d) in sorted({(r["n"], r["d"]) for r in results}):
        rows = [r for r in results if (r["n"], r["d"]) == (n, d)]
        ref = next((r for r in rows if r["lib"] == "hnswlib"), None)
        lines += [f"### N = {n:,}, d = {d}", "",
                  "| library | build (vectors/s) | vs hnswlib | RSS per vector (bytes) | best QPS at recall >= 0.95 (ef) | vs hnswlib | reopen |",
                  "|---|---|---|---|---|---|---|"]
        ref_best = at_recall(ref["curve"], 0.95) if ref else None
        for r in rows:
            best = at_recall(r["curve"], 0.95)
            reopen = ""
            if "reopen_snapshot_s" in r:
                reopen = f"{r['reopen_snapshot_s']:.2f} s (snapshot), {r['reopen_log_s']:.2f} s (log)"
            build_vs = f"{r['build_per_s'] / ref['build_per_s']:.2f}x" if ref else ""
            best_text = f"{best['qps']:,.0f} (ef {best['ef']}, recall {best['recall']:.3f})" if best else "none"
            best_vs = f"{best['qps'] / ref_best['qps']:.2f}x" if best and ref_best else ""
            lines.append(f"| {r['lib']} | {r['build_per_s']:,.0f} | {build_vs} | "
                         f"{r['rss_per_vector']:,.0f} | {best_text} | {best_vs} | {reopen} |")
        lines += ["", "Recall@10 / queries per second over ef:", "",
                  "| library | " + " | ".join(f"ef {p['ef']}" for p in rows[0]["curve"]) + " |",
                  "|---|" + "---|" * len(rows[0]["curve"])]
        for r in rows:
            lines.append(f"| {r['lib']} | " + " | ".join(
                f"{p['recall']:.3f} / {p['qps']:,.0f}" for p in r["curve"]) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({(r["n"], r["d"]) for r in results})
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.5), squeeze=False)
    for ax, (n, d) in zip(axes[0], sizes):
        for r in (r for r in results if (r["n"], r["d"]) == (n, d)):
            ax.plot([p["recall"] for p in r["curve"]], [p["qps"] for p in r["curve"]], marker="o", label=r["lib"])
        ax.set_title(f"N = {n:,}, d = {d}")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (one thread)")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="N = 3,000, d = 32, 50 queries (CI)")
    p.add_argument("--configs", default="100000x384,1000000x384")
    p.add_argument("--libs", default=",".join(LIBS))
    p.add_argument("-q", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=10.0, help="per ef")
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--tmp", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--gt-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--lib", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--d", type=int, help=argparse.SUPPRESS)
    p.add_argument("--gt", help=argparse.SUPPRESS)
    p.add_argument("--efs", default=",".join(map(str, EFS)))
    a = p.parse_args()
    a.efs = [int(e) for e in str(a.efs).split(",")]
    if a.worker:
        return worker(a)
    if a.gt_only:
        return ground_truth(a)
    if a.tiny:
        a.configs, a.q, a.seconds, a.efs = "3000x32", 50, 1.0, [10, 32, 128]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = a.tmp or tempfile.mkdtemp(prefix="valori-ann-")
    os.makedirs(tmp, exist_ok=True)
    env = {**os.environ, **SINGLE_THREAD}
    results = []
    for cfg in a.configs.split(","):
        n, d = (int(v) for v in cfg.split("x"))
        gt = os.path.join(tmp, f"gt-{n}x{d}.npy")
        common = ["--n", str(n), "--d", str(d), "-q", str(a.q), "--seed", str(a.seed), "--gt", gt, "--tmp", tmp]
        print(f"ground truth for N = {n:,}, d = {d} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, __file__, "--gt-only", *common], check=True, env=env)
        for lib in a.libs.split(","):
            print(f"{lib}, N = {n:,}, d = {d} ...", file=sys.stderr, flush=True)
            r = subprocess.run([sys.executable, __file__, "--worker", "--lib", lib, "--seconds", str(a.seconds),
                                "--efs", ",".join(map(str, a.efs)), *common],
                               check=True, env=env, stdout=subprocess.PIPE, text=True)
            results.append(json.loads(r.stdout.strip().splitlines()[-1]))
            (out / "ann.json").write_text(json.dumps(results, indent=1))
    text = report(results, a)
    (out / "ann.md").write_text(text)
    plot(results, out / "ann.png")
    print(text)


if __name__ == "__main__":
    main()
