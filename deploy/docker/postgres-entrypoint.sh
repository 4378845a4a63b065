#!/bin/sh
# PostgreSQL for Sentinel: makes the cluster on first start (database `sentinel` owned by the plain role
# `sentinel`, its password from the file $POSTGRES_PASSWORD_FILE), then serves it with password (SCRAM)
# logins from $POSTGRES_ALLOW_FROM (default 198.51.100.128/26, the demonstration's control network).
#   entrypoint serve        initialise if needed, then run postgres in the foreground
#   entrypoint healthcheck  exit 0 when the server accepts connections
set -eu
BIN=@PGBIN@
PGDATA=${PGDATA:-/var/lib/postgresql/data}
case "${1:-serve}" in
healthcheck)
    exec "$BIN/pg_isready" -q -h 127.0.0.1 -p 5432 -U sentinel -d sentinel
    ;;
serve) ;;
*)
    echo "entrypoint: unknown command $1 (serve|healthcheck)" >&2
    exit 2
    ;;
esac
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD_FILE:?set POSTGRES_PASSWORD_FILE to a file holding the password of user sentinel}"
    password=$(cat "$POSTGRES_PASSWORD_FILE")
    case "$password" in
    "" | *"'"*)
        echo "entrypoint: the password in $POSTGRES_PASSWORD_FILE is empty or holds a quote" >&2
        exit 1
        ;;
    esac
    # Made in a scratch directory and moved into place only when complete: a start interrupted half-way
    # leaves no cluster that looks ready.
    rm -rf "$PGDATA.new"
    "$BIN/initdb" -D "$PGDATA.new" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 \
        --locale=C --no-instructions >/dev/null
    # Logins over the network: the Sentinel nodes' network only, with a password.
    echo "host all all ${POSTGRES_ALLOW_FROM:-198.51.100.128/26} scram-sha-256" >>"$PGDATA.new/pg_hba.conf"
    # The bootstrap superuser `postgres` has no password (local trust only); Sentinel gets a plain role that
    # owns its database and nothing more.
    printf "CREATE ROLE sentinel LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '%s';\n\nCREATE DATABASE sentinel OWNER sentinel;\n\n" \
        "$password" | "$BIN/postgres" --single -D "$PGDATA.new" -j postgres >"$PGDATA.new/init.log" 2>&1
    if grep -q ERROR "$PGDATA.new/init.log"; then
        cat "$PGDATA.new/init.log" >&2
        exit 1
    fi
    mv "$PGDATA.new" "$PGDATA"
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp -c jit=off \
    -c fsync=on -c log_destination=stderr
