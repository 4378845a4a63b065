#!/bin/sh
# PostgreSQL for Sentinel: makes the cluster on first start (database `sentinel`, user `sentinel`, password
# from the file $POSTGRES_PASSWORD_FILE), then serves it on every address with password (SCRAM) logins.
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
    "$BIN/initdb" -D "$PGDATA" -U sentinel --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C --no-instructions >/dev/null
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "host all all ::/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "CREATE DATABASE sentinel OWNER sentinel" | "$BIN/postgres" --single -D "$PGDATA" -j postgres >/dev/null
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp -c jit=off \
    -c fsync=on -c log_destination=stderr
