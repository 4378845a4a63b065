#!/usr/bin/env bash
# bench/edge.sh — the API's edge under a flood: legitimate clients' rate, /health latency, and memory
# (RSS before, peak, after) while wrk floods POST /v1/defend at ten times the connection capacity,
# then a flood of idle connections well above the cap.
#
# One Sentinel on a fresh temporary data dir on a free loopback port, `api.max_connections=CAP`.
# Phases:
#   1. idle RSS;
#   2. baseline: the legitimate client alone (wrk -t1 -c$LEGIT_CONNS, its own key) on /v1/defend;
#   3. FLOODS times: wrk -c$((10*CAP)) on /v1/defend (the flood key) for DURATION, the legitimate
#      client measured at the same time, /health probed every second (curl time_total);
#   4. IDLE_CONNS idle connections held for HOLD seconds (never a byte sent), /health probed;
#   5. RSS after SETTLE seconds of quiet.
# Prints a summary; the legitimate rate under flood is shown against its baseline. Reports, never
# fails on a figure (benches report, tests assert). Traffic goes to 127.0.0.1 only.
#
# Knobs (environment):
#   CAP=100 DURATION=15s FLOODS=3 LEGIT_CONNS=2 IDLE_CONNS=5000 HOLD=10 SETTLE=10
#   BIN=path           the binary (default: target/release/sentinel, built unless SKIP_BUILD=1)
#   LEGIT_KEY=snl_...  the legitimate client's key (e.g. from `sentinel keys create --role operator`);
#   FLOOD_KEY=snl_...  the flood's key. Both default to the admin key of the fresh data dir.
#   KEEP_TMP=1         keep the temp dir
set -euo pipefail

CAP=${CAP:-100}
DURATION=${DURATION:-15s}
FLOODS=${FLOODS:-3}
LEGIT_CONNS=${LEGIT_CONNS:-2}
IDLE_CONNS=${IDLE_CONNS:-5000}
HOLD=${HOLD:-10}
SETTLE=${SETTLE:-10}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[edge-bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for p in wrk curl python3; do command -v "$p" >/dev/null 2>&1 || die "$p missing (apt-get install wrk curl python3)"; done

if [ -z "${BIN:-}" ]; then
    TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    BIN=$TARGET_DIR/release/sentinel
    [ "${SKIP_BUILD:-0}" = 1 ] || (cd "$ROOT" && cargo build --release -p sentinel) >&2
fi
[ -x "$BIN" ] || die "$BIN not found"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-edge-bench.XXXXXX")
DATA=$TMP/data
PID=
BG=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SENTINEL_ENV=(env)
while IFS='=' read -r name _; do
    case $name in SENTINEL*) SENTINEL_ENV+=(-u "$name") ;; esac
done < <(env)
SENTINEL_ENV+=(SENTINEL__LOGGING__LEVEL=warn SENTINEL__API__MAX_CONNECTIONS="$CAP")
: >"$TMP/none.env"
(cd "$TMP" && exec "${SENTINEL_ENV[@]}" "$BIN" run --data-dir "$DATA" --listen 127.0.0.1:0 \
    --env-file "$TMP/none.env" >"$TMP/sentinel.out" 2>"$TMP/sentinel.err") &
PID=$!
ADDR=
for _ in $(seq 1 300); do
    kill -0 "$PID" 2>/dev/null || { cat "$TMP/sentinel.err" >&2; die "sentinel exited during start"; }
    if [ -s "$DATA/api.addr" ]; then
        ADDR=$(tr -d '[:space:]' <"$DATA/api.addr")
        curl -fsS -o /dev/null --max-time 2 "http://$ADDR/ready" 2>/dev/null && break
    fi
    sleep 0.1
done
case $ADDR in 127.0.0.1:*) ;; *) die "not ready on loopback (addr '$ADDR')" ;; esac
ADMIN=$(tr -d '[:space:]' <"$DATA/admin.key")
LEGIT_KEY=${LEGIT_KEY:-$ADMIN}
FLOOD_KEY=${FLOOD_KEY:-$ADMIN}
log "ready on $ADDR (pid $PID), cap $CAP"

