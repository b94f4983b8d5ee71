"""The LlamaIndex vector store (valori.integrations.llama_index), in the patterns of
LlamaIndex's own vector-store tests (add, query with metadata filters, get and delete nodes,
delete by source document, clear, MMR), on an in-memory kernel, a durable Database and a
KernelClient, for every metric; bad input leaving nothing written; and an end-to-end flow:
documents -> VectorStoreIndex -> retriever, persisted, reopened and retrieved again."""

import hashlib

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding  # noqa: E402
from llama_index.core.node_parser import SentenceSplitter  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (FilterCondition, FilterOperator, MetadataFilter,  # noqa: E402
                                                  MetadataFilters, VectorStoreQuery, VectorStoreQueryMode)

from valori.integrations.llama_index import ValoriVectorStore  # noqa: E402

DIM = 16


def embed(text: str) -> list:
    """A deterministic embedding: the same text, the same unit vector (for tests)."""
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    v = np.random.default_rng(seed).standard_normal(DIM)
    return list(v / np.linalg.norm(v))


class HashEmbedding(BaseEmbedding):
    """``embed`` as a LlamaIndex embedding model."""

    def _get_text_embedding(self, text: str) -> list:
        return embed(text)

    def _get_query_embedding(self, query: str) -> list:
        return embed(query)

    async def _aget_query_embedding(self, query: str) -> list:
        return embed(query)


def _nodes():
    out = []
    for i in range(12):
        n = TextNode(text=f"memory {i}", id_=f"node-{i}",
                     metadata={"room": ["kitchen", "lab", "dock"][i % 3], "n": i, "tags": ["a", "b"][: 1 + i % 2]},
                     embedding=embed(f"memory {i}"))
        n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{i % 4}")
        out.append(n)
    return out


def _filters(*fs, condition=FilterCondition.AND):
    return MetadataFilters(filters=[MetadataFilter(key=k, value=v, operator=op) for k, v, op in fs],
                           condition=condition)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_add_query_filter_get_and_delete(backend, metric):
    s = ValoriVectorStore(**backend(metric))
    assert s.query(VectorStoreQuery(query_embedding=embed("x"), similarity_top_k=3)).ids == []
    assert s.add(_nodes()) == [f"node-{i}" for i in range(12)]
    r = s.query(VectorStoreQuery(query_embedding=embed("memory 5"), similarity_top_k=3))
    assert r.ids[0] == "node-5" and len(r.ids) == 3 and r.nodes[0].get_content() == "memory 5"
    assert r.nodes[0].metadata == {"room": "dock", "n": 5, "tags": ["a", "b"]}
    assert r.nodes[0].ref_doc_id == "doc-1"
    assert r.similarities[0] == max(r.similarities)
    if metric != "l2":
        assert r.similarities[0] == pytest.approx(1.0, abs=1e-3)
    # Filters, as LlamaIndex's SimpleVectorStore reads them.
    q = lambda f, k=20: s.query(VectorStoreQuery(query_embedding=embed("q"), similarity_top_k=k, filters=f)).ids  # noqa: E731
    assert sorted(q(_filters(("room", "lab", FilterOperator.EQ)))) == sorted(f"node-{i}" for i in (1, 4, 7, 10))
    assert sorted(q(_filters(("n", 9, FilterOperator.GTE)))) == ["node-10", "node-11", "node-9"]
    assert sorted(q(_filters(("n", [0, 1], FilterOperator.IN)))) == ["node-0", "node-1"]
    assert sorted(q(_filters(("n", 0, FilterOperator.EQ), ("n", 11, FilterOperator.EQ),
                             condition=FilterCondition.OR))) == ["node-0", "node-11"]
    assert len(q(_filters(("room", "kitchen", FilterOperator.EQ), condition=FilterCondition.NOT))) == 8
    assert sorted(q(_filters(("tags", "b", FilterOperator.CONTAINS)))) == sorted(f"node-{i}" for i in range(1, 12, 2))
    assert len(q(_filters(("room", "lab", FilterOperator.EQ)), k=2)) == 2
    # Restricted to source documents or node ids.
    r = s.query(VectorStoreQuery(query_embedding=embed("q"), similarity_top_k=20, doc_ids=["doc-0"]))
    assert sorted(r.ids) == ["node-0", "node-4", "node-8"]
    r = s.query(VectorStoreQuery(query_embedding=embed("q"), similarity_top_k=20, node_ids=["node-3", "nope"]))
    assert r.ids == ["node-3"]
    # MMR: distinct nodes, the nearest first.
    r = s.query(VectorStoreQuery(query_embedding=embed("memory 2"), similarity_top_k=4,
                                 mode=VectorStoreQueryMode.MMR, mmr_threshold=0.5))
    assert r.ids[0] == "node-2" and len(set(r.ids)) == 4
    # Get, delete by source document, delete nodes, clear.
    assert [n.node_id for n in s.get_nodes(["node-2", "node-1", "missing"])] == ["node-2", "node-1"]
    assert len(s.get_nodes(filters=_filters(("room", "dock", FilterOperator.EQ)))) == 4
    s.delete("doc-1")
    assert s.get_nodes(["node-1", "node-5", "node-9"]) == []
    s.delete_nodes(["node-0"])
    s.delete_nodes(filters=_filters(("n", 10, FilterOperator.GTE)))
    left = sorted(n.node_id for n in s.get_nodes())
    assert left == sorted(f"node-{i}" for i in (2, 3, 4, 6, 7, 8))
    s.clear()
    assert s.get_nodes() == [] and len(s.client) == 0


