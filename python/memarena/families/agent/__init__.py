"""Agent memory: memories for chat assistants, scored as LongMemEval scores retrievers.

:mod:`~memarena.families.agent.longmemeval` reads and writes LongMemEval's
released JSON, :mod:`~memarena.families.agent.generate` writes the same
schema offline from a seed, and :mod:`~memarena.families.agent.metrics`
computes LongMemEval's retrieval metrics (recall_any, recall_all, ndcg_any
at session and turn level).
"""
