"""Malformed-input fuzzing of every trace reader (issue 14): CSV, oracleGeneral, Azure.

Valid files are mutated (truncation, bit flips, junk fields, huge numbers,
NUL bytes, other encodings) and read. The property, for every mutant: the
reader returns exactly what an independent reference parser (below, in
plain Python) reads, or raises one :class:`MalformedInputError` naming the
file and the same row (CSV), line (Azure) or byte offset (oracleGeneral)
where the reference stops. Never a panic, never another exception type,
never a silently different result. Examples are bounded and derandomized.
"""

from __future__ import annotations

import itertools
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memarena.errors import MalformedInputError
from memarena.families.paging import Trace
from memarena.families.serving import read_azure_csv

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
U64_MAX = 2**64 - 1
_counter = itertools.count()

# --- mutations ----------------------------------------------------------------

JUNK = [
    b"\x00",
    b"\xff",
    b"\xfe\xff",
    b"\xc3",  # a lone UTF-8 lead byte
    b",",
    b'"',
    b'""',
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b"-1",
    b"+7",
    b"0",
    b"1e9",
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999999",
    b"\xe9",  # latin-1 e-acute
    "é".encode(),
    "\u2003".encode(),  # an em space (Unicode white space)
    b"\x1c",  # a separator Python strips but Rust does not
    b"x" * 300,
]

mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.sampled_from(JUNK) | st.binary(min_size=1, max_size=6)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 8)),
    st.tuples(st.just("encode"), st.sampled_from(["utf-16", "utf-16-le", "latin-1", "utf-8-sig"])),
)


def mutate(data: bytes, ops: list[tuple[Any, ...]]) -> bytes:
    for op in ops:
        kind, n = op[0], len(data)
        if kind == "truncate":
            data = data[: op[1] % (n + 1)]
        elif kind == "flip" and n:
            i = op[1] % n
            data = data[:i] + bytes([data[i] ^ (1 << op[2])]) + data[i + 1 :]
        elif kind == "insert":
            i = op[1] % (n + 1)
            data = data[:i] + op[2] + data[i:]
        elif kind == "delete" and n:
            i = op[1] % n
            data = data[:i] + data[i + op[2] :]
        elif kind == "encode":
            data = data.decode("utf-8", errors="replace").encode(op[1], errors="replace")
    return data


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(workdir: Path, suffix: str, data: bytes) -> Path:
    path = workdir / f"mutant-{next(_counter)}{suffix}"
    path.write_bytes(data)
    return path


def _location_of(exc: MalformedInputError, path: Path) -> str:
    msg = str(exc)
    assert msg.startswith(f"{path}: "), msg  # names the file first
    assert "\n" not in msg, msg  # one line
    assert len(msg) < 600, msg  # a field is quoted short, never whole
    return msg[len(f"{path}: ") :]


# --- CSV: id, size, timestamp by index, with a header ---------------------------

# Rust's str::trim: Unicode White_Space (Python's str.strip also strips \x1c-\x1f).
RUST_WS = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
U64_RE = re.compile(r"\+?[0-9]+")


class RefError(Exception):
    def __init__(self, where: str) -> None:
        self.where = where


def _split(line: str, delim: str = ",") -> list[str]:
    """The documented quoting: a field starting with a quote runs to the closing one; "" is a quote."""
    out, rest = [], line
    while True:
        if rest.startswith('"'):
            field, i = [], 1
            while True:
                if i >= len(rest):
                    raise ValueError("unterminated quoted field")
                if rest[i] == '"':
                    if rest[i + 1 : i + 2] == '"':
                        field.append('"')
                        i += 2
                        continue
                    break
                field.append(rest[i])
                i += 1
            out.append("".join(field))
            rest = rest[i + 1 :]
            if not rest:
                return out
            if rest[0] != delim:
                raise ValueError("text after a closing quote")
            rest = rest[1:]
        else:
            head, sep, tail = rest.partition(delim)
            out.append(head)
            if not sep:
                return out
            rest = tail


def _u64(raw: str) -> int | None:
    s = raw.strip(RUST_WS)
    if not U64_RE.fullmatch(s) or not s.isascii():
        return None
    v = int(s)
    return v if v <= U64_MAX else None


def fnv1a(text: str) -> int:
    h = 0xCBF2_9CE4_8422_2325
    for b in text.encode():
        h = ((h ^ b) * 0x0000_0100_0000_01B3) % 2**64
    return h


