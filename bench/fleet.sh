#!/usr/bin/env bash
# bench/fleet.sh — a fleet of `sentinel run --role …` processes joined by a real Redis bus:
#
#   1. THROUGHPUT: events per second through sensor → Redis → investigators with 1, 2 and 4
#      investigator processes (the shared consumer group `investigators`), one sensor and one
#      responder (so the plans are consumed; observe mode, as shipped: actions recorded as planned).
#      Each run starts a fresh fleet (fresh data dirs, Redis flushed), posts EVENTS attack events,
#      every one from a distinct 2001:db8::/32 address (so each raises an alert and the
#      investigators are the stage measured), in POST /v1/events batches of BATCH on CONNS
#      keep-alive connections as fast as the sensor takes them, and times from the first post until
#      the investigators' summed sentinel_bus_link_messages_total{role="investigator",outcome="acked"}
#      reaches the sensor's outcome="published" (read from /metrics every 20 ms). RUNS runs per
#      configuration; the median is reported, and the scaling as a ratio to 1 investigator.
#   1b. DRAIN: the investigator stage alone. One sensor, one responder, no investigator: the group
#      `investigators` is made at the stream's end, EVENTS alerts are posted (they wait in the
#      stream), then a /metrics poller starts, then k investigators; alerts/s from the first poll that
#      sees an ack to the one that sees them all (the sensor idle meanwhile). CPU seconds used by the
#      investigators, the responder and redis-server while draining are shown beside.
#   2. LATENCY: one sensor, one investigator, LAT_RESPONDERS responders; one attack event per
#      request at LAT_RATE/s for LAT_SECONDS s; per event, the time from the sensor's HTTP answer
#      to the LAST responder's decision record (its `created` in GET /v1/decisions, matched by
#      trace_id; every process on this machine, one clock). p50/p95/max.
#
# Everything (redis-server on a free port, the daemons on 127.0.0.1:0) runs in a temp dir that is
# removed on exit, with every process started here stopped (trap). Traffic goes to 127.0.0.1 only;
# event sources are from 2001:db8::/32 and 198.51.100.0/24.
#
# Knobs (environment):
#   EVENTS=10000 BATCH=100 CONNS=4 RUNS=3 INVESTIGATORS="1 2 4"   the throughput runs
#   LAT_RATE=20 LAT_SECONDS=10 LAT_RESPONDERS=3                   the latency run
#   WHAT=all|throughput|drain|latency                             which part(s) (throughput: also drain)
#   LOG_LEVEL=warn                                                the daemons' logging.level
#   SKIP_BUILD=1 / BIN=path                                       use an existing release binary
#   KEEP_TMP=1                                                    keep the temp dir (logs) for inspection
#
# Reports; never fails on a figure. Exit 1 only when the fleet cannot be run.
set -euo pipefail

EVENTS=${EVENTS:-10000}
BATCH=${BATCH:-100}
CONNS=${CONNS:-4}
RUNS=${RUNS:-3}
INVESTIGATORS=${INVESTIGATORS:-"1 2 4"}
LAT_RATE=${LAT_RATE:-20}
LAT_SECONDS=${LAT_SECONDS:-10}
LAT_RESPONDERS=${LAT_RESPONDERS:-3}
WHAT=${WHAT:-all}
LOG_LEVEL=${LOG_LEVEL:-warn}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOAD="python3 $ROOT/bench/fleet_load.py"

