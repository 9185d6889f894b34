"""Every built-in experiment family passes :class:`~memarena.testing.conformance.FamilyConformance`."""

from __future__ import annotations

import pytest

from memarena.api import Family
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.testing.conformance import FamilyConformance

REGISTRY = Registry.from_plugin_manager(get_plugin_manager(autoload=False))
BUILTIN_FAMILIES = [REGISTRY.get("family", name) for name in REGISTRY.names("family")]


def small_run(family: str) -> list[str]:
    """A small run of a family: its experiment preset (named like the family) shrunk by its debug=tiny part.

    The convention every family (and a plugin's) follows, so a new family adds no test list.
    """
    return [f"experiment={family}", "debug=tiny"]


#: Label columns a built-in leaves out where they do not apply (paging: the
#: prediction labels of a run without predictions).
OPTIONAL_LABELS: dict[str, tuple[str, ...]] = {
    "paging": ("predictions", "prediction_error"),
    # a serving run labels its rows with the kv_compression method only when one is selected
    "serving": ("kv_compression",),
}


def test_every_builtin_family_has_a_preset_and_a_debug_part() -> None:
    from memarena.config import compose, search_path_dirs

    names = {c.name for c in BUILTIN_FAMILIES}
    assert {"paging", "retrieval", "serving", "kvcache"} <= names, sorted(names)
    pm = get_plugin_manager(autoload=False)
    tiny = {f.stem for d in search_path_dirs(pm) for f in (d / "family_debug").glob("*.yaml")}
    for name in names:
        assert f"{name}_tiny" in tiny, f"family {name!r} ships no family_debug/{name}_tiny.yaml"
        assert compose(small_run(name), pm=pm).family._target_.endswith(REGISTRY.get("family", name).__name__)


@pytest.fixture(params=BUILTIN_FAMILIES, ids=lambda c: c.name)
def builtin_family(request: pytest.FixtureRequest) -> type[Family]:
    return request.param


def _no_fixture_weights() -> bool:
    from importlib import resources

    return not resources.files("memarena.models").joinpath("fixture/bytellama.pt").is_file()


class TestBuiltinFamily(FamilyConformance):
    @pytest.fixture
    def family_class(self, builtin_family: type[Family], monkeypatch: pytest.MonkeyPatch) -> type[Family]:
        if builtin_family.name == "kvcache" and _no_fixture_weights():
            # Until the trained fixture is in the tree: a seeded random model of its shape (tests only).
            from memarena.families.kvcache import family
            from tests.kvcache.random_model_plugin import random_model

            monkeypatch.setattr(family, "load_model", random_model)
        return builtin_family

    @pytest.fixture
    def family_overrides(self, builtin_family: type[Family]) -> list[str]:
        return small_run(builtin_family.name)

    @pytest.fixture
    def optional_label_columns(self, builtin_family: type[Family]) -> tuple[str, ...]:
        return OPTIONAL_LABELS.get(builtin_family.name, ())


class TestTenantRetrieval(FamilyConformance):
    """The retrieval family on its tenant preset: the index's declared tenant methods feed the rows."""

    @pytest.fixture
    def family_class(self) -> type[Family]:
        return REGISTRY.get("family", "retrieval")

    @pytest.fixture
    def family_overrides(self) -> list[str]:
        return [
            "experiment=retrieval_tenants",
            "debug=tiny",
            "index=curator",
            "index.ef_search=200",
        ]

    def test_tenant_columns(self, family_run) -> None:  # type: ignore[no-untyped-def]
        for row in family_run.record.rows:
            assert row["tenant_violations"] == 0 and row["tenant_bytes_total"] > 0
