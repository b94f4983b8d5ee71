"""Replication through NATS JetStream between valori-node processes (docs/REPLICATION.md): a
leader (``--replicate``) and two followers (``--follow``), each its own process, reach the same
state hash at the same sequence number on every metric; followers refuse writes; after the
leader is killed (-9) a follower is promoted, and the old leader, restarted, is refused.

A ``nats-server`` (2.9, JetStream) runs on a loopback port this test picks and is stopped after
it; ``.ci/run`` installs it (``$NATS_SERVER`` names another binary)."""
import os
import socket
import subprocess
import time

import numpy as np
import pytest

import valori
from conftest import NodeServer, node_binary

NATS = os.environ.get("NATS_SERVER", "nats-server")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nats:
    def __init__(self, store) -> None:
        self.port = _port()
        self.proc = subprocess.Popen([NATS, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"nats://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not start"
                assert self.proc.poll() is None, "nats-server exited"
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture
def nats(tmp_path):
    n = Nats(tmp_path / "nats")
    yield n
    n.stop()


def _until(what, f, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if f():
                return
        except valori.NotFoundError:
            pass  # a follower has not found the database on the stream yet
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_a_leader_and_two_follower_processes_hash_the_same(nats, tmp_path, metric):
    leader = NodeServer("--replicate", nats.url, "--durability", "stream")
    f1 = NodeServer("--follow", nats.url)
    f2 = None
    try:
        c = valori.KernelClient(leader.url, "robot", dim=16, metric=metric)
        rng = np.random.default_rng(7)
        c.insert_batch(rng.standard_normal((300, 16)).astype(np.float32), tags=range(300))
        f2 = NodeServer("--follow", nats.url)  # later: from the snapshot, then the stream
        for i in range(20):
            c.insert(rng.standard_normal(16).astype(np.float32), tag=i % 3, metadata=b"m%d" % i)
        a, b = c.create_node(1, label=b"robot"), c.create_node(2, label=b"dock")
        c.create_edge(7, a, b, 0.5)
        c.delete(3)
        c.set_tag(4, 9)
        want = (c.sequence(), c.state_hash())
        status = c.replication()
        assert status["role"] == "leader" and status["published"] == want[0], status
        for f in (f1, f2):
            _until("the follower to catch up", lambda: valori.KernelClient(f.url, "robot").sequence() >= want[0])
            fc = valori.KernelClient(f.url, "robot")
            assert (fc.sequence(), fc.state_hash()) == want
            s = fc.replication()
            assert s["role"] == "follower" and s["state_hash"] == want[1].hex() and "error" not in s, s
            q = rng.standard_normal(16).astype(np.float32)
            assert fc.search(q, 5) == c.search(q, 5)
            with pytest.raises(valori.MisuseError, match="follower"):
                fc.insert(q)
            with pytest.raises(valori.MisuseError, match="follows a stream"):
                valori.KernelClient(f.url, "elsewhere", dim=4)
            assert (fc.sequence(), fc.state_hash()) == want
    finally:
        for s in (leader, f1, f2):
            if s is not None:
                s.stop()


def test_a_promoted_follower_leads_and_the_old_leader_is_refused(nats, tmp_path):
    old = NodeServer("--replicate", nats.url, "--durability", "stream", data=str(tmp_path / "old"))
    follower = NodeServer("--follow", nats.url, data=str(tmp_path / "f"))
    try:
        c = valori.KernelClient(old.url, "memory", dim=8)
        for i in range(10):
            c.insert(np.full(8, i, dtype=np.float32))
        acked = (c.sequence(), c.state_hash())
        _until("the follower", lambda: valori.KernelClient(follower.url, "memory").sequence() >= acked[0])
        old.kill()  # kill -9: everything it acknowledged is on the stream (--durability stream)
        assert follower.stop() == 0
        # Promote: the follower's directory served as a leader.
        new = NodeServer("--replicate", nats.url, "--durability", "stream", data=str(tmp_path / "f"))
        try:
            n = valori.KernelClient(new.url, "memory")
            assert (n.sequence(), n.state_hash()) == acked
            n.insert(np.full(8, 100, dtype=np.float32))
            assert n.replication()["published"] == acked[0] + 1
            # The old leader comes back: the stream has a record it does not have.
            p = subprocess.run([node_binary(), "--data", str(tmp_path / "old"), "--listen", "127.0.0.1:0",
                                "--replicate", nats.url], capture_output=True, text=True, timeout=60)
            assert p.returncode != 0
            assert "fenced off" in p.stderr and "another leader" in p.stderr, p.stderr
            # A new follower sees the new leader's history only.
            g = NodeServer("--follow", nats.url, data=str(tmp_path / "g"))
            try:
                _until("the new follower", lambda: valori.KernelClient(g.url, "memory").sequence() >= acked[0] + 1)
                assert valori.KernelClient(g.url, "memory").state_hash() == n.state_hash()
            finally:
                g.stop()
        finally:
            new.stop()
    finally:
        old.stop() if old.proc.poll() is None else None


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_a_database_follows_in_process_and_hashes_the_same(nats, tmp_path, metric):
    """``Database.follow``: a follower inside this process (no server of its own) reaches the
    leader's state hash, refuses writes, reopens where it stopped, and tells its position."""
    leader = NodeServer("--replicate", nats.url, "--durability", "stream")
    try:
        c = valori.KernelClient(leader.url, "robot", dim=16, metric=metric)
        rng = np.random.default_rng(11)
        c.insert_batch(rng.standard_normal((200, 16)).astype(np.float32), tags=range(200))
        c.delete(5)
        a, b = c.create_node(1, label=b"robot"), c.create_node(2, label=b"dock")
        c.create_edge(7, a, b, 0.5)
        want = (c.sequence(), c.state_hash())
        f = valori.Database.follow(nats.url, "robot", str(tmp_path / "f"))
        try:
            assert f.wait_applied(want[0], timeout=60)
            assert (f.sequence(), f.state_hash()) == want
            assert (f.dim, f.metric) == (16, metric)
            q = rng.standard_normal(16).astype(np.float32)
            assert f.search(q, 5) == c.search(q, 5)
            r = f.replication()
            assert r["role"] == "follower" and r["sequence"] == want[0] and r["error"] is None, r
            assert r["state_hash"] == want[1].hex()
            with pytest.raises(valori.MisuseError, match="read-only"):
                f.insert(q)
        finally:
            f.close()
        with pytest.raises(valori.MisuseError, match="closed"):
            f.sequence()
        # More records while it is closed; reopened, it takes them from the stream.
        c.insert(rng.standard_normal(16).astype(np.float32), tag=1)
        want = (c.sequence(), c.state_hash())
        with valori.Database.follow(nats.url, "robot", str(tmp_path / "f")) as f:
            assert f.wait_applied(want[0], timeout=60)
            assert (f.sequence(), f.state_hash()) == want
        # A database that follows nothing says so.
        with valori.Database(str(tmp_path / "plain"), dim=4) as d:
            assert d.replication()["role"] == "none"
            with pytest.raises(valori.MisuseError, match="follows no stream"):
                d.wait_applied(1, 0.1)
        # A database the stream does not have is a clear error.
        with pytest.raises(valori.NotFoundError, match="no snapshot of database .nowhere."):
            valori.Database.follow(nats.url, "nowhere", str(tmp_path / "n"))
    finally:
        leader.stop()
