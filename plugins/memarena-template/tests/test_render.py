"""The template renders with copier into a plugin that lints clean, registers, and passes its own tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry

copier = pytest.importorskip("copier", reason="copier renders the template (memarena's `test` extra has it)")

TEMPLATE = Path(__file__).resolve().parents[1]
ALL_KINDS = ["policy", "backend", "agent_memory", "index", "embedder", "family"]
#: kind -> (module file, test file, config group, component name suffix)
FILES = {
    "policy": ("policy.py", "test_policy.py", "policy", "fifo"),
    "backend": ("backend.py", "test_backend.py", "backend", "box"),
    "agent_memory": ("memory.py", "test_memory.py", "agent_memory", "overlap"),
    "index": ("index.py", "test_index.py", "index", "exact"),
    "embedder": ("embedder.py", "test_embedder.py", "embedder", "words"),
    "family": ("family.py", "test_family.py", "family", "sweep"),
}

#: kind -> the registration hook its plugin.py implements
HOOK_OF = {
    "policy": "memarena_register_methods",
    "backend": "memarena_register_backends",
    "agent_memory": "memarena_register_agent_memories",
    "index": "memarena_register_indexes",
    "embedder": "memarena_register_embedders",
    "family": "memarena_register_families",
}


def render(dst: Path, plugin_name: str, kinds: list[str], **data: str) -> Path:
    copier.run_copy(
        str(TEMPLATE),
        str(dst),
        data={"plugin_name": plugin_name, "kinds": kinds, **data},
        defaults=True,
        unsafe=False,
        quiet=True,
    )
    return dst


def expected_files(plugin_name: str, kinds: list[str]) -> set[str]:
    pkg = f"src/memarena_{plugin_name}"
    files = {
        ".copier-answers.yml",
        ".gitignore",
        "README.md",
        "pyproject.toml",
        f"{pkg}/__init__.py",
        f"{pkg}/py.typed",
        f"{pkg}/plugin.py",
        f"{pkg}/conf/__init__.py",
        "tests/conftest.py",
        "tests/test_discovery.py",
    }
    for kind in kinds:
        module, test, _, _ = FILES[kind]
        files |= {f"{pkg}/{module}", f"tests/{test}"}
    if "family" in kinds:
        files.add(f"{pkg}/conf/experiment/{plugin_name}_sweep.yaml")
    return files


def rendered_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def ruff(*args: str, cwd: Path) -> subprocess.CompletedProcess[str] | None:
    exe = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if exe is None:
        return None
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def run_rendered_tests(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))}
    for var in ("MEMARENA_PLUGINS", "MEMARENA_BLOCK_PLUGINS"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)


def registered(root: Path, module: str, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.syspath_prepend(str(root / "src"))
    plugin = __import__(f"{module}.plugin", fromlist=["plugin"])
    return Registry.from_plugin_manager(get_plugin_manager(autoload=False, plugins=[plugin]))


def test_every_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "a_rather_long_plugin_name"  # long names still give lines that lint clean
    module = f"memarena_{name}"
    root = render(tmp_path / "out", name, ALL_KINDS, author="Ada Lovelace", author_email="ada@example.org")
    assert rendered_files(root) == expected_files(name, ALL_KINDS)

    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "memarena-a-rather-long-plugin-name"
    assert meta["project"]["authors"] == [{"name": "Ada Lovelace", "email": "ada@example.org"}]
    assert meta["project"]["entry-points"]["memarena"] == {name: f"{module}.plugin"}
    assert meta["tool"]["setuptools"]["package-data"][module] == ["py.typed", "conf/**/*.yaml"]
    assert "kinds:\n- policy\n- backend" in (root / ".copier-answers.yml").read_text()

    registry = registered(root, module, monkeypatch)
    for kind in ALL_KINDS:
        _, _, group, suffix = FILES[kind]
        assert registry.entry(group, f"{name}_{suffix}").plugin.module == f"{module}.plugin"

    for args in (["check", "."], ["format", "--check", "."]):
        res = ruff(*args, cwd=root)
        assert res is None or res.returncode == 0, f"ruff {' '.join(args)} on the rendered plugin:\n{res.stdout}"

    res = run_rendered_tests(root)
    assert res.returncode == 0, f"the rendered plugin's tests failed:\n{res.stdout[-4000:]}\n{res.stderr[-2000:]}"
    assert " passed" in res.stdout, res.stdout[-2000:]
    assert "skipped" not in res.stdout, res.stdout[-2000:]  # the exact index supports tenants: nothing skips


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_one_kind(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"tpl_{kind}"
    root = render(tmp_path / "out", name, [kind])
    assert rendered_files(root) == expected_files(name, [kind])
    plugin_src = (root / "src" / f"memarena_{name}" / "plugin.py").read_text()
    hooks = {h for h in HOOK_OF.values() if f"def {h}" in plugin_src}
    assert hooks == {HOOK_OF[kind]}, f"plugin.py of a {kind}-only plugin implements {sorted(hooks)}"
    assert "def memarena_config_search_path" in plugin_src

    _, _, group, suffix = FILES[kind]
    registry = registered(root, f"memarena_{name}", monkeypatch)
    assert f"{name}_{suffix}" in registry.names(group)

    for args in (["check", "."], ["format", "--check", "."]):
        res = ruff(*args, cwd=root)
        assert res is None or res.returncode == 0, f"ruff {' '.join(args)} on the rendered plugin:\n{res.stdout}"
    res = run_rendered_tests(root)
    assert res.returncode == 0, f"the rendered plugin's tests failed:\n{res.stdout[-4000:]}\n{res.stderr[-2000:]}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"plugin_name": "Bad-Name"}, "snake_case"),
        ({"plugin_name": "ok", "kinds": []}, "at least one kind"),
        ({"plugin_name": "ok", "module": "memarena-ok"}, "module name"),
    ],
)
def test_answers_are_validated(tmp_path: Path, data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        copier.run_copy(str(TEMPLATE), str(tmp_path / "out"), data=data, defaults=True, unsafe=False, quiet=True)
    assert not (tmp_path / "out" / "pyproject.toml").exists()
