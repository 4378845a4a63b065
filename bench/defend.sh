#!/usr/bin/env bash
# bench/defend.sh — throughput, latency and memory of POST /v1/defend (or, with MODE=events, of
# POST /v1/events with JSON arrays of BATCH events).
#
# Builds the release binary, starts one Sentinel on a fresh temporary data dir on a free loopback
# port (--listen 127.0.0.1:0, the bound address read from DATA_DIR/api.addr), measures its idle RSS,
# drives /v1/defend with wrk (a mix of benign and attack telemetry from 203.0.113.0/24 and
# 198.51.100.0/24), samples RSS under load, runs a single-connection latency pass, prints a summary,
# stops the daemon with SIGTERM and checks that it exits 0. A 2xx means the records are committed, so
# the summary also shows the store's group-commit batch sizes (records per transaction), read from
# /metrics after the runs.
#
# Traffic goes to 127.0.0.1 only. Every wrk run is bounded in time.
#
# Knobs (environment):
#   THREADS=2 CONNS=32 DURATION=20s RUNS=3   the measured runs (median reported)
#   WARMUP=5s                                 warm-up run before them (not reported)
#   SINGLE_DURATION=10s                       the -t1 -c1 run
#   IDLE_SETTLE=5                             seconds to wait before reading idle RSS
#   LOG_LEVEL=warn                            the daemon's logging.level (notices are logged at warn)
#   MODE=defend|events                        which route is driven (default defend)
#   BATCH=50                                  events per POST /v1/events request (MODE=events)
#   SKIP_BUILD=1                              use the existing target/release/sentinel
#   BIN=path                                  the binary to run (implies nothing is built)
#   KEEP_TMP=1                                keep the temp dir (logs, wrk output) for inspection
#
# Exit status: 0 when every request answered 2xx, wrk saw no socket errors and the daemon exited 0;
# 1 otherwise (the summary says why).
set -euo pipefail

THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
DURATION=${DURATION:-20s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-5s}
SINGLE_DURATION=${SINGLE_DURATION:-10s}
IDLE_SETTLE=${IDLE_SETTLE:-5}
LOG_LEVEL=${LOG_LEVEL:-warn}
MODE=${MODE:-defend}
BATCH=${BATCH:-50}
case $MODE in defend | events) ;; *) echo "MODE must be defend or events, not $MODE" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[defend-bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- 1. tools and build
install_pkgs() {
    local missing=() p
    for p in "$@"; do command -v "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
    log "installing ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2; then
        log "install failed; running apt-get update and retrying"
        apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
    fi
    for p in "${missing[@]}"; do command -v "$p" >/dev/null 2>&1 || die "$p still missing after install"; done
}
install_pkgs wrk curl
command -v cargo >/dev/null 2>&1 || die "cargo not found"

TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR=${TARGET_DIR:-$ROOT/target}
if [ -n "${BIN:-}" ]; then
    SKIP_BUILD=1
fi
BIN=${BIN:-$TARGET_DIR/release/sentinel}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release -p sentinel"
    (cd "$ROOT" && cargo build --release -p sentinel) >&2
fi
[ -x "$BIN" ] || die "$BIN not found"

# ---------------------------------------------------------------- 2. start the daemon
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-defend-bench.XXXXXX")
DATA=$TMP/data
PID=
SAMPLER_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$SAMPLER_PID" ] && kill -0 "$SAMPLER_PID" 2>/dev/null; then
        kill "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
    fi
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        log "stopping sentinel (pid $PID)"
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The daemon runs from the temp dir with a clean Sentinel environment, so no sentinel.yml, .env or
# SENTINEL_* variable from the caller changes what is measured.
SENTINEL_ENV=(env -u SENTINEL_CONFIG -u SENTINEL_ALLOW_INSECURE_NO_AUTH -u SENTINEL_REDACT_KEYS)
while IFS='=' read -r name _; do
    case $name in SENTINEL_*) SENTINEL_ENV+=(-u "$name") ;; esac
done < <(env)
SENTINEL_ENV+=(SENTINEL__LOGGING__LEVEL="$LOG_LEVEL")

