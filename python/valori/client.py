"""KernelClient: a database served by ``valori-node``, with the store methods of
:class:`valori.Database` and :class:`valori.EmbeddedKernel` (see docs/HTTP-API.md for the list).

Replacing ``valori.Database("mem", dim=384)`` with
``valori.KernelClient(url="http://127.0.0.1:3000", database="mem", dim=384)`` changes nothing
else in a program: the same methods, arguments, return types and exceptions (the server answers
errors with the codes of the same table). A write that returns has been acknowledged by the
server in its durability mode, as in-process.

Connections are kept alive and pooled per thread; calls that only read, and writes that are
idempotent (``set_metadata``, ``set_tag``, ``checkpoint``, ``flush``), are retried on a
dropped connection; other writes are not (a retry could apply them twice).
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from . import _native
from .errors import Error, InvalidInputError, NotFoundError, ValoriIOError, error_class


class UnauthorizedError(Error, PermissionError):
    """The server needs an API key and got none, or one it does not know (HTTP 401)."""

    code = "Unauthorized"


class ForbiddenError(Error, PermissionError):
    """A read-only API key was used for a write (HTTP 403)."""

    code = "Forbidden"


def _python_code(http_code: str) -> str:
    """``INVALID_INPUT`` -> ``InvalidInput`` (the HTTP spelling is C's, without ``VALORI_``)."""
    return "".join(part.capitalize() for part in http_code.split("_"))


def _raise(status: int, body: bytes) -> None:
    try:
        err = json.loads(body)
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        raise ValoriIOError(f"the server answered HTTP {status} without an error body: {body[:200]!r}") from None
    if code == "UNAUTHORIZED":
        raise UnauthorizedError(message)
    if code == "FORBIDDEN":
        raise ForbiddenError(message)
    try:
        cls = error_class(_python_code(code))
    except LookupError:
        raise ValoriIOError(f"HTTP {status} {code}: {message}") from None
    raise cls(message)


class _Connections:
    """One keep-alive connection per thread."""

    def __init__(self, url: str, timeout: float, ca_file: Optional[str]) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise InvalidInputError(f"url must start with http:// or https://, got {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if self.https else None
        self.local = threading.local()

    def get(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is not None and conn.sock is not None:
            # A kept-alive connection the server closed meanwhile (a restart, an idle timeout)
            # reads as ready with nothing to say: open a new one rather than send into it.
            try:
                dropped = bool(select.select([conn.sock], [], [], 0)[0])
            except (OSError, ValueError):
                dropped = True
            if dropped:
                conn.close()
                conn = None
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                   context=self.context)
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.local.conn = conn
        return conn

    def reset(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
        self.local.conn = None


_RETRYABLE = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ssl.SSLEOFError,
              http.client.RemoteDisconnected, http.client.BadStatusLine)


class KernelClient:
    """A database on a ``valori-node`` server.

    ``database`` names it (``"default"`` when not given: the server creates that one at the
    first insert, with the vector's dimension and metric L2). With ``dim`` (and optionally
    ``metric``) the database is created if missing, and an existing one must match, as with
    :class:`valori.Database`. ``api_key`` (or none, for a server without keys) is sent as a
    bearer token. ``timeout`` is in seconds per request (longer than the server's own
    ``--request-timeout``, 60 s by default, so the server's answer arrives first); ``retries`` is how many times a call
    that is safe to repeat is retried after a dropped connection. An ``https://`` URL is
    verified against the system's certificate authorities, or ``ca_file`` (PEM) if given.
    """

    def __init__(self, url: str = "http://127.0.0.1:3000", database: str = "default",
                 dim: Optional[int] = None, metric: Optional[str] = None,
                 api_key: Optional[str] = None, timeout: float = 90.0, retries: int = 3,
                 ca_file: Optional[str] = None, index: Optional[str] = None, m: int = 16,
                 ef_construction: int = 200) -> None:
        self.url = url
        self.database = database
        self._conns = _Connections(url, timeout, ca_file)
        self._headers = {"Connection": "keep-alive"}
        if api_key is not None:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._retries = max(0, int(retries))
        self._closed = False
        self._dropped = False
        self._base = f"{self._conns.prefix}/v1/databases/{urllib.parse.quote(database, safe='')}"
        #: Components per vector (``None`` until the default database exists) and the metric.
        self.dim: Optional[int] = None
        self.metric: Optional[str] = None
        if dim is not None:
            body: Dict[str, Any] = {"dim": int(dim)}
            if metric is not None:
                body["metric"] = metric
            if index is not None:
                from . import _index_int
                body.update(index=index, m=_index_int("m", m),
                            ef_construction=_index_int("ef_construction", ef_construction))
            self._config(self._json("PUT", "", body, idempotent=True))
        elif metric is not None or index is not None:
            raise InvalidInputError("metric or index is given without dim: give dim to create a database")
        else:
            try:
                self._config(self._json("GET", "", idempotent=True))
            except NotFoundError:
                if database != "default":
                    raise

    # -- transport ---------------------------------------------------------------------------

    def _config(self, info: Dict[str, Any]) -> None:
        self.dim, self.metric = int(info["dim"]), str(info["metric"])

    @property
    def index(self):
        """The approximate index (``valori.IndexParams("hnsw", m, ef_construction)``), or
        ``None``."""
        from . import IndexParams
        try:
            i = self._json("GET", "", idempotent=True).get("index")
        except NotFoundError:
            return None
        return None if i is None else IndexParams(str(i["kind"]), int(i["m"]), int(i["ef_construction"]))

    def _request(self, method: str, path: str, body: Optional[bytes] = None,
                 content_type: Optional[str] = None, accept: Optional[str] = None,
                 idempotent: bool = False, query: Optional[Dict[str, Any]] = None) -> bytes:
        if self._closed:
            from .errors import MisuseError
            raise MisuseError("this KernelClient is closed")
        target = self._base + path
        if query:
            target += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = dict(self._headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        attempts = 1 + (self._retries if idempotent else 0)
        for attempt in range(attempts):
            conn = self._conns.get()
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except _RETRYABLE as e:
                self._conns.reset()
                if attempt + 1 < attempts:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise ValoriIOError(f"{method} {self.url}{target}: the connection was lost ({e})"
                                    + ("" if idempotent else "; the write may or may not have been applied")) from e
            except (socket.timeout, TimeoutError) as e:
                self._conns.reset()
                raise ValoriIOError(f"{method} {self.url}{target}: no answer within {self._conns.timeout} s") from e
            except OSError as e:
                self._conns.reset()
                raise ValoriIOError(f"{method} {self.url}{target}: {e}") from e
            if resp.status >= 400:
                _raise(resp.status, data)
            return data
        raise ValoriIOError("unreachable")  # pragma: no cover

    def _json(self, method: str, path: str, body: Any = None, idempotent: bool = False,
              query: Optional[Dict[str, Any]] = None) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        data = self._request(method, path, payload, "application/json" if payload is not None else None,
                             idempotent=idempotent, query=query)
        return json.loads(data) if data else None

    # -- vectors -----------------------------------------------------------------------------

    def _need_dim(self) -> int:
        if self.dim is None:
            try:
                self._config(self._json("GET", "", idempotent=True))
            except NotFoundError:
                pass
        return -1 if self.dim is None else self.dim

    def _rows(self, m: Any) -> Tuple[np.ndarray, str]:
        from . import _dtype
        arr = np.asarray(m)
        dt, name = _dtype(arr)
        dim = self._need_dim()
        if arr.ndim != 2 or (dim >= 0 and arr.shape[1] != dim):
            from .errors import DimensionError
            raise DimensionError(f"expected an (n, {dim if dim >= 0 else 'dim'}) array of vectors, got shape {arr.shape}")
        return np.ascontiguousarray(arr, dtype=np.dtype(dt).newbyteorder("<")), name

    def _checked_vector(self, v: Any) -> np.ndarray:
        from . import _dtype
        arr = np.asarray(v)
        _dtype(arr)
        dim = self._need_dim()
        if arr.ndim != 1 or (dim >= 0 and arr.shape[0] != dim):
            from .errors import DimensionError
            raise DimensionError(f"expected a vector of {dim if dim >= 0 else 'dim'} components, got shape {arr.shape}")
        return arr

    def _vector(self, v: Any) -> list:
        # JSON numbers are read as float64; a float32 converts to it exactly.
        return self._checked_vector(v).astype(np.float64).tolist()

    # -- the Database / EmbeddedKernel API ----------------------------------------------------

    def insert(self, vector: Any, tag: Optional[int] = None, metadata: bytes = b"",
               id: Optional[int] = None) -> int:
        """Inserts one vector with an optional tag and metadata bytes; returns its id: ``id``
        if given (one already taken raises :class:`ExistsError`), else the next automatic
        one."""
        from . import _id
        body: Dict[str, Any] = {"vector": self._vector(vector)}
        if id is not None:
            body["id"] = _id(id)
        if tag is not None:
            body["tag"] = int(tag)
        if metadata:
            body["metadata"] = base64.b64encode(bytes(metadata)).decode()
        out = self._json("POST", "/records", body)
        if self.dim is None:
            self._need_dim()
        return int(out["id"])

    def insert_batch(self, vectors: Any, tags: Optional[Iterable[int]] = None) -> range:
        """Inserts an ``(n, dim)`` array atomically, as one command; returns the ids. Sent as
        little-endian rows (float32 stays float32, anything else goes as float64)."""
        if self._need_dim() < 0:
            # The default database does not exist yet: JSON creates it with the rows' width.
            from . import _dtype
            arr = np.asarray(vectors)
            _dtype(arr)
            arr = arr.astype(np.float64)
            if arr.ndim != 2:
                from .errors import DimensionError
                raise DimensionError(f"expected an (n, dim) array of vectors, got shape {arr.shape}")
            body: Dict[str, Any] = {"vectors": arr.tolist()}
            if tags is not None:
                body["tags"] = [int(t) for t in tags]
            out = self._json("POST", "/records/batch", body)
            self._need_dim()
        else:
            arr, dtype = self._rows(vectors)
            payload = arr.tobytes()
            query: Dict[str, Any] = {"dtype": dtype}
            if tags is not None:
                t = np.ascontiguousarray(np.asarray(list(tags) if not isinstance(tags, np.ndarray) else tags,
                                                    dtype="<u8"))
                if t.shape != (arr.shape[0],):
                    raise InvalidInputError(f"expected {arr.shape[0]} tags, got {t.shape[0] if t.ndim else 0}")
                payload += t.tobytes()
                query["tags"] = "true"
            out = json.loads(self._request("POST", "/records/batch", payload, "application/octet-stream",
                                           query=query))
        first, count = int(out["first_id"]), int(out["count"])
        return range(first, first + count)

    def delete(self, id: int) -> None:
        """Deletes a record, the graph nodes linked to it and their edges."""
        self._request("DELETE", f"/records/{int(id)}")

    def set_metadata(self, id: int, metadata: bytes) -> None:
        """Replaces a record's metadata (``b""`` removes it)."""
        self._json("PUT", f"/records/{int(id)}/metadata",
                   {"metadata": base64.b64encode(bytes(metadata)).decode()}, idempotent=True)

    def set_tag(self, id: int, tag: Optional[int]) -> None:
        """Replaces a record's tag (``None`` removes it)."""
        self._json("PUT", f"/records/{int(id)}/tag", {"tag": None if tag is None else int(tag)},
                   idempotent=True)

    def get(self, id: int):
        """The record with this id, or ``None``."""
        from . import Record
        try:
            r = self._json("GET", f"/records/{int(id)}", idempotent=True)
        except NotFoundError as e:
            if str(e).startswith("record "):
                return None
            raise
        return Record(int(r["id"]), r["tag"], base64.b64decode(r["metadata"]),
                      np.asarray(r["vector"], dtype=np.float64))

    def search(self, query: Any, k: int = 10, tag: Optional[int] = None,
               exact: bool = False, ef: int = 64) -> list:
        """The k nearest records to ``query``, as :class:`valori.SearchResult` ordered by
        (distance, id): through the database's index if it has one (keeping ``ef``
        candidates) unless ``exact=True``, as ``Database.search``. Sent as one binary row
        (JSON of a few hundred numbers costs more than the search)."""
        from . import SearchResult
        row = self._checked_vector(query)[None, :]
        ids, dists = self._search_rows(row, k, tag, exact, ef)
        return [SearchResult(int(i), float(d)) for i, d in zip(ids[0], dists[0])]

    def search_batch(self, queries: Any, k: int = 10, tag: Optional[int] = None,
                     exact: bool = False, ef: int = 64) -> Tuple[np.ndarray, np.ndarray]:
        """Searches every row of an ``(n, dim)`` array; returns ``(ids, distances)`` arrays of
        shape ``(n, min(k, matches))`` (uint64 and float64); ``exact`` and ``ef`` as in
        :meth:`search`."""
        return self._search_rows(queries, k, tag, exact, ef)

    def _search_rows(self, queries: Any, k: int, tag: Optional[int], exact: bool,
                     ef: int) -> Tuple[np.ndarray, np.ndarray]:
        from . import _ef, _k
        arr, dtype = self._rows(queries)
        data = self._request("POST", "/search/batch", arr.tobytes(), "application/octet-stream",
                             accept="application/octet-stream", idempotent=True,
                             query={"k": _k(k), "tag": tag, "dtype": dtype,
                                    "exact": "true" if exact else "false", "ef": _ef(ef)})
        n, width = struct.unpack_from("<II", data, 0)
        ids = np.frombuffer(data, dtype="<u8", count=n * width, offset=8).astype(np.uint64)
        dists = np.frombuffer(data, dtype="<f8", count=n * width, offset=8 + 8 * n * width).astype(np.float64)
        return ids.reshape(n, width), dists.reshape(n, width)

    def create_node(self, kind: int, record: Optional[int] = None, label: bytes = b"",
                    id: Optional[int] = None) -> int:
        """Creates a graph node, optionally linked to a record; returns its id (``id`` if
        given: one already taken raises :class:`ExistsError`)."""
        from . import _id
        body: Dict[str, Any] = {"kind": int(kind), "record": None if record is None else int(record)}
        if id is not None:
            body["id"] = _id(id)
        if label:
            body["label"] = base64.b64encode(bytes(label)).decode()
        return int(self._json("POST", "/nodes", body)["id"])

    def delete_node(self, id: int) -> None:
        """Deletes a node and every edge into or out of it."""
        self._request("DELETE", f"/nodes/{int(id)}")

    def create_edge(self, kind: int, source: int, target: int, weight: Optional[float] = None,
                    id: Optional[int] = None) -> int:
        """Creates a directed edge between existing nodes; returns its id (``id`` if given:
        one already taken raises :class:`ExistsError`)."""
        from . import _id
        body: Dict[str, Any] = {"kind": int(kind), "source": int(source), "target": int(target),
                                "weight": None if weight is None else float(weight)}
        if id is not None:
            body["id"] = _id(id)
        return int(self._json("POST", "/edges", body)["id"])

    def delete_edge(self, id: int) -> None:
        """Deletes an edge."""
        self._request("DELETE", f"/edges/{int(id)}")

    def neighbors(self, node: int, direction: str = "out") -> list:
        """Edges at a node: ``direction`` is ``"out"``, ``"in"`` or ``"both"``."""
        from . import Edge
        out = self._json("GET", f"/nodes/{int(node)}/edges", idempotent=True, query={"direction": direction})
        return [Edge(int(e["id"]), int(e["kind"]), int(e["source"]), int(e["target"]),
                     None if e["weight"] is None else float(e["weight"])) for e in out["edges"]]

    def traverse(self, start: int, hops: int, direction: str = "out", kind: Optional[int] = None) -> list:
        """Nodes within ``hops`` edges of ``start`` as ``(depth, node)``, ordered by (depth, node)."""
        out = self._json("GET", f"/nodes/{int(start)}/traverse", idempotent=True,
                         query={"hops": int(hops), "direction": direction, "kind": kind})
        return [(int(h["depth"]), int(h["node"])) for h in out["nodes"]]

    def state_hash(self) -> bytes:
        """The 32-byte BLAKE3 state hash (identical on every machine for the same commands)."""
        return bytes.fromhex(self._json("GET", "/state", idempotent=True)["state_hash"])

    def get_state_hash(self) -> bytes:
        """The 32-byte state hash (``.hex()`` for text)."""
        return self.state_hash()

    def sequence(self) -> int:
        """The sequence number of the last command (the database's position in its history)."""
        return int(self._json("GET", "/state", idempotent=True)["seq"])

    def replication(self) -> Dict[str, Any]:
        """This database's replication on the server (docs/REPLICATION.md): ``role``
        (``"leader"``, ``"follower"`` or ``"none"``), ``sequence`` and ``state_hash`` (hex),
        and for a leader ``published`` (the last record the stream acknowledged), for a
        follower ``pending`` (records not yet applied), and ``error`` if replication stopped."""
        return self._json("GET", "/replication", idempotent=True)

    def state_hash_at(self, seq: int) -> bytes:
        """The state hash after command ``seq``, rebuilt on the server from its retained
        snapshots and log; :class:`NotFoundError` once retention no longer reaches it."""
        body = self._json("GET", "/state", idempotent=True, query={"at": int(seq)})
        return bytes.fromhex(body["state_hash"])

    def history(self, from_seq: int = 1, limit: int = 100) -> "list":
        """Up to ``limit`` logged commands from sequence number ``from_seq`` on (a list of
        :class:`valori.LogEntry`), from the server's retained log."""
        from . import LogEntry
        body = self._json("GET", "/history", idempotent=True,
                          query={"from": int(from_seq), "limit": int(limit)})
        return [LogEntry(e["seq"], e["kind"], e["bytes"], bytes.fromhex(e["chain"]))
                for e in body["entries"]]

    def checkout(self, seq: int, path: str) -> bytes:
        """Writes the state after command ``seq`` as a new database on the server, named
        ``path`` (as ``Database.checkout`` writes one in directory ``path``; the name must not
        exist); returns its state hash. ``KernelClient(url, database=path)`` opens it."""
        body = self._json("POST", "/checkout", {"seq": int(seq), "database": str(path)})
        return bytes.fromhex(body["state_hash"])

    def tag_history(self, name: str, seq: Optional[int] = None) -> None:
        """Names the state after command ``seq`` (default: the latest), pinning it against
        the server's retention. Names are 1 to 64 ASCII letters, digits, ``.``, ``_`` or ``-``."""
        body = {} if seq is None else {"seq": int(seq)}
        self._json("PUT", self._tag_path(name), body, idempotent=True)

    def untag_history(self, name: str) -> None:
        """Removes a history tag (:class:`NotFoundError` if there is none of that name)."""
        self._request("DELETE", self._tag_path(name))

    def history_tags(self) -> "dict[str, int]":
        """The history tags: name -> sequence number."""
        body = self._json("GET", "/history/tags", idempotent=True)
        return {str(t["name"]): int(t["seq"]) for t in body["tags"]}

    def set_retention(self, snapshots: int, seconds: Optional[int] = None) -> None:
        """Sets what the server's later checkpoints of this database keep (as
        ``retain_snapshots`` and ``retain_seconds``), until the server restarts."""
        from . import _check_retention
        _check_retention(snapshots, seconds)
        self._json("PUT", "/retention", {"snapshots": snapshots, "seconds": seconds}, idempotent=True)

    @property
    def recovery_report(self):
        """What opening the database found and did when the server started (a
        :class:`valori.RecoveryReport`; a torn tail names the segment file, without the
        server's directory)."""
        from . import RecoveryReport, TornTail
        r = self._json("GET", "/recovery", idempotent=True)
        t = r["torn_tail"]
        torn = None if t is None else TornTail(t["file"], int(t["offset"]), int(t["bytes"]), t["reason"])
        return RecoveryReport(int(r["snapshot_seq"]), int(r["replayed"]), int(r["seq"]), torn)

    def _tag_path(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"bad tag name {name!r}: a tag name is 1 to 64 ASCII letters, digits, '.', '_' or '-'")
        return "/history/tags/" + urllib.parse.quote(name, safe="")

    def __len__(self) -> int:
        """Number of records."""
        return int(self._json("GET", "", idempotent=True)["records"])

    def checkpoint(self) -> None:
        """Writes a snapshot on the server and retires the log it covers."""
        self._request("POST", "/checkpoint", idempotent=True)

    def flush(self) -> None:
        """Makes everything acknowledged durable on the server."""
        self._request("POST", "/flush", idempotent=True)

    def export_wal(self):
        """The database's newest snapshot state and the commands logged after it
        (a :class:`valori.WalExport`), for ``EmbeddedKernel.restore_from_wal``."""
        from . import WalExport
        base, seq, commands, h = _native.decode_export(self._request("GET", "/export", idempotent=True))
        return WalExport(bytes(base), seq, [bytes(c) for c in commands], bytes(h))

    def save_snapshot(self) -> bytes:
        """A portable snapshot of the state (what ``EmbeddedKernel.save_snapshot`` gives)."""
        return self._request("GET", "/snapshot", idempotent=True)

    def drop(self) -> None:
        """Deletes the database and its files on the server."""
        self._request("DELETE", "")
        self._dropped = True

    def close(self) -> None:
        """Flushes the database on the server (as ``Database.close`` does; a no-op in its
        fsync modes) and closes this client's connections; the server keeps the database
        open. Later calls raise :class:`MisuseError`."""
        if self._closed:
            return
        try:
            if not self._dropped:
                self.flush()
        except (NotFoundError, ForbiddenError):
            pass  # nothing to flush (not created yet), or a read-only key: nothing written
        finally:
            self._conns.reset()
            self._closed = True

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def __enter__(self) -> "KernelClient":
        """Returns the client itself; leaving the block closes its connections."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Closes the connections."""
        self.close()


__all__ = ["KernelClient", "UnauthorizedError", "ForbiddenError"]
