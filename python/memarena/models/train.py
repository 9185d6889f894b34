"""Train the fixture :class:`~memarena.models.bytellama.ByteLlama`: ``python -m memarena.models.train``.

The bare command regenerates ``fixture/bytellama.pt`` and ``fixture/CARD.md``
(the defaults are the shipped fixture's settings; the card records the exact
command). Data: seeded windows of ``load_corpus("train")`` (CPython's stdlib
``.py`` files, split by file) mixed with :func:`~memarena.models.corpus.recall_sample`
sequences (key/value lines early, code filler, asserts at the end) at
``--recall-fraction``, plain induction tasks and dense recall tasks
(``--dense-recall-fraction``: key/value lines and queries only). A
curriculum trains the first ``--short-fraction`` of the steps at
``--short-len`` bytes, the rest at ``--seq-len`` (the evaluated
context: a model trained shorter fails past its length). Each step is
``--batch-tokens`` bytes; the loss is next-byte cross-entropy over all bytes
(weighted: ``--mask-random-half`` leaves out the unpredictable half of the
induction tasks, ``--answer-weight`` weighs the recalled value bytes).
AdamW (decoupled weight decay on matrices only), linear warmup then cosine
decay to ``--min-lr-ratio`` of the peak.

Checkpoints (``<out>.ckpt``: model, optimizer, RNG states) are written every
``--ckpt-every`` steps; ``--resume`` continues from one, bit-for-bit the same
data stream. ``--export-checkpoint`` evaluates a checkpoint and writes the
fixture from it (an intermediate fixture of a run still going).
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from memarena.models.bytellama import ByteLlama, ByteLlamaConfig, from_hf_state_dict, to_hf_state_dict
from memarena.models.corpus import _ALNUM, Corpus, dense_recall_sample, load_corpus, recall_sample
from memarena.models.evaluate import heldout_bits_per_byte_stats, needle_accuracy

__all__ = ["DEFAULT_OUT", "build_parser", "main", "render_card", "round_to_fp16", "save_fixture"]

DEFAULT_OUT = Path(__file__).resolve().parent / "fixture" / "bytellama.pt"

#: Evaluation sets of the card (seeds distinct from any training stream's).
EVAL_BPB_SEED = 1234
EVAL_NEEDLE_SEED = 4321

CARD_INTRO = """\
# ByteLlama fixture

A tiny Llama-architecture byte-level decoder shipped in the memarena wheel so
the `kvcache` family compresses the KV cache of a real trained model, offline.

**Architecture.** Llama as transformers' `LlamaForCausalLM` implements it:
pre-norm RMSNorm, rotary position embeddings ("rotate half"), grouped-query
attention, SwiGLU MLP, no biases, untied output head; vocabulary = the 256
byte values. The state dict uses transformers' names, so
`LlamaForCausalLM(LlamaConfig(**hf_config(cfg)))` loads it unchanged
(`memarena.models.hf_config`, `to_hf_state_dict`). Stored in fp16.

**Intended use.** A fixture for KV-cache experiments: real keys, values and
attention patterns of a model trained on code, at contexts up to the trained
length, cheap enough for CPU tests. Held-out bits/byte shows what a compressed
cache costs in next-byte prediction against the full cache. The needle probe
(key/value lines near the start, one restated at the end up to its value:
`KEY_abcd = "wy15"` ... `expect(KEY_abcd = "`) shows recall from early
context only as far as the full cache itself recalls (its accuracy is below):
where that is near zero, the probe cannot separate compression methods.

