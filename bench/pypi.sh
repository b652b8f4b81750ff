#!/usr/bin/env bash
# bench/pypi.sh - larder's pip index vs nginx proxy_cache + sub_filter (the usual hand-made pip proxy), both warm:
#   1. a ~10 KB project page, HTML and PEP 691 JSON, with wrk (req/s, p99)
#   2. `pip install` of the 13-package test set through each (wall time, mean of BENCH_PIP_RUNS runs)
#   3. peak RSS
# See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN       daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION   wrk duration per run (default 10s)
#   BENCH_C          wrk connections (default 32)
#   BENCH_THREADS    wrk threads (default 2)
#   BENCH_PIP_RUNS   pip installs per server (default 5)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=../tests/integration/pypi_fixture.sh
. "$BENCH_DIR/../tests/integration/pypi_fixture.sh"

DUR=${BENCH_DURATION:-10s}
CONN=${BENCH_C:-32}
WRK_T=${BENCH_THREADS:-2}
PIP_RUNS=${BENCH_PIP_RUNS:-5}
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

# ---- wrk on the project page -------------------------------------------------------------------------------------
to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; printf "%.3f\n", n }'
}
declare -A R
run_wrk() { # run_wrk KEY URL ACCEPT
    local out=$WORK/wrk.$1.txt
    log "wrk -t$WRK_T -c$CONN -d$DUR --latency -H 'Accept: $3' $2"
    wrk -t"$WRK_T" -c"$CONN" -d"$DUR" --timeout 30s --latency -H "Accept: $3" "$2" >"$out" 2>&1 || fail "wrk: $(cat "$out")"
    R[$1.rps]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    R[$1.p99]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    R[$1.err]=$(awk '/Non-2xx|Socket errors/ { sub(/^ +/, ""); printf "%s; ", $0 }' "$out")
}
for t in nginx larder; do
    run_wrk "$t.html" "${BASE[$t]}/omega/" "text/html"
    run_wrk "$t.json" "${BASE[$t]}/omega/" "$J"
done
html_size=$(curl -sS -H 'Accept: text/html' "${BASE[larder]}/omega/" | wc -c)
json_size=$(curl -sS -H "Accept: $J" "${BASE[larder]}/omega/" | wc -c)

# ---- pip install, warm --------------------------------------------------------------------------------------------
declare -A PIPS
for t in nginx larder; do
    log "pip install top x$PIP_RUNS via $t"
    start=$(date +%s.%N)
    for _ in $(seq 1 "$PIP_RUNS"); do pip_once "${BASE[$t]}" "$WORK/target"; done
    end=$(date +%s.%N)
    PIPS[$t]=$(awk -v a="$start" -v b="$end" -v n="$PIP_RUNS" 'BEGIN { printf "%.3f\n", (b - a) / n }')
done

# ---- peak RSS ------------------------------------------------------------------------------------------------------
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
nginx_hwm=$(hwm_kb "$NGINX_PROXY_PID")
for w in $(ps -o pid= --ppid "$NGINX_PROXY_PID"); do nginx_hwm=$((nginx_hwm + $(hwm_kb "$w"))); done
larder_hwm=$(hwm_kb "$LARDER_PID")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0 || b + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'; }
row() { printf '%-34s %12s %12s %8s\n' "$@"; }
echo
echo "larder vs nginx proxy_cache+sub_filter, warm; $(nproc) cores; wrk -t$WRK_T -c$CONN -d$DUR; loopback"
row "" larder nginx ratio
row "page HTML (${html_size} B) req/s" "${R[larder.html.rps]}" "${R[nginx.html.rps]}" "$(ratio "${R[larder.html.rps]}" "${R[nginx.html.rps]}")"
row "page HTML p99 ms" "${R[larder.html.p99]}" "${R[nginx.html.p99]}" "$(ratio "${R[nginx.html.p99]}" "${R[larder.html.p99]}")"
row "page JSON (${json_size} B) req/s" "${R[larder.json.rps]}" "${R[nginx.json.rps]}" "$(ratio "${R[larder.json.rps]}" "${R[nginx.json.rps]}")"
row "page JSON p99 ms" "${R[larder.json.p99]}" "${R[nginx.json.p99]}" "$(ratio "${R[nginx.json.p99]}" "${R[larder.json.p99]}")"
row "pip install top (13 pkgs) s" "${PIPS[larder]}" "${PIPS[nginx]}" "$(ratio "${PIPS[nginx]}" "${PIPS[larder]}")"
row "peak RSS MiB (VmHWM)" "$(awk -v k="$larder_hwm" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v k="$nginx_hwm" 'BEGIN { printf "%.1f", k / 1024 }')" "$(ratio "$nginx_hwm" "$larder_hwm")"
for k in larder.html larder.json nginx.html nginx.json; do
    [ -z "${R[$k.err]}" ] || echo "WARNING $k: ${R[$k.err]}"
done
echo "(ratios > 1.00x: larder better)"
finish >/dev/null
