#!/usr/bin/env bash
# bench/pypi.sh - larder's pip index vs nginx proxy_cache + sub_filter (the usual hand-made pip proxy), both warm:
#   1. a ~10 KB project page, HTML and PEP 691 JSON, with wrk (req/s, p99)
#   2. `pip install` of the 13-package test set through each (wall time)
#   3. peak RSS
# Every comparison runs through bench/lib.sh: alternating runs (nginx, larder, nginx, larder ...), median and spread
# of each side, one summary table. See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN       daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION   wrk duration per run (default 5s)
#   BENCH_C          wrk connections (default 32)
#   BENCH_THREADS    wrk threads (default 2)
#   BENCH_RUNS       runs per side of every row (default 5, bench/lib.sh); BENCH_MAX_RUNS (15)
#   BENCH_PIP_RUNS   pip installs per side (default: BENCH_RUNS)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=../tests/integration/pypi_fixture.sh
. "$BENCH_DIR/../tests/integration/pypi_fixture.sh"
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"
# shellcheck source=measure.sh
. "$BENCH_DIR/measure.sh"

DUR=${BENCH_DURATION:-5s}
CONN=${BENCH_C:-32}
WRK_T=${BENCH_THREADS:-2}
PIP_RUNS=${BENCH_PIP_RUNS:-$BENCH_RUNS}
command -v wrk >/dev/null || fail "wrk not installed (apt-get install wrk)"
[ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first)"

IP=$(free_port) # upstream index
FP=$(free_port) # upstream files host
XP=$(free_port) # nginx proxy
LP=$(free_port) # larder
J='application/vnd.pypi.simple.v1+json'

UP=$WORK/upstream
make_pypi_index "$UP" "$FP"
start_pypi_upstream "$UP" "$IP" "$FP"

# ---- nginx: proxy_cache + sub_filter, the configuration of docs/pip.md "Compared with nginx" ----------------------
NX=$WORK/nginx-proxy
mkdir -p "$NX/cache" "$NX/tmp" "$NX/logs"
{
    NGINX_WORKERS=auto nginx_common_main "$NX"
    cat <<EOF
    sendfile on;
    tcp_nopush on;
    proxy_cache_path $NX/cache levels=1:2 keys_zone=pypi:10m max_size=4g inactive=30d use_temp_path=off;
    map \$http_accept \$pypi_fmt {
        default html;
        "~*application/vnd\\.pypi\\.simple\\.v1\\+json" json;
    }
    server {
        listen 127.0.0.1:$XP;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_cache pypi;
        proxy_cache_lock on;
        proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
        add_header X-Cache-Status \$upstream_cache_status;
        location /simple/ {
            proxy_pass http://127.0.0.1:$IP;
            proxy_cache_key \$uri\$pypi_fmt;
            proxy_cache_valid 200 10m;
            proxy_set_header Accept-Encoding "";
            sub_filter_types application/vnd.pypi.simple.v1+json;
            sub_filter_once off;
            sub_filter "http://127.0.0.1:$FP/" "http://127.0.0.1:$XP/files-host/";
        }
        location /packages/ {
            proxy_pass http://127.0.0.1:$IP;
            proxy_cache_valid 200 30d;
        }
        location /files-host/ {
            proxy_pass http://127.0.0.1:$FP/;
            proxy_cache_valid 200 30d;
        }
    }
}
EOF
} >"$NX/nginx.conf"
NGINX_WAIT_PORTS=$XP run_nginx "$NX"
NGINX_PROXY_PID=$NGINX_PID

# ---- larder -------------------------------------------------------------------------------------------------------
CFG=$WORK/larder.yaml
CFG_QUOTA=4GiB CFG_IDLE=60s write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
pypi:
  ttl: 10m
  upstream: http://127.0.0.1:$IP/simple/
EOF
start_larder "$CFG" "$LP" "$WORK/larder.log"

declare -A BASE=([nginx]=http://127.0.0.1:$XP/simple [larder]=$LARDER_URL/pypi/simple)
declare -A HDR=([nginx]=X-Cache-Status [larder]=X-Larder-Cache)

pip_once() { # pip_once INDEX TARGET
    rm -rf "$2"
    "$PY" -m pip install --no-cache-dir --disable-pip-version-check --no-input --no-build-isolation -q \
        --target "$2" --index-url "$1/" top >"$WORK/pip.log" 2>&1 || fail "pip install via $1 failed: $(tail -5 "$WORK/pip.log")"
}

# ---- warm both -----------------------------------------------------------------------------------------------------
for t in nginx larder; do
    log "warming $t"
    pip_once "${BASE[$t]}" "$WORK/target"
    for a in "text/html" "$J"; do
        curl -sS -o /dev/null -H "Accept: $a" "${BASE[$t]}/omega/"
        v=$(http_header "${BASE[$t]}/omega/" "${HDR[$t]}" -H "Accept: $a")
        [ "$v" = HIT ] || fail "$t does not serve the omega page ($a) from cache: ${HDR[$t]}: $v"
    done
done
# nginx must really have rewritten the file links, or pip would not have needed it
curl -sS "${BASE[nginx]}/alpha/" | grep "127.0.0.1:$XP/files-host/" >/dev/null || fail "nginx sub_filter did not rewrite links"

# ---- wrk on the project page: one wrk run per call, req/s and p99 from the same runs -------------------------------
html_size=$(curl -sS -H 'Accept: text/html' "${BASE[larder]}/omega/" | wc -c)
json_size=$(curl -sS -H "Accept: $J" "${BASE[larder]}/omega/" | wc -c)
page() { bench_wrk "$1" "$2" reqs -t"$WRK_T" -c"$CONN" -d"$DUR" -H "Accept: $3" "${BASE[$2]}/omega/"; }
html_nginx() { page html nginx text/html; }
html_larder() { page html larder text/html; }
json_nginx() { page json nginx "$J"; }
json_larder() { page json larder "$J"; }
bench_note "warm caches; $(nproc) cores; wrk -t$WRK_T -c$CONN -d$DUR, one run per measurement; loopback"
bench_pair "page HTML ($html_size B) req/s" req/s higher nginx html_nginx html_larder
bench_wrk_record html "page HTML p99" ms lower nginx nginx larder p99ms
bench_pair "page JSON ($json_size B) req/s" req/s higher nginx json_nginx json_larder
bench_wrk_record json "page JSON p99" ms lower nginx nginx larder p99ms
bench_wrk_errors html nginx larder
bench_wrk_errors json nginx larder

# ---- pip install, warm --------------------------------------------------------------------------------------------
pip_nginx() { bench_time pip_once "${BASE[nginx]}" "$WORK/target-nginx"; }
pip_larder() { bench_time pip_once "${BASE[larder]}" "$WORK/target-larder"; }
BENCH_RUNS=$PIP_RUNS bench_pair "pip install top (13 pkgs)" s lower nginx pip_nginx pip_larder

# ---- peak RSS over the whole run -----------------------------------------------------------------------------------
bench_record "peak RSS MiB (VmHWM)" MiB lower nginx "$(bench_kib_mib "$(bench_hwm_tree_kb "$NGINX_PROXY_PID")")" \
    "$(bench_kib_mib "$(bench_hwm_kb "$LARDER_PID")")"
finish >/dev/null
