#!/usr/bin/env bash
# bench/replay.sh — offline log replay: `sentinel replay` against CrowdSec's one-shot (time-machine)
# replay and `fail2ban-regex`, on the same generated sshd auth logs.
#
# What it does, in one run:
#   1. installs what is missing (fail2ban, crowdsec, time, jq) from Debian's packages when root;
#      CrowdSec's postinst tries to register with its Central API, which cannot be reached here, so a
#      non-empty online_api_credentials.yaml is laid first (and `dpkg --configure -a` finishes a half
#      install). No system service is started.
#   2. builds sentinel (release) and generates four logs:
#        mixed-200k     200,000 lines, 200 attackers, 2,000 benign sources
#        benign-200k    200,000 lines, benign only
#        mixed-1M     1,000,000 lines, 1,000 attackers, 10,000 benign sources
#        distinct-5M  5,000,000 failures, each from a different IPv6 source (memory)
#   3. measures wall time and peak RSS (/usr/bin/time -f '%e %M') of
#        sentinel replay     RUNS times pinned to core 0 (taskset -c 0) and RUNS times unpinned, median
#        fail2ban-regex      once per file (filter sshd)
#        crowdsec -dsn       once per file, against a private local API (a copy of the package's config
#                            with its database, data dir, logs, API and metrics ports under a temp dir),
#                            capped by CS_TIMEOUT; skipped on a file whose time, estimated from the
#                            rate on mixed-200k, is over CS_TIMEOUT
#   4. prints one table (tool, file, lines, wall, lines/s, peak RSS, alerts/matches) and the ratios
#      sentinel/crowdsec and sentinel/fail2ban for lines/s and RSS.
#   5. stock fail2ban filters through Sentinel's fail2ban loader vs fail2ban-regex, both pinned to core 0
#      (taskset -c 0), in lines per CPU-second (user + sys from /usr/bin/time):
#        /etc/fail2ban/filter.d/sshd.conf, mode normal and mode aggressive, on mixed-200k
#        /etc/fail2ban/filter.d/nginx-botsearch.conf on nginx-botsearch-200k (generated here: nginx access
#          lines with bot-search 404s and error-log `open() "…" failed (2: No such file or directory)` lines
#          for the same paths, mixed with benign requests and other error lines)
#      `sentinel replay --fail2ban-filter F [--mode M] --no-builtin` parses only (no scenarios), as
#      fail2ban-regex does; a filter Sentinel refuses is reported as such. Goal: >= 30x fail2ban-regex.
#
# Wall time is taken with a nanosecond clock around the /usr/bin/time call (its own %e has 10 ms steps,
# too coarse for sentinel on 200k lines); peak RSS is /usr/bin/time's %M. For CrowdSec the wall time
# includes its start-up (loading parsers and scenarios, connecting to the local API), which is printed
# separately from a run on a one-line file; its RSS is the agent's only (the local API is another
# process, whose peak is printed in the notes).
#
# Knobs (environment):
#   RUNS=3              sentinel runs per measurement (median reported)
#   CS_TIMEOUT=600      cap, in seconds, on one CrowdSec run (and the skip threshold)
#   F2B_TIMEOUT=900     cap, in seconds, on one fail2ban-regex run
#   SKIP_CROWDSEC=1     do not run CrowdSec;  SKIP_FAIL2BAN=1  do not run fail2ban-regex
#   ONLY_FILTERS=1      run only section 5 (the fail2ban filter rows) and the built-in sshd rows on mixed-200k
#   SKIP_BUILD=1        use the existing target/release/sentinel (or the binary named by SENTINEL=)
#   KEEP_TMP=1          keep the temp dir (logs, outputs, CrowdSec config) for inspection
#
# Only loopback is used (CrowdSec's local API and metrics on free 127.0.0.1 ports); every process
# started here is stopped by the exit trap.
set -euo pipefail

