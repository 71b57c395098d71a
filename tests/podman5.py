"""Podman 5 beside the host's Podman 4.3: find an install, run it as a rootful service.

``python -m tests.tooling.podman5`` unpacks Debian's podman 5.x with its own runc, conmon,
netavark and aardvark-dns into ``/opt/pytest-criu/engines/<name>`` (``PYTEST_CRIU_ENGINES_PREFIX``),
patched to that prefix's glibc. :func:`running_podman` starts one as ``podman system service``
on a socket of its own, with its own containers.conf, storage.conf and registries.conf (never
the host's /etc/containers files, which Podman 4.3 reads), storage root, run root, temporary
directory, file locks, network config directory, default network (own name, bridge and subnet)
and the ulimits ``pytest-criu setup`` gives Podman 4.3. Its netavark uses the iptables
firewall driver with the host's iptables: netavark's nftables driver fails on this kernel. On
the way out it removes every container, stops the service, kills what is left of it, unmounts
what it mounted, deletes its directories, bridge and the firewall rules naming its subnet or
bridge.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from pytest_criu.engine.errors import EngineError
from pytest_criu.engine.podman import PodmanEngine
from pytest_criu.setup.criu import SYSTEM_PATH
from pytest_criu.setup.podman import ULIMIT_WANT, hard_limits
from tests.engines import ENGINES_PREFIX, _processes_using, _unmount_below, _used_networks
from tests.tooling.installs import installed_facts

SETUP_HINT = "run: sudo .venv/bin/python -m tests.tooling.podman5"
#: Subnets for the services' default networks: not Podman 4.3's 10.88.0.0/16, not the Docker
#: matrix daemons' 172.31.200-249.0/24.
SUBNETS = [ipaddress.IPv4Network(f"172.29.{n}.0/24") for n in range(200, 250)]
#: Where the services' directories go (a disk, not /tmp: overlay storage and checkpoints).
BASE_PARENT = Path("/var/tmp")
BASE_PREFIX = "pcriu-podman5-"
#: Held shared by every service while it runs; the last one out removes netavark's state.
USERS_LOCK = "pcriu-podman5.users"
#: In each service's directory; locked while the service runs.
ALIVE_LOCK = "alive.lock"
#: Rootful netavark's state, shared by every rootful Podman 5 (not by Podman 4.3's CNI).
NETAVARK_RUN_DIR = Path("/run/containers/networks")
SERVICE_PROCESSES = ("podman", "conmon", "netavark", "aardvark-dns", "runc")


@dataclass(frozen=True)
class PodmanInstall:
    """A Podman 5 unpacked by ``tests/tooling/podman5.py``."""

    name: str
    directory: Path
    facts: dict[str, str]

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def podman(self) -> Path:
        return self.root / "usr/bin/podman"

    @property
    def podman_version(self) -> str:
        return self.facts["PODMAN_VERSION"]

    @property
    def runc_version(self) -> str:
        return self.facts["RUNC_VERSION"]

    @property
    def conmon_version(self) -> str:
        return self.facts["CONMON_VERSION"]


def find_podman(name: str) -> tuple[PodmanInstall | None, str]:
    """``(install, "")`` for an installed Podman 5, else ``(None, why it is not)``."""
    facts, why = installed_facts(name, SETUP_HINT)
    if facts is None:
        return None, why
    install = PodmanInstall(name, ENGINES_PREFIX / name, facts)
    if not os.access(install.podman, os.X_OK):
        return None, f"{install.podman} is missing; {SETUP_HINT} {name}"
    return install, ""


@dataclass(frozen=True)
class PodmanService:
    """A running Podman 5 service; ``url`` goes to ``CONTAINER_HOST`` or ``--criu-engine-url``."""

    install: PodmanInstall
    base: Path
    url: str
    pid: int
    network: str
    bridge: str
    subnet: str
    log: Path

    @property
    def containers_conf(self) -> Path:
        return self.base / "containers.conf"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cli(self, *args: str) -> list[str]:
        """argv for the install's podman as a remote client of this service."""
        return [str(self.install.podman), "--url", self.url, *args]


