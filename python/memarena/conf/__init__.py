"""memarena's packaged Hydra config tree (a package so Hydra finds it as ``pkg://memarena.conf``)."""
