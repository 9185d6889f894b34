"""memarena's experiment families, one self-contained package each.

Each family (``paging``, ``serving``, ``retrieval``) is shaped exactly like a
third-party plugin distribution: a public facade (its ``__init__``), its
components, workloads and runner, a ``plugin`` module with its hook
implementations, and its own ``conf/`` tree (experiment presets, sweeps,
group presets, a ``debug`` preset) served through
``memarena_config_search_path``. A family never imports another family's
internals; what families share (hardware backends, the Rust indexes) is
public API.

Adding a family is one folder here plus one line in
:data:`memarena.plugins.DEFAULT_PLUGINS`.
"""
