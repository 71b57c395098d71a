r"""Build pytest-criu's container images locally (no registry needed).

  tiny      pytest-criu/tiny      busybox-static plus its applet links (sh, sleep, nc, httpd, ...),
                                  a tar fed to `docker import`; builds in about a second.
  services  pytest-criu/services  Debian made by `mmdebstrap --variant=apt`, with redis-server,
                                  redis-cli, mariadbd, mariadb-install-db, the mariadb client,
                                  PostgreSQL (postgresql: 15 on bookworm), gosu and python3.
                                  On Debian: this host's release from its own apt
                                  sources. Elsewhere (Ubuntu): Debian bookworm
                                  (PYTEST_CRIU_IMAGES_SUITE) from the Debian mirror
                                  PYTEST_CRIU_DEBIAN_URI, verified with debian-archive-keyring.
  postgres  pytest-criu/postgres  shaped like Docker Hub's official images, built on the services
  redis     pytest-criu/redis     image (`docker build` with the legacy builder: Dockerfile plus
  mariadb   pytest-criu/mariadb   tests/tooling/entrypoints/<name>.sh as
                                  /usr/local/bin/docker-entrypoint.sh); a few seconds each.
                                  Their entrypoint starts as root, owns the data directory and
                                  runs the service as its own user: postgres (gosu), redis
                                  (setpriv), mysql (gosu). Each also builds the services image
                                  when missing.
  official  postgres, redis and mariadb
  all       every image (the default)

Each image is tagged with a digest of its inputs (pytest-criu/<name>:<sha12>) and with :latest;
when the digest tag already exists the build is skipped. The inputs of postgres, redis and
mariadb are the services image's ID, their Dockerfile and their entrypoint script: editing the
script rebuilds the image. --force rebuilds the images named (services only when named, or by
all). The image references are printed, one per line, on stdout.

When Podman is installed and its service answers (`pytest-criu setup --engine podman`), each image is
also put into Podman's storage under the same names (localhost/pytest-criu/<name>:<sha12> and
:latest): `docker save | podman load`, skipped when Podman already holds that content under
both names (same image ID as in Docker). Set PYTEST_CRIU_PODMAN_SOCKET for another service socket
than unix:///run/podman/podman.sock.

pytest-criu's tests and examples use these images by default; point them at other images with
the environment variables PYTEST_CRIU_TINY_IMAGE (default pytest-criu/tiny:latest),
PYTEST_CRIU_SERVICES_IMAGE (default pytest-criu/services:latest), PYTEST_CRIU_POSTGRES_IMAGE
(default pytest-criu/postgres:latest), PYTEST_CRIU_REDIS_IMAGE (default pytest-criu/redis:latest)
and PYTEST_CRIU_MARIADB_IMAGE (default pytest-criu/mariadb:latest). The last three stand in for
Docker Hub's postgres:15, redis:7 and mariadb:10.11, which they may name where a registry answers.

The official-like images (run `docker inspect` for the rest of their configuration):
  postgres  ENTRYPOINT ["docker-entrypoint.sh"], CMD ["postgres"], PGDATA=/var/lib/postgresql/data,
            STOPSIGNAL SIGINT, EXPOSE 5432. An empty PGDATA is initialised (initdb) with
            POSTGRES_USER (default postgres), POSTGRES_PASSWORD (needed unless
            POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default: the user; created through a
            server listening on the unix socket only), POSTGRES_INITDB_ARGS, pg_hba
            `host all all all scram-sha-256` (or POSTGRES_HOST_AUTH_METHOD), listen_addresses='*'.
            A command starting with - is given to postgres.
  redis     ENTRYPOINT ["docker-entrypoint.sh"], CMD ["redis-server"], WORKDIR /data, EXPOSE 6379;
            redis-server gets --protected-mode no right after its config file (if any): it answers
            on every interface without a password.
  mariadb   ENTRYPOINT ["docker-entrypoint.sh"], CMD ["mariadbd"], EXPOSE 3306, bind-address
            0.0.0.0 and skip-name-resolve in /etc/mysql/mariadb.conf.d/99-docker.cnf. An empty
            /var/lib/mysql is initialised (mariadb-install-db --extra-file) with
            MARIADB_ROOT_PASSWORD or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD (one is needed; root@'%' is
            created too), MARIADB_DATABASE, MARIADB_USER with MARIADB_PASSWORD (all privileges on
            the database), or their MYSQL_* names (MYSQL_ALLOW_EMPTY_PASSWORD for the empty
            root password) as in the official image. A command starting with - is given to
            mariadbd. Like the official image, no --innodb-use-native-aio=0: pass it in the command
            (CRIU cannot dump io_uring).
  None declares a VOLUME (the official ones do), so that a checkpoint's data stays in the
  container's own filesystem.

MariaDB in the services image runs as root, without io_uring/native AIO (CRIU cannot dump them):
  mariadb-install-db --user=root --datadir=/var/lib/mysql --skip-test-db \
      --auth-root-authentication-method=normal
  mariadbd --user=root --datadir=/var/lib/mysql --innodb-use-native-aio=0 --bind-address=0.0.0.0

Usage: sudo .venv/bin/python -m tests.tooling.images
           [tiny|services|postgres|redis|mariadb|official|all] [--force]

Needs: root, the docker CLI with a running daemon (sudo pytest-criu setup), busybox-static and
mmdebstrap (installed here when missing). Runs with the virtualenv's Python: the tiny image's
recipe is the one `pytest-criu setup` builds for its round trip (pytest_criu.setup.image), and
the host's apt sources come from `apt-get indextargets` (pytest_criu.setup.apt).
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

from pytest_criu.setup import apt, plan, system
from pytest_criu.setup import image as tiny
from pytest_criu.setup.criu import DEBIAN_KEYRING
from pytest_criu.setup.image import RECIPE_VERSION, digest

TINY_REPO = "pytest-criu/tiny"
SERVICES_REPO = "pytest-criu/services"
SERVICES_PACKAGES = [
    "redis-server",
    "redis-tools",
    "mariadb-server",
    "mariadb-client",
    "python3",
    "postgresql",
    "gosu",
    "procps",
    "ca-certificates",
]
# Keep the image small: no documentation, manual pages or translations.
SERVICES_DPKG_OPTS = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
]
SERVICES_CLEANUP = (
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old'
    ' "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log'
    ' "$1"/var/log/bootstrap.log "$1"/tmp/* "$1"/var/tmp/*'
    ' "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id'
    # mariadb-server's postinst initialised /var/lib/mysql (110 MB, for the mysql user); start
    # empty instead and let each user run mariadb-install-db (about 3 s).
    ' && rm -rf "$1"/var/lib/mysql/*'
    # mmdebstrap's own cleanup/run (skipped) would empty /run; keep /run/mysqld, where mariadbd
    # puts its socket by default.
    ' && find "$1"/run -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf --one-file-system {} +'
    ' && mkdir -p "$1"/run/mysqld'
    ' && chroot "$1" chown mysql:mysql /var/lib/mysql /run/mysqld'
    # postgresql's postinst made a cluster (/var/lib/postgresql/15/main and /etc/postgresql/15);
    # the postgres image initialises PGDATA instead.
    ' && rm -rf "$1"/var/lib/postgresql/* "$1"/etc/postgresql/*'
)
SERVICES_MMDEBSTRAP_OPTS = [
    "--variant=apt",
    "--mode=root",
    "--format=tar",
    "--include=" + ",".join(SERVICES_PACKAGES),
    *(f"--dpkgopt={o}" for o in SERVICES_DPKG_OPTS),
    '--aptopt=Acquire::Languages "none"',
    "--skip=cleanup/run",
    f"--customize-hook={SERVICES_CLEANUP}",
]
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SERVICES_CHANGES = [
    f"ENV PATH={PATH_ENV}",
    "ENV LANG=C.UTF-8",
    'CMD ["bash"]',
    "LABEL org.opencontainers.image.title=pytest-criu-services",
]


def log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


class BuildError(Exception):
    pass


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def image_exists(ref: str) -> bool:
    return (
        run(
            ["docker", "image", "inspect", ref],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )


def image_id(ref: str) -> str:
    res = run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True)
    return res.stdout.strip() if res.returncode == 0 else ""


def tag_latest(ref: str, repo: str) -> str:
    latest = f"{repo}:latest"
    if image_id(latest) != image_id(ref):
        res = run(["docker", "tag", ref, latest], capture_output=True)
        if res.returncode != 0:
            raise BuildError(f"docker tag {ref} {latest} failed: {res.stderr.strip()}")
    return latest


def drop_replaced(old_id: str, ref: str) -> None:
    """After a --force rebuild, remove the image the tag used to name (unless still in use)."""
    if old_id and old_id != image_id(ref):
        run(["docker", "rmi", old_id], capture_output=True)


# --------------------------------------------------------------------------------------------
# Podman
# --------------------------------------------------------------------------------------------
PODMAN_SOCKET = os.environ.get("PYTEST_CRIU_PODMAN_SOCKET", "unix:///run/podman/podman.sock")


def podman_env() -> dict[str, str]:
    """The CLI turns remote when CONTAINER_HOST is set; these images go into the local storage."""
    return {
        k: v for k, v in os.environ.items() if k not in ("CONTAINER_HOST", "CONTAINER_CONNECTION")
    }


def podman(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], env=podman_env(), **kw)


def podman_answers(url: str) -> bool:
    """The service at the unix:// URL answers GET /version with 200 (5 s at most)."""
    path = url.removeprefix("unix:")
    while path.startswith("//"):
        path = path[1:]
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(b"GET /version HTTP/1.0\r\nHost: d\r\n\r\n")
            head = s.recv(32)
    except OSError:
        return False
    return head.split(b" ")[1:2] == [b"200"]


