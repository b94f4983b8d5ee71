"""A retrieval flow with LangChain over a durable Valori database (docs/INTEGRATIONS.md).

    python examples-python/langchain_retrieval.py [DATA_DIR]

Stores a robot's notes, retrieves the ones relevant to a question (with a metadata filter and
with maximal marginal relevance), reopens the database as another run would, and prints the
state hash that proves what the memory holds. Uses LangChain's deterministic fake embeddings
so it runs offline; use any LangChain ``Embeddings`` instead.
"""

import sys
import tempfile

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from valori.integrations.langchain import ValoriVectorStore


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="valori-langchain-") + "/db"
    embeddings = DeterministicFakeEmbedding(size=64)
    notes = [
        Document(id="cup", page_content="the red cup is on the kitchen table", metadata={"room": "kitchen"}),
        Document(id="dock", page_content="the charging dock is in the hall", metadata={"room": "hall"}),
        Document(id="door", page_content="the lab door sticks when it rains", metadata={"room": "lab"}),
        Document(id="plant", page_content="water the kitchen plant on mondays", metadata={"room": "kitchen"}),
    ]
    store = ValoriVectorStore(embeddings, path=path, collection="robot-7")
    store.add_documents(notes)
    retriever = store.as_retriever(search_kwargs={"k": 2, "filter": {"room": "kitchen"}})
    for doc in retriever.invoke("where is the red cup?"):
        print(f"kitchen: {doc.id}: {doc.page_content}")
    for doc in store.max_marginal_relevance_search("the charging dock is in the hall", k=2, fetch_k=4):
        print(f"diverse: {doc.id}: {doc.page_content}")
    digest = store.state_hash().hex()
    store.store.close()
    # Another run (or another program) opens the same database and sees the same documents.
    again = ValoriVectorStore(embeddings, path=path, collection="robot-7")
    assert again.state_hash().hex() == digest
    print("reopened:", [d.id for d in again.get_by_ids(["cup", "dock", "door", "plant"])])
    print("state hash:", digest)
    again.store.close()


if __name__ == "__main__":
    main()
