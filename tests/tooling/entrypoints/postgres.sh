#!/bin/sh
# pytest-criu/postgres (like Docker Hub's postgres): as root, own PGDATA and the socket directory,
# then run again as postgres (gosu); as postgres, initialise an empty PGDATA; then run the command.
set -eu
case "${1:-}" in -*) set -- postgres "$@" ;; esac
if [ "${1:-}" = postgres ]; then
    if [ "$(id -u)" = 0 ]; then
        mkdir -p "$PGDATA" /var/run/postgresql
        find "$PGDATA" /var/run/postgresql ! -user postgres -exec chown postgres: {} +
        chmod 700 "$PGDATA"
        exec gosu postgres "$0" "$@"
    fi
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        : "${POSTGRES_USER:=postgres}" "${POSTGRES_PASSWORD:=}"
        : "${POSTGRES_DB:=$POSTGRES_USER}" "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
        if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
            cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       Set POSTGRES_PASSWORD to a non-empty value for the superuser, for example
       "-e POSTGRES_PASSWORD=password" on "docker run"; or set
       POSTGRES_HOST_AUTH_METHOD=trust to accept every connection without a
       password (not recommended).
MSG
            exit 1
        fi
        pwfile=${POSTGRES_PASSWORD:+--pwfile=/dev/stdin}
        printf '%s\n' "$POSTGRES_PASSWORD" |
            eval 'initdb --username="$POSTGRES_USER" $pwfile '"${POSTGRES_INITDB_ARGS:-}"
        printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
        printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
        if [ "$POSTGRES_DB" != postgres ]; then
            pg_ctl -D "$PGDATA" -w start -o "-c listen_addresses=''"
            echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password \
                --username="$POSTGRES_USER" --dbname=postgres --set db="$POSTGRES_DB"
            pg_ctl -D "$PGDATA" -m fast -w stop
        fi
        echo 'PostgreSQL init process complete; ready for start up.'
    fi
fi
exec "$@"
