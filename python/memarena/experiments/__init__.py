"""One runner (a :class:`memarena.api.Family`) per experiment family."""
