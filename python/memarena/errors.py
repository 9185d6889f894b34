"""memarena's exception hierarchy.

Every error memarena raises on purpose derives from :class:`MemarenaError`.
The Rust core's errors arrive as the same classes (they are defined in the
extension and re-exported here), so ``except memarena.errors.MemarenaError``
catches both sides of the boundary.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping

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
    "core_key_error",
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


#: The core's message for a bad value: ``invalid value for <key>: <reason>`` (``Error::InvalidArgument``).
_CORE_INVALID = re.compile(r"invalid value for ([\w.\[\]]+): (.*)", re.DOTALL)


def core_key_error(
    exc: InvalidConfigError, group: str, component: str, fields: Iterable[str], renamed: Mapping[str, str]
) -> InvalidConfigError:
    """The core's :class:`InvalidConfigError` ``exc`` reworded to name the user's config key.

    A component maps its config fields onto the core's config, whose errors
    name the core's key (``arrivals.rate``, ``num_requests``). ``renamed``
    maps such a core key to the field it comes from (``{"arrivals.rate":
    "rate"}``); a core key whose first part is one of ``fields`` is the
    user's already (``prompt_tokens.median``). The result names
    ``<group>.<field>`` and ``<group>=<component>``; an error naming
    another key keeps the core's words after the component.
    """
    match = _CORE_INVALID.fullmatch(str(exc))
    if match is not None:
        core, reason = match.groups()
        key = renamed.get(core)
        if key is None and re.split(r"[.\[]", core, maxsplit=1)[0] in set(fields):
            key = core
        if key is not None:
            return InvalidConfigError(f"config key '{group}.{key}' ({group}={component}): {reason}")
    return InvalidConfigError(f"config key {group!r} ({group}={component}): {exc}")
