"""One suite, three stores: EmbeddedKernel (in memory), Database (durable, in process) and
KernelClient (a database on a valori-node server). The same calls must give the same values,
the same exceptions and the same state hash, for every metric."""

import itertools

import numpy as np
import pytest

import valori
from valori import (DimensionError, InvalidInputError, NotFoundError, Record, SearchResult)

KINDS = ["embedded", "database", "client"]
METRICS = ["l2", "ip", "cosine"]
_names = itertools.count()


@pytest.fixture(params=KINDS)
def make(request, tmp_path):
    """A function (dim, metric) -> a new empty store of this test's kind."""
    opened = []

    def factory(dim, metric="l2"):
        if request.param == "embedded":
            s = valori.EmbeddedKernel(dim=dim, metric=metric)
        elif request.param == "database":
            s = valori.Database(tmp_path / f"db{next(_names)}", dim=dim, metric=metric)
        else:
            node = request.getfixturevalue("node")
            s = valori.KernelClient(url=node.url, database=f"t{next(_names)}", dim=dim, metric=metric)
        opened.append(s)
        return s

    factory.kind = request.param
    yield factory
    for s in opened:
        if request.param == "client":
            s.drop()
        if hasattr(s, "close"):
            s.close()


def script(s):
    """The same commands for every store: inserts of every input form, batch, metadata,
    tags, graph, deletes. Returns the ids it made."""
    a = s.insert([0.5, -1.25, 2.0, 0.1], tag=7, metadata=b"first")
    b = s.insert(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32))
    c = s.insert(np.array([0.3, 0.3, 0.3, 0.3], dtype=np.float64), metadata=b"\x00\xffbytes")
    batch = s.insert_batch(np.arange(24, dtype=np.float32).reshape(6, 4) / 7.0, tags=[1, 2, 1, 2, 1, 2])
    more = s.insert_batch([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    s.set_metadata(b, b"meta of b")
    s.set_tag(c, 3)
    s.set_tag(a, None)
    n1 = s.create_node(1, record=a, label=b"alpha")
    n2 = s.create_node(2)
    n3 = s.create_node(2, record=c)
    e1 = s.create_edge(5, n1, n2, weight=0.75)
    e2 = s.create_edge(6, n2, n3)
    s.create_edge(5, n3, n1, weight=-2.5)
    s.delete(batch[2])
    s.delete_edge(e2)
    return dict(a=a, b=b, c=c, batch=batch, more=more, n1=n1, n2=n2, n3=n3, e1=e1)


@pytest.mark.parametrize("metric", METRICS)
def test_same_commands_same_values_and_hash(make, metric):
    reference = valori.EmbeddedKernel(dim=4, metric=metric)
    want = script(reference)
    s = make(4, metric)
    got = script(s)
    assert got == want
    assert s.state_hash() == reference.state_hash()
    assert len(s) == len(reference) == 10

    r = s.get(got["c"])
    assert isinstance(r, Record)
    ref = reference.get(got["c"])
    assert (r.id, r.tag, r.metadata) == (ref.id, 3, b"\x00\xffbytes")
    assert r.vector.dtype == np.float64 and np.array_equal(r.vector, ref.vector)
    assert s.get(got["a"]).tag is None and s.get(got["b"]).metadata == b"meta of b"
    assert s.get(got["batch"][2]) is None

    q = [0.2, 0.1, 0.3, 0.35]
    for k, tag in [(3, None), (100, None), (2, 1), (5, 99)]:
        hits = s.search(q, k=k, tag=tag)
        assert hits == reference.search(q, k=k, tag=tag)
        assert all(isinstance(h, SearchResult) for h in hits)
    assert len(s.search(q, k=100)) == 10

    queries = np.array([q, [1.0, 1.0, 1.0, 1.0], [-0.5, 0.25, 0.0, 2.0]], dtype=np.float32)
    ids, dists = s.search_batch(queries, k=4)
    rids, rdists = reference.search_batch(queries, k=4)
    assert ids.dtype == np.uint64 and dists.dtype == np.float64 and ids.shape == (3, 4)
    assert np.array_equal(ids, rids) and np.array_equal(dists, rdists)
    for row, query in enumerate(queries):
        assert [h.id for h in s.search(query, k=4)] == list(ids[row])

    assert s.neighbors(got["n2"], "both") == reference.neighbors(got["n2"], "both")
    assert [e.weight for e in s.neighbors(got["n1"], "out")] == [0.75]
    assert s.traverse(got["n1"], 3, "both") == reference.traverse(got["n1"], 3, "both")
    assert s.traverse(got["n3"], 1, "out", kind=5) == [(1, got["n1"])]


def test_errors_are_the_same_exceptions(make):
    s = make(3)
    s.insert([1.0, 2.0, 3.0])
    before = s.state_hash()
    with pytest.raises(DimensionError):
        s.insert([1.0, 2.0])
    with pytest.raises(DimensionError):
        s.search([1.0], k=1)
    with pytest.raises(DimensionError):
        s.insert_batch(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(InvalidInputError):
        s.search([1.0, 2.0, 3.0], k=0)
    with pytest.raises(InvalidInputError):
        s.insert([1e9, 0.0, 0.0])  # outside Q16.16
    with pytest.raises(InvalidInputError):
        s.neighbors(0, "sideways")
    with pytest.raises(NotFoundError):
        s.delete(12345)
    with pytest.raises(NotFoundError):
        s.neighbors(999, "out")
    with pytest.raises(NotFoundError):
        s.create_edge(1, 100, 200)
    with pytest.raises(NotFoundError):
        s.set_tag(777, 1)
    assert s.get(12345) is None
    assert s.state_hash() == before, "a refused call changed the state"


def test_batches_of_every_dtype_agree(make):
    s = make(8, "cosine")
    reference = valori.EmbeddedKernel(dim=8, metric="cosine")
    rng = np.random.default_rng(5)
    for arr in [rng.standard_normal((50, 8)).astype(np.float32), rng.standard_normal((40, 8)),
                rng.integers(-5, 5, size=(3, 8)), np.asfortranarray(rng.standard_normal((7, 8)))]:
        assert s.insert_batch(arr) == reference.insert_batch(arr)
    assert s.state_hash() == reference.state_hash()
    queries = rng.standard_normal((9, 8))
    ids, dists = s.search_batch(queries, k=5)
    rids, rdists = reference.search_batch(queries, k=5)
    assert ids.shape == (9, 5)
    assert np.array_equal(ids, rids) and np.array_equal(dists, rdists)


@pytest.mark.parametrize("metric", METRICS)
def test_caller_chosen_ids_on_every_store(make, metric):
    """``insert(..., id=)``: the record is stored under that id (a 63-bit one too, as the
    agent-framework stores use), the next automatic id follows the largest used, a taken id
    raises ExistsError with nothing changed, and an id out of range raises InvalidInputError."""
    s = make(4, metric)
    big = 2**63 - 12345
    assert s.insert([1.0, 2.0, 3.0, 4.0], tag=5, metadata=b"chosen", id=big) == big
    assert s.insert([0.5, 0.5, 0.5, 0.5], id=3) == 3
    r = s.get(big)
    assert (r.id, r.tag, r.metadata) == (big, 5, b"chosen")
    assert s.search([1.0, 2.0, 3.0, 4.0], k=1)[0].id == big
    before = s.state_hash()
    with pytest.raises(valori.ExistsError):
        s.insert([9.0, 9.0, 9.0, 9.0], id=big)
    assert s.state_hash() == before and len(s) == 2
    for bad in (-1, 2**64, 2**64 - 1, 1.5, "7", True):
        with pytest.raises(InvalidInputError):
            s.insert([1.0, 1.0, 1.0, 1.0], id=bad)
    assert s.state_hash() == before and len(s) == 2
    assert s.insert([1.0, 0.0, 0.0, 0.0]) == big + 1


def test_caller_chosen_node_and_edge_ids_on_every_store(make):
    s = make(2)
    r = s.insert([1.0, 2.0])
    a = s.create_node(1, record=r, label=b"a", id=2**62 + 1)
    b = s.create_node(2, id=7)
    assert (a, b) == (2**62 + 1, 7)
    e = s.create_edge(3, a, b, weight=0.5, id=2**40)
    assert e == 2**40
    assert [(x.id, x.kind, x.source, x.target) for x in s.neighbors(a)] == [(2**40, 3, a, b)]
    before = s.state_hash()
    with pytest.raises(valori.ExistsError):
        s.create_node(1, id=7)
    with pytest.raises(valori.ExistsError):
        s.create_edge(1, b, a, id=2**40)
    with pytest.raises(InvalidInputError):
        s.create_node(1, id=-3)
    assert s.state_hash() == before
    assert s.create_node(1) == 2**62 + 2
