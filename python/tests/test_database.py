import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import valori
from valori import Database


def test_persistence_and_every_method(tmp_path):
    path = tmp_path / "db"
    with Database(path, dim=3) as db:
        assert db.insert([1, 0, 0], tag=1, metadata=b"cup") == 0
        assert list(db.insert_batch(np.eye(3, dtype=np.float32)[1:], tags=[2, 3])) == [1, 2]
        a = db.create_node(1, record=0, label=b"robot")
        b = db.create_node(1)
        e = db.create_edge(5, a, b, weight=-1.5)
        assert db.neighbors(a)[0].weight == -1.5
        assert db.traverse(a, 2) == [(1, b)]
        db.set_metadata(1, b"plate")
        db.set_tag(1, None)
        db.delete_edge(e)
        db.delete_node(b)
        db.delete(2)
        assert [h.id for h in db.search([1, 0, 0], 5)] == [0, 1]
        ids, dists = db.search_batch([[1, 0, 0], [0, 1, 0]], 2)
        assert ids.tolist() == [[0, 1], [1, 0]]
        db.checkpoint()
        db.insert([0, 0, 1])
        db.flush()
        h = db.state_hash()
        assert len(db) == 3
    assert db.closed
    with pytest.raises(valori.MisuseError):
        db.insert([1, 1, 1])
    with Database(path) as again:
        assert again.dim == 3
        assert again.state_hash() == h
        assert again.get(1).metadata == b"plate" and again.get(1).tag is None
        ex = again.export_wal()
        assert ex.base_seq == 10 and len(ex.commands) == 1
        assert valori.replay(ex.base_state, ex.commands) == h == ex.state_hash
        k = valori.EmbeddedKernel(dim=3)
        assert k.restore_from_wal(ex) == 1
        assert k.get_state_hash() == h
        # The export's hash is checked: a wrong one is refused and nothing changes.
        empty = valori.EmbeddedKernel(dim=3).get_state_hash()
        k2 = valori.EmbeddedKernel(dim=3)
        with pytest.raises(valori.CorruptError):
            k2.restore_from_wal(ex._replace(state_hash=bytes(32)))
        with pytest.raises(valori.CorruptError):
            k2.restore_from_wal(ex._replace(commands=[]))
        assert k2.get_state_hash() == empty
        # Commands alone apply to the current state, checked against an expected hash.
        k3 = valori.EmbeddedKernel(dim=3)
        k3.restore_from_wal(ex)
        with pytest.raises(valori.CorruptError):
            k3.restore_from_wal(ex.commands, expected_hash=h)  # applying them twice
        assert k3.get_state_hash() == h, "a refused replay changed the state"


def test_second_database_on_the_same_path_is_busy(tmp_path):
    with Database(tmp_path / "db", dim=2):
        with pytest.raises(valori.BusyError):
            Database(tmp_path / "db")
    Database(tmp_path / "db").close()


def test_open_errors(tmp_path):
    with pytest.raises(valori.NotFoundError):
        Database(tmp_path / "nothing-here")  # no dimension to create it
    Database(tmp_path / "db", dim=4, metric="ip").close()
    with pytest.raises(valori.InvalidInputError):
        Database(tmp_path / "db", dim=5)
    with pytest.raises(valori.ValoriIOError):
        Database("/proc/valori-cannot-create-here", dim=2)
    with pytest.raises(valori.InvalidInputError):
        Database(tmp_path / "x", dim=2, durability="sometimes")
    (tmp_path / "db" / "snap-00000000000000000000.vsnap").write_bytes(b"garbage")
    with pytest.raises(valori.CorruptError):
        Database(tmp_path / "db")


CHILD = textwrap.dedent(
    """
    import sys, valori
    db = valori.Database(sys.argv[1], dim=4)
    i = len(db)
    while True:
        db.insert([float(i), 1.0, -1.0, 0.5])
        print(i, flush=True)   # acknowledged: durable before insert returned
        i += 1
    """
)


def test_crash_recovery_after_sigkill(tmp_path):
    path = str(tmp_path / "db")
    acked = 0
    for cycle in range(3):
        child = subprocess.Popen([sys.executable, "-c", CHILD, path], stdout=subprocess.PIPE, text=True)
        for _ in range(200):
            line = child.stdout.readline()
            acked = max(acked, int(line) + 1)
        os.kill(child.pid, signal.SIGKILL)
        for line in child.stdout:
            acked = max(acked, int(line) + 1)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        with Database(path) as db:
            n = len(db)
            assert n >= acked, f"cycle {cycle}: {acked - n} acknowledged inserts lost"
            for i in range(0, acked, 37):
                assert db.get(i).vector.tolist() == [float(i), 1.0, -1.0, 0.5]