@functools.cache
def podman_wanted() -> bool:
    """Podman is installed and its service answers: images also go into its storage."""
    if shutil.which("podman") is None:
        return False
    if PODMAN_SOCKET.startswith("unix://") and podman_answers(PODMAN_SOCKET):
        return True
    log(
        f"Podman is installed but no service answers on {PODMAN_SOCKET}: images are not"
        " put into Podman's storage (run: sudo .venv/bin/pytest-criu setup --engine podman)"
    )
    return False


def podman_image_ids() -> dict[str, str]:
    """Podman's image names (localhost/repo:tag) and their IDs (hex, no sha256: prefix).

    Images without a name are left out.
    """
    res = podman(
        ["images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"],
        capture_output=True,
    )
    if res.returncode != 0:
        raise BuildError(f"podman images failed: {res.stderr.strip()}")
    ids = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and "<none>" not in parts[1]:
            ids[parts[1]] = parts[0].removeprefix("sha256:")
    return ids


def to_podman(ref: str, repo: str) -> None:
    """Make Podman's storage hold ref and repo:latest with the content Docker has under ref.

    `docker save | podman load` keeps the image ID (the digest of its configuration), so equal
    IDs mean equal content.
    """
    if not podman_wanted():
        return
    want = image_id(ref).removeprefix("sha256:")
    if not want:
        raise BuildError(f"{ref} is not in Docker; cannot put it into Podman")
    names = [f"localhost/{ref}", f"localhost/{repo}:latest"]
    before = podman_image_ids()
    if all(before.get(n) == want for n in names):
        log(f"{ref}: in Podman (present)")
        return
    start = time.monotonic()
    if podman(["image", "exists", want], capture_output=True).returncode == 0:
        how = "tagged in Podman (its content was there)"
    else:
        how = "loaded into Podman"
        with tempfile.TemporaryFile() as save_err:
            with subprocess.Popen(
                ["docker", "save", ref, f"{repo}:latest"], stdout=subprocess.PIPE, stderr=save_err
            ) as save:
                assert save.stdout is not None
                load = subprocess.run(
                    ["podman", "load"],
                    stdin=save.stdout,
                    capture_output=True,
                    text=True,
                    env=podman_env(),
                    check=False,
                )
                save.stdout.close()
            save_err.seek(0)
            save_msg = save_err.read().decode(errors="replace").strip()
        if save.returncode != 0:
            raise BuildError(f"docker save {ref} failed: {save_msg}")
        if load.returncode != 0:
            raise BuildError(f"podman load of {ref} failed: {load.stderr.strip()}")
    after = podman_image_ids()
    wrong = [n for n in names if after.get(n) != want]
    if wrong:
        res = podman(["tag", want, *wrong], capture_output=True)
        if res.returncode != 0:
            raise BuildError(f"podman tag {want} {' '.join(wrong)} failed: {res.stderr.strip()}")
    # After a --force rebuild the old content is left without names (unless in use): drop it.
    for old in {before[n] for n in names if n in before} - {want}:
        if old not in podman_image_ids().values():
            podman(["rmi", old], capture_output=True)
    log(f"{ref}: {how} in {time.monotonic() - start:.1f} s")


