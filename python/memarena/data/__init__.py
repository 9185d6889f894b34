"""Data sets shipped with memarena, each with its own license and attribution beside it."""
