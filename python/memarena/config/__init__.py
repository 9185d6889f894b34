"""Hydra configuration: the structured-config store derived from the registry,
the plugins' search paths, and composition helpers for tests and notebooks."""

from memarena.config.compose import check_preset_names, compose, conf_dir, search_path_dirs, search_path_override
from memarena.config.store import register_configs

__all__ = [
    "check_preset_names",
    "compose",
    "conf_dir",
    "register_configs",
    "search_path_dirs",
    "search_path_override",
]
