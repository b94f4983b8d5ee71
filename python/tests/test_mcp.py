"""valori-mcp through the MCP SDK's own client: over stdio (the client starts the server) and
streamable HTTP (a server on 127.0.0.1 and a port this test picks, stopped by it). The
reference memory server's tools give its answers; search finds by meaning; bad input is an
error result with nothing written; memory_state's hash equals the database's; a kill -9 of
the HTTP server loses nothing it answered."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

import valori  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _result(r):
    """A tool result as Python: the structured content's value, or the text as JSON."""
    if r.is_error:
        raise RuntimeError(r.content[0].text if r.content else "error")
    if r.structured_content is not None:
        sc = r.structured_content
        return sc["result"] if set(sc) == {"result"} else sc
    return json.loads(r.content[0].text)


async def _script(session, kill=None):
    call = lambda name, **args: session.call_tool(name, args)  # noqa: E731
    tools = {t.name for t in (await session.list_tools()).tools}
    assert {"create_entities", "create_relations", "add_observations", "delete_entities", "delete_observations",
            "delete_relations", "read_graph", "search_nodes", "open_nodes", "memory_state", "memory_history"} <= tools
    made = _result(await call("create_entities", entities=[
        {"name": "Ada", "entityType": "robot", "observations": ["charges at the hall dock every night"]},
        {"name": "Kitchen", "entityType": "room", "observations": ["the red cup is on the table"]},
        {"name": "Dock", "entityType": "place", "observations": []},
    ]))
    assert [e["name"] for e in made] == ["Ada", "Kitchen", "Dock"]
    again = _result(await call("create_entities", entities=[{"name": "Ada", "entityType": "robot"}]))
    assert again == []
    rels = _result(await call("create_relations", relations=[
        {"from": "Ada", "to": "Kitchen", "relationType": "cleans"},
        {"from": "Ada", "to": "Dock", "relationType": "charges at"}]))
    assert len(rels) == 2
    added = _result(await call("add_observations", observations=[
        {"entityName": "Kitchen", "contents": ["the plant needs water on mondays", "the red cup is on the table"]}]))
    assert added == [{"entityName": "Kitchen", "addedObservations": ["the plant needs water on mondays"]}]
    state = _result(await call("memory_state"))
    # Bad input: an error result, nothing written.
    bad = await call("add_observations", observations=[{"entityName": "Nobody", "contents": ["x"]}])
    assert bad.is_error and "Nobody not found" in bad.content[0].text
    bad = await call("create_relations", relations=[{"from": "Ada", "to": "Nowhere", "relationType": "visits"}])
    assert bad.is_error
    bad = await call("create_entities", entities=[{"name": "", "entityType": "x"}])
    assert bad.is_error
    assert _result(await call("memory_state"))["state_hash"] == state["state_hash"]
    graph = _result(await call("read_graph"))
    assert [e["name"] for e in graph["entities"]] == ["Ada", "Dock", "Kitchen"]
    kitchen = [e for e in graph["entities"] if e["name"] == "Kitchen"][0]
    assert kitchen["observations"] == ["the plant needs water on mondays", "the red cup is on the table"]
    assert {(r["from"], r["relationType"], r["to"]) for r in graph["relations"]} == {
        ("Ada", "cleans", "Kitchen"), ("Ada", "charges at", "Dock")}
    # Search: by words first (substring, as the reference server), then by meaning.
    found = _result(await call("search_nodes", query="cup"))
    assert [e["name"] for e in found["entities"]][0] == "Kitchen"
    found = _result(await call("search_nodes", query="where does the robot charge", limit=1))
    assert len(found["entities"]) == 1
    opened = _result(await call("open_nodes", names=["Ada", "Dock", "Ghost"]))
    assert [e["name"] for e in opened["entities"]] == ["Ada", "Dock"]
    assert opened["relations"] == [{"from": "Ada", "to": "Dock", "relationType": "charges at"}]
    hist = _result(await call("memory_history", since=1, limit=5))
    assert [h["seq"] for h in hist] == [1, 2, 3, 4, 5] and hist[0]["command"] == "insert"
    if kill is not None:
        return _result(await call("memory_state"))
    # Deletes.
    _result(await call("delete_observations", deletions=[{"entityName": "Kitchen", "observations": ["the red cup is on the table"]}]))
    _result(await call("delete_relations", relations=[{"from": "Ada", "to": "Kitchen", "relationType": "cleans"}]))
    _result(await call("delete_entities", entityNames=["Dock"]))
    graph = _result(await call("read_graph"))
    assert [e["name"] for e in graph["entities"]] == ["Ada", "Kitchen"]
    assert graph["relations"] == []
    assert [e for e in graph["entities"] if e["name"] == "Kitchen"][0]["observations"] == ["the plant needs water on mondays"]
    return _result(await call("memory_state"))


def _server_cmd(data, *extra):
    return [sys.executable, "-m", "valori.memory_server", "--data", str(data), *extra]


