"""The doctor: can this process checkpoint and restore containers here, and if not, why?

Used by ``pytest-criu doctor`` and by the plugin's skip reasons, so both always agree.
Detection never raises and never hangs: every subprocess and API call has a timeout, and an
unhealthy host is reported, not signalled.

- :mod:`.report`: the checks and the report they make up;
- :mod:`.rules`, :mod:`.docker_rules`, :mod:`.podman_rules`: pure judgements (no I/O);
- :mod:`.probe` (the host's checks, in order) and :mod:`.engines` (the engine's, through
  the engine layer's connection) do the reading; :mod:`.system` holds their I/O helpers.
"""

from __future__ import annotations

from .docker_rules import known_docker_problem
from .probe import detect_host
from .report import Check, HostReport, Status

__all__ = ["Check", "HostReport", "Status", "detect_host", "known_docker_problem"]
