"""A LlamaIndex vector store over Valori (``pip install valori[llama-index]``).

>>> from llama_index.core import StorageContext, VectorStoreIndex
>>> from valori.integrations.llama_index import ValoriVectorStore
>>> store = ValoriVectorStore(path="/data/agent")                  # durable; or url=..., store=...
>>> index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store))
>>> index.as_retriever(similarity_top_k=3).retrieve("where is the cup?")

Nodes are stored as mapping version 1 (:mod:`valori.integrations.documents`): the node id is
the document id, its text the document text, and LlamaIndex's own node metadata
(``node_to_metadata_dict``: the user's metadata, ``ref_doc_id``, the serialised node) the
metadata. Data on a ``Database`` or a ``valori-node`` persists by itself: reopening the store
(``ValoriVectorStore(path=...)`` then ``VectorStoreIndex.from_vector_store``) gives the index
back.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (BasePydanticVectorStore, MetadataFilters,
                                                      VectorStoreQuery, VectorStoreQueryMode,
                                                      VectorStoreQueryResult)
    from llama_index.core.vector_stores.utils import (build_metadata_filter_fn, metadata_dict_to_node,
                                                      node_to_metadata_dict)
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError("valori.integrations.llama_index needs llama-index-core: "
                      "pip install 'valori[llama-index]'") from e


from .documents import DocumentStore, Stored, open_backend

__all__ = ["ValoriVectorStore"]


class ValoriVectorStore(BasePydanticVectorStore):
    """Nodes and their embeddings in a Valori store: ``store`` (an open ``EmbeddedKernel``,
    ``Database`` or ``KernelClient``), ``path`` (a ``Database`` directory), ``url`` and
    ``database`` (a database on a ``valori-node``), or none (in memory). ``collection``
    separates sets of nodes in one database; ``metric`` is the one a new database is created
    with. Similarities: ``1 - d`` under cosine (the cosine), the inner product under IP,
    ``1 / (1 + distance)`` under L2."""

    stores_text: bool = True
    flat_metadata: bool = False
    collection: str = "llama_index"
    metric: str = "cosine"

    _docs: DocumentStore = PrivateAttr()

    def __init__(self, *, store: Any = None, path: Optional[str] = None, url: Optional[str] = None,
                 database: str = "llama_index", collection: str = "llama_index", metric: str = "cosine",
                 **kwargs: Any) -> None:
        store, make, metric = open_backend(store, path, url, database, metric)
        super().__init__(collection=collection, metric=metric, **kwargs)
        self._docs = DocumentStore(store, collection, make, metric)

    @classmethod
    def class_name(cls) -> str:
        return "ValoriVectorStore"

    @property
    def client(self) -> Any:
        """The Valori store underneath (``None`` until the first add, if it was to be made)."""
        return self._docs.store

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        """Stores nodes with their embeddings (a node already stored under the id is
        replaced). A node without an embedding, metadata that is not JSON or embeddings of
        another length raise ``ValueError`` with nothing stored."""
        for n in nodes:
            if n.embedding is None:
                raise ValueError(f"node {n.node_id!r} has no embedding: embed nodes before adding them")
        ids = [n.node_id for n in nodes]
        texts = [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        metas = [node_to_metadata_dict(n, remove_text=True, flat_metadata=self.flat_metadata) for n in nodes]
        return self._docs.upsert(ids, texts, metas, [n.embedding for n in nodes])

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes every node of the source document ``ref_doc_id``."""
        gone = self._docs.all(lambda s: s.metadata.get("ref_doc_id") == ref_doc_id)
        self._docs.delete([s.id for s in gone])

    def delete_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None,
                     **delete_kwargs: Any) -> None:
        """Deletes the nodes with these ids that match ``filters`` (either may be left out)."""
        self._docs.delete([s.id for s in self._select(node_ids, filters)])

    def get_nodes(self, node_ids: Optional[List[str]] = None,
                  filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        """The stored nodes with these ids that match ``filters`` (in the ids' order if ids
        are given)."""
        return [_node(s) for s in self._select(node_ids, filters)]

    def clear(self) -> None:
        """Deletes every node of this collection."""
        self._docs.delete([s.id for s in self._docs.all()])

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nodes nearest to ``query.query_embedding`` that match its
        filters (and its ``doc_ids`` / ``node_ids``, if given): exact, in Valori's order.
        ``VectorStoreQueryMode.MMR`` picks among more for diversity (``mmr_threshold``)."""
        if query.query_embedding is None:
            raise ValueError("a query needs query_embedding (this store searches by vector)")
        if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            raise ValueError(f"query mode {query.mode.value!r} is not supported: use 'default' or 'mmr'")
        keep = self._filter(query.filters, query.node_ids, query.doc_ids)
        k = max(1, query.similarity_top_k)
        if query.mode == VectorStoreQueryMode.MMR:
            from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
            found = self._docs.search(query.query_embedding, max(20, 4 * k), keep, with_vectors=True)
            sims, ids = get_top_k_mmr_embeddings(query.query_embedding, [list(s.vector) for s, _ in found],
                                                 similarity_top_k=k, embedding_ids=list(range(len(found))),
                                                 mmr_threshold=query.mmr_threshold)
            picked = [(found[i][0], sim) for i, sim in zip(ids, sims)]
        else:
            picked = [(s, self._similarity(d)) for s, d in self._docs.search(query.query_embedding, k, keep)]
        return VectorStoreQueryResult(nodes=[_node(s) for s, _ in picked],
                                      similarities=[float(x) for _, x in picked],
                                      ids=[s.id for s, _ in picked])

    def state_hash(self) -> bytes:
        """The 32-byte state hash of the database underneath."""
        if self._docs.store is None:
            raise ValueError("the store is empty and not yet made: add nodes first")
        return self._docs.store.state_hash()

    # -- helpers ---------------------------------------------------------------------------

    def _similarity(self, distance: float) -> float:
        if self.metric == "cosine":
            return 1.0 - distance
        if self.metric == "ip":
            return -distance
        return 1.0 / (1.0 + float(np.sqrt(max(distance, 0.0))))

    @staticmethod
    def _filter(filters: Optional[MetadataFilters], node_ids: Optional[List[str]] = None,
                doc_ids: Optional[List[str]] = None):
        match = build_metadata_filter_fn(lambda s: s.metadata, filters)
        nodes = set(node_ids) if node_ids else None
        docs = set(doc_ids) if doc_ids else None

        def keep(s: Stored) -> bool:
            return ((nodes is None or s.id in nodes) and (docs is None or s.metadata.get("ref_doc_id") in docs)
                    and match(s))
        return keep

    def _select(self, node_ids: Optional[List[str]], filters: Optional[MetadataFilters]) -> List[Stored]:
        keep = self._filter(filters)
        if node_ids is not None:
            found = [self._docs.get(i) for i in node_ids]
            return [s for s in found if s is not None and keep(s)]
        return self._docs.all(keep)


def _node(s: Stored) -> BaseNode:
    return metadata_dict_to_node(s.metadata, text=s.text)