@pytest.mark.parametrize("embedder", ["wordllama", "hash"])
async def test_stdio_tools_answer_as_the_reference_server(tmp_path, embedder):
    if embedder == "wordllama":
        pytest.importorskip("wordllama")
    data = tmp_path / "mem"
    params = StdioServerParameters(command=sys.executable, args=_server_cmd(data, "--embedder", embedder)[1:],
                                   env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            state = await _script(session)
    # The server has exited: the database is what memory_state described.
    db = valori.Database(str(data))
    assert db.state_hash().hex() == state["state_hash"] and db.sequence() == state["sequence"]
    assert (state["entities"], state["observations"], state["relations"]) == (2, 2, 0)
    db.close()


async def test_http_survives_kill_9(tmp_path):
    data = tmp_path / "mem"
    port = _port()
    url = f"http://127.0.0.1:{port}/mcp"

    def start():
        p = subprocess.Popen(_server_cmd(data, "--transport", "http", "--port", str(port), "--embedder", "hash"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return p
            except OSError:
                assert p.poll() is None, p.stderr.read().decode()
                assert time.monotonic() < deadline, "valori-mcp did not start"
                time.sleep(0.1)

    p = start()
    try:
        async with streamable_http_client(url) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                state = await _script(session, kill=True)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    p = start()
    try:
        async with streamable_http_client(url) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                after = _result(await session.call_tool("memory_state", {}))
                graph = _result(await session.call_tool("read_graph", {}))
        assert after["state_hash"] == state["state_hash"] and after["sequence"] == state["sequence"]
        assert [e["name"] for e in graph["entities"]] == ["Ada", "Dock", "Kitchen"]
    finally:
        p.terminate()
        p.wait(30)


def test_search_finds_by_meaning_with_the_default_embedder(tmp_path):
    """The default embedder (WordLlama's bundled model) finds an entity by a query that shares
    no word and no character trigram with it: the match is by meaning, not by text."""
    pytest.importorskip("wordllama")
    from valori.memory_server import GraphMemory, load_embedder
    emb = load_embedder("wordllama")
    db = valori.Database(str(tmp_path / "m"), dim=len(emb(["x"])[0]), metric="cosine")
    m = GraphMemory(db, emb)
    m.create_entities([{"name": "Ada", "entityType": "robot", "observations": ["charges at the hall dock every night"]},
                       {"name": "Kitchen", "entityType": "room", "observations": ["the red cup is on the table"]},
                       {"name": "Garden", "entityType": "place", "observations": ["roses bloom in june"]}])

    def grams(text):
        words = text.lower().split()
        return set(words) | {w[i:i + 3] for w in words for i in range(max(1, len(w) - 2))}

    target = grams("Garden place roses bloom in june")
    assert not grams("flowers") & target
    assert [e["name"] for e in m.search_nodes("flowers", limit=1)["entities"]] == ["Garden"]
    db.close()


def test_bad_input_anywhere_in_a_call_writes_nothing_and_half_writes_are_repaired(tmp_path):
    """Every check comes before the first write: a too-long name, an observation too large for a
    record, or text that cannot be UTF-8, anywhere in a call, leaves the state hash unchanged.
    A node lost between its entity's write and its own (a crash) is made again by the next
    create of that entity, and relations to it work afterwards."""
    from valori.memory_server import GraphMemory, hash_embedder
    db = valori.Database(str(tmp_path / "m"), dim=256, metric="cosine")
    m = GraphMemory(db, hash_embedder())
    m.create_entities([{"name": "Ada", "entityType": "robot"}])
    before = db.state_hash()
    for bad in ([{"name": "Bob", "entityType": "robot"}, {"name": "x" * 5000, "entityType": "robot"}],
                [{"name": "Bob", "entityType": "robot", "observations": ["ok", "y" * 40_000]}],
                [{"name": "Bob", "entityType": "robot", "observations": ["ok", "bad \ud800"]}]):
        with pytest.raises(ValueError):
            m.create_entities(bad)
        assert db.state_hash() == before
    with pytest.raises(ValueError):
        m.add_observations([{"entityName": "Ada", "contents": ["fine"]}, {"entityName": "Ghost", "contents": ["x"]}])
    assert db.state_hash() == before
    # As if a crash came between an entity's record and its node.
    from valori.integrations.documents import record_id
    node = record_id("mcp-memory", "entity\0Ada")
    db.delete_node(node)
    with pytest.raises(valori.NotFoundError):
        db.neighbors(node)
    assert m.create_entities([{"name": "Ada", "entityType": "robot"}]) == []
    db.neighbors(node)  # made again
    m.create_entities([{"name": "Dock", "entityType": "place"}])
    assert len(m.create_relations([{"from": "Ada", "to": "Dock", "relationType": "charges at"}])) == 1
    assert [(e.kind, e.target) for e in db.neighbors(node)] == [(1, record_id("mcp-memory", "entity\0Dock"))]
    # The same observation twice in one call is added once.
    assert m.add_observations([{"entityName": "Ada", "contents": ["tall", "tall"]}]) == \
        [{"entityName": "Ada", "addedObservations": ["tall"]}]
    m.delete_entities(["Dock"])
    assert m.read_graph()["relations"] == [] and db.neighbors(node) != []
    db.close()
