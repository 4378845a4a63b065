#!/usr/bin/env bash
# bench/edge.sh — the API's edge under a flood: do legitimate clients with their own keys keep their
# rate while a wrk flood runs, how fast does /health answer meanwhile, and does memory return after
# load. See bench/README.md for what each figure means and the figures measured.
#
# Two daemons, one after the other, each on a fresh temporary data dir on a free loopback port:
#
#   MEMORY run (rate limits off, api.max_connections=MEM_CAP, default 1024 as shipped): every request
#     of the flood reaches /v1/defend, the worst case for memory, and its 2xx rate is the daemon's
#     capacity on /v1/defend.
#       RSS idle; FLOODS x wrk -c$FLOOD_CONNS on /v1/defend for DURATION s (RSS sampled every 0.5 s);
#       RSS 5 s and 30 s after; then IDLE_CONNS idle connections held HOLD s (never a byte sent);
#       RSS 5 s and 30 s after they close.
#   LOAD run (api.max_connections=CAP, default 100, so the flood's FLOOD_CONNS=1000 connections are ten
#     times the connection capacity; api.rate_limit per_ip PER_IP and per_key PER_KEY, exempt: []):
#       LEGIT_CLIENTS clients, each with its OWN operator key made by `sentinel keys create --role
#       operator` against the running daemon and its own loopback source address (127.0.0.2, .3, ...),
#       send /v1/defend at a paced LEGIT_RATE req/s each for DURATION s: RUNS times alone (baseline),
#       then RUNS times while wrk floods from 127.0.0.1 with another operator key, /health probed
#       PROBE_HZ times a second (a fresh connection each, like an orchestrator).
#       `exempt: []` because the shipped default exempts 127.0.0.0/8 and ::1 from the per-address limit
#       (a local proxy or the CLI: everyone behind it shares its address); from loopback the flood
#       would then meet only the per-key limit. The distinct source addresses are what let the
#       per-address limit tell the flood from the legitimate clients, as distinct hosts would be.
#
# Prints a summary (medians over the runs). Reports, never fails on a figure (benches report, tests
# assert). Traffic goes to 127.0.0.0/8 only.
#
# Knobs (environment):
#   WHAT=all|memory|load   which runs (default all)
#   DURATION=15 RUNS=3 FLOODS=3 FLOOD_CONNS=1000 CAP=100 MEM_CAP=1024
#   LEGIT_CLIENTS=2 LEGIT_RATE=100       paced legitimate clients and their rate each (req/s)
#   PER_IP=500/s PER_IP_BURST=1000 PER_KEY=250/s PER_KEY_BURST=500   the LOAD run's limits
#   IDLE_CONNS=5000 HOLD=10 PROBE_HZ=5
#   BIN=path     the binary (default: $CARGO_TARGET_DIR/release/sentinel, built unless SKIP_BUILD=1)
#   ALLOC=name   only a label for the summary (e.g. jemalloc, system, mimalloc)
#   KEEP_TMP=1   keep the temp dir (daemon logs, wrk output, samples)
set -euo pipefail

