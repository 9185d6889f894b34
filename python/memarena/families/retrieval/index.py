"""Moved to :mod:`memarena.indexes` (the indexes are shared with the agent family); kept for old imports."""

from __future__ import annotations

from memarena.indexes.core import METRICS, Index, SearchConfig, TenantsLike, tenants_to_csr

__all__ = ["METRICS", "Index", "SearchConfig", "TenantsLike", "tenants_to_csr"]
