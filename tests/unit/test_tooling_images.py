"""The test images' sources: the host's apt entries for its release, grouped as written, so
that the services image's digest tag stays what it was when its sources were parsed by hand.
The official-like images (postgres, redis, mariadb): what their digest covers, their Dockerfiles,
and their entrypoints' argument handling, run on the host with stand-in commands."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_criu.setup.apt import Archive
from tests.tooling.images import (
    ENTRYPOINTS,
    OFFICIAL,
    OFFICIAL_SMOKES,
    TARGETS,
    BuildError,
    Release,
    Source,
    host_sources,
    official_images,
    official_recipe,
    services_release,
    sources_text,
)

MAIN = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
ARCHIVES = [
    Archive(MAIN, "bookworm", "main", "/etc/apt/sources.list.d/debian.sources:1"),
    Archive(MAIN, "bookworm-updates", "main", "/etc/apt/sources.list.d/debian.sources:1"),
    Archive(SECURITY, "bookworm-security", "main", "/etc/apt/sources.list.d/debian.sources:2"),
    Archive("http://deb.debian.org/debian", "sid", "main", "/etc/apt/sources.list:3"),
]


def test_entries_group_their_suites_and_other_releases_are_left_out() -> None:
    assert host_sources("bookworm", ARCHIVES) == [
        Source([MAIN], ["bookworm", "bookworm-updates"], ["main"], ""),
        Source([SECURITY], ["bookworm-security"], ["main"], ""),
    ]


def test_the_sources_file_mmdebstrap_gets() -> None:
    assert sources_text(host_sources("bookworm", ARCHIVES)[:1]) == (
        f"Types: deb\nURIs: {MAIN}\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )


DEBIAN = {"ID": "debian", "VERSION_CODENAME": "bookworm"}
UBUNTU = {"ID": "ubuntu", "VERSION_CODENAME": "noble", "PRETTY_NAME": "Ubuntu 24.04.3 LTS"}
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_a_debian_host_bootstraps_its_own_release_from_its_own_sources() -> None:
    release = services_release(DEBIAN, "http://elsewhere.example/debian", None, ARCHIVES)
    assert release == Release("debian", "bookworm", host_sources("bookworm", ARCHIVES))


def test_an_ubuntu_host_bootstraps_debian_from_the_debian_mirror() -> None:
    # Ubuntu's own entries (noble) carry no Debian suite: they are not looked at.
    release = services_release(UBUNTU, "http://deb.debian.org/debian/", None, [])
    assert release == Release(
        "debian",
        "bookworm",
        [Source([MAIN], ["bookworm", "bookworm-updates"], ["main"], KEYRING)],
    )
    assert services_release(UBUNTU, MAIN, "trixie", []).sources[0].suites == [
        "trixie",
        "trixie-updates",
    ]
    assert f"Signed-By: {KEYRING}" in sources_text(release.sources)


def test_an_ubuntu_host_without_a_debian_mirror_is_told_which_variable_to_set() -> None:
    with pytest.raises(BuildError) as caught:
        services_release(UBUNTU, None, None, [])
    assert str(caught.value) == (
        "this host is Ubuntu 24.04.3 LTS: the services image is Debian bookworm, bootstrapped "
        "from Debian's archive; set PYTEST_CRIU_DEBIAN_URI to a Debian mirror (e.g. sudo "
        "PYTEST_CRIU_DEBIAN_URI=http://deb.debian.org/debian .venv/bin/python -m "
        "tests.tooling.images all)"
    )


def test_a_debian_host_without_sources_for_its_release_is_an_error() -> None:
    with pytest.raises(BuildError, match="no apt source for 'trixie'"):
        services_release({"ID": "debian", "VERSION_CODENAME": "trixie"}, None, None, ARCHIVES)


BASE_ID = "sha256:" + "ab" * 32


def test_an_official_image_tag_covers_the_entrypoint_script_and_the_base_image(
    tmp_path: Path,
) -> None:
    recipe = official_recipe("postgres")
    assert recipe.tag(BASE_ID) == official_recipe("postgres").tag(BASE_ID)
    assert len(recipe.tag(BASE_ID)) == 12
    assert recipe.tag(BASE_ID) != recipe.tag("sha256:" + "cd" * 32)
    (tmp_path / "postgres.sh").write_text(recipe.entrypoint + "# edited\n")
    edited = official_recipe("postgres", tmp_path)
    assert edited.entrypoint != recipe.entrypoint
    assert edited.tag(BASE_ID) != recipe.tag(BASE_ID)
    tags = {official_recipe(name).tag(BASE_ID) for name in OFFICIAL}
    assert len(tags) == len(OFFICIAL)


def test_the_postgres_dockerfile_is_shaped_like_the_official_image() -> None:
    dockerfile = official_recipe("postgres").render("pytest-criu/services:0123456789ab", "15")
    lines = dockerfile.splitlines()
    assert lines[:2] == [
        "FROM pytest-criu/services:0123456789ab",
        "COPY docker-entrypoint.sh /usr/local/bin/",
    ]
    assert "ENV PG_MAJOR=15 PGDATA=/var/lib/postgresql/data" in lines
    assert (
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ":/usr/lib/postgresql/15/bin" in lines
    )
    assert lines[-4:] == [
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        "STOPSIGNAL SIGINT",
        "EXPOSE 5432",
        'CMD ["postgres"]',
    ]


@pytest.mark.parametrize(
    ("name", "port", "cmd"),
    [("redis", 6379, '["redis-server"]'), ("mariadb", 3306, '["mariadbd"]')],
)
def test_the_redis_and_mariadb_dockerfiles(name: str, port: int, cmd: str) -> None:
    dockerfile = official_recipe(name).render("base")
    assert dockerfile.startswith("FROM base\n")
    assert f"LABEL org.opencontainers.image.title=pytest-criu-{name}\n" in dockerfile
    assert dockerfile.endswith(f'ENTRYPOINT ["docker-entrypoint.sh"]\nEXPOSE {port}\nCMD {cmd}\n')
    assert "VOLUME" not in dockerfile
    # Like the official image: users pass it in the command, since CRIU cannot dump io_uring.
    assert "native-aio" not in dockerfile + official_recipe(name).entrypoint


def test_the_official_images_need_the_services_image_and_all_builds_everything() -> None:
    for name in (*OFFICIAL, "official"):
        assert TARGETS[name][0] == "services"
    assert TARGETS["all"] == ["tiny", "services", "postgres", "redis", "mariadb"]


def test_the_official_images_can_be_pointed_elsewhere() -> None:
    assert official_images({}) == {
        "postgres": "pytest-criu/postgres:latest",
        "redis": "pytest-criu/redis:latest",
        "mariadb": "pytest-criu/mariadb:latest",
    }
    assert official_images({"PYTEST_CRIU_REDIS_IMAGE": "redis:7"})["redis"] == "redis:7"


@pytest.mark.parametrize("name", OFFICIAL)
def test_the_entrypoint_and_its_check_are_posix_sh(name: str) -> None:
    script = ENTRYPOINTS / f"{name}.sh"
    assert script.read_text().startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(script)], check=True)
    subprocess.run(["sh", "-n", "-c", OFFICIAL_SMOKES[name]], check=True)


# The entrypoints' own logic, run by the host's sh with stand-ins for id (not root), the
# services and their tools: each stand-in appends its name, arguments and (for initdb and psql)
# its input to calls.log.
STAND_IN = """#!/bin/sh
{ echo "$(basename "$0")${*:+ $*}"; case $(basename "$0") in initdb|psql) cat;; esac; } >>"$LOG"
case $(basename "$0") in
mariadb-install-db) for a; do case $a in --extra-file=*) cp "${a#*=}" "$LOG.sql";; esac; done;;
esac
"""


def entrypoint(
    tmp_path: Path, name: str, args: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "id").write_text("#!/bin/sh\necho 999\n")
    for tool in ("postgres", "initdb", "pg_ctl", "psql", "redis-server", "mariadbd",
                 "mariadb-install-db", "gosu", "setpriv"):  # fmt: skip
        (bin_dir / tool).write_text(STAND_IN)
    for stand_in in bin_dir.iterdir():
        stand_in.chmod(0o755)
    (tmp_path / "data").mkdir(exist_ok=True)  # PGDATA, made by the root part in an image
    log = tmp_path / "calls.log"
    path = f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    environment = {"PATH": path, "LOG": str(log), "PGDATA": str(tmp_path / "data"), **(env or {})}
    # As root, an entrypoint would create and chown /var/lib/mysql, /run/postgresql... here.
    who = subprocess.run(["sh", "-c", "id -u"], env=environment, capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert who.stdout == "999\n", "the id stand-in is not used: not running the entrypoint"
    res = subprocess.run(
        ["sh", str(ENTRYPOINTS / f"{name}.sh"), *args],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    return res, log.read_text() if log.exists() else ""


def test_postgres_without_a_password_says_what_to_set(tmp_path: Path) -> None:
    res, calls = entrypoint(tmp_path, "postgres", ["postgres"])
    assert res.returncode == 1
    assert res.stderr.startswith(
        "Error: Database is uninitialized and superuser password is not specified.\n"
    )
    assert "POSTGRES_HOST_AUTH_METHOD=trust" in res.stderr
    assert calls == ""


def test_postgres_initialises_then_runs_postgres_with_the_options_given(tmp_path: Path) -> None:
    env = {"POSTGRES_PASSWORD": "s3cret", "POSTGRES_USER": "alice",
           "POSTGRES_INITDB_ARGS": "--data-checksums --locale='C.UTF-8'"}  # fmt: skip
    res, calls = entrypoint(tmp_path, "postgres", ["-c", "fsync=off"], env)
    assert res.returncode == 0, res.stderr
    assert calls.splitlines() == [
        "initdb --username=alice --pwfile=/dev/stdin --data-checksums --locale=C.UTF-8",
        "s3cret",
        "pg_ctl -D " + str(tmp_path / "data") + " -w start -o -c listen_addresses=''",
        "psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username=alice --dbname=postgres"
        " --set db=alice",
        'CREATE DATABASE :"db";',
        "pg_ctl -D " + str(tmp_path / "data") + " -m fast -w stop",
        "postgres -c fsync=off",
    ]
    assert (tmp_path / "data/pg_hba.conf").read_text() == "\nhost all all all scram-sha-256\n"
    assert (tmp_path / "data/postgresql.conf").read_text() == "\nlisten_addresses = '*'\n"


def test_postgres_trusts_without_a_password_and_an_initialised_pgdata_is_left_alone(
    tmp_path: Path,
) -> None:
    env = {"POSTGRES_HOST_AUTH_METHOD": "trust"}
    res, calls = entrypoint(tmp_path, "postgres", ["postgres"], env)
    assert res.returncode == 0, res.stderr
    # No password file; the postgres database exists: no server to create it.
    assert calls.splitlines() == ["initdb --username=postgres", "", "postgres"]
    assert (tmp_path / "data/pg_hba.conf").read_text() == "\nhost all all all trust\n"
    (tmp_path / "data/PG_VERSION").write_text("15\n")
    (tmp_path / "calls.log").unlink()
    assert entrypoint(tmp_path, "postgres", ["postgres", "-p", "5433"])[1] == "postgres -p 5433\n"


@pytest.mark.parametrize(
    ("args", "conf", "runs"),
    [
        (["redis-server"], None, "redis-server --protected-mode no"),
        (["--appendonly", "yes"], None, "redis-server --protected-mode no --appendonly yes"),
        (["r.conf", "--port", "1"], "port 2\n", "redis-server r.conf --protected-mode no --port 1"),
        (["r.conf"], "protected-mode yes\n", "redis-server r.conf"),
        (["redis-cli", "ping"], None, None),
    ],
)
def test_redis_server_answers_without_protected_mode_unless_its_config_file_says(
    tmp_path: Path, args: list[str], conf: str | None, runs: str | None
) -> None:
    if conf is not None:
        (tmp_path / "r.conf").write_text(conf)
    if runs is None:  # another command runs as given
        args = ["sh", "-c", 'echo "$@" >>"$LOG"', "sh", *args]
        runs = "redis-cli ping"
    res, calls = entrypoint(tmp_path, "redis", args)
    assert res.returncode == 0, res.stderr
    assert calls == runs + "\n"


@pytest.mark.skipif(
    Path("/var/lib/mysql/mysql").exists(), reason="the host's MariaDB data directory exists"
)
def test_mariadb_initialises_with_escaped_passwords_then_runs_mariadbd(tmp_path: Path) -> None:
    env = {"MARIADB_ROOT_PASSWORD": "r'o\\t", "MYSQL_DATABASE": "app`db",
           "MARIADB_USER": "bob", "MARIADB_PASSWORD": "pw"}  # fmt: skip
    res, calls = entrypoint(tmp_path, "mariadb", ["--innodb-use-native-aio=0"], env)
    assert res.returncode == 0, res.stderr
    install, run = calls.splitlines()
    assert install.startswith("mariadb-install-db --datadir=/var/lib/mysql --skip-test-db ")
    assert install.endswith(" --innodb-use-native-aio=0")
    assert run == "mariadbd --innodb-use-native-aio=0"
    sql = (tmp_path / "calls.log.sql").read_text().splitlines()
    assert sql[0] == "FLUSH PRIVILEGES;"
    assert "SET PASSWORD FOR root@localhost = PASSWORD('r\\'o\\\\t');" in sql
    assert "CREATE DATABASE IF NOT EXISTS `app``db`;" in sql
    assert sql[-2:] == [
        "CREATE USER 'bob'@'%' IDENTIFIED BY 'pw';",
        "GRANT ALL ON `app``db`.* TO 'bob'@'%';",
    ]
    assert not list(Path("/tmp").glob(os.path.basename(install.split("--extra-file=")[1][:-1])))


def test_mariadb_without_a_root_password_option_says_what_to_set(tmp_path: Path) -> None:
    res, calls = entrypoint(tmp_path, "mariadb", ["mariadbd"])
    if Path("/var/lib/mysql/mysql").exists():
        pytest.skip("the host's MariaDB data directory exists")
    assert res.returncode == 1
    assert "MARIADB_ROOT_PASSWORD or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" in res.stderr
    assert calls == ""


def test_the_stand_ins_need_only_the_hosts_sh_and_coreutils() -> None:
    assert all(shutil.which(tool) for tool in ("sh", "sed", "find", "mktemp", "basename"))
