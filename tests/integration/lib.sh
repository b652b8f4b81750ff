# shellcheck shell=bash disable=SC2034
# lib.sh - shared helpers for Larder's black-box integration tests.
#
# Source it from a test script:   . "$(dirname "$0")/lib.sh"
#
# Every process a test starts (nginx, larder, python upstreams) is recorded by PID and stopped by the EXIT trap:
# SIGTERM, a short wait, then SIGKILL. Everything listens on 127.0.0.1 only; ports come from free_port.
# Work files live in one mktemp directory ($WORK), removed at exit unless KEEP_WORK=1 (it is also kept, and
# named, when a test fails, so the logs can be read).
#
# Environment:
#   LARDER_BIN   the daemon binary (default: $REPO/build/larder)
#   KEEP_WORK=1  keep $WORK after the test
#   VERBOSE=1    print every passed check
#   CONTINUE_ON_FAIL=1  record a failed assertion and go on (to see every failure at once; the script still exits 1)

set -euo pipefail

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LIB_DIR/../.." && pwd)
LARDER_BIN=${LARDER_BIN:-$REPO/build/larder}
PY=/usr/bin/python3
NGINX=/usr/sbin/nginx
TEST_NAME=$(basename "$0" .sh)
ADMIN_TOKEN=test-admin-token-$$

T_PASSED=0
T_FAILED=0
T_SKIPPED=0
T_STARTED_PIDS=()
T_MOUNTS=()
T_CLEANUP_FUNCS=()
T_PORTS_USED=" "
T_DONE=0

WORK=$(mktemp -d "${TMPDIR:-/tmp}/larder-it.${TEST_NAME}.XXXXXX")
chmod 755 "$WORK" # nginx workers (user nobody if the user directive is ignored) must read below it

# ---------------------------------------------------------------------------------------------------------------
# output

log() { printf '[%s] %s\n' "$TEST_NAME" "$*" >&2; }

# show the tails of every log file in $WORK, to explain a failure
dump_logs() {
    local f
    for f in $(find "$WORK" -maxdepth 3 -type f \( -name '*.log' -o -name 'stderr*' \) -not -path '*/db/*' 2>/dev/null | sort); do
        [ -s "$f" ] || continue
        grep -Iq . "$f" || continue # binary
        printf -- '----- %s (last 25 lines) -----\n' "${f#"$WORK"/}" >&2
        tail -n 25 "$f" >&2
    done
}

fail() {
    T_FAILED=$((T_FAILED + 1))
    printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*" >&2
    KEEP_WORK=1
    if [ "${CONTINUE_ON_FAIL:-0}" = 1 ] && [ "$BASH_SUBSHELL" = 0 ]; then return 0; fi
    dump_logs
    exit 1
}

pass() {
    T_PASSED=$((T_PASSED + 1))
    if [ "${VERBOSE:-0}" = 1 ]; then printf '[%s] ok: %s\n' "$TEST_NAME" "$*" >&2; fi
    return 0
}

skip() {
    T_SKIPPED=$((T_SKIPPED + 1))
    printf '[%s] SKIP: %s\n' "$TEST_NAME" "$*" >&2
}

# print the closing line; call once at the end of a test script
finish() {
    stop_larder
    T_DONE=1
    if [ "$T_SKIPPED" -gt 0 ]; then
        echo "$TEST_NAME: $T_PASSED passed, $T_FAILED failed, $T_SKIPPED skipped"
    else
        echo "$TEST_NAME: $T_PASSED passed, $T_FAILED failed"
    fi
    if [ "$T_FAILED" -gt 0 ]; then
        dump_logs
        exit 1
    fi
}

# ---------------------------------------------------------------------------------------------------------------
# assertions: each prints a clear message and exits 1 on failure

# assert_eq EXPECTED ACTUAL [WHAT]
assert_eq() {
    if [ "$1" == "$2" ]; then pass "${3:-values equal}"; else fail "${3:-values differ}: expected '$1', got '$2'"; fi
}

# assert_ne UNEXPECTED ACTUAL [WHAT]
assert_ne() {
    if [ "$1" != "$2" ]; then pass "${3:-values differ}"; else fail "${3:-values should differ}: got '$2'"; fi
}

# assert_contains HAYSTACK NEEDLE [WHAT]
assert_contains() {
    case "$1" in
    *"$2"*) pass "${3:-contains $2}" ;;
    *) fail "${3:-missing text}: expected to find '$2' in: $(printf '%s' "$1" | head -c 2000)" ;;
    esac
}

