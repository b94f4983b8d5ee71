"""The LangChain vector store (valori.integrations.langchain): LangChain's own standard suite
(``langchain-tests``' ``VectorStoreIntegrationTests``, sync and async, unmodified) on an
in-memory kernel, a durable Database and a KernelClient; then what the suite does not cover:
every metric, filters, maximal marginal relevance, bad input leaving nothing written,
reopening a durable store, and the mapping another program reads."""

import hashlib
import itertools
import json

import numpy as np
import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests  # noqa: E402

import valori  # noqa: E402
from valori.integrations import documents as mapping  # noqa: E402
from valori.integrations.langchain import ValoriVectorStore  # noqa: E402

_names = itertools.count()


class TestInMemory(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self):
        yield ValoriVectorStore(self.get_embeddings())


class TestDatabase(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = ValoriVectorStore(self.get_embeddings(), path=str(tmp_path / "db"), metric="l2")
        yield store
        if store.store is not None:
            store.store.close()


class TestKernelClient(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, node):
        name = f"lc{next(_names)}"
        store = ValoriVectorStore(self.get_embeddings(), url=node.url, database=name, metric="ip")
        yield store
        if store.store is not None:
            store.store.drop()


def _emb():
    return DeterministicFakeEmbedding(size=16)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
@pytest.mark.filterwarnings("ignore:Relevance scores must be between")
def test_search_filters_mmr_and_scores_on_every_metric(backend, metric):
    s = ValoriVectorStore(_emb(), **backend(metric))
    texts = [f"note {i}" for i in range(30)]
    metas = [{"room": ["kitchen", "lab", "dock"][i % 3], "n": i} for i in range(30)]
    ids = s.add_texts(texts, metas, ids=[f"n{i}" for i in range(30)])
    assert ids == [f"n{i}" for i in range(30)]
    # The text itself is nearest, at distance 0 under cosine and L2.
    (doc, dist), = s.similarity_search_with_score("note 7", k=1)
    assert (doc.id, doc.page_content, doc.metadata) == ("n7", "note 7", {"room": "lab", "n": 7})
    if metric != "ip":
        assert dist == pytest.approx(0.0, abs=1e-3)
    # Filters: equality, operators, $or / $and; k documents or as many as match.
    lab = s.similarity_search("note 7", k=50, filter={"room": "lab"})
    assert sorted(d.id for d in lab) == sorted(f"n{i}" for i in range(1, 30, 3))
    assert {d.id for d in s.similarity_search("note 7", k=3, filter={"n": {"$gte": 27}})} == {"n27", "n28", "n29"}
    assert {d.id for d in s.similarity_search("x", k=10, filter={"n": {"$in": [1, 2]}})} == {"n1", "n2"}
    both = s.similarity_search("x", k=10, filter={"$or": [{"n": 0}, {"$and": [{"room": "dock"}, {"n": {"$lt": 6}}]}]})
    assert {d.id for d in both} == {"n0", "n2", "n5"}
    assert s.similarity_search("x", k=4, filter={"room": "attic"}) == []
    # Ordering is the store's: same as an exact search by the embedding.
    q = _emb().embed_query("query")
    by_vec = s.similarity_search_by_vector_with_score(q, k=5)
    want = s.store.search(q, k=5, exact=True)
    assert [mapping.record_id("langchain", d.id) for d, _ in by_vec] == [h.id for h in want]
    assert [dist for _, dist in by_vec] == [h.distance for h in want]
    # Relevance scores are ordered like distances (for IP they are LangChain's, meaningful for
    # unit vectors only, which these are not).
    if metric != "ip":
        rel = s.similarity_search_with_relevance_scores("note 3", k=5)
        assert [d.id for d, _ in rel] == [d.id for d in s.similarity_search("note 3", k=5)]
        assert all(a >= b for (_, a), (_, b) in zip(rel, rel[1:]))
        assert rel[0][1] == pytest.approx(1.0, abs=1e-3)
    # MMR: k distinct documents from the fetch_k nearest, the nearest first.
    mmr = s.max_marginal_relevance_search("note 11", k=4, fetch_k=12)
    assert len({d.id for d in mmr}) == 4 and mmr[0].id == "n11"
    near12 = {d.id for d in s.similarity_search("note 11", k=12)}
    assert {d.id for d in mmr} <= near12
    assert {d.id for d in s.max_marginal_relevance_search("note 11", k=3, filter={"room": "dock"})} <= \
        {f"n{i}" for i in range(2, 30, 3)}


def test_bad_input_raises_and_writes_nothing(backend):
    s = ValoriVectorStore(_emb(), **backend("cosine"))
    s.add_texts(["keep"], [{"a": 1}], ids=["k"])
    before = s.state_hash()
    cases = [
        (dict(texts=["x", "y"], metadatas=[{"ok": 1}, {"bad": object()}]), "JSON"),
        (dict(texts=["x"], metadatas=[{"nan": float("nan")}]), "NaN"),
        (dict(texts=["x"], metadatas=["not a dict"]), "dict"),
        (dict(texts=["x", "y"], ids=["same", "same"]), "more than once"),
        (dict(texts=["x" * 70_000]), "split it"),
        (dict(texts=["x", "y"], ids=["only one"]), "ids"),
    ]
    for kwargs, words in cases:
        with pytest.raises(ValueError, match=words):
            s.add_texts(**kwargs)
        assert s.state_hash() == before
    # Embeddings of another length than the store's.
    other = ValoriVectorStore(DeterministicFakeEmbedding(size=8), store=s.store)
    with pytest.raises(ValueError, match="16"):
        other.add_texts(["z"])
    with pytest.raises(ValueError, match="16"):
        other.similarity_search("z")
    assert s.state_hash() == before
    assert [d.id for d in s.get_by_ids(["k"])] == ["k"]


def test_a_durable_store_reopens_and_another_program_reads_the_mapping(tmp_path):
    path = str(tmp_path / "db")
    s = ValoriVectorStore(_emb(), path=path, collection="robot-7")
    s.add_documents([Document(page_content="red cup", metadata={"room": "kitchen"}, id="cup"),
                     Document(page_content="dock", metadata={"room": "hall"})])
    # The same id in another collection is another document.
    other = ValoriVectorStore(_emb(), store=s.store, collection="robot-8")
    other.add_texts(["blue cup"], [{"room": "elsewhere"}], ids=["cup"])
    assert other.get_by_ids(["cup"])[0].page_content == "blue cup"
    h = s.state_hash()
    s.store.close()
    again = ValoriVectorStore(_emb(), path=path, collection="robot-7")
    assert again.state_hash() == h
    (cup,) = again.get_by_ids(["cup"])
    assert (cup.page_content, cup.metadata) == ("red cup", {"room": "kitchen"})
    # The same record, read as plain Valori: id, tag and JSON as docs/INTEGRATIONS.md says.
    rid = int.from_bytes(hashlib.blake2b(b"robot-7\0cup", digest_size=8, person=b"valori-doc-v1").digest(),
                         "little") & (2**63 - 1)
    assert mapping.record_id("robot-7", "cup") == rid
    r = again.store.get(rid)
    assert r.tag == int.from_bytes(hashlib.blake2b(b"robot-7", digest_size=8, person=b"valori-col-v1").digest(),
                                   "little") & (2**63 - 1)
    assert json.loads(r.metadata) == {"id": "cup", "metadata": {"room": "kitchen"}, "text": "red cup", "v": 1}
    assert len(again.store) == 3
    again.store.close()


def test_a_record_that_is_not_this_documents_is_never_overwritten():
    """A record at a document's record id that holds something else (another program's) is
    refused with nothing written; lookups and deletes of the document leave it alone."""
    s = ValoriVectorStore(_emb(), collection="a")
    s.add_texts(["x"], ids=["first"])
    rid = mapping.record_id("a", "doc")
    s.store.insert(np.ones(16), tag=5, metadata=b"not a document", id=rid)
    before = s.state_hash()
    with pytest.raises(ValueError, match="something else"):
        s.add_texts(["y", "z"], ids=["other", "doc"])
    assert s.state_hash() == before and s.get_by_ids(["other", "doc"]) == []
    s.delete(["doc"])
    assert s.store.get(rid).metadata == b"not a document"


def test_a_replacement_that_cannot_be_stored_keeps_the_old_document():
    """Replacing a document deletes the old record and inserts the new one: anything the insert
    would refuse (a zero vector under cosine, a component beyond Q16.16) is refused first, so
    the old document stays."""
    docs = mapping.DocumentStore(valori.EmbeddedKernel(dim=3, metric="cosine"), "c")
    docs.upsert(["a"], ["old"], [{}], [[1.0, 0.0, 0.0]])
    before = docs.store.state_hash()
    for bad in ([0.0, 0.0, 0.0], [1e6, 0.0, 0.0]):
        with pytest.raises(ValueError):
            docs.upsert(["a"], ["new"], [{}], [bad])
        assert docs.get("a").text == "old" and docs.store.state_hash() == before