log() { printf '[fleet-bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- 1. tools and build
command -v redis-server >/dev/null 2>&1 || {
    [ "$(id -u)" -eq 0 ] || die "redis-server missing (apt-get install redis-server)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >&2
}
command -v redis-cli >/dev/null 2>&1 || die "redis-cli missing"
command -v python3 >/dev/null 2>&1 || die "python3 missing"
TARGET_DIR=${CARGO_TARGET_DIR:-}
if [ -z "$TARGET_DIR" ]; then
    TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    TARGET_DIR=${TARGET_DIR:-$ROOT/target}
fi
[ -n "${BIN:-}" ] && SKIP_BUILD=1
BIN=${BIN:-$TARGET_DIR/release/sentinel}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release -p sentinel"
    (cd "$ROOT" && cargo build --release -p sentinel) >&2
fi
[ -x "$BIN" ] || die "$BIN not found"

# ---------------------------------------------------------------- 2. temp dir, cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-fleet-bench.XXXXXX")
REDIS_PID=""
NODE_PIDS=()   # the daemons of the current fleet
NODE_DIRS=()

stop_pid() { # pid: TERM, wait up to 15 s, KILL
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    log "pid $pid did not stop in 15 s; KILL"
    kill -KILL "$pid" 2>/dev/null || true
}
stop_fleet() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; wait "$pid" 2>/dev/null || true; done
    NODE_PIDS=()
    NODE_DIRS=()
}
cleanup() {
    trap - EXIT INT TERM
    stop_fleet
    if [ -n "$REDIS_PID" ]; then stop_pid "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- 3. redis
PORT=$(free_port)
mkdir -p "$TMP/redis"
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/redis" \
    --daemonize no --loglevel warning >"$TMP/redis/log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$PORT" ping >/dev/null 2>&1 || { cat "$TMP/redis/log" >&2; die "redis-server did not start"; }
BUS="redis://127.0.0.1:$PORT/0"
log "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$PORT (no persistence)"

# ---------------------------------------------------------------- 4. the fleet
start_node() { # role node: starts one daemon in $TMP/fleet/<node>; its data dir is appended to NODE_DIRS
    local role=$1 node=$2 dir=$TMP/fleet/$2
    mkdir -p "$dir"
    BUS=$BUS SENTINEL__NODE=$node SENTINEL__LOGGING__LEVEL=$LOG_LEVEL \
        "$BIN" run --role "$role" --data-dir "$dir/data" --listen 127.0.0.1:0 >"$dir/out" 2>"$dir/err" &
    NODE_PIDS+=("$!")
    NODE_DIRS+=("$dir/data")
}
wait_fleet() { # every daemon has written api.addr and answers /health
    local i dir pid addr ok
    for i in "${!NODE_DIRS[@]}"; do
        dir=${NODE_DIRS[$i]} pid=${NODE_PIDS[$i]} ok=0
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || { cat "$dir/../err" "$dir/../out" >&2 || true; die "$dir: daemon exited during start"; }
            if [ -s "$dir/api.addr" ] && [ -s "$dir/admin.key" ]; then
                addr=$(tr -d '[:space:]' <"$dir/api.addr")
                if python3 - "$addr" <<'EOF' 2>/dev/null; then ok=1; break; fi
import http.client, sys
h, p = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(h, int(p), timeout=2); c.request("GET", "/health")
sys.exit(0 if c.getresponse().status == 200 else 1)
EOF
            fi
            sleep 0.1
        done
        [ "$ok" = 1 ] || die "$dir: not ready in 30 s"
    done
}
new_fleet() { # investigators responders: one sensor first in NODE_DIRS, then investigators, then responders
    local k=$1 r=$2 j
    stop_fleet
    rm -rf "$TMP/fleet"
    redis-cli -p "$PORT" flushall >/dev/null
    for j in $(seq 1 "$r"); do start_node responder "edge-$j"; done
    for j in $(seq 1 "$k"); do start_node investigator "intel-$j"; done
    start_node sensor web-1
    wait_fleet
}
join_dirs() { local IFS=,; echo "$*"; }
cpu_ticks() { # pid: utime+stime in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
json_get() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); 
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$1" "$2"; }

HZ=$(getconf CLK_TCK)
RESULTS=$TMP/results
mkdir -p "$RESULTS"

# ---------------------------------------------------------------- 5. throughput
if [ "$WHAT" = all ] || [ "$WHAT" = throughput ]; then
    tag=1
    for k in $INVESTIGATORS; do
        for run in $(seq 1 "$RUNS"); do
            new_fleet "$k" 1
            # NODE_DIRS: edge-1, intel-1..k, web-1
            resp=${NODE_DIRS[0]}
            invs=$(join_dirs "${NODE_DIRS[@]:1:$k}")
            sensor=${NODE_DIRS[$((k + 1))]}
            declare -a before=()
            for pid in "${NODE_PIDS[@]}"; do before+=("$(cpu_ticks "$pid")"); done
            out=$($LOAD throughput --sensors "$sensor" --investigators "$invs" --events "$EVENTS" \
                --batch "$BATCH" --conns "$CONNS" --tag "$tag")
            # CPU seconds each role used during the run (all processes share the machine's cores)
            cpu_r=0 cpu_i=0 cpu_s=0
            for i in "${!NODE_PIDS[@]}"; do
                d=$(( $(cpu_ticks "${NODE_PIDS[$i]}") - ${before[$i]} ))
                if [ "$i" -eq 0 ]; then cpu_r=$((cpu_r + d)); elif [ "$i" -le "$k" ]; then cpu_i=$((cpu_i + d)); else cpu_s=$((cpu_s + d)); fi
            done
            # the investigators' share of the acks (how evenly the consumer group spread the alerts)
            shares=$(python3 - "$invs" <<'EOF'
import sys, re, http.client
out = []
for d in sys.argv[1].split(","):
    h, p = open(d + "/api.addr").read().strip().rsplit(":", 1)
    k = open(d + "/admin.key").read().strip()
    c = http.client.HTTPConnection(h, int(p), timeout=5)
    c.request("GET", "/metrics", headers={"authorization": "Bearer " + k})
    t = c.getresponse().read().decode()
    m = re.search(r'^sentinel_bus_link_messages_total\{role="investigator",outcome="acked"\} (\S+)$', t, re.M)
    out.append(str(int(float(m.group(1)))) if m else "?")
print("/".join(out))
EOF
)
            echo "$k $run $out $cpu_s $cpu_i $cpu_r $shares" >>"$RESULTS/throughput"
            log "investigators=$k run=$run: $out cpu(s) sensor=$((cpu_s / HZ)).$(( (cpu_s % HZ) * 100 / HZ )) investigators=$((cpu_i / HZ)).$(( (cpu_i % HZ) * 100 / HZ )) responder=$((cpu_r / HZ)).$(( (cpu_r % HZ) * 100 / HZ )) acks=$shares"
            tag=$((tag + 1))
        done
    done
    stop_fleet
fi

# ---------------------------------------------------------------- 5b. drain: the investigators alone
# The sensor's alerts are posted first (the group `investigators` made beforehand at the stream's end,
# so it holds them all), with no investigator running; then k investigators start and drain the
# backlog while nothing else works but the responder taking their plans.
if [ "$WHAT" = all ] || [ "$WHAT" = throughput ] || [ "$WHAT" = drain ]; then
    tag=100
    for k in $INVESTIGATORS; do
        for run in $(seq 1 "$RUNS"); do
            new_fleet 0 1
            sensor=${NODE_DIRS[1]}
            redis-cli -p "$PORT" xgroup create sentinel:alerts investigators '$' mkstream >/dev/null
            posted=$($LOAD throughput --sensors "$sensor" --events "$EVENTS" --batch "$BATCH" \
                --conns "$CONNS" --tag "$tag" --no-wait)
            for _ in $(seq 1 100); do
                [ "$(redis-cli -p "$PORT" xlen sentinel:alerts)" -ge "$EVENTS" ] && break
                sleep 0.1
            done
            backlog=$(redis-cli -p "$PORT" xlen sentinel:alerts)
            dirs=()
            for j in $(seq 1 "$k"); do dirs+=("$TMP/fleet/intel-$j/data"); done
            # the poller first (it sees the first ack), then the investigators
            $LOAD drain --investigators "$(join_dirs "${dirs[@]}")" --expect "$backlog" >"$TMP/drain.out" &
            poller=$!
            sleep 0.5
            r0=$(cpu_ticks "${NODE_PIDS[0]}") x0=$(cpu_ticks "$REDIS_PID")
            for j in $(seq 1 "$k"); do start_node investigator "intel-$j"; done
            wait "$poller" || true
            # CPU used while draining: the investigators (since their start), the responder, redis
            cpu_i=0
            for pid in "${NODE_PIDS[@]:2}"; do cpu_i=$((cpu_i + $(cpu_ticks "$pid"))); done
            cpu_r=$(( $(cpu_ticks "${NODE_PIDS[0]}") - r0 )) cpu_x=$(( $(cpu_ticks "$REDIS_PID") - x0 ))
            out=$(cat "$TMP/drain.out" | sed "s/}\$/, \"cpu_i\": $cpu_i, \"cpu_r\": $cpu_r, \"cpu_redis\": $cpu_x}/")
            echo "$k $run $out" >>"$RESULTS/drain"
            log "drain investigators=$k run=$run: backlog $backlog; $out"
            tag=$((tag + 1))
        done
    done
    stop_fleet
fi

# ---------------------------------------------------------------- 6. latency
if [ "$WHAT" = all ] || [ "$WHAT" = latency ]; then
    new_fleet 1 "$LAT_RESPONDERS"
    resps=$(join_dirs "${NODE_DIRS[@]:0:$LAT_RESPONDERS}")
    sensor=${NODE_DIRS[$((LAT_RESPONDERS + 1))]}
    sleep 1
    LAT=$($LOAD latency --sensor "$sensor" --responders "$resps" --rate "$LAT_RATE" \
        --seconds "$LAT_SECONDS" --v4)
    echo "$LAT" >"$RESULTS/latency"
    log "latency: $LAT"
    stop_fleet
fi

# ---------------------------------------------------------------- 7. summary
python3 - "$RESULTS" "$HZ" "$EVENTS" "$BATCH" "$CONNS" "$RUNS" "$LAT_RATE" "$LAT_SECONDS" "$LAT_RESPONDERS" <<'EOF'
import json, os, statistics, sys
res, hz = sys.argv[1], int(sys.argv[2])
events, batch, conns, runs, rate, secs, nresp = sys.argv[3:10]
tp = os.path.join(res, "throughput")
if os.path.exists(tp):
    print()
    print(f"=== fleet throughput: sensor -> Redis -> investigators (1 sensor, 1 responder, {events} events "
          f"in batches of {batch} on {conns} connections, median of {runs} runs) ===")
    rows = {}
    for line in open(tp):
        k, run, rest = line.split(" ", 2)
        js, tail = rest.rsplit("}", 1)
        cpu_s, cpu_i, cpu_r, shares = tail.split()
        d = json.loads(js + "}")
        d.update(cpu_s=int(cpu_s) / hz, cpu_i=int(cpu_i) / hz, cpu_r=int(cpu_r) / hz, shares=shares)
        rows.setdefault(int(k), []).append(d)
    base = None
    print(f"{'investigators':>13} | {'events/s':>9} | {'ratio':>5} | {'runs (events/s)':<24} | {'sensor intake/s':>15} | "
          f"{'CPU s: sensor/invs/resp':>23} | {'acks per investigator (last run)'}")
    for k in sorted(rows):
        rs = rows[k]
        med = statistics.median(r["eps"] for r in rs)
        base = base or med
        intake = statistics.median(r["post_eps"] for r in rs)
        mid = sorted(rs, key=lambda r: r["eps"])[len(rs) // 2]
        bad = [r for r in rs if r["timed_out"] or r["published"] != r["events"] or r["non2xx"]]
        print(f"{k:>13} | {med:>9.0f} | {med / base:>5.2f} | {' '.join('%.0f' % r['eps'] for r in rs):<24} | "
              f"{intake:>15.0f} | {mid['cpu_s']:>7.1f}/{mid['cpu_i']:.1f}/{mid['cpu_r']:.1f}{'':>9} | {rs[-1]['shares']}"
              + (f"  !! {len(bad)} run(s) incomplete: {bad}" if bad else ""))
dp = os.path.join(res, "drain")
if os.path.exists(dp):
    rows = {}
    for line in open(dp):
        k, run, js = line.split(" ", 2)
        rows.setdefault(int(k), []).append(json.loads(js))
    print()
    print(f"=== drain: investigators alone on a backlog of {events} alerts (sensor idle, 1 responder, median of {runs} runs) ===")
    print(f"{'investigators':>13} | {'alerts/s':>9} | {'ratio':>5} | {'runs (alerts/s)':<24} | {'first→last ack (s)':<20} | CPU s: invs/resp/redis (median run)")
    base = None
    for k in sorted(rows):
        rs = rows[k]
        ok = [r for r in rs if not r["timed_out"] and "eps" in r]
        if not ok:
            print(f"{k:>13} | incomplete: {rs}")
            continue
        med = statistics.median(r["eps"] for r in ok)
        base = base or med
        print(f"{k:>13} | {med:>9.0f} | {med / base:>5.2f} | {' '.join('%.0f' % r['eps'] for r in ok):<24} | "
              f"{' '.join('%.2f' % r['secs'] for r in ok):<20} | "
              + (lambda m: f"{m['cpu_i'] / hz:.1f}/{m['cpu_r'] / hz:.1f}/{m['cpu_redis'] / hz:.1f}")(sorted(ok, key=lambda r: r['eps'])[len(ok) // 2]) + (f"  !! {len(rs) - len(ok)} incomplete" if len(ok) < len(rs) else ""))
lp = os.path.join(res, "latency")
if os.path.exists(lp):
    d = json.load(open(lp))
    print()
    print(f"=== decision latency: sensor answer -> decision on the last of {nresp} responders "
          f"({rate}/s for {secs} s, one event per request) ===")
    print(f"events {d['events']}, answered {d['answered']}, on every responder {d['complete']}, "
          f"missing {d['missing']}, sent late {d['sent_late']}")
    for name, key in (("last responder, from the HTTP answer", "last_from_answer_ms"),
                      ("last responder, from the request sent", "last_from_send_ms"),
                      ("first responder, from the HTTP answer", "first_from_answer_ms")):
        s = d[key]
        print(f"{name:<40} p50 {s['p50']} ms  p95 {s['p95']} ms  max {s['max']} ms  (min {s['min']})")
EOF
