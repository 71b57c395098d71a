r"""Run a GitHub Actions job's own steps on a reproduction of GitHub's hosted ubuntu-latest runner.

Usage (root, from a checkout whose HEAD is what the job checks out):

    sudo .venv/bin/python -m tests.tooling.runner examples/ci/github-actions.yml hosted

The steps come from the workflow file (tests/tooling/runner_steps.py). They run in namespaces
of their own, so that nothing of the host's Docker 20.10, Podman or CRIU is seen or touched:

  pid       everything the job starts dies with the namespace (tini is its init)
  network   a veth pair to the host with NAT (MASQUERADE from a /30 of 100.64.0.0/10), so
            apt and pip reach the network; Docker's docker0 and iptables chains stay inside
  mount     the host's root file system under an overlay whose upper layer is a tmpfs: every
            write (users, packages, /etc, /opt) lands there; a tmpfs /run; /var/lib/docker,
            /var/lib/containerd, /tmp and /home/runner on a scratch directory of the host

Inside, the runner's stack as far as Debian allows: Docker 28.5.2's dockerd, docker-proxy,
containerd and shim (/opt/pytest-criu/engines/docker-28) bind-mounted where docker-ce has them
(/usr/bin), with docker.io removed from dpkg's database as on the runner; containerd and
dockerd already running as their systemd units would start them (no experimental API, the
systemd default PATH); no CRIU (the host's wrapper, its /opt/pytest-criu and /etc/criu are
hidden); no apt sources (Debian's are hidden; Ubuntu's cannot be verified here, Debian has no
Ubuntu keyring); /etc/os-release says Ubuntu 24.04; a user `runner` with passwordless sudo.
`uses:` steps are replaced by what they do (checkout: a clone of HEAD; setup-python: python
on PATH). What still differs from GitHub's runner is listed in the README.

Everything is removed at the end, also on failure, SIGTERM and Ctrl-C: the namespaces with
their processes and mounts, the veth pair, the NAT rules, the containers' cgroups and the
scratch directory. A runner killed with SIGKILL takes its namespace along (unshare gets
PR_SET_PDEATHSIG), and the next run removes the NAT rules, cgroups and scratch directory it
left. Exit status: 0 when every step passed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ipaddress
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from tests.tooling.runner_steps import (
    Job,
    RecipeError,
    Step,
    load_job,
    shell_command,
    should_run,
    step_environment,
    timeout_seconds,
)

ENGINE = (
    Path(os.environ.get("PYTEST_CRIU_ENGINES_PREFIX", "/opt/pytest-criu/engines")) / "docker-28"
)
#: Docker 28's binaries (engine root, relative) and where docker-ce installs them.
DOCKER_BINARIES = {
    "usr/sbin/dockerd": "usr/bin/dockerd",
    "usr/sbin/docker-proxy": "usr/bin/docker-proxy",
    "usr/bin/containerd": "usr/bin/containerd",
    "usr/bin/containerd-shim-runc-v2": "usr/bin/containerd-shim-runc-v2",
    "usr/bin/ctr": "usr/bin/ctr",
}
#: What a runner does not have: the host's CRIU, its set-up's state and its apt sources.
HIDDEN = (
    "usr/local/sbin/criu",
    "opt/pytest-criu",
    "etc/criu",
    "etc/docker",
    "var/lib/pytest-criu",
    "var/cache/pytest-criu",
    "var/log/pytest-criu-dockerd.log",
    "etc/apt/sources.list",
    "etc/apt/sources.list.d",
    "var/lib/apt/lists",
)
OS_RELEASE = """PRETTY_NAME="Ubuntu 24.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.3 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
"""
#: systemd's default PATH: what docker.service and containerd.service get.
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER = "runner"
REPOSITORY = "pytest-criu"
WORKSPACE = Path("/home/runner/work") / REPOSITORY / REPOSITORY
RUNNER_TEMP = Path("/home/runner/work/_temp")
TOOLCACHE = Path("/opt/hostedtoolcache/Python/system/x64/bin")
NETWORK = ipaddress.ip_network("100.64.0.0/10")
PREPARE_SECONDS = 900.0
"""Time for everything before the steps (sudo's download, the daemons) and for clean-up."""


def say(message: str) -> None:
    print(f"[runner] {message}", flush=True)


def run(argv: Sequence[str], *, timeout: float = 300, **kw: object) -> str:
    """Run ``argv``; its stdout, or :class:`RunnerError` naming the command and its stderr."""
    done = subprocess.run(  # type: ignore[call-overload]
        list(argv), capture_output=True, text=True, check=False, timeout=timeout, **kw
    )
    if done.returncode != 0:
        raise RunnerError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return str(done.stdout)


class RunnerError(Exception):
    pass


def subnet_for(pid: int) -> ipaddress.IPv4Network:
    """A /30 of 100.64.0.0/10 (shared address space, unused here) picked by ``pid``."""
    base = int(NETWORK.network_address) + (pid % (NETWORK.num_addresses // 4)) * 4
    return ipaddress.IPv4Network(f"{ipaddress.IPv4Address(base)}/30")


def nat_rules(veth: str, subnet: str, tag: str) -> list[list[str]]:
    """The host's iptables rules for the job's network (table, chain, rule), each tagged."""
    comment = ["-m", "comment", "--comment", tag]
    return [
        ["-t", "nat", "POSTROUTING", "-s", subnet, "!", "-o", veth, "-j", "MASQUERADE", *comment],
        ["-t", "filter", "FORWARD", "-i", veth, "-j", "ACCEPT", *comment],
        ["-t", "filter", "FORWARD", "-o", veth, "-m", "conntrack", "--ctstate",
         "RELATED,ESTABLISHED", "-j", "ACCEPT", *comment],
    ]  # fmt: skip


def iptables(action: str, rule: list[str]) -> list[str]:
    """``iptables -t TABLE -I|-D CHAIN ...`` for a rule of :func:`nat_rules`."""
    table, chain, spec = rule[:2], rule[2], rule[3:]
    return ["iptables", "-w", "10", *table, action, chain, *spec]


# --------------------------------------------------------------------------------------------
# On the host: the scratch directory, the network, the namespaces; clean-up
# --------------------------------------------------------------------------------------------
class Outside:
    def __init__(self, workflow: Path, job: Job, scratch_parent: Path) -> None:
        self.workflow = workflow
        self.job = job
        self.tag = f"pytest-criu-runner-{os.getpid()}"
        self.veth = f"pcrun{os.getpid():x}"[:15]
        self.subnet = subnet_for(os.getpid())
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{self.tag}-", dir=scratch_parent))
        self.rules: list[list[str]] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        reap_leftovers(self.scratch.parent)
        repo = Path(
            run(["git", "-C", str(self.workflow.parent), "rev-parse", "--show-toplevel"]).strip()
        )
        self.sha = run(["git", "-C", str(repo), "rev-parse", "HEAD"]).strip()
        dirty = run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"])
        if dirty.strip():
            say(f"note: uncommitted changes in {repo} are not in the job's checkout (HEAD only)")
        temp = self.scratch / "home" / "work" / "_temp"
        temp.mkdir(parents=True)
        run(["git", "-C", str(repo), "bundle", "create", str(temp / "checkout.bundle"), "HEAD"])
        host, inner = list(self.subnet.hosts())
        inside = [
            sys.executable, "-m", "tests.tooling.runner", str(self.workflow), self.job.name,
            "--inside", str(self.scratch), "--address", f"{inner}/30", "--gateway", str(host),
            "--sha", self.sha, "--cgroup-parent", self.tag,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
             "--propagation", "private", "--", "tini", "-s", "-g", "--", *inside],
            stdin=subprocess.PIPE,
            cwd=repo,
            # Ctrl-C reaches only this process, which cleans up; when it dies, unshare dies
            # too, and --kill-child takes the namespace along.
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (no threads here)
        )  # fmt: skip
        netns = f"/proc/{self.process.pid}/ns/net"
        deadline = time.monotonic() + 30
        while os.readlink(netns) == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RunnerError("unshare did not make a network namespace within 30 s")
            time.sleep(0.05)
        run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0",
             "netns", str(self.process.pid)])  # fmt: skip
        run(["ip", "addr", "add", f"{host}/30", "dev", self.veth])
        run(["ip", "link", "set", self.veth, "up"])
        if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "1":
            raise RunnerError(
                "net.ipv4.ip_forward is 0 on this host: the job would have no network"
            )
        for rule in nat_rules(self.veth, str(self.subnet), self.tag):
            run(iptables("-I", rule))
            self.rules.append(rule)
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.close()

    def wait(self) -> int:
        assert self.process is not None
        limit = self.job.timeout_minutes * 60 + PREPARE_SECONDS
        try:
            return self.process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            say(f"TIMEOUT: the job did not end within {limit:.0f} s")
            return 124

    def clean(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # --kill-child: unshare's death kills the namespace's init, and with it every
            # process of the namespace; its mounts go with its last process.
            self.process.kill()
            self.process.wait(timeout=60)
        problems = []
        for rule in reversed(self.rules):
            with contextlib.suppress(subprocess.TimeoutExpired):
                if subprocess.run(
                    iptables("-D", rule), capture_output=True, check=False
                ).returncode:
                    problems.append(f"iptables rule {' '.join(rule)}")
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True, check=False)
        if Path("/sys/class/net", self.veth).exists():
            problems.append(f"veth {self.veth}")
        remove_cgroups(self.tag)
        problems += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{self.tag}")]
        mounted = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()
                   if ln.split()[4].startswith(str(self.scratch))]  # fmt: skip
        if mounted:
            problems.append(f"mounts {' '.join(mounted)} (left in place with the scratch dir)")
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if problems:
            say(f"clean-up left: {'; '.join(problems)}")
        else:
            say("cleaned up: namespaces, veth pair, NAT rules, cgroups, scratch directory")


