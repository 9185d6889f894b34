"""The ``kvcache`` family: rows, bytes, scores, errors naming their keys, the report's Pareto plot.

The fixture's trained weights may not be in the tree yet: the family runs on
a seeded random :class:`ByteLlama` of the fixture's shape here (its loader,
:func:`memarena.families.kvcache.family.load_model`, patched), which is
enough for everything below but bits/byte (a trained-model check runs when
the fixture exists).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from memarena.api import PlotSpec
from memarena.config import compose
from memarena.errors import InvalidConfigError, MemarenaError
from memarena.families.kvcache import family as kv_family
from memarena.families.kvcache.eval import as_tokens, decode_step, greedy, next_byte_scores, prefill_next
from memarena.families.kvcache.methods.full import FullCache
from memarena.models import ByteLlama, CacheSpec
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.report import load_report, pareto_front, write_report
from memarena.results import RunRecord
from memarena.run import execute
from tests.kvcache import recent_plugin
from tests.kvcache.random_model_plugin import random_model

PM = get_plugin_manager(autoload=False, plugins=[recent_plugin])
REG = Registry.from_plugin_manager(PM)
#: The fixture's fp16 full cache per token: K and V x 4 layers x 2 kv heads x 32 dims x 2 B.
FULL_BYTES_PER_TOKEN = 2 * 4 * 2 * 32 * 2
#: debug=tiny: 2 windows of 96 context + 16 continuation bytes, 2 needle probes of 192 bytes.
CTX, CONT = 96, 16


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> ByteLlama:
    monkeypatch.setattr(kv_family, "load_model", random_model)
    return random_model()


def run_kv(tmp_path: Path, *overrides: str) -> RunRecord:
    args = ["experiment=kvcache", "debug=tiny", *overrides]
    choices = {a.split("=")[0]: a.split("=")[1] for a in overrides if a.startswith("kv_compression=")}
    return execute(compose(args, pm=PM), tmp_path, pm=PM, registry=REG, overrides=args, choices=choices)


COLUMNS = {
    "workload",
    "kv_compression",
    "budget",
    "context_tokens",
    "continuation_tokens",
    "n_windows",
    "needle_probes",
    "threads",
    "kv_bytes",
    "kv_bytes_end",
    "kv_bytes_per_token",
    "kv_bytes_full",
    "compression_ratio",
    "kv_payload_bytes",
    "kv_quant_params_bytes",
    "kv_residual_bytes",
    "kv_indices_bytes",
    "kv_masks_bytes",
    "kv_scores_bytes",
    "kv_aux_bytes",
    "bits_per_byte",
    "bits_per_byte_full",
    "kl_to_full_bits",
    "top1_agreement",
    "needle_accuracy",
    "needle_accuracy_full",
    "prefill_s",
    "decode_s_per_token",
    "prefill_s_full",
    "decode_s_per_token_full",
}


def test_the_full_cache_is_its_own_reference(tmp_path: Path, model: ByteLlama) -> None:
    rec = run_kv(tmp_path)
    assert rec.status == "complete"
    (row,) = rec.rows
    assert set(row) == COLUMNS
    assert row["workload"] == "stdlib_heldout" and row["kv_compression"] == "full" and row["budget"] == 0.5
    assert (row["n_windows"], row["context_tokens"], row["continuation_tokens"], row["needle_probes"]) == (
        2,
        CTX,
        CONT,
        2,
    )
    # Hand-computed: every token's K and V in fp16, after the context and after decoding 15 more tokens.
    assert row["kv_bytes"] == row["kv_payload_bytes"] == row["kv_bytes_full"] == CTX * FULL_BYTES_PER_TOKEN == 98_304
    assert row["kv_bytes_end"] == (CTX + CONT - 1) * FULL_BYTES_PER_TOKEN
    assert row["kv_bytes_per_token"] == FULL_BYTES_PER_TOKEN and row["compression_ratio"] == 1.0
    for col in ("kv_quant_params_bytes", "kv_residual_bytes", "kv_indices_bytes", "kv_masks_bytes", "kv_scores_bytes"):
        assert row[col] == 0
    assert row["kl_to_full_bits"] == 0.0 and row["top1_agreement"] == 1.0
    assert row["bits_per_byte"] == row["bits_per_byte_full"]
    assert 7.0 < row["bits_per_byte"] < 9.0  # a random model: about log2(256) = 8 bits
    assert row["needle_accuracy"] == row["needle_accuracy_full"]
    assert row["prefill_s"] > 0 and row["decode_s_per_token"] > 0 and row["threads"] == 1


def test_a_method_that_drops_tokens_reports_its_bytes_and_its_loss(tmp_path: Path, model: ByteLlama) -> None:
    rec = run_kv(tmp_path, "kv_compression=keep_recent", "family.budget=0.25")
    (row,) = rec.rows
    assert row["kv_compression"] == "keep_recent" and row["budget"] == 0.25
    # ceil(0.25 x 96) = 24 rows per head after the prefill; 24 -> ceil(0.25 x 25) = 7 ... after each decode step
    assert row["kv_bytes"] == 24 * FULL_BYTES_PER_TOKEN
    assert row["compression_ratio"] == 4.0
    n = 24
    for _ in range(CONT - 1):
        n = max(1, math.ceil(0.25 * (n + 1)))
    assert row["kv_bytes_end"] == n * FULL_BYTES_PER_TOKEN
    assert row["kl_to_full_bits"] > 0 and 0 <= row["top1_agreement"] <= 1
    assert row["bits_per_byte_full"] != row["bits_per_byte"]


def test_chunked_prefill_matches_one_forward_on_the_full_cache(model: ByteLlama) -> None:
    spec = CacheSpec.of(model.cfg, model.rope)
    tokens = as_tokens(bytes(range(40, 140)))
    with torch.inference_mode():
        one, chunked = FullCache().new_cache(spec, 1.0), FullCache().new_cache(spec, 1.0)
        a = prefill_next(model, tokens, one)
        b = prefill_next(model, tokens, chunked, chunk_tokens=32)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        assert one.nbytes() == chunked.nbytes()
        torch.testing.assert_close(decode_step(model, 7, one), decode_step(model, 7, chunked), atol=1e-4, rtol=1e-4)
        # greedy decoding feeds back its own argmax: the cache grows by n - 1 tokens
        before = one.total_bytes()
        out = greedy(model, one, a, 4)
        assert len(out) == 4 and out[0] == int(a.argmax())
        assert one.total_bytes() == before + 3 * FULL_BYTES_PER_TOKEN
        for bad in (0, -1):
            with pytest.raises(ValueError, match="chunk_tokens"):
                prefill_next(model, tokens, FullCache().new_cache(spec, 1.0), chunk_tokens=bad)


def test_a_chunked_method_is_prefilled_chunk_by_chunk(tmp_path: Path, model: ByteLlama) -> None:
    # keep_recent_chunked compresses after each 32-token chunk: 32 -> 8, 8 + 32 = 40 -> 10, 10 + 32 = 42 -> 11
    (row,) = run_kv(tmp_path, "kv_compression=keep_recent_chunked", "family.budget=0.25").rows
    assert row["kv_bytes"] == 11 * FULL_BYTES_PER_TOKEN


def test_next_byte_scores_by_hand() -> None:
    # two bytes: the reference puts 3/4 on byte 0, the compressed cache 1/2 on each
    ref = torch.tensor([[math.log(3.0), 0.0]])
    got = torch.tensor([[0.0, 0.0]])
    bits, kl, agree = next_byte_scores(got, ref, torch.tensor([1]))
    assert bits == pytest.approx(1.0)  # -log2(1/2)
    assert kl == pytest.approx(0.75 * math.log2(0.75 / 0.5) + 0.25 * math.log2(0.25 / 0.5))
    assert agree == 1.0  # both argmax byte 0
    assert next_byte_scores(ref, ref, torch.tensor([0])) == pytest.approx((math.log2(4 / 3), 0.0, 1.0))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("family.budget=0", "family.budget"),
        ("family.budget=1.5", "family.budget"),
        ("family.budget=-0.25", "family.budget"),
        ("family.context_tokens=1000", "family.context_tokens"),  # 1000 + 16 > 1024
        ("family.needle_length=1100", "family.needle_length"),
        ("kv_compression=nope", "kv_compression"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, model: ByteLlama, override: str, key: str) -> None:
    with pytest.raises(InvalidConfigError, match=rf"'{key}'") as err:
        run_kv(tmp_path, override, "family.continuation_tokens=25")
    if "context" in override:
        assert "1024" in str(err.value) and "family.continuation_tokens" in str(err.value)
    if "nope" in override:
        assert "keep_recent" in str(err.value) and "full" in str(err.value)


def test_workload_path_reads_the_users_files(tmp_path: Path, model: ByteLlama) -> None:
    texts = tmp_path / "texts"
    texts.mkdir()
    with pytest.raises(InvalidConfigError, match=r"'workload\.path'.*no non-empty file"):
        run_kv(tmp_path / "r0", f"workload.path={texts}")
    with pytest.raises(InvalidConfigError, match=r"'workload\.path'.*not a directory"):
        run_kv(tmp_path / "r1", f"workload.path={texts / 'missing'}")
    (texts / "a.txt").write_bytes(b"def f(x):\n    return x + 1\n" * 40)
    (row,) = run_kv(tmp_path / "r2", f"workload.path={texts}").rows
    assert row["workload"] == "path:texts" and row["kv_bytes"] == CTX * FULL_BYTES_PER_TOKEN
    (texts / "a.txt").write_bytes(b"short")
    with pytest.raises(InvalidConfigError, match=r"'workload'.*has 112 bytes"):
        run_kv(tmp_path / "r3", f"workload.path={texts}")


def test_a_missing_fixture_is_an_error_not_a_random_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import memarena.models as models

    def missing() -> Any:
        raise FileNotFoundError("the fixture weights fixture/bytellama.pt are not in this install of memarena")

    monkeypatch.setattr(models, "load_fixture", missing)
    with pytest.raises(MemarenaError, match="fixture weights"):
        kv_family.load_model()


def test_pareto_front_by_hand() -> None:
    pts = [(1, 3), (2, 2), (3, 2.5), (4, 1), (2, 2), (5, 1), (6, float("nan"))]
    assert pareto_front(pts, ("min", "min")) == [(1, 3), (2, 2), (4, 1)]
    assert pareto_front([(1, 0.2), (2, 0.5), (3, 0.4), (4, 1.0)], ("min", "max")) == [(1, 0.2), (2, 0.5), (4, 1.0)]
    assert pareto_front([(1, 1), (2, 2)], ("max", "max")) == [(2, 2)]
    with pytest.raises(ValueError, match="pareto"):
        PlotSpec(x="a", y="b", hue="c", title="t", pareto=("min", "best"))


def test_the_report_draws_quality_vs_kv_bytes_with_the_front(tmp_path: Path, model: ByteLlama) -> None:
    for i, (method, budget) in enumerate([("full", 0.5), ("keep_recent", 0.5), ("keep_recent", 0.25)]):
        run_kv(tmp_path / "m" / str(i), f"kv_compression={method}", f"family.budget={budget}")
    written = write_report(tmp_path / "m", registry=REG)
    for name in ("bits_per_byte_vs_kv_bytes.png", "needle_accuracy_vs_kv_bytes.png", "kl_vs_compression.png"):
        assert written[name].stat().st_size > 5000
    rep = load_report(tmp_path / "m")
    assert sorted(r["kv_bytes"] for r in rep.rows) == [24 * 1024, 48 * 1024, 96 * 1024]


def test_memory_estimate_is_within_reach_of_the_data(model: ByteLlama) -> None:
    from memarena.families.kvcache.memory import estimate, model_bytes

    assert model_bytes(model.cfg) == 4 * model.n_params()
    fam = kv_family.KVCacheFamily()
    est = estimate(fam, model.cfg)
    # weights + two fp16 caches of 1024 tokens at twice their size + attention over 1024 tokens
    assert 4 * model.n_params() + 4 * 1024 * FULL_BYTES_PER_TOKEN < est.bytes < 200 * 2**20
    assert "family.context_tokens" in est.keys


@pytest.mark.skipif(
    not (Path(kv_family.__file__).parents[2] / "models" / "fixture" / "bytellama.pt").is_file(),
    reason="the trained fixture is not in this tree yet",
)
def test_the_trained_fixture_beats_a_random_model(tmp_path: Path) -> None:
    (row,) = run_kv(tmp_path, "family.needle_probes=0").rows
    assert row["bits_per_byte_full"] < 4.0


def test_the_guides_kv_compression_example_runs_and_its_bytes_are_its_tensors(model: ByteLlama) -> None:
    import re

    from memarena.families.kvcache.cache import held_tensors, storage_bytes

    guide = (Path(__file__).resolve().parents[2] / "plugins" / "memarena-example" / "README.md").read_text()
    section = guide[guide.index("## 9. A KV-compression method") : guide.index("## 10. ")]
    (code,) = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    ns: dict[str, Any] = {}
    exec(compile(code, "guide section 9", "exec"), ns)
    spec = CacheSpec.of(model.cfg, model.rope)
    cache = ns["Recent"]().new_cache(spec, 0.25)
    with torch.inference_mode():
        prefill_next(model, as_tokens(bytes(range(32, 132))), cache)  # 100 tokens: ceil(25) rows per head
        assert cache.total_bytes() == 25 * FULL_BYTES_PER_TOKEN
        decode_step(model, 65, cache)  # 26 rows -> ceil(6.5) = 7
    assert cache.total_bytes() == 7 * FULL_BYTES_PER_TOKEN
    assert sum(storage_bytes(t) for t in held_tensors(cache)) == cache.total_bytes()


def test_the_preset_sweeps_every_registered_method() -> None:
    from omegaconf import OmegaConf

    from memarena.families.kvcache.methods import KV_COMPRESSIONS

    preset = Path(kv_family.__file__).parent / "conf" / "experiment" / "kvcache.yaml"
    listed = str(OmegaConf.load(preset).hydra.sweeper.params.kv_compression).split(",")
    assert listed == [m.name for m in KV_COMPRESSIONS]
    builtin = REG.names("kv_compression")
    assert sorted(listed) == sorted(n for n in builtin if not n.startswith("keep_recent"))
