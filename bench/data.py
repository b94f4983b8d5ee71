"""Seeded synthetic clustered vectors, generated in chunks so that any process can rebuild
exactly the same data without holding all of it.

Rows are unit vectors near one of `CLUSTERS` random unit centres: centre + Gaussian noise of
total norm about `SPREAD`, then normalised (like normalised sentence embeddings). Row `i`
depends only on the seed and `i // CHUNK`, so every library sees the same bytes.
"""
import numpy as np

CLUSTERS = 1024
CHUNK = 10_000
SPREAD = 0.5


def _centres(d, seed):
    rng = np.random.default_rng([seed, d, 0])
    c = rng.standard_normal((CLUSTERS, d))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _rows(centres, m, rng):
    d = centres.shape[1]
    pick = rng.integers(0, CLUSTERS, size=m)
    x = centres[pick] + rng.standard_normal((m, d)) * (SPREAD / np.sqrt(d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def chunks(n, d, seed):
    """Yields `(start, float32 array)` covering rows `0..n` in chunks of `CHUNK`."""
    centres = _centres(d, seed)
    for c, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        yield start, _rows(centres, m, np.random.default_rng([seed, d, 1, c]))


def queries(q, d, seed):
    """`q` query vectors from the same clusters (a different random stream)."""
    return _rows(_centres(d, seed), q, np.random.default_rng([seed, d, 2]))
