"""What the doctor found: one check per requirement, and the host report they make up."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    """One requirement, its status, what was seen and (when not ok) how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    blocks_snapshots: bool = False


@dataclass
class HostReport:
    """Everything detection found out about the host."""

    checks: list[Check] = field(default_factory=list)
    engine: str = "docker"
    """The engine found at the URL: ``docker`` or ``podman``."""
    engine_version: str | None = None
    criu_version: str | None = None
    docker_version: str | None = None
    docker_api_version: str | None = None
    docker_root_dir: str | None = None
    docker_userns_remap: bool = False
    """Whether the Docker daemon runs every container in a user namespace (userns-remap)."""
    kernel: str | None = None

    @property
    def can_snapshot(self) -> bool:
        """Whether no check rules out checkpoint and restore."""
        return self.snapshot_blocker() is None

    @property
    def ok(self) -> bool:
        """Whether no check failed at all (warnings allowed)."""
        return all(check.status != "fail" for check in self.checks)

    def check(self, name: str) -> Check | None:
        """The check called ``name``, if detection ran it."""
        return next((check for check in self.checks if check.name == name), None)

    def snapshot_blocker(self) -> str | None:
        """Every reason snapshots cannot work, each with its fix, or ``None``."""
        reasons = []
        for check in self.checks:
            if check.status == "fail" and check.blocks_snapshots:
                reason = f"{check.name}: {check.detail}"
                reasons.append(f"{reason} (fix: {check.fix})" if check.fix else reason)
        return "; ".join(reasons) or None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view with a stable shape (used by ``pytest-criu doctor --json``)."""
        return {
            "ok": self.ok,
            "can_snapshot": self.can_snapshot,
            "criu_version": self.criu_version,
            "docker_version": self.docker_version,
            "docker_api_version": self.docker_api_version,
            "docker_root_dir": self.docker_root_dir,
            "docker_userns_remap": self.docker_userns_remap,
            "kernel": self.kernel,
            "engine": self.engine,
            "engine_version": self.engine_version,
            "checks": [asdict(check) for check in self.checks],
        }