WHAT=${WHAT:-all}
DURATION=${DURATION:-15}
PROBE_FROM=${PROBE_FROM:-127.0.0.4}
RUNS=${RUNS:-3}
FLOODS=${FLOODS:-3}
FLOOD_CONNS=${FLOOD_CONNS:-1000}
CAP=${CAP:-100}
MEM_CAP=${MEM_CAP:-1024}
LEGIT_CLIENTS=${LEGIT_CLIENTS:-2}
LEGIT_RATE=${LEGIT_RATE:-100}
PER_IP=${PER_IP:-500/s}
PER_IP_BURST=${PER_IP_BURST:-1000}
PER_KEY=${PER_KEY:-250/s}
PER_KEY_BURST=${PER_KEY_BURST:-500}
IDLE_CONNS=${IDLE_CONNS:-5000}
HOLD=${HOLD:-10}
PROBE_HZ=${PROBE_HZ:-5}
ALLOC=${ALLOC:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[edge-bench %s] %s\n' "$(date -u +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for p in wrk curl python3; do command -v "$p" >/dev/null 2>&1 || die "$p missing (apt-get install wrk curl python3)"; done

if [ -z "${BIN:-}" ]; then
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sentinel
    [ "${SKIP_BUILD:-0}" = 1 ] || (cd "$ROOT" && cargo build --release -p sentinel) >&2
fi
[ -x "$BIN" ] || die "$BIN not found"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-edge-bench.XXXXXX")
PID=
SAMPLER=
BG=()
stop_daemon() {
    [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
    SAMPLER=
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null || true
    fi
    PID=
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
    stop_daemon
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The daemon and the CLI see only the bench's configuration: no SENTINEL_* from the caller's
# environment, no ./sentinel.yml or ./.env (they run in the temp dir, with an empty --env-file).
CLEAN_ENV=(env)
while IFS='=' read -r name _; do
    case $name in SENTINEL*) CLEAN_ENV+=(-u "$name") ;; esac
done < <(env)
: >"$TMP/none.env"

# start_daemon NAME CONFIG_YAML: starts it, waits for /ready, sets PID ADDR ADMIN DATA CONF, samples RSS.
start_daemon() {
    local name=$1
    DATA=$TMP/$name/data
    CONF=$TMP/$name/sentinel.yml
    mkdir -p "$TMP/$name"
    printf '%s\n' "$2" >"$CONF"
    (cd "$TMP/$name" && exec "${CLEAN_ENV[@]}" "$BIN" run --config "$CONF" --env-file "$TMP/none.env" \
        --data-dir "$DATA" --listen 127.0.0.1:0 >"$TMP/$name/sentinel.out" 2>"$TMP/$name/sentinel.err") &
    PID=$!
    ADDR=
    for _ in $(seq 1 300); do
        kill -0 "$PID" 2>/dev/null || { cat "$TMP/$name/sentinel.err" >&2; die "sentinel exited during start"; }
        if [ -s "$DATA/api.addr" ]; then
            ADDR=$(tr -d '[:space:]' <"$DATA/api.addr")
            curl -fsS -o /dev/null --max-time 2 "http://$ADDR/ready" 2>/dev/null && break
        fi
        sleep 0.1
    done
    case $ADDR in 127.0.0.1:*) ;; *) die "not ready on loopback (addr '$ADDR')" ;; esac
    ADMIN=$(tr -d '[:space:]' <"$DATA/admin.key")
    SAMPLES=$TMP/$name/rss.txt
    (while kill -0 "$PID" 2>/dev/null; do
        printf '%s %s\n' "$(date +%s%3N)" "$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$PID/status" 2>/dev/null)"
        sleep 0.5
    done) >"$SAMPLES" 2>/dev/null &
    SAMPLER=$!
    log "$name: ready on $ADDR (pid $PID)"
}
# new_key NAME: an operator key made through the running daemon, as an operator would.
new_key() {
    (cd "$TMP" && "${CLEAN_ENV[@]}" "$BIN" keys create --role operator --name "$1" \
        --config "$CONF" --env-file "$TMP/none.env" --data-dir "$DATA" 2>>"$TMP/keys.err") | tr -d '[:space:]'
}
now_ms() { date +%s%3N; }
rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$PID/status"; }
# What of the RSS is anonymous memory (the heap, stacks) and what is file pages (the binary's code, the
# store's files): file pages come from the page cache and are not what an allocator could give back.
anon() { awk '$1 == "RssAnon:" { a = $2 } $1 == "RssFile:" { f = $2 } END { printf "anon %.1f file %.1f", a / 1024, f / 1024 }' "/proc/$PID/status"; }
peak_between() { awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b && $2 > m { m = $2 } END { print m + 0 }' "$SAMPLES"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# /metrics, empty when it did not answer 200 within 5 s (during the LOAD floods it comes from 127.0.0.1,
# the flood's address, so its per-address limit may refuse it with a 429).
metrics() { curl -fs --max-time 5 -H "X-API-Key: $ADMIN" "http://$ADDR/metrics" || true; }
metrics_final() { local m i; for i in 1 2 3 4 5; do m=$(metrics); [ -n "$m" ] && break; sleep 1; done; printf '%s' "$m"; }
metric() { printf '%s\n' "$2" | awk -v m="$1" 'index($1, m) == 1 { s += $2 } END { print s + 0 }'; }

wrk_lua() { # wrk_lua FILE KEY: POST /v1/defend (sources in 203.0.113.0/24), statuses counted
    cat >"$1" <<EOF
local n = 0
local statuses = {}
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function() codes = {} end
request = function()
  n = n + 1
  local body = string.format('{"src_ip":"203.0.113.%d","failed_logins":%d,"path":"/login"}', n % 250 + 1, n % 50)
  return wrk.format("POST", "/v1/defend", {["X-API-Key"]="$2", ["Content-Type"]="application/json"}, body)
end
response = function(status) codes[status] = (codes[status] or 0) + 1 end
done = function(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for s, c in pairs(t:get("codes")) do all[s] = (all[s] or 0) + c end
  end
  local secs = summary.duration / 1e6
  local ok, lim, other = 0, 0, 0
  for s, c in pairs(all) do
    if s >= 200 and s < 300 then ok = ok + c elseif s == 429 then lim = lim + c else other = other + c end
  end
  local e = summary.errors
  io.write(string.format("WRK rps=%.0f ok_rps=%.0f share429=%.1f other=%d p50_ms=%.2f p99_ms=%.2f sockerr=%d\n",
    summary.requests / secs, ok / secs, 100 * lim / math.max(summary.requests, 1), other,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, e.connect + e.read + e.write + e.timeout))
end
EOF
}
wrk_field() { grep -o "$2=[0-9.]*" "$1" | head -1 | cut -d= -f2; }

# The paced legitimate client: LEGIT_RATE req/s on one keep-alive connection (reconnecting when the
# server closes it), from its own loopback address, for DURATION s; prints one JSON line.
cat >"$TMP/legit.py" <<'EOF'
import http.client, json, socket, sys, time
addr, key, src, rate, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
host, port = addr.rsplit(":", 1)
conn, reconnects, retried, errors, codes, lat = None, 0, 0, 0, {}, []
start = time.monotonic()
i = 0
while True:
    due = start + i / rate
    now = time.monotonic()
    if due >= start + secs or now >= start + secs:
        break
    if due > now:
        time.sleep(due - now)
    i += 1
    body = json.dumps({"src_ip": "198.51.100.%d" % (i % 250 + 1), "failed_logins": i % 3, "path": "/"})
    t = time.monotonic()
    # A request on a kept-alive connection the server closed meanwhile (idle timeout, or evicted at the
    # connection cap: only connections with no request in flight are) never reached a handler; like
    # common HTTP clients, retry it once on a fresh connection (counted in "retried").
    for attempt in (0, 1):
        reused = conn is not None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(src, 0))
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                reconnects += 1
            conn.request("POST", "/v1/defend", body, {"X-API-Key": key, "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            codes[r.status] = codes.get(r.status, 0) + 1
            lat.append(time.monotonic() - t)
            if r.getheader("connection", "").lower() == "close":
                conn.close(); conn = None
            break
        except (OSError, http.client.HTTPException) as e:
            if conn is not None:
                conn.close()
            conn = None
            stale = reused and isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))
            if attempt == 0 and stale:
                retried += 1
                continue
            errors += 1
            break
lat.sort()
ok = sum(c for s, c in codes.items() if 200 <= s < 300)
pct = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0
print(json.dumps({"sent": i, "ok_rps": round(ok / secs, 1), "codes": codes, "errors": errors, "retried": retried,
                  "connections": reconnects, "p50_ms": round(pct(0.5), 2), "p99_ms": round(pct(0.99), 2)}))
EOF
jf() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

probe_health() { # probe_health SECONDS OUT: PROBE_HZ /health a second, a fresh connection each, ms
    local n=$(($1 * PROBE_HZ)) gap
    gap=$(awk -v h="$PROBE_HZ" 'BEGIN { printf "%.3f", 1 / h }')
    for _ in $(seq 1 "$n"); do
        # From its own address (PROBE_FROM), as an orchestrator is another host than the flood.
        curl -s -o /dev/null --max-time 5 --interface "$PROBE_FROM" -w '%{http_code} %{time_total}\n' "http://$ADDR/health" >>"$2" || echo "fail 5" >>"$2"
        sleep "$gap"
    done
}
health_summary() { # probes, median, p99, worst, not-200
    sort -k2 -g "$@" | awk '{ t[NR] = $2 * 1000; if ($1 != 200) bad++ }
        END { p = int(NR * 0.99); if (p < 1) p = 1; printf "%d probes: median %.1f ms, p99 %.1f ms, worst %.1f ms, not 200: %d", NR, t[int((NR + 1) / 2)], t[p], t[NR], bad + 0 }'
}
idle_flood() { # idle_flood N HOLD OUT: N connections opened, never a byte sent, held HOLD s
    python3 - "$ADDR" "$1" "$2" >"$3" 2>&1 <<'EOF'
import resource, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
n, hold = int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks, failed = [], 0
for _ in range(n):
    try:
        socks.append(socket.create_connection((host, int(port)), timeout=5))
    except OSError:
        failed += 1
print(f"opened {len(socks)}, failed {failed}")
time.sleep(hold)
EOF
}

SUMMARY=()
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
say() { SUMMARY+=("$*"); log "$*"; }

# ---------------------------------------------------------------- MEMORY run
if [ "$WHAT" = all ] || [ "$WHAT" = memory ]; then
    start_daemon memory "api:
  max_connections: $MEM_CAP
  rate_limit: { per_ip: off, per_key: off }
logging:
  level: warn"
    FKEY=$(new_key flood)
    [ -n "$FKEY" ] || die "keys create failed: $(cat "$TMP/keys.err")"
    wrk_lua "$TMP/mflood.lua" "$FKEY"
    sleep 3
    before=$(rss); before_split=$(anon)
    t0=$(now_ms)
    caps=()
    for i in $(seq 1 "$FLOODS"); do
        wrk -t2 -c"$FLOOD_CONNS" -d"${DURATION}s" --timeout 10s -s "$TMP/mflood.lua" "http://$ADDR" >"$TMP/memory/flood$i.txt" 2>&1 || true
        caps+=("$(wrk_field "$TMP/memory/flood$i.txt" ok_rps)")
        log "memory flood $i: $(grep '^WRK' "$TMP/memory/flood$i.txt" || tail -1 "$TMP/memory/flood$i.txt")"
    done
    peak=$(peak_between "$t0" "$(now_ms)")
    sleep 5; after5=$(rss)
    sleep 25; after30=$(rss); after30_split=$(anon)
    t1=$(now_ms)
    idle_flood "$IDLE_CONNS" "$HOLD" "$TMP/memory/idle.txt" &
    I=$!; BG+=("$I")
    wait "$I" || true
    ipeak=$(peak_between "$t1" "$(now_ms)")
    M=$(metrics)
    sleep 5; iafter5=$(rss)
    sleep 25; iafter30=$(rss); iafter30_split=$(anon)
    CAPACITY=$(printf '%s\n' "${caps[@]}" | median)
    say "MEMORY ${ALLOC:-$(basename "$BIN")} (limits off, max_connections $MEM_CAP): /v1/defend capacity (2xx/s, median of $FLOODS floods of -c$FLOOD_CONNS): $CAPACITY"
    say "  defend floods: RSS before $(mib "$before") MiB, peak $(mib "$peak"), 5 s after $(mib "$after5"), 30 s after $(mib "$after30")"
    say "  idle flood ($(head -1 "$TMP/memory/idle.txt")): peak $(mib "$ipeak") MiB, 5 s after $(mib "$iafter5"), 30 s after $(mib "$iafter30"); evicted $(metric sentinel_api_connections_evicted_total "$M"), accept paused $(metric sentinel_api_accept_paused_total "$M")"
    say "  RSS split (MiB): before $before_split; 30 s after the defend floods $after30_split; 30 s after the idle flood $iafter30_split"
    say "  MEMLINE alloc=${ALLOC:-?} before=$(mib "$before") peak=$(mib "$peak") a5=$(mib "$after5") a30=$(mib "$after30") ipeak=$(mib "$ipeak") ia5=$(mib "$iafter5") ia30=$(mib "$iafter30") capacity=$CAPACITY"
    stop_daemon
fi

# ---------------------------------------------------------------- LOAD run
if [ "$WHAT" = all ] || [ "$WHAT" = load ]; then
    start_daemon load "api:
  max_connections: $CAP
  rate_limit:
    per_ip: { rate: $PER_IP, burst: $PER_IP_BURST }
    per_key: { rate: $PER_KEY, burst: $PER_KEY_BURST }
    exempt: []
logging:
  level: warn"
    FKEY=$(new_key flood)
    [ -n "$FKEY" ] || die "keys create failed: $(cat "$TMP/keys.err")"
    LKEYS=()
    for c in $(seq 1 "$LEGIT_CLIENTS"); do LKEYS+=("$(new_key "legit$c")"); done
    wrk_lua "$TMP/lflood.lua" "$FKEY"
    sleep 3
    before=$(rss)
    legit_run() { # legit_run SECONDS OUTPREFIX: every legitimate client at once, one JSON line per client
        local pids=() c
        for c in $(seq 1 "$LEGIT_CLIENTS"); do
            python3 "$TMP/legit.py" "$ADDR" "${LKEYS[$((c - 1))]}" "127.0.0.$((c + 1))" "$LEGIT_RATE" "$1" >"$2.$c" 2>&1 &
            pids+=($!)
        done
        wait "${pids[@]}" || true
    }
    base=() ; base_p99=()
    for r in $(seq 1 "$RUNS"); do
        legit_run "$DURATION" "$TMP/load/base$r"
        for c in $(seq 1 "$LEGIT_CLIENTS"); do
            line=$(cat "$TMP/load/base$r.$c"); log "alone run $r client $c: $line"
            base+=("$(jf "$line" ok_rps)"); base_p99+=("$(jf "$line" p99_ms)")
        done
    done
    flood=() ; flood_p50=(); flood_p99=(); share=(); frps=(); fok=(); : >"$TMP/load/health.txt"
    open_mid=()
    t0=$(now_ms)
    overflows0=$(awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 } else for (i = 1; i <= NF; i++) if (n[i] == "ListenOverflows") print $i }' /proc/net/netstat)
    for r in $(seq 1 "$RUNS"); do
        wrk -t2 -c"$FLOOD_CONNS" -d"$((DURATION + 3))s" --timeout 10s -s "$TMP/lflood.lua" "http://$ADDR" >"$TMP/load/flood$r.txt" 2>&1 &
        F=$!; BG+=("$F")
        sleep 1.5
        legit_run "$DURATION" "$TMP/load/legit$r" &
        L=$!
        probe_health $((DURATION / 2)) "$TMP/load/health.txt"
        mm=$(metrics) # empty when /metrics itself could not get through within 5 s
        if [ -n "$mm" ]; then open_mid+=("$(metric sentinel_api_connections_open "$mm")"); else open_mid+=("n/a"); fi
        probe_health $((DURATION - DURATION / 2 - 1)) "$TMP/load/health.txt"
        wait "$L" "$F" || true
        for c in $(seq 1 "$LEGIT_CLIENTS"); do
            line=$(cat "$TMP/load/legit$r.$c"); log "flood run $r client $c: $line"
            flood+=("$(jf "$line" ok_rps)"); flood_p50+=("$(jf "$line" p50_ms)"); flood_p99+=("$(jf "$line" p99_ms)")
        done
        log "flood run $r: $(grep '^WRK' "$TMP/load/flood$r.txt" || tail -1 "$TMP/load/flood$r.txt")"
        share+=("$(wrk_field "$TMP/load/flood$r.txt" share429)")
        frps+=("$(wrk_field "$TMP/load/flood$r.txt" rps)")
        fok+=("$(wrk_field "$TMP/load/flood$r.txt" ok_rps)")
    done
    lpeak=$(peak_between "$t0" "$(now_ms)")
    M=$(metrics_final)
    overflows=$(awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 } else for (i = 1; i <= NF; i++) if (n[i] == "ListenOverflows") print $i }' /proc/net/netstat)
    sleep 5; lafter5=$(rss)
    fr=$(printf '%s\n' "${frps[@]}" | median)
    say "LOAD ${ALLOC:-$(basename "$BIN")} (max_connections $CAP, flood -c$FLOOD_CONNS; per_ip $PER_IP burst $PER_IP_BURST, per_key $PER_KEY burst $PER_KEY_BURST, exempt []):"
    say "  legit ($LEGIT_CLIENTS clients x $LEGIT_RATE req/s paced, own keys and addresses; medians over $RUNS runs x clients):"
    say "    alone: $(printf '%s\n' "${base[@]}" | median) 2xx/s (p99 $(printf '%s\n' "${base_p99[@]}" | median) ms); under flood: $(printf '%s\n' "${flood[@]}" | median) 2xx/s (p50 $(printf '%s\n' "${flood_p50[@]}" | median) ms, p99 $(printf '%s\n' "${flood_p99[@]}" | median) ms); per run: ${flood[*]}"
    say "  flood: $fr req/s (x$(awk -v a="$fr" -v c="${CAPACITY:-0}" 'BEGIN { if (c > 0) printf "%.1f", a / c; else print "?" }') the /v1/defend capacity ${CAPACITY:-not measured}), 2xx $(printf '%s\n' "${fok[@]}" | median)/s, 429 share $(printf '%s\n' "${share[@]}" | median)% (per run: ${share[*]})"
    say "  /health under flood: $(health_summary "$TMP/load/health.txt")"
    say "  /metrics: connections open mid-flood ${open_mid[*]} (cap $CAP); evicted $(metric sentinel_api_connections_evicted_total "$M"), accept paused $(metric sentinel_api_accept_paused_total "$M"), accept errors $(metric sentinel_api_accept_errors_total "$M"), accepted $(metric sentinel_api_connections_accepted_total "$M"); rate limited by ip $(metric 'sentinel_api_rate_limited_total{by="ip"' "$M"), by key $(metric 'sentinel_api_rate_limited_total{by="key"' "$M")"
    say "  listen queue overflows during the floods (host-wide TcpExtListenOverflows; SYNs dropped, so new connections wait 1 s, 3 s, ... for a retransmit): $((overflows - overflows0))"
    say "  RSS: before $(mib "$before") MiB, peak $(mib "$lpeak"), 5 s after $(mib "$lafter5")"
    stop_daemon
fi

printf '\n== bench/edge.sh: %s%s (%s cores, load average at start %s, end %s, %s) ==\n' "$BIN" "${ALLOC:+ [$ALLOC]}" \
    "$(nproc)" "$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%TZ)"
printf '%s\n' "${SUMMARY[@]}"
