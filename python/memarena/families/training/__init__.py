"""The ``training`` family: memory-efficient training (issue 18), the start of its package.

What is here so far are the ``optimizer`` components (:data:`OPTIMIZERS`),
one module each under :mod:`memarena.families.training.optimizers`: the
AdamW baseline, GaLore, 8-bit Adam and 8-bit GaLore. A training loop builds
one with ``Component(**params).make(model.named_parameters())`` and reads
``bytes_by_category()`` from what ``make`` returned; see
:class:`~memarena.families.training.optimizers.base.TrainingOptimizer`.

Registering and listing import no torch (the extra ``memarena[torch]``):
the component modules import torch inside their functions only, and the
torch optimizer they build lives in :mod:`memarena.families.training.engine`,
imported by ``make``.
"""

from __future__ import annotations

from memarena.families.training.optimizers import OPTIMIZERS

__all__ = ["OPTIMIZERS"]
