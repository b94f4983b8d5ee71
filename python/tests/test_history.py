"""History and time travel through Python: every metric's past states keep their hashes, the
log names every command, tags pin points, checkout writes a past state as a new database,
and retention decides what stays reachable."""

import numpy as np
import pytest

import valori
from valori import InvalidInputError, NotFoundError

METRICS = ["l2", "ip", "cosine"]


def build(path, metric, retain):
    db = valori.Database(str(path), dim=3, metric=metric, retain_snapshots=retain)
    hashes = [db.state_hash()]
    rng = np.random.default_rng(7)
    for i in range(8):
        if i == 5:
            db.delete(1)
        else:
            db.insert(rng.standard_normal(3).astype(np.float32), tag=i % 2, metadata=b"m%d" % i)
        hashes.append(db.state_hash())
        if i in (2, 5):
            db.checkpoint()
    return db, hashes


@pytest.mark.parametrize("metric", METRICS)
def test_every_retained_state_has_its_hash(tmp_path, metric):
    db, hashes = build(tmp_path / "db", metric, retain=10)
    assert db.sequence() == 8
    for seq, want in enumerate(hashes):
        assert db.state_hash_at(seq) == want
    with pytest.raises(NotFoundError, match="not retained"):
        db.state_hash_at(9)
    log = db.history()
    assert [e.seq for e in log] == list(range(1, 9))
    assert [e.kind for e in log] == ["insert"] * 5 + ["delete"] + ["insert"] * 2
    assert all(len(e.chain) == 32 for e in log)
    assert len({e.chain for e in log}) == 8
    assert [e.seq for e in db.history(from_seq=4, limit=2)] == [4, 5]
    db.close()


@pytest.fixture(params=["database", "client"])
def opener(request, tmp_path):
    """Opens a store of each kind by name: a Database in a directory, or a database on the
    test server (``KernelClient``). Every store opened is closed (and dropped) at the end."""
    opened = []

    def open_store(name, metric=None, retain=1):
        if request.param == "database":
            store = valori.Database(name if "/" in name else str(tmp_path / name), **({} if metric is None else
                                    {"dim": 3, "metric": metric, "retain_snapshots": retain}))
        else:
            node = request.getfixturevalue("node")
            unique = name if name.startswith("h-") else f"h-{name}-{request.node.callspec.id}"
            store = valori.KernelClient(url=node.url, database=unique,
                                        **({} if metric is None else {"dim": 3, "metric": metric}))
            if metric is not None:
                store.set_retention(retain)
        opened.append(store)
        return store

    open_store.kind = request.param
    open_store.checkout_name = lambda store, name: (
        str(tmp_path / name) if request.param == "database" else store.database + "-" + name)
    yield open_store
    for store in opened:
        if isinstance(store, valori.KernelClient):
            try:
                store.drop()
            except NotFoundError:
                pass
        store.close()


@pytest.mark.parametrize("metric", METRICS)
def test_checkout_and_tags(opener, metric):
    """The same through Database and KernelClient: tags pin points against retention, a
    checkout is a new database holding the past state, bad names and missing tags are
    refused, and a fresh database's recovery report is empty."""
    db = opener("db", metric, retain=1)
    assert db.recovery_report == valori.RecoveryReport(0, 0, 0, None)
    hashes = [db.state_hash()]
    rng = np.random.default_rng(7)
    for i in range(8):
        if i == 5:
            db.delete(1)
        else:
            db.insert(rng.standard_normal(3).astype(np.float32), tag=i % 2, metadata=b"m%d" % i)
        hashes.append(db.state_hash())
        if i in (2, 5):
            db.checkpoint()
    # Retention of one snapshot: only the newest (at 6) and the log after it.
    with pytest.raises(NotFoundError):
        db.state_hash_at(5)
    assert db.state_hash_at(7) == hashes[7]
    db.tag_history("keep", 7)
    db.tag_history("head")
    assert db.history_tags() == {"keep": 7, "head": 8}
    db.insert([0.1, 0.2, 0.3])
    db.checkpoint()
    assert db.state_hash_at(7) == hashes[7]  # pinned by the tag
    out = opener.checkout_name(db, "at7")
    assert db.checkout(7, out) == hashes[7]
    with pytest.raises(InvalidInputError, match="already holds a database"):
        db.checkout(7, out)
    copy = opener(out)
    assert copy.state_hash() == hashes[7]
    assert copy.sequence() == 7
    assert copy.metric == metric
    with pytest.raises(InvalidInputError, match="tag name"):
        db.tag_history("no spaces", 7)
    with pytest.raises(NotFoundError, match="not retained"):
        db.tag_history("gone", 2)
    db.untag_history("keep")
    with pytest.raises(NotFoundError, match="no tag"):
        db.untag_history("keep")
    assert db.history_tags() == {"head": 8}
    # Without the tags, the next checkpoint lets 7 go ("head" alone pins the snapshot at 6).
    db.untag_history("head")
    db.insert([0.3, 0.2, 0.1])
    db.checkpoint()
    with pytest.raises(NotFoundError):
        db.state_hash_at(7)
    with pytest.raises(InvalidInputError, match="retain_snapshots"):
        db.set_retention(0)