def remove_cgroups(parent: str, timeout: float = 15.0) -> None:
    """Remove the cgroup directories Docker made under ``parent`` (deepest first); a
    namespace's processes take a moment to die, so this retries until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        tops = list(Path("/sys/fs/cgroup").glob(f"*/{parent}"))
        for top in tops:
            for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if directory.is_dir():
                    with contextlib.suppress(OSError):
                        directory.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
        if not any(top.exists() for top in tops) or time.monotonic() > deadline:
            return
        time.sleep(0.5)


TAG = re.compile(r"pytest-criu-runner-(\d+)")


def stale_rules(table: str, listing: str, alive: Callable[[int], bool]) -> list[list[str]]:
    """``iptables -D`` commands for the rules in ``listing`` (``iptables -S`` output of
    ``table``) that a run which is no longer alive tagged."""
    commands = []
    for line in listing.splitlines():
        found = TAG.search(line)
        if line.startswith("-A ") and found and not alive(int(found.group(1))):
            commands.append(["iptables", "-w", "10", "-t", table, "-D", *shlex.split(line)[1:]])
    return commands


def runner_alive(pid: int) -> bool:
    try:
        return b"tests.tooling.runner" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def reap_leftovers(scratch_parent: Path) -> None:
    """Remove what runs killed without their clean-up (SIGKILL) left: NAT rules, cgroups and
    scratch directories whose run is gone (veth pairs die with their namespace)."""
    reaped = []
    for table in ("nat", "filter"):
        listing = subprocess.run(["iptables", "-w", "10", "-t", table, "-S"], capture_output=True,
                                 text=True, check=False).stdout  # fmt: skip
        for command in stale_rules(table, listing, runner_alive):
            if subprocess.run(command, capture_output=True, check=False).returncode == 0:
                reaped.append(f"iptables rule in {table}")
    for top in Path("/sys/fs/cgroup").glob("*/pytest-criu-runner-*"):
        found = TAG.search(top.name)
        if found and not runner_alive(int(found.group(1))):
            remove_cgroups(top.name, timeout=0)
            reaped.append(f"cgroup {top}")
    mounts = Path("/proc/self/mountinfo").read_text()
    for leftover in scratch_parent.glob("pytest-criu-runner-*"):
        found = TAG.search(leftover.name)
        if found and not runner_alive(int(found.group(1))) and str(leftover) not in mounts:
            shutil.rmtree(leftover, ignore_errors=True)
            reaped.append(str(leftover))
    if reaped:
        say(f"removed what an earlier run left: {', '.join(reaped)}")


def die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the runner dies (even by SIGKILL)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------------------------
# Inside the namespaces
# --------------------------------------------------------------------------------------------
def wait_for_go(timeout: float = 60) -> None:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready or sys.stdin.readline().strip() != "go":
        raise RunnerError(f"the host did not set up the network within {timeout:g} s")


def network_up(address: str, gateway: str) -> None:
    run(["ip", "link", "set", "lo", "up"])
    run(["ip", "addr", "add", address, "dev", "eth0"])
    run(["ip", "link", "set", "eth0", "up"])
    run(["ip", "route", "add", "default", "via", gateway])


def mount(*args: str) -> None:
    run(["mount", *args])


def chroot(root: Path, *argv: str, timeout: float = 600) -> str:
    env = {"PATH": SYSTEM_PATH_ROOT, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
    return run(["chroot", str(root), *argv], timeout=timeout, env=env)


SYSTEM_PATH_ROOT = "/usr/sbin:/usr/bin:/sbin:/bin"


def build_root(scratch: Path, cgroup_parent: str) -> Path:
    """The runner's root file system under ``scratch/root`` (see the module's docstring)."""
    upper, root = scratch / "upper", scratch / "root"
    for directory in (upper, root, scratch / "docker", scratch / "containerd", scratch / "tmp"):
        directory.mkdir(mode=0o700)
    mount("-t", "tmpfs", "-o", "mode=0700,size=16g", "tmpfs", str(upper))
    (upper / "u").mkdir()
    (upper / "w").mkdir()
    mount("-t", "overlay", "overlay", "-o", f"lowerdir=/,upperdir={upper}/u,workdir={upper}/w",
          str(root))  # fmt: skip
    mount("-t", "proc", "proc", str(root / "proc"))
    mount("-t", "sysfs", "sysfs", str(root / "sys"))
    mount("--rbind", "/sys/fs/cgroup", str(root / "sys/fs/cgroup"))
    mount("--rbind", "/dev", str(root / "dev"))
    mount("-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "tmpfs", str(root / "run"))
    # docker.io out of dpkg's database, as on a runner (docker-ce is no Debian package here);
    # its maintainer scripts start and stop nothing.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    chroot(root, "dpkg", "--remove", "--force-depends", "docker.io")
    say("dpkg: docker.io removed (the runner's Docker is docker-ce, not a Debian package)")
    if shutil.which("sudo", path=str(root / "usr/bin")) is None:
        say("installing sudo (the runner has it) from the host's apt sources")
        chroot(root, "apt-get", "update", "-qq")
        chroot(root, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "sudo")
    policy.unlink()
    for hidden in HIDDEN:
        gone = root / hidden
        if gone.is_dir() and not gone.is_symlink():
            shutil.rmtree(gone)
        else:
            gone.unlink(missing_ok=True)
    for made in ("etc/apt/sources.list.d", "var/lib/apt/lists/partial", "etc/docker"):
        (root / made).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").unlink(missing_ok=True)
    (root / "etc/os-release").write_text(OS_RELEASE)
    # The runner image's daemon.json names a cgroup parent; ours makes the clean-up exact.
    (root / "etc/docker/daemon.json").write_text(f'{{"cgroup-parent": "/{cgroup_parent}"}}\n')
    (root / "etc/containerd").mkdir(exist_ok=True)
    (root / "etc/containerd/config.toml").write_text(
        'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
    )
    for source, target in DOCKER_BINARIES.items():
        (root / target).touch()
        mount("--bind", str(ENGINE / "root" / source), str(root / target))
    (root / "usr/bin/docker").touch()
    mount("--bind", "/usr/bin/docker", str(root / "usr/bin/docker"))  # the host's CLI (20.10)
    init = root / "usr/bin/docker-init"
    if not init.exists():
        init.unlink(missing_ok=True)
        init.symlink_to("tini-static")
    for source, target in (("docker", "var/lib/docker"), ("containerd", "var/lib/containerd"),
                           ("tmp", "tmp"), ("home", "home/runner")):  # fmt: skip
        (root / target).mkdir(parents=True, exist_ok=True)
        mount("--bind", str(scratch / source), str(root / target))
    (root / "tmp").chmod(0o1777)
    chroot(root, "useradd", "--shell", "/bin/bash", "--home-dir", "/home/runner", "--no-create-home",
           "--user-group", "--groups", "docker", USER)  # fmt: skip
    chroot(root, "chown", "-R", f"{USER}:{USER}", "/home/runner")
    sudoers = root / "etc/sudoers.d/runner"
    sudoers.write_text(f"{USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    return root


def pivot(root: Path) -> None:
    """Make ``root`` this mount namespace's root (CRIU refuses a chroot)."""
    os.chdir(root)
    (root / ".old-root").mkdir()
    run(["pivot_root", ".", ".old-root"])
    os.chdir("/")
    run(["umount", "-l", "/.old-root"])
    os.rmdir("/.old-root")


