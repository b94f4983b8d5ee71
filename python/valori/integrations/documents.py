"""How agent frameworks' documents are stored in Valori: mapping version 1
(docs/INTEGRATIONS.md).

- A document is one record. Its **record id** is derived from its collection and string id:
  ``BLAKE2b-64(collection + "\\0" + id, person="valori-doc-v1")`` (UTF-8) as a little-endian
  integer, top bit cleared (so ids stay below 2**63 and automatic ids after them never run
  out). Any program computes the same record id from the same names; no table of ids is kept.
- Its **tag** is its collection's: ``BLAKE2b-64(collection, person="valori-col-v1")``, top bit
  cleared. Searches filter by it, so collections share a database without seeing each other.
- Its **metadata bytes** are UTF-8 JSON, keys sorted, no spaces:
  ``{"id": <string id>, "metadata": {...}, "text": <content>, "v": 1}``. At most 65,536 bytes
  (the kernel's limit): a larger document raises ``ValueError`` before anything is written.
- Its **vector** is the embedding, stored in Q16.16 (so the same embeddings give the same
  state hash on every machine).

A record whose metadata is not a version 1 document (written by something else) is not a
document: lookups skip it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence

import numpy as np

#: The mapping's version, stored in every document as ``"v"``.
VERSION = 1
#: The largest metadata a record holds (the kernel's ``MAX_META_LEN``).
MAX_METADATA_BYTES = 65_536
_TOP = (1 << 63) - 1


def _hash63(text: str, person: bytes) -> int:
    if not isinstance(text, str):
        raise TypeError(f"ids and collection names are strings, got {type(text).__name__}")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{text!r} is not valid text (it cannot be UTF-8): {e}") from None
    digest = hashlib.blake2b(data, digest_size=8, person=person).digest()
    return int.from_bytes(digest, "little") & _TOP


def record_id(collection: str, doc_id: str) -> int:
    """The record id of the document with string id ``doc_id`` in ``collection``."""
    if not isinstance(collection, str) or not isinstance(doc_id, str):
        raise TypeError("collection names and document ids are strings")
    return _hash63(collection + "\0" + doc_id, b"valori-doc-v1")


def collection_tag(collection: str) -> int:
    """The tag of the records of collection ``collection``."""
    return _hash63(collection, b"valori-col-v1")


class Stored(NamedTuple):
    """A document as stored: its string id, text, metadata and embedding."""

    id: str
    text: str
    metadata: Dict[str, Any]
    vector: Optional[np.ndarray]


def encode(doc_id: str, text: str, metadata: Optional[Dict[str, Any]]) -> bytes:
    """The metadata bytes of a document; ``ValueError`` for metadata that is not JSON (or not
    a dict) or a document over :data:`MAX_METADATA_BYTES`."""
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError(f"a document id must be a non-empty string, got {doc_id!r}")
    if not isinstance(text, str):
        raise ValueError(f"document {doc_id!r}: its text must be a string, got {type(text).__name__}")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise ValueError(f"document {doc_id!r}: metadata must be a dict, got {type(metadata).__name__}")
    try:
        raw = json.dumps({"id": doc_id, "metadata": metadata, "text": text, "v": VERSION},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"document {doc_id!r}: metadata must be JSON (str keys; str, number, "
                         f"bool, None, list and dict values; no NaN): {e}") from None
    data = raw.encode("utf-8")
    if len(data) > MAX_METADATA_BYTES:
        raise ValueError(f"document {doc_id!r}: {len(data)} bytes of text and metadata as JSON, over "
                         f"the {MAX_METADATA_BYTES} a record holds; split it")
    return data


def decode(metadata: bytes) -> Optional[Dict[str, Any]]:
    """The document in a record's metadata bytes, or ``None`` if they hold none."""
    try:
        d = json.loads(metadata.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if (not isinstance(d, dict) or d.get("v") != VERSION or not isinstance(d.get("id"), str)
            or not isinstance(d.get("text"), str) or not isinstance(d.get("metadata"), dict)):
        return None
    return d


#: Components must be smaller than this in magnitude (Q16.16).
_LIMIT = 32768.0


def check_vectors(vectors: Sequence[Sequence[float]], dim: Optional[int],
                  metric: Optional[str] = None) -> np.ndarray:
    """The embeddings as an ``(n, dim)`` float64 array; ``ValueError`` if they differ in
    length, differ from the store's ``dim``, hold NaN or infinity or a component Q16.16 cannot
    hold (magnitude 32768 or more), or, under cosine, are all zero."""
    rows = [list(v) for v in vectors]
    if not rows:
        return np.zeros((0, dim or 0))
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"embeddings of different lengths: {sorted(widths)}")
    arr = np.asarray(rows, dtype=np.float64)
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"embeddings have {arr.shape[1]} components; this store holds {dim}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("an embedding holds NaN or infinity")
    if np.any(np.abs(arr) >= _LIMIT):
        raise ValueError("an embedding has a component of magnitude 32768 or more (beyond Q16.16)")
    if metric == "cosine" and np.any(~arr.any(axis=1)):
        raise ValueError("an embedding is all zeros, which has no direction (cosine)")
    return arr


