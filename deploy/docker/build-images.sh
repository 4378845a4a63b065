#!/usr/bin/env bash
# Builds Sentinel's container images without pulling anything: every image is `FROM scratch`, filled with
# files this script assembles under target/docker/ from this machine.
#
#   sentinel:local            the static `sentinel` binary, /etc/passwd with svcuser (uid 10001), a default
#                             configuration; no shell, no libc (the binary is static-pie).
#   sentinel-responder:local  sentinel:local plus `nft` and the shared libraries it loads (nftables'
#                             userspace, from Debian's package): what the responder runs to change the
#                             firewall of the network namespace it protects.
#   sentinel-redis:local      redis-server and redis-cli with their libraries (Debian's redis-server).
#   sentinel-postgres:local   PostgreSQL 15 with its libraries and share files (Debian's postgresql), and
#                             busybox as /bin/sh for initdb and the entrypoint script.
#
# Needs: docker, cargo, and Debian's nftables, redis-server, postgresql and busybox-static packages (installed
# here with apt-get when run as root and missing). The images are tagged with the names above; TAG=xyz
# changes `local`.
#
# SENTINEL_BIN=path uses an existing static binary instead of building one
# (`RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu -p sentinel`).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TAG=${TAG:-local}
STAGE=$ROOT/target/docker
TRIPLE=x86_64-unknown-linux-gnu

need_packages=()
[[ -x /usr/sbin/nft ]] || need_packages+=(nftables)
[[ -x /usr/bin/redis-server ]] || need_packages+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need_packages+=(postgresql)
# busybox-static, not Debian's dynamically linked busybox: it is /bin/sh in an image without its libraries.
{ ldd /bin/busybox 2>&1 || true; } | grep -Eq "statically linked|not a dynamic executable" || need_packages+=(busybox-static)
if ((${#need_packages[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "build-images: install ${need_packages[*]} (Debian packages) first" >&2
        exit 1
    fi
    # The packages' own services are not started (policy-rc.d answering 101), only their files are used.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_packages[@]}" || {
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_packages[@]}"
    }
fi

# --- the static binary ---------------------------------------------------------------------------------
if [[ -n ${SENTINEL_BIN:-} ]]; then
    BIN=$SENTINEL_BIN
else
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TRIPLE" -p sentinel
    BIN=$ROOT/target/$TRIPLE/release/sentinel
fi
if ! { ldd "$BIN" 2>&1 || true; } | grep -Eq "statically linked|not a dynamic executable"; then
    echo "build-images: $BIN is not statically linked:" >&2
    ldd "$BIN" >&2 || true
    exit 1
fi

rm -rf "$STAGE"
mkdir -p "$STAGE"

# Copies each file (and what it links against, as ldd lists it) to the same path under $1.
bundle() {
    local dest=$1
    shift
    local f lib
    for f in "$@"; do
        if ldd "$f" 2>/dev/null | grep -q "not found"; then
            echo "build-images: $f needs a library this machine does not have:" >&2
            ldd "$f" | grep "not found" >&2
            exit 1
        fi
        mkdir -p "$dest$(dirname "$f")"
        cp -L "$f" "$dest$f"
        while read -r lib; do
            [[ -n $lib && -e $lib ]] || continue
            mkdir -p "$dest$(dirname "$lib")"
            cp -L "$lib" "$dest$lib"
        done < <(ldd "$f" 2>/dev/null | awk '/=>/ {print $3} /^[ \t]*\// {print $1}')
    done
}

# sentinel:local -----------------------------------------------------------------------------------------
S=$STAGE/sentinel
mkdir -p "$S/rootfs/usr/bin" "$S/data" "$S/rootfs/tmp"
cp -a deploy/docker/rootfs/. "$S/rootfs/"
install -m 0755 "$BIN" "$S/rootfs/usr/bin/sentinel"
# The release profile keeps line tables for backtraces on the host; the image does without (230 → ~40 MB).
strip --strip-debug "$S/rootfs/usr/bin/sentinel"
chmod 0644 "$S/rootfs/etc/passwd" "$S/rootfs/etc/group" "$S/rootfs/etc/sentinel/sentinel.yml"
chmod 1777 "$S/rootfs/tmp"
chmod 0700 "$S/data"

# sentinel-responder:local: nft and its libraries -----------------------------------------------------------
bundle "$STAGE/nft" /usr/sbin/nft
# nft reads its protocol and service names from these when it prints rules.
mkdir -p "$STAGE/nft/etc"
for f in /etc/protocols /etc/services; do [[ -e $f ]] && cp -L "$f" "$STAGE/nft$f"; done

# sentinel-redis:local ---------------------------------------------------------------------------------------
R=$STAGE/redis
bundle "$R/rootfs" /usr/bin/redis-server /usr/bin/redis-cli
mkdir -p "$R/rootfs/etc" "$R/data"
printf 'root:x:0:0:root:/nonexistent:/sbin/nologin\nredis:x:10002:10002:redis:/data:/sbin/nologin\n' >"$R/rootfs/etc/passwd"
printf 'root:x:0:\nredis:x:10002:\n' >"$R/rootfs/etc/group"
chmod 0700 "$R/data"

# sentinel-postgres:local ------------------------------------------------------------------------------------
P=$STAGE/postgres
PGBIN=$(dirname "$(compgen -G "/usr/lib/postgresql/*/bin/postgres" | sort -V | tail -1)")
PGVER=$(basename "$(dirname "$PGBIN")")
bundle "$P/rootfs" "$PGBIN/postgres" "$PGBIN/initdb" "$PGBIN/pg_isready" "$PGBIN/pg_ctl"
# Server modules (plpgsql, snowball dictionaries, …) but not the LLVM JIT (jit is off).
mkdir -p "$P/rootfs/usr/lib/postgresql/$PGVER/lib"
for so in /usr/lib/postgresql/"$PGVER"/lib/*.so; do
    [[ $so == */llvmjit* ]] && continue
    bundle "$P/rootfs" "$so"
