"""The ``model`` presets carry the published config.json values the core was checked against."""

from __future__ import annotations

import pytest
import yaml
from hydra.utils import instantiate

from memarena import _core
from memarena.config import conf_dir
from memarena.serving import ModelSpec

PRESETS = sorted(p.stem for p in (conf_dir() / "model").glob("*.yaml"))


def test_every_core_model_has_a_preset() -> None:
    assert set(_core.builtin_models()) == set(PRESETS)
    assert {"llama2_7b", "llama2_13b", "llama3_8b", "llama3_70b", "opt_13b", "mistral_7b"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_matches_the_core_spec(name: str) -> None:
    node = yaml.safe_load((conf_dir() / "model" / f"{name}.yaml").read_text())
    spec = instantiate(node)
    assert isinstance(spec, ModelSpec) and spec.name == name
    assert "config.json" in spec.source
    core = _core.model_info(name)
    assert spec.info == core  # same architecture, so the same parameter count and KV bytes
