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
    [[ -s $f ]] || (umask 022 && rand >"$f")
done
if [[ ! -s $DIR/.env ]]; then
    gid=$(stat -c %g /var/run/docker.sock 2>/dev/null || echo 0)
    (
        umask 077
        {
            echo "# Made by deploy/init-demo.sh for deploy/docker-compose.yml."
            echo "REDIS_PASSWORD=$(rand)"
            echo "POSTGRES_PASSWORD=$(cat "$DIR/demo/secrets/postgres")"
            echo "DOCKER_GID=$gid"
        } >"$DIR/.env"
    )
fi
echo "init-demo: secrets in $DIR/demo/secrets and $DIR/.env"