def matches(metadata: Dict[str, Any], where: Optional[Dict[str, Any]]) -> bool:
    """Whether a document's metadata satisfies a filter: every key equal to its value,
    ``$and``/``$or`` of filters, and the operators ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``,
    ``$lte``, ``$in``, ``$nin`` as Chroma reads them."""
    if not where:
        return True
    for key, want in where.items():
        if key == "$and":
            if not all(matches(metadata, w) for w in want):
                return False
        elif key == "$or":
            if not any(matches(metadata, w) for w in want):
                return False
        elif isinstance(want, dict):
            if key not in metadata and not set(want) <= {"$ne", "$nin"}:
                return False
            have = metadata.get(key)
            for op, v in want.items():
                if not _op(op, have, v):
                    return False
        elif metadata.get(key, _MISSING) != want:
            return False
    return True


_MISSING = object()


def _op(op: str, have: Any, v: Any) -> bool:
    try:
        if op == "$eq":
            return have == v
        if op == "$ne":
            return have != v
        if op == "$in":
            return have in v
        if op == "$nin":
            return have not in v
        if op == "$gt":
            return have > v
        if op == "$gte":
            return have >= v
        if op == "$lt":
            return have < v
        if op == "$lte":
            return have <= v
    except TypeError:
        return False
    raise ValueError(f"unknown filter operator {op!r}: use $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, "
                     "$and or $or")


def open_backend(store: Any = None, path: Optional[str] = None, url: Optional[str] = None,
                 database: str = "default", metric: str = "cosine") -> tuple:
    """Where an adapter's documents live: ``(store, make, metric)``. ``store`` is the open
    Valori store (the one given, the ``Database`` at ``path`` or the database ``database`` on
    the ``valori-node`` at ``url`` if it exists, else ``None``); ``make(dim)`` creates it when
    the first embeddings tell the dimension; ``metric`` is the store's own if it exists (else
    the one given, for creating)."""
    if sum(x is not None for x in (store, path, url)) > 1:
        raise ValueError("give at most one of store, path and url")
    if metric not in ("cosine", "l2", "ip"):
        raise ValueError(f"unknown metric {metric!r}: use 'cosine', 'l2' or 'ip'")
    import os

    import valori
    if path is not None:
        exists = os.path.isdir(path) and bool(os.listdir(path))
        store = valori.Database(path) if exists else None
        make = lambda dim: valori.Database(path, dim=dim, metric=metric)  # noqa: E731
    elif url is not None:
        try:
            store = valori.KernelClient(url, database)  # an existing database
        except valori.NotFoundError:
            store = None  # made on the first add
        make = lambda dim: valori.KernelClient(url, database, dim=dim, metric=metric)  # noqa: E731
    else:
        make = lambda dim: valori.EmbeddedKernel(dim=dim, metric=metric)  # noqa: E731
    if store is not None:
        metric = getattr(store, "metric", None) or metric
    return store, make, metric