def reference_csv(
    data: bytes, *, delim: str = ",", header: bool = True, hash_ids: bool = False
) -> tuple[list[int], list[int], list[int]]:
    """ids, sizes, times of a CSV with id,size,time in columns 0,1,2; RefError(where)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # a final newline ends the last line, it does not start one
    if not lines and header:
        raise RefError("row 1 (header)")
    ids: list[int] = []
    sizes: list[int] = []
    times: list[int] = []
    offset = 0
    for row, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RefError(f"row {row}, byte offset {offset + exc.start}") from None
        offset += len(raw) + 1
        text = text.rstrip("\r\n") if text.endswith("\r") else text
        text = re.sub(r"[\r\n]+$", "", text)
        if row == 1 and header:
            try:
                _split(text, delim)
            except ValueError:
                raise RefError("row 1 (header)") from None
            continue
        if not text.strip(RUST_WS):
            continue
        try:
            fields = _split(text, delim)
        except ValueError:
            raise RefError(f"row {row}") from None
        vals = []
        for col in range(3):
            if col >= len(fields):
                raise RefError(f"row {row}, column {col}")
            v = fnv1a(fields[col].strip(RUST_WS)) if col == 0 and hash_ids else _u64(fields[col])
            if v is None or (col == 1 and v == 0):
                raise RefError(f"row {row}, column {col}")
            vals.append(v)
        ids.append(vals[0])
        sizes.append(vals[1])
        times.append(vals[2])
    return ids, sizes, times


VALID_CSV = b"id,size,timestamp\n" + b"".join(f"{i % 5},{100 + i},{1000 + i}\n".encode() for i in range(12)).replace(
    b"3,103,1003", b'"3",103,"1003"'
)


def test_the_reference_csv_parser_reads_the_valid_file() -> None:
    ids, sizes, times = reference_csv(VALID_CSV)
    assert ids == [i % 5 for i in range(12)] and sizes[3] == 103 and times[-1] == 1011


@FUZZ
@given(ops=st.lists(mutation, min_size=1, max_size=4))
def test_csv_reader_parses_or_names_the_row(workdir: Path, ops: list[tuple[Any, ...]]) -> None:
    data = mutate(VALID_CSV, ops)
    path = _write(workdir, ".csv", data)
    try:
        expected: Any = reference_csv(data)
    except RefError as ref:
        expected = ref
    try:
        trace = Trace.from_csv(path, id_column=0, size_column=1, time_column=2)
    except MalformedInputError as exc:
        where = _location_of(exc, path)
        assert isinstance(expected, RefError), (where, expected)
        assert where.startswith(expected.where + ":"), (where, expected.where)
        return
    assert not isinstance(expected, RefError), f"read a file the reference refuses at {expected.where}"
    ids, sizes, times = expected
    assert trace.ids.tolist() == ids
    assert trace.sizes is not None and trace.sizes.tolist() == sizes
    assert trace.timestamps is not None and trace.timestamps.tolist() == times


# --- oracleGeneral ----------------------------------------------------------------


def reference_oracle(data: bytes) -> tuple[list[int], list[int], list[int]]:
    n, rem = divmod(len(data), 24)
    if rem:
        raise RefError(f"byte offset {len(data) - rem}")
    ids: list[int] = []
    sizes: list[int] = []
    times: list[int] = []
    for i in range(n):
        t, obj, size, nxt = struct.unpack_from("<IQIq", data, 24 * i)
        if nxt != -1 and nxt != 2**63 - 1 and (nxt < 0 or nxt <= i):
            raise RefError(f"byte offset {24 * i}")
        if size == 0:
            continue
        ids.append(obj)
        sizes.append(size)
        times.append(t)
    return ids, sizes, times


def _valid_oracle() -> bytes:
    ids = [1, 2, 1, 3, 2, 1, 4, 4]
    out = []
    for i, obj in enumerate(ids):
        nxt = next((j for j in range(i + 1, len(ids)) if ids[j] == obj), -1)
        out.append(struct.pack("<IQIq", 10 + i, obj, 4096 * (1 + obj), nxt))
    return b"".join(out)


VALID_ORACLE = _valid_oracle()

oracle_mutation = st.one_of(
    mutation,
    # A field of one record set to an edge value.
    st.tuples(
        st.just("field"),
        st.integers(0, 7),
        st.sampled_from([(0, "<I"), (4, "<Q"), (12, "<I"), (16, "<q")]),
        st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**63 - 1, 2**64 - 1, -1, -(2**63)]),
    ),
)


def mutate_oracle(data: bytes, ops: list[tuple[Any, ...]]) -> bytes:
    for op in ops:
        if op[0] != "field":
            data = mutate(data, [op])
            continue
        _, rec, (off, fmt), value = op
        pos = 24 * rec + off
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            continue
        lo, hi = {"<I": (0, 2**32 - 1), "<Q": (0, U64_MAX), "<q": (-(2**63), 2**63 - 1)}[fmt]
        if not lo <= value <= hi:
            continue
        data = data[:pos] + struct.pack(fmt, value) + data[pos + size :]
    return data


def test_the_reference_oracle_parser_reads_the_valid_file() -> None:
    assert reference_oracle(VALID_ORACLE)[0] == [1, 2, 1, 3, 2, 1, 4, 4]


@FUZZ
@given(ops=st.lists(oracle_mutation, min_size=1, max_size=4))
def test_oracle_general_reader_parses_or_names_the_offset(workdir: Path, ops: list[tuple[Any, ...]]) -> None:
    data = mutate_oracle(VALID_ORACLE, ops)
    path = _write(workdir, ".bin", data)
    try:
        expected: Any = reference_oracle(data)
    except RefError as ref:
        expected = ref
    try:
        trace = Trace.from_oracle_general(path)
    except MalformedInputError as exc:
        where = _location_of(exc, path)
        assert isinstance(expected, RefError), (where, expected)
        assert where.startswith(expected.where + ":"), (where, expected.where)
        return
    assert not isinstance(expected, RefError), f"read a file the reference refuses at {expected.where}"
    ids, sizes, times = expected
    assert trace.ids.tolist() == ids
    assert trace.sizes is not None and trace.sizes.tolist() == sizes
    assert trace.timestamps is not None and trace.timestamps.tolist() == times
    # The derived column agrees with the ids kept.
    nxt = trace.next_vtime.tolist()
    for i, obj in enumerate(ids):
        later = [j for j in range(i + 1, len(ids)) if ids[j] == obj]
        assert (nxt[i] == later[0]) if later else nxt[i] == 2**64 - 1


# --- Azure LLM trace CSV ---------------------------------------------------------

VALID_AZURE = (
    b"TIMESTAMP,ContextTokens,GeneratedTokens\n"
    b"2023-11-16 18:15:46.6805900,374,44\n"
    b"2023-11-16 18:15:50.9951690,396,109\n"
    b"2023-11-16 18:16:01.5,10,0\n"
    b"2023-11-16 18:17:00,2048,7\n"
)


def reference_azure_rows(data: bytes) -> list[tuple[int, int]] | RefError:
    """(ContextTokens, GeneratedTokens kept) of every data line, or where the reader must stop.

    Timestamps are checked by the reader's own rules; the reference only
    locates UTF-8 and token errors, and the header.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return RefError(f"line {line}, byte offset {exc.start}")
    lines = text.splitlines()
    if not lines or not lines[0].strip().lower().startswith("timestamp"):
        return RefError("line 1")
    rows = []
    for no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split(",")
        if len(cols) < 3:
            return RefError(f"line {no}")
        ctx, gen = cols[1].strip(RUST_WS), cols[2].strip(RUST_WS)
        rows.append((no, ctx, gen))
    out = []
    for no, ctx, gen in rows:
        p, o = _u64(ctx), _u64(gen)
        if p is None or o is None or p > 2**32 - 1 or o > 2**32 - 1 or p == 0:
            return RefError(f"line {no}")
        out.append((p, max(o, 1)))
    return out


