"""Pure judgements about the host: versions, capabilities, CRIU, its runc.conf, the kernel.

Each takes what a probe read (text, numbers) and returns a :class:`Check`; none does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .report import Check

SETUP_HINT = "sudo pytest-criu setup does this on Debian and Ubuntu"

SETUP_PODMAN_HINT = "sudo pytest-criu setup --engine podman does this on Debian and Ubuntu"

RUNC_CONF = "/etc/criu/runc.conf"

#: CRIU releases before this one cannot dump TCP sockets on Linux >= 6.x kernels.
CRIU_TCP_MINIMUM = (4, 2)

#: Capability numbers from linux/capability.h.
CAPABILITIES: Mapping[str, int] = {
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_RESOURCE": 24,
    "CAP_CHECKPOINT_RESTORE": 40,
}

#: What each ``/etc/criu/runc.conf`` option is needed for.
RUNC_CONF_OPTIONS: Mapping[str, str] = {
    "tcp-established": "dumping containers with an open TCP connection",
    "file-locks": "dumping services that hold file locks (MariaDB, SQLite)",
}


def parse_version(text: str) -> tuple[int, ...] | None:
    """The first dotted version number in ``text``: ``"Version: 4.2.1"`` -> ``(4, 2, 1)``."""
    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)*)", text)
    if match is None:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def parse_criu_version(text: str) -> str | None:
    """The version from ``criu --version`` output (``"Version: 4.2.1"``), else ``None``."""
    match = re.search(r"^Version:\s*(\d+(?:\.\d+)*)", text, re.MULTILINE)
    return match.group(1) if match else None


def version_at_least(version: Sequence[int], minimum: Sequence[int]) -> bool:
    """Compare versions of any length; missing parts count as zero (``4.2 >= 4.2.0``)."""
    width = max(len(version), len(minimum))
    padded = tuple(version) + (0,) * (width - len(version))
    wanted = tuple(minimum) + (0,) * (width - len(minimum))
    return padded >= wanted


def parse_cap_eff(status_text: str) -> int | None:
    """The effective capability mask from the text of ``/proc/<pid>/status``."""
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)\s*$", status_text, re.MULTILINE)
    return int(match.group(1), 16) if match else None


def capability_names(mask: int) -> frozenset[str]:
    """The names from :data:`CAPABILITIES` that ``mask`` holds."""
    return frozenset(name for name, bit in CAPABILITIES.items() if mask >> bit & 1)


def check_capabilities(mask: int, who: str) -> Check:
    """Judge an effective capability mask of ``who`` (the process CRIU will inherit from)."""
    held = capability_names(mask)
    if "CAP_SYS_ADMIN" not in held and "CAP_CHECKPOINT_RESTORE" not in held:
        return Check(
            "capabilities",
            "fail",
            f"{who} lacks CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE (CapEff {mask:016x}): "
            "CRIU can neither dump nor restore",
            "run dockerd and the tests as root with full capabilities "
            "(e.g. docker run --privileged for CI inside a container)",
            blocks_snapshots=True,
        )
    missing = []
    if "CAP_SYS_ADMIN" not in held:
        missing.append("CAP_SYS_ADMIN (restoring namespaces and mounts may fail)")
    if "CAP_SYS_RESOURCE" not in held:
        missing.append(
            "CAP_SYS_RESOURCE (outside a user namespace, services running as a non-root user "
            'cannot be dumped: "Can\'t get rlimit: Operation not permitted"; see '
            "non-root services)"
        )
    if missing:
        return Check(
            "capabilities",
            "warn",
            f"{who} lacks " + "; ".join(missing),
            "grant the missing capabilities (a privileged CI runner has them); for services "
            "that drop root, see non-root services",
        )
    return Check("capabilities", "ok", f"{who} has " + ", ".join(sorted(held)))


def check_engine_stack(engine: str, version: str, parts: Mapping[str, str]) -> Check:
    """Name every part of the stack a checkpoint goes through (``parts``: name -> version)."""
    named = ", ".join(f"{name} {part or '?'}" for name, part in parts.items())
    return Check("engine stack", "ok", f"{engine} {version}, {named}")


def check_criu_version(criu_version: str, kernel: str) -> Check:
    """CRIU < 4.2 cannot dump TCP sockets on 6.x kernels (they refuse SO_PASSCRED there)."""
    parsed = parse_version(criu_version)
    kernel_version = parse_version(kernel)
    if parsed is None:
        return Check("criu version", "warn", f"cannot parse CRIU's version {criu_version!r}")
    if kernel_version and kernel_version[0] >= 6 and not version_at_least(parsed, CRIU_TCP_MINIMUM):
        return Check(
            "criu version",
            "warn",
            f"CRIU {criu_version} on Linux {kernel}: dumping any TCP socket is known to fail "
            '("sockets: Can\'t get 1:16 opt: Operation not supported")',
            f"install CRIU >= 4.2 (Debian unstable's criu package; {SETUP_HINT})",
        )
    return Check("criu version", "ok", f"CRIU {criu_version}")


def parse_runc_conf(text: str) -> frozenset[str]:
    """The option names set in a CRIU configuration file (``tcp-established``, ...)."""
    return frozenset(runc_conf_values(text))


def runc_conf_values(text: str) -> dict[str, str]:
    """Each option set in a CRIU configuration file, with its value (``""`` for none)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            values[words[0].removeprefix("--")] = " ".join(words[1:])
    return values


