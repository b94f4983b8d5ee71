import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The golden-script command encoder (docs/FORMAT.md §5) shared with the firmware generator.
sys.path.insert(0, str(ROOT / "scripts"))


def node_binary() -> str:
    """The valori-node binary: $VALORI_NODE_BIN, else the newest cargo build of it."""
    env = os.environ.get("VALORI_NODE_BIN")
    if env:
        return env
    builds = [p for p in (ROOT / "target/release/valori-node", ROOT / "target/debug/valori-node") if p.exists()]
    if not builds:
        raise RuntimeError("no valori-node binary: run `cargo build --release -p valori-node` "
                           "or set VALORI_NODE_BIN")
    return str(max(builds, key=lambda p: p.stat().st_mtime))


class NodeServer:
    """A valori-node on 127.0.0.1 and a port it picked, over a temporary data directory."""

    def __init__(self, *args: str, env: dict = None, data: str = None) -> None:
        self.tmp = None if data else tempfile.TemporaryDirectory(prefix="valori-node-")
        self.data = data or self.tmp.name
        listen = [] if "--listen" in args else ["--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            [node_binary(), "--data", self.data, *listen, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RUST_LOG": "warn", **(env or {})})
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"valori-node did not start: {line!r} {self.proc.stderr.read()!r}")
        self.url = line.strip().rsplit(" ", 1)[-1]

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (the server drains, flushes and closes first)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        if self.tmp is not None:
            self.tmp.cleanup()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="session")
def node():
    """One server for the session's client tests; it must exit cleanly when stopped."""
    server = NodeServer("--durability", "group")
    yield server
    assert server.stop() == 0, server.proc.stderr.read()


_backend_names = __import__("itertools").count()


@pytest.fixture(params=["embedded", "database", "client"])
def backend(request, tmp_path):
    """For the agent-framework stores: a function (metric) -> keyword arguments placing a new
    store on this test's backend (in memory, a Database in tmp_path, or a database on the
    session's valori-node, dropped afterwards)."""
    made = []

    def kwargs(metric="cosine"):
        if request.param == "embedded":
            return {"metric": metric}
        if request.param == "database":
            return {"metric": metric, "path": str(tmp_path / f"db{next(_backend_names)}")}
        server = request.getfixturevalue("node")
        name = f"fw{next(_backend_names)}"
        made.append(name)
        return {"metric": metric, "url": server.url, "database": name}

    kwargs.kind = request.param
    yield kwargs
    if made:
        import valori
        server = request.getfixturevalue("node")
        for name in made:
            try:
                valori.KernelClient(server.url, name).drop()
            except valori.NotFoundError:
                pass
