"""The hook implementations memarena loads through the ``memarena`` entry point.

memarena calls each ``memarena_register_*`` hook of every plugin once at
start-up and builds its registry from the classes they return. The imports
sit inside the hooks so that loading the plugin stays cheap (``memarena
plugins`` and ``memarena --help`` load every plugin).
"""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    """Memory methods: the Hyperbolic paging policy (``policy=hyperbolic``)."""
    from memarena_example.policy import Hyperbolic

    return [Hyperbolic]


@hookimpl
def memarena_register_backends() -> list[type[Any]]:
    """Hardware backends: DRAM + CXL expander + NVMe (``backend=cxl_tiered``)."""
    from memarena_example.backend import CxlTiered

    return [CxlTiered]


@hookimpl
def memarena_register_agent_memories() -> list[type[Any]]:
    """Agent memories: MemoryBank-style forgetting (``agent_memory=memorybank_lite``)."""
    from memarena_example.memory import MemoryBankLite

    return [MemoryBankLite]


@hookimpl
def memarena_register_indexes() -> list[type[Any]]:
    """Vector indexes: exact search in numpy, tenants included (``index=numpy_flat``)."""
    from memarena_example.index import NumpyFlat

    return [NumpyFlat]


@hookimpl
def memarena_config_search_path() -> list[str]:
    """YAML presets shipped in this package (``experiment=example_tiered`` ...)."""
    return ["pkg://memarena_example.conf"]
