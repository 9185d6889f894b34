"""The ``embedder`` component kind: registered through its hook, chosen with ``embedder=<name>``, listed."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from hydra.errors import MissingConfigException
from hydra.utils import instantiate

from memarena import hookimpl
from memarena.api import KINDS, Embedder
from memarena.config import compose
from memarena.errors import InvalidConfigError, PluginError
from memarena.families.agent.retrievers import HashingEmbedder, TfidfEmbedder
from memarena.plugins import get_plugin_manager
from memarena.registry import REGISTRATION_HOOKS, Registry
from tests.agent import embedder_plugin

ROOT = Path(__file__).resolve().parents[2]
PM = get_plugin_manager(autoload=False, plugins=[embedder_plugin])


def test_the_kind_and_its_hook() -> None:
    assert KINDS["embedder"] is Embedder
    assert REGISTRATION_HOOKS["memarena_register_embedders"] == "embedder"
    registry = Registry.from_plugin_manager(PM)
    assert registry.names("embedder") == ["hashing", "length_test", "tfidf"]
    assert registry.entry("embedder", "hashing").plugin.module == "memarena.families.agent.plugin"
    assert registry.entry("embedder", "length_test").plugin.module == "tests.agent.embedder_plugin"


def test_embedder_override_composes_and_instantiates() -> None:
    cfg = compose(["embedder=tfidf", "embedder.dim=64", "embedder.tokenizer=whitespace"], pm=PM)
    emb = instantiate(cfg.embedder)
    assert isinstance(emb, TfidfEmbedder) and emb.dim == 64 and emb.config.tokenizer == "whitespace"
    assert emb.embed(["a b", "c"]).shape == (2, 64)
    default = instantiate(compose(["embedder=hashing"], pm=PM).embedder)
    assert type(default) is HashingEmbedder and default.dim == 1024
    plugin = instantiate(compose(["embedder=length_test", "embedder.scale=0"], pm=PM).embedder)
    np.testing.assert_array_equal(plugin.embed(["abc"]), [[1.0, 0.0]])
    assert "embedder" not in compose([], pm=PM)  # none chosen: no key


def test_a_bad_embedder_choice_or_value_is_named() -> None:
    with pytest.raises(MissingConfigException, match=r"(?s)'embedder/word2vec'.*hashing\s+length_test\s+tfidf"):
        compose(["embedder=word2vec"], pm=PM)
    build = instantiate(compose(["embedder=hashing", "embedder.word_ngrams=4"], pm=PM).embedder, _partial_=True)
    with pytest.raises(InvalidConfigError, match="'embedder.word_ngrams' must be >= 1 and <= 3, got 4"):
        build()


def test_the_hook_refuses_what_is_not_an_embedder() -> None:
    class NotAnEmbedder:
        name: ClassVar[str] = "nope"

    class Plugin:
        @hookimpl
        def memarena_register_embedders(self) -> list[type[Any]]:
            return [NotAnEmbedder]

    with pytest.raises(PluginError, match=r"memarena_register_embedders\(\).*not a subclass of memarena.api.Embedder"):
        Registry.from_plugin_manager(get_plugin_manager(autoload=False, plugins=[Plugin()]))


def test_an_embedder_is_abstract_until_it_embeds() -> None:
    class Half(Embedder):
        name: ClassVar[str] = "half"

        @dataclasses.dataclass
        class Config:
            _target_: str = "x.Half"

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]
    assert embedder_plugin.LengthEmbedder().fit(["corpus"]) is None  # fit defaults to learning nothing


def test_memarena_plugins_lists_a_plugins_embedder(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MEMARENA_DISABLE_PLUGIN_AUTOLOAD": "1",
        "MEMARENA_PLUGINS": "tests.agent.embedder_plugin",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "memarena.app", "plugins"]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "  embedder:\n    embedder=length_test" in res.stdout
    assert "embedder=hashing" in res.stdout and "embedder=tfidf" in res.stdout
    res = subprocess.run([*cmd, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    listed = {p["name"]: p["components"] for p in json.loads(res.stdout)}
    assert [c["name"] for c in listed["tests.agent.embedder_plugin"]["embedder"]] == ["length_test"]
    assert [c["name"] for c in listed["memarena.families.agent.plugin"]["embedder"]] == ["hashing", "tfidf"]