def test_bad_input_raises_and_writes_nothing(backend):
    s = ValoriVectorStore(**backend())
    s.add(_nodes()[:2])
    before = s.state_hash()
    bare = TextNode(text="no embedding", id_="bare")
    with pytest.raises(ValueError, match="no embedding"):
        s.add([_nodes()[3], bare])
    short = TextNode(text="short", id_="short", embedding=[1.0, 2.0])
    with pytest.raises(ValueError, match="16"):
        s.add([short])
    big = TextNode(text="x" * 70_000, id_="big", embedding=embed("big"))
    with pytest.raises(ValueError, match="split it"):
        s.add([_nodes()[4], big])
    with pytest.raises(ValueError, match="query_embedding"):
        s.query(VectorStoreQuery(query_str="text only"))
    with pytest.raises(ValueError, match="not supported"):
        s.query(VectorStoreQuery(query_embedding=embed("x"), mode=VectorStoreQueryMode.SPARSE))
    assert s.state_hash() == before


def test_documents_to_index_to_retriever_persisted_and_reloaded(tmp_path):
    path = str(tmp_path / "agent")
    # (The hash embedding has no notion of meaning: each text is embedded alone, without its
    # metadata, so that a query of the same text finds it.)
    docs = [Document(text=t, doc_id=i, metadata={"room": r}, excluded_embed_metadata_keys=["room"])
            for t, i, r in [("The red cup is on the kitchen table.", "cup", "kitchen"),
                            ("The charging dock is in the hall.", "dock", "hall"),
                            ("The lab door sticks when it rains.", "door", "lab")]]
    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=0, tokenizer=str.split)
    store = ValoriVectorStore(path=path, collection="robot-7")
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store),
                                            embed_model=HashEmbedding(), transformations=[splitter])
    hits = index.as_retriever(similarity_top_k=1).retrieve("The charging dock is in the hall.")
    assert [h.node.ref_doc_id for h in hits] == ["dock"] and hits[0].node.metadata["room"] == "hall"
    digest = store.state_hash()
    store.client.close()
    # Another process's view: the same database, reopened.
    again = ValoriVectorStore(path=path, collection="robot-7")
    assert again.state_hash() == digest
    index = VectorStoreIndex.from_vector_store(again, embed_model=HashEmbedding())
    hits = index.as_retriever(similarity_top_k=3).retrieve("The lab door sticks when it rains.")
    assert hits[0].node.ref_doc_id == "door" and hits[0].node.get_content() == "The lab door sticks when it rains."
    index.delete_ref_doc("door")
    assert all(h.node.ref_doc_id != "door" for h in index.as_retriever(similarity_top_k=3).retrieve("door"))
    again.client.close()
