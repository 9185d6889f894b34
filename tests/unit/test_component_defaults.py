"""Defaults are defined once: a component built with no arguments equals one built from its Config defaults.

The ``Config`` dataclasses are the user-facing source of defaults (Hydra shows
them); the constructors must not carry a second, different copy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from memarena.plugins import get_plugin_manager
from memarena.registry import Registry

REGISTRY = Registry.from_plugin_manager(get_plugin_manager(autoload=False))

#: Arguments without a default that some groups' constructors need.
REQUIRED: dict[str, dict[str, Any]] = {"policy": {"capacity": 100}}
#: Groups whose constructor is a generic one taking the component's data (no defaults to compare).
GENERIC = {"backend"}


def components() -> list[tuple[str, str]]:
    out = []
    for group in REGISTRY.groups():
        if group in GENERIC:
            continue
        for name in REGISTRY.names(group):
            cls = REGISTRY.get(group, name)
            config = getattr(cls, "Config", None)
            if config is not None and dataclasses.is_dataclass(config):
                out.append((group, name))
    return out


@pytest.mark.parametrize(("group", "name"), components())
def test_constructor_defaults_equal_the_config_defaults(group: str, name: str) -> None:
    cls = REGISTRY.get(group, name)
    config = cls.Config()
    kwargs = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "_target_"}
    if any(v == "???" for v in kwargs.values()):
        pytest.skip(f"{group}={name} has a mandatory field")
    required = REQUIRED.get(group, {})
    bare = cls(**required)
    from_config = cls(**{**kwargs, **required})
    assert comparable(vars(bare)) == comparable(vars(from_config))


def comparable(value: Any, depth: int = 0) -> Any:
    """``value`` with every object that has no ``__eq__`` of its own (a memory's note builder, retriever, Rust
    index) replaced by its type and (a few levels deep) its attributes, so two fresh components compare by what
    they hold, not by identity."""
    if isinstance(value, dict):
        return {k: comparable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(comparable(v, depth + 1) for v in value)
    if type(value).__eq__ is object.__eq__:
        held = vars(value) if hasattr(value, "__dict__") and depth < 4 else {}
        return (type(value).__qualname__, comparable(held, depth + 1))
    return value