# assert_not_contains HAYSTACK NEEDLE [WHAT]
assert_not_contains() {
    case "$1" in
    *"$2"*) fail "${3:-unexpected text}: did not expect '$2' in: $(printf '%s' "$1" | head -c 2000)" ;;
    *) pass "${3:-does not contain $2}" ;;
    esac
}

# assert_match HAYSTACK EXTENDED_REGEX [WHAT]
assert_match() {
    # a here-string, not `printf | grep -q`: under pipefail the writer can die of SIGPIPE when grep -q exits at the
    # first match, and the pipeline then fails although grep matched (a flaky "expected /x/ in: x")
    if grep -Eq -- "$2" <<<"$1"; then pass "${3:-matches $2}"; else
        fail "${3:-no match}: expected /$2/ in: $(printf '%s' "$1" | head -c 2000)"
    fi
}

# assert_le A B [WHAT]   (integers)
assert_le() {
    if [ "$1" -le "$2" ]; then pass "${3:-$1 <= $2}"; else fail "${3:-comparison}: expected $1 <= $2"; fi
}

# assert_gt A B [WHAT]   (integers)
assert_gt() {
    if [ "$1" -gt "$2" ]; then pass "${3:-$1 > $2}"; else fail "${3:-comparison}: expected $1 > $2"; fi
}

# http_status URL [CURL ARGS...] -> prints the status code (000 when the connection failed)
http_status() {
    local url=$1
    shift
    curl -sS -o /dev/null -w '%{http_code}' --max-time "${CURL_MAX_TIME:-30}" "$@" -- "$url" 2>/dev/null || true
}

# assert_status URL CODE [CURL ARGS...]
assert_status() {
    local url=$1 want=$2
    shift 2
    local got
    got=$(http_status "$url" "$@")
    if [ "$got" == "$want" ]; then pass "$url -> $want"; else fail "$* $url: expected HTTP $want, got $got"; fi
}

# http_header URL NAME [CURL ARGS...] -> value of the response header NAME (case-insensitive), empty if absent.
# Uses GET (body discarded) unless the args say -I / -X HEAD.
http_header() {
    local url=$1 name=$2
    shift 2
    { curl -sS -o /dev/null -D - --max-time "${CURL_MAX_TIME:-30}" "$@" -- "$url" 2>/dev/null || true; } |
        tr -d '\r' | awk -v n="$name" 'BEGIN { n = tolower(n) }
            { i = index($0, ":"); if (i > 0 && tolower(substr($0, 1, i - 1)) == n) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); last = v } }
            END { print last }'
}

# assert_header URL NAME VALUE [CURL ARGS...]
assert_header() {
    local url=$1 name=$2 want=$3
    shift 3
    local got
    got=$(http_header "$url" "$name" "$@")
    if [ "$got" == "$want" ]; then pass "$url $name: $want"; else
        fail "$* $url: expected header '$name: $want', got '$name: $got'"
    fi
}

# assert_cache URL STATUS [CURL ARGS...]  - X-Larder-Cache of a GET
assert_cache() {
    local url=$1 want=$2
    shift 2
    assert_header "$url" X-Larder-Cache "$want" "$@"
}

# assert_cache_soon URL STATUS [CURL ARGS...] - like assert_cache, but allows up to 10 s for a large object's
# commit (hash check, fsync, rename) to finish after the first client got its last byte
assert_cache_soon() {
    local url=$1 want=$2 got i
    shift 2
    for i in $(seq 1 50); do
        got=$(http_header "$url" X-Larder-Cache "$@")
        [ "$got" = "$want" ] && break
        sleep 0.2
    done
    if [ "$got" == "$want" ]; then pass "$url X-Larder-Cache: $want"; else
        fail "$* $url: expected 'X-Larder-Cache: $want' within 10 s, got '$got'"
    fi
}

# fetch URL OUT [CURL ARGS...] -> prints "STATUS CACHE" and writes the body to OUT; curl's exit code is returned
fetch() {
    local url=$1 out=$2
    shift 2
    local hdr rc=0 code
    hdr=$(mktemp "$WORK/hdr.XXXXXX")
    code=$(curl -sS -o "$out" -D "$hdr" -w '%{http_code}' --max-time "${CURL_MAX_TIME:-60}" "$@" -- "$url" 2>>"$WORK/curl-stderr.log") || rc=$?
    local cache
    cache=$(tr -d '\r' <"$hdr" | awk 'tolower($1) == "x-larder-cache:" { v = $2 } END { print v }')
    rm -f "$hdr"
    echo "${code:-000} ${cache:--}"
    return $rc
}

