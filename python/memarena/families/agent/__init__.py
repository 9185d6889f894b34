"""The agent family: long-term memories for LLM agents, scored with LongMemEval's retrieval metrics."""
