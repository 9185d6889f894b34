"""Workloads of the ``agent`` family: LongMemEval-shaped question sets.

* ``longmemeval_generated``: the seeded offline generator
  (:mod:`memarena.families.agent.generate`), ``size`` oracle / s / m / a
  number of sessions per haystack, ``questions`` questions (8 cover every
  kind). The default (16 questions of 50 sessions) runs in seconds.
* ``longmemeval_file``: a released file (``longmemeval_oracle.json``,
  ``_s``, ``_m``) or any file of the same schema, at ``path``.

Both load a list of :class:`~memarena.families.agent.longmemeval.Instance`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from memarena.api import Workload, param
from memarena.errors import InvalidConfigError
from memarena.families.agent.longmemeval import Instance

__all__ = ["AGENT_WORKLOADS", "LongMemEvalFile", "LongMemEvalGenerated"]


class LongMemEvalGenerated(Workload):
    """Generated LongMemEval-shaped questions: seeded, offline, every question type."""

    name: ClassVar[str] = "longmemeval_generated"
    family: ClassVar[str] = "agent"

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.workloads.LongMemEvalGenerated"
        #: Sessions per haystack: oracle (only the evidence), s (50), m (500) or a number.
        size: str = "s"
        #: Questions (each its own user and haystack); question i has kind i mod 8.
        questions: int = param(16, ge=1)
        #: Added to the run's seed.
        seed_offset: int = param(0, ge=0)
        #: Pad every session to at least this many words (0: the templates' ~95; LongMemEval's are ~1.7k-2.3k).
        session_words: int = param(0, ge=0)

    def __init__(self, **params: Any) -> None:
        from memarena.families.agent.generate import num_sessions

        super().__init__(**params)
        try:
            num_sessions(str(self.config.size))
        except InvalidConfigError as exc:
            raise InvalidConfigError(f"config key 'workload.size': {exc}") from None

    def describe(self) -> str:
        words = self.config.session_words
        return f"generated_{self.size}_q{self.questions}" + (f"_w{words}" if words else "")

    def load(self, seed: int) -> list[Instance]:
        from memarena.families.agent.generate import generate

        size = str(self.config.size)
        return generate(
            size=size if not size.isdigit() else int(size),
            questions=self.questions,
            seed=seed + self.seed_offset,
            session_words=self.config.session_words,
        )


class LongMemEvalFile(Workload):
    """A LongMemEval JSON file (the released oracle, S or M, or one of the same schema)."""

    name: ClassVar[str] = "longmemeval_file"
    family: ClassVar[str] = "agent"

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.workloads.LongMemEvalFile"
        #: The JSON file (~ expands).
        path: str = "???"
        #: Use only the first this many questions (0: all).
        limit: int = param(0, ge=0)

    def describe(self) -> str:
        return Path(self.path).stem

    def file(self) -> Path:
        """The file, checked to exist (the error names ``workload.path`` and the path)."""
        p = Path(os.path.expanduser(str(self.path)))
        if not p.is_file():
            what = "is a directory, not a file" if p.is_dir() else "does not exist"
            raise InvalidConfigError(f"config key 'workload.path': {str(p)!r} {what}")
        return p

    def load(self, seed: int) -> list[Instance]:
        from memarena.families.agent.longmemeval import load

        data = load(self.file())
        return data[: self.limit] if self.limit else data


#: The workloads this family registers.
AGENT_WORKLOADS: tuple[type[Workload], ...] = (LongMemEvalGenerated, LongMemEvalFile)
