"""A test plugin that calls ``sys.exit`` while it is imported (issue 14 item 8).

Loaded with ``MEMARENA_PLUGINS=tests.integration.exiting_plugin``.
"""

from __future__ import annotations

import sys

sys.exit("exiting_plugin: no accelerator here")
