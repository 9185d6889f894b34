"""A test plugin whose Python KV manager raises in a callback (issue 14 item 6).

Loaded with ``MEMARENA_PLUGINS=tests.integration.kv_fault_plugin``:
``kv_manager=admit_raises_test`` raises from ``admit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from memarena import hookimpl
from memarena.families.serving.reference import PagedPythonKV


class AdmitRaisesKV(PagedPythonKV):
    """The Python paged reference, except that ``admit`` raises."""

    name: ClassVar[str] = "admit_raises_test"

    @dataclass
    class Config(PagedPythonKV.Config):
        _target_: str = "tests.integration.kv_fault_plugin.AdmitRaisesKV"

    def describe(self) -> str:
        return self.name

    def admit(self, rid: int, req: Any, hit_tokens: int, tokens: int) -> bool:
        raise KeyError("admit bug")


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    return [AdmitRaisesKV]
