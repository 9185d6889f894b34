"""Agent memory: memories for chat assistants, scored as LongMemEval scores retrievers.

:mod:`~memarena.families.agent.longmemeval` reads and writes LongMemEval's
released JSON, :mod:`~memarena.families.agent.generate` writes the same
schema offline from a seed, :mod:`~memarena.families.agent.metrics`
computes LongMemEval's retrieval metrics (recall_any, recall_all, ndcg_any
at session and turn level), and :mod:`~memarena.families.agent.retrievers`
holds the named tokenizers, BM25 (rank_bm25's ``BM25Okapi`` scores) and the
torch-free ``hashing`` and ``tfidf`` embedders (``embedder=<name>``).
"""
