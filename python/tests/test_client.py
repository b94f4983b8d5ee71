"""KernelClient against a spawned valori-node: the seed's snippet, the default database, API
keys, limits, export and snapshots, operations endpoints, shutdown and kill -9."""

import json
import os
import subprocess
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

import valori
from conftest import NodeServer, node_binary
from valori import (DimensionError, ForbiddenError, InvalidInputError, KernelClient, NotFoundError,
                    UnauthorizedError)
from valori import _native


def http(url, method="GET", body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def test_seed_snippet_on_an_empty_server():
    server = NodeServer()
    try:
        client = KernelClient(url=server.url)
        assert client.dim is None  # the default database does not exist yet
        with pytest.raises(NotFoundError):
            len(client)
        first = client.insert([0.1, 0.2, 0.3, 0.4])
        client.insert([0.2, 0.1, 0.4, 0.3])
        results = client.search([0.15, 0.25, 0.3, 0.4], k=5)
        assert [r.id for r in results] == [first, first + 1]
        assert client.dim == 4 and client.metric == "l2"
        local = valori.EmbeddedKernel(dim=4)
        local.insert([0.1, 0.2, 0.3, 0.4])
        local.insert([0.2, 0.1, 0.4, 0.3])
        assert client.get_state_hash() == local.get_state_hash()
        with pytest.raises(DimensionError):
            client.insert([1.0, 2.0])
        # A named database that does not exist is not created without dim.
        with pytest.raises(NotFoundError):
            KernelClient(url=server.url, database="other")
        with pytest.raises(InvalidInputError):
            KernelClient(url=server.url, database="default", dim=5)
        with pytest.raises(InvalidInputError):
            KernelClient(url=server.url, database="Bad/Name", dim=5)
    finally:
        assert server.stop() == 0


def test_every_error_code_maps_to_its_exception():
    from valori.client import _python_code
    for value, name, _ in _native.error_codes():
        http_code = "".join("_" + c if c.isupper() and i else c for i, c in enumerate(name)).upper()
        assert valori.errors.error_class(_python_code(http_code)).code == name


def test_api_keys(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# test keys\nread-write rw-0123456789abcdef\nread-only ro-0123456789abcdef\n")
    server = NodeServer("--api-key-file", str(keys))
    try:
        with pytest.raises(UnauthorizedError):
            KernelClient(url=server.url, database="k", dim=2)
        with pytest.raises(UnauthorizedError):
            KernelClient(url=server.url, database="k", dim=2, api_key="rw-0123456789abcdeX")
        rw = KernelClient(url=server.url, database="k", dim=2, api_key="rw-0123456789abcdef")
        rw.insert([1.0, 2.0])
        ro = KernelClient(url=server.url, database="k", api_key="ro-0123456789abcdef")
        assert [h.id for h in ro.search([1.0, 2.0], k=1)] == [0]
        assert ro.search_batch(np.array([[1.0, 2.0]]), k=1)[0].tolist() == [[0]]
        with pytest.raises(ForbiddenError):
            ro.insert([3.0, 4.0])
        with pytest.raises(ForbiddenError):
            ro.checkpoint()
        assert len(rw) == 1
        # Health and the schema are open; metrics are not.
        assert http(server.url + "/healthz")[0] == 200
        assert http(server.url + "/openapi.json")[0] == 200
        status, body, _ = http(server.url + "/metrics")
        assert status == 401 and json.loads(body)["code"] == "UNAUTHORIZED"
        status, body, _ = http(server.url + "/metrics", headers={"Authorization": "Bearer ro-0123456789abcdef"})
        assert status == 200 and b"valori_records" in body
    finally:
        assert server.stop() == 0


def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server = NodeServer("--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        c = KernelClient(url=server.url, database="tls", dim=2, ca_file=str(cert))
        c.insert([1.0, 2.0])
        assert [h.id for h in c.search([1.0, 2.0], k=1)] == [0]
        # An unverified certificate is refused; plain HTTP gets no answer.
        with pytest.raises(valori.ValoriIOError, match="CERTIFICATE_VERIFY_FAILED"):
            KernelClient(url=server.url, database="tls")
        with pytest.raises(valori.ValoriIOError):
            KernelClient(url=server.url.replace("https", "http"), database="tls", retries=0)
    finally:
        assert server.stop() == 0


def test_no_key_no_public_address(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALORI_")}
    run = subprocess.run([node_binary(), "--data", str(tmp_path), "--listen", "0.0.0.0:0"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert run.returncode != 0
    assert "refusing to listen on 0.0.0.0:0 without an API key" in run.stderr
    short = tmp_path / "short"
    short.write_text("tooshort\n")
    run = subprocess.run([node_binary(), "--data", str(tmp_path), "--listen", "127.0.0.1:0",
                          "--api-key-file", str(short)], capture_output=True, text=True, timeout=30, env=env)
    assert run.returncode != 0 and "at least 16 characters" in run.stderr


def test_limits_answer_4xx_with_the_error_shape():
    server = NodeServer("--max-k", "50", "--max-batch", "10", "--max-body-bytes", "4096")
    try:
        c = KernelClient(url=server.url, database="lim", dim=4)
        c.insert_batch(np.ones((10, 4), dtype=np.float32))
        with pytest.raises(InvalidInputError, match="--max-batch"):
            c.insert_batch(np.ones((11, 4), dtype=np.float32))
        # k over the limit is fine while the answer is not (10 records), as in process...
        assert len(c.search([1.0, 1.0, 1.0, 1.0], k=10**6)) == 10
        for _ in range(5):
            c.insert_batch(np.ones((10, 4), dtype=np.float32))
        # ... and refused once it would be.
        with pytest.raises(InvalidInputError, match="--max-k"):
            c.search([1.0, 1.0, 1.0, 1.0], k=51)
        assert len(c.search([1.0, 1.0, 1.0, 1.0], k=50)) == 50
        status, body, _ = http(server.url + "/v1/databases/lim/records/batch?dtype=f32", "POST",
                               b"\0" * 8192, {"Content-Type": "application/octet-stream"})
        assert status == 413 and json.loads(body)["code"] == "INVALID_INPUT"
        for method, path, data, ctype in [
            ("POST", "/v1/databases/lim/records", b"{not json", "application/json"),
            ("POST", "/v1/databases/lim/records", b'{"vector": [1, 2, 3, 4], "extra": 1}', "application/json"),
            ("POST", "/v1/databases/lim/search", b'{"vector": [1, 2, 3, 4], "k": -1}', "application/json"),
            ("POST", "/v1/databases/lim/records/batch", b"[]", "text/plain"),
            ("GET", "/v1/databases/lim/records/notanumber", None, None),
            ("GET", "/v1/databases/lim/nodes/1/traverse?hops=-1", None, None),
        ]:
            status, body, _ = http(server.url + path, method, data, {"Content-Type": ctype} if ctype else {})
            err = json.loads(body)
            assert 400 <= status < 500 and err["code"] == "INVALID_INPUT", (path, status, err)
        status, body, _ = http(server.url + "/v1/nope")
        assert status == 404 and json.loads(body)["code"] == "NOT_FOUND"
        assert len(c) == 60, "a refused request changed the database"
    finally:
        assert server.stop() == 0


def test_export_and_snapshot_rebuild_the_same_state(node):
    c = KernelClient(url=node.url, database="exp", dim=3, metric="cosine")
    try:
        c.insert_batch(np.arange(30, dtype=np.float64).reshape(10, 3) + 1)
        c.checkpoint()
        c.insert([0.5, 0.25, 1.0], tag=4)
        e = c.export_wal()
        assert e.base_seq == 1 and len(e.commands) == 1
        k = valori.EmbeddedKernel(dim=3, metric="cosine")
        assert k.restore_from_wal(e) == 1
        assert k.get_state_hash() == c.get_state_hash()
        snap = c.save_snapshot()
        k2 = valori.EmbeddedKernel(dim=3, metric="cosine")
        k2.restore_snapshot(snap)
        assert k2.get_state_hash() == c.get_state_hash()
        status, body, headers = http(f"{node.url}/v1/databases/exp/wal?after=1")
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
        assert [line["seq"] for line in lines] == [2]
        status, body, _ = http(f"{node.url}/v1/databases/exp/wal?after=0")
        assert status == 404 and b"/export" in body
    finally:
        c.drop()


def test_operations_endpoints(node):
    c = KernelClient(url=node.url, database="ops", dim=2)
    try:
        c.insert([1.0, 1.0])
        assert http(node.url + "/healthz")[0] == 200
        assert http(node.url + "/readyz")[0] == 200
        status, body, headers = http(node.url + "/metrics")
        text = body.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert 'valori_records{database="ops"} 1' in text
        assert 'valori_http_requests_total{method="POST",route="/v1/databases/{db}/records",status="201"}' in text
        assert 'valori_wal_fsync_seconds_count{database="ops"}' in text
        spec = json.loads(http(node.url + "/openapi.json")[1])
        assert spec["openapi"].startswith("3.1")
        assert "/v1/databases/{db}/search/batch" in spec["paths"]
    finally:
        c.drop()


def test_a_restarted_server_is_reached_again_by_the_same_client(tmp_path):
    data = str(tmp_path / "data")
    server = NodeServer(data=data)
    port = server.url.rsplit(":", 1)[1]
    c = KernelClient(url=server.url, database="again", dim=2)
    c.insert([1.0, 1.0])
    assert server.stop() == 0
    with pytest.raises(valori.ValoriIOError):
        c.insert([2.0, 2.0])  # nobody listens: a clear I/O error, not a hang
    again = NodeServer("--listen", f"127.0.0.1:{port}", data=data)
    try:
        # The kept-alive connection died with the old server: writes (never retried) and reads
        # go out on a new one.
        c.insert([3.0, 3.0])
        assert len(c) == 2 and [h.id for h in c.search([3.0, 3.0], k=1)] == [1]
    finally:
        assert again.stop() == 0


def test_sigterm_drains_flushes_and_reopens(tmp_path):
    data = str(tmp_path / "data")
    server = NodeServer("--durability", "none", data=data, env={"RUST_LOG": "info"})
    c = KernelClient(url=server.url, database="keep", dim=2)
    ids = c.insert_batch(np.arange(200, dtype=np.float32).reshape(100, 2))
    h = c.state_hash()
    assert server.stop() == 0
    log = server.proc.stderr.read()
    # The drain, then every database flushed and closed (a page-cache-only test could not
    # tell; the log says it happened).
    assert "shutting down" in log and "closed database=keep" in log and "every database flushed" in log, log
    again = NodeServer(data=data)
    try:
        c = KernelClient(url=again.url, database="keep")
        assert len(c) == len(ids) and c.state_hash() == h
    finally:
        assert again.stop() == 0


def test_kill9_loses_no_acknowledged_write(tmp_path):
    """8 clients write while the server is killed with SIGKILL: every write answered 2xx is
    there after a restart, and the state equals an in-process replay of the exported log."""
    data = str(tmp_path / "data")
    server = NodeServer("--durability", "group", data=data)
    KernelClient(url=server.url, database="crash", dim=4).insert([0.0, 0.0, 0.0, 0.0])
    acked = [[] for _ in range(8)]
    started = threading.Barrier(9)

    def writer(i):
        c = KernelClient(url=server.url, database="crash", retries=0)
        started.wait()
        n = 0
        while True:
            try:
                rid = c.insert([float(i), float(n % 97), 1.0, 2.0], tag=i, metadata=f"{i}:{n}".encode())
            except valori.Error:
                return
            acked[i].append((rid, f"{i}:{n}".encode()))
            n += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    started.wait()
    while sum(map(len, acked)) < 400:
        threading.Event().wait(0.01)
    server.kill()
    for t in threads:
        t.join(30)
    again = NodeServer(data=data)
    try:
        c = KernelClient(url=again.url, database="crash")
        total = sum(map(len, acked))
        assert total >= 400
        for per in acked:
            for rid, meta in per:
                r = c.get(rid)
                assert r is not None and r.metadata == meta, f"acknowledged write {rid} lost"
        k = valori.EmbeddedKernel(dim=4)
        k.restore_from_wal(c.export_wal())
        assert k.get_state_hash() == c.get_state_hash()
        assert len(c) >= total + 1
    finally:
        assert again.stop() == 0