def docker_import(src: IO[bytes], ref: str, changes: list[str]) -> None:
    cmd = ["docker", "import"]
    for c in changes:
        cmd += ["--change", c]
    cmd += ["-", ref]
    res = subprocess.run(cmd, check=False, stdin=src, capture_output=True, text=True)
    if res.returncode != 0:
        raise BuildError(f"docker import {ref} failed: {res.stderr.strip()}")


# --------------------------------------------------------------------------------------------
# tiny
# --------------------------------------------------------------------------------------------
def build_tiny(force: bool) -> str:
    tag, data = tiny.recipe(system.run)
    ref = f"{TINY_REPO}:{tag}"
    if not force and image_exists(ref):
        log(f"{ref}: present (cache hit)")
        tag_latest(ref, TINY_REPO)
        return ref
    replaced = image_id(ref)
    start = time.monotonic()
    with tempfile.TemporaryFile() as tmp:
        tmp.write(data)
        tmp.seek(0)
        docker_import(tmp, ref, list(tiny.CHANGES))
    verify(ref, ["sh", "-c", TINY_SMOKE], "busybox sh, nc, httpd, sleep")
    tag_latest(ref, TINY_REPO)
    drop_replaced(replaced, ref)
    took = time.monotonic() - start
    log(f"{ref}: built in {took:.1f} s ({len(data) // 1024} KiB)")
    return ref


