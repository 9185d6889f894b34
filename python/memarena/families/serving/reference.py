"""A KV manager written in Python: vLLM's paged block pool, without prefix caching.

:class:`PagedPythonKV` (``kv_manager=paged_python``) is the reference of the
Python KV-manager protocol (:class:`memarena.api.KVManager`): it uses only
public API, as a plugin would, and its report equals the native ``paged``
manager's with ``prefix_caching=off`` exactly (every metric, sample and
per-request outcome; ``tests/unit/serving/test_python_kv.py``). It runs on
the documented slow path, one Python call per scheduler event.

Semantics (those of ``rust/memarena-sim/src/serving/kv/paged.rs``):

* the pool holds ``budget // (block_size * bytes_per_token)`` blocks; a
  sequence of ``t`` tokens holds ``ceil(t / block_size)`` blocks in its block
  table, and the last one may be partly filled (internal fragmentation);
* admission keeps ``int(watermark * num_blocks)`` blocks free (vLLM v0's
  watermark); growth may use them;
* parallel sampling (``n_seqs > 1``): a fork shares every block of the first
  sequence (reference counts); a sequence appending to a shared partial
  block copies it first (copy-on-write: counted, and the copy's bytes,
  read and written, are added to the iteration's HBM traffic);
* a swap-in re-creates the request as after copy-on-write: the prompt's full
  blocks shared, everything else private to each sequence;
* freeing releases the sequences last first, each from its tail; free
  blocks are reused last-in first-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from memarena.api import KVBreakdown, KVCounters, KVManager, KVRequest, param
from memarena.errors import InvalidConfigError, InvariantError

__all__ = ["PagedPythonKV"]


class _Seq:
    """One sequence: its block table and token count."""

    __slots__ = ("blocks", "tokens")

    def __init__(self, blocks: list[int], tokens: int) -> None:
        self.blocks = blocks
        self.tokens = tokens


class PagedPythonKV(KVManager):
    """vLLM's paged block pool in pure Python (no prefix caching): the Python KV-manager reference.

    Fixed blocks of ``block_size`` tokens, per-sequence block tables,
    reference counts and copy-on-write for parallel sampling, and an
    admission watermark. Equals the native ``paged`` manager exactly; runs
    on the slow path (a Python call per scheduler event).
    """

    name: ClassVar[str] = "paged_python"

    bytes_per_token: int
    num_blocks: int
    watermark_blocks: int
    #: Per block: reference count (0: free) and tokens written.
    ref: list[int]
    fill: list[int]
    #: Free block ids, reused last-in first-out.
    free_ids: list[int]
    #: Tokens written into used blocks.
    used_fill: int
    #: Per admitted request: its sequences (the first, then the forks).
    groups: dict[int, list[_Seq]]
    #: Copy-on-write bytes read and written since the last step.
    extra_bytes: int
    cow_copies: int

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.reference.PagedPythonKV"
        #: Tokens per block (vLLM: 16).
        block_size: int = param(16, ge=1)
        #: Share of all blocks kept free at admission (vLLM v0: 0.01).
        watermark: float = param(0.01, ge=0, lt=1)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._reset(0, 1)

    def describe(self) -> str:
        return "paged_python" if self.block_size == 16 else f"paged_python_{self.block_size}"

    # -- protocol ------------------------------------------------------------

    def setup(
        self, budget_bytes: int, bytes_per_token: int, max_model_len: int, max_num_seqs: int, num_layers: int
    ) -> int:
        bs = self.block_size
        blocks = min(budget_bytes // (bs * bytes_per_token), 2**32 - 2)
        if blocks == 0:
            raise InvalidConfigError(f"kv: {budget_bytes} bytes of KV pool hold no block of block_size {bs} tokens")
        self._reset(blocks, bytes_per_token)
        return blocks * bs * bytes_per_token

    def can_ever_fit(self, req: KVRequest) -> bool:
        bs = self.block_size
        shared = min(req.prompt_tokens, req.max_tokens) // bs
        per_seq = -(-req.max_tokens // bs) - shared
        return shared + req.n_parallel * per_seq + self.watermark_blocks <= self.num_blocks

    def admit(self, rid: int, req: KVRequest, hit_tokens: int, tokens: int) -> bool:
        if rid in self.groups:
            raise InvariantError(f"paged_python: request {rid} admitted twice")
        tokens = max(tokens, hit_tokens)
        if -(-tokens // self.block_size) + self.watermark_blocks > len(self.free_ids):
            return False
        seq = _Seq([], 0)
        self._write(seq, tokens)
        self.groups[rid] = [seq]
        return True

    def grow(self, rid: int, tokens: int, n_seqs: int) -> bool:
        seqs = self.groups.get(rid)
        if seqs is None:
            return False
        bs = self.block_size
        if len(seqs) == 1 and n_seqs <= 1:  # the common case: one sequence, no sharing
            s = seqs[0]
            if tokens <= s.tokens:
                return True
            need = -(-tokens // bs) - len(s.blocks)
            if need > len(self.free_ids):
                return False
            self._write(s, tokens)
            return True
        while len(seqs) < n_seqs:
            # Fork (kept even if growing fails): the new sequence shares every block of the first.
            base = seqs[0]
            for b in base.blocks:
                self.ref[b] += 1
            seqs.append(_Seq(list(base.blocks), base.tokens))
        need = 0
        refs_left: dict[int, int] = {}
        for s in seqs:
            if tokens <= s.tokens:
                continue
            need += -(-tokens // bs) - len(s.blocks)
            if s.tokens % bs:
                last = s.blocks[-1]
                r = refs_left.setdefault(last, self.ref[last])
                if r > 1:  # shared partial block: this sequence needs its own copy
                    need += 1
                    refs_left[last] = r - 1
        if need > len(self.free_ids):
            return False
        for s in seqs:
            self._write(s, tokens)
        return True

    def free(self, rid: int) -> None:
        seqs = self.groups.pop(rid, None)
        if seqs is None:
            return
        for s in reversed(seqs):
            for b in reversed(s.blocks):
                self._release(b)

    def resident_bytes(self, rid: int) -> int:
        seqs = self.groups.get(rid)
        if seqs is None:
            return 0
        base = seqs[0].blocks
        n = len(base)
        for s in seqs[1:]:
            n += sum(1 for i, b in enumerate(s.blocks) if i >= len(base) or base[i] != b)
        return n * self.block_size * self.bytes_per_token

    def swap_in(self, rid: int, req: KVRequest, tokens: int, n_seqs: int) -> bool:
        bs = self.block_size
        shared = min(req.prompt_tokens, tokens) // bs if n_seqs > 1 else 0
        need = shared + n_seqs * (-(-tokens // bs) - shared)
        if need + self.watermark_blocks > len(self.free_ids):
            return False
        if not (self.admit(rid, req, 0, shared * bs) and self.grow(rid, tokens, n_seqs)):
            raise InvariantError(f"paged_python: swap-in of {rid} failed after its capacity check")
        return True

    def breakdown(self, pending: KVRequest | None) -> KVBreakdown:
        bs, bpt = self.block_size, self.bytes_per_token
        free = len(self.free_ids)
        used = self.num_blocks - free
        return KVBreakdown(
            token_states_bytes=self.used_fill * bpt,
            reserved_bytes=0,
            internal_frag_bytes=(used * bs - self.used_fill) * bpt,
            external_frag_bytes=0,
            free_bytes=free * bs * bpt,
            cached_free_bytes=0,
        )

    def take_step_overhead(self) -> tuple[int, float]:
        extra, self.extra_bytes = self.extra_bytes, 0
        return (extra, 0.0)

    def counters(self) -> KVCounters:
        return KVCounters(cow_copies=self.cow_copies)

    def check_invariants(self) -> None:
        bs = self.block_size
        refs = [0] * self.num_blocks
        fill = 0
        for rid, seqs in self.groups.items():
            for s in seqs:
                if len(s.blocks) != -(-s.tokens // bs):
                    raise InvariantError(f"paged_python: request {rid}: {len(s.blocks)} blocks for {s.tokens} tokens")
                if len(set(s.blocks)) != len(s.blocks):
                    raise InvariantError(f"paged_python: request {rid} names a block twice")
                for b in s.blocks:
                    refs[b] += 1
        for b, r in enumerate(refs):
            if r != self.ref[b]:
                raise InvariantError(f"paged_python: block {b} has ref count {self.ref[b]}, {r} tables name it")
            if r:
                fill += self.fill[b]
        free = set(self.free_ids)
        if len(free) != len(self.free_ids) or any(refs[b] for b in free):
            raise InvariantError("paged_python: the free list holds a block twice or a block in use")
        if len(free) + sum(1 for r in refs if r) != self.num_blocks:
            raise InvariantError("paged_python: free + used blocks != all blocks")
        if fill != self.used_fill:
            raise InvariantError(f"paged_python: used fill {self.used_fill}, recomputed {fill}")

    # -- internals -----------------------------------------------------------

    def _reset(self, blocks: int, bytes_per_token: int) -> None:
        self.bytes_per_token = bytes_per_token
        self.num_blocks = blocks
        self.watermark_blocks = int(self.watermark * blocks)
        self.ref = [0] * blocks
        self.fill = [0] * blocks
        self.free_ids = list(range(blocks - 1, -1, -1))  # popped last-in first-out: block 0 first
        self.used_fill = 0
        self.groups = {}
        self.extra_bytes = 0
        self.cow_copies = 0

    def _alloc(self) -> int:
        b = self.free_ids.pop()
        self.ref[b] = 1
        self.fill[b] = 0
        return b

    def _release(self, b: int) -> None:
        self.ref[b] -= 1
        if self.ref[b] == 0:
            self.used_fill -= self.fill[b]
            self.free_ids.append(b)

    def _write(self, seq: _Seq, target: int) -> None:
        """Write ``seq`` up to ``target`` tokens (the blocks are available): its partial last block first
        (copied first if shared), then whole new blocks."""
        if seq.tokens >= target:
            return
        bs = self.block_size
        off = seq.tokens % bs
        if off:
            last = seq.blocks[-1]
            if self.ref[last] > 1:  # copy-on-write
                nb = self._alloc()
                f = self.fill[last]
                self.fill[nb] = f
                self.used_fill += f
                self._release(last)
                seq.blocks[-1] = last = nb
                self.cow_copies += 1
                self.extra_bytes += 2 * f * self.bytes_per_token
            k = min(target - seq.tokens, bs - off)
            seq.tokens += k
            self.fill[last] += k
            self.used_fill += k
        while seq.tokens < target:
            b = self._alloc()
            seq.blocks.append(b)
            k = min(target - seq.tokens, bs)
            seq.tokens += k
            self.fill[b] = k
            self.used_fill += k
