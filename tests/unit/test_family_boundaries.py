"""DESIGN.md: "Families never import each other's internals; what they share is public API" outside ``families/``."""

from __future__ import annotations

import ast
from pathlib import Path

import memarena.families

FAMILIES = Path(memarena.families.__file__).parent


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path`` (function-local and ``TYPE_CHECKING`` ones included)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "memarena.families":
                out += [(node.lineno, f"memarena.families.{alias.name}") for alias in node.names]
    return out


def _crossings() -> list[str]:
    found = []
    for family in sorted(p for p in FAMILIES.iterdir() if (p / "__init__.py").is_file()):
        for path in sorted(family.rglob("*.py")):
            for line, module in _imports(path):
                parts = module.split(".")
                if parts[:2] == ["memarena", "families"] and len(parts) > 2 and parts[2] != family.name:
                    found.append(f"{path.relative_to(FAMILIES)}:{line} imports {module}")
    return found


def test_no_family_imports_another() -> None:
    assert _crossings() == []


def test_the_check_sees_a_crossing(tmp_path: Path) -> None:
    # the scanner itself: a function-local import of another family is found
    src = tmp_path / "m.py"
    src.write_text(
        "def f():\n    from memarena.families.retrieval.indexes import Flat\n    from memarena import families\n"
    )
    assert _imports(src) == [(2, "memarena.families.retrieval.indexes"), (3, "memarena")]
    src.write_text("from memarena.families import kvcache\n")
    assert (1, "memarena.families.kvcache") in _imports(src)
