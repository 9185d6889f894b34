"""YAML presets of this plugin, found through its ``memarena_config_search_path`` hook."""
