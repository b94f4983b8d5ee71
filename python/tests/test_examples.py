"""The examples in examples-python/ run as a user runs them, and say what they should: the
same documents give the same state hash in another directory (determinism)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _run(name, *args):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "examples-python", name), *args],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_langchain_retrieval(tmp_path):
    pytest.importorskip("langchain_core")
    out = _run("langchain_retrieval.py", str(tmp_path / "a"))
    assert "kitchen: cup: the red cup is on the kitchen table" in out
    assert "reopened: ['cup', 'dock', 'door', 'plant']" in out
    again = _run("langchain_retrieval.py", str(tmp_path / "b"))
    hashes = [line for line in (out + again).splitlines() if line.startswith("state hash:")]
    assert len(hashes) == 2 and hashes[0] == hashes[1], hashes


def test_llama_index_retrieval(tmp_path):
    pytest.importorskip("llama_index.core")
    out = _run("llama_index_retrieval.py", str(tmp_path / "a"))
    assert "kitchen: plant: Water the kitchen plant on Mondays." in out
    assert "kitchen: cup: The red cup is on the kitchen table." in out
    assert "hall" not in out.split("reopened")[0]
    assert "reopened: dock: The charging dock is in the hall." in out
    again = _run("llama_index_retrieval.py", str(tmp_path / "b"))
    hashes = [line for line in (out + again).splitlines() if line.startswith("state hash:")]
    assert len(hashes) == 2 and hashes[0] == hashes[1], hashes
