#!/usr/bin/env bash
# bench/npm.sh - larder's npm registry cache vs verdaccio as a caching proxy (uplink) of the same upstream, measured
# alternately (bench/lib.sh):
#   cold (each run restarts the server on an empty data dir / fresh verdaccio storage):
#     1. GET of a ~30 MB packument, full form (Accept: application/json, what npm 11 sends): time, and time to the
#        first byte from the same runs
#     2. the same in the abbreviated form (Accept: application/vnd.npm.install-v1+json, what yarn 1 and pnpm send)
#     3. peak RSS while three different cold ~30 MB packuments are fetched at once, and RSS a moment after
#   warm:
#     4. `npm ci` of the test app (13 packages), empty npm cache
#     5. wrk: a small abbreviated packument, a ~55 KB full one, and the small one while two clients pull the 30 MB
#        document in a loop (does it hold up others?)
#     6. warm GET of the 30 MB packument (full form)
# See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN           daemon binary (default: <repo>/build/larder)
#   BENCH_RUNS           runs per side (bench/lib.sh, default 5)
#   BENCH_DURATION       wrk duration per run (default 5s)
#   BENCH_C              wrk connections (default 32)
#   BENCH_THREADS        wrk threads (default 2)
#   BENCH_HUGE_VERSIONS  versions in the huge packuments (default 3200, about 30 MB)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"
# shellcheck source=../tests/integration/npm_fixture.sh
. "$BENCH_DIR/../tests/integration/npm_fixture.sh"

DUR=${BENCH_DURATION:-5s}
CONN=${BENCH_C:-32}
WRK_T=${BENCH_THREADS:-2}
HUGE_N=${BENCH_HUGE_VERSIONS:-3200}
command -v wrk >/dev/null || fail "wrk not installed (apt-get install wrk)"
[ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first)"
A='application/vnd.npm.install-v1+json'

# ---- upstream: verdaccio with the test packages and three huge packuments ------------------------------------------
UP_PORT=$(free_port)
FX=$WORK/fx
UPD=$WORK/upstream
make_npm_packages "$FX"
start_verdaccio "$UPD" "$UP_PORT"
publish_npm_packages "$FX" "$VERDACCIO_URL"
make_npm_lockfile "$FX" "$VERDACCIO_URL"
U=$VERDACCIO_URL
for h in huge-pkg huge-pkg2 huge-pkg3; do
    mkdir -p "$UPD/storage/$h"
    "$PY" "$BENCH_DIR/make_huge_packument.py" "$h" "$HUGE_N" "$U" "$UPD/storage/$h/package.json"
done
huge_bytes=$(curl -sS -o /dev/null -w '%{size_download}' "$U/huge-pkg")
[ "$huge_bytes" -gt 1000000 ] || fail "the upstream does not serve huge-pkg"

