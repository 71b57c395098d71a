"""Do to this host's runtime state what a reboot does, keeping what a reboot keeps.

CI runs on a machine where earlier runs left daemons' sockets, pid files and ``/run``
directories behind; a green run there can hide a set-up step that a just-booted machine needs
(``/run`` is a tmpfs on most hosts). This tool makes every CI run start from a just-booted
state: it stops the daemons the set-up started (through their pid files), kills what is left
of the engines and their containers, unmounts their runtime mounts, removes their runtime
directories, sockets and pid files, their network links and firewall rules, and empty
container cgroups. Installed packages, images, ``/etc`` and ``/var/lib`` stay.

Only what container engines, CRIU and pytest-criu's set-up create is touched (a fixed list,
not "everything in /run"). It kills every container on this host: run it on a throwaway
machine (CI), never on a workstation whose containers matter.

Usage (as root, standard library only, before any virtualenv exists)::

    python3 -m tests.tooling.simulate_reboot [--dry-run]
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

RUN = Path("/run")
# What engines, CRIU and the set-up create in /run (a reboot empties it; nothing else here
# is touched).
RUNTIME_ENTRIES = (
    "cni",
    "containerd",
    "containers",
    "crun",
    "criu.kdat*",
    "docker",
    "docker.pid",
    "docker.sock",
    "libpod",
    "mount",
    "netns",
    "podman",
    "pytest-criu",
    "runc",
    "xtables.lock",
    "user/*",
)
# Mounts a reboot drops: the runtime directories above, the engines' own data-root bind
# mounts and their overlay/shm/nsfs mounts, and those of the engine-matrix daemons.
MOUNT_ROOTS = ("/run", "/var/lib/docker", "/var/lib/containers", "/tmp/pcriu-*")
RUN_MOUNT_ROOTS = tuple(f"/run/{entry}" for entry in RUNTIME_ENTRIES)
# The daemons the set-up starts, by their pid files (comm each must have to be signalled).
PID_FILES = (
    ("/run/docker.pid", "dockerd"),
    ("/run/pytest-criu/podman-service*.pid", "podman"),
)
# Processes of container engines; with their descendants and everything in container
# cgroups, a reboot ends them.
ENGINE_COMMS = frozenset(
    {
        "dockerd",
        "containerd",
        "containerd-shim",
        "containerd-shim-runc-v2",
        "docker-proxy",
        "podman",
        "conmon",
        "runc",
        "crun",
        "criu",
        "catatonit",
        "slirp4netns",
        "rootlessport",
        "aardvark-dns",
        "netavark",
    }
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAMES = ("docker", "libpod_parent", "machine.slice", "libpod-*", "docker-*.scope")
LINK_PATTERNS = ("docker0", "br-*", "cni-podman*", "podman*", "pcriu*", "veth*")
FIREWALLS = ("iptables-legacy", "iptables-nft", "ip6tables-legacy", "ip6tables-nft")
FIREWALL_TABLES = ("filter", "nat", "mangle", "raw")
STOP_TIMEOUT = 30.0


@dataclass
class Process:
    """One process as /proc shows it."""

    pid: int
    ppid: int
    comm: str


@dataclass
class Report:
    """What the simulation did, and what it could not undo."""

    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# -- pure selection (unit-tested) -----------------------------------------------------------


def parse_stat(text: str) -> Process:
    """A :class:`Process` from the text of ``/proc/PID/stat`` (comm may hold spaces)."""
    head, _, tail = text.rpartition(")")
    pid, _, comm = head.partition(" (")
    fields = tail.split()
    return Process(pid=int(pid), ppid=int(fields[1]), comm=comm)


def engine_processes(
    processes: Iterable[Process], in_container_cgroup: Iterable[int], spare: Iterable[int]
) -> set[int]:
    """Pids a reboot would end: engine processes, their descendants, container members.

    ``spare`` (this process and its ancestors) is never selected.
    """
    table = list(processes)
    children: dict[int, list[int]] = {}
    for process in table:
        children.setdefault(process.ppid, []).append(process.pid)
    never = {0, 1, *spare}
    chosen: set[int] = set()
    stack = [p.pid for p in table if p.comm in ENGINE_COMMS] + list(in_container_cgroup)
    while stack:
        pid = stack.pop()
        if pid in chosen or pid in never:
            continue
        chosen.add(pid)
        stack.extend(children.get(pid, ()))
    return chosen


def unescape_mount_path(field_text: str) -> str:
    r"""A mountinfo path field with its octal escapes (``\040`` for a space) decoded."""
    out, i = [], 0
    while i < len(field_text):
        if field_text[i] == "\\" and field_text[i + 1 : i + 4].isdigit():
            out.append(chr(int(field_text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field_text[i])
            i += 1
    return "".join(out)


def runtime_mounts(mountinfo: str) -> list[str]:
    """Mount points a reboot drops, deepest first (so parents unmount after children)."""
    roots = [*RUN_MOUNT_ROOTS, *MOUNT_ROOTS[1:]]
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = unescape_mount_path(fields[4])
        if any(_at_or_below(point, root) for root in roots):
            points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def _at_or_below(path: str, pattern: str) -> bool:
    parts = path.rstrip("/").split("/")
    depth = pattern.count("/") + 1
    return len(parts) >= depth and fnmatch.fnmatchcase("/".join(parts[:depth]), pattern)


def matching(names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The ``names`` that match one of the shell ``patterns``."""
    wanted = list(patterns)
    return sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in wanted))


