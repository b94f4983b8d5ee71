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


async def test_the_mcp_config_snippet_starts_a_working_server(tmp_path):
    """examples-python/mcp-config.json as an MCP client reads it: its command (the installed
    valori-mcp script) and arguments, with the data directory moved into this test's."""
    pytest.importorskip("mcp")
    pytest.importorskip("wordllama")
    import json
    import shutil

    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    with open(os.path.join(ROOT, "examples-python", "mcp-config.json")) as f:
        server = json.load(f)["mcpServers"]["valori-memory"]
    command = shutil.which(server["command"], path=os.path.dirname(sys.executable))
    assert command, "the valori-mcp script is not installed beside this Python"
    args = [str(tmp_path / "memory") if a.endswith(".valori-memory") else a for a in server["args"]]
    async with stdio_client(StdioServerParameters(command=command, args=args, env=dict(os.environ))) as (r, w):
        async with ClientSession(r, w) as session:
            await session.initialize()
            made = await session.call_tool("create_entities", {"entities": [{"name": "Ada", "entityType": "robot"}]})
            state = await session.call_tool("memory_state", {})
    assert not made.is_error and not state.is_error
    body = state.structured_content or json.loads(state.content[0].text)
    body = body.get("result", body)
    assert body.get("entities") == 1 and len(body.get("state_hash", "")) == 64, (body, state.content)
