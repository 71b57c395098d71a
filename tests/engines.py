"""Other Docker Engines for the engine matrix: find them, start them beside the main daemon.

``python -m tests.tooling.engines`` unpacks Debian's newer ``docker.io`` and ``containerd`` packages into
``/opt/pytest-criu/engines/<name>`` (``PYTEST_CRIU_ENGINES_PREFIX``). :func:`running_daemon`
starts one of them as a second daemon beside the system's: its own socket, data root, exec
root, pid file, config file (experimental on), bridge and managed containerd, with bookworm's
runc (``<prefix>/bin/runc``) and the CRIU wrapper's directory on its PATH. It never touches
``docker0``, iptables or ``ip_forward``; on the way out it removes every container, stops the
daemon, kills what is left of it (found by its private paths), unmounts what it mounted, and
deletes its directory and bridge.

Its containerd gets the main containerd's ``TMPDIR``, where both unpack the checkpoints they
restore (``ctrd-checkpoint*``): the plugin deletes those copies from the ``TMPDIR`` of the first
containerd it finds in /proc, whichever daemon it talks to, so with two directories one of
the daemons would keep its copies, depending on pid order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from pytest_criu.engine.daemon import DaemonPaths
from pytest_criu.engine.placing import NONCE_FILE
from tests.helpers import TINY_IMAGE
from tests.tooling.installs import PREFIX, installed_facts

ENGINES_PREFIX = PREFIX
SETUP_HINT = "run: sudo .venv/bin/python -m tests.tooling.engines"
#: Subnets tried for the bridges, in order: 172.31.200.0/24 ... 172.31.249.0/24.
SUBNETS = [ipaddress.ip_network(f"172.31.{n}.0/24") for n in range(200, 250)]
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class EngineInstall:
    """An engine unpacked by ``tests/tooling/engines.py``."""

    name: str
    root: Path
    facts: dict[str, str]

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def docker_version(self) -> str:
        return self.facts["DOCKER_VERSION"]

    @property
    def containerd_version(self) -> str:
        return self.facts["CONTAINERD_VERSION"]

    @property
    def major(self) -> int:
        return int(self.docker_version.split(".")[0])


def find_engine(name: str) -> tuple[EngineInstall | None, str]:
    """``(install, "")`` for an installed engine, else ``(None, why it is not)``."""
    facts, why = installed_facts(name, SETUP_HINT)
    if facts is None:
        return None, why
    root = ENGINES_PREFIX / name
    dockerd = root / "bin" / "dockerd"
    if not os.access(dockerd, os.X_OK):
        return None, f"{dockerd} is missing; {SETUP_HINT} {name}"
    return EngineInstall(name, root, facts), ""


@dataclass(frozen=True)
class EngineDaemon:
    """A running second daemon; ``url`` goes to ``--criu-docker-url``."""

    install: EngineInstall
    base: Path
    url: str
    pid: int
    bridge: str
    subnet: str
    log: Path

    tmpdir: Path
    """containerd's TMPDIR, where it unpacks the checkpoints it restores (shared)."""

    restart: Callable[[], None] = dataclasses.field(compare=False, repr=False)
    """Stop the daemon (its containers die: no live-restore) and start it again."""

    @property
    def data_root(self) -> Path:
        return self.base / "data"

    def client(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.url, version="auto", timeout=60)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def restore_copies_of(self, containers: set[str]) -> list[str]:
        """containerd's unpacked checkpoint copies that name one of ``containers``."""
        found = []
        for copy in self.tmpdir.glob("ctrd-checkpoint*"):
            with contextlib.suppress(OSError, IndexError):
                if (copy / NONCE_FILE).read_text().split()[0] in containers:
                    found.append(str(copy))
        return sorted(found)


def main_containerd_tmpdir(url: str = "unix:///var/run/docker.sock") -> Path:
    """The TMPDIR of the containerd that the daemon at ``url`` started (``/tmp`` if unset)."""
    return Path(DaemonPaths.of_socket(url.removeprefix("unix://")).containerd_tmp)