log "starting $BIN (data dir $DATA)"
: >"$TMP/none.env"   # an empty .env layer: nothing from the caller's ./.env (--env-file must exist)
(cd "$TMP" && exec "${SENTINEL_ENV[@]}" "$BIN" run --data-dir "$DATA" --listen 127.0.0.1:0 \
    --env-file "$TMP/none.env" >"$TMP/sentinel.out" 2>"$TMP/sentinel.err") &
PID=$!

ADDR=
for _ in $(seq 1 300); do
    kill -0 "$PID" 2>/dev/null || { cat "$TMP/sentinel.err" >&2; die "sentinel exited during start"; }
    if [ -s "$DATA/api.addr" ]; then
        ADDR=$(tr -d '[:space:]' <"$DATA/api.addr")
        [ -n "$ADDR" ] && curl -fsS -o /dev/null --max-time 2 "http://$ADDR/ready" 2>/dev/null && break
    fi
    sleep 0.1
done
[ -n "$ADDR" ] && curl -fsS -o /dev/null --max-time 2 "http://$ADDR/ready" || die "sentinel not ready after 30s"
case $ADDR in 127.0.0.1:*) ;; *) die "unexpected listen address $ADDR" ;; esac
[ -s "$DATA/admin.key" ] || die "no $DATA/admin.key"
KEY=$(tr -d '[:space:]' <"$DATA/admin.key")
if [ "$MODE" = events ]; then URL="http://$ADDR/v1/events"; else URL="http://$ADDR/v1/defend"; fi
log "ready on $ADDR (pid $PID), MODE=$MODE"

# A smoke request, so a broken setup fails loudly before any measurement.
SMOKE_BODY='{"src_ip":"203.0.113.7","failed_logins":40,"user_agent":"hydra","path":"/login"}'
[ "$MODE" = events ] && SMOKE_BODY="[$SMOKE_BODY]"
SMOKE=$(curl -sS --max-time 5 -o "$TMP/smoke.json" -w '%{http_code}' -X POST "$URL" \
    -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$SMOKE_BODY")
[ "$SMOKE" = 200 ] || { cat "$TMP/smoke.json" >&2; die "smoke request answered $SMOKE"; }

# ---------------------------------------------------------------- helpers
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }   # VmRSS / VmHWM in kB
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
proc_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }         # utime+stime
child_ticks() { sed 's/.*) //' "/proc/$$/stat" | awk '{ print $14 + $15 }'; }        # cutime+cstime (waited children: wrk)
cpu_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9 }' /proc/stat; }              # user+nice+system+steal
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

# Background RSS sampler: the largest VmRSS seen while it runs, written to $1.
start_sampler() {
    local out=$1
    (
        max=0
        while kill -0 "$PID" 2>/dev/null; do
            r=$(status_kb "$PID" VmRSS 2>/dev/null || echo 0)
            [ "${r:-0}" -gt "$max" ] && max=$r && echo "$max" >"$out"
            sleep 0.2
        done
    ) &
    SAMPLER_PID=$!
}
stop_sampler() {
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=
}

# ---------------------------------------------------------------- 3. idle RSS
sleep "$IDLE_SETTLE"
IDLE_RSS=$(status_kb "$PID" VmRSS)
IDLE_HWM=$(status_kb "$PID" VmHWM)
log "idle: VmRSS ${IDLE_RSS} kB, VmHWM ${IDLE_HWM} kB"

# ---------------------------------------------------------------- 4. the wrk script
LUA=$TMP/defend.lua
cat >"$LUA" <<'LUA'
-- POST /v1/defend with a pool of pre-built requests: half benign, half attack telemetry,
-- src_ip spread over 203.0.113.1-254 and 198.51.100.1-254. Counts every status class.
-- SENTINEL_BENCH_MODE=events: POST /v1/events, each body a JSON array of SENTINEL_BENCH_BATCH of them;
-- a 2xx whose report does not say "rejected":0 is counted as partial.
local key = os.getenv("SENTINEL_BENCH_KEY") or ""
local mode = os.getenv("SENTINEL_BENCH_MODE") or "defend"
local batch = tonumber(os.getenv("SENTINEL_BENCH_BATCH") or "50")
local templates = {
  -- benign
  '{"src_ip":"%s","kind":"http_request","path":"/index.html","user_agent":"Mozilla/5.0 (X11; Linux x86_64)","request_rate":12}',
  '{"src_ip":"%s","kind":"login","failed_logins":1,"user":"alice","path":"/login"}',
  '{"src_ip":"%s","kind":"http_request","path":"/api/v1/items?page=2","user_agent":"curl/8.5.0","bytes_out":5120}',
  '{"src_ip":"%s","kind":"connection","dst_port":443,"bytes_out":20480}',
  -- attack
  '{"src_ip":"%s","failed_logins":40,"user_agent":"hydra","path":"/login"}',
  '{"src_ip":"%s","kind":"http_request","path":"/search","query":"q=1\' or \'1\'=\'1","user_agent":"sqlmap/1.7"}',
  '{"src_ip":"%s","kind":"http_request","path":"/../../etc/passwd","request_rate":2400}',
  '{"src_ip":"%s","kind":"connection","dst_port":4444,"bytes_out":90000000}',
}
local nets = { "203.0.113.", "198.51.100." }
local pool = {}
local idx = 0
local threads = {}
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