def test_eight_threads_of_mixed_operations_equal_a_serial_replay(tmp_path):
    db = Database(tmp_path / "db", dim=8, durability="group")
    errors = []

    def worker(t):
        rng = np.random.default_rng(t)
        mine = []
        try:
            for i in range(2000):
                op = rng.integers(0, 10)
                if op < 6 or not mine:
                    mine.append(db.insert(rng.standard_normal(8).astype(np.float32), tag=t))
                elif op < 8:
                    db.search(rng.standard_normal(8), 5, tag=t)
                elif op < 9:
                    db.delete(mine.pop(int(rng.integers(0, len(mine)))))
                else:
                    db.set_tag(mine[-1], t + 100)
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    final = db.state_hash()
    ex = db.export_wal()
    # The log is the serial order the engine chose; replaying it alone gives the same state.
    assert valori.replay(ex.base_state, ex.commands) == final
    db.close()
    with Database(tmp_path / "db") as again:
        assert again.state_hash() == final


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_reopen_without_a_metric_takes_the_stored_one(tmp_path, metric):
    path = tmp_path / "db"
    with Database(path, dim=2, metric=metric) as db:
        db.insert([3.0, 4.0])
        h = db.state_hash()
    with Database(path) as again:  # metric=None: the database's own
        assert again.metric == metric and again.dim == 2
        assert again.state_hash() == h
    with Database(path, metric=metric) as same:
        assert same.state_hash() == h
    other = "cosine" if metric == "l2" else "l2"
    with pytest.raises(valori.InvalidInputError) as refused:
        Database(path, metric=other)
    message = str(refused.value)
    assert f"the database uses the {metric} metric, the options say {other}" in message
    for debug in ("Some(", "Cosine", "InnerProduct", "L2"):
        assert debug not in message


def test_created_without_a_metric_is_l2(tmp_path):
    Database(tmp_path / "db", dim=2).close()
    with Database(tmp_path / "db", metric="l2") as db:
        assert db.metric == "l2"
    with pytest.raises(valori.InvalidInputError, match="uses the l2 metric"):
        Database(tmp_path / "db", metric="ip")


def test_messages_name_the_python_api(tmp_path):
    with pytest.raises(valori.NotFoundError) as missing:
        Database(tmp_path / "nothing-here")
    assert "open with dim=... to create one" in str(missing.value)
    assert "Options" not in str(missing.value)
    Database(tmp_path / "db", dim=2).close()
    (tmp_path / "db" / "snap-00000000000000000000.vsnap").write_bytes(b"garbage")
    with pytest.raises(valori.CorruptError) as damaged:
        Database(tmp_path / "db")
    message = str(damaged.value)
    assert "is damaged" in message and "open with salvage=True to read the intact prefix" in message
    assert "Options" not in message and "salvage()" not in message


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_a_zero_filled_tail_is_cut_off_and_reported(tmp_path, metric):
    path = tmp_path / "db"
    with Database(path, dim=2, metric=metric) as db:
        for i in range(3):
            db.insert([1.0 + i, 2.0])
        h = db.state_hash()
        assert db.recovery_report.torn_tail is None
    wal = sorted(path.glob("wal-*.log"))[-1]
    size = wal.stat().st_size
    with open(wal, "ab") as f:
        f.write(b"\0" * 4096)  # what a power cut can leave: the size reached the disk, the data did not
    with Database(path) as db:
        r = db.recovery_report
        assert (r.replayed, r.seq) == (3, 3)
        assert r.torn_tail == valori.TornTail(str(wal), size, 4096, r.torn_tail.reason)
        assert "magic" in r.torn_tail.reason
        assert db.state_hash() == h
    assert wal.stat().st_size == size


def test_damage_followed_by_a_record_is_corrupt(tmp_path):
    path = tmp_path / "db"
    with Database(path, dim=2) as db:
        for i in range(3):
            db.insert([1.0 + i, 2.0])
    wal = sorted(path.glob("wal-*.log"))[-1]
    data = bytearray(wal.read_bytes())
    data[64 + 30] ^= 0xFF  # inside the first record; two valid records follow
    wal.write_bytes(bytes(data))
    with pytest.raises(valori.CorruptError, match="salvage=True"):
        Database(path)


def test_a_batch_over_the_record_limit_is_refused_and_the_database_reopens(tmp_path):
    path = tmp_path / "db"
    with Database(path, dim=1024) as db:
        db.insert_batch(np.ones((2, 1024), dtype=np.float32))
        h = db.state_hash()
        big = np.zeros((270_000, 1024), dtype=np.float32)  # 1.1 GB
        with pytest.raises(valori.InvalidInputError, match="limit"):
            db.insert_batch(big)
        del big
        assert db.state_hash() == h and len(db) == 2
    with Database(path) as db:
        assert db.state_hash() == h
