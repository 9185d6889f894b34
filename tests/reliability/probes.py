"""Functions the reliability tests call inside the limited worker (:meth:`Runner.call`)."""

from __future__ import annotations


def load_index(path: str) -> tuple[str, int]:
    """``Index.load(path)``: its kind and size if it loads (a MalformedInputError, or any other error, goes back)."""
    from memarena.families.retrieval import Index

    idx = Index.load(path)
    return idx.core_kind_name, len(idx)
