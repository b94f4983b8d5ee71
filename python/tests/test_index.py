"""The approximate index through every store (EmbeddedKernel, Database, KernelClient) and
metric: the same commands give the same answers in all three, recall is high, exact=True is
the exact search, ef is checked, and a durable database keeps its index across reopening."""

import itertools

import numpy as np
import pytest

import valori
from valori import InvalidInputError

KINDS = ["embedded", "database", "client"]
METRICS = ["l2", "ip", "cosine"]
_names = itertools.count()


def data(n=1500, dim=16, seed=3):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, dim))
    rows = centres[rng.integers(0, 12, n)] + 0.3 * rng.standard_normal((n, dim))
    rows /= 4 * np.abs(rows).max()
    queries = centres[rng.integers(0, 12, 40)] + 0.3 * rng.standard_normal((40, dim))
    return rows.astype(np.float32), (queries / (4 * np.abs(queries).max())).astype(np.float32)


@pytest.fixture(params=KINDS)
def make(request, tmp_path):
    opened = []

    def factory(dim, metric, **index):
        if request.param == "embedded":
            s = valori.EmbeddedKernel(dim=dim, metric=metric, **index)
        elif request.param == "database":
            s = valori.Database(tmp_path / f"db{next(_names)}", dim=dim, metric=metric, **index)
        else:
            node = request.getfixturevalue("node")
            s = valori.KernelClient(url=node.url, database=f"ix{next(_names)}", dim=dim,
                                    metric=metric, **index)
        opened.append(s)
        return s

    factory.kind = request.param
    yield factory
    for s in opened:
        if request.param == "client":
            s.drop()
        if hasattr(s, "close"):
            s.close()


@pytest.mark.parametrize("metric", METRICS)
def test_approximate_search_is_close_to_exact_and_the_same_everywhere(make, metric):
    rows, queries = data()
    s = make(16, metric, index="hnsw", m=8, ef_construction=64)
    assert s.index == valori.IndexParams("hnsw", 8, 64)
    s.insert_batch(rows[:1000], tags=[i % 3 for i in range(1000)])
    for r in rows[1000:1100]:
        s.insert(r)
    for i in range(0, 300, 3):
        s.delete(i)
    exact_ids, exact_d = s.search_batch(queries, 10, exact=True)
    ids, dists = s.search_batch(queries, 10, ef=32)
    assert ids.shape == exact_ids.shape == (40, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ids, exact_ids)])
    assert recall >= 0.9, recall
    # Single searches give the batch's rows; exact=True is the exact search.
    for q, row_ids, row_d in zip(queries[:5], ids, dists):
        hits = s.search(q, 10, ef=32)
        assert [h.id for h in hits] == list(row_ids)
        assert [h.distance for h in hits] == list(row_d)
        assert s.search(q, 10, exact=True) == s.search(q, 10, ef=65536)
    # A tag filter through the index: min(k, matching) hits, all tagged, close to exact.
    tagged, _ = s.search_batch(queries, 10, tag=2, ef=32)
    exact_tagged, _ = s.search_batch(queries, 10, tag=2, exact=True)
    assert tagged.shape == (40, 10)
    assert all(i % 3 == 2 for i in tagged.ravel().tolist())
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(tagged, exact_tagged)]) >= 0.8
    # The expected answers of this script, the same in every store (and on every machine):
    # hashes of the approximate ids, unfiltered and tagged.
    assert s.state_hash() == reference_hash(metric)[0]
    assert hash_ids(ids) == reference_hash(metric)[1]
    assert hash_ids(tagged) == reference_hash(metric)[2]


_reference = {}


def reference_hash(metric):
    """The state hash and the approximate answers' digest an EmbeddedKernel gives."""
    if metric not in _reference:
        rows, queries = data()
        k = valori.EmbeddedKernel(dim=16, metric=metric, index="hnsw", m=8, ef_construction=64)
        k.insert_batch(rows[:1000], tags=[i % 3 for i in range(1000)])
        for r in rows[1000:1100]:
            k.insert(r)
        for i in range(0, 300, 3):
            k.delete(i)
        _reference[metric] = (k.state_hash(), hash_ids(k.search_batch(queries, 10, ef=32)[0]),
                              hash_ids(k.search_batch(queries, 10, tag=2, ef=32)[0]))
    return _reference[metric]


def hash_ids(ids):
    import hashlib
    return hashlib.blake2b(np.ascontiguousarray(ids, dtype="<u8").tobytes()).hexdigest()


def test_without_an_index_search_is_exact_and_ef_is_checked(make):
    rows, queries = data(200, 16)
    s = make(16, "l2")
    assert s.index is None
    s.insert_batch(rows)
    assert s.search(queries[0], 5) == s.search(queries[0], 5, exact=True)
    for bad in (0, 65537):
        with pytest.raises(InvalidInputError, match="ef"):
            s.search(queries[0], 5, ef=bad)
    with pytest.raises(InvalidInputError, match="ef"):
        s.search_batch(queries, 5, ef=0)


def test_bad_index_parameters_are_refused(make):
    with pytest.raises(InvalidInputError, match="m = 1"):
        make(4, "l2", index="hnsw", m=1)
    with pytest.raises(InvalidInputError, match="ef_construction"):
        make(4, "l2", index="hnsw", m=16, ef_construction=8)
    with pytest.raises(InvalidInputError, match="index"):
        make(4, "l2", index="ivf")


@pytest.mark.parametrize("metric", METRICS)
def test_a_database_keeps_its_index(tmp_path, metric):
    rows, queries = data(600, 16)
    path = tmp_path / "db"
    with valori.Database(path, dim=16, metric=metric, index="hnsw", m=8, ef_construction=40) as db:
        db.insert_batch(rows[:300])
        db.checkpoint()
        db.insert_batch(rows[300:])
        want = db.search_batch(queries, 10, ef=16)
    with valori.Database(path) as db:
        assert db.index == valori.IndexParams("hnsw", 8, 40)
        got = db.search_batch(queries, 10, ef=16)
        assert (got[0] == want[0]).all() and (got[1] == want[1]).all()
    with pytest.raises(InvalidInputError, match="index"):
        valori.Database(path, index="hnsw", m=16)
    # An index added to a database without one.
    plain = tmp_path / "plain"
    with valori.Database(plain, dim=16, metric=metric) as db:
        db.insert_batch(rows)
        assert db.index is None
    with valori.Database(plain, index="hnsw", m=8, ef_construction=40) as db:
        assert db.index == valori.IndexParams("hnsw", 8, 40)
        ids, _ = db.search_batch(queries, 10, ef=64)
        exact, _ = db.search_batch(queries, 10, exact=True)
        assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ids, exact)]) >= 0.9
