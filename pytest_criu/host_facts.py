"""What this host allows: the doctor's report, detected once per process, and its blockers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fixtures import Declaration
from .options import Settings

if TYPE_CHECKING:
    # The doctor probes the engine through docker-py: loaded when the host is first examined.
    from .engine.doctor import HostReport


class HostFacts:
    """The host report for the settings' CRIU and engine, and why a snapshot cannot be taken."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._report: HostReport | None = None

    @property
    def report(self) -> HostReport:
        """The doctor's checks, run on first use."""
        if self._report is None:
            from .engine.doctor import detect_host

            self._report = detect_host(
                criu_binary=self.settings.criu_binary,
                docker_url=self.settings.engine_url,
                engine=self.settings.engine,
            )
        return self._report

    @property
    def checked(self) -> bool:
        """Whether the host has been examined in this process."""
        return self._report is not None

    @property
    def snapshot_blocker(self) -> str | None:
        """Why no warm container can be snapshotted here, or ``None``."""
        return self.report.snapshot_blocker()

    def blocker_for(self, declaration: Declaration) -> str | None:
        """Why this warm container cannot be snapshotted here, or ``None``."""
        blocker = self.snapshot_blocker
        if blocker is not None:
            return blocker
        from .engine.doctor import known_docker_problem
        from .engine.holders import network_path

        report = self.report
        if (
            report.engine == "docker"
            and report.docker_userns_remap
            and declaration.spec.userns != "host"
        ):
            return (
                "docker userns-remap: this daemon runs every container in a user namespace, "
                "and Docker cannot restore such a container (containerd copies the checkpoint "
                "into a directory only host root can read) (fix: userns='host' for this warm "
                "container, or Podman: --criu-engine=podman --criu-userns=auto)"
            )
        major = (report.engine_version or "").split(".", 1)[0]
        if (
            report.engine == "podman"
            and declaration.spec.userns == "auto"
            and major.isdigit()
            and int(major) >= 5
        ):
            return (
                f"podman userns: Podman {report.engine_version} cannot restore a container "
                "in a user namespace: it keeps the container's bind mounts (hosts, "
                ".containerenv) in root-only directories, which CRIU cannot open inside "
                'the namespace ("mnt-v2: Failed to open_tree .../userdata/hosts: '
                'Permission denied", seen with Podman 5.4 and 5.8, CRIU 4.2.1) (fix: '
                "Podman 4.x, or, where root has CAP_SYS_RESOURCE, no userns)"
            )
        if (
            report.engine == "podman"
            and declaration.spec.userns == "auto"
            and declaration.spec.network_mode not in ("none", "host")
        ):
            return (
                "podman userns: Podman restores a container in a user namespace without its "
                "network (Podman issue 18502), so its ports would not answer (fix: "
                "network_mode='none' and a unix socket the tests reach through "
                "handle.host_path(...); or, where root has CAP_SYS_RESOURCE, no userns)"
            )
        problem = known_docker_problem(report.docker_version or "")
        if (
            problem
            and report.engine == "docker"
            and network_path("docker", declaration.spec.network_mode, self.settings.network_holder)
            == "own"
        ):
            return (
                f"docker version: {problem} (fix: drop --criu-network-holder=off, use Docker "
                "20.10-27.x or network_mode='host')"
            )
        return None
