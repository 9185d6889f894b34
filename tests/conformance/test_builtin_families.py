"""Every built-in experiment family passes :class:`~memarena.testing.conformance.FamilyConformance`."""

from __future__ import annotations

import pytest

from memarena.api import Family
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.testing.conformance import FamilyConformance

REGISTRY = Registry.from_plugin_manager(get_plugin_manager(autoload=False))
BUILTIN_FAMILIES = [REGISTRY.get("family", name) for name in REGISTRY.names("family")]

#: Overrides of a small run of each built-in family (a new family must add its own).
SMALL_RUNS: dict[str, list[str]] = {
    "paging": ["experiment=paging", "debug=tiny"],
    "retrieval": ["experiment=retrieval", "debug=tiny", "family.repeats=1", "family.single_queries=20"],
    "serving": ["experiment=serving", "workload=poisson", "workload.n_requests=200", "workload.rate=20"],
}

#: Label columns a built-in leaves out where they do not apply (paging: the
#: prediction labels of a run without predictions).
OPTIONAL_LABELS: dict[str, tuple[str, ...]] = {"paging": ("predictions", "prediction_error")}


def test_every_builtin_family_has_a_small_run() -> None:
    names = {c.name for c in BUILTIN_FAMILIES}
    assert {"paging", "retrieval", "serving"} <= names, sorted(names)
    assert not names - set(SMALL_RUNS), f"add a small run to SMALL_RUNS for {sorted(names - set(SMALL_RUNS))}"


@pytest.fixture(params=BUILTIN_FAMILIES, ids=lambda c: c.name)
def builtin_family(request: pytest.FixtureRequest) -> type[Family]:
    return request.param


class TestBuiltinFamily(FamilyConformance):
    @pytest.fixture
    def family_class(self, builtin_family: type[Family]) -> type[Family]:
        return builtin_family

    @pytest.fixture
    def family_overrides(self, builtin_family: type[Family]) -> list[str]:
        return SMALL_RUNS[builtin_family.name]

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
            "family.repeats=1",
            "family.single_queries=20",
        ]

    def test_tenant_columns(self, family_run) -> None:  # type: ignore[no-untyped-def]
        for row in family_run.record.rows:
            assert row["tenant_violations"] == 0 and row["tenant_bytes_total"] > 0