@FUZZ
@given(ops=st.lists(mutation, min_size=1, max_size=4))
def test_azure_reader_parses_or_names_the_line(workdir: Path, ops: list[tuple[Any, ...]]) -> None:
    data = mutate(VALID_AZURE, ops)
    path = _write(workdir, ".csv", data)
    expected = reference_azure_rows(data)
    try:
        reqs = read_azure_csv(path)
    except MalformedInputError as exc:
        where = _location_of(exc, path)
        assert re.match(r"line \d+(, byte offset \d+)?: ", where), where
        if isinstance(expected, RefError) and "byte offset" in expected.where:
            assert where.startswith(expected.where + ":"), (where, expected.where)
        elif isinstance(expected, list):
            # The reference accepts every token; the reader may refuse a timestamp only.
            assert "bad TIMESTAMP" in where, where
        return
    assert isinstance(expected, list), f"read a file the reference refuses at {expected.where}"
    assert list(zip(reqs.prompt_tokens.tolist(), reqs.output_tokens.tolist(), strict=True)) == expected
    arrivals = np.asarray(reqs.arrival_s)
    assert np.isfinite(arrivals).all() and (arrivals >= 0).all()
    if len(arrivals):
        assert arrivals.min() == 0.0  # relative to the earliest timestamp


VALID_TSV = (
    "".join(f"{'user:' + str(i % 4)}\t{10 + i}\t{i}\n" for i in range(10))
    .encode()
    .replace(b"user:2\t12", b'"user:2"\t12')
)


def test_the_reference_reads_the_valid_headerless_tsv_with_hashed_ids() -> None:
    ids, sizes, _ = reference_csv(VALID_TSV, delim="\t", header=False, hash_ids=True)
    assert ids[0] == fnv1a("user:0") and ids[2] == fnv1a("user:2") and sizes[-1] == 19


@FUZZ
@given(ops=st.lists(mutation, min_size=1, max_size=4))
def test_headerless_tsv_with_hashed_ids_parses_or_names_the_row(workdir: Path, ops: list[tuple[Any, ...]]) -> None:
    data = mutate(VALID_TSV, ops)
    path = _write(workdir, ".tsv", data)
    try:
        expected: Any = reference_csv(data, delim="\t", header=False, hash_ids=True)
    except RefError as ref:
        expected = ref
    try:
        trace = Trace.from_csv(
            path, id_column=0, size_column=1, time_column=2, delimiter="\t", header=False, id_format="hash"
        )
    except MalformedInputError as exc:
        where = _location_of(exc, path)
        assert isinstance(expected, RefError), (where, expected)
        assert where.startswith(expected.where + ":"), (where, expected.where)
        return
    assert not isinstance(expected, RefError), f"read a file the reference refuses at {expected.where}"
    ids, sizes, times = expected
    assert trace.ids.tolist() == ids
    assert trace.sizes is not None and trace.sizes.tolist() == sizes
    assert trace.timestamps is not None and trace.timestamps.tolist() == times