done
mkdir -p "$P/rootfs/usr/share/postgresql" "$P/rootfs/usr/share/zoneinfo" "$P/rootfs/bin" "$P/rootfs/etc" "$P/data" "$P/rootfs/tmp"
cp -a "/usr/share/postgresql/$PGVER" "$P/rootfs/usr/share/postgresql/"
cp -a /usr/share/zoneinfo/UTC /usr/share/zoneinfo/Etc "$P/rootfs/usr/share/zoneinfo/"
cp -L /bin/busybox "$P/rootfs/bin/busybox"
ln -s busybox "$P/rootfs/bin/sh"
mkdir -p "$P/rootfs/usr/local/bin"
install -m 0755 deploy/docker/postgres-entrypoint.sh "$P/rootfs/usr/local/bin/entrypoint"
sed -i "s|@PGBIN@|$PGBIN|g" "$P/rootfs/usr/local/bin/entrypoint"
printf 'root:x:0:0:root:/nonexistent:/sbin/nologin\npostgres:x:10003:10003:PostgreSQL:/var/lib/postgresql:/sbin/nologin\n' >"$P/rootfs/etc/passwd"
printf 'root:x:0:\npostgres:x:10003:\n' >"$P/rootfs/etc/group"
chmod 1777 "$P/rootfs/tmp"
chmod 0700 "$P/data"

# The build context is the repository root; .dockerignore lets only target/docker/ through.
build() {
    local file=$1 tag=$2
    echo "build-images: $tag"
    docker build --quiet --file "deploy/docker/$file" --tag "$tag" --build-arg "TAG=$TAG" . >/dev/null
}
build sentinel.Dockerfile "sentinel:$TAG"
build responder.Dockerfile "sentinel-responder:$TAG"
build redis.Dockerfile "sentinel-redis:$TAG"
build postgres.Dockerfile "sentinel-postgres:$TAG"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^sentinel(-responder|-redis|-postgres)?:$TAG " || true