def test_retention_argument_is_checked(tmp_path):
    for bad in (0, -1, 2**32, 1.5, True, "3"):
        with pytest.raises(InvalidInputError, match="retain_snapshots"):
            valori.Database(str(tmp_path / "x"), dim=2, retain_snapshots=bad)
    db = valori.Database(str(tmp_path / "y"), dim=2)
    db.set_retention(5)
    db.insert([1.0, 2.0])
    db.checkpoint()
    db.insert([2.0, 1.0])
    db.checkpoint()
    assert db.state_hash_at(1) is not None
    db.close()


@pytest.mark.parametrize("metric", METRICS)
def test_time_retention_keeps_young_snapshots(tmp_path, metric):
    for bad in (-1, 1.5, True, "60"):
        with pytest.raises(InvalidInputError, match="retain_seconds"):
            valori.Database(str(tmp_path / "bad"), dim=2, retain_seconds=bad)
    db = valori.Database(str(tmp_path / "db"), dim=2, metric=metric, retain_seconds=3600)
    first = db.state_hash()
    for i in range(3):
        db.insert([float(i), 1.0])
        db.checkpoint()
    assert db.state_hash_at(0) == first  # every snapshot is younger than an hour
    db.set_retention(1, seconds=None)
    db.insert([5.0, 5.0])
    db.checkpoint()
    with pytest.raises(NotFoundError):
        db.state_hash_at(0)
    with pytest.raises(InvalidInputError, match="retain_seconds"):
        db.set_retention(1, seconds=-5)
    db.close()


@pytest.mark.parametrize("metric", METRICS)
def test_history_is_the_same_through_the_server(tmp_path, node, metric):
    """Database and KernelClient give the same history and past hashes for the same
    commands (the server keeps its default retention: no checkpoint here, so every state
    since the start is in the log)."""
    local = valori.Database(str(tmp_path / "local"), dim=3, metric=metric)
    remote = valori.KernelClient(url=node.url, database=f"hist-{metric}", dim=3, metric=metric)
    hashes = []
    try:
        for store in (local, remote):
            rng = np.random.default_rng(3)
            seen = [store.state_hash()]
            for i in range(5):
                store.insert(rng.standard_normal(3).astype(np.float32), tag=i)
                seen.append(store.state_hash())
            store.delete(2)
            seen.append(store.state_hash())
            hashes.append(seen)
        assert hashes[0] == hashes[1]
        assert local.sequence() == remote.sequence() == 6
        assert local.history() == remote.history()
        assert [e.kind for e in remote.history(from_seq=5, limit=2)] == ["insert", "delete"]
        for seq, want in enumerate(hashes[0]):
            assert remote.state_hash_at(seq) == local.state_hash_at(seq) == want
        with pytest.raises(NotFoundError):
            remote.state_hash_at(7)
        with pytest.raises(InvalidInputError, match="10000"):
            remote.history(limit=10001)
    finally:
        remote.drop()
        remote.close()
        local.close()