sha256_file() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
sha256_stdin() { openssl dgst -sha256 -r | cut -d' ' -f1; }
file_size() { stat -c %s "$1"; }

# make_file PATH SIZE_BYTES  - random content
make_file() {
    mkdir -p "$(dirname "$1")"
    head -c "$2" /dev/urandom >"$1"
}

# wait_for DESCRIPTION SECONDS COMMAND...  - poll until COMMAND succeeds
wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
        sleep 0.1
    done
    return 0
}

# ---------------------------------------------------------------------------------------------------------------
# ports and processes

# free_port -> an unused TCP port on 127.0.0.1 (distinct from earlier ones in this script)
free_port() {
    local p i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        p=$("$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
        case "$T_PORTS_USED" in *" $p "*) continue ;; esac
        T_PORTS_USED="$T_PORTS_USED$p "
        echo "$p"
        return 0
    done
    fail "free_port: no free port found"
}

port_open() { "$PY" -c 'import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"; }

track_pid() { T_STARTED_PIDS+=("$1"); }

# at_cleanup FUNCTION - run FUNCTION first thing in the EXIT trap (last registered first), before the tracked
# processes are stopped: for what needs an orderly stop of its own (a docker daemon and its mounts)
at_cleanup() { T_CLEANUP_FUNCS+=("$1"); }

untrack_pid() {
    local p out=()
    for p in "${T_STARTED_PIDS[@]}"; do [ "$p" = "$1" ] || out+=("$p"); done
    T_STARTED_PIDS=("${out[@]+"${out[@]}"}")
}

# running (and not a zombie waiting to be reaped)
pid_alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case "$st" in "" | Z*) return 1 ;; esac
    return 0
}

# stop_pid PID [SIGNAL]  - signal (default TERM), wait up to 10 s, then SIGKILL; always reaps
stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    if pid_alive "$pid"; then
        kill "-$sig" "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        if pid_alive "$pid"; then
            log "pid $pid did not stop on SIG$sig within 10 s: SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    untrack_pid "$pid"
}

