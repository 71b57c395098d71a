#!/bin/sh
# pytest-criu/mariadb (like Docker Hub's mariadb): as root, own the data and socket directories,
# then run again as mysql (gosu); as mysql, initialise an empty /var/lib/mysql; then run mariadbd.
set -eu
case "${1:-}" in -*) set -- mariadbd "$@" ;; esac
if [ "${1:-}" = mariadbd ] || [ "${1:-}" = mysqld ]; then
    if [ "$(id -u)" = 0 ]; then
        mkdir -p /var/lib/mysql /run/mysqld
        find /var/lib/mysql /run/mysqld ! -user mysql -exec chown mysql: {} +
        exec gosu mysql "$0" "$@"
    fi
    if [ ! -d /var/lib/mysql/mysql ]; then
        : "${MARIADB_ROOT_PASSWORD:=${MYSQL_ROOT_PASSWORD:-}}"
        : "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:=${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
        : "${MARIADB_DATABASE:=${MYSQL_DATABASE:-}}" "${MARIADB_USER:=${MYSQL_USER:-}}"
        : "${MARIADB_PASSWORD:=${MYSQL_PASSWORD:-}}"
        if [ -z "$MARIADB_ROOT_PASSWORD$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ]; then
            echo >&2 'error: Database is uninitialized and password option is not specified'
            echo >&2 '  You need to specify one of MARIADB_ROOT_PASSWORD or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD'
            exit 1
        fi
        q() { printf %s "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
        line() { printf '%s\n' "$*"; } # not echo: dash's echo interprets backslashes
        pw=$(q "$MARIADB_ROOT_PASSWORD") db=$(printf %s "$MARIADB_DATABASE" | sed 's/`/``/g')
        sql=$(mktemp)
        {
            line 'FLUSH PRIVILEGES;' # bootstrap mode: load the grant tables; a statement a line
            line "DROP USER IF EXISTS root@'127.0.0.1', root@'::1';"
            line "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@''', @@hostname, '''');"
            line "SET PASSWORD FOR root@localhost = PASSWORD('$pw');"
            line "CREATE USER root@'%' IDENTIFIED BY '$pw';"
            line "GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;"
            [ -z "$db" ] || line "CREATE DATABASE IF NOT EXISTS \`$db\`;"
            if [ -n "$MARIADB_USER" ] && [ -n "$MARIADB_PASSWORD" ]; then
                line "CREATE USER '$(q "$MARIADB_USER")'@'%' IDENTIFIED BY '$(q "$MARIADB_PASSWORD")';"
                [ -z "$db" ] || line "GRANT ALL ON \`$db\`.* TO '$(q "$MARIADB_USER")'@'%';"
            fi
        } >"$sql"
        echo 'Initializing database files'
        shift
        mariadb-install-db --datadir=/var/lib/mysql --skip-test-db --skip-name-resolve \
            --auth-root-authentication-method=normal --extra-file="$sql" "$@" >"$sql.log" 2>&1 ||
            { cat "$sql.log" >&2; rm -f "$sql" "$sql.log"; exit 1; }
        rm -f "$sql" "$sql.log"
        set -- mariadbd "$@"
        echo 'MariaDB init process done. Ready for start up.'
    fi
fi
exec "$@"
