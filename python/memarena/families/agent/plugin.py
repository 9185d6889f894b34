"""The ``agent`` family's hook implementations: registered like any plugin's."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_embedders() -> list[type[Any]]:
    from memarena.families.agent.retrievers import EMBEDDERS

    return list(EMBEDDERS)


@hookimpl
def memarena_register_agent_memories() -> list[type[Any]]:
    from memarena.families.agent.memories import AGENT_MEMORIES

    return list(AGENT_MEMORIES)


@hookimpl
def memarena_register_workloads() -> list[type[Any]]:
    from memarena.families.agent.workloads import AGENT_WORKLOADS

    return list(AGENT_WORKLOADS)


@hookimpl
def memarena_register_families() -> list[type[Any]]:
    from memarena.families.agent.family import AgentFamily

    return [AgentFamily]


@hookimpl
def memarena_config_search_path() -> list[str]:
    return ["pkg://memarena.families.agent.conf"]