# --------------------------------------------------------------------------------------------
# services
# --------------------------------------------------------------------------------------------
class Source(NamedTuple):
    uris: list[str]
    suites: list[str]
    components: list[str]
    signed_by: str


def host_sources(codename: str, archives: Sequence[apt.Archive] | None = None) -> list[Source]:
    """The host's own apt entries for its release (suite, -updates, -security), one per
    sources entry, from `apt-get indextargets` (apt parses its sources, not this tool)."""
    if archives is None:
        archives = apt.Apt(system.run, plan.Plan(check=True, say=log)).archives()
    grouped: dict[str, Source] = {}
    for archive in archives:
        suite = archive.suite
        if suite != codename and not suite.startswith(codename + "-"):
            continue
        source = grouped.setdefault(archive.entry or archive.uri, Source([], [], [], ""))
        for have, value in ((source.uris, archive.uri), (source.suites, suite),
                            (source.components, archive.component)):  # fmt: skip
            if value not in have:
                have.append(value)
    return list(grouped.values())


#: The Debian release of the services image on hosts that are not Debian.
DEBIAN_SUITE = "bookworm"


class Release(NamedTuple):
    """What the services image is bootstrapped from."""

    distro: str
    codename: str
    sources: list[Source]


def services_release(
    os_release: dict[str, str],
    debian_uri: str | None,
    suite: str | None = None,
    archives: Sequence[apt.Archive] | None = None,
) -> Release:
    """This host's release and sources on Debian; Debian ``suite`` from ``debian_uri`` elsewhere
    (Ubuntu's archive carries none of Debian's suites)."""
    distro = os_release.get("ID", "")
    if distro == "debian":
        codename = os_release.get("VERSION_CODENAME", "")
        if not codename:
            raise BuildError("/etc/os-release has no VERSION_CODENAME: which release to bootstrap?")
        sources = host_sources(codename, archives)
        if not sources:
            raise BuildError(f"no apt source for '{codename}' found in /etc/apt/sources.list(.d)")
        return Release(distro, codename, sources)
    suite = suite or DEBIAN_SUITE
    if not debian_uri:
        raise BuildError(
            f"this host is {os_release.get('PRETTY_NAME') or distro or 'not Debian'}: the "
            f"services image is Debian {suite}, bootstrapped from Debian's archive; set "
            "PYTEST_CRIU_DEBIAN_URI to a Debian mirror (e.g. sudo "
            "PYTEST_CRIU_DEBIAN_URI=http://deb.debian.org/debian .venv/bin/python -m "
            "tests.tooling.images all)"
        )
    source = Source([debian_uri.rstrip("/")], [suite, f"{suite}-updates"], ["main"],
                    str(DEBIAN_KEYRING))  # fmt: skip
    return Release("debian", suite, [source])


