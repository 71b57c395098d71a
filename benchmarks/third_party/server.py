"""The Postgres server both runs use: one image, one environment, one command, one set-up.

The shared run starts it with the engine's CLI (``cli_arguments``), the pristine run declares
it with ``warm_container`` (``pristine.py``) from the same constants. No network
(``--network none``, as Podman restores a user-namespaced container without one): clients
reach the server's unix socket through the relay of ``plugin.py``.
"""

from __future__ import annotations

import re
from typing import Literal

IMAGE = "pytest-criu/postgres:latest"
PASSWORD = "postgres"  # what pg8000's CI gives the server and the suite (PGPASSWORD)
ENVIRONMENT = {
    "POSTGRES_PASSWORD": PASSWORD,
    # 1 MB WAL segments instead of 16 MB: the data directory is part of the checkpoint.
    "POSTGRES_INITDB_ARGS": "--wal-segsize=1",
}
COMMAND = [
    "postgres",
    *("-c", "shared_buffers=16MB", "-c", "jit=off", "-c", "huge_pages=off"),
    *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
    *("-c", "min_wal_size=2MB", "-c", "max_wal_size=32MB"),
]
SOCKET_DIRECTORY = "/run/postgresql"  # not /var/run: a symlink, resolved on the host
SOCKET_NAME = ".s.PGSQL.5432"
#: The label on every container (and committed image) of a benchmark run: its run id.
LABEL = "io.pytest-criu.benchmark"
#: The image's entrypoint logs this, then starts the real server, which logs it ready.
READY_PATTERN = r"init process complete[\s\S]*database system is ready to accept connections"
#: What pg8000's own CI does to its server before the suite runs.
SETUP_SQL = "CREATE EXTENSION hstore"
PSQL = ["psql", "-v", "ON_ERROR_STOP=1", "-h", SOCKET_DIRECTORY, "-U", "postgres"]
SETUP_COMMAND = [*PSQL, "-c", SETUP_SQL]
READY_COMMAND = ["pg_isready", "-h", SOCKET_DIRECTORY, "-U", "postgres"]
#: What a suite may leave on a shared server, one ``kind:name`` a line.
STATE_SQL = """
select 'role:' || rolname from pg_roles where rolname !~ '^pg_'
union all select 'database:' || datname from pg_database
union all select 'relation:' || relname from pg_class where relnamespace = 'public'::regnamespace
union all select 'setting:' || name from pg_file_settings where sourcefile ~ 'auto.conf$'
union all select 'extension:' || extname from pg_extension
union all select 'prepared transaction:' || gid from pg_prepared_xacts
"""
STATE_COMMAND = [*PSQL, "--no-align", "--tuples-only", "-c", STATE_SQL]


def logs_say_ready(logs: str) -> bool:
    return re.search(READY_PATTERN, logs) is not None


def left_behind(before: str, after: str) -> list[str]:
    """What the suite added to (``+``) and removed from (``-``) the server's state."""
    old, new = set(before.splitlines()), set(after.splitlines())
    return [f"+{line}" for line in sorted(new - old)] + [f"-{line}" for line in sorted(old - new)]


def userns(engine: str) -> Literal["auto"] | None:
    """Podman gives the container a user namespace of its own; Docker cannot restore into one."""
    return "auto" if engine == "podman" else None


def cli_arguments(engine: str, name: str, run_id: str) -> list[str]:
    """``ENGINE run`` arguments that start the shared server as the warm container is made."""
    arguments = [engine, "run", "--detach", "--name", name, "--label", f"{LABEL}={run_id}"]
    arguments += ["--network", "none"]
    namespace = userns(engine)
    if namespace is not None:
        arguments += ["--userns", namespace]
    for key, value in ENVIRONMENT.items():
        arguments += ["--env", f"{key}={value}"]
    return [*arguments, IMAGE, *COMMAND]
