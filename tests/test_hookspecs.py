"""Every hook is documented argument by argument (the plugin contract is its docs)."""

from __future__ import annotations

import inspect

import pytest

from memarena import hookspecs

SPECS = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("memarena_")]


def test_there_are_hooks_of_every_group() -> None:
    names = {f.__name__ for f in SPECS}
    assert {"memarena_register_methods", "memarena_register_backends", "memarena_register_agent_memories"} <= names
    assert {"memarena_register_workloads", "memarena_register_metrics", "memarena_config_search_path"} <= names
    assert {"memarena_run_start", "memarena_run_finish"} <= names


@pytest.mark.parametrize("spec", SPECS, ids=lambda f: f.__name__)
def test_hook_documents_every_argument(spec: object) -> None:
    doc = inspect.getdoc(spec) or ""
    assert doc.strip(), f"{spec.__name__} has no docstring"
    for arg in inspect.signature(spec).parameters:
        assert f":param {arg}:" in doc, f"{spec.__name__} does not document argument {arg!r}"
    assert ".. versionadded::" in doc, f"{spec.__name__} lacks versionadded"


@pytest.mark.parametrize("spec", [s for s in SPECS if "register" in s.__name__], ids=lambda f: f.__name__)
def test_registration_hooks_document_return(spec: object) -> None:
    assert ":returns:" in (inspect.getdoc(spec) or "")


def test_checker_catches_an_undocumented_argument() -> None:
    def memarena_fake(run: object, extra: object) -> None:
        """Does things.

        :param run: The run.

        .. versionadded:: 0.1
        """

    with pytest.raises(AssertionError, match="extra"):
        test_hook_documents_every_argument(memarena_fake)