def sources_text(sources: list[Source]) -> str:
    paras = []
    for s in sources:
        lines = [
            "Types: deb",
            f"URIs: {' '.join(s.uris)}",
            f"Suites: {' '.join(s.suites)}",
            f"Components: {' '.join(s.components)}",
        ]
        if s.signed_by:
            lines.append(f"Signed-By: {s.signed_by}")
        paras.append("\n".join(lines) + "\n")
    return "\n".join(paras)


def build_services(force: bool) -> str:
    release = services_release(
        apt.os_release(),
        os.environ.get("PYTEST_CRIU_DEBIAN_URI") or None,
        os.environ.get("PYTEST_CRIU_IMAGES_SUITE") or None,
    )
    codename, sources = release.codename, release.sources
    # The mirror address is left out of the digest: the same recipe gives the same tag anywhere.
    inputs = [RECIPE_VERSION, "services", release.distro, codename, *SERVICES_MMDEBSTRAP_OPTS]
    inputs += [*SERVICES_CHANGES, *(f"{s.suites} {s.components}" for s in sources)]
    ref = f"{SERVICES_REPO}:{digest(inputs)}"
    if not force and image_exists(ref):
        log(f"{ref}: present (cache hit)")
        tag_latest(ref, SERVICES_REPO)
        return ref
    replaced = image_id(ref)
    missing = [] if shutil.which("mmdebstrap") else ["mmdebstrap"]
    if any(s.signed_by == str(DEBIAN_KEYRING) for s in sources) and not DEBIAN_KEYRING.exists():
        missing.append("debian-archive-keyring")  # Ubuntu: in the universe component
    if missing:
        log(f"installing {' '.join(missing)}")
        apt.Apt(system.run, plan.Plan(check=False, say=log)).install(missing)
    if os.geteuid() != 0:
        raise BuildError("building the services image needs root (mmdebstrap --mode=root)")
    start = time.monotonic()
    log(f"{ref}: mmdebstrap {codename} with {', '.join(SERVICES_PACKAGES)} (takes a minute)")
    mmdebstrap_import(codename, sources, ref)
    built = time.monotonic()
    try:
        verify(ref, ["sh", "-c", SERVICES_SMOKE], "redis, mariadb and python3 are installed")
        verify(ref, ["sh", "-c", MARIADB_SMOKE], "MariaDB initialises and answers a query as root")
    except BuildError:
        run(["docker", "rmi", ref], capture_output=True)
        raise
    tag_latest(ref, SERVICES_REPO)
    drop_replaced(replaced, ref)
    res = run(["docker", "image", "inspect", "-f", "{{.Size}}", ref], capture_output=True)
    size_mib = int(res.stdout.strip() or 0) // 2**20
    verified = time.monotonic() - built
    log(f"{ref}: built in {built - start:.0f} s, verified in {verified:.0f} s ({size_mib} MiB)")
    return ref