cleanup() {
    local rc=$?
    set +e
    local i
    for ((i = ${#T_CLEANUP_FUNCS[@]} - 1; i >= 0; i--)); do
        "${T_CLEANUP_FUNCS[$i]}"
    done
    for ((i = ${#T_STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${T_STARTED_PIDS[$i]}"
    done
    for i in "${T_MOUNTS[@]+"${T_MOUNTS[@]}"}"; do
        umount "$i" 2>/dev/null || umount -l "$i" 2>/dev/null
    done
    if [ "$T_DONE" != 1 ] && [ "$rc" -ne 0 ]; then
        # died outside an assertion (set -e, a missing binary...): still print a closing line
        if [ "$T_FAILED" -eq 0 ]; then
            printf '[%s] FAIL: aborted with exit code %s (line %s)\n' "$TEST_NAME" "$rc" "${T_LAST_LINE:-?}" >&2
            dump_logs
            KEEP_WORK=1
            T_FAILED=1
        fi
        echo "$TEST_NAME: $T_PASSED passed, $T_FAILED failed"
    fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        # big payloads are not worth keeping
        find "$WORK" -type f -size +20M -delete 2>/dev/null
        printf '[%s] work dir kept: %s\n' "$TEST_NAME" "$WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'T_LAST_LINE=$LINENO' ERR

# ---------------------------------------------------------------------------------------------------------------
# nginx upstreams

# run_nginx DIR  - runs nginx with DIR/nginx.conf (which must say `daemon off;`), prefix DIR; sets NGINX_PID.
# Waits until every port in NGINX_WAIT_PORTS (space separated) accepts connections.
run_nginx() {
    local dir=$1
    mkdir -p "$dir/logs"
    "$NGINX" -t -q -c "$dir/nginx.conf" -p "$dir" 2>"$dir/logs/configtest.log" ||
        fail "nginx config test failed: $(cat "$dir/logs/configtest.log")"
    "$NGINX" -c "$dir/nginx.conf" -p "$dir" 2>>"$dir/logs/stderr.log" &
    NGINX_PID=$!
    track_pid "$NGINX_PID"
    local p
    for p in ${NGINX_WAIT_PORTS:-}; do
        wait_for "nginx on $p" 10 port_open "$p" || fail "nginx did not start listening on 127.0.0.1:$p"
    done
    pid_alive "$NGINX_PID" || fail "nginx exited at start-up: $(cat "$dir/logs/stderr.log" "$dir/logs/error.log" 2>/dev/null)"
}

# nginx_common_main DIR -> the top of an nginx.conf (main + events + http prologue, http block left open)
nginx_common_main() {
    local dir=$1 user=""
    # mktemp dirs are private; as root, run workers as root so they can read the test files
    if [ "$(id -u)" = 0 ]; then user="user root root;"; fi
    cat <<EOF
$user
daemon off;
master_process on;
worker_processes ${NGINX_WORKERS:-1};
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    log_format larder_test '\$remote_addr [\$time_local] "\$request" \$status \$body_bytes_sent rt=\$request_time';
    access_log $dir/logs/access.log larder_test;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    types { text/plain txt; application/gzip gz; application/json json; }
    keepalive_timeout 30s;
EOF
}

# start_nginx DIR PORT [LIMIT_RATE] - static file server on 127.0.0.1:PORT, document root DIR/root.
#   LIMIT_RATE: nginx limit_rate value (e.g. 40m), empty for none.
#   NGINX_TLS_CERT / NGINX_TLS_KEY (env): serve TLS (HTTP/1.1 and HTTP/2) instead of plain HTTP.
#   NGINX_EXTRA (env): extra directives inside the server block.
# Sets NGINX_PID; the access log is DIR/logs/access.log.
start_nginx() {
    local dir=$1 port=$2 rate=${3:-}
    mkdir -p "$dir/root" "$dir/logs" "$dir/tmp"
    chmod 755 "$dir" "$dir/root"
    local listen="listen 127.0.0.1:$port;" tls=""
    if [ -n "${NGINX_TLS_CERT:-}" ]; then
        listen="listen 127.0.0.1:$port ssl http2;"
        tls="ssl_certificate ${NGINX_TLS_CERT}; ssl_certificate_key ${NGINX_TLS_KEY};"
    fi
    {
        nginx_common_main "$dir"
        cat <<EOF
    sendfile on;
    server {
        $listen
        server_name localhost;
        $tls
        root $dir/root;
        ${rate:+limit_rate $rate;}
        ${NGINX_EXTRA:-}
    }
}
EOF
    } >"$dir/nginx.conf"
    NGINX_WAIT_PORTS=$port run_nginx "$dir"
}

# count of requests in an nginx access log matching METHOD and exact PATH
nginx_count() {
    local logf=$1 method=$2 path=$3
    [ -f "$logf" ] || { echo 0; return; }
    awk -v r="\"$method $path " 'index($0, r) > 0 { n++ } END { print n + 0 }' "$logf"
}

# ---------------------------------------------------------------------------------------------------------------
# python fault-injection upstream

# start_faulty DIR PORT - runs faulty_upstream.py; sets FAULTY_PID; request log DIR/requests.log
start_faulty() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    "$PY" "$LIB_DIR/faulty_upstream.py" --port "$port" --log "$dir/requests.log" 2>"$dir/faulty.log" &
    FAULTY_PID=$!
    track_pid "$FAULTY_PID"
    wait_for "faulty upstream" 10 port_open "$port" || fail "faulty_upstream.py did not start on port $port"
}

# ---------------------------------------------------------------------------------------------------------------
# larder

# write_config FILE PORT DATA_DIR  - writes the common top of a larder.yaml (no files: section; append one).
#   CFG_QUOTA (default 1GiB), CFG_MIN_FREE (0), CFG_OFFLINE (false), CFG_TLS_CERT/CFG_TLS_KEY,
#   CFG_CONNECT (2s), CFG_IDLE (5s)
write_config() {
    local file=$1 port=$2 data=$3
    {
        echo "listen:"
        echo "  - address: 127.0.0.1"
        echo "    port: $port"
        if [ -n "${CFG_TLS_CERT:-}" ]; then
            echo "    tls:"
            echo "      cert: $CFG_TLS_CERT"
            echo "      key: $CFG_TLS_KEY"
        fi
        echo "data_dir: $data"
        echo "offline: ${CFG_OFFLINE:-false}"
        echo "quota:"
        echo "  total: ${CFG_QUOTA:-1GiB}"
        echo "  min_free: ${CFG_MIN_FREE:-0}"
        echo "admin:"
        echo "  token: $ADMIN_TOKEN"
        echo "timeouts:"
        echo "  connect: ${CFG_CONNECT:-2s}"
        echo "  idle: ${CFG_IDLE:-5s}"
    } >"$file"
}

health_ok() { curl -fsS --max-time 2 "$LARDER_URL/-/health" >/dev/null 2>&1; }

# start_larder CONFIG PORT [LOGFILE] - runs `larder serve`, waits up to 10 s for /-/health.
# Sets LARDER_PID, LARDER_URL (http://127.0.0.1:PORT, or https when LARDER_SCHEME=https), LARDER_LOG.
start_larder() {
    local cfg=$1 port=$2
    LARDER_LOG=${3:-$WORK/larder.$port.$SECONDS.log}
    [ -x "$LARDER_BIN" ] || fail "larder binary not found or not executable: $LARDER_BIN (build it or set LARDER_BIN)"
    LARDER_URL="${LARDER_SCHEME:-http}://127.0.0.1:$port"
    echo "==== larder serve --config $cfg ($(date -u +%FT%TZ))" >>"$LARDER_LOG"
    "$LARDER_BIN" serve --config "$cfg" 2>>"$LARDER_LOG" &
    LARDER_PID=$!
    track_pid "$LARDER_PID"
    local deadline=$((SECONDS + 10))
    until curl -fsS -k --max-time 2 "$LARDER_URL/-/health" >/dev/null 2>&1; do
        pid_alive "$LARDER_PID" || fail "larder exited during start-up (config $cfg)"
        [ "$SECONDS" -lt "$deadline" ] || fail "larder did not answer $LARDER_URL/-/health within 10 s"
        sleep 0.1
    done
    pass "larder up on $LARDER_URL"
}

# stop_larder - SIGTERM, wait, SIGKILL after 10 s
stop_larder() {
    [ -n "${LARDER_PID:-}" ] || return 0
    stop_pid "$LARDER_PID" TERM
    LARDER_PID=
    check_sanitizers
}

# check_sanitizers - an ASan/UBSan/LSan report in the daemon's log fails the test (sanitizer builds)
check_sanitizers() {
    [ -n "${LARDER_LOG:-}" ] && [ -f "$LARDER_LOG" ] || return 0
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LARDER_LOG"; then
        grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LARDER_LOG" | sed -n 1,60p >&2
        fail "sanitizer report in $LARDER_LOG"
    fi
}

# kill9_larder - crash it
kill9_larder() {
    [ -n "${LARDER_PID:-}" ] || return 0
    kill -9 "$LARDER_PID" 2>/dev/null || true
    wait "$LARDER_PID" 2>/dev/null || true
    untrack_pid "$LARDER_PID"
    LARDER_PID=
}

# api METHOD PATH [CURL ARGS...] -> prints the body; the status is kept for api_status (works inside $(...) too).
# Uses the admin token.
api() {
    local method=$1 path=$2
    shift 2
    local out code
    out=$(mktemp "$WORK/api.XXXXXX")
    code=$(curl -sS -k -o "$out" -w '%{http_code}' --max-time 30 -X "$method" \
        -H "Authorization: Bearer $ADMIN_TOKEN" "$@" -- "$LARDER_URL/-/api/v1/$path" 2>/dev/null) || true
    echo "${code:-000}" >"$WORK/api.status"
    cat "$out"
    rm -f "$out"
}
# the HTTP status of the last api call
api_status() { cat "$WORK/api.status" 2>/dev/null || echo 000; }

# metric NAME [LABEL_SUBSTRING] -> sum of matching Prometheus samples (0 when absent)
metric() {
    local name=$1 label=${2:-}
    curl -sS -k --max-time 10 "$LARDER_URL/-/metrics" 2>/dev/null | awk -v n="$name" -v l="$label" '
        /^#/ { next }
        { split($1, a, "{"); if (a[1] != n) next; if (l != "" && index($1, l) == 0) next; s += $NF }
        END { printf "%.0f\n", s }'
}

# json_get JSON EXPR -> python expression on `d` (the parsed JSON), printed
json_get() {
    "$PY" -c 'import json, sys
d = json.loads(sys.argv[1])
r = eval(sys.argv[2])
print(json.dumps(r) if isinstance(r, (dict, list)) else r)' "$1" "$2"
}

# larder_log_has REGEX - grep the current larder log
larder_log_has() { grep -Eq -- "$1" "$LARDER_LOG"; }
