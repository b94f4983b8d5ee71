"""A LangChain ``VectorStore`` over Valori (``pip install valori[langchain]``).

>>> from langchain_core.embeddings import DeterministicFakeEmbedding
>>> from valori.integrations.langchain import ValoriVectorStore
>>> store = ValoriVectorStore(DeterministicFakeEmbedding(size=8))   # in memory
>>> store.add_texts(["red cup on the table", "charging dock"], ids=["cup", "dock"])
['cup', 'dock']
>>> [d.id for d in store.similarity_search("charging dock", k=1)]
['dock']

Documents are stored as mapping version 1 (:mod:`valori.integrations.documents`): one record
per document, its id derived from the document's string id, its collection as the tag, its
text and metadata as JSON. On a ``Database`` (``path=``) they survive restarts and a crash; on
a ``KernelClient`` (``url=``) they live on a ``valori-node`` server; and the store's state hash
(:meth:`ValoriVectorStore.state_hash`) proves what it holds.
"""

from __future__ import annotations

import math
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError("valori.integrations.langchain needs langchain-core: "
                      "pip install 'valori[langchain]'") from e


from .documents import DocumentStore, Stored, open_backend

__all__ = ["ValoriVectorStore"]


class ValoriVectorStore(VectorStore):
    """Documents and their embeddings in a Valori store.

    Where they live (one of):

    - ``store``: an open :class:`valori.EmbeddedKernel`, :class:`valori.Database` or
      :class:`valori.KernelClient`;
    - ``path``: a :class:`valori.Database` directory (created on the first add);
    - ``url`` (and ``database``, default ``"langchain"``): a database on a ``valori-node``;
    - none of them: an in-memory :class:`valori.EmbeddedKernel`.

    ``collection`` separates sets of documents in one database (as Chroma's collections do);
    ``metric`` (``"cosine"``, ``"l2"`` or ``"ip"``) is the one a new database is created with.
    """

    def __init__(self, embedding: Embeddings, *, store: Any = None, path: Optional[str] = None,
                 url: Optional[str] = None, database: str = "langchain", collection: str = "langchain",
                 metric: str = "cosine", relevance_score_fn: Optional[Callable[[float], float]] = None) -> None:
        store, make, metric = open_backend(store, path, url, database, metric)
        self._embedding = embedding
        self._metric = metric
        self._relevance = relevance_score_fn
        self._docs = DocumentStore(store, collection, make, metric)

    # -- what LangChain asks of a vector store ------------------------------------------

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def store(self) -> Any:
        """The Valori store underneath (``None`` until the first add, if it was to be made)."""
        return self._docs.store

    def add_texts(self, texts: Iterable[str], metadatas: Optional[List[dict]] = None,
                  ids: Optional[List[str]] = None, **kwargs: Any) -> List[str]:
        """Embeds and stores texts; a text whose id is stored already replaces it. Returns the
        ids (new UUIDs for those not given). Bad input (metadata that is not JSON, embeddings
        of the wrong length, ids given twice) raises ``ValueError`` with nothing stored."""
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(metadatas)} metadatas")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(ids)} ids")
        ids = [i if i else str(uuid.uuid4()) for i in (ids or [None] * len(texts))]
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        if not texts:
            return []
        vectors = self._embedding.embed_documents(texts)
        return self._docs.upsert(ids, texts, metadatas, vectors)

    def add_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        """Stores documents (their ``id`` used where given and no ``ids`` are)."""
        ids = kwargs.pop("ids", None)
        if ids is None:
            ids = [d.id for d in documents]
        return self.add_texts([d.page_content for d in documents], [dict(d.metadata) for d in documents],
                              ids=list(ids), **kwargs)

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes the documents with these ids (missing ones are skipped)."""
        if ids is None:
            raise ValueError("delete needs the ids of the documents to delete")
        self._docs.delete(ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        """The stored documents with these ids, in that order; missing ones are left out."""
        out = []
        for doc_id in ids:
            d = self._docs.get(doc_id)
            if d is not None:
                out.append(_document(d))
        return out

    def similarity_search(self, query: str, k: int = 4, filter: Optional[Dict[str, Any]] = None,
                          **kwargs: Any) -> List[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Optional[Dict[str, Any]] = None,
                                     **kwargs: Any) -> List[Tuple[Document, float]]:
        """The ``k`` nearest documents with their distances (lower is closer: ``1 - cos``
        under cosine, the squared distance under L2, the negated inner product under IP).
        ``filter`` keeps documents whose metadata matches it (``{"key": value}``, Chroma's
        ``$eq``/``$ne``/``$gt``/``$gte``/``$lt``/``$lte``/``$in``/``$nin``/``$and``/``$or``)."""
        if self._docs.store is None:
            return []
        return self.similarity_search_by_vector_with_score(self._embedding.embed_query(query), k, filter=filter)

    def similarity_search_by_vector(self, embedding: List[float], k: int = 4,
                                    filter: Optional[Dict[str, Any]] = None, **kwargs: Any) -> List[Document]:
        return [d for d, _ in self.similarity_search_by_vector_with_score(embedding, k, filter=filter)]

    def similarity_search_by_vector_with_score(self, embedding: List[float], k: int = 4,
                                               filter: Optional[Dict[str, Any]] = None,
                                               **kwargs: Any) -> List[Tuple[Document, float]]:
        """As :meth:`similarity_search_with_score`, from an embedding."""
        return [(_document(s), dist) for s, dist in self._docs.search(embedding, k, filter)]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, filter: Optional[Dict[str, Any]] = None,
                                      **kwargs: Any) -> List[Document]:
        if self._docs.store is None:
            return []
        return self.max_marginal_relevance_search_by_vector(self._embedding.embed_query(query), k, fetch_k,
                                                            lambda_mult, filter=filter)

    def max_marginal_relevance_search_by_vector(self, embedding: List[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5,
                                                filter: Optional[Dict[str, Any]] = None,
                                                **kwargs: Any) -> List[Document]:
        """``k`` documents among the ``fetch_k`` nearest, chosen for relevance and diversity
        (LangChain's maximal marginal relevance over the stored embeddings)."""
        found = self._docs.search(embedding, max(fetch_k, k), filter, with_vectors=True)
        if not found:
            return []
        picked = maximal_marginal_relevance(np.asarray(embedding, dtype=np.float64),
                                            [s.vector for s, _ in found], k=k, lambda_mult=lambda_mult)
        return [_document(found[i][0]) for i in picked]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Distances as LangChain's relevance scores (as langchain-chroma maps its own)."""
        if self._relevance is not None:
            return self._relevance
        if self._metric == "cosine":
            return self._cosine_relevance_score_fn
        if self._metric == "ip":
            return self._max_inner_product_relevance_score_fn
        # Valori's L2 distance is squared; LangChain's function takes the distance itself.
        return lambda d: self._euclidean_relevance_score_fn(math.sqrt(max(d, 0.0)))

    @classmethod
    def from_texts(cls, texts: List[str], embedding: Embeddings, metadatas: Optional[List[dict]] = None,
                   *, ids: Optional[List[str]] = None, **kwargs: Any) -> "ValoriVectorStore":
        """A store (made from ``kwargs`` as in the constructor) holding ``texts``."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # -- what only Valori gives ---------------------------------------------------------

    def state_hash(self) -> bytes:
        """The 32-byte state hash of the database under the store: the same documents added
        the same way give the same hash on every machine."""
        if self._docs.store is None:
            raise ValueError("the store is empty and not yet made: add documents first")
        return self._docs.store.state_hash()


def _document(s: Stored) -> Document:
    return Document(page_content=s.text, metadata=s.metadata, id=s.id)