def mmdebstrap_import(codename: str, sources: list[Source], ref: str) -> None:
    """Stream `mmdebstrap ... -` straight into `docker import` (no tarball on disk)."""
    with tempfile.TemporaryDirectory(prefix="pytest-criu-build-") as tmpdir:
        src_file = os.path.join(tmpdir, "host.sources")
        with open(src_file, "w") as f:
            f.write(sources_text(sources))
        log_file = os.path.join(tmpdir, "mmdebstrap.log")
        cmd = ["mmdebstrap", *SERVICES_MMDEBSTRAP_OPTS, codename, "-", src_file]
        with open(log_file, "w") as lf:
            mm = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=lf)
            assert mm.stdout is not None
            try:
                docker_import(mm.stdout, ref, SERVICES_CHANGES)
            except BuildError as e:
                mm.kill()
                mm.wait()
                raise BuildError(
                    f"{e}\nlast lines of the mmdebstrap log:\n{tail(log_file)}"
                ) from None
            finally:
                mm.stdout.close()
            rc = mm.wait()
        if rc != 0:
            run(["docker", "rmi", ref], capture_output=True)
            raise BuildError(
                f"mmdebstrap failed (exit {rc}); last lines of its log:\n{tail(log_file)}"
            )


TINY_SMOKE = "sleep 0 && nc --help 2>&1 | grep -q 'Usage: nc' && httpd --help 2>&1 | grep -q httpd"
SERVICES_SMOKE = (
    "redis-server --version && redis-cli --version && mariadbd --version && mariadb --version"
    " && command -v mariadb-install-db && python3 --version"
)
MARIADB_SMOKE = r"""
set -e
mariadb-install-db --user=root --datadir=/var/lib/mysql --skip-test-db \
    --auth-root-authentication-method=normal >/tmp/install.log 2>&1 ||
    { cat /tmp/install.log; exit 1; }
mariadbd --user=root --datadir=/var/lib/mysql --innodb-use-native-aio=0 --bind-address=0.0.0.0 \
    >/tmp/mariadbd.log 2>&1 &
i=0
until mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1; do
    i=$((i+1)); [ $i -lt 300 ] || { cat /tmp/mariadbd.log; exit 1; }; sleep 0.1
done
mariadb -uroot -N -e "CREATE DATABASE t; CREATE TABLE t.x (v INT);
    INSERT INTO t.x VALUES (41), (1); SELECT SUM(v) FROM t.x" | grep -qx 42
mariadb -uroot -e "CREATE USER 'test'@'%' IDENTIFIED BY 'test'; GRANT ALL ON *.* TO 'test'@'%'"
mariadb-admin -uroot shutdown
"""


