"""Every built-in paging policy of the registry passes :class:`~memarena.testing.conformance.PolicyConformance`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from memarena.api import PagingPolicy
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.testing.conformance import PolicyConformance


def _builtin_policies() -> list[type[PagingPolicy]]:
    registry = Registry.from_plugin_manager(get_plugin_manager(autoload=False))
    classes = [registry.get("policy", name) for name in registry.names("policy")]
    return [c for c in classes if issubclass(c, PagingPolicy)]


BUILTIN_POLICIES = _builtin_policies()


def test_every_builtin_policy_is_native() -> None:
    assert BUILTIN_POLICIES, "no built-in policies registered"
    python = [c.name for c in BUILTIN_POLICIES if c.core_name is None]
    assert not python, f"built-ins must run natively (DESIGN: the built-ins never take the callback path): {python}"


@pytest.fixture(params=BUILTIN_POLICIES, ids=lambda c: c.name)
def policy_class(request: pytest.FixtureRequest) -> type[PagingPolicy]:
    return request.param


class TestBuiltinPolicy(PolicyConformance):
    @pytest.fixture
    def make_policy(self, policy_class: type[PagingPolicy]) -> Callable[[int], PagingPolicy]:
        return lambda capacity: policy_class(capacity=capacity)


class TestPythonReferencePolicy(PolicyConformance):
    """The suite's Python-policy path, exercised by memarena's own Python LRU."""

    @pytest.fixture
    def make_policy(self) -> Callable[[int], PagingPolicy]:
        from memarena.families.paging.reference import PyLRU

        return lambda capacity: PyLRU(capacity=capacity)
