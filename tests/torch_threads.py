"""One torch thread per test (the machine's cores are shared): an autouse fixture for the torch test folders.

A folder's ``conftest.py`` imports :func:`one_torch_thread`; pytest then applies it to every test there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """``torch.set_num_threads(1)`` for the test, the previous count restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
