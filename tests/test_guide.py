"""The plugin-writer guide documents every hook and every public type, so it cannot fall behind.

The guide is ``plugins/memarena-example/README.md``. Each hook of
``memarena.hookspecs``, each name of ``memarena.api.__all__`` and the two
objects a plugin receives (``Run``, ``RunRecord``) needs a heading of its
own in the reference (section 11) whose body shows a Python example; every
Python block of the guide must at least compile.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from memarena import api, hookspecs

GUIDE = Path(__file__).resolve().parents[1] / "plugins" / "memarena-example" / "README.md"
HEADING = re.compile(r"^(#{2,6})\s+(.*)$")
CODE_SPAN = re.compile(r"`([^`]+)`")
PY_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

HOOKS = sorted(name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("memarena_"))
API_NAMES = sorted(api.__all__)
#: What a family and an observer receive, documented beside the api names.
RUN_OBJECTS = ["Run", "RunRecord"]


def sections(text: str) -> dict[str, str]:
    """Body of every heading, keyed by each name in backticks in the heading (``Foo``, ``memarena.x.Foo()`` -> Foo)."""
    out: dict[str, str] = {}
    lines = text.splitlines(keepends=True)
    heads = [(i, HEADING.match(line.rstrip("\n"))) for i, line in enumerate(lines)]
    heads = [(i, m) for i, m in heads if m]
    in_code = [False] * len(lines)
    fence = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        in_code[i] = fence
    heads = [(i, m) for i, m in heads if not in_code[i]]
    for n, (i, m) in enumerate(heads):
        level = len(m.group(1))
        end = next((j for j, mm in heads[n + 1 :] if len(mm.group(1)) <= level), len(lines))
        body = "".join(lines[i + 1 : end])
        for span in CODE_SPAN.findall(m.group(2)):
            name = span.strip().removesuffix("()").rsplit(".", 1)[-1]
            out.setdefault(name, body)
    return out


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def documented(guide: str) -> dict[str, str]:
    return sections(guide)


def test_there_is_something_to_document() -> None:
    assert "memarena_register_indexes" in HOOKS and "memarena_register_families" in HOOKS
    assert {"VectorIndex", "Family", "PlotSpec"} <= set(API_NAMES)


@pytest.mark.parametrize("name", HOOKS + API_NAMES + RUN_OBJECTS)
def test_every_hook_and_public_type_has_a_reference_section(name: str, documented: dict[str, str]) -> None:
    assert name in documented, (
        f"{GUIDE.name} has no heading for `{name}`: add a reference section (what to implement, what memarena "
        "calls and when, the errors, a minimal example) under '## 11. Reference'"
    )
    body = documented[name]
    assert "```python" in body, f"the reference section of `{name}` in {GUIDE.name} has no Python example"
    prose = PY_BLOCK.sub("", body)
    assert len(prose.split()) >= 40, f"the reference section of `{name}` in {GUIDE.name} says too little"


def test_every_python_block_compiles(guide: str) -> None:
    blocks = PY_BLOCK.findall(guide)
    assert len(blocks) >= len(HOOKS) + len(API_NAMES)
    for n, block in enumerate(blocks):
        try:
            compile(block, f"{GUIDE.name}[python block {n}]", "exec")
        except SyntaxError as exc:
            raise AssertionError(f"python block {n} of {GUIDE.name} does not compile: {exc}\n{block}") from exc


def test_section_finder_sees_only_real_headings() -> None:
    text = "## `A`\nabout A\n```python\n# `B` is a comment, not a heading\n```\n### `c.D()`\nabout D\n## other\n"
    found = sections(text)
    assert set(found) == {"A", "D"}
    assert "about D" in found["A"] and "about D" in found["D"] and "other" not in found["D"]


def test_checker_catches_a_missing_section() -> None:
    with pytest.raises(AssertionError, match="no heading for `memarena_not_a_hook`"):
        test_every_hook_and_public_type_has_a_reference_section("memarena_not_a_hook", {})
