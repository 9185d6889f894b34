"""Text the ``kvcache`` family evaluates on: windows of held-out code, or of the user's own files.

``stdlib_heldout`` (the default) is the held-out split of CPython's
standard-library ``.py`` sources (:mod:`memarena.models.corpus`): files the
fixture model never trained on, the same on every machine that has them.
With ``workload.path=DIR`` it reads every file under ``DIR`` instead (any
text: the model reads bytes). Windows and needle probes are drawn from the
loaded files by the family (seeded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from memarena.api import Workload
from memarena.errors import InvalidConfigError

if TYPE_CHECKING:
    from memarena.models.corpus import Corpus

__all__ = ["KVCACHE_WORKLOADS", "StdlibHeldout", "read_text_dir"]


def read_text_dir(path: str | Path, key: str = "workload.path") -> Corpus:
    """Every non-empty regular file under ``path`` (recursively, sorted), as a :class:`Corpus`.

    :raises InvalidConfigError: naming ``key``: not a directory, or no non-empty file in it.
    """
    from memarena.models.corpus import Corpus

    root = Path(path).expanduser()
    if not root.is_dir():
        raise InvalidConfigError(f"config key {key!r}: {str(root)!r} is not a directory")
    paths, texts = [], []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        if data:
            paths.append(p.relative_to(root).as_posix())
            texts.append(data)
    if not paths:
        raise InvalidConfigError(f"config key {key!r}: {str(root)!r} holds no non-empty file")
    return Corpus("path", root, tuple(paths), tuple(texts))


class StdlibHeldout(Workload):
    """Held-out CPython stdlib sources (split by file; the fixture never trained on them), or workload.path."""

    name: ClassVar[str] = "stdlib_heldout"
    family: ClassVar[str] = "kvcache"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.workloads.StdlibHeldout"
        #: A directory of text files to evaluate on instead (every file under it; null: the stdlib's held-out split).
        path: str | None = None

    def describe(self) -> str:
        return self.name if self.path is None else f"path:{Path(str(self.path)).name}"

    def load(self, seed: int) -> Corpus:
        """The files to draw windows from (``seed`` is unused: the family draws the windows)."""
        if self.path is not None:
            return read_text_dir(str(self.path))
        from memarena.models.corpus import load_corpus

        try:
            return load_corpus("heldout")
        except ValueError as exc:  # a Python install without its stdlib sources
            raise InvalidConfigError(f"config key 'workload': {exc}; point workload.path at text files") from exc


KVCACHE_WORKLOADS = (StdlibHeldout,)
