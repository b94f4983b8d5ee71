"""``valori-mcp``: an MCP memory server whose knowledge graph lives in a durable Valori
database (``pip install valori[mcp]``; docs/INTEGRATIONS.md).

It offers the tools of the reference MCP "memory" server (entities, relations, observations:
create, add, delete, read, open, search) with the same arguments, and stores them as Valori
graph nodes and edges whose text is embedded as vectors, so ``search_nodes`` is semantic. It
adds what only Valori can: ``memory_state`` (the state hash: "prove what I remember") and
``memory_history`` (the logged commands since a sequence number). Every tool call that changes
the memory is durable (fsynced) before it answers: a ``kill -9`` loses nothing answered.

    valori-mcp --data ~/.valori-memory                       # stdio (MCP clients start it)
    valori-mcp --data ~/.valori-memory --transport http --port 8765   # streamable HTTP, 127.0.0.1

Storage (mapping version 1, collection ``mcp-memory``, :mod:`valori.integrations.documents`):

- an entity is the document ``entity\\0<name>`` (text ``"<name> (<entityType>)"``) and a graph
  node (kind 1) linked to it, whose id is the document's record id;
- an observation is the document ``observation\\0<entity>\\0<text>`` and a node (kind 2)
  linked to it, with an edge (kind 2) from its entity's node;
- a relation is the document ``relation\\0<from>\\0<relationType>\\0<to>`` (text
  ``"<from> <relationType> <to>"``) and an edge (kind 1) between the two entities' nodes.

Node and edge ids are their documents' record ids, so the graph is found from names alone.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

import valori

from .integrations.documents import DocumentStore, Stored, record_id

COLLECTION = "mcp-memory"
ENTITY_NODE, OBSERVATION_NODE = 1, 2
RELATION_EDGE, OBSERVED_EDGE = 1, 2

Embedder = Callable[[List[str]], Sequence[Sequence[float]]]


# -- embedders ---------------------------------------------------------------------------

def wordllama_embedder() -> Embedder:
    """WordLlama's bundled 256-dimension model (``l2_supercat``): its weights and tokenizer
    are in the ``wordllama`` wheel, so it works offline, needs no download at run time, loads
    in a fraction of a second and runs on a CPU. It is a static (word-level) model: good for
    finding memories by their words and near-synonyms, not a large model's understanding."""
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError as e:
        raise SystemExit("valori-mcp: the default embedder needs wordllama (pip install 'valori[mcp]'), "
                         "or choose one with --embedder") from e
    from pathlib import Path
    # The wheel holds the files; pointing the cache at the package finds them with no download.
    model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    return lambda texts: model.embed(list(texts), norm=True)


def hash_embedder(dim: int = 256) -> Embedder:
    """Bag of hashed word and character-trigram features, normalised: no package, no model,
    the same vector for the same text everywhere; finds memories sharing words only."""
    def one(text: str) -> np.ndarray:
        v = np.zeros(dim)
        words = text.lower().split()
        feats = words + [w[i:i + 3] for w in words for i in range(max(1, len(w) - 2))]
        for f in feats:
            h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
            v[h % dim] += 1.0 if (h >> 63) else -1.0
        n = np.linalg.norm(v)
        return v / n if n else np.eye(dim)[0]
    return lambda texts: [one(t) for t in texts]


def load_embedder(spec: str) -> Embedder:
    """``wordllama`` (the default), ``hash``, or ``module:callable`` (a function from a list
    of texts to a list of vectors, or a factory returning one when called with no
    arguments)."""
    if spec == "wordllama":
        return wordllama_embedder()
    if spec == "hash":
        return hash_embedder()
    if ":" not in spec:
        raise SystemExit(f"valori-mcp: unknown embedder {spec!r}: use wordllama, hash or module:callable")
    mod, _, name = spec.partition(":")
    fn = getattr(importlib.import_module(mod), name)
    try:
        made = fn()
        if callable(made):
            return made
    except TypeError:
        pass
    return fn


# -- the memory --------------------------------------------------------------------------