lua() { # lua FILE KEY SRC_PREFIX: POST /v1/defend, counting statuses
    cat >"$1" <<EOF
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"src_ip":"$3.%d","failed_logins":%d,"path":"/login"}', n % 250 + 1, n % 50)
  return wrk.format("POST", "/v1/defend", {["X-API-Key"]="$2", ["Content-Type"]="application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH rps=%.1f p50_ms=%.2f p99_ms=%.2f errors(connect/read/write/timeout)=%d/%d/%d/%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
EOF
}
lua "$TMP/legit.lua" "$LEGIT_KEY" 198.51.100
lua "$TMP/flood.lua" "$FLOOD_KEY" 203.0.113
rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$PID/status"; }
hwm() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$PID/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
bench_line() { # the BENCH line and how many answers were not 2xx (429/503 refusals, 401s)
    local non2xx
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$1")
    echo "$(grep '^BENCH' "$1" || echo "BENCH (no result: $(tail -1 "$1"))") non-2xx=${non2xx:-0}"
}
probe_health() { # probe_health SECONDS OUT: one /health a second, time_total in ms
    for _ in $(seq 1 "$1"); do
        curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' "http://$ADDR/health" >>"$2" || echo "fail 5" >>"$2"
        sleep 1
    done
}
health_summary() {
    sort -k2 -g "$1" | awk '{ t[NR] = $2 * 1000; if ($1 != 200) bad++ }
        END { printf "%d probes, median %.1f ms, worst %.1f ms, not 200: %d", NR, t[int((NR + 1) / 2)], t[NR], bad + 0 }'
}

sleep 2
RSS_BEFORE=$(rss)
log "idle RSS $(mib "$RSS_BEFORE")"
secs=${DURATION%s}

log "baseline: legitimate client alone"
wrk -t1 -c"$LEGIT_CONNS" -d"$DURATION" --timeout 10s -s "$TMP/legit.lua" "http://$ADDR" >"$TMP/baseline.txt" 2>&1 || true
FLOOD_LINES=()
for i in $(seq 1 "$FLOODS"); do
    log "flood $i/$FLOODS: wrk -c$((10 * CAP)) for $DURATION, legitimate client and /health probes alongside"
    : >"$TMP/health$i.txt"
    wrk -t2 -c$((10 * CAP)) -d"$DURATION" --timeout 10s -s "$TMP/flood.lua" "http://$ADDR" >"$TMP/flood$i.txt" 2>&1 &
    F=$!
    sleep 1
    wrk -t1 -c"$LEGIT_CONNS" -d$((secs - 2))s --timeout 10s -s "$TMP/legit.lua" "http://$ADDR" >"$TMP/legit$i.txt" 2>&1 &
    L=$!
    probe_health $((secs - 2)) "$TMP/health$i.txt"
    wait "$F" "$L" || true
    FLOOD_LINES+=("flood $i: $(bench_line "$TMP/flood$i.txt")" "  legit: $(bench_line "$TMP/legit$i.txt")" "  /health: $(health_summary "$TMP/health$i.txt")")
done
RSS_AFTER_FLOODS_PEAK=$(hwm)

log "idle connections: $IDLE_CONNS held for ${HOLD}s"
python3 - "$ADDR" "$IDLE_CONNS" "$HOLD" >"$TMP/idle.txt" 2>&1 <<'EOF' &
import resource, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
n, hold = int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks, failed = [], 0
for _ in range(n):
    try:
        s = socket.create_connection((host, int(port)), timeout=5)
        socks.append(s)
    except OSError:
        failed += 1
print(f"opened {len(socks)}, failed {failed}")
time.sleep(hold)
EOF
I=$!
BG+=("$I")
sleep 2
: >"$TMP/health_idle.txt"
probe_health $((HOLD - 2)) "$TMP/health_idle.txt"
PEAK_IDLE_RSS=$(rss)
wait "$I" || true
METRICS=$(curl -s --max-time 5 -H "X-API-Key: $ADMIN" "http://$ADDR/metrics" || true)
metric() { printf '%s\n' "$METRICS" | awk -v m="$1" 'index($1, m) == 1 { s += $2 } END { print s + 0 }'; }

log "quiet for ${SETTLE}s"
sleep "$SETTLE"
RSS_AFTER=$(rss)
PEAK=$(hwm)

cat <<EOF

== bench/edge.sh: $BIN, cap $CAP ($(nproc) cores) ==
baseline legit: $(bench_line "$TMP/baseline.txt")
$(printf '%s\n' "${FLOOD_LINES[@]}")
idle connections: $(cat "$TMP/idle.txt" | head -1); /health: $(health_summary "$TMP/health_idle.txt")
  evicted $(metric sentinel_api_connections_evicted_total), accept paused $(metric sentinel_api_accept_paused_total), accept errors $(metric sentinel_api_accept_errors_total)
RSS: before $(mib "$RSS_BEFORE"), peak after the defend floods $(mib "$RSS_AFTER_FLOODS_PEAK"), during idle flood $(mib "$PEAK_IDLE_RSS"), peak (VmHWM) $(mib "$PEAK"), after ${SETTLE}s quiet $(mib "$RSS_AFTER")
EOF
