"""valori: a deterministic memory engine for AI agents and robots.

Vectors are stored in Q16.16 fixed point beside a knowledge graph, so the same operations give
the same BLAKE3 state hash on every machine. :class:`EmbeddedKernel` keeps everything in
memory; :class:`Database` is durable (write-ahead log, snapshots, crash recovery);
:class:`KernelClient` is a database served by ``valori-node``, with the same methods.

Vectors may be lists, or numpy arrays of float32 or float64 (any memory layout: transposed
and strided arrays are copied into row order); float64 input is converted to fixed point
directly, without a detour through float32.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from .errors import (
    BusyError,
    CorruptError,
    DimensionError,
    Error,
    ExistsError,
    FullError,
    InsufficientSizeError,
    InternalError,
    InvalidInputError,
    MisuseError,
    NotFoundError,
    PoisonedError,
    ValoriIOError,
)

__version__ = _native.version()

ArrayLike = Union[Sequence[float], Sequence[Sequence[float]], np.ndarray]


class SearchResult(NamedTuple):
    """One search hit: the record id and its distance (lower is closer)."""

    id: int
    distance: float


class Record(NamedTuple):
    """A stored record. ``vector`` holds the stored fixed-point values as float64."""

    id: int
    tag: Optional[int]
    metadata: bytes
    vector: np.ndarray


class Edge(NamedTuple):
    """A directed graph edge."""

    id: int
    kind: int
    source: int
    target: int
    weight: Optional[float]


class TornTail(NamedTuple):
    """The damaged or incomplete end of the log that opening cut off (never acknowledged)."""

    file: str
    offset: int
    bytes: int
    reason: str


class RecoveryReport(NamedTuple):
    """What opening a :class:`Database` found and did."""

    snapshot_seq: int
    replayed: int
    seq: int
    torn_tail: Optional[TornTail]


class LogEntry(NamedTuple):
    """One logged command of a :class:`Database`'s history."""

    seq: int
    kind: str
    bytes: int
    chain: bytes


class WalExport(NamedTuple):
    """A database's newest snapshot state and the commands logged after it."""

    base_state: bytes
    base_seq: int
    commands: list
    state_hash: bytes


def _dtype(arr: np.ndarray) -> Tuple[type, str]:
    """The dtype to hand to the engine: float32 stays, float64 and integers go as float64."""
    if arr.dtype == np.float32:
        return np.float32, "f32"
    if arr.dtype == np.float64 or arr.dtype.kind in "iu":
        return np.float64, "f64"
    raise InvalidInputError(f"vectors of dtype {arr.dtype} are not supported; use float32 or float64")


