"""The ``model`` presets carry the published config.json values the core was checked against."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate

import memarena.families.serving
from memarena import _core
from memarena.errors import InvalidConfigError
from memarena.families.serving import ModelSpec

# The serving family's own config tree holds the model presets.
MODEL_DIR = Path(memarena.families.serving.__file__).parent / "conf" / "model"
PRESETS = sorted(p.stem for p in MODEL_DIR.glob("*.yaml"))


#: Published parameter totals (model cards / safetensors metadata).
PUBLISHED_PARAMS = {
    "llama2_7b": 6_738_415_616,
    "llama2_13b": 13_015_864_320,
    "llama2_70b": 68_976_648_192,
    "llama3_8b": 8_030_261_248,
    "llama3_70b": 70_553_706_496,
    "mistral_7b": 7_241_732_096,
    "opt_13b": 12_853_473_280,
}


def test_the_presets_are_the_only_model_specs() -> None:
    assert set(PRESETS) == set(PUBLISHED_PARAMS)
    assert not hasattr(_core, "builtin_models")  # the Rust side reads these same files (ModelSpec::preset)
    with pytest.raises(InvalidConfigError, match="model"):
        _core.model_info("llama3_8b")  # a spec crosses as a dict only


@pytest.mark.parametrize("name", PRESETS)
def test_preset_matches_the_core_spec(name: str) -> None:
    node = yaml.safe_load((MODEL_DIR / f"{name}.yaml").read_text())
    spec = instantiate(node)
    assert isinstance(spec, ModelSpec) and spec.name == name
    assert "config.json" in spec.source
    core = _core.model_info({k: v for k, v in node.items() if k not in ("_target_", "source")})
    assert spec.info == core
    published = PUBLISHED_PARAMS[name]
    assert abs(core["num_params"] - published) / published < 0.005, (core["num_params"], published)
