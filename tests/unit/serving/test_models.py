"""The ``model`` presets carry the published config.json values the core was checked against."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate

import memarena.families.serving
from memarena import _core
from memarena.families.serving import ModelSpec

# The serving family's own config tree holds the model presets.
MODEL_DIR = Path(memarena.families.serving.__file__).parent / "conf" / "model"
PRESETS = sorted(p.stem for p in MODEL_DIR.glob("*.yaml"))


def test_every_core_model_has_a_preset() -> None:
    assert set(_core.builtin_models()) == set(PRESETS)
    assert {"llama2_7b", "llama2_13b", "llama3_8b", "llama3_70b", "opt_13b", "mistral_7b"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_matches_the_core_spec(name: str) -> None:
    node = yaml.safe_load((MODEL_DIR / f"{name}.yaml").read_text())
    spec = instantiate(node)
    assert isinstance(spec, ModelSpec) and spec.name == name
    assert "config.json" in spec.source
    core = _core.model_info(name)
    assert spec.info == core  # same architecture, so the same parameter count and KV bytes