# -- the steps (root, real host) --------------------------------------------------------------


def _processes() -> list[Process]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                found.append(parse_stat((entry / "stat").read_text()))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if _alive(p)]
    return left


def _ancestors() -> set[int]:
    pid, seen = os.getpid(), set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            pid = parse_stat(Path(f"/proc/{pid}/stat").read_text()).ppid
        except OSError:
            break
    return seen


def _container_cgroups() -> list[Path]:
    found: list[Path] = []
    if not CGROUP_ROOT.is_dir():
        return found
    for directory, subdirs, _files in os.walk(CGROUP_ROOT):
        for name in matching(subdirs, CGROUP_NAMES):
            found.append(Path(directory) / name)
        subdirs[:] = [d for d in subdirs if not matching([d], CGROUP_NAMES)]
    return found


def _cgroup_members(groups: Iterable[Path]) -> set[int]:
    pids: set[int] = set()
    for group in groups:
        for procs in group.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def stop_daemons(report: Report, dry_run: bool) -> None:
    """SIGTERM the daemons the set-up started, by their pid files; wait for them."""
    stopping = []
    for pattern, comm in PID_FILES:
        for pid_file in sorted(Path("/").glob(pattern.lstrip("/"))):
            try:
                pid = int(pid_file.read_text().strip())
                running = parse_stat(Path(f"/proc/{pid}/stat").read_text()).comm
            except (OSError, ValueError):
                continue
            if running == comm and _alive(pid):
                report.done.append(f"stopped {comm} (pid {pid}, from {pid_file})")
                if not dry_run:
                    os.kill(pid, signal.SIGTERM)
                stopping.append(pid)
    if not dry_run:
        for pid in _wait_gone(stopping, STOP_TIMEOUT):
            report.done.append(f"pid {pid} ignored SIGTERM for {STOP_TIMEOUT:g}s; killed")


def kill_engine_processes(report: Report, dry_run: bool) -> None:
    """SIGKILL what is left of the engines and every container's processes."""
    groups = _container_cgroups()
    pids = engine_processes(_processes(), _cgroup_members(groups), _ancestors())
    if not pids:
        return
    report.done.append(f"killed {len(pids)} engine and container processes")
    if dry_run:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    left = _wait_gone(pids, STOP_TIMEOUT)
    if left:
        report.problems.append(f"processes still alive {STOP_TIMEOUT:g}s after SIGKILL: {left}")


