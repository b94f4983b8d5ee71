"""Valori as the memory of agent frameworks (optional extras; docs/INTEGRATIONS.md).

- :mod:`valori.integrations.langchain`: a LangChain ``VectorStore`` (``pip install
  valori[langchain]``: langchain-core).

Every integration stores documents the same way (:mod:`valori.integrations.documents`,
mapping version 1), so another program reading the same database sees the same documents.
"""