**Limits.** Under a million parameters: it models Python source bytes
(indentation, keywords, common identifiers) and nothing more; it is no
language model for any other use. Trained for minutes on two CPU threads.
Content-based copying (induction) never emerged from the corpus and the
recall task alone (the 3000-step base of commit b1181a1 and its 300-step
fine-tune, the fixture of commit b026148, both read the needle at 0.0), so
the shipped weights add three stages to that chain (Regenerate): a plain
induction task at 64 bytes (a random string, then chunks of it copied; the
loss on the copied half falls from 5.1 to 1.3 bits per byte within ~250
steps as induction heads form), then dense associative recall at 256 bytes
(definition and query lines only, as in Zoology's MQAR, the value bytes
weighted 5x), then the probe's own mix at 1024 bytes (code, recall tasks
with code filler, dense recall, induction). `git show
b026148:python/memarena/models/fixture/bytellama.pt` (or `b1181a1:...`) gives
the second (first) command's output file.
Contexts longer than `max_seq_len` are refused (rotary positions past the
trained length were never seen). Its numbers depend on the
CPython version whose stdlib is the corpus (recorded below); the split is by
file path, so it is the same on every machine with that version.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m memarena.models.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture path (.pt); the card goes next to it")
    p.add_argument("--batch-tokens", type=int, default=4096, help="bytes per optimizer step")
    p.add_argument("--seq-len", type=int, default=1024, help="sequence length of the final phase")
    p.add_argument("--short-len", type=int, default=256, help="sequence length of the curriculum's first phase")
    p.add_argument("--short-fraction", type=float, default=0.5, help="fraction of the steps at --short-len")
    p.add_argument(
        "--recall-fraction", type=float, default=0.5, help="fraction of sequences that are recall tasks (long phase)"
    )
    p.add_argument(
        "--short-recall-fraction", type=float, default=0.6, help="fraction of recall tasks in the short phase"
    )
    p.add_argument(
        "--induction-fraction", type=float, default=0.2, help="fraction of induction tasks in the long phase"
    )
    p.add_argument("--short-copy-fraction", type=float, default=0.2, help="fraction of copy tasks in the short phase")
    p.add_argument(
        "--short-induction-fraction", type=float, default=0.0, help="fraction of induction tasks in the short phase"
    )
    p.add_argument(
        "--mask-random-half",
        action="store_true",
        help="copy and induction tasks count only their copied half in the loss (default: every byte)",
    )
    p.add_argument(
        "--dense-recall-fraction",
        type=float,
        default=0.0,
        help="fraction of sequences that are dense recall tasks (definitions and queries only), both phases",
    )
    p.add_argument(
        "--answer-weight", type=float, default=1.0, help="loss weight of recalled value bytes (recall and dense tasks)"
    )
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="final lr / peak lr (cosine)")
    p.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--dim", type=int, default=ByteLlamaConfig.dim)
    p.add_argument("--n-layers", type=int, default=ByteLlamaConfig.n_layers)
    p.add_argument("--n-heads", type=int, default=ByteLlamaConfig.n_heads)
    p.add_argument("--n-kv-heads", type=int, default=ByteLlamaConfig.n_kv_heads)
    p.add_argument("--ffn-dim", type=int, default=ByteLlamaConfig.ffn_dim)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument(
        "--eval-every", type=int, default=400, help="quick eval (16 windows, 64 probes, current length); 0: never"
    )
    p.add_argument("--ckpt-every", type=int, default=250, help="checkpoint every N steps; 0: never")
    p.add_argument("--eval-windows", type=int, default=64, help="held-out windows of the card's bits/byte")
    p.add_argument("--eval-needles", type=int, default=256, help="needle probes of the card's accuracy")
    p.add_argument("--resume", action="store_true", help="continue from <out>.ckpt")
    p.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from this fixture's weights (a .pt written by this script), fresh optimizer and schedule",
    )
    p.add_argument("--export-checkpoint", type=Path, default=None, help="evaluate a checkpoint, write the fixture")
    return p


def _config(args: argparse.Namespace) -> ByteLlamaConfig:
    return ByteLlamaConfig(
        dim=args.dim,
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        n_kv_heads=args.n_kv_heads,
        ffn_dim=args.ffn_dim,
        max_seq_len=args.seq_len,
    )