def unmount(report: Report, dry_run: bool) -> None:
    """Detach the engines' runtime mounts (overlays, shm, network namespaces, bind mounts)."""
    points = runtime_mounts(Path("/proc/self/mountinfo").read_text())
    if not points:
        return
    report.done.append(f"unmounted {len(points)} runtime mounts")
    if dry_run:
        return
    for point in points:
        result = subprocess.run(
            ["umount", "-l", point], capture_output=True, text=True, check=False
        )
        if result.returncode != 0 and os.path.ismount(point):
            report.problems.append(f"cannot unmount {point}: {result.stderr.strip()}")


def remove_runtime_files(report: Report, dry_run: bool) -> None:
    """Remove the engines' and the set-up's directories, sockets and pid files in /run."""
    removed = []
    for pattern in RUNTIME_ENTRIES:
        for path in sorted(RUN.glob(pattern)):
            removed.append(str(path))
            if dry_run:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            if path.exists() or path.is_symlink():
                report.problems.append(f"cannot remove {path}")
    if removed:
        report.done.append(f"removed {', '.join(removed)}")


def remove_cgroups(report: Report, dry_run: bool) -> None:
    """Remove the now empty container cgroups (deepest first)."""
    failed = count = 0
    for group in _container_cgroups():
        for directory in sorted(
            (d for d in [group, *group.rglob("*")] if d.is_dir()),
            key=lambda d: -len(d.parts),
        ):
            count += 1
            if not dry_run:
                try:
                    directory.rmdir()
                except OSError:
                    failed += 1
    if count:
        report.done.append(f"removed {count - failed} container cgroups")
    if failed:
        report.problems.append(f"{failed} container cgroups could not be removed (still in use)")


def reset_network(report: Report, dry_run: bool, run: Callable[..., object]) -> None:
    """Delete the engines' bridges and veths, flush firewall rules, forwarding off."""
    links = [name.partition("@")[0] for name in os.listdir("/sys/class/net")]
    for name in matching(links, LINK_PATTERNS):
        report.done.append(f"deleted link {name}")
        if not dry_run:
            run(["ip", "link", "delete", name])
    for tool in FIREWALLS:
        if shutil.which(tool) is None:
            continue
        report.done.append(f"flushed {tool} rules")
        if dry_run:
            continue
        for table in FIREWALL_TABLES:
            run([tool, "-w", "-t", table, "-F"])
            run([tool, "-w", "-t", table, "-X"])
        for chain in ("INPUT", "FORWARD", "OUTPUT"):
            run([tool, "-w", "-t", "filter", "-P", chain, "ACCEPT"])
    forward = Path("/proc/sys/net/ipv4/ip_forward")
    if forward.exists() and forward.read_text().strip() != "0":
        report.done.append("ip_forward off")
        if not dry_run:
            forward.write_text("0\n")


def _quiet(argv: list[str]) -> object:
    return subprocess.run(argv, capture_output=True, check=False, timeout=60)


def simulate(dry_run: bool) -> Report:
    """Run every step in the order a shutdown and a boot would."""
    report = Report()
    stop_daemons(report, dry_run)
    kill_engine_processes(report, dry_run)
    unmount(report, dry_run)
    remove_runtime_files(report, dry_run)
    remove_cgroups(report, dry_run)
    reset_network(report, dry_run, _quiet)
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="simulate_reboot", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="say what would be done")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and not args.dry_run:
        print("simulate_reboot: must run as root (try: sudo python3 -m ...)", file=sys.stderr)
        return 2
    began = time.monotonic()
    report = simulate(args.dry_run)
    verb = "would do" if args.dry_run else "did"
    for line in report.done or ["nothing: no runtime state of engines found"]:
        print(f"[simulate-reboot] {verb}: {line}")
    for line in report.problems:
        print(f"[simulate-reboot] PROBLEM: {line}", file=sys.stderr)
    print(f"[simulate-reboot] done in {time.monotonic() - began:.1f} s")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
