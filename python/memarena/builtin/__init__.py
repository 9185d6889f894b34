"""memarena's built-in plugins: hook implementations listed in
:data:`memarena.plugins.DEFAULT_PLUGINS`. They use no private API: a
third-party plugin can do everything these do."""
