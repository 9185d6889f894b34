"""A test plugin: a family that emits one row, then works until it is interrupted.

Loaded with ``MEMARENA_PLUGINS=tests.integration.sleepy_plugin``. Each sleepy
run appends a line to ``$SLEEPY_READY_FILE`` once its first row is out; with
``$SLEEPY_STARTED_FILE`` set, every run (of any family) appends its pid there
when it starts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from memarena import hookimpl
from memarena.api import Family


class Sleepy(Family):
    """Emits a row, signals readiness through a file, then sleeps for a long time."""

    name: ClassVar[str] = "sleepy"
    label_columns: ClassVar[tuple[str, ...]] = ("step",)

    @dataclass
    class Config:
        _target_: str = "tests.integration.sleepy_plugin.Sleepy"
        seconds: float = 60.0

    def __init__(self, seconds: float = 60.0) -> None:
        self.seconds = seconds

    def run(self, run: Any) -> None:
        run.emit({"step": 0, "value": 1.0})
        with Path(os.environ["SLEEPY_READY_FILE"]).open("a") as f:
            f.write(f"ready {self.seconds}\n")
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
        run.emit({"step": 1, "value": 2.0})


@hookimpl
def memarena_run_start(run: Any) -> None:
    started = os.environ.get("SLEEPY_STARTED_FILE")
    if started:
        with Path(started).open("a") as f:
            f.write(f"{os.getpid()}\n")


@hookimpl
def memarena_register_families() -> list[type[Any]]:
    return [Sleepy]
