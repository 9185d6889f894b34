"""training tests: one torch thread (the machine's cores are shared)."""

from __future__ import annotations

from tests.torch_threads import one_torch_thread

__all__ = ["one_torch_thread"]  # an autouse fixture: imported here, pytest applies it to this folder