@contextlib.contextmanager
def running_daemon(
    install: EngineInstall,
    *,
    criu_dir: str,
    timeout: float = 60.0,
    load_images: Sequence[str] = (TINY_IMAGE,),
) -> Iterator[EngineDaemon]:
    """Start ``install``'s dockerd beside the main daemon with ``load_images`` of the main
    daemon copied into it; always stop it and clean up."""
    base = Path(tempfile.mkdtemp(prefix=f"pcriu-{install.name}-"))
    tmpdir = main_containerd_tmpdir()
    bridge = f"pcriu{install.major}-{os.getpid():x}"[:15]
    url = f"unix://{base / 'docker.sock'}"
    config = base / "daemon.json"
    log = base / "dockerd.log"
    process: subprocess.Popen[bytes] | None = None
    bridge_made = False

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [
                    str(install.bin_dir / "dockerd"),
                    f"--host={url}",
                    f"--data-root={base / 'data'}",
                    f"--exec-root={base / 'exec'}",
                    f"--pidfile={base / 'docker.pid'}",
                    f"--config-file={config}",
                    # Its own bridge: never --bridge=none, which deletes the host's docker0.
                    f"--bridge={bridge}",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--ip-forward=false",
                    f"--userland-proxy-path={install.bin_dir / 'docker-proxy'}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # dockerd finds containerd, the shim and runc (bookworm's, a symlink in
                # bin_dir) on its PATH, and runc finds criu there.
                env={
                    "PATH": f"{install.bin_dir}:{criu_dir}:{SYSTEM_PATH}",
                    "HOME": "/root",
                    "LANG": "C.UTF-8",
                    "TMPDIR": str(tmpdir),
                },
                start_new_session=True,
            )

    def restart() -> None:
        nonlocal process
        assert process is not None
        _stop(process, base, leftovers=False)
        process = start()
        _wait_for(daemon, process, timeout)

    try:
        config.write_text(json.dumps({"experimental": True}) + "\n")
        bridge_made = True  # from here on, delete it whatever happens (the name is ours)
        subnet = _make_bridge(bridge)
        process = start()
        daemon = EngineDaemon(install, base, url, process.pid, bridge, subnet, log, tmpdir, restart)
        _wait_for(daemon, process, timeout)
        for image in load_images:
            load_image(image, url)
        yield daemon
    finally:
        if process is not None:
            _stop(process, base)
        _unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)
        if bridge_made:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)


def _make_bridge(name: str) -> str:
    """Create bridge ``name`` with the first free subnet of :data:`SUBNETS`; return it."""
    # Locked while picking a free subnet and creating the bridge (concurrent runs): the
    # engines' directory, which exists whenever an engine does.
    lock = os.open(ENGINES_PREFIX, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # A bridge of a crashed run of a process with the same pid: ours to replace.
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
        used = _used_networks()
        subnet = next((s for s in SUBNETS if not any(s.overlaps(u) for u in used)), None)
        if subnet is None:
            raise RuntimeError(f"no free subnet among {SUBNETS[0]} ... {SUBNETS[-1]}")
        gateway = next(subnet.hosts())
        subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
        subprocess.run(
            ["ip", "addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", name], check=True
        )
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
    finally:
        os.close(lock)
    return str(subnet)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    out += subprocess.run(
        ["ip", "-o", "-4", "route", "show", "table", "all"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found = []
    for word in out.split():
        if "/" in word and word[0].isdigit():
            with contextlib.suppress(ValueError):
                found.append(ipaddress.IPv4Network(word, strict=False))
    return found


def _wait_for(daemon: EngineDaemon, process: subprocess.Popen[bytes], timeout: float) -> None:
    path = daemon.url.removeprefix("unix://")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{daemon.install.name}: dockerd exited ({process.returncode}):\n"
                + daemon.log_tail()
            )
        # A socket we close ourselves: docker-py leaks one on a failed connect.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except OSError:
                time.sleep(0.1)
                continue
        client = daemon.client()
        try:
            client.version()
            return
        except docker.errors.DockerException:
            time.sleep(0.1)
        finally:
            client.close()
    raise RuntimeError(
        f"{daemon.install.name}: dockerd did not answer within {timeout:g} s:\n" + daemon.log_tail()
    )


def load_image(image: str, url: str) -> None:
    """``docker save IMAGE | docker -H URL load``: an image of the main daemon into ``url``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    with subprocess.Popen(
        ["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as save:
        assert save.stdout is not None
        load = subprocess.run(
            ["docker", "-H", url, "load", "-q"],
            stdin=save.stdout,
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=120,
        )
        save.stdout.close()
        saved = save.wait(timeout=120)
        errors = save.stderr.read().decode(errors="replace") if save.stderr else ""
    if saved != 0 or load.returncode != 0:
        raise RuntimeError(
            f"could not copy {image} into {url}: save exit {saved} {errors.strip()}; "
            f"load exit {load.returncode} {load.stderr.strip()}"
        )


def _stop(process: subprocess.Popen[bytes], base: Path, *, leftovers: bool = True) -> None:
    """Stop the daemon and kill anything left that uses ``base``.

    With ``leftovers`` its containers are removed first; without, they stay (dead) as after
    a daemon restart.
    """
    if process.poll() is None and leftovers:
        client = docker.APIClient(base_url=f"unix://{base / 'docker.sock'}", timeout=30)
        try:
            for container in client.containers(all=True):
                with contextlib.suppress(docker.errors.DockerException):
                    client.remove_container(container["Id"], force=True, v=True)
        except docker.errors.DockerException:
            pass
        finally:
            client.close()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # containerd and its shims (each shim in a session of its own) name our paths.
    for pid in _processes_using(base):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


DAEMON_PROCESSES = ("dockerd", "containerd", "docker-proxy", "runc")


def _processes_using(base: Path, names: tuple[str, ...] = DAEMON_PROCESSES) -> list[int]:
    marker = str(base).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            # Only the daemon's own processes: a pytest run given its socket names base too.
            daemonish = (entry / "comm").read_text().startswith(names)
            if daemonish and marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _unmount_below(base: Path) -> None:
    """Unmount everything mounted under ``base`` (Docker 28 leaves ``exec/netns/default``)."""
    prefix = str(base) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[4] for line in lines if line.split()[4].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