def containers_conf(install: PodmanInstall, base: Path, network: str) -> str:
    """The service's containers.conf (TOML)."""
    hard = hard_limits()
    nofile, nproc = (min(ULIMIT_WANT, hard[k] or ULIMIT_WANT) for k in ("nofile", "nproc"))
    root = install.root

    def quoted(path: Path | str) -> str:
        return json.dumps(str(path))

    return (
        "# written by pytest-criu's tests/podman5.py for one service; deleted with it\n"
        "[containers]\n"
        # As pytest-criu setup sets them for Podman 4.3: Podman's defaults exceed this
        # host's hard limits.
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        + f"seccomp_profile = {quoted(root / 'usr/share/containers/seccomp.json')}\n"
        'log_driver = "k8s-file"\n'
        "\n[engine]\n"
        # crun refuses this host's hybrid cgroup hierarchy; runc works.
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f"events_logfile_path = {quoted(base / 'events.log')}\n"
        # Not Podman 4.3's /run/libpod and shared-memory locks.
        f"tmp_dir = {quoted(base / 'tmp')}\n"
        'lock_type = "file"\n'
        f"volume_path = {quoted(base / 'volumes')}\n"
        "exit_command_delay = 5\n"
        f"conmon_path = [{quoted(root / 'usr/bin/conmon')}]\n"
        f"helper_binaries_dir = [{quoted(root / 'usr/lib/podman')}]\n"
        "\n[engine.runtimes]\n"
        f"runc = [{quoted(root / 'usr/sbin/runc')}]\n"
        "\n[network]\n"
        'network_backend = "netavark"\n'
        # netavark's nftables driver fails here ("nft did not return successfully while
        # applying ruleset"); the host's iptables (nf_tables based, as Docker's) works.
        'firewall_driver = "iptables"\n'
        f"network_config_dir = {quoted(base / 'networks')}\n"
        f"default_network = {quoted(network)}\n"
    )


def storage_conf(base: Path) -> str:
    return (
        "# written by pytest-criu's tests/podman5.py for one service; deleted with it\n"
        "[storage]\n"
        'driver = "overlay"\n'
        f"graphroot = {json.dumps(str(base / 'storage'))}\n"
        f"runroot = {json.dumps(str(base / 'run'))}\n"
    )


def network_json(network: str, bridge: str, subnet: ipaddress.IPv4Network) -> str:
    """netavark's network file for the default network (own bridge name and subnet)."""
    gateway = next(subnet.hosts())
    return json.dumps(
        {
            "name": network,
            "id": os.urandom(32).hex(),
            "driver": "bridge",
            "network_interface": bridge,
            "created": "2026-01-01T00:00:00Z",
            "subnets": [{"subnet": str(subnet), "gateway": str(gateway)}],
            "ipv6_enabled": False,
            "internal": False,
            "dns_enabled": False,
            "ipam_options": {"driver": "host-local"},
        },
        indent=2,
    )


