import math

import numpy as np
import pytest

import valori
from valori import EmbeddedKernel


def test_quickstart_api_and_results():
    k = EmbeddedKernel(max_records=10, dim=3)
    assert k.insert([1.0, 0.0, 0.0], tag=5, metadata=b"a") == 0
    assert k.insert(np.array([0.0, 1.0, 0.0], dtype=np.float32)) == 1
    assert list(k.insert_batch([[0.5, 0.5, 0.0], [0.0, 0.0, 2.0]], tags=[7, 7])) == [2, 3]
    assert len(k) == 4
    hits = k.search([1.0, 0.0, 0.0], 3)
    assert [h.id for h in hits] == [0, 2, 1]
    assert hits[0].distance == 0.0 and hits[1].distance == pytest.approx(0.5)
    assert [h.id for h in k.search([1.0, 0.0, 0.0], 10, tag=7)] == [2, 3]
    r = k.get(0)
    assert (r.id, r.tag, r.metadata) == (0, 5, b"a")
    assert r.vector.tolist() == [1.0, 0.0, 0.0]
    assert k.get(99) is None
    k.set_metadata(0, b"b")
    k.set_tag(0, None)
    assert k.get(0).metadata == b"b" and k.get(0).tag is None
    k.delete(3)
    assert len(k) == 3
    h = k.get_state_hash()
    assert isinstance(h, bytes) and len(h) == 32 and len(h.hex()) == 64
    assert h == k.state_hash()


def test_graph_and_cascade():
    k = EmbeddedKernel(dim=2)
    r = k.insert([0.5, -0.5])
    a = k.create_node(1, record=r, label=b"robot")
    b = k.create_node(2)
    c = k.create_node(2)
    e = k.create_edge(7, a, b, weight=0.25)
    k.create_edge(8, b, c)
    (edge,) = k.neighbors(a, "out")
    assert (edge.id, edge.source, edge.target, edge.weight) == (e, a, b, 0.25)
    assert len(k.neighbors(b, "both")) == 2
    assert k.traverse(a, 5) == [(1, b), (2, c)]
    assert k.traverse(a, 5, kind=7) == [(1, b)]
    k.delete(r)  # removes node a and its edge
    with pytest.raises(valori.NotFoundError):
        k.neighbors(a)
    k.delete_edge(1)
    k.delete_node(c)
    assert k.traverse(b, 3, "both") == []


