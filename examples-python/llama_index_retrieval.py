"""A retrieval flow with LlamaIndex over a durable Valori database (docs/INTEGRATIONS.md).

    python examples-python/llama_index_retrieval.py [DATA_DIR]

Indexes a robot's notes (documents -> nodes -> embeddings -> Valori), retrieves with a
metadata filter, reopens the database as another run would and retrieves again, then prints
the state hash. The embedding here is a stand-in that needs no model (the same text, the same
vector); use any LlamaIndex embedding model instead.
"""

import hashlib
import sys
import tempfile

import numpy as np
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from valori.integrations.llama_index import ValoriVectorStore


class StandInEmbedding(BaseEmbedding):
    """64 numbers per text from a hash of the text: offline, deterministic, meaningless."""

    def _vector(self, text: str) -> list:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        v = np.random.default_rng(seed).standard_normal(64)
        return list(v / np.linalg.norm(v))

    def _get_text_embedding(self, text: str) -> list:
        return self._vector(text)

    def _get_query_embedding(self, query: str) -> list:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list:
        return self._vector(query)


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="valori-llama-") + "/db"
    notes = [("cup", "The red cup is on the kitchen table.", "kitchen"),
             ("dock", "The charging dock is in the hall.", "hall"),
             ("plant", "Water the kitchen plant on Mondays.", "kitchen")]
    docs = [Document(text=t, doc_id=i, metadata={"room": r}, excluded_embed_metadata_keys=["room"])
            for i, t, r in notes]
    store = ValoriVectorStore(path=path, collection="robot-7")
    index = VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=StandInEmbedding(),
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0, tokenizer=str.split,
                                          id_func=lambda i, doc: f"{doc.doc_id}-{i}")])  # stable node ids
    kitchen = MetadataFilters(filters=[MetadataFilter(key="room", value="kitchen")])
    for hit in index.as_retriever(similarity_top_k=5, filters=kitchen).retrieve("Water the kitchen plant on Mondays."):
        print(f"kitchen: {hit.node.ref_doc_id}: {hit.node.get_content()}")
    digest = store.state_hash().hex()
    store.client.close()
    again = ValoriVectorStore(path=path, collection="robot-7")
    index = VectorStoreIndex.from_vector_store(again, embed_model=StandInEmbedding())
    top = index.as_retriever(similarity_top_k=1).retrieve("The charging dock is in the hall.")[0]
    print(f"reopened: {top.node.ref_doc_id}: {top.node.get_content()}")
    assert again.state_hash().hex() == digest
    print("state hash:", digest)
    again.client.close()


if __name__ == "__main__":
    main()
