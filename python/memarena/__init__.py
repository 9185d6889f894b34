"""memarena: a research platform for memory in AI systems.

Public facade: plugin authors import :data:`hookimpl` and the component
bases from :mod:`memarena.api`; users run the ``memarena`` command. The
extension ``memarena._core`` is private.
"""

from __future__ import annotations

import importlib.metadata

import pluggy

try:
    __version__ = importlib.metadata.version("memarena")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0"

#: Marker for hook implementations: ``@memarena.hookimpl``.
hookimpl = pluggy.HookimplMarker("memarena")

__all__ = ["__version__", "hookimpl"]