def check_runc_conf(text: str | None, path: str = RUNC_CONF) -> Check:
    """Judge the CRIU options runc passes on every checkpoint and restore."""
    present = parse_runc_conf(text or "")
    missing = [option for option in RUNC_CONF_OPTIONS if option not in present]
    if not missing:
        return Check("runc.conf", "ok", f"{path} sets " + ", ".join(RUNC_CONF_OPTIONS))
    why = "; ".join(f"{option} is needed for {RUNC_CONF_OPTIONS[option]}" for option in missing)
    seen = "does not exist" if text is None else "lacks " + ", ".join(missing)
    return Check(
        "runc.conf",
        "warn",
        f"{path} {seen}: {why}",
        f"add the lines {' and '.join(missing)} to {path} ({SETUP_HINT})",
    )


def check_network_lock(text: str | None, nftables: bool, path: str = RUNC_CONF) -> Check:
    """Judge how CRIU locks a container's network (``nftables``: this CRIU and kernel can
    lock with nftables)."""
    method = runc_conf_values(text or "").get("network-lock")
    if method is not None:
        return Check("network lock", "ok", f"{method or '?'} ({path})")
    if not nftables:
        return Check("network lock", "ok", "iptables (CRIU's default; nftables is not available)")
    return Check(
        "network lock",
        "warn",
        "iptables (CRIU's default): every restore runs iptables-restore and ip6tables-restore "
        "four times, about 50 ms; this CRIU and kernel can lock with nftables",
        f"add the line `network-lock nftables` to {path} ({SETUP_HINT})",
    )


def parse_kernel_config(text: str, option: str) -> str | None:
    """``"y"``, ``"m"``, ``"n"`` (for "is not set") or ``None`` when ``option`` is absent."""
    for line in text.splitlines():
        if line.startswith(f"{option}="):
            return line.split("=", 1)[1].strip()
        if line.strip() == f"# {option} is not set":
            return "n"
    return None


def criu_check_lines(output: str, limit: int = 3) -> str:
    """The lines of ``criu check`` output worth quoting, joined into one line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    relevant = [line for line in lines if re.search(r"error|fail|warn|not supported", line, re.I)]
    chosen = (relevant or lines)[:limit]
    return " | ".join(chosen) if chosen else "no output"


def short_error(text: str) -> str:
    """A transport error in a few words: the innermost ``[Errno N] ...`` when there is one."""
    text = " ".join(text.split()).removeprefix("Error while fetching server API version: ")
    errno = re.search(r"\[Errno -?\d+\] [^'\"()]+", text)
    return errno.group(0).strip() if errno else text


#: The subordinate-id owner rootful Podman allocates ``--userns=auto`` ranges from.
PODMAN_AUTO_USER = "containers"
#: The range ``pytest-criu setup`` gives it (Podman's documented example).
PODMAN_AUTO_RANGE = (2147483647, 2147483648)


def subordinate_range(text: str | None, user: str = PODMAN_AUTO_USER) -> tuple[int, int] | None:
    """``user``'s first ``name:start:count`` range in /etc/subuid-style ``text``."""
    for line in (text or "").splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] == user and parts[1].isdigit() and parts[2].isdigit():
            return int(parts[1]), int(parts[2])
    return None