def tail(path: str, n: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def verify(ref: str, cmd: list[str], what: str) -> None:
    res = run(
        ["docker", "run", "--rm", "--network", "none", ref, *cmd], capture_output=True, timeout=300
    )
    if res.returncode != 0:
        raise BuildError(
            f"{ref}: check failed ({what}): exit {res.returncode}\n{res.stdout}{res.stderr}"
        )


# --------------------------------------------------------------------------------------------
# postgres, redis, mariadb: shaped like Docker Hub's official images, on the services image
# --------------------------------------------------------------------------------------------
OFFICIAL = ("postgres", "redis", "mariadb")
#: Each image's entrypoint, /usr/local/bin/docker-entrypoint.sh: entrypoints/<name>.sh.
ENTRYPOINTS = Path(__file__).with_name("entrypoints")


def official_images(environ: Mapping[str, str]) -> dict[str, str]:
    """Where pytest-criu's tests find these images: PYTEST_CRIU_<NAME>_IMAGE, or ours."""
    return {
        name: environ.get(f"PYTEST_CRIU_{name.upper()}_IMAGE", f"pytest-criu/{name}:latest")
        for name in OFFICIAL
    }


OFFICIAL_IMAGES = official_images(os.environ)

# The legacy builder (DOCKER_BUILDKIT=0) takes FROM from the local images, never a registry.
OFFICIAL_HEAD = """\
FROM {base}
COPY docker-entrypoint.sh /usr/local/bin/
LABEL org.opencontainers.image.title=pytest-criu-{name}
"""
OFFICIAL_DOCKERFILES = {
    "postgres": f"""\
ENV PG_MAJOR={{pg_major}} PGDATA=/var/lib/postgresql/data
ENV PATH={PATH_ENV}:/usr/lib/postgresql/{{pg_major}}/bin
RUN install -d -o postgres -g postgres -m 1777 "$PGDATA" \\
    && install -d -o postgres -g postgres -m 3777 /run/postgresql
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
""",
    "redis": """\
RUN install -d -o redis -g redis /data
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
""",
    # Like the official image's configuration: every interface, no reverse DNS look-ups.
    "mariadb": """\
RUN printf '[mariadbd]\\nbind-address = 0.0.0.0\\nskip-name-resolve\\n' \\
    > /etc/mysql/mariadb.conf.d/99-docker.cnf
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 3306
CMD ["mariadbd"]
""",
}


class OfficialRecipe(NamedTuple):
    name: str
    dockerfile: str
    """Formatted with the base image's reference and, for postgres, PostgreSQL's major version."""
    entrypoint: str

    def tag(self, base_id: str) -> str:
        """The digest tag: the base image's ID (a rebuilt services image gives a new one), the
        Dockerfile and the entrypoint script."""
        return digest([RECIPE_VERSION, "official", self.name, base_id, self.dockerfile,
                       self.entrypoint])  # fmt: skip

    def render(self, base: str, pg_major: str = "") -> str:
        return self.dockerfile.format(base=base, name=self.name, pg_major=pg_major)


def official_recipe(name: str, entrypoints: Path = ENTRYPOINTS) -> OfficialRecipe:
    text = (entrypoints / f"{name}.sh").read_text()
    return OfficialRecipe(name, OFFICIAL_HEAD + OFFICIAL_DOCKERFILES[name], text)


def postgres_major(base: str) -> str:
    """PostgreSQL's major version in the base image (15 on bookworm): /usr/lib/postgresql/<N>."""
    res = run(["docker", "run", "--rm", "--network", "none", base, "ls", "/usr/lib/postgresql"],
              capture_output=True)  # fmt: skip
    versions = res.stdout.split()
    if res.returncode != 0 or len(versions) != 1:
        raise BuildError(f"{base}: no single PostgreSQL in /usr/lib/postgresql: {res.stderr}")
    return versions[0]


def build_official(name: str, base: str, force: bool) -> str:
    """pytest-criu/<name> from the services image ``base``: `docker build` of a generated
    context (Dockerfile and entrypoint) with the legacy builder, then a check that the service
    starts, runs as its own user and answers."""
    repo = f"pytest-criu/{name}"
    recipe = official_recipe(name)
    base_id = image_id(base)
    if not base_id:
        raise BuildError(f"{base} is not in Docker; build it first (services)")
    ref = f"{repo}:{recipe.tag(base_id)}"
    if not force and image_exists(ref):
        log(f"{ref}: present (cache hit)")
        tag_latest(ref, repo)
        return ref
    replaced = image_id(ref)
    start = time.monotonic()
    pg_major = postgres_major(base) if "{pg_major}" in recipe.dockerfile else ""
    with tempfile.TemporaryDirectory(prefix="pytest-criu-build-") as context:
        Path(context, "Dockerfile").write_text(recipe.render(base, pg_major))
        script = Path(context, "docker-entrypoint.sh")
        script.write_text(recipe.entrypoint)
        script.chmod(0o755)
        res = run(
            ["docker", "build", "--quiet", "--network", "none", "--force-rm", "-t", ref, context],
            capture_output=True,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
    if res.returncode != 0:
        raise BuildError(f"docker build {ref} failed: {res.stderr.strip()}")
    built = time.monotonic()
    try:
        verify(ref, ["sh", "-c", OFFICIAL_SMOKES[name]], OFFICIAL_CHECKED[name])
    except BuildError:
        run(["docker", "rmi", ref], capture_output=True)
        raise
    tag_latest(ref, repo)
    drop_replaced(replaced, ref)
    verified = time.monotonic() - built
    log(f"{ref}: built in {built - start:.1f} s, verified in {verified:.1f} s")
    return ref


def service_smoke(start: str, ready: str, process: str, user: str, first: str = "") -> str:
    """After ``first``, start the service through the entrypoint (as root), wait until ``ready``
    succeeds (30 s at most), and check that every ``process`` runs as ``user``."""
    return f"""set -e
{first}{start} >/tmp/service.log 2>&1 &
i=0
until {{ {ready}; }} 2>/dev/null; do
    i=$((i+1)); [ $i -lt 300 ] || {{ cat /tmp/service.log; exit 1; }}; sleep 0.1
done
users=$(ps -o user= -C {process} | sort -u)
[ "$users" = {user} ] || {{ echo "{process} runs as $users, not {user}"; exit 1; }}
"""


OFFICIAL_SMOKES = {
    "postgres": service_smoke(
        "POSTGRES_PASSWORD=pw POSTGRES_DB=t docker-entrypoint.sh postgres",
        "psql -h 127.0.0.1 -U postgres -d t -Atc 'SELECT 41 + 1' | grep -qx 42",
        "postgres",
        "postgres",
        first="! docker-entrypoint.sh postgres 2>/tmp/no-password.log\n"
        "grep -q 'superuser password is not specified' /tmp/no-password.log\n",
    ),
    "redis": service_smoke(
        "docker-entrypoint.sh redis-server",
        "redis-cli config get protected-mode | grep -qx no",
        "redis-server",
        "redis",
    ),
    "mariadb": service_smoke(
        "MARIADB_ROOT_PASSWORD=pw MARIADB_DATABASE=t MARIADB_USER=u MARIADB_PASSWORD=p"
        " docker-entrypoint.sh mariadbd",
        "mariadb -h 127.0.0.1 -u u -pp t -Ne 'SELECT 41 + 1' | grep -qx 42",
        "mariadbd",
        "mysql",
    ),
}
OFFICIAL_CHECKED = {
    "postgres": "no password is refused; PostgreSQL initialises and answers as postgres",
    "redis": "redis-server answers as redis, protected mode off",
    "mariadb": "MariaDB initialises with a database and a user and answers as mysql",
}

#: What each command-line target builds, in order; the official-like images need services.
TARGETS = {
    "tiny": ["tiny"],
    "services": ["services"],
    **{name: ["services", name] for name in OFFICIAL},
    "official": ["services", *OFFICIAL],
    "all": ["tiny", "services", *OFFICIAL],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.tooling.images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", nargs="?", default="all", choices=list(TARGETS))
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild even when the digest tag exists (for example to pick up Debian updates)",
    )
    args = parser.parse_args(argv)
    if shutil.which("docker") is None:
        log("the docker CLI is not installed; run: sudo .venv/bin/pytest-criu setup")
        return 1
    res = run(["docker", "version", "--format", "{{json .Server.Version}}"], capture_output=True)
    if res.returncode != 0:
        log(
            f"the Docker daemon does not answer ({res.stderr.strip()}); run: sudo .venv/bin/pytest-criu setup"
        )
        return 1
    base = ""
    try:
        for name in TARGETS[args.target]:
            if name == "tiny":
                ref = build_tiny(args.force)
            elif name == "services":
                # Rebuilt by --force only when named: postgres --force rebuilds postgres alone.
                ref = base = build_services(args.force and args.target in ("services", "all"))
            else:
                ref = build_official(name, base, args.force)
            repo = ref.split(":")[0]
            to_podman(ref, repo)
            print(ref)
            print(f"{repo}:latest")
    except BuildError as e:
        log(f"ERROR: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
