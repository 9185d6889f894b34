"""memarena's exception hierarchy.

Every error memarena raises on purpose derives from :class:`MemarenaError`.
The Rust core's errors arrive as the same classes (they are defined in the
extension and re-exported here), so ``except memarena.errors.MemarenaError``
catches both sides of the boundary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from memarena._core import CallbackError, InvalidConfigError, InvariantError, MalformedInputError, MemarenaError

__all__ = [
    "CallbackError",
    "InvalidConfigError",
    "InvariantError",
    "MalformedInputError",
    "MemarenaError",
    "NoRecordsError",
    "PluginError",
    "UnknownComponentError",
]


class PluginError(MemarenaError):
    """A plugin failed to load or registered something invalid.

    The message names the plugin and, where known, its distribution and version.
    """


class UnknownComponentError(InvalidConfigError, KeyError):
    """A config names a component that no plugin registered; lists the available ones."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NoRecordsError(MemarenaError):
    """``memarena report`` was pointed at a directory without memarena run records."""


@contextlib.contextmanager
def unreadable_file(key: str, component: str) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block (a missing file, no permission)
    into an :class:`InvalidConfigError` naming the config ``key`` (and the
    ``component`` it belongs to, e.g. ``workload=csv_trace``) and the file.

    Malformed content is a :class:`MalformedInputError` already, which names
    the file and the row or byte offset; it passes through.
    """
    try:
        yield
    except OSError as exc:
        raise InvalidConfigError(f"config key {key!r} ({component}): cannot read {exc}") from exc
