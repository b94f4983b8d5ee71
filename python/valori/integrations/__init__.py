"""Valori as the memory of agent frameworks (optional extras; docs/INTEGRATIONS.md).

- :mod:`valori.integrations.langchain`: a LangChain ``VectorStore`` (``pip install
  valori[langchain]``: langchain-core).
- :mod:`valori.integrations.llama_index`: a LlamaIndex vector store (``pip install
  valori[llama-index]``: llama-index-core).
- :mod:`valori.memory_server` (``valori-mcp``): an MCP knowledge-graph memory server
  (``pip install valori[mcp]``).

Every integration stores documents the same way (:mod:`valori.integrations.documents`,
mapping version 1), so another program reading the same database sees the same documents.
"""