# ---- the two servers, (re)started from empty storage -----------------------------------------------------------------
# The measuring functions run in subshells (bench_pair reads their stdout), so the servers they start are known by
# pid files, and stopped by them here and at exit.
VX_PIDF=$WORK/verdaccio-proxy.pid
LA_PIDF=$WORK/larder.pid
srv_stop() { # srv_stop PIDFILE
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    rm -f "$1"
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
bench_npm_stop() {
    srv_stop "$VX_PIDF"
    srv_stop "$LA_PIDF"
}
at_cleanup bench_npm_stop

VX_PORT=$(free_port)
VXURL=http://127.0.0.1:$VX_PORT
vx_fresh() { # a verdaccio caching proxy of the upstream, empty storage
    srv_stop "$VX_PIDF"
    local d=$WORK/verdaccio-proxy
    rm -rf "$d"
    mkdir -p "$d/storage" "$d/logs"
    cat >"$d/config.yaml" <<EOF
storage: $d/storage
listen:
  - 127.0.0.1:$VX_PORT
uplinks:
  up:
    url: $U/
    cache: true
    maxage: 10m
    timeout: 60s
auth:
  htpasswd:
    file: $d/htpasswd
    max_users: -1
packages:
  '@*/*':
    access: \$all
    proxy: up
  '**':
    access: \$all
    proxy: up
web:
  enable: false
server:
  keepAliveTimeout: 60
log:
  type: file
  path: $d/logs/verdaccio.log
  format: json
  level: warn
EOF
    env -u NODE_ENV -u DEBUG "$NPMFX_VERDACCIO" --config "$d/config.yaml" >>"$WORK/verdaccio-proxy.stderr" 2>&1 </dev/null &
    echo $! >"$VX_PIDF"
    local deadline=$((SECONDS + 30))
    until verdaccio_up "$VX_PORT"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "the verdaccio proxy did not start"
        sleep 0.05
    done
}

LP=$(free_port)
R=http://127.0.0.1:$LP/npm
CFG=$WORK/larder.yaml
CFG_QUOTA=4GiB CFG_IDLE=60s write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
npm:
  ttl: 10m
  upstream: $U/
EOF
la_fresh() { # larder on an empty data dir
    srv_stop "$LA_PIDF"
    rm -rf "$WORK/data"
    "$LARDER_BIN" serve --config "$CFG" >/dev/null 2>>"$WORK/larder.log" </dev/null &
    echo $! >"$LA_PIDF"
    local deadline=$((SECONDS + 10))
    until curl -fsS --max-time 2 "http://127.0.0.1:$LP/-/health" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "larder did not start"
        sleep 0.05
    done
}

hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
tree_kb() { # tree_kb FIELD-FN PID: the process and its children
    local t c
    t=$("$1" "$2")
    for c in $(ps -o pid= --ppid "$2"); do t=$((t + $("$1" "$c"))); done
    echo "$t"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f\n", k / 1024 }'; }

# ---- 1, 2: a cold GET of the 30 MB packument, each form ------------------------------------------------------------------
cold_get() { # cold_get SIDE ACCEPT TTFB_FILE -> seconds
    local base
    if [ "$1" = verdaccio ]; then vx_fresh; base=$VXURL; else la_fresh; base=$R; fi
    local out
    out=$(curl -sS -o "$WORK/cold.out" -w '%{http_code} %{time_starttransfer} %{time_total}' -H "Accept: $2" "$base/huge-pkg")
    read -r code ttfb total <<<"$out"
    [ "$code" = 200 ] || fail "cold GET via $1: HTTP $code"
    [ "$(wc -c <"$WORK/cold.out")" -gt 1000000 ] || fail "cold GET via $1: short body"
    echo "$ttfb" >>"$3"
    echo "$total"
}
: >"$WORK/ttfb.full.verdaccio"
: >"$WORK/ttfb.full.larder"
: >"$WORK/ttfb.abbr.verdaccio"
: >"$WORK/ttfb.abbr.larder"
cold_full_vx() { cold_get verdaccio application/json "$WORK/ttfb.full.verdaccio"; }
cold_full_la() { cold_get larder application/json "$WORK/ttfb.full.larder"; }
cold_abbr_vx() { cold_get verdaccio "$A" "$WORK/ttfb.abbr.verdaccio"; }
cold_abbr_la() { cold_get larder "$A" "$WORK/ttfb.abbr.larder"; }
bench_pair "cold GET 30 MB packument, full (Accept: application/json)" s lower verdaccio cold_full_vx cold_full_la
bench_record "  its time to first byte" s lower verdaccio "$(cat "$WORK/ttfb.full.verdaccio")" \
    "$(cat "$WORK/ttfb.full.larder")"
bench_pair "cold GET 30 MB packument, abbreviated (install-v1)" s lower verdaccio cold_abbr_vx cold_abbr_la
bench_record "  its time to first byte" s lower verdaccio "$(cat "$WORK/ttfb.abbr.verdaccio")" \
    "$(cat "$WORK/ttfb.abbr.larder")"

# ---- 3: three cold 30 MB packuments at once: peak RSS, and RSS once they are done -------------------------------------------
: >"$WORK/after.verdaccio"
: >"$WORK/after.larder"
three_cold() { # three_cold SIDE -> peak MiB; RSS after appended to $WORK/after.SIDE
    local base pids=() p
    if [ "$1" = verdaccio ]; then vx_fresh; base=$VXURL; p=$(cat "$VX_PIDF"); else la_fresh; base=$R; p=$(cat "$LA_PIDF"); fi
    for h in huge-pkg huge-pkg2 huge-pkg3; do
        curl -sS -o /dev/null "$base/$h" &
        pids+=($!)
    done
    for q in "${pids[@]}"; do wait "$q" || fail "a cold GET via $1 failed"; done
    sleep 2
    mib "$(tree_kb rss_kb "$p")" >>"$WORK/after.$1"
    mib "$(tree_kb hwm_kb "$p")"
}
three_vx() { three_cold verdaccio; }
three_la() { three_cold larder; }
bench_pair "peak RSS, 3 cold 30 MB packuments at once" MiB lower verdaccio three_vx three_la
bench_record "  RSS 2 s after them" MiB lower verdaccio "$(cat "$WORK/after.verdaccio")" "$(cat "$WORK/after.larder")"

# ---- warm both -------------------------------------------------------------------------------------------------------
vx_fresh
la_fresh
declare -A REG=([verdaccio]=$VXURL [larder]=$R)
NPMC=$WORK/npmc
ci_once() { # ci_once REGISTRY -> seconds
    rm -rf "$WORK/app"
    mkdir -p "$WORK/app"
    cp "$FX/app-public/package.json" "$FX/app-public/package-lock.json" "$WORK/app/"
    local t0 t1
    t0=$(date +%s.%N)
    npm_isolated "$NPMC" ci --prefix "$WORK/app" --registry "$1/" >"$WORK/npm-ci.log" 2>&1 ||
        fail "npm ci via $1 failed: $(tail -5 "$WORK/npm-ci.log")"
    t1=$(date +%s.%N)
    rm -rf "$NPM_LAST_CACHE"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
for t in verdaccio larder; do
    log "warming $t"
    ci_once "${REG[$t]}" >/dev/null
    for p in "@larder-test%2fcore" larder-test-docs huge-pkg; do
        curl -sS -o /dev/null -H "Accept: $A" "${REG[$t]}/$p"
        curl -sS -o /dev/null -H "Accept: application/json" "${REG[$t]}/$p"
    done
done
tarballs_before=$(verdaccio_requests "$UPD" | grep -c '\.tgz$' || true)

# ---- 4: npm ci, warm -------------------------------------------------------------------------------------------------
ci_vx() { ci_once "$VXURL"; }
ci_la() { ci_once "$R"; }
bench_pair "npm ci, 13 packages, warm" s lower verdaccio ci_vx ci_la
[ "$tarballs_before" = "$(verdaccio_requests "$UPD" | grep -c '\.tgz$' || true)" ] ||
    bench_note "WARNING: tarballs were fetched upstream during the warm runs"

# ---- 5: wrk on packuments ----------------------------------------------------------------------------------------------
wrk_run() { # wrk_run NAME URL ACCEPT -> req/s; p99 ms appended to $WORK/NAME.p99
    local out=$WORK/wrk.$1.txt
    wrk -t"$WRK_T" -c"$CONN" -d"$DUR" --timeout 30s --latency -H "Accept: $3" "$2" >"$out" 2>&1 || fail "wrk: $(cat "$out")"
    [ "$(wrk_field "$out" errors)" = 0 ] || log "WARNING $1: $(wrk_field "$out" errors) errors"
    wrk_field "$out" p99ms >>"$WORK/$1.p99"
    wrk_field "$out" reqs
}
small_size=$(curl -sS -H "Accept: $A" "$R/@larder-test%2fcore" | wc -c)
docs_size=$(curl -sS -H "Accept: application/json" "$R/larder-test-docs" | wc -c)
for k in small.verdaccio small.larder docs.verdaccio docs.larder busy.verdaccio busy.larder; do : >"$WORK/$k.p99"; done
small_vx() { wrk_run small.verdaccio "$VXURL/@larder-test%2fcore" "$A"; }
small_la() { wrk_run small.larder "$R/@larder-test%2fcore" "$A"; }
docs_vx() { wrk_run docs.verdaccio "$VXURL/larder-test-docs" application/json; }
docs_la() { wrk_run docs.larder "$R/larder-test-docs" application/json; }
bench_pair "abbreviated packument (${small_size} B), wrk" req/s higher verdaccio small_vx small_la
bench_record "  its p99" ms lower verdaccio "$(cat "$WORK/small.verdaccio.p99")" "$(cat "$WORK/small.larder.p99")"
bench_pair "full packument (${docs_size} B), wrk" req/s higher verdaccio docs_vx docs_la
bench_record "  its p99" ms lower verdaccio "$(cat "$WORK/docs.verdaccio.p99")" "$(cat "$WORK/docs.larder.p99")"

busy() { # busy SIDE BASE -> req/s of the small packument while two clients pull huge-pkg
    (while :; do curl -sS -o /dev/null "$2/huge-pkg" || break; done) >/dev/null 2>&1 &
    local l1=$!
    (while :; do curl -sS -o /dev/null "$2/huge-pkg" || break; done) >/dev/null 2>&1 &
    local l2=$!
    wrk_run "busy.$1" "$2/@larder-test%2fcore" "$A"
    kill "$l1" "$l2" 2>/dev/null || true
    wait "$l1" "$l2" 2>/dev/null || true
}
busy_vx() { busy verdaccio "$VXURL"; }
busy_la() { busy larder "$R"; }
bench_pair "abbreviated packument, 2 clients pulling 30 MB" req/s higher verdaccio busy_vx busy_la
bench_record "  its p99" ms lower verdaccio "$(cat "$WORK/busy.verdaccio.p99")" "$(cat "$WORK/busy.larder.p99")"

# ---- 6: the 30 MB packument, warm ----------------------------------------------------------------------------------------
warm_get() { curl -sS -o /dev/null -w '%{time_total}' -H "Accept: application/json" "$1/huge-pkg"; }
warm_vx() { warm_get "$VXURL"; }
warm_la() { warm_get "$R"; }
bench_pair "warm GET 30 MB packument, full" s lower verdaccio warm_vx warm_la

bench_note "$(nproc) cores shared by both servers, the upstream verdaccio and the clients; loopback; wrk -t$WRK_T -c$CONN -d$DUR; huge packuments $((huge_bytes / 1048576)) MiB ($HUGE_N versions)"
finish >/dev/null
