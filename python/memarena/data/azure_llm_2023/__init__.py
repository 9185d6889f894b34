"""Azure LLM inference trace 2023 (conversation), CC-BY 4.0; see README.md beside this file."""