def user_exists(passwd: str, user: str) -> bool:
    """Whether /etc/passwd-style ``passwd`` names ``user``."""
    return any(line.split(":", 1)[0] == user for line in passwd.splitlines())


def check_user_namespaces(
    engine: str,
    cap_eff: int | None,
    *,
    docker_remapped: bool = False,
    subuid: str | None = None,
    subgid: str | None = None,
    passwd: str | None = None,
    engine_version: str = "",
) -> Check:
    """Which services can be dumped here: those running as their own user need
    CAP_SYS_RESOURCE, or a user namespace the engine makes per container."""
    name = "non-root services"
    if engine == "docker" and docker_remapped:
        return Check(
            name,
            "warn",
            "the daemon runs every container in a user namespace (userns-remap): CRIU dumps "
            "them, but Docker cannot restore them (containerd copies each checkpoint into a "
            "directory only host root can read; seen on Docker 20.10 and 28.5), so warm "
            "containers skip unless they set userns='host'",
            "declare userns='host' (services running as uid 0 then restore; one that drops root "
            "needs CAP_SYS_RESOURCE), or use Podman (--criu-engine=podman --criu-userns=auto)",
        )
    capable = cap_eff is not None and bool(cap_eff & (1 << CAPABILITIES["CAP_SYS_RESOURCE"]))
    if capable:
        return Check(
            name,
            "ok",
            "services that run as their own user (Postgres, official Redis and MariaDB "
            "images) can be dumped: root has CAP_SYS_RESOURCE",
        )
    major = engine_version.split(".", 1)[0]
    if engine == "podman" and major.isdigit() and int(major) >= 5:
        return Check(
            name,
            "warn",
            "services that run as their own user (Postgres, official Redis and MariaDB "
            f"images) cannot be dumped here: root lacks CAP_SYS_RESOURCE, and Podman "
            f"{engine_version} restores no container in a user namespace (CRIU cannot open "
            "the bind mounts it keeps in root-only directories)",
            "use Podman 4.x with userns='auto', or a host whose root has CAP_SYS_RESOURCE",
        )
    if engine == "podman":
        uids, gids = subordinate_range(subuid), subordinate_range(subgid)
        if uids and gids and passwd is not None and not user_exists(passwd, PODMAN_AUTO_USER):
            return Check(
                name,
                "warn",
                f"the user {PODMAN_AUTO_USER} has subordinate ids but does not exist: Podman 5 "
                "then finds none for userns='auto' (\"not enough unused IDs in user namespace\"); "
                "without a user namespace, services that drop root cannot be dumped here",
                f"create it: useradd --system --no-create-home --shell /usr/sbin/nologin "
                f"{PODMAN_AUTO_USER} ({SETUP_PODMAN_HINT})",
            )
        if uids and gids:
            return Check(
                name,
                "ok",
                "services that run as their own user can be dumped in a user namespace: "
                f"declare userns='auto' or pass --criu-userns=auto (ranges of the user "
                f"{PODMAN_AUTO_USER}: uids {uids[0]}+{uids[1]}, gids {gids[0]}+{gids[1]}); "
                "without one, root here lacks CAP_SYS_RESOURCE and CRIU cannot dump them",
            )
        return Check(
            name,
            "warn",
            "services that run as their own user (Postgres, official Redis and MariaDB "
            "images) cannot be dumped: root lacks CAP_SYS_RESOURCE, and userns='auto' needs "
            f"subordinate ids for the user {PODMAN_AUTO_USER} in /etc/subuid and /etc/subgid",
            f"add '{PODMAN_AUTO_USER}:{PODMAN_AUTO_RANGE[0]}:{PODMAN_AUTO_RANGE[1]}' to both "
            f"files ({SETUP_PODMAN_HINT})",
        )
    return Check(
        name,
        "warn",
        "services that run as their own user (Postgres, official Redis and MariaDB images) "
        "cannot be dumped here: root lacks CAP_SYS_RESOURCE, and Docker has no user "
        "namespace per container; services running as uid 0 work",
        "use a host whose root has CAP_SYS_RESOURCE (GitHub's hosted runners do), or Podman "
        "with a user namespace (--criu-engine=podman --criu-userns=auto)",
    )