@contextlib.contextmanager
def running_podman(
    install: PodmanInstall, *, timeout: float = 60.0, load_images: Sequence[str] = ()
) -> Iterator[PodmanService]:
    """Start ``install`` as a rootful service beside Podman 4.3; always stop it and clean up."""
    BASE_PARENT.mkdir(parents=True, exist_ok=True)
    reap_crashed_services()
    base = Path(tempfile.mkdtemp(prefix=BASE_PREFIX, dir=BASE_PARENT))
    # 0711 (here, and tmp/, run/ and storage/), as Podman's own directories are: the root of
    # a container's user namespace must pass through to what it mounts from there (runc:
    # "remount-private dst=.../tmp/intermediate-mountpoint-0.0: permission denied"; CRIU:
    # "Failed to open_tree .../run/overlay-containers/ID/userdata/.containerenv").
    base.chmod(0o711)
    # Held while the service lives: a run that finds it free knows this one died (below).
    alive = os.open(base / "alive.new", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(alive, fcntl.LOCK_EX)
    os.rename(base / "alive.new", base / ALIVE_LOCK)
    tag = f"{os.getpid():x}"
    short = install.name.removeprefix("podman-").replace(".", "")
    bridge = f"pcriu{short}-{tag}"[:15]
    network = f"pcriu-{install.name}-{tag}"
    url = f"unix://{base / 'podman.sock'}"
    log = base / "podman.log"
    process: subprocess.Popen[bytes] | None = None
    subnet = ""
    users = os.open(BASE_PARENT / USERS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(users, fcntl.LOCK_SH)
    try:
        for sub in ("tmp", "networks", "volumes", "storage", "run"):
            (base / sub).mkdir(mode=0o711 if sub in ("tmp", "run", "storage") else 0o700)
        (base / "containers.conf").write_text(containers_conf(install, base, network))
        (base / "storage.conf").write_text(storage_conf(base))
        (base / "registries.conf").write_text("# no registries: local images only\n")
        subnet = str(_claim_subnet(base, network, bridge))
        env = {
            "PATH": SYSTEM_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "CONTAINERS_CONF": str(base / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(base / "registries.conf"),
            "PODMAN_IGNORE_CGROUPSV1_WARNING": "1",
            "TMPDIR": str(base / "tmp"),
        }
        with log.open("ab") as out:
            process = subprocess.Popen(
                [str(install.podman), "system", "service", "--time=0", url],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        service = PodmanService(install, base, url, process.pid, network, bridge, subnet, log)
        _wait_for(service, process, timeout)
        for image in load_images:
            copy_image(service, image)
        yield service
    finally:
        if process is not None:
            _stop(process, url, base)
        _unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        if subnet:
            remove_firewall_rules([subnet, bridge, network])
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another Podman 5 service still uses netavark's shared state
        else:
            remove_netavark_state()
        finally:
            os.close(users)
            os.close(alive)


def reap_crashed_services() -> list[Path]:
    """Remove what services whose runner was killed left: processes, mounts, directory,
    bridge, firewall rules. A service's directory counts as left when its lock is free."""
    reaped = []
    for other in sorted(BASE_PARENT.glob(f"{BASE_PREFIX}*")):
        try:
            lock = os.open(other / ALIVE_LOCK, os.O_RDONLY)
        except OSError:
            continue  # not made yet, or not a service's
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            continue  # its service runs
        try:
            for pid in [*_processes_using(other, SERVICE_PROCESSES), *_container_processes(other)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _unmount_below(other)
            for network in other.glob("networks/*.json"):
                with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
                    data = json.loads(network.read_text())
                    bridge = str(data["network_interface"])
                    subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
                    subnet = str(data["subnets"][0]["subnet"])
                    remove_firewall_rules([subnet, bridge, str(data["name"])])
            shutil.rmtree(other, ignore_errors=True)
            reaped.append(other)
        finally:
            os.close(lock)
    return reaped


def _container_processes(base: Path) -> list[int]:
    """Processes of the containers of the service in ``base`` (their cgroup names the id)."""
    ids = [d.name for d in (base / "storage/overlay-containers").glob("*") if len(d.name) == 64]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and ids:
            with contextlib.suppress(OSError):
                groups = (entry / "cgroup").read_text()
                if any(f"libpod-{cid}" in groups for cid in ids):
                    found.append(int(entry.name))
    return found


def _claim_subnet(base: Path, network: str, bridge: str) -> ipaddress.IPv4Network:
    """Pick the first free subnet of :data:`SUBNETS` and write the default network's file.

    Locked (concurrent runs): a subnet counts as used when an interface or route has it or
    another service's network file names it.
    """
    lock = os.open(BASE_PARENT, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        used = _used_networks()
        for other in BASE_PARENT.glob(f"{BASE_PREFIX}*/networks/*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
                subnets = json.loads(other.read_text())["subnets"]
                used.append(ipaddress.IPv4Network(subnets[0]["subnet"]))
        subnet = next((s for s in SUBNETS if not any(s.overlaps(u) for u in used)), None)
        if subnet is None:
            raise RuntimeError(f"no free subnet among {SUBNETS[0]} ... {SUBNETS[-1]}")
        (base / "networks" / f"{network}.json").write_text(network_json(network, bridge, subnet))
    finally:
        os.close(lock)
    return subnet


def _wait_for(service: PodmanService, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{service.install.name}: podman system service exited ({process.returncode}):\n"
                + service.log_tail()
            )
        if Path(service.url.removeprefix("unix://")).exists():
            try:
                engine = PodmanEngine(service.url, timeout=5)
            except EngineError:
                time.sleep(0.1)
                continue
            try:
                engine.version()
                return
            except EngineError:
                pass
            finally:
                engine.close()
        time.sleep(0.1)
    raise RuntimeError(
        f"{service.install.name}: the service did not answer within {timeout:g} s:\n"
        + service.log_tail()
    )


def copy_image(service: PodmanService, image: str) -> None:
    """``docker save IMAGE | podman --url URL load`` (the main Docker's local image)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    with subprocess.Popen(
        ["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as save:
        assert save.stdout is not None
        load = subprocess.run(
            service.cli("load", "-q"),
            stdin=save.stdout,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        save.stdout.close()
        saved = save.wait(timeout=600)
        errors = save.stderr.read().decode(errors="replace") if save.stderr else ""
    if saved != 0 or load.returncode != 0:
        raise RuntimeError(
            f"could not copy {image} into {service.url}: save exit {saved} {errors.strip()}; "
            f"load exit {load.returncode} {load.stderr.strip()}"
        )


def _stop(process: subprocess.Popen[bytes], url: str, base: Path) -> None:
    """Remove every container, stop the service, kill what is left that names ``base``."""
    if process.poll() is None:
        with contextlib.suppress(requests.exceptions.RequestException, EngineError, OSError):
            engine = PodmanEngine(url, timeout=60)
            try:
                for container in engine.api.containers(all=True):
                    with contextlib.suppress(Exception):
                        engine.remove(container["Id"])
            finally:
                engine.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    for pid in _processes_using(base, SERVICE_PROCESSES):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove_netavark_state() -> None:
    """netavark's chains (NETAVARK*) and the jumps to them, its IPAM database and state."""
    chains: dict[str, list[str]] = {}
    for table in FIREWALL_TABLES:
        listed = subprocess.run(
            ["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False
        )
        chains[table] = [
            line.split()[1] for line in listed.stdout.splitlines() if line.startswith("-N NETAVARK")
        ]
    remove_firewall_rules([chain for names in chains.values() for chain in names])
    for table, names in chains.items():
        for flag in ("-F", "-X"):  # empty every chain first: they jump to each other
            for chain in names:
                argv = ["iptables", "-t", table, flag, chain]
                subprocess.run(argv, capture_output=True, check=False)
    shutil.rmtree(NETAVARK_RUN_DIR, ignore_errors=True)


FIREWALL_TABLES = ("nat", "filter", "mangle")


def remove_firewall_rules(words: Sequence[str]) -> None:
    """Delete the iptables rules that name one of ``words`` (a subnet, a bridge, a network,
    a chain) or an address inside a subnet among them, then the per-network chains of
    netavark (NETAVARK-DN-*) those rules jumped to, once nothing else jumps there."""
    subnets = []
    for word in words:
        with contextlib.suppress(ValueError):
            subnets.append(ipaddress.IPv4Network(word))
    for table in FIREWALL_TABLES:
        orphans = set()
        for rule in _rules(table):
            fields = shlex.split(rule)
            if fields[:1] == ["-A"] and any(_names(f, words, subnets) for f in fields[2:]):
                argv = ["iptables", "-t", table, "-D", *fields[1:]]
                subprocess.run(argv, capture_output=True, check=False)
                target = fields[fields.index("-j") + 1] if "-j" in fields[:-1] else ""
                if target.startswith("NETAVARK-DN-"):
                    orphans.add(target)
        remaining = _rules(table)
        for chain in orphans:
            if not any(shlex.split(r)[-2:] == ["-j", chain] for r in remaining):
                for flag in ("-F", "-X"):
                    argv = ["iptables", "-t", table, flag, chain]
                    subprocess.run(argv, capture_output=True, check=False)


def _rules(table: str) -> list[str]:
    listed = subprocess.run(
        ["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False
    )
    return listed.stdout.splitlines()


def _names(field: str, words: Sequence[str], subnets: Sequence[ipaddress.IPv4Network]) -> bool:
    """``field`` is one of ``words``, holds one as a word (a comment), or is an address
    (``A``, ``A/N``, ``A:PORT``) in ``subnets``."""
    if field in words or any(word in field.split() for word in words):
        return True
    try:
        address = ipaddress.IPv4Address(field.split("/", maxsplit=1)[0].split(":", maxsplit=1)[0])
    except ValueError:
        return False
    return any(address in subnet for subnet in subnets)