def test_snapshots_and_wal_replay_give_the_same_hash():
    k = EmbeddedKernel(dim=2, metric="cosine")
    for i in range(10):
        k.insert([float(i), 1.0], tag=i % 3)
    snap = k.save_snapshot()
    other = EmbeddedKernel(dim=2, metric="cosine")
    other.restore_snapshot(snap)
    assert other.get_state_hash() == k.get_state_hash()
    bad = bytearray(snap)
    bad[10] ^= 1
    with pytest.raises(valori.CorruptError):
        other.restore_snapshot(bytes(bad))
    assert other.get_state_hash() == k.get_state_hash(), "a failed restore changed the state"
    with pytest.raises(valori.CorruptError):
        other.apply(b"\xff\xff")


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_every_single_bit_flip_of_a_snapshot_is_refused(metric):
    k = EmbeddedKernel(dim=3, metric=metric)
    for i in range(50):
        k.insert([float(i) + 1.0, -0.5 * i, 0.25], tag=i % 4, metadata=bytes([i % 256]) * (i % 3))
    a = k.create_node(kind=1, record=3, label=b"cup")
    b = k.create_node(kind=1)
    k.create_edge(2, a, b, weight=0.5)
    snap = k.save_snapshot()
    other = EmbeddedKernel(dim=3, metric=metric)
    before = other.get_state_hash()
    bad = bytearray(snap)
    refused = 0
    for bit in range(len(snap) * 8):
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(valori.CorruptError):
            other.restore_snapshot(bytes(bad))
        bad[bit // 8] ^= 1 << (bit % 8)
        refused += 1
    assert refused == len(snap) * 8
    assert other.get_state_hash() == before, "a refused restore changed the state"
    other.restore_snapshot(snap)
    assert other.get_state_hash() == k.get_state_hash()


def test_restore_keeps_the_capacity_limits():
    k = EmbeddedKernel(dim=1, max_records=2)
    k.insert([1.0])
    snap = k.save_snapshot()
    k.insert([2.0])
    k.restore_snapshot(snap)
    k.insert([3.0])
    with pytest.raises(valori.FullError):
        k.insert([4.0])


def test_full_error_changes_nothing():
    k = EmbeddedKernel(max_records=2, dim=2, max_nodes=1, max_edges=0)
    k.insert([1, 1])
    before = k.get_state_hash()
    with pytest.raises(valori.FullError):
        k.insert_batch([[1, 2], [3, 4]])
    assert k.get_state_hash() == before
    k.insert([2, 2])
    with pytest.raises(valori.FullError):
        k.insert([3, 3])
    n = k.create_node(0)
    with pytest.raises(valori.FullError):
        k.create_node(0)
    with pytest.raises(valori.FullError):
        k.create_edge(0, n, n)


@pytest.mark.parametrize(
    "bad, error",
    [
        ([1.0, 2.0], valori.DimensionError),
        ([], valori.DimensionError),
        ([[1.0, 2.0, 3.0]], valori.DimensionError),
        ([1.0, math.nan, 0.0], valori.InvalidInputError),
        ([math.inf, 0.0, 0.0], valori.InvalidInputError),
        ([-math.inf, 0.0, 0.0], valori.InvalidInputError),
        ([40000.0, 0.0, 0.0], valori.InvalidInputError),
        ([-32768.5, 0.0, 0.0], valori.InvalidInputError),
        (np.array([1, 2, 3], dtype=np.complex64), valori.InvalidInputError),
        (np.array(["a", "b", "c"]), valori.InvalidInputError),
    ],
)
def test_bad_vectors_are_refused_and_change_nothing(bad, error):
    k = EmbeddedKernel(dim=3)
    k.insert([0.0, 0.0, 1.0])
    before = k.get_state_hash()
    with pytest.raises(error):
        k.insert(bad)
    with pytest.raises(error):
        k.search(bad, 1)
    assert k.get_state_hash() == before
    assert issubclass(error, ValueError)


def test_range_edges_and_rounding():
    k = EmbeddedKernel(dim=2)
    k.insert([32767.998046875, -32768.0])  # the largest and smallest float32 accepted
    assert k.get(0).vector.tolist() == [32767.998046875, -32768.0]
    # float64 input is converted once (no detour through float32)
    k.insert(np.array([0.1, 1 / 3], dtype=np.float64))
    assert k.get(1).vector.tolist() == [round(0.1 * 65536) / 65536, round(65536 / 3) / 65536]


def test_k_zero_and_huge_k_and_empty_store():
    k = EmbeddedKernel(dim=2)
    assert k.search([0, 0], 10) == []
    ids, dists = k.search_batch(np.zeros((3, 2)), 5)
    assert ids.shape == (3, 0) and dists.shape == (3, 0)
    k.insert([1, 1])
    with pytest.raises(valori.InvalidInputError):
        k.search([0, 0], 0)
    with pytest.raises(valori.InvalidInputError):
        k.search([0, 0], -1)
    assert len(k.search([0, 0], 10**12)) == 1


def test_transposed_and_strided_arrays_are_read_as_rows():
    rng = np.random.default_rng(7)
    data = rng.standard_normal((4, 6)).astype(np.float32)
    fortran = np.asfortranarray(data)
    transposed = data.T.copy().T  # same values, Fortran order
    strided = np.repeat(data, 2, axis=1)[:, ::2]
    k1, k2, k3, k4 = (EmbeddedKernel(dim=6) for _ in range(4))
    k1.insert_batch(data)
    k2.insert_batch(fortran)
    k3.insert_batch(transposed)
    k4.insert_batch(strided)
    assert k1.get_state_hash() == k2.get_state_hash() == k3.get_state_hash() == k4.get_state_hash()
    # A transposed view is a different matrix: its rows are data's columns.
    k5 = EmbeddedKernel(dim=4)
    k5.insert_batch(data.T)
    assert np.allclose(k5.get(0).vector, data[:, 0], atol=1e-4)


def test_search_batch_matches_single_searches():
    rng = np.random.default_rng(1)
    k = EmbeddedKernel(dim=8)
    k.insert_batch(rng.standard_normal((200, 8)))
    queries = rng.standard_normal((17, 8))
    ids, dists = k.search_batch(queries, 5)
    assert ids.shape == (17, 5) and ids.dtype == np.uint64 and dists.dtype == np.float64
    for q, row_ids, row_d in zip(queries, ids, dists):
        single = k.search(q, 5)
        assert [h.id for h in single] == row_ids.tolist()
        assert [h.distance for h in single] == row_d.tolist()


def test_search_batch_can_be_interrupted():
    import signal

    rng = np.random.default_rng(2)
    k = EmbeddedKernel(dim=64)
    k.insert_batch(rng.standard_normal((20000, 64)).astype(np.float32))
    queries = rng.standard_normal((200000, 64)).astype(np.float32)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(KeyboardInterrupt):
            k.search_batch(queries, 10)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_error_hierarchy():
    classes = [valori.InternalError, valori.MisuseError, valori.InvalidInputError, valori.DimensionError,
               valori.FullError, valori.NotFoundError, valori.ExistsError, valori.CorruptError,
               valori.BusyError, valori.ValoriIOError, valori.PoisonedError]
    assert issubclass(valori.Error, Exception)
    for c in classes:
        assert issubclass(c, valori.Error)
    assert {c.code for c in classes} == {"Internal", "Misuse", "InvalidInput", "Dimension", "Full", "NotFound",
                                         "Exists", "Corrupt", "Busy", "Io", "Poisoned"}
    assert issubclass(valori.ValoriIOError, OSError)
    with pytest.raises(valori.InvalidInputError):
        EmbeddedKernel(dim=2, metric="manhattan")
    with pytest.raises(valori.InvalidInputError):
        EmbeddedKernel(dim=0)
