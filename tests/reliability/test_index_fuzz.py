"""Corrupted index files: ``Index.load`` of a mutated valid file is one clear error naming the file.

Mutations of files every index kind writes: truncation, bit flips, header
edits (magic, version, kind, announced length), and payload edits with the
checksum recomputed (so the payload parser itself sees the damage). Each
load runs in a worker with an address-space limit: a length field that made
the loader allocate without bound would be a failed case, not an OOM.
Property: ``MalformedInputError`` whose message names the file, or (for a
re-checksummed payload that is still a valid index) a loaded index; never
another exception, a panic or a crash.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.harness import Runner

KINDS = ["flat", "simhash", "e2lsh", "ivf", "spann", "hnsw", "curator"]


@pytest.fixture(scope="module")
def blobs() -> dict[str, bytes]:
    from memarena.families.retrieval import Index

    rng = np.random.default_rng(3)
    base = rng.standard_normal((200, 8)).astype(np.float32)
    out = {}
    for kind in KINDS:
        idx = Index(kind, params={"nlist": 8} if kind in ("ivf", "spann") else None)
        idx.train(base)
        idx.add(base, tenants=[[i % 2] for i in range(len(base))])
        idx.delete([3, 4])
        out[kind] = idx.to_bytes()
    return out


def _header_len(blob: bytes) -> int:
    return 8 + 4 + 1 + blob[12] + 8


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@st.composite
def mutations(draw: st.DrawFn, blob: bytes) -> tuple[str, bytes]:
    header = _header_len(blob)
    how = draw(st.sampled_from(["truncate", "flip", "header", "payload"]))
    if how == "truncate":
        return how, blob[: draw(st.integers(0, len(blob) - 1))]
    if how == "flip":
        pos = draw(st.integers(0, len(blob) - 1))
        bad = bytearray(blob)
        bad[pos] ^= 1 << draw(st.integers(0, 7))
        return how, bytes(bad)
    body = bytearray(blob[:-4])
    if how == "header":
        field = draw(st.sampled_from(["magic", "version", "kind_len", "kind", "length"]))
        if field == "magic":
            body[0:8] = b"MEMARANX"
        elif field == "version":
            body[8:12] = struct.pack("<I", draw(st.sampled_from([0, 2, 2**32 - 1])))
        elif field == "kind_len":
            body[12] = draw(st.sampled_from([0, 255, body[12] + 1]))
        elif field == "kind":
            body[13 : 13 + body[12]] = draw(st.sampled_from([b"nope", b"\xff\xfe", b"flat", b"hnsw"])).ljust(
                body[12], b"x"
            )[: body[12]]
        else:
            body[header - 8 : header] = struct.pack("<Q", draw(st.sampled_from([0, 2**63, 2**64 - 1, 12345678901])))
        return f"header {field}", _recrc(bytes(body))
    # Payload: overwrite a few bytes with extreme values, then fix the checksum.
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(header, len(body) - 1))
        word = draw(st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"\x7f\xff\xff\xff", b"\x80"]))
        body[pos : pos + len(word)] = word
        del body[len(blob) - 4 :]
    return how, _recrc(bytes(body))


@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupted_index_file_is_one_clear_error_naming_it(
    kind: str, blobs: dict[str, bytes], runner: Runner, tmp_path: Path
) -> None:
    blob = blobs[kind]
    path = tmp_path / f"{kind}.idx"
    path.write_bytes(blob)
    assert runner.call("tests.reliability.probes:load_index", str(path)).rc == ("ok", (kind, 198))

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(mutation=mutations(blob))
    def check(mutation: tuple[str, bytes]) -> None:
        how, data = mutation
        path.write_bytes(data)
        outcome = runner.call("tests.reliability.probes:load_index", str(path))
        if outcome.rc[0] == "ok":
            assert how == "payload" or data == blob, f"{how}: a damaged file loaded: {outcome.rc}"
            return
        assert outcome.rc[0] == "raised", f"{how}: {outcome}"
        _, exc_type, message = outcome.rc
        assert exc_type == "MalformedInputError", f"{how}: {exc_type}: {message}"
        assert str(path) in message, f"{how}: the error does not name the file: {message}"
        assert "panicked" not in outcome.err and "Traceback" not in outcome.err

    check()
