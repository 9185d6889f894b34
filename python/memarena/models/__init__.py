"""Models shared by the torch families (``kvcache``, ``training``); needs the extra ``memarena[torch]``.

* :class:`ByteLlama` — a small Llama-architecture byte-level decoder in
  plain torch, convertible to and from transformers' ``LlamaForCausalLM``;
* :class:`CacheSpec` — its KV geometry as a KV-compression method sees it
  (layers, heads, head size, rotary tables, trained length, storage dtype);
* :func:`load_fixture` — the fixture weights shipped in the wheel, trained
  by :mod:`memarena.models.train` (see ``fixture/CARD.md``);
* :mod:`memarena.models.corpus` — the data: CPython's stdlib sources split
  by file, and the associative-recall needle probe.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from memarena.models.bytellama import (
    ByteLlama,
    ByteLlamaConfig,
    CacheSpec,
    Rope,
    from_hf_state_dict,
    hf_config,
    to_hf_state_dict,
)

__all__ = [
    "FIXTURE_WEIGHTS",
    "ByteLlama",
    "ByteLlamaConfig",
    "CacheSpec",
    "Rope",
    "fixture_card",
    "from_hf_state_dict",
    "hf_config",
    "load_fixture",
    "to_hf_state_dict",
]

#: The fixture's weight file inside the package (fp16 tensors and the config, ``torch.save`` format).
FIXTURE_WEIGHTS = "fixture/bytellama.pt"


def _fixture_path() -> Any:
    return resources.files("memarena.models").joinpath(FIXTURE_WEIGHTS)


@lru_cache(maxsize=1)
def _fixture_state() -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    path = _fixture_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"the fixture weights {FIXTURE_WEIGHTS} are not in this install of memarena; "
            "regenerate them with: python -m memarena.models.train"
        )
    with path.open("rb") as f:
        blob = torch.load(f, map_location="cpu", weights_only=True)
    return blob["state_dict"], blob["meta"]


def load_fixture() -> ByteLlama:
    """The trained fixture model (float32 in memory, eval mode)."""
    state, meta = _fixture_state()
    model = from_hf_state_dict(state, ByteLlamaConfig.from_dict(meta["config"]))
    return model.eval()


def fixture_card() -> dict[str, Any]:
    """The fixture's metadata: config, corpus, split, steps, held-out bits/byte, needle accuracy, command."""
    return json.loads(json.dumps(_fixture_state()[1]))
