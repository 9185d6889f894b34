"""A test plugin (``MEMARENA_PLUGINS=tests.kvcache.random_model_plugin``) for CLI runs on an untrained model.

It replaces the kvcache family's model loader by a seeded random
:class:`ByteLlama` of the fixture's shape: the tests exercise the runner,
bytes and errors, which do not depend on trained weights.
"""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


def random_model() -> Any:
    import torch

    from memarena.models import ByteLlama

    torch.manual_seed(0)
    return ByteLlama().eval()


@hookimpl
def memarena_run_start(run: Any) -> None:
    from memarena.families.kvcache import family

    family.load_model = random_model
