"""Hook specifications: the contract between memarena and its plugins.

Implement a hook with ``@memarena.hookimpl`` in a module that your
distribution lists under ``[project.entry-points.memarena]``. memarena's own
components register through these same hooks (:data:`memarena.plugins.DEFAULT_PLUGINS`).

Hooks are grouped in this order: registration, configuration, run
lifecycle. Arguments may be added to a hook in later versions; none is ever
renamed or removed, and an implementation may accept any subset of them.

Every hook is called through pluggy, one plugin's implementation at a time
for registration and observer hooks (hook wrappers still wrap each call, and
``MEMARENA_TRACE_PLUGINS=1`` traces them), so an error or a bad return value
is reported with the name of the plugin it came from.
"""

# Hook specifications are bodiless by design: pluggy calls the implementations.
# mypy: disable-error-code="empty-body"

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from memarena.api import (
        AgentMemory,
        Embedder,
        Family,
        HardwareBackend,
        MemoryMethod,
        Metric,
        VectorIndex,
        Workload,
    )
    from memarena.results import RunRecord
    from memarena.run import Run

hookspec = pluggy.HookspecMarker("memarena")

# ---------------------------------------------------------------------------
# Registration: collect-all; each returns a list of component classes.
# ---------------------------------------------------------------------------


@hookspec
def memarena_register_methods() -> list[type[MemoryMethod]]:
    """Return the memory-method classes this plugin provides.

    A memory method subclasses one of the sub-kind bases in
    :mod:`memarena.api` (``PagingPolicy``, ``KVManager``, ``KVCompression``,
    ``Optimizer``) or a new ``MemoryMethod`` subclass that defines its own
    ``sub_kind`` and ``config_group``. Each class has a unique snake_case
    ``name`` and a ``Config`` dataclass whose ``_target_`` is the class's
    public import path. Once registered, ``<config_group>=<name>`` selects it
    (for paging policies, ``policy=<name>``).

    :returns: A list of ``MemoryMethod`` subclasses (may be empty).

    .. versionadded:: 0.1
    """


@hookspec
def memarena_register_backends() -> list[type[HardwareBackend]]:
    """Return the hardware-backend classes this plugin provides.

    A backend describes memory tiers (capacity, bandwidth, latency) and
    compute; its Config names the public source of every figure. Selected
    with ``backend=<name>``.

    :returns: A list of ``HardwareBackend`` subclasses (may be empty).

    .. versionadded:: 0.1
    """


@hookspec
def memarena_register_agent_memories() -> list[type[AgentMemory]]:
    """Return the agent-memory classes this plugin provides.

    Selected with ``agent_memory=<name>``.

    :returns: A list of ``AgentMemory`` subclasses (may be empty).

    .. versionadded:: 0.1
    """


@hookspec
def memarena_register_indexes() -> list[type[VectorIndex]]:
    """Return the vector-index classes this plugin provides.

    Each class defines a unique snake_case ``name`` and a ``Config`` whose
    fields are its build parameters and its search parameters (a value, or
    a list that the ``retrieval`` family sweeps). Selected with
    ``index=<name>``.

    :returns: A list of ``VectorIndex`` subclasses (may be empty).

    .. versionadded:: 0.1
    """


@hookspec
def memarena_register_embedders() -> list[type[Embedder]]:
    """Return the embedder classes this plugin provides.

    An embedder turns a batch of texts into unit-norm float32 rows
    (``Embedder.embed``) and may learn corpus statistics first
    (``Embedder.fit``). Selected with ``embedder=<name>``; any family that
    retrieves text by meaning builds the selected one.

    :returns: A list of ``Embedder`` subclasses (may be empty).

    .. versionadded:: 0.1
    """


@hookspec
def memarena_register_workloads() -> list[type[Workload]]:
    """Return the workload classes this plugin provides.

    A workload names the family that consumes it (``Workload.family``).
    Selected with ``workload=<name>``.

    :returns: A list of ``Workload`` subclasses (may be empty).

    .. versionadded:: 0.1
    """


@hookspec
def memarena_register_metrics() -> list[type[Metric]]:
    """Return the derived-metric classes this plugin provides.

    A metric adds columns to every result row of the families it lists in
    ``Metric.families``. Column names must not clash with other metrics';
    a clash stops the run with both names.

    :returns: A list of ``Metric`` subclasses (may be empty).

    .. versionadded:: 0.1
    """


@hookspec
def memarena_register_families() -> list[type[Family]]:
    """Return the experiment families (runners) this plugin provides.

    A family turns the composed config into result rows; experiment presets
    select it with ``family: <name>``.

    :returns: A list of ``Family`` subclasses (may be empty).

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@hookspec
def memarena_config_search_path() -> list[str]:
    """Return Hydra config search-path entries for YAML presets this plugin ships.

    Entries are Hydra search-path strings, usually ``pkg://<module>.conf``.
    They are added to ``hydra.searchpath`` so that presets in them (for
    example ``experiment/<name>.yaml``) are found by name.

    :returns: A list of search-path strings (may be empty).

    .. versionadded:: 0.1
    """


@hookspec(historic=True)
def memarena_configure(config: DictConfig) -> None:
    """Inspect the composed config once, before any component is built.

    Historic: plugins registered late still receive the call. An exception
    raised here fails the run (its record says ``failed``; the message names
    the plugin): the place to refuse a config a plugin cannot serve.

    :param config: The fully composed, read-only run config.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------
# Run lifecycle: observers, return None. An observer that raises never changes
# the run's outcome: the error is logged with the plugin's name and kept in the
# record's ``hook_errors``; the other plugins are still called; no row is lost.
# ---------------------------------------------------------------------------


@hookspec
def memarena_run_start(run: Run) -> None:
    """Called once before a run's family starts its work.

    :param run: The run: config, seed, output directory, registry.

    .. versionadded:: 0.1
    """


@hookspec
def memarena_run_result(run: Run, row: dict[str, Any]) -> None:
    """Called for each result row as soon as the family produced it.

    :param run: The run that produced the row.
    :param row: A read-only copy of the row (labels and metrics, derived
        metrics included): a ``Mapping``, whose changes cannot reach the record.

    .. versionadded:: 0.1
    """


@hookspec
def memarena_run_finish(run: Run, record: RunRecord) -> None:
    """Called once after the run's record has been written.

    Also called for an interrupted or failed run; ``record.status`` says
    which (``"complete"``, ``"interrupted"`` or ``"failed"``).

    :param run: The run that finished.
    :param record: The record as written to the run directory; it is final:
        whatever a hook changes in it is undone after the hooks ran.

    .. versionadded:: 0.1
    """
