#!/usr/bin/env bash
# Writes the demonstration network's secrets, once: deploy/.env (Redis's and PostgreSQL's passwords, the
# Docker socket's group) and deploy/demo/secrets/{fleet,webhook,postgres} (random, 32 bytes in hex).
# Existing files are kept. Both are ignored by git. `init-demo.sh DIR` writes them into DIR (a copy of
# deploy/) instead.
set -euo pipefail
DIR=${1:-$(dirname "$0")}
mkdir -p "$DIR/demo/secrets"
chmod 0700 "$DIR/demo/secrets"
rand() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# The containers read these as their own users (svcuser, postgres): readable files in a private directory.
for name in fleet webhook postgres; do
    f=$DIR/demo/secrets/$name
    if [[ -e $f && ! -f $f ]]; then
        # `up` before this script makes Docker create the bind-mount sources as directories.
        echo "init-demo: $f is not a file (was the network started before init-demo.sh?): remove it and run again" >&2
        exit 1
    fi
    [[ -s $f ]] || (umask 022 && rand >"$f")
done
postgres_password=$(cat "$DIR/demo/secrets/postgres")
if [[ ! -s $DIR/.env ]]; then
    gid=$(stat -c %g /var/run/docker.sock 2>/dev/null || echo 0)
    (
        umask 077
        {
            echo "# Made by deploy/init-demo.sh for deploy/docker-compose.yml."
            echo "REDIS_PASSWORD=$(rand)"
            echo "POSTGRES_PASSWORD=$postgres_password"
            echo "DOCKER_GID=$gid"
        } >"$DIR/.env"
    )
fi
echo "init-demo: secrets in $DIR/demo/secrets and $DIR/.env"