class GraphMemory:
    """The knowledge graph of the reference memory server, kept in a Valori database."""

    def __init__(self, db: Any, embed: Embedder) -> None:
        self.db = db
        self.embed = embed
        self.docs = DocumentStore(db, COLLECTION)
        # The MCP SDK runs tools on worker threads: one call at a time changes the memory.
        self.lock = threading.RLock()

    def _vectors(self, texts: List[str]) -> List[List[float]]:
        vecs = [list(map(float, v)) for v in self.embed(texts)]
        if vecs and self.db.dim and len(vecs[0]) != self.db.dim:
            raise ValueError(f"the embedder gives {len(vecs[0])} numbers; this memory's database holds "
                             f"{self.db.dim} (open it with the embedder it was made with)")
        return vecs

    def _write(self, docs: List[tuple], graph: List[Callable[[], None]]) -> None:
        """Writes documents ``(doc id, text, metadata)`` and then runs the graph steps, once
        every document, label and vector has been checked: bad input writes nothing."""
        if docs:
            ids, texts, metas = (list(x) for x in zip(*docs))
            self.docs.write(self.docs.prepare(ids, texts, metas, self._vectors(texts)))
        for step in graph:
            step()

    def _node(self, node: int, kind: int, label: bytes = b"") -> None:
        """Makes node ``node`` (linked to the record of the same id) unless it exists: also
        repairs a node lost between a record's write and the node's (a crash)."""
        try:
            self.db.neighbors(node)
        except valori.NotFoundError:
            self.db.create_node(kind, record=node, label=label, id=node)

    def _edge(self, edge: int, kind: int, source: int, target: int) -> None:
        """Makes edge ``edge`` unless it exists."""
        if all(e.id != edge for e in self.db.neighbors(source)):
            self.db.create_edge(kind, source, target, id=edge)

    def _drop_edge(self, edge: int) -> None:
        try:
            self.db.delete_edge(edge)
        except valori.NotFoundError:
            pass

    def _entity(self, name: str) -> Optional[Stored]:
        return self.docs.get(_entity_id(name))

    def _need(self, name: str) -> Stored:
        e = self._entity(name)
        if e is None:
            raise ValueError(f"Entity with name {name} not found")
        return e

    def _observations(self, name: str) -> List[str]:
        found = self.docs.all(lambda s: s.metadata.get("kind") == "observation" and s.metadata.get("entity") == name)
        return sorted((s.text for s in found), key=lambda t: (t, ))

    def _relations(self, names: Optional[set] = None) -> List[Dict[str, str]]:
        rels = self.docs.all(lambda s: s.metadata.get("kind") == "relation")
        out = [{"from": s.metadata["from"], "to": s.metadata["to"], "relationType": s.metadata["relationType"]}
               for s in rels]
        if names is not None:
            out = [r for r in out if r["from"] in names and r["to"] in names]
        return sorted(out, key=lambda r: (r["from"], r["relationType"], r["to"]))

    def _entity_dict(self, e: Stored) -> Dict[str, Any]:
        name = e.metadata["name"]
        return {"name": name, "entityType": e.metadata["entityType"], "observations": self._observations(name)}

    # The tools, with the reference server's arguments and answers.

    def create_entities(self, entities: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        with self.lock:
            checked = []
            for e in entities:
                name, etype = _text(e, "name"), _text(e, "entityType")
                _label(name)
                obs = [_plain(o, "observation") for o in e.get("observations", [])]
                checked.append((name, etype, obs))
            docs: List[tuple] = []
            graph: List[Callable[[], None]] = []
            made = []
            seen = set()
            for name, etype, obs in checked:
                node = record_id(COLLECTION, _entity_id(name))
                if name in seen:
                    continue
                seen.add(name)
                if self._entity(name) is not None:
                    graph.append(lambda n=node, nm=name: self._node(n, ENTITY_NODE, nm.encode()))
                    continue
                docs.append((_entity_id(name), f"{name} ({etype})", {"kind": "entity", "name": name, "entityType": etype}))
                graph.append(lambda n=node, nm=name: self._node(n, ENTITY_NODE, nm.encode()))
                added = self._plan_observations(name, node, obs, docs, graph)
                made.append({"name": name, "entityType": etype, "observations": added})
            self._write(docs, graph)
            return made

    def _plan_observations(self, name: str, node: int, contents: List[str], docs: List[tuple],
                           graph: List[Callable[[], None]]) -> List[str]:
        added = []
        for text in contents:
            doc = _observation_id(name, text)
            rid = record_id(COLLECTION, doc)
            if text in added or any(d[0] == doc for d in docs):
                continue
            if self.docs.get(doc) is None:
                docs.append((doc, text, {"kind": "observation", "entity": name}))
                added.append(text)
            graph.append(lambda r=rid: self._node(r, OBSERVATION_NODE))
            graph.append(lambda r=rid: self._edge(r, OBSERVED_EDGE, node, r))
        return added

    def create_relations(self, relations: List[Dict[str, Any]]) -> List[Dict[str, str]]:
        with self.lock:
            checked = [(_text(r, "from"), _text(r, "relationType"), _text(r, "to")) for r in relations]
            for f, _, t in checked:
                self._need(f), self._need(t)
            docs: List[tuple] = []
            graph: List[Callable[[], None]] = []
            made = []
            for f, rtype, t in checked:
                doc = _relation_id(f, rtype, t)
                rid = record_id(COLLECTION, doc)
                src, dst = record_id(COLLECTION, _entity_id(f)), record_id(COLLECTION, _entity_id(t))
                if self.docs.get(doc) is None and all(d[0] != doc for d in docs):
                    docs.append((doc, f"{f} {rtype} {t}", {"kind": "relation", "from": f, "to": t, "relationType": rtype}))
                    made.append({"from": f, "to": t, "relationType": rtype})
                graph.append(lambda r=rid, a=src, b=dst: self._edge(r, RELATION_EDGE, a, b))
            self._write(docs, graph)
            return made

    def add_observations(self, observations: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        with self.lock:
            checked = [(_text(o, "entityName"), [_plain(c, "observation") for c in o.get("contents", [])])
                       for o in observations]
            for name, _ in checked:
                self._need(name)
            docs: List[tuple] = []
            graph: List[Callable[[], None]] = []
            out = []
            for name, contents in checked:
                node = record_id(COLLECTION, _entity_id(name))
                fresh = [c for c in contents if all(d[0] != _observation_id(name, c) for d in docs)]
                out.append({"entityName": name,
                            "addedObservations": self._plan_observations(name, node, fresh, docs, graph)})
            self._write(docs, graph)
            return out

    def delete_entities(self, entity_names: List[str]) -> str:
        with self.lock:
            names = [_plain(n, "entity name") for n in entity_names]
            for name in names:
                gone = self.docs.all(lambda s, n=name: (s.metadata.get("kind") == "observation" and s.metadata.get("entity") == n)
                                     or (s.metadata.get("kind") == "relation" and n in (s.metadata.get("from"), s.metadata.get("to"))))
                # Its observations and relations first, the entity last: a crash in between
                # leaves the entity, and deleting it again finishes the job.
                for s in gone:
                    if s.metadata.get("kind") == "relation":
                        self._drop_edge(record_id(COLLECTION, s.id))
                self.docs.delete([s.id for s in gone])
                self.docs.delete([_entity_id(name)])
            return "Entities deleted successfully"

    def delete_observations(self, deletions: List[Dict[str, Any]]) -> str:
        with self.lock:
            checked = [(_text(d, "entityName"), [_plain(o, "observation") for o in d.get("observations", [])])
                       for d in deletions]
            for name, obs in checked:
                self.docs.delete([_observation_id(name, o) for o in obs])
            return "Observations deleted successfully"

    def delete_relations(self, relations: List[Dict[str, Any]]) -> str:
        with self.lock:
            checked = [(_text(r, "from"), _text(r, "relationType"), _text(r, "to")) for r in relations]
            for f, rtype, t in checked:
                doc = _relation_id(f, rtype, t)
                if self.docs.get(doc) is not None:
                    self._drop_edge(record_id(COLLECTION, doc))
                    self.docs.delete([doc])
            return "Relations deleted successfully"

    def read_graph(self) -> Dict[str, Any]:
        ents = self.docs.all(lambda s: s.metadata.get("kind") == "entity")
        entities = sorted((self._entity_dict(e) for e in ents), key=lambda e: e["name"])
        return {"entities": entities, "relations": self._relations()}

    def open_nodes(self, names: List[str]) -> Dict[str, Any]:
        found = [e for e in (self._entity(_plain(n, "entity name")) for n in names) if e is not None]
        entities = [self._entity_dict(e) for e in found]
        return {"entities": entities, "relations": self._relations({e["name"] for e in entities})}

    def search_nodes(self, query: str, limit: int = 10) -> Dict[str, Any]:
        """Entities whose name, type or observations contain ``query`` (case-insensitive),
        then the ones whose entity, observations or relations are nearest to it in meaning,
        up to ``limit``; with the relations among them."""
        query = _plain(query, "query")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        q = query.lower()
        names: List[str] = []
        for e in self.docs.all(lambda s: s.metadata.get("kind") == "entity"):
            name = e.metadata["name"]
            if q in name.lower() or q in e.metadata["entityType"].lower() or any(q in o.lower() for o in self._observations(name)):
                names.append(name)
        names.sort()
        if len(names) < limit:
            for s, _ in self.docs.search(self._vectors([query])[0], 4 * limit):
                kind = s.metadata.get("kind")
                owners = ([s.metadata["name"]] if kind == "entity" else [s.metadata["entity"]] if kind == "observation"
                          else [s.metadata["from"], s.metadata["to"]])
                for n in owners:
                    if n not in names and len(names) < limit:
                        names.append(n)
        return self.open_nodes(names[:limit])

    def state(self) -> Dict[str, Any]:
        counts: Dict[str, int] = {"entity": 0, "observation": 0, "relation": 0}
        for s in self.docs.all():
            counts[s.metadata.get("kind", "")] = counts.get(s.metadata.get("kind", ""), 0) + 1
        return {"state_hash": self.db.state_hash().hex(), "sequence": self.db.sequence(),
                "entities": counts["entity"], "observations": counts["observation"], "relations": counts["relation"],
                "note": "The same tool calls, in the same order, give the same state hash on every machine; "
                        "compare it with another copy's to prove they hold the same memory."}

    def history(self, since: int = 1, limit: int = 100) -> List[Dict[str, Any]]:
        if since < 1 or limit < 1:
            raise ValueError("since and limit must be at least 1")
        return [{"seq": e.seq, "command": e.kind, "bytes": e.bytes, "chain": e.chain.hex()}
                for e in self.db.history(since, min(limit, 1000))]


def _entity_id(name: str) -> str:
    return "entity\0" + name


def _observation_id(name: str, text: str) -> str:
    return "observation\0" + name + "\0" + text


def _relation_id(f: str, rtype: str, t: str) -> str:
    return "relation\0" + f + "\0" + rtype + "\0" + t


def _plain(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{what} must be a non-empty string, got {v!r}")
    if "\0" in v:
        raise ValueError(f"{what} must not contain NUL characters")
    return v


def _label(name: str) -> None:
    if len(name.encode("utf-8", "replace")) > 4096:
        raise ValueError(f"an entity name is at most 4,096 bytes of UTF-8; {name[:40]!r}... is longer")


def _text(d: Any, key: str) -> str:
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"missing {key!r} in {d!r}")
    return _plain(d[key], key)


# -- the MCP server -------------------------------------------------------------------------

def build_server(memory: GraphMemory, host: str = "127.0.0.1", port: int = 8765) -> Any:
    """The MCP server offering ``memory``'s tools."""
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError as e:  # pragma: no cover - the extra is missing
        raise SystemExit("valori-mcp needs the MCP SDK: pip install 'valori[mcp]'") from e
    import functools

    class _Server(MCPServer):
        def tool(self, *a: Any, **k: Any) -> Any:
            register = super().tool(*a, **k)

            def wrap(fn: Any) -> Any:
                @functools.wraps(fn)
                def checked(*args: Any, **kwargs: Any) -> Any:
                    # Bad input and refusals reach the agent as what they are (the SDK hides
                    # other exceptions' messages); nothing was written. One call at a time.
                    try:
                        with memory.lock:
                            return fn(*args, **kwargs)
                    except (ValueError, valori.Error) as e:
                        raise ToolError(str(e)) from e
                return register(checked)
            return wrap

    server = _Server("valori-memory", instructions=(
        "A durable knowledge-graph memory (Valori). Store entities, their observations and the relations "
        "between them; search by meaning; memory_state proves what is remembered."))

    @server.tool()
    def create_entities(entities: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Create entities ({name, entityType, observations: [str]}) in the knowledge graph; existing
        names are skipped. Returns the entities created."""
        return memory.create_entities(entities)

    @server.tool()
    def create_relations(relations: List[Dict[str, str]]) -> List[Dict[str, str]]:
        """Create relations ({from, to, relationType}, in active voice) between existing entities;
        existing ones are skipped. Returns the relations created."""
        return memory.create_relations(relations)

    @server.tool()
    def add_observations(observations: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Add observations ({entityName, contents: [str]}) to existing entities. Returns what was added."""
        return memory.add_observations(observations)

    @server.tool()
    def delete_entities(entityNames: List[str]) -> str:  # noqa: N803 - the reference server's name
        """Delete entities, their observations and every relation at them."""
        return memory.delete_entities(entityNames)

    @server.tool()
    def delete_observations(deletions: List[Dict[str, Any]]) -> str:
        """Delete observations ({entityName, observations: [str]}) from entities."""
        return memory.delete_observations(deletions)

    @server.tool()
    def delete_relations(relations: List[Dict[str, str]]) -> str:
        """Delete relations ({from, to, relationType})."""
        return memory.delete_relations(relations)

    @server.tool()
    def read_graph() -> Dict[str, Any]:
        """The whole knowledge graph: entities (with observations) and relations."""
        return memory.read_graph()

    @server.tool()
    def search_nodes(query: str, limit: int = 10) -> Dict[str, Any]:
        """Entities matching a query by their words, then by meaning (embedded search over entities,
        observations and relations), with the relations among them."""
        return memory.search_nodes(query, limit)

    @server.tool()
    def open_nodes(names: List[str]) -> Dict[str, Any]:
        """The entities with these names and the relations among them."""
        return memory.open_nodes(names)

    @server.tool()
    def memory_state() -> Dict[str, Any]:
        """Proof of what is remembered: the memory's 32-byte state hash (hex), its sequence number and
        counts. The same operations give the same hash on every machine."""
        return memory.state()

    @server.tool()
    def memory_history(since: int = 1, limit: int = 100) -> List[Dict[str, Any]]:
        """The memory's logged commands from sequence number `since` on (at most `limit`, up to 1000):
        seq, command, bytes and the hash-chain value after each (an audit trail)."""
        return memory.history(since, limit)

    server._valori_http = (host, port)  # noqa: SLF001 - read by main()
    return server


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="valori-mcp", description="An MCP knowledge-graph memory in a Valori database.")
    p.add_argument("--data", default=os.environ.get("VALORI_MCP_DATA", os.path.expanduser("~/.valori-mcp")),
                   help="the database directory (default: $VALORI_MCP_DATA or ~/.valori-mcp)")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                   help="stdio (default: an MCP client starts this) or streamable HTTP")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument("--embedder", default="wordllama",
                   help="wordllama (default: bundled model, offline), hash, or module:callable")
    a = p.parse_args(argv)
    embed = load_embedder(a.embedder)
    dim = len(list(embed(["probe"])[0]))
    exists = os.path.isdir(a.data) and bool(os.listdir(a.data))
    db = valori.Database(a.data) if exists else valori.Database(a.data, dim=dim, metric="cosine")
    if db.dim != dim:
        raise SystemExit(f"valori-mcp: {a.data} holds {db.dim}-number vectors; the embedder {a.embedder!r} gives "
                         f"{dim}: open it with the embedder it was made with")
    server = build_server(GraphMemory(db, embed))
    try:
        if a.transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=a.host, port=a.port)
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