RUNS=${RUNS:-3}
CS_TIMEOUT=${CS_TIMEOUT:-600}
F2B_TIMEOUT=${F2B_TIMEOUT:-900}
SKIP_CROWDSEC=${SKIP_CROWDSEC:-0}
SKIP_FAIL2BAN=${SKIP_FAIL2BAN:-0}
ONLY_FILTERS=${ONLY_FILTERS:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SENTINEL=${SENTINEL:-$ROOT/target/release/sentinel}

log() { printf '[replay-bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-replay.XXXXXX")
BG_PIDS=()
cleanup() {
    local rc=$? p
    for p in "${BG_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${BG_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        log "temp dir kept: $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- 1. tools
have() { command -v "$1" >/dev/null 2>&1; }

install_pkgs() {
    local missing=()
    have fail2ban-regex || missing+=(fail2ban)
    { have crowdsec && have cscli; } || missing+=(crowdsec)
    [[ -x /usr/bin/time ]] || missing+=(time)
    have jq || missing+=(jq)
    have taskset || missing+=(util-linux)
    have curl || missing+=(curl)
    if ((${#missing[@]} == 0)) && ! dpkg --audit 2>/dev/null | grep -q crowdsec; then
        return 0
    fi
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]} and not root to install them"
    # CrowdSec's postinst registers with the Central API unless this file is already non-empty;
    # offline that registration fails and leaves the package half-configured.
    if [[ ! -s /etc/crowdsec/online_api_credentials.yaml ]]; then
        mkdir -p /etc/crowdsec
        echo '# no thanks' >/etc/crowdsec/online_api_credentials.yaml
    fi
    if ((${#missing[@]} > 0)); then
        log "installing: ${missing[*]}"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >"$TMP/apt.log" 2>&1; then
            log "apt-get install failed; running apt-get update and retrying"
            apt-get update >>"$TMP/apt.log" 2>&1 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >>"$TMP/apt.log" 2>&1 ||
                DEBIAN_FRONTEND=noninteractive dpkg --configure -a >>"$TMP/apt.log" 2>&1 ||
                { tail -20 "$TMP/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
        fi
    fi
    # A half-configured crowdsec (from an earlier failed install) is finished here.
    if dpkg --audit 2>/dev/null | grep -q crowdsec; then
        DEBIAN_FRONTEND=noninteractive dpkg --configure -a >>"$TMP/apt.log" 2>&1 ||
            { tail -20 "$TMP/apt.log" >&2; die "dpkg --configure -a failed"; }
    fi
}
install_pkgs
for t in fail2ban-regex crowdsec cscli jq taskset curl; do have "$t" || die "$t not found"; done
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null && return
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
}

# ---------------------------------------------------------------- 2. build and logs
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building sentinel (release)"
    (cd "$ROOT" && cargo build --release -p sentinel) >"$TMP/build.log" 2>&1 ||
        { tail -30 "$TMP/build.log" >&2; die "cargo build --release -p sentinel failed"; }
fi
[[ -x $SENTINEL ]] || die "$SENTINEL not built"

FILES=(mixed-200k benign-200k mixed-1M distinct-5M)
if [[ $ONLY_FILTERS == 1 ]]; then
    FILES=(mixed-200k)
    SKIP_CROWDSEC=1 SKIP_FAIL2BAN=1
fi
declare -A LINES
log "generating logs"
"$SENTINEL" gen-logs sshd --lines 200000 --attackers 200 --benign 2000 --seed 1 >"$TMP/mixed-200k.log"
if [[ $ONLY_FILTERS != 1 ]]; then
    "$SENTINEL" gen-logs sshd --lines 200000 --attackers 0 --benign 2000 --seed 2 >"$TMP/benign-200k.log"
    "$SENTINEL" gen-logs sshd --lines 1000000 --attackers 1000 --benign 10000 --seed 3 >"$TMP/mixed-1M.log"
    "$SENTINEL" gen-logs sshd-distinct --lines 5000000 >"$TMP/distinct-5M.log"
fi

# gen_nginx_botsearch LINES SEED: an nginx log (access and error lines interleaved, as when both go to one
# file) where 1 line in 5 is a bot looking for admin, webmail or WordPress paths: 3 in 5 of those are 404
# access lines, 2 in 5 the error log's "open() ... failed (2: No such file or directory)"; the rest are
# benign requests (200/304/404 on ordinary paths) and other error lines.
gen_nginx_botsearch() {
    python3 - "$1" "$2" <<'PY'
import random, sys, time
n, seed = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(seed)
bad = ["wp-login.php", "wp-admin.php", "wp-signup.php", "phpmyadmin/index.php", "phpMyAdmin/", "pma/",
       "admin/pma/", "xampp/phpmyadmin/", "roundcube/", "webmail/", "v-webmail/", "horde/", "extmail/",
       "cgi-bin/test.cgi", "mysqladmin/"]
good = ["", "index.html", "about/", "blog/2024/01/hello-world", "static/app.js", "static/style.css",
        "images/logo.png", "api/v1/items?page=2", "contact", "favicon.ico", "robots.txt", "feed.xml"]
agents = ["Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/119.0 Safari/537.36",
          "curl/8.4.0", "Googlebot/2.1 (+http://www.google.com/bot.html)"]
bots = ["198.51.100.%d" % i for i in range(1, 201)]
users = ["10.%d.%d.%d" % (i // 65536 % 256, i // 256 % 256, i % 256 + 1) for i in range(2000)]
t = 1732867200  # 2024-11-29 08:00:00 UTC
out = sys.stdout
for i in range(n):
    if i % 5 == 0:
        t += 1
    tm = time.gmtime(t)
    clf = time.strftime("%d/%b/%Y:%H:%M:%S +0000", tm)
    err = time.strftime("%Y/%m/%d %H:%M:%S", tm)
    r = rnd.random()
    if r < 0.12:
        ip, path = rnd.choice(bots), rnd.choice(bad)
        out.write('%s - - [%s] "GET /%s HTTP/1.1" 404 153 "-" "%s"\n' % (ip, clf, path, rnd.choice(agents)))
    elif r < 0.20:
        ip, path = rnd.choice(bots), rnd.choice(bad)
        out.write('%s [error] 1234#1234: *%d open() "/var/www/html/%s" failed (2: No such file or directory), '
                  'client: %s, server: example.org, request: "GET /%s HTTP/1.1", host: "example.org"\n'
                  % (err, i, path, ip, path))
    elif r < 0.95:
        ip, path = rnd.choice(users), rnd.choice(good)
        status = rnd.choice([200, 200, 200, 200, 304, 404])
        out.write('%s - - [%s] "GET /%s HTTP/1.1" %d %d "https://example.org/" "%s"\n'
                  % (ip, clf, path, status, rnd.randint(100, 90000), rnd.choice(agents)))
    else:
        ip = rnd.choice(users)
        out.write('%s [warn] 1234#1234: *%d an upstream response is buffered to a temporary file '
                  '/var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream, client: %s, '
                  'server: example.org, request: "GET /api/v1/items HTTP/1.1", host: "example.org"\n' % (err, i, ip))
PY
}
gen_nginx_botsearch 200000 4 >"$TMP/nginx-botsearch-200k.log"
LINES[nginx-botsearch-200k]=$(wc -l <"$TMP/nginx-botsearch-200k.log")
for f in "${FILES[@]}"; do
    LINES[$f]=$(wc -l <"$TMP/$f.log")
    log "  $f: ${LINES[$f]} lines, $(du -m "$TMP/$f.log" | cut -f1) MiB"
done

# Results: R_<field>[tool|file]
declare -A R_WALL R_RATE R_RSS R_ALERTS R_OWN R_NOTE
NOTES=()

now_ns() { date +%s%N; }
# measure OUT_PREFIX cmd... : runs cmd with stdout to PREFIX.out, stderr to PREFIX.err; sets M_WALL
# (seconds, ns clock), M_RSS (KiB), M_CPU (user + sys seconds), M_RC.
measure() {
    local prefix=$1; shift
    local t0 t1
    t0=$(now_ns)
    set +e
    /usr/bin/time -f '%e %M %U %S' -o "$prefix.time" "$@" >"$prefix.out" 2>"$prefix.err"
    M_RC=$?
    set -e
    t1=$(now_ns)
    M_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    M_RSS=$(awk 'END { print $2 }' "$prefix.time")
    M_CPU=$(awk 'END { printf "%.2f", $3 + $4 }' "$prefix.time")
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "-" }'; }

# ---------------------------------------------------------------- 3a. sentinel
for f in "${FILES[@]}"; do
    for mode in pinned unpinned; do
        walls=() rsss=() owns=()
        for ((i = 1; i <= RUNS; i++)); do
            prefix=$TMP/sentinel-$mode-$f-$i
            if [[ $mode == pinned ]]; then
                measure "$prefix" taskset -c 0 "$SENTINEL" replay --format sshd --json "$TMP/$f.log"
            else
                measure "$prefix" "$SENTINEL" replay --format sshd --json "$TMP/$f.log"
            fi
            ((M_RC == 0)) || { cat "$prefix.err" >&2; die "sentinel replay failed on $f (exit $M_RC)"; }
            walls+=("$M_WALL") rsss+=("$M_RSS")
            owns+=("$(jq -r '.lines_per_sec' "$prefix.out")")
        done
        key="sentinel ($mode)|$f"
        R_WALL[$key]=$(printf '%s\n' "${walls[@]}" | median)
        R_RSS[$key]=$(printf '%s\n' "${rsss[@]}" | median)
        R_OWN[$key]=$(printf '%s\n' "${owns[@]}" | median)
        R_RATE[$key]=$(rate "${LINES[$f]}" "${R_WALL[$key]}")
        R_ALERTS[$key]=$(jq -r '[(.alerts_by_scenario // {}) | if type == "object" then .[] else .[] | (.count // .alerts // 0) end] | add // 0' "$prefix.out")
        R_NOTE[$key]=$(jq -r '"parsed \(.parsed), live_keys \(.live_keys // "-"), expired_keys \(.expired_keys // "-"), evicted_keys \(.evicted_keys // "-"), by scenario \(.alerts_by_scenario | tojson)"' "$prefix.out")
        log "  $key: wall ${R_WALL[$key]} s, ${R_RATE[$key]} lines/s (own ${R_OWN[$key]}), RSS ${R_RSS[$key]} KiB"
    done
done

# ---------------------------------------------------------------- 3b. fail2ban-regex
if [[ $SKIP_FAIL2BAN != 1 ]]; then
    for f in "${FILES[@]}"; do
        key="fail2ban-regex|$f"
        prefix=$TMP/f2b-$f
        log "fail2ban-regex on $f"
        measure "$prefix" timeout "$F2B_TIMEOUT" fail2ban-regex -r --print-no-missed --print-no-ignored "$TMP/$f.log" sshd
        if ((M_RC == 124)); then
            R_NOTE[$key]="timed out after $F2B_TIMEOUT s"
            R_WALL[$key]=$M_WALL R_RSS[$key]=$M_RSS R_RATE[$key]="-" R_ALERTS[$key]="-"
            continue
        fi
        ((M_RC == 0)) || { tail -5 "$prefix.err" >&2; die "fail2ban-regex failed on $f (exit $M_RC)"; }
        # "Lines: 200000 lines, 95134 ignored, 6949 matched, 97917 missed"
        summary=$(grep -m1 '^Lines:' "$prefix.out")
        R_WALL[$key]=$M_WALL R_RSS[$key]=$M_RSS
        R_RATE[$key]=$(rate "${LINES[$f]}" "$M_WALL")
        R_ALERTS[$key]=$(sed -E 's/.* ([0-9]+) matched.*/\1/' <<<"$summary")
        R_NOTE[$key]="${summary#Lines: } (matched = failure lines; fail2ban-regex applies no maxretry, so no ban count)"
    done
fi

# ---------------------------------------------------------------- 3c. CrowdSec
CS=$TMP/crowdsec
CFG=$CS/etc/config.yaml
LAPI_PID=
cs_setup() {
    local api_port prom_port hub
    mkdir -p "$CS/data" "$CS/log"
    cp -a /etc/crowdsec "$CS/etc"
    cp -a /var/lib/crowdsec/data/. "$CS/data/"
    rm -f "$CS"/data/crowdsec.db*
    api_port=$(free_port)
    prom_port=$(free_port)
    while [[ $prom_port == "$api_port" ]]; do prom_port=$(free_port); done
    hub=$(awk '/^ *hub_dir:/ { print $2 }' /etc/crowdsec/config.yaml)
    hub=${hub%/}
    # Every /etc/crowdsec and /var/lib/crowdsec/data path, the log dir, the API and the metrics
    # listeners move to the private copy; the hub (read-only here) stays shared.
    sed -E \
        -e "s#/etc/crowdsec/?#$CS/etc/#g" \
        -e "s#/var/lib/crowdsec/data/?#$CS/data/#g" \
        -e "s#^( *log_dir:).*#\1 $CS/log/#" \
        -e "s#^( *daemonize:).*#\1 false#" \
        -e "s#^( *listen_uri:).*#\1 127.0.0.1:$api_port#" \
        -e "s#^( *listen_port:).*#\1 $prom_port#" \
        -e "s#^( *listen_addr:).*#\1 127.0.0.1#" \
        /etc/crowdsec/config.yaml >"$CFG"
    # cscli asks the network for the hub branch unless the config names one (fatal offline).
    grep -q '^ *hub_branch:' "$CFG" || sed -i -E 's/^cscli:.*/cscli:\n  hub_branch: master/' "$CFG"
    if [[ -f /etc/crowdsec/config.yaml.local ]]; then
        sed -E -e "s#/etc/crowdsec/?#$CS/etc/#g" -e "s#/var/lib/crowdsec/data/?#$CS/data/#g" \
            /etc/crowdsec/config.yaml.local >"$CFG.local"
    fi
    # The metrics endpoint is needed to read progress when a run is capped.
    awk '/^prometheus:/ { p = 1 } p && /^ *enabled:/ { sub(/false/, "true"); p = 0 } { print }' "$CFG" >"$CFG.tmp" && mv "$CFG.tmp" "$CFG"
    grep -q '/etc/crowdsec\|/var/lib/crowdsec/data' "$CFG" && die "private CrowdSec config still points at the system install"
    echo '# no thanks' >"$CS/etc/online_api_credentials.yaml"
    : >"$CS/etc/local_api_credentials.yaml"
    # Make sure the sshd collection and what it needs are enabled (the package symlinks them into
    # /etc/crowdsec on first install; re-link from the offline hub if they are not there).
    local item dest
    for item in collections/crowdsecurity/linux.yaml collections/crowdsecurity/sshd.yaml \
        parsers/s00-raw/crowdsecurity/syslog-logs.yaml parsers/s01-parse/crowdsecurity/sshd-logs.yaml \
        parsers/s02-enrich/crowdsecurity/dateparse-enrich.yaml \
        scenarios/crowdsecurity/ssh-bf.yaml scenarios/crowdsecurity/ssh-slow-bf.yaml; do
        [[ -f $hub/$item ]] || die "CrowdSec hub snapshot lacks $item"
        dest=$CS/etc/$(sed -E 's#^(collections|scenarios)/[^/]+/#\1/#; s#^parsers/([^/]+)/[^/]+/#parsers/\1/#' <<<"$item")
        if [[ ! -e $dest ]]; then
            mkdir -p "$(dirname "$dest")"
            ln -s "$hub/$item" "$dest"
            NOTES+=("CrowdSec: enabled $item in the private config (was not enabled)")
        fi
    done
    cscli -c "$CFG" collections list -o json >"$CS/collections.json" 2>"$CS/cscli.err" ||
        { cat "$CS/cscli.err" >&2; die "cscli collections list failed"; }
    for item in crowdsecurity/sshd crowdsecurity/linux; do
        [[ $(jq -r --arg n "$item" '.collections[] | select(.name == $n) | .status' "$CS/collections.json") == *enabled* ]] ||
            die "CrowdSec collection $item is not enabled in the private config"
    done
    # Register this machine with the private local API (writes local_api_credentials.yaml).
    cscli -c "$CFG" machines add --auto --force >"$CS/log/machines-add.log" 2>&1 ||
        { cat "$CS/log/machines-add.log" >&2; die "cscli machines add failed"; }
    # The local API runs from its own copy of the config whose metrics listener is off, so that the
    # agent's metrics port stays free for the agent.
    awk '/^prometheus:/ { p = 1 } p && /^ *enabled:/ { sub(/true/, "false"); p = 0 } { print }' "$CFG" >"$CS/etc/lapi.yaml"
    [[ ! -f $CFG.local ]] || cp "$CFG.local" "$CS/etc/lapi.yaml.local"
    crowdsec -c "$CS/etc/lapi.yaml" -no-cs -no-capi >"$CS/log/lapi.out" 2>&1 &
    LAPI_PID=$!
    BG_PIDS+=("$LAPI_PID")
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$api_port/health" 2>/dev/null && break
        # /health exists from 1.5 on; before that any HTTP answer on the port will do.
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api_port/v1/decisions" 2>/dev/null || true) != 000 ]] && break
        kill -0 "$LAPI_PID" 2>/dev/null || { cat "$CS/log/lapi.out" "$CS/log/crowdsec_api.log" >&2 2>/dev/null; die "CrowdSec local API exited"; }
        sleep 0.2
    done
    ((i < 100)) || die "CrowdSec local API did not come up on 127.0.0.1:$api_port"
    CS_PROM=http://127.0.0.1:$prom_port/metrics
    log "CrowdSec: private config $CFG, local API 127.0.0.1:$api_port (pid $LAPI_PID), metrics :$prom_port"
    log "CrowdSec: enabled collections: $(jq -r '[.collections[] | select(.status | test("enabled")) | .name] | join(", ")' "$CS/collections.json")"
}

# cs_run NAME FILE : one time-machine replay; sets CS_WALL CS_RSS CS_RC CS_PROCESSED CS_ALERTS CS_BYSC
cs_run() {
    local name=$1 file=$2 prefix=$TMP/cs-$1 poll_pid
    cscli -c "$CFG" alerts delete --all >/dev/null 2>&1 || true
    # Progress poller: lines the parsers have taken, from the agent's metrics, every second.
    (
        while :; do
            v=$(curl -s --max-time 1 "$CS_PROM" 2>/dev/null |
                awk '/^cs_parser_hits_total/ { s += $2 } END { if (NR) printf "%d", s }') || true
            [[ -n ${v:-} ]] && echo "$v" >"$prefix.progress"
            sleep 1
        done
    ) &
    poll_pid=$!
    BG_PIDS+=("$poll_pid")
    measure "$prefix" timeout "$CS_TIMEOUT" crowdsec -c "$CFG" -dsn "file://$file" -type syslog -no-api
    kill "$poll_pid" 2>/dev/null || true
    wait "$poll_pid" 2>/dev/null || true
    CS_WALL=$M_WALL CS_RSS=$M_RSS CS_RC=$M_RC
    CS_PROCESSED=$(cat "$prefix.progress" 2>/dev/null || echo "")
    cscli -c "$CFG" alerts list -o json -l 0 >"$prefix.alerts.json" 2>/dev/null || echo '[]' >"$prefix.alerts.json"
    CS_ALERTS=$(jq 'length' "$prefix.alerts.json")
    CS_BYSC=$(jq -c '(. // []) | group_by(.scenario) | map({(.[0].scenario): length}) | add // {}' "$prefix.alerts.json")
}

if [[ $SKIP_CROWDSEC != 1 ]]; then
    cs_setup
    printf 'Mar  1 00:00:00 srv sshd[1]: Accepted publickey for u0 from 192.0.2.1 port 1 ssh2\n' >"$TMP/one.log"
    cs_run startup "$TMP/one.log"
    CS_STARTUP=$CS_WALL
    NOTES+=("CrowdSec start-up + shutdown on a one-line file: $CS_STARTUP s, RSS $((CS_RSS / 1024)) MiB (included in its wall times below)")
    cs_rate=
    for f in "${FILES[@]}"; do
        key="crowdsec|$f"
        if [[ -n $cs_rate ]]; then
            est=$(awk -v n="${LINES[$f]}" -v r="$cs_rate" -v s="$CS_STARTUP" 'BEGIN { printf "%.0f", n / r + s }')
            if ((est > CS_TIMEOUT)); then
                log "CrowdSec on $f: skipped (estimated ${est} s > CS_TIMEOUT=$CS_TIMEOUT s)"
                R_NOTE[$key]="skipped: estimated ${est} s at its mixed-200k rate, over the ${CS_TIMEOUT} s cap"
                continue
            fi
        fi
        log "CrowdSec on $f"
        cs_run "$f" "$TMP/$f.log"
        R_RSS[$key]=$CS_RSS R_WALL[$key]=$CS_WALL R_ALERTS[$key]=$CS_ALERTS
        if ((CS_RC == 124)); then
            if [[ -n $CS_PROCESSED ]]; then
                R_RATE[$key]=$(rate "$CS_PROCESSED" "$CS_WALL")
                R_NOTE[$key]="timed out after $CS_TIMEOUT s having parsed $CS_PROCESSED of ${LINES[$f]} lines; lines/s from those"
            else
                R_RATE[$key]="-"
                R_NOTE[$key]="timed out after $CS_TIMEOUT s"
            fi
        elif ((CS_RC == 0)); then
            R_RATE[$key]=$(rate "${LINES[$f]}" "$CS_WALL")
            R_NOTE[$key]="alerts by scenario $CS_BYSC; parser lines seen ${CS_PROCESSED:-?}"
            [[ -n $cs_rate ]] || cs_rate=$(awk -v n="${LINES[$f]}" -v s="$CS_WALL" -v b="$CS_STARTUP" 'BEGIN { printf "%.0f", n / ((s - b) > 0.1 ? (s - b) : s) }')
        else
            tail -5 "$TMP/cs-$f.err" >&2
            R_RATE[$key]="-"
            R_NOTE[$key]="crowdsec exited $CS_RC"
        fi
    done
    NOTES+=("CrowdSec local API (separate process, not in the RSS column) peak RSS: $(awk '/VmHWM/ { printf "%d MiB", $2 / 1024 }' "/proc/$LAPI_PID/status" 2>/dev/null || echo '?')")
fi

# ---------------------------------------------------------------- 3d. fail2ban filters, one core, CPU time
# Rows: filter|mode|file. Results in F_<field>[tool|row].
F_ROWS=("sshd|normal|mixed-200k" "sshd|aggressive|mixed-200k" "nginx-botsearch||nginx-botsearch-200k")
declare -A F_CPU F_RATE F_MATCH F_NOTE
for row in "${F_ROWS[@]}"; do
    IFS='|' read -r flt fmode ffile <<<"$row"
    conf=/etc/fail2ban/filter.d/$flt.conf
    [[ -f $conf ]] || die "$conf not found (Debian's fail2ban package)"
    n=${LINES[$ffile]}
    mode_args=()
    [[ -n $fmode ]] && mode_args=(--mode "$fmode")
    cpus=() matched=
    for ((i = 1; i <= RUNS; i++)); do
        prefix=$TMP/f2bload-$flt-${fmode:-default}-$i
        measure "$prefix" taskset -c 0 "$SENTINEL" replay --fail2ban-filter "$conf" "${mode_args[@]}" --no-builtin --json "$TMP/$ffile.log"
        if ((M_RC != 0)); then
            F_NOTE["sentinel|$row"]="refused or failed (exit $M_RC): $(grep -m1 -i 'error' "$prefix.err" | cut -c1-160)"
            cpus=()
            break
        fi
        cpus+=("$M_CPU")
        matched=$(jq -r '.parsed' "$prefix.out")
    done
    if ((${#cpus[@]} > 0)); then
        F_CPU["sentinel|$row"]=$(printf '%s\n' "${cpus[@]}" | median)
        F_RATE["sentinel|$row"]=$(rate "$n" "${F_CPU["sentinel|$row"]}")
        F_MATCH["sentinel|$row"]=$matched
        F_NOTE["sentinel|$row"]="median of $RUNS; unparsed $(jq -c '.unparsed' "$prefix.out")"
    fi
    log "  sentinel $flt ${fmode:-(default mode)} on $ffile: cpu ${F_CPU["sentinel|$row"]:-?} s, ${F_RATE["sentinel|$row"]:-?} lines/cpu-s"
    if [[ ${SKIP_FAIL2BAN_FILTERS:-0} != 1 ]]; then
        spec=$conf
        [[ -n $fmode ]] && spec="$conf[mode=$fmode]"
        prefix=$TMP/f2bregex-$flt-${fmode:-default}
        log "fail2ban-regex $flt ${fmode:-(default mode)} on $ffile (one core)"
        measure "$prefix" timeout "$F2B_TIMEOUT" taskset -c 0 fail2ban-regex -r --print-no-missed --print-no-ignored "$TMP/$ffile.log" "$spec"
        if ((M_RC == 0)); then
            summary=$(grep -m1 '^Lines:' "$prefix.out")
            F_CPU["fail2ban-regex|$row"]=$M_CPU
            F_RATE["fail2ban-regex|$row"]=$(rate "$n" "$M_CPU")
            F_MATCH["fail2ban-regex|$row"]=$(sed -E 's/.* ([0-9]+) matched.*/\1/' <<<"$summary")
            F_NOTE["fail2ban-regex|$row"]="${summary#Lines: }"
        else
            F_NOTE["fail2ban-regex|$row"]="exit $M_RC$( ((M_RC == 124)) && echo " (timed out after $F2B_TIMEOUT s)" || true)"
        fi
        log "  fail2ban-regex: cpu ${F_CPU["fail2ban-regex|$row"]:-?} s, ${F_RATE["fail2ban-regex|$row"]:-?} lines/cpu-s"
    fi
done

# ---------------------------------------------------------------- 4. report
mib() { [[ $1 =~ ^[0-9]+$ ]] && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' || echo "-"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.3gx", a / b; else print "-" }'; }

TOOLS=("sentinel (pinned)" "sentinel (unpinned)" "fail2ban-regex" "crowdsec")
echo
echo "Replay benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, sentinel $("$SENTINEL" --version 2>/dev/null | awk '{ print $NF }'), $(fail2ban-regex --version 2>/dev/null | head -1), crowdsec $(crowdsec -version 2>&1 | grep -o -m1 'version: .*' | cut -d' ' -f2)"
echo "sentinel: median of $RUNS runs (pinned = taskset -c 0); fail2ban-regex and crowdsec: one run each"
echo
fmt='%-20s %-12s %9s %9s %11s %9s %9s %s\n'
printf "$fmt" tool file lines "wall s" "lines/s" "RSS MiB" "alerts" "notes"
printf "$fmt" -------------------- ------------ --------- --------- ----------- --------- --------- -----
for f in "${FILES[@]}"; do
    for t in "${TOOLS[@]}"; do
        key="$t|$f"
        [[ -n ${R_WALL[$key]:-} || -n ${R_NOTE[$key]:-} ]] || continue
        note=${R_NOTE[$key]:-}
        [[ $t == sentinel* ]] && note="own lines_per_sec ${R_OWN[$key]}; $note"
        if [[ -z ${R_WALL[$key]:-} ]]; then
            printf "$fmt" "$t" "$f" "${LINES[$f]}" - - - - "$note"
        else
            printf "$fmt" "$t" "$f" "${LINES[$f]}" "${R_WALL[$key]}" "${R_RATE[$key]}" "$(mib "${R_RSS[$key]}")" "${R_ALERTS[$key]}" "$note"
        fi
    done
done
echo
echo "alerts: sentinel = sum of alerts_by_scenario; crowdsec = alerts in its local API after the run;"
echo "        fail2ban-regex = matched (failure) lines — it counts matches, it does not ban."
echo
fmt2='%-20s %-12s %18s %18s %18s %18s\n'
printf "$fmt2" sentinel file "lines/s vs cs" "RSS vs cs" "lines/s vs f2b" "RSS vs f2b"
printf "$fmt2" -------------------- ------------ ------------------ ------------------ ------------------ ------------------
for f in "${FILES[@]}"; do
    for t in "sentinel (pinned)" "sentinel (unpinned)"; do
        k="$t|$f"
        printf "$fmt2" "${t#sentinel }" "$f" \
            "$(ratio "${R_RATE[$k]:-}" "${R_RATE[crowdsec|$f]:-}")" "$(ratio "${R_RSS[$k]:-}" "${R_RSS[crowdsec|$f]:-}")" \
            "$(ratio "${R_RATE[$k]:-}" "${R_RATE[fail2ban-regex|$f]:-}")" "$(ratio "${R_RSS[$k]:-}" "${R_RSS[fail2ban-regex|$f]:-}")"
    done
done
echo "(ratios are sentinel / other: lines/s above 1x = sentinel faster; RSS below 1x = sentinel smaller)"
if ((${#NOTES[@]} > 0)); then
    echo
    printf 'note: %s\n' "${NOTES[@]}"
fi

echo
echo "Stock fail2ban filters, one core (taskset -c 0), lines per CPU-second (user + sys)"
fmt3='%-16s %-11s %-21s %-15s %9s %8s %12s %9s %s\n'
printf "$fmt3" filter mode file tool lines "cpu s" "lines/cpu-s" matched notes
printf "$fmt3" ---------------- ----------- --------------------- --------------- --------- -------- ------------ --------- -----
for row in "${F_ROWS[@]}"; do
    IFS='|' read -r flt fmode ffile <<<"$row"
    for t in sentinel fail2ban-regex; do
        k="$t|$row"
        printf "$fmt3" "$flt" "${fmode:-default}" "$ffile" "$t" "${LINES[$ffile]}" "${F_CPU[$k]:--}" "${F_RATE[$k]:--}" "${F_MATCH[$k]:--}" "${F_NOTE[$k]:-}"
    done
    printf "%-16s %-11s %-21s ratio sentinel/fail2ban-regex (lines per CPU-second): %s (goal >= 30x)\n" "$flt" "${fmode:-default}" "$ffile" \
        "$(ratio "${F_RATE[sentinel|$row]:-}" "${F_RATE[fail2ban-regex|$row]:-}")"
done
echo "(matched: sentinel = lines the filter parsed as failures; fail2ban-regex = its matched lines)"