def _vector(v: ArrayLike, dim: int) -> Tuple[bytes, str]:
    """One vector as contiguous native-order bytes (copies any layout in order)."""
    arr = np.asarray(v)
    dt, name = _dtype(arr)
    if arr.ndim != 1 or arr.shape[0] != dim:
        raise DimensionError(f"expected a vector of {dim} components, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dt).tobytes(), name


def _matrix(m: ArrayLike, dim: int) -> Tuple[bytes, str, int]:
    """An (n, dim) array as contiguous row-major bytes (transposed input is copied by rows)."""
    arr = np.asarray(m)
    dt, name = _dtype(arr)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise DimensionError(f"expected an (n, {dim}) array of vectors, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dt).tobytes(), name, arr.shape[0]


def _tags(tags: Optional[Iterable[int]], n: int) -> Optional[bytes]:
    """``n`` tags as native uint64 bytes, or None."""
    if tags is None:
        return None
    arr = np.ascontiguousarray(np.asarray(list(tags) if not isinstance(tags, np.ndarray) else tags, dtype=np.uint64))
    if arr.shape != (n,):
        raise InvalidInputError(f"expected {n} tags, got {arr.shape[0] if arr.ndim else 0}")
    return arr.tobytes()


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _index_int(name: str, value: object) -> int:
    """An index parameter as a u32 (the engine checks its range, naming it)."""
    if not _is_int(value) or value < 0:  # type: ignore[operator]
        raise InvalidInputError(f"{name} must be a positive int, not {value!r}")
    return min(int(value), 2**32 - 1)  # type: ignore[call-overload]


def _ef(ef: object) -> int:
    """``ef`` as a u32 (the engine refuses 0 and values over 65536, naming it)."""
    if not _is_int(ef) or ef < 0:  # type: ignore[operator]
        raise InvalidInputError(f"ef must be an int from 1 to 65536, not {ef!r}")
    return min(int(ef), 2**32 - 1)  # type: ignore[call-overload]


class IndexParams(NamedTuple):
    """A store's approximate index: kind (``"hnsw"``), links per node, candidates per insert."""

    kind: str
    m: int
    ef_construction: int


def _check_retention(snapshots: object, seconds: object) -> None:
    """Refuses retention settings the engine cannot take, naming the keyword."""
    if not (_is_int(snapshots) and 1 <= snapshots <= 0xFFFFFFFF):  # type: ignore[operator]
        raise InvalidInputError(
            f"retain_snapshots must be an int from 1 to 4294967295, not {snapshots!r}")
    if seconds is not None and not (_is_int(seconds) and 0 <= seconds < 2**64 - 1):  # type: ignore[operator]
        raise InvalidInputError(
            f"retain_seconds must be None or an int of seconds >= 0, not {seconds!r}")


class _Store:
    """Methods shared by EmbeddedKernel and Database."""

    _n: "_native.Kernel | _native.Database"
    dim: int

    def insert(self, vector: ArrayLike, tag: Optional[int] = None, metadata: bytes = b"",
               id: Optional[int] = None) -> int:
        """Inserts one vector (``dim`` components) with an optional tag and metadata bytes;
        returns its id: ``id`` if given (0 to 2**64 - 2; one already taken raises
        :class:`ExistsError` and changes nothing), else the next automatic id (one past the
        largest ever used)."""
        data, dt = _vector(vector, self.dim)
        return self._n.insert(data, dt, tag, bytes(metadata), _id(id))

    def insert_batch(self, vectors: ArrayLike, tags: Optional[Iterable[int]] = None) -> range:
        """Inserts an ``(n, dim)`` array (or list of lists) atomically, as one command; returns
        the (consecutive) ids. A :class:`Database` logs a batch as one record of at most 1 GiB
        (about 260,000 vectors of 1,024 components): a larger one raises
        :class:`InvalidInputError` and changes nothing; insert it in parts."""
        data, dt, n = _matrix(vectors, self.dim)
        first, count = self._n.insert_batch(data, dt, _tags(tags, n))
        return range(first, first + count)

    def delete(self, id: int) -> None:
        """Deletes a record, the graph nodes linked to it and their edges."""
        self._n.delete(id)

    def set_metadata(self, id: int, metadata: bytes) -> None:
        """Replaces a record's metadata (``b""`` removes it)."""
        self._n.set_meta(id, bytes(metadata))

    def set_tag(self, id: int, tag: Optional[int]) -> None:
        """Replaces a record's tag (``None`` removes it)."""
        self._n.set_tag(id, tag)

    def get(self, id: int) -> Optional[Record]:
        """The record with this id, or ``None``."""
        r = self._n.get(id)
        if r is None:
            return None
        tag, meta, vec = r
        return Record(id, tag, bytes(meta), np.asarray(vec, dtype=np.float64))

    def search(self, query: ArrayLike, k: int = 10, tag: Optional[int] = None,
               exact: bool = False, ef: int = 64) -> list:
        """The k nearest records to ``query``, as :class:`SearchResult` ordered by
        (distance, id); only records tagged ``tag`` if given. ``k`` larger than the store
        returns everything; ``k = 0`` raises :class:`InvalidInputError`.

        With an index (``index="hnsw"``) the search is approximate, keeping ``ef`` candidates
        (1 to 65536; more is closer to exact, and ``ef`` at or above the number of records is
        exact); ``exact=True`` gives the exact answer. Without an index it is always exact.
        Distances are exact either way, and the same commands give the same answers on every
        machine."""
        data, dt = _vector(query, self.dim)
        ids, dists = self._n.search(data, dt, _k(k), tag, bool(exact), _ef(ef))
        return [SearchResult(i, d) for i, d in zip(ids, dists)]

    def search_batch(self, queries: ArrayLike, k: int = 10, tag: Optional[int] = None,
                     exact: bool = False, ef: int = 64) -> Tuple[np.ndarray, np.ndarray]:
        """Searches every row of an ``(n, dim)`` array; returns ``(ids, distances)`` arrays of
        shape ``(n, min(k, matches))`` (uint64 and float64), with the same results as
        :meth:`search` for each row (``exact`` and ``ef`` as there). An exact batch is one
        pass over the store per chunk of queries (much faster than one ``search`` per query).
        Runs without the GIL and can be interrupted with Ctrl-C between chunks."""
        data, dt, n = _matrix(queries, self.dim)
        ids, dists, width = self._n.search_batch(data, dt, n, _k(k), tag, bool(exact), _ef(ef))
        return (np.frombuffer(ids, dtype=np.uint64).reshape(n, width),
                np.frombuffer(dists, dtype=np.float64).reshape(n, width))

    @property
    def index(self) -> Optional[IndexParams]:
        """The approximate index (``IndexParams("hnsw", m, ef_construction)``), or ``None``."""
        p = self._n.index_params()
        return None if p is None else IndexParams("hnsw", p[0], p[1])

    def create_node(self, kind: int, record: Optional[int] = None, label: bytes = b"",
                    id: Optional[int] = None) -> int:
        """Creates a graph node, optionally linked to a record; returns its id (``id`` if
        given: one already taken raises :class:`ExistsError`)."""
        return self._n.create_node(kind, record, bytes(label), _id(id))

    def delete_node(self, id: int) -> None:
        """Deletes a node and every edge into or out of it."""
        self._n.delete_node(id)

    def create_edge(self, kind: int, source: int, target: int, weight: Optional[float] = None,
                    id: Optional[int] = None) -> int:
        """Creates a directed edge between existing nodes; returns its id (``id`` if given:
        one already taken raises :class:`ExistsError`)."""
        return self._n.create_edge(kind, source, target, weight, _id(id))

    def delete_edge(self, id: int) -> None:
        """Deletes an edge."""
        self._n.delete_edge(id)

    def neighbors(self, node: int, direction: str = "out") -> list:
        """Edges at a node: ``direction`` is ``"out"``, ``"in"`` or ``"both"``."""
        return [Edge(*e) for e in self._n.neighbors(node, direction)]

    def traverse(self, start: int, hops: int, direction: str = "out", kind: Optional[int] = None) -> list:
        """Nodes within ``hops`` edges of ``start`` as ``(depth, node)``, ordered by (depth, node)."""
        return list(self._n.traverse(start, hops, direction, kind))

    def state_hash(self) -> bytes:
        """The 32-byte BLAKE3 state hash (identical on every machine for the same commands)."""
        return self._n.state_hash()

    def __len__(self) -> int:
        """Number of records."""
        return self._n.count()


def _id(id: Optional[int]) -> Optional[int]:
    """Validates a caller-chosen id (the kernel refuses the reserved 2**64 - 1)."""
    if id is None:
        return None
    if isinstance(id, bool) or not isinstance(id, (int, np.integer)) or not 0 <= int(id) < 2**64 - 1:
        raise InvalidInputError(f"id must be an integer from 0 to 2**64 - 2, got {id!r}")
    return int(id)


def _k(k: int) -> int:
    """Validates ``k`` (0 is passed through so the engine reports it) and caps it to u32."""
    if k < 0:
        raise InvalidInputError(f"k must be positive, got {k}")
    return min(k, 2**32 - 1)


class EmbeddedKernel(_Store):
    """An in-memory Valori kernel (no files).

    >>> kernel = EmbeddedKernel(max_records=1000, dim=4)
    >>> kernel.insert([0.1, 0.2, 0.3, 0.4])
    0
    """

    def __init__(self, max_records: Optional[int] = None, dim: int = 0, metric: str = "l2",
                 max_nodes: Optional[int] = None, max_edges: Optional[int] = None,
                 index: Optional[str] = None, m: int = 16, ef_construction: int = 200) -> None:
        """A kernel of dimension ``dim`` and metric ``"l2"``, ``"ip"`` or ``"cosine"``; the
        ``max_*`` limits make inserts beyond them raise :class:`FullError`; an unknown metric
        raises :class:`InvalidInputError`. ``index="hnsw"`` keeps an approximate index
        (``m`` links per node, 2 to 64; ``ef_construction`` candidates per insert, ``m`` to
        65536) that :meth:`search` uses; it is deterministic, like the state."""
        self.dim = dim
        self._n = _native.Kernel(dim, metric, max_records, max_nodes, max_edges, index,
                                 _index_int("m", m), _index_int("ef_construction", ef_construction))
        self._limits = (max_records, max_nodes, max_edges)
        self._metric = metric
        #: The metric (``"l2"``, ``"ip"`` or ``"cosine"``), as on :class:`Database`.
        self.metric = metric

    def get_state_hash(self) -> bytes:
        """The 32-byte state hash (``.hex()`` for text)."""
        return self.state_hash()

    def save_snapshot(self) -> bytes:
        """The whole state as bytes to restore later, maybe elsewhere: the canonical encoding
        framed with its state hash, so :meth:`restore_snapshot` refuses a damaged copy."""
        return self._n.snapshot()

    def restore_snapshot(self, snapshot: bytes) -> None:
        """Replaces the state with a snapshot from :meth:`save_snapshot` (all or nothing;
        :class:`CorruptError` if any byte of it is damaged). The ``max_*`` limits stay."""
        self._n.restore(bytes(snapshot))

    def apply(self, command: bytes) -> None:
        """Applies one encoded command (as exported from a database's WAL)."""
        self._n.apply(bytes(command))

    def restore_from_wal(self, wal, expected_hash: Optional[bytes] = None) -> int:
        """Rebuilds or advances the state from a database's log, all or nothing.

        Given a :class:`WalExport` (``Database.export_wal()``), replaces the state with the
        export's base state plus its commands and checks that the result hashes to the
        export's ``state_hash``. Given encoded commands, applies them in order to the current
        state; with ``expected_hash``, the result must hash to it. A command that does not
        apply, or a hash that differs, raises :class:`CorruptError` and changes nothing.
        Returns how many commands were applied."""
        if isinstance(wal, WalExport):
            if expected_hash is not None and bytes(expected_hash) != wal.state_hash:
                raise InvalidInputError("expected_hash differs from the export's state_hash")
            self._n.restore_export(bytes(wal.base_state), int(wal.base_seq),
                                   [bytes(c) for c in wal.commands], bytes(wal.state_hash))
            return len(wal.commands)
        h = None if expected_hash is None else bytes(expected_hash)
        if h is not None and len(h) != 32:
            raise InvalidInputError(f"expected_hash is {len(h)} bytes; a state hash has 32")
        return self._n.apply_all([bytes(c) for c in wal], h)

    def search_raw(self, query: Sequence[int], k: int, tag: Optional[int] = None,
                   exact: bool = True, ef: int = 64) -> list:
        """Search with a raw Q16.16 query (``int(value * 65536)``): ``[(id, exact distance in
        units of 2**-32)]``. Exact unless ``exact=False``, which searches the index (if there
        is one) keeping ``ef`` candidates, as :meth:`search` does."""
        return self._n.search_raw([int(x) for x in query], _k(k), tag, bool(exact), _ef(ef))


class Database(_Store):
    """A durable Valori database in directory ``path``.

    ``durability`` is ``"fsync"`` (default: every commit fsynced before it returns),
    ``"group"`` (the same, concurrent writers share fsyncs) or ``"none"`` (bulk loads).
    Use it as a context manager to flush and close.
    """

    def __init__(self, path: str, dim: Optional[int] = None, metric: Optional[str] = None,
                 durability: str = "fsync", checkpoint_wal_bytes: int = 256 << 20,
                 create: bool = True, salvage: bool = False, retain_snapshots: int = 1,
                 retain_seconds: Optional[int] = None, index: Optional[str] = None,
                 m: int = 16, ef_construction: int = 200) -> None:
        """Opens (or, with ``dim``, creates) the database; recovers from its WAL and snapshot.
        A directory without a database raises :class:`NotFoundError` unless ``dim`` is given
        and ``create`` is true. ``metric`` (``"l2"``, ``"ip"`` or ``"cosine"``) is the one to
        create with, and an existing database's must equal it; ``None`` (the default) accepts
        an existing database's and creates with ``"l2"``. ``dim`` likewise. An unknown
        ``metric`` or ``durability``, or one that differs from the database's, raises
        :class:`InvalidInputError`. ``retain_snapshots`` is how many snapshots a checkpoint
        keeps, with the log after the oldest of them, so past states stay reachable
        (:meth:`history`, :meth:`state_hash_at`, :meth:`checkout`); 1 keeps only the newest.
        ``retain_seconds`` also keeps every snapshot written within that many seconds.
        ``index="hnsw"`` (with ``m`` and ``ef_construction``, as on :class:`EmbeddedKernel`)
        gives the database an approximate index, kept in its snapshots; given for an existing
        database without one, the index is built over its records; other parameters than the
        database's raise :class:`InvalidInputError`. ``None`` keeps the database's."""
        _check_retention(retain_snapshots, retain_seconds)
        self._n = _native.Database(str(path), dim, metric, durability, checkpoint_wal_bytes, create, salvage,
                                   retain_snapshots, retain_seconds, index, _index_int("m", m),
                                   _index_int("ef_construction", ef_construction))
        #: Components per vector and the metric (``"l2"``, ``"ip"`` or ``"cosine"``).
        self.dim, self.metric = self._n.config()
        self.path = str(path)

    @classmethod
    def follow(cls, url: str, database: str, path: str) -> "Database":
        """A read-only copy of ``database`` as its leader publishes it to the NATS JetStream
        servers at ``url`` (``"nats://host:port"``, several separated by commas), kept in
        directory ``path`` (docs/REPLICATION.md). A ``path`` without a database starts from
        the newest snapshot in the stream's bucket. The leader's records are applied in the
        background, each checked against its chain value first; a record that does not
        verify stops the follower (:meth:`replication` says why) and is never applied.
        Writes raise :class:`ReadOnlyError`. :meth:`close` stops following."""
        self = cls.__new__(cls)
        self._n = _native.Database.follow(str(url), str(database), str(path))
        self.dim, self.metric = self._n.config()
        self.path = str(path)
        return self

    def replication(self) -> "dict":
        """Where this database stands in a replication stream, in the shape of
        :meth:`KernelClient.replication`: ``role`` (``"follower"`` for one opened with
        :meth:`follow`, else ``"none"``), ``sequence`` and ``state_hash`` (hex), and for a
        follower ``pending`` (records on the stream not yet applied), ``error`` (why it
        stopped, or None) and ``retrying`` (the servers' last failure while it retries)."""
        r = self._n.replication()
        out = {"role": "none" if r is None else "follower", "sequence": self.sequence(),
               "state_hash": self.state_hash().hex()}
        if r is not None:
            _applied, out["pending"], out["error"], out["retrying"] = r
        return out

    def wait_applied(self, seq: int, timeout: float = 30.0) -> bool:
        """For a follower: waits up to ``timeout`` seconds until record ``seq`` is applied;
        False if the time ran out. Raises if the follower stopped before it."""
        return self._n.wait_applied(int(seq), float(timeout))

    def __enter__(self) -> "Database":
        """Returns the database itself; leaving the block flushes and closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Flushes and closes (also when the block raised)."""
        self.close()

    def checkpoint(self) -> None:
        """Writes a snapshot and retires the WAL it covers."""
        self._n.checkpoint()

    def flush(self) -> None:
        """Makes everything acknowledged durable (useful with ``durability="none"``)."""
        self._n.flush()

    def close(self) -> None:
        """Flushes and closes; later calls raise :class:`MisuseError`."""
        self._n.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._n.is_closed()

    @property
    def recovery_report(self) -> RecoveryReport:
        """What opening found and did: the snapshot it started from, the log records it
        replayed, and a damaged tail of the log it cut off (``torn_tail``: file, offset, bytes,
        reason), which only a crash or power cut during an unacknowledged write leaves."""
        snap, replayed, seq, torn = self._n.recovery_report()
        return RecoveryReport(snap, replayed, seq, None if torn is None else TornTail(*torn))

    def export_wal(self) -> WalExport:
        """The newest snapshot's state and the commands logged after it, read from disk."""
        base, seq, commands, h = self._n.export()
        return WalExport(bytes(base), seq, [bytes(c) for c in commands], bytes(h))

    def sequence(self) -> int:
        """The sequence number of the last command (the database's position in its history)."""
        return self._n.sequence()

    def history(self, from_seq: int = 1, limit: int = 100) -> "list[LogEntry]":
        """Up to ``limit`` logged commands from sequence number ``from_seq`` on, from the
        retained log: sequence number, command name (``"insert"``, ``"delete"``, ...), bytes
        and the WAL chain value after it."""
        return [LogEntry(s, k, n, bytes(c)) for s, k, n, c in self._n.history(from_seq, limit)]

    def state_hash_at(self, seq: int) -> bytes:
        """The state hash after command ``seq``, rebuilt from the retained snapshots and log;
        :class:`NotFoundError` once retention no longer reaches it (see ``retain_snapshots``)."""
        return bytes(self._n.state_hash_at(seq))

    def checkout(self, seq: int, path: str) -> bytes:
        """Writes the state after command ``seq`` as a new database in directory ``path``
        (which must hold none); returns its state hash."""
        return bytes(self._n.checkout(seq, str(path)))

    def tag_history(self, name: str, seq: Optional[int] = None) -> None:
        """Names the state after command ``seq`` (default: the latest), pinning it against
        retention. Names are 1 to 64 ASCII letters, digits, ``.``, ``_`` or ``-``."""
        self._n.tag_history(name, self.sequence() if seq is None else seq)

    def untag_history(self, name: str) -> None:
        """Removes a history tag (:class:`NotFoundError` if there is none of that name)."""
        self._n.untag_history(name)

    def history_tags(self) -> "dict[str, int]":
        """The history tags: name -> sequence number."""
        return dict(self._n.history_tags())

    def set_retention(self, snapshots: int, seconds: Optional[int] = None) -> None:
        """Sets what later checkpoints keep (as ``retain_snapshots`` and ``retain_seconds``)."""
        _check_retention(snapshots, seconds)
        self._n.set_retention(snapshots, seconds)


from .client import ForbiddenError, KernelClient, UnauthorizedError  # noqa: E402


def replay(base_state: bytes, commands: Iterable[bytes]) -> bytes:
    """Rebuilds the state from an export's base state and commands; returns its hash."""
    return _native.replay(bytes(base_state), [bytes(c) for c in commands])


__all__ = [
    "EmbeddedKernel", "Database", "KernelClient", "UnauthorizedError", "ForbiddenError", "SearchResult", "Record", "Edge", "WalExport", "RecoveryReport", "LogEntry",
    "TornTail", "replay",
    "Error", "InternalError", "MisuseError", "InvalidInputError", "DimensionError", "FullError",
    "NotFoundError", "ExistsError", "InsufficientSizeError", "CorruptError", "BusyError", "ValoriIOError",
    "PoisonedError",
]