class DocumentStore:
    """Documents over a Valori store (an ``EmbeddedKernel``, a ``Database`` or a
    ``KernelClient``), in one collection; what the framework adapters share.

    ``make_store(dim)`` makes the store when the first embeddings tell its dimension (a store
    given already is used as it is)."""

    def __init__(self, store: Any = None, collection: str = "default", make_store: Any = None,
                 metric: Optional[str] = None) -> None:
        self.store = store
        self.collection = collection
        self.tag = collection_tag(collection)
        self._make = make_store
        self._metric = metric

    @property
    def dim(self) -> Optional[int]:
        if self.store is None:
            return None
        dim = getattr(self.store, "dim", None)
        return dim if dim else None

    def _ensure(self, dim: int) -> Any:
        if self.store is None:
            if self._make is None:
                raise ValueError("no store to write to")
            self.store = self._make(dim)
        return self.store

    def upsert(self, ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[Optional[Dict[str, Any]]],
               vectors: Sequence[Sequence[float]]) -> List[str]:
        """Adds documents, replacing those with the same ids. Everything is checked first:
        bad input raises ``ValueError`` with nothing written."""
        self.write(self.prepare(ids, texts, metadatas, vectors))
        return list(ids)

    def prepare(self, ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[Optional[Dict[str, Any]]],
                vectors: Sequence[Sequence[float]]) -> List[tuple]:
        """Checks documents for :meth:`write` (``ValueError`` for anything wrong, nothing
        written): ``(record id, replaced record or None, metadata bytes, vector)`` each."""
        if not (len(ids) == len(texts) == len(metadatas) == len(vectors)):
            raise ValueError(f"{len(ids)} ids, {len(texts)} texts, {len(metadatas)} metadatas and "
                             f"{len(vectors)} embeddings: give one of each per document")
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if list(ids).count(i) > 1})
            raise ValueError(f"ids given more than once in one call: {dup}")
        metric = getattr(self.store, "metric", None) if self.store is not None else self._metric
        arr = check_vectors(vectors, self.dim, metric)
        blobs = [encode(i, t, m) for i, t, m in zip(ids, texts, metadatas)]
        if not ids:
            return []
        store = self._ensure(arr.shape[1])
        rids = [record_id(self.collection, i) for i in ids]
        olds = [store.get(r) for r in rids]
        for doc_id, old in zip(ids, olds):
            if old is not None:
                d = decode(old.metadata)
                if d is None or d["id"] != doc_id or old.tag != self.tag:
                    raise ValueError(f"document {doc_id!r} of collection {self.collection!r} maps to "
                                     f"record {old.id}, which holds something else (written by another "
                                     "program?): nothing was written")
        return list(zip(rids, olds, blobs, arr))

    def write(self, prepared: List[tuple]) -> None:
        """Writes documents checked by :meth:`prepare` (a replaced one is deleted, then
        inserted again: its graph nodes go with it)."""
        for rid, old, blob, vec in prepared:
            if old is not None:
                self.store.delete(rid)
            self.store.insert(vec, tag=self.tag, metadata=blob, id=rid)

    def get(self, doc_id: str, vector: bool = False) -> Optional[Stored]:
        """The document with this id in this collection, or ``None``."""
        if self.store is None:
            return None
        r = self.store.get(record_id(self.collection, doc_id))
        if r is None or r.tag != self.tag:
            return None
        d = decode(r.metadata)
        if d is None or d["id"] != doc_id:
            return None
        return Stored(d["id"], d["text"], d["metadata"], r.vector if vector else None)

    def delete(self, ids: Iterable[str]) -> int:
        """Deletes the documents with these ids (missing ones are skipped); how many went."""
        n = 0
        for doc_id in ids:
            if self.get(doc_id) is not None:
                self.store.delete(record_id(self.collection, doc_id))
                n += 1
        return n

    def all(self, where: Any = None) -> List[Stored]:
        """Every document of this collection that satisfies ``where`` (a filter as
        :func:`matches` reads it, or a function of a document), in record id order."""
        if self.store is None or len(self.store) == 0:
            return []
        probe = np.ones(self.dim or 1)
        found = self.search(probe, len(self.store), where)
        return sorted((s for s, _ in found), key=lambda s: record_id(self.collection, s.id))

    def search(self, vector: Sequence[float], k: int, where: Any = None,
               with_vectors: bool = False) -> List[tuple]:
        """The ``k`` nearest documents of this collection to ``vector`` that satisfy
        ``where`` (a filter as :func:`matches` reads it, or a function of a
        :class:`Stored` document), as ``(Stored, distance)`` nearest first (ties by record
        id)."""
        keep = where if callable(where) else (lambda s: matches(s.metadata, where))
        if k <= 0:
            raise ValueError(f"k must be at least 1, got {k}")
        if self.store is None or len(self.store) == 0:
            return []
        query = check_vectors([vector], self.dim)[0]
        total = len(self.store)
        want = k if not where else min(total, max(4 * k, 32))
        while True:
            hits = self.store.search(query, k=want, tag=self.tag, exact=True)
            out = []
            for h in hits:
                r = self.store.get(h.id)
                d = None if r is None else decode(r.metadata)
                if d is None:
                    continue
                doc = Stored(d["id"], d["text"], d["metadata"], r.vector if with_vectors else None)
                if not keep(doc):
                    continue
                out.append((doc, float(h.distance)))
                if len(out) == k:
                    return out
            if len(hits) < want or want >= total:
                return out
            want = min(total, want * 4)

