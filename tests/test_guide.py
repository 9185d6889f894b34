"""The plugin-writer guide documents every hook and every public type, so it cannot fall behind.

The guide is ``plugins/memarena-example/README.md``. Each hook of
``memarena.hookspecs``, each name of ``memarena.api.__all__`` and the two
objects a plugin receives (``Run``, ``RunRecord``) needs a heading of its
own in the reference (section 12) whose body shows a Python example; every
Python block of the guide must at least compile, and the examples of the
component classes run (the vector index passes the index suite's checks).
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from memarena import api, hookimpl, hookspecs
from memarena.api import MemoryItem
from memarena.families.paging import Trace, simulate
from memarena.testing.conformance import IndexConformance, index_data, reference_replay, run_family

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
        "calls and when, the errors, a minimal example) under '## 12. Reference'"
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


# ---------------------------------------------------------------------------
# The reference's examples run, as a reader would paste them
# ---------------------------------------------------------------------------


def example_module(name: str, documented: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Execute the first Python example of ``name``'s section as the module its ``_target_`` names."""
    (code, *_) = PY_BLOCK.findall(documented[name])
    target = re.search(r'_target_: str = "([\w.]+)\.\w+"', code)
    modname = target.group(1) if target else f"guide_example_{name.lower()}"
    module = types.ModuleType(modname)
    parts = modname.split(".")
    for i in range(1, len(parts)):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    monkeypatch.setitem(sys.modules, modname, module)
    exec(compile(code, f"{GUIDE.name}: `{name}` example", "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("name", ["Tier", "PlotSpec", "KINDS", "MemoryItem", "Component"])
def test_type_examples_run(name: str, documented: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    example_module(name, documented, monkeypatch)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_vector_index_example_passes_the_index_suite(
    metric: str, documented: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = example_module("VectorIndex", documented, monkeypatch).BruteForce
    suite, data = IndexConformance(), index_data()

    def make(dim: int, metric: str) -> object:
        return cls(dim=dim, metric=metric)

    suite.test_name_kind_and_group(make, metric)
    suite.test_config_target_builds_same_class(make, metric)
    suite.test_pads_with_minus_one(make, data, metric)
    suite.test_ids_round_trip(make, data, metric)
    index = make(data.dim, metric)
    index.train(data.base)
    index.add(data.base, data.ids)
    suite.test_search_shapes_and_order(index, data, metric, 10)
    suite.test_single_query_equals_batch(index, data, 10)
    suite.test_every_search_setting_runs(index, data, 10)
    suite.test_recall_floor_against_brute_force(index, data, metric, 10, 1.0)
    suite.test_memory_bytes(make, index, data, metric)
    suite.test_reset_keeps_training(index, data, metric, 10, 1.0)
    with pytest.raises(NotImplementedError, match="brute_force does not support tenants"):
        index.tenant_len(0)


def test_paging_policy_example_replays(documented: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = example_module("PagingPolicy", documented, monkeypatch).Fifo
    assert reference_replay(fifo(capacity=2), [1, 2, 1, 3, 1, 2]).evictions == [1, 2, 3]
    trace = Trace.synthetic({"kind": "zipf", "alpha": 1.0, "n_objects": 200}, n_requests=2000, seed=3)
    assert simulate(trace, fifo(capacity=10)).misses == reference_replay(fifo(capacity=10), trace.ids).misses


def test_backend_and_memory_examples_build(documented: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    backend = example_module("HardwareBackend", documented, monkeypatch).FooBox(source="x")
    assert [t.name for t in backend.tiers] == ["dram", "nvme"]
    recent = example_module("AgentMemory", documented, monkeypatch).Recent()
    for i in range(3):
        recent.add(MemoryItem(f"note {i}"))
    assert [m.text for m in recent.retrieve("anything", 2)] == ["note 2", "note 1"]


def test_embedder_example_embeds(documented: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    emb = example_module("Embedder", documented, monkeypatch).CharCount()
    v = emb.embed(["Abba", "", "cab"])
    assert v.dtype == np.float32 and v.shape == (3, emb.dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), [1, 0, 1], atol=1e-6)
    assert v[0] @ v[2] > 0.8


def test_family_and_workload_examples_run(
    documented: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    family = example_module("Family", documented, monkeypatch).Sampling
    scan = example_module("Workload", documented, monkeypatch).Scan

    class Plugin:
        @hookimpl
        def memarena_register_families(self) -> list[type]:
            return [family]

        @hookimpl
        def memarena_register_workloads(self) -> list[type]:
            return [scan]

    run = run_family(
        # A family without its own experiment preset: its groups are appended with "+".
        ["~experiment", "family=sampling", "+workload=scan", "workload.n_requests=5000", "+policy=lru"],
        tmp_path,
        plugins=[Plugin()],
    )
    assert run.record.status == "complete", run.record.error
    assert [(r["policy"], r["cache_size"]) for r in run.record.rows] == [("lru", 10), ("lru", 100)]
    assert run.record.rows[0]["miss_ratio"] == 1.0  # a scan over 1000 objects never hits a 10-object LRU
