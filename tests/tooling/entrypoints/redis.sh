#!/bin/sh
# pytest-criu/redis (like Docker Hub's redis): as root, own the working directory (/data) and run
# again as redis (setpriv); redis-server answers on every interface without a password.
set -eu
case "${1:-}" in -* | *.conf) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . ! -user redis -exec chown redis {} +
    exec setpriv --reuid=redis --regid=redis --clear-groups -- "$0" "$@"
fi
if [ "${1:-}" = redis-server ]; then
    # Protected mode off, right after the config file so that later options still win (unless
    # the config file sets it).
    shift
    conf=
    if [ -f "${1:-}" ]; then conf=$1 && shift; fi
    if [ -z "$conf" ] || ! grep -q '^protected-mode' "$conf"; then
        set -- --protected-mode no "$@"
    fi
    set -- redis-server ${conf:+"$conf"} "$@"
fi
[ "$(umask)" != 0022 ] || umask 0077
exec "$@"
