"""Derive Hydra's ConfigStore from the component registry.

Each registered component's ``Config`` dataclass is stored as
``group=<config_group>, name=<name>``, so ``<group>=<name>`` works for every
registered component with no YAML. Registration is an explicit call, never
an import side effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hydra.core.config_store import ConfigStore

if TYPE_CHECKING:
    from memarena.registry import Registry

__all__ = ["register_configs"]


def register_configs(registry: Registry, cs: ConfigStore | None = None) -> ConfigStore:
    """Store every component's Config under its group and name.

    :param registry: The registry to derive the store from.
    :param cs: The store (default: Hydra's global instance).
    :returns: The store.
    """
    cs = cs or ConfigStore.instance()
    for entry in registry:
        cs.store(group=entry.group, name=entry.name, node=entry.cls.Config, provider=entry.plugin.name)
    return cs
