//! The LLM-serving model (in progress).
