"""``python -m benchmarks``: see :mod:`benchmarks.run`.

The plugin's source is frozen (see :mod:`benchmarks.source`) before anything imports it.
"""

from __future__ import annotations

import sys

from .source import freeze_plugin, plugin_ref_from

try:
    FROZEN = freeze_plugin(plugin_ref_from(sys.argv[1:]))
except RuntimeError as error:
    print(f"benchmarks: {error}", file=sys.stderr)
    raise SystemExit(2) from None

# Imported only now: it imports pytest_criu, which must come from the frozen copy.
from .run import main

raise SystemExit(main(frozen=FROZEN))