function init(args)
  local headers = { ["X-API-Key"] = key, ["Content-Type"] = "application/json" }
  local n = 0
  local bodies = {}
  for host = 1, 254 do
    for net = 1, 2 do
      n = n + 1
      bodies[n] = string.format(templates[((host * 3 + net) % #templates) + 1], nets[net] .. host)
    end
  end
  if mode == "events" then
    for i = 1, n do
      local items = {}
      for j = 0, batch - 1 do items[#items + 1] = bodies[((i + j * 7) % n) + 1] end
      pool[i] = wrk.format("POST", "/v1/events", headers, "[" .. table.concat(items, ",") .. "]")
    end
  else
    for i = 1, n do pool[i] = wrk.format("POST", "/v1/defend", headers, bodies[i]) end
  end
  idx = ((tid or 1) * 97) % #pool        -- threads start at different places
  ok, s429, s4xx, s5xx, sother, alerted, partial = 0, 0, 0, 0, 0, 0, 0
end

function request()
  idx = (idx % #pool) + 1
  return pool[idx]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if body and string.find(body, '"alerted":true', 1, true) then alerted = alerted + 1 end
    if mode == "events" and not (body and string.find(body, '"rejected":0', 1, true)) then partial = partial + 1 end
  elseif status == 429 then s429 = s429 + 1
  elseif status >= 400 and status < 500 then s4xx = s4xx + 1
  elseif status >= 500 then s5xx = s5xx + 1
  else sother = sother + 1 end
end

function done(summary, latency, requests)
  local t = { ok = 0, s429 = 0, s4xx = 0, s5xx = 0, sother = 0, alerted = 0, partial = 0 }
  for _, th in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (tonumber(th:get(k)) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "ok=%d non2xx=%d s429=%d s4xx=%d s5xx=%d sother=%d alerted=%d partial=%d " ..
    "connect_err=%d read_err=%d write_err=%d timeout_err=%d status_err=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    t.ok, t.s429 + t.s4xx + t.s5xx + t.sother + t.partial, t.s429, t.s4xx, t.s5xx, t.sother, t.alerted,
    t.partial,
    e.connect, e.read, e.write, e.timeout, e.status))
end
LUA
export SENTINEL_BENCH_KEY=$KEY SENTINEL_BENCH_MODE=$MODE SENTINEL_BENCH_BATCH=$BATCH

field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" "$2" | tail -n1; }

# run_wrk NAME THREADS CONNS DURATION: runs wrk, leaves output in $TMP/NAME.txt, records CPU use.
CPU_OTHER_MAX=0
run_wrk() {
    local name=$1 t=$2 c=$3 d=$4 out=$TMP/$1.txt
    local s0 c0 w0 s1 c1 w1
    s0=$(proc_ticks "$PID"); c0=$(cpu_busy_ticks); w0=$(child_ticks)
    wrk -t"$t" -c"$c" -d"$d" --timeout 10s --latency -s "$LUA" "$URL" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk failed ($name)"; }
    s1=$(proc_ticks "$PID"); c1=$(cpu_busy_ticks); w1=$(child_ticks)
    grep -q '^BENCH ' "$out" || { cat "$out" >&2; die "no BENCH line from wrk ($name)"; }
    # CPU, in % of one core, over the run: sentinel, wrk, and everything else on the machine.
    local secs
    secs=$(awk -v u="$(field duration_us "$out")" 'BEGIN { print u / 1e6 }')
    awk -v s=$((s1 - s0)) -v w=$((w1 - w0)) -v b=$((c1 - c0)) -v hz="$HZ" -v secs="$secs" \
        'BEGIN { o = b - s - w; if (o < 0) o = 0;
                 printf "cpu_sentinel=%.0f cpu_wrk=%.0f cpu_other=%.0f\n", 100*s/hz/secs, 100*w/hz/secs, 100*o/hz/secs }' >>"$out"
}
cpu() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" "$2" | tail -n1; }

# ---------------------------------------------------------------- warm-up and measured runs
log "warm-up: wrk -t$THREADS -c$CONNS -d$WARMUP"
run_wrk warmup "$THREADS" "$CONNS" "$WARMUP"

start_sampler "$TMP/load-rss.max"
for i in $(seq 1 "$RUNS"); do
    log "run $i/$RUNS: wrk -t$THREADS -c$CONNS -d$DURATION --latency"
    run_wrk "run$i" "$THREADS" "$CONNS" "$DURATION"
    log "  $(grep -E '^Requests/sec' "$TMP/run$i.txt") $(grep -E '^ +50%' "$TMP/run$i.txt" | tr -s ' ') $(grep -E '^ +99%' "$TMP/run$i.txt" | tr -s ' ')"
done
stop_sampler
LOAD_HWM=$(status_kb "$PID" VmHWM)
LOAD_RSS_NOW=$(status_kb "$PID" VmRSS)
LOAD_RSS_MAX=$(cat "$TMP/load-rss.max" 2>/dev/null || echo 0)

log "single connection: wrk -t1 -c1 -d$SINGLE_DURATION --latency"
run_wrk single 1 1 "$SINGLE_DURATION"

FINAL_HWM=$(status_kb "$PID" VmHWM)
METRICS=$(curl -fsS --max-time 5 -H "X-API-Key: $KEY" "http://$ADDR/metrics" || true)
metric() { awk -v n="sentinel_$1" '$1 == n { print $2 }' <<<"$METRICS"; }

# Group commit: records per committed store transaction, from the writer's histogram (absent in
# builds that do not export it).
BATCH_COUNT=$(metric store_batch_records_count)
if [ -n "$BATCH_COUNT" ] && [ "$BATCH_COUNT" -gt 0 ]; then
    BATCH_SUM=$(metric store_batch_records_sum)
    BATCH_MAX=$(metric store_batch_records_max)
    BATCH_MEAN=$(awk -v s="$BATCH_SUM" -v c="$BATCH_COUNT" 'BEGIN { printf "%.1f", s / c }')
    # Percentiles as bucket upper bounds: the smallest `le` holding that share of transactions.
    BATCH_PCT=$(awk -v c="$BATCH_COUNT" '
        /^sentinel_store_batch_records_bucket\{le="[0-9]+"\}/ {
            le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
            if (!p50 && $2 >= 0.5 * c) p50 = le
            if (!p90 && $2 >= 0.9 * c) p90 = le
            if (!p99 && $2 >= 0.99 * c) p99 = le
        }
        END { printf "<=%s / <=%s / <=%s", p50 ? p50 : "?", p90 ? p90 : "?", p99 ? p99 : "?" }' <<<"$METRICS")
    BATCH_HIST=$(awk '
        /^sentinel_store_batch_records_bucket\{le="[0-9]+"\}/ {
            le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
            n = $2 - prev; prev = $2; if (n > 0) printf "%s<=%s:%d", sep, le, n; if (n > 0) sep = " "
        }' <<<"$METRICS")
    GROUP_COMMIT="$BATCH_COUNT transactions, $BATCH_SUM records, mean $BATCH_MEAN, max $BATCH_MAX"
else
    GROUP_COMMIT="n/a (this build does not export sentinel_store_batch_records)"
    BATCH_PCT=n/a
    BATCH_HIST=n/a
fi

# ---------------------------------------------------------------- 6. stop
log "SIGTERM to sentinel (pid $PID)"
kill -TERM "$PID"
for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID" 2>/dev/null || true
    EXIT_RC="killed (no exit within 30s of SIGTERM)"
    wait "$PID" 2>/dev/null || true
else
    EXIT_RC=0
    wait "$PID" || EXIT_RC=$?
fi
PID=

# ---------------------------------------------------------------- summary
PROBLEMS=()
sum_field() { local f=$1 total=0 v; shift; for v in "$@"; do total=$((total + $(field "$f" "$TMP/$v.txt"))); done; echo "$total"; }
ALL_RUNS=(warmup $(for i in $(seq 1 "$RUNS"); do echo "run$i"; done) single)
TOTAL_REQ=$(sum_field requests "${ALL_RUNS[@]}")
TOTAL_NON2XX=$(sum_field non2xx "${ALL_RUNS[@]}")
TOTAL_429=$(sum_field s429 "${ALL_RUNS[@]}")
TOTAL_SOCK=0
for f in connect_err read_err write_err timeout_err; do TOTAL_SOCK=$((TOTAL_SOCK + $(sum_field "$f" "${ALL_RUNS[@]}"))); done
TOTAL_PARTIAL=$(sum_field partial "${ALL_RUNS[@]}")
[ "$TOTAL_NON2XX" -eq 0 ] || PROBLEMS+=("$TOTAL_NON2XX non-2xx or partial responses ($TOTAL_429 of them 429 busy, $TOTAL_PARTIAL partial)")
[ "$TOTAL_SOCK" -eq 0 ] || PROBLEMS+=("$TOTAL_SOCK wrk socket errors (connect/read/write/timeout)")
[ "$EXIT_RC" = 0 ] || PROBLEMS+=("sentinel exit status after SIGTERM: $EXIT_RC")
# The LogNotifier writes one warn line ("evt":"notice") per alert: expected, counted, not a problem.
NOTICE_LINES=$(grep -c '"evt":"notice"' "$TMP/sentinel.out" || true)
grep -E '"lvl":"(warn|error)"' "$TMP/sentinel.out" | grep -v '"evt":"notice"' >"$TMP/sentinel.problems" || true
ERR_LINES=$(wc -l <"$TMP/sentinel.problems")
[ "$ERR_LINES" -eq 0 ] || PROBLEMS+=("$ERR_LINES warn/error lines in the daemon log (other than notices)")
# The first start prints the admin key and the audit log's verifier key (name+id+base64), nothing else.
STDERR_EXTRA=$(grep -vE '^(Sentinel created an admin API key|Sentinel created the audit log.s signing key|[[:space:]]*$|[[:space:]]+[A-Za-z0-9_.~-]+$|[[:space:]]+[A-Za-z0-9_./-]+\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+$)' "$TMP/sentinel.err" || true)
[ -z "$STDERR_EXTRA" ] || PROBLEMS+=("unexpected stderr from the daemon (below)")

RPS_MED=$(for i in $(seq 1 "$RUNS"); do field rps "$TMP/run$i.txt"; done | median)
P50_MED=$(for i in $(seq 1 "$RUNS"); do field p50_us "$TMP/run$i.txt"; done | median)
P99_MED=$(for i in $(seq 1 "$RUNS"); do field p99_us "$TMP/run$i.txt"; done | median)
OTHER_MAX=$(for r in "${ALL_RUNS[@]}"; do cpu cpu_other "$TMP/$r.txt"; done | sort -n | tail -n1)

{
echo
echo "=================== Sentinel /v1/$MODE benchmark ==================="
printf '%-22s %s\n' "binary" "$BIN ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
printf '%-22s %s\n' "machine" "$NCPU cores, $(uname -r), load avg $(cut -d' ' -f1-3 /proc/loadavg) (at end)"
printf '%-22s %s\n' "daemon" "listen $ADDR, logging.level=$LOG_LEVEL, defaults otherwise"
if [ "$MODE" = events ]; then
    printf '%-22s %s\n' "traffic" "POST /v1/events, $BATCH events per request from 8 bodies (4 benign / 4 attack), 508 src_ips"
else
    printf '%-22s %s\n' "traffic" "POST /v1/defend, 8 bodies (4 benign / 4 attack), 508 src_ips in 203.0.113.0/24 + 198.51.100.0/24"
fi
echo
printf '%-9s %-14s %10s %9s %9s %9s %9s %8s %7s %14s\n' run "wrk" "req/s" "p50 ms" "p90 ms" "p99 ms" "max ms" "requests" non2xx "cpu% s/wrk/oth"
for r in "${ALL_RUNS[@]}"; do
    f=$TMP/$r.txt
    case $r in single) args="-t1 -c1 -d$SINGLE_DURATION" ;; warmup) args="-t$THREADS -c$CONNS -d$WARMUP" ;; *) args="-t$THREADS -c$CONNS -d$DURATION" ;; esac
    printf '%-9s %-14s %10s %9s %9s %9s %9s %8s %7s %14s\n' "$r" "$args" \
        "$(field rps "$f")" "$(ms "$(field p50_us "$f")")" "$(ms "$(field p90_us "$f")")" \
        "$(ms "$(field p99_us "$f")")" "$(ms "$(field max_us "$f")")" "$(field requests "$f")" \
        "$(field non2xx "$f")" "$(cpu cpu_sentinel "$f")/$(cpu cpu_wrk "$f")/$(cpu cpu_other "$f")"
done
echo
printf '%-44s %s\n' "throughput, median of $RUNS (-t$THREADS -c$CONNS)" "$RPS_MED req/s"
if [ "$MODE" = events ]; then
    printf '%-44s %s\n' "events stored per second, median" "$(awk -v r="$RPS_MED" -v b="$BATCH" 'BEGIN { printf "%.0f", r * b }')"
fi
printf '%-44s %s\n' "latency p50 / p99, median of $RUNS" "$(ms "$P50_MED") ms / $(ms "$P99_MED") ms"
printf '%-44s %s\n' "latency p50 / p99, single connection" "$(ms "$(field p50_us "$TMP/single.txt")") ms / $(ms "$(field p99_us "$TMP/single.txt")") ms ($(field rps "$TMP/single.txt") req/s)"
printf '%-44s %s\n' "RSS idle (VmRSS / VmHWM)" "$(mib "$IDLE_RSS") MiB / $(mib "$IDLE_HWM") MiB"
printf '%-44s %s\n' "RSS under load (max sampled VmRSS / VmHWM)" "$(mib "$LOAD_RSS_MAX") MiB / $(mib "$LOAD_HWM") MiB"
printf '%-44s %s\n' "RSS after load (VmRSS), VmHWM at end" "$(mib "$LOAD_RSS_NOW") MiB, $(mib "$FINAL_HWM") MiB"
printf '%-44s %s\n' "requests sent (all runs) / non-2xx / 429" "$TOTAL_REQ / $TOTAL_NON2XX / $TOTAL_429"
printf '%-44s %s\n' "responses with an alert (all runs)" "$(sum_field alerted "${ALL_RUNS[@]}")"
printf '%-44s %s\n' "daemon counters: accepted/busy/timeouts" "$(metric events_accepted_total)/$(metric events_rejected_busy_total)/$(metric defend_timeouts_total)"
printf '%-44s %s\n' "daemon counters: store write errors" "$(metric store_write_errors_total)"
printf '%-44s %s\n' "group commit (records per transaction)" "$GROUP_COMMIT"
printf '%-44s %s\n' "group commit p50 / p90 / p99 (bucket bound)" "$BATCH_PCT"
printf '%-44s %s\n' "group commit histogram (records: count)" "$BATCH_HIST"
printf '%-44s %s\n' "daemon log lines: notices / other warn+error" "$NOTICE_LINES / $ERR_LINES"
printf '%-44s %s\n' "other processes' CPU, worst run" "${OTHER_MAX}% of one core"
printf '%-44s %s\n' "sentinel exit status after SIGTERM" "$EXIT_RC"
if [ "${OTHER_MAX:-0}" -gt 25 ]; then
    echo "NOTE: other processes used up to ${OTHER_MAX}% of a core during a run; the figures are likely skewed low."
fi
if [ ${#PROBLEMS[@]} -eq 0 ]; then
    echo "result                                       OK: every request answered 2xx, no socket errors, clean exit"
else
    echo "result                                       PROBLEMS:"
    for p in "${PROBLEMS[@]}"; do echo "  - $p"; done
    [ "$ERR_LINES" -eq 0 ] || sed -n '1,10s/^/    /p' "$TMP/sentinel.problems"
    [ -z "$STDERR_EXTRA" ] || head -n 10 <<<"$STDERR_EXTRA" | sed 's/^/    /'
fi
echo "====================================================================="
}

[ ${#PROBLEMS[@]} -eq 0 ] || exit 1
