"""memarena-example: the template third-party memarena plugin.

It provides one real component of three kinds, each registered through
memarena's pluggy hooks in :mod:`memarena_example.plugin`:

* ``policy=hyperbolic`` -- Hyperbolic caching (Blankstein, Sen and Freedman,
  USENIX ATC 2017), a paging policy written in Python (the slow path);
* ``backend=cxl_tiered`` -- DRAM, a CXL Type-3 memory expander and NVMe;
* ``agent_memory=memorybank_lite`` -- a MemoryBank-style agent memory with
  Ebbinghaus forgetting (Zhong et al., AAAI 2024).

Importing this package is cheap: the component modules are imported only
when memarena asks the plugin for its classes.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