def lr_at(step: int, args: argparse.Namespace) -> float:
    """Linear warmup over ``--warmup`` steps, then cosine from ``--lr`` to ``--lr * --min-lr-ratio``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def seq_len_at(step: int, args: argparse.Namespace) -> int:
    return args.short_len if step < int(args.short_fraction * args.steps) else args.seq_len


#: ``KEY_abcd = "wxyz"\n`` and ``expect(KEY_abcd = "wxyz")\n`` (4-byte keys and values, recall_sample's defaults).
_PAIR_BYTES, _ASSERT_BYTES = 18, 26


def copy_sample(length: int, rng: random.Random) -> bytes:
    """A random lowercase/digit string of ``length // 2`` bytes, twice (cut to ``length``): the plain induction task.

    Pilot runs on the corpus and the recall task alone showed no copying at all (key and value bytes at chance)
    after 750 steps; a model trained on this task alone copies within 100 steps, and a short phase seeded with
    it gives the recall task induction heads to build on.
    """
    half = "".join(rng.choice(_ALNUM) for _ in range((length + 1) // 2)).encode()
    return (half + half)[:length]


def induction_sample(length: int, rng: random.Random) -> bytes:
    """A random lowercase/digit string of ``length // 2`` bytes, then chunks of 8 to 32 bytes of it copied from
    random offsets: continuing a chunk needs content matching (induction), not a fixed offset.

    :func:`copy_sample` alone was solved at a fixed offset (the pilot's model copied it perfectly at step 1500 yet
    could not continue a recall key from its first byte); this task is the long phase's.
    """
    half = "".join(rng.choice(_ALNUM) for _ in range(length // 2)).encode()
    out = bytearray(half)
    while len(out) < length:
        k = rng.randint(8, max(8, min(32, len(half) // 2)))
        s = rng.randrange(len(half) - k)
        out += half[s : s + k]
    return bytes(out[:length])


def batch(
    corpus: Corpus,
    length: int,
    n: int,
    recall_fraction: float,
    rng: random.Random,
    copy_fraction: float = 0.0,
    induction_fraction: float = 0.0,
    mask_random_half: bool = False,
    dense_fraction: float = 0.0,
    answer_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences of ``length`` bytes and the loss weight of each predicted byte (``[n, length - 1]``).

    A sequence is a corpus window, a recall task with probability ``recall_fraction``, else a :func:`copy_sample`
    with probability ``copy_fraction``, else an :func:`induction_sample` with probability ``induction_fraction``
    (all three fractions of the whole). Every byte counts, except that with ``mask_random_half`` copy and
    induction tasks count only their copied half (their random first half is unpredictable: its loss is noise
    beside the copying signal). With ``dense_fraction`` a sequence not drawn as any of those is a
    :func:`~memarena.models.corpus.dense_recall_sample` with probability ``dense_fraction`` over what is left,
    and the recalled value bytes of recall and dense tasks weigh ``answer_weight`` in the loss.

    Recall tasks draw 2 to 8 key/value pairs (the probe uses 6) and assert as many of them as fit with at least
    32 bytes of code between (every pair at 1024 bytes): each assert is a recall to learn from, and with one or two
    per sequence (under 1% of the bytes) a pilot run had learnt none after 750 steps.
    """
    windows = corpus.windows(n, length, rng.randrange(2**31))
    seqs = []
    weights = torch.ones(n, length - 1)
    for i, w in enumerate(windows):
        if rng.random() < recall_fraction:
            n_pairs = rng.randint(2, max(2, min(8, (length - 32 - _ASSERT_BYTES) // _PAIR_BYTES)))
            n_queries = min(n_pairs, (length - 32 - _PAIR_BYTES * n_pairs) // _ASSERT_BYTES)
            w, probes = recall_sample(w, length, rng, n_pairs=n_pairs, n_queries=max(1, n_queries))
            for p in probes:
                _weigh(weights[i], len(p.prompt), len(p.prompt) + len(p.answer), answer_weight)
        elif copy_fraction and rng.random() < copy_fraction / max(1e-9, 1 - recall_fraction):
            w = copy_sample(length, rng)
            if mask_random_half:
                weights[i, : (length + 1) // 2 - 1] = 0.0
        elif induction_fraction and rng.random() < induction_fraction / max(1e-9, 1 - recall_fraction):
            w = induction_sample(length, rng)
            if mask_random_half:
                weights[i, : length // 2 - 1] = 0.0
        elif dense_fraction and rng.random() < dense_fraction / max(
            1e-9, 1 - recall_fraction - copy_fraction - induction_fraction
        ):
            w, spans = dense_recall_sample(length, rng)
            for start, end in spans:
                _weigh(weights[i], start, end, answer_weight)
        seqs.append(list(w))
    return torch.tensor(seqs, dtype=torch.long), weights


def _weigh(row: torch.Tensor, start: int, end: int, w: float) -> None:
    """Weigh the prediction of bytes ``[start, end)`` of a sequence (``row[t]`` weighs byte ``t + 1``)."""
    if w != 1.0:
        row[start - 1 : end - 1] = w


def _optimizer(model: ByteLlama, args: argparse.Namespace) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8)


def _ckpt_path(out: Path) -> Path:
    return out.with_suffix(out.suffix + ".ckpt")


def corpus_meta(train: Corpus, heldout: Corpus) -> dict[str, Any]:
    return {
        "source": "CPython standard library .py sources (sysconfig 'stdlib' path), test dirs excluded",
        "root": str(train.root),
        "root_pattern": "<prefix>/lib/python{major}.{minor}",
        "python_version": platform.python_version(),
        "skip_dirs": "test, tests, idle_test, site-packages, dist-packages, __pycache__",
        "split_rule": "heldout iff zlib.crc32(posix relative path) % 10 == 0, else train",
        "train_files": len(train.paths),
        "train_bytes": train.n_bytes,
        "heldout_files": len(heldout.paths),
        "heldout_bytes": heldout.n_bytes,
    }


def evaluate_for_card(model: ByteLlama, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    bpb = heldout_bits_per_byte_stats(model, args.eval_windows, args.seq_len, EVAL_BPB_SEED)
    acc = needle_accuracy(model, args.eval_needles, args.seq_len, EVAL_NEEDLE_SEED)
    return {
        "heldout_bits_per_byte": round(bpb.mean, 4),
        "heldout_bits_per_byte_window_std": round(bpb.window_std, 4),
        "heldout_eval": {"n_windows": args.eval_windows, "length": args.seq_len, "seed": EVAL_BPB_SEED},
        "needle_accuracy": round(acc, 4),
        "needle_eval": {
            "n_probes": args.eval_needles,
            "length": args.seq_len,
            "seed": EVAL_NEEDLE_SEED,
            "n_pairs": 6,
            "cache": "full (no compression)",
        },
        "eval_wall_s": round(time.perf_counter() - t0, 1),
    }


def round_to_fp16(model: ByteLlama) -> ByteLlama:
    """The weights as the fixture stores them (fp16), so the card's metrics are the shipped model's."""
    with torch.no_grad():
        for t in model.state_dict().values():
            t.copy_(t.to(torch.float16).float())
    return model


def save_fixture(model: ByteLlama, meta: dict[str, Any], out: Path) -> None:
    """fp16 transformers-named state dict + ``meta`` to ``out``; the card (:func:`render_card`) next to it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.to(torch.float16).contiguous() for k, v in to_hf_state_dict(model).items()}
    tmp = out.with_suffix(".tmp")
    torch.save({"state_dict": state, "meta": meta}, tmp)
    tmp.replace(out)
    (out.parent / "CARD.md").write_text(render_card(meta))


def _row(k: str, v: Any) -> str:
    return f"| {k} | {v} |"


def render_card(meta: dict[str, Any]) -> str:
    """The model card: :data:`CARD_INTRO`, then tables generated from ``meta``."""
    c, corp = meta["config"], meta["corpus"]
    lines = [CARD_INTRO, "## Results", "", "| metric | value |", "|---|---|"]
    he, ne = meta["heldout_eval"], meta["needle_eval"]
    lines.append(
        _row(
            "held-out bits/byte",
            f"{meta['heldout_bits_per_byte']} (goal <= 2.6; {he['n_windows']} windows of {he['length']} bytes, "
            f"seed {he['seed']}; per-window std {meta['heldout_bits_per_byte_window_std']})",
        )
    )
    lines.append(
        _row(
            "needle accuracy (full cache)",
            f"{meta['needle_accuracy']} (goal >= 0.9; {ne['n_probes']} probes of {ne['length']} bytes, "
            f"{ne['n_pairs']} pairs, seed {ne['seed']}, greedy exact match)",
        )
    )
    lines += ["", "## Model", "", "| field | value |", "|---|---|"]
    lines += [_row(k, v) for k, v in c.items()]
    lines.append(_row("parameters", meta["n_params"]))
    lines += ["", "## Corpus and split", "", "| field | value |", "|---|---|"]
    lines += [_row(k, v) for k, v in corp.items()]
    lines += ["", "## Training", "", "| field | value |", "|---|---|"]
    for k in (
        "seed",
        "steps",
        "tokens_seen",
        "batch_tokens",
        "sequence_lengths",
        "recall_fraction",
        "copy_fraction",
        "induction_fraction",
        "dense_recall_fraction",
        "answer_weight",
        "optimizer",
        "training_wall_s",
        "torch_version",
        "threads",
        "init_from",
        "resumed_at_steps",
    ):
        if k in meta:
            lines.append(_row(k, meta[k]))
    chain = meta.get("regenerate", [meta["command"]])
    lines += ["", "## Regenerate", ""]
    if len(chain) > 1:
        lines += [f"From scratch, {len(chain)} commands, each starting from the previous one's weights:", ""]
    lines += ["```", *chain, "```", ""]
    return "\n".join(lines)


def _meta(
    model: ByteLlama, args: argparse.Namespace, step: int, wall_s: float, corpus: dict[str, Any]
) -> dict[str, Any]:
    n_short = int(args.short_fraction * args.steps)
    tokens = sum(args.batch_tokens // seq_len_at(s, args) * seq_len_at(s, args) for s in range(step))
    return {
        "config": model.cfg.to_dict(),
        "n_params": model.n_params(),
        "corpus": corpus,
        "seed": args.seed,
        "steps": step,
        "tokens_seen": tokens,
        "batch_tokens": args.batch_tokens,
        "sequence_lengths": f"{args.short_len} for steps [0, {n_short}), {args.seq_len} for [{n_short}, {args.steps})",
        "recall_fraction": f"{args.short_recall_fraction} in the short phase, {args.recall_fraction} after",
        "copy_fraction": f"{args.short_copy_fraction} in the short phase (repeated random strings), 0 after",
        "induction_fraction": (
            f"{getattr(args, 'short_induction_fraction', 0.0)} in the short phase, {args.induction_fraction} after "
            "(random string, copied chunks)"
        ),
        "dense_recall_fraction": getattr(args, "dense_recall_fraction", 0.0),
        "answer_weight": getattr(args, "answer_weight", 1.0),
        "init_from": str(args.init_from) if getattr(args, "init_from", None) else "random (seeded)",
        "optimizer": (
            f"AdamW(betas=(0.9, 0.95), weight_decay={args.weight_decay} on matrices), peak lr {args.lr}, "
            f"{args.warmup} warmup steps, cosine to {args.min_lr_ratio}x, grad clip {args.grad_clip}"
        ),
        "training_wall_s": round(wall_s, 1),
        "torch_version": str(torch.__version__),
        "threads": args.threads,
        # --resume continues the same data stream and schedule: the command without it regenerates the model
        "command": " ".join(
            ["python -m memarena.models.train", *map(shlex.quote, [a for a in args.argv if a != "--resume"])]
        ),
    }


def _export(args: argparse.Namespace) -> None:
    blob = torch.load(args.export_checkpoint, map_location="cpu", weights_only=False)
    ck_args = blob["args"]
    ck_args.eval_windows, ck_args.eval_needles = args.eval_windows, args.eval_needles
    model = round_to_fp16(from_hf_state_dict(blob["model"], ByteLlamaConfig.from_dict(blob["config"])))
    corpus = corpus_meta(load_corpus("train"), load_corpus("heldout"))
    meta = _meta(model, ck_args, blob["step"], blob["wall_s"], corpus)
    if blob["step"] < ck_args.steps:
        meta["intermediate"] = f"checkpoint at step {blob['step']} of {ck_args.steps}"
    meta["regenerate"] = [*getattr(ck_args, "base_chain", []), meta["command"]]
    meta.update(evaluate_for_card(model, ck_args))
    save_fixture(model, meta, args.out)
    print({k: meta[k] for k in ("steps", "heldout_bits_per_byte", "needle_accuracy")}, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    if args.export_checkpoint is not None:
        _export(args)
        return 0
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    train, heldout = load_corpus("train"), load_corpus("heldout")
    corpus = corpus_meta(train, heldout)
    model = ByteLlama(_config(args))
    if args.init_from is not None:
        blob = torch.load(args.init_from, map_location="cpu", weights_only=False)
        base = from_hf_state_dict(blob["state_dict"], ByteLlamaConfig.from_dict(blob["meta"]["config"]))
        model.load_state_dict(base.state_dict())
        print(f"initialised from {args.init_from} (step {blob['meta']['steps']})", flush=True)
        args.base_chain = blob["meta"].get("regenerate", [blob["meta"]["command"]])
    opt = _optimizer(model, args)
    step, wall_s = 0, 0.0
    resumed_at: list[int] = []
    ckpt = _ckpt_path(args.out)
    if args.resume:
        blob = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(blob["model"])
        opt.load_state_dict(blob["opt"])
        rng.setstate(blob["py_rng"])
        torch.set_rng_state(blob["torch_rng"])
        step, wall_s = blob["step"], blob["wall_s"]
        resumed_at = [*blob.get("resumed_at", []), step]
        print(f"resumed at step {step}", flush=True)
    print(
        f"{model.n_params()} params; train {corpus['train_files']} files {corpus['train_bytes']} bytes; "
        f"heldout {corpus['heldout_files']} files {corpus['heldout_bytes']} bytes",
        flush=True,
    )
    model.train()
    n_short = int(args.short_fraction * args.steps)
    t_start = time.perf_counter() - wall_s
    loss_acc, n_acc = 0.0, 0
    while step < args.steps:
        length = seq_len_at(step, args)
        recall = args.short_recall_fraction if length == args.short_len and step < n_short else args.recall_fraction
        copy = args.short_copy_fraction if step < n_short else 0.0
        induction = args.short_induction_fraction if step < n_short else args.induction_fraction
        x, weight = batch(
            train,
            length,
            max(1, args.batch_tokens // length),
            recall,
            rng,
            copy,
            induction,
            args.mask_random_half,
            args.dense_recall_fraction,
            args.answer_weight,
        )
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        logits = model(x[:, :-1])
        if args.mask_random_half or args.answer_weight != 1.0:
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
            loss = (nll * weight.reshape(-1)).sum() / weight.sum()
        else:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        step += 1
        loss_acc += loss.item()
        n_acc += 1
        if step % args.log_every == 0 or step == args.steps:
            el = time.perf_counter() - t_start
            print(
                f"step {step} len {length} lr {lr_at(step - 1, args):.2e} "
                f"train_bpb {loss_acc / n_acc / math.log(2):.3f} elapsed_s {el:.0f}",
                flush=True,
            )
            loss_acc, n_acc = 0.0, 0
        if args.eval_every and step % args.eval_every == 0 and step < args.steps:
            # at the current phase's length (a model in its short phase is not yet trained at --seq-len)
            bpb = heldout_bits_per_byte_stats(model, 16, length, EVAL_BPB_SEED + 1).mean
            acc = needle_accuracy(model, 64, length, EVAL_NEEDLE_SEED + 1)
            print(f"eval step {step} len {length} heldout_bpb {bpb:.3f} needle {acc:.3f}", flush=True)
        if args.ckpt_every and (step % args.ckpt_every == 0 or step == args.steps):
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "py_rng": rng.getstate(),
                    "torch_rng": torch.get_rng_state(),
                    "step": step,
                    "wall_s": time.perf_counter() - t_start,
                    "config": model.cfg.to_dict(),
                    "args": args,
                    "resumed_at": resumed_at,
                },
                ckpt,
            )
    wall_s = time.perf_counter() - t_start
    round_to_fp16(model)
    meta = _meta(model, args, step, wall_s, corpus)
    meta["resumed_at_steps"] = resumed_at
    # the commands that regenerate these weights from scratch: the base fixture's chain, then this one
    meta["regenerate"] = [*getattr(args, "base_chain", []), meta["command"]]
    meta.update(evaluate_for_card(model, args))
    save_fixture(model, meta, args.out)
    print({k: meta[k] for k in ("steps", "tokens_seen", "heldout_bits_per_byte", "needle_accuracy")}, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