def start_daemons() -> None:
    """containerd and dockerd as their systemd units start them on a runner."""
    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "HOME": "/root"}
    for argv, log in (
        (["containerd"], "/var/log/containerd.log"),
        (["dockerd", "--containerd=/run/containerd/containerd.sock"], "/var/log/docker.log"),
    ):
        with open(log, "ab") as out:
            daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)  # fmt: skip
        sock = "/run/containerd/containerd.sock" if argv[0] == "containerd" else "/run/docker.sock"
        wait_for_socket(sock, daemon, log)
    version = run(["docker", "version", "--format", "{{.Server.Version}}"]).strip()
    say(f"Docker {version} runs (containerd.service and docker.service stand-ins, no CRIU)")


def wait_for_socket(
    path: str, daemon: subprocess.Popen[bytes], log: str, timeout: float = 60
) -> None:
    name = str(daemon.args[0])  # type: ignore[index]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon.poll() is None:
        with socket.socket(socket.AF_UNIX) as probe, contextlib.suppress(OSError):
            probe.connect(path)
            return
        time.sleep(0.2)
    tail = Path(log).read_text(errors="replace").splitlines()[-20:]
    raise RunnerError(f"{name} did not listen on {path} within {timeout:g} s:\n" + "\n".join(tail))


def stop_daemons() -> None:
    """Remove every container (Docker removes their cgroups), then stop the daemons."""
    with contextlib.suppress(RunnerError, subprocess.TimeoutExpired):
        ids = run(["docker", "ps", "-aq"], timeout=60).split()
        if ids:
            run(["docker", "rm", "-f", *ids], timeout=300)
    for name in ("dockerd", "containerd"):
        for pid in [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    os.kill(pid, signal.SIGTERM)
        time.sleep(2)


def run_steps(job: Job, sha: str) -> list[tuple[Step, str, float]]:
    """Run the job's steps as GitHub would; (step, outcome, seconds) for each."""
    path = [SYSTEMD_PATH]
    base = {
        "HOME": "/home/runner", "USER": USER, "LOGNAME": USER, "SHELL": "/bin/bash",
        "LANG": "C.UTF-8", "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_JOB": job.name,
        "GITHUB_WORKSPACE": str(WORKSPACE), "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64",
        "RUNNER_TEMP": str(RUNNER_TEMP), "ImageOS": "ubuntu24",
    }  # fmt: skip
    results: list[tuple[Step, str, float]] = []
    as_runner(["mkdir", "-p", str(WORKSPACE)])  # GitHub makes it before the first step
    failed = False
    job_end = time.monotonic() + job.timeout_minutes * 60
    for step in job.steps:
        if not should_run(step, failed):
            results.append((step, "skipped", 0.0))
            continue
        print(f"\n##[group] step {step.number}: {step.name}", flush=True)
        began = time.monotonic()
        ok = True
        if step.kind == "checkout":
            bundle = RUNNER_TEMP / "checkout.bundle"
            as_runner(["git", "clone", "-q", "--no-checkout", str(bundle), str(WORKSPACE)])
            as_runner(["git", "-C", str(WORKSPACE), "checkout", "-q", "--detach", sha])
            say(f"checked out {sha[:12]} into {WORKSPACE} ({step.note})")
        elif step.kind == "setup-python":
            TOOLCACHE.mkdir(parents=True, exist_ok=True)
            for name in ("python", "python3"):
                link = TOOLCACHE / name
                if not link.exists():
                    link.symlink_to("/usr/bin/python3")
            path.insert(0, str(TOOLCACHE))
            say(f"{step.note}: {run(['/usr/bin/python3', '--version']).strip()}")
        elif step.kind == "skip":
            say(step.note)
        else:
            env = step_environment({**base, "PATH": ":".join(path)}, job, step)
            ok = run_script(step, env, timeout_seconds(job, step, job_end - time.monotonic()))
        took = time.monotonic() - began
        print(f"##[endgroup] step {step.number}: {'ok' if ok else 'FAILED'} in {took:.0f} s",
              flush=True)  # fmt: skip
        results.append((step, "ok" if ok else "FAILED", took))
        failed = failed or not ok
    return results


def as_runner(argv: list[str]) -> None:
    run(["runuser", "-u", USER, "--", *argv], cwd="/home/runner")


def run_script(step: Step, env: dict[str, str], timeout: float) -> bool:
    script = RUNNER_TEMP / f"step-{step.number}.sh"
    script.write_text(step.script)
    os.chown(script, *_ids())
    for line in step.script.strip().splitlines():
        print(f"$ {line}", flush=True)
    argv = ["runuser", "-u", USER, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
            *shell_command(str(script))]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=WORKSPACE, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        return process.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:
        say(f"TIMEOUT: step {step.number} did not end within {timeout:.0f} s")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return False


def _ids() -> tuple[int, int]:
    stat = Path("/home/runner").stat()
    return stat.st_uid, stat.st_gid


def inside(args: argparse.Namespace) -> int:
    job = load_job(Path(args.workflow).read_text(), args.job)
    wait_for_go()
    network_up(args.address, args.gateway)
    root = build_root(Path(args.inside), args.cgroup_parent)
    pivot(root)
    start_daemons()
    try:
        results = run_steps(job, args.sha)
    finally:
        stop_daemons()
    print(f"\n=== job {job.name}: steps ===", flush=True)
    for step, outcome, took in results:
        print(f"  {step.number:2d}  {outcome:7s} {took:5.0f} s  {step.name}", flush=True)
    return 0 if all(outcome != "FAILED" for _, outcome, _ in results) else 1


# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.tooling.runner",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "workflow", type=Path, help="the workflow file, e.g. examples/ci/github-actions.yml"
    )
    parser.add_argument("job", help="the job to run, e.g. hosted")
    parser.add_argument("--scratch", type=Path, default=Path("/var/tmp"),
                        help="where the scratch directory goes (default /var/tmp)")  # fmt: skip
    for hidden in ("--inside", "--address", "--gateway", "--sha", "--cgroup-parent"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.inside:
            return inside(args)
        if os.geteuid() != 0:
            say(
                "must run as root (namespaces, mounts, NAT): sudo .venv/bin/python -m tests.tooling.runner ..."
            )
            return 1
        job = load_job(args.workflow.read_text(), args.job)
        check_host()
    except (RecipeError, RunnerError, OSError) as error:
        say(f"ERROR: {error}")
        return 1
    return outside(args.workflow.resolve(), job, args.scratch)


def check_host() -> None:
    for tool in ("unshare", "tini", "iptables", "ip", "pivot_root", "runuser", "chroot"):
        if shutil.which(tool) is None:
            raise RunnerError(f"{tool} is not installed")
    if not (ENGINE / "root" / "usr/sbin/dockerd").is_file():
        raise RunnerError(
            f"{ENGINE} holds no Docker 28; run: sudo .venv/bin/python -m tests.tooling.engines"
        )


def outside(workflow: Path, job: Job, scratch: Path) -> int:
    began = time.monotonic()
    box = Outside(workflow, job, scratch)

    def terminate(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        box.start()
        code = box.wait()
    except (RunnerError, subprocess.TimeoutExpired, OSError) as error:
        say(f"ERROR: {error}")
        code = 1
    except KeyboardInterrupt:
        say("interrupted")
        code = 130
    finally:
        box.clean()
    say(f"job {job.name}: {'passed' if code == 0 else f'FAILED (exit {code})'} "
        f"in {time.monotonic() - began:.0f} s")  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
