#!/usr/bin/env bash
# Enforcement benchmark: decide→kernel latency over 1,000 decisions, one 100,000-address batch, and
# lookup cost with 1,000,000 elements in the set. Runs as root inside network namespaces it creates
# (documentation addresses only); the host's ruleset is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
for p in nftables iproute2 python3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || apt-get install -y "$p"
done
cargo run --release -q -p sentinel-respond --example enforce_bench
