#!/usr/bin/env bash
# test_watchdog.sh - the systemd watchdog is pinged only while every worker's event loop answers (issue 15), and
# socket activation keeps working, in one run:
#   the daemon is started by systemd-socket-activate (the socket is bound by it, handed over as LISTEN_FDS and the
#   daemon execs on the first connection, as systemd does), with NOTIFY_SOCKET pointing at a datagram socket read
#   by a small python listener, WATCHDOG_USEC=2000000 and WATCHDOG_PID=<its pid> (the wrapper exports its own $$ and
#   execs, so the pid is the daemon's);
#   READY=1 arrives, a real file is fetched through the activated socket, WATCHDOG=1 arrives regularly;
#   the test hook (LARDER_TEST_HOOKS=1) blocks worker 1's loop for 4 s: the pings stop for the stall, the warn
#   line and STATUS= name worker 1, then the pings and STATUS=serving come back and the recovery is logged;
#   the fetch thread's loop blocked for 4 s (worker=fetch) stops the pings too, and a miss meanwhile waits for it;
#   the hook answers 401 without the token, 400 for a worker that does not exist, and 404 (with the token) on a
#   daemon started without LARDER_TEST_HOOKS.
. "$(dirname "$0")/lib.sh"

command -v systemd-socket-activate >/dev/null || fail "systemd-socket-activate not found (Debian package systemd)"

NP=$(free_port)
LP=$(free_port)
ORIG=$WORK/origin
make_file "$ORIG/root/x/a.bin" 200000
start_nginx "$ORIG" "$NP"

CFG=$WORK/larder.yaml
write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
threads: 2
files:
  mirrors:
    - name: m
      url: http://127.0.0.1:$NP/
EOF

# ---- the notify socket: every datagram as "<unix time> <message, newlines as |>" -----------------------------------
NSOCK=$WORK/notify.sock
NLOG=$WORK/notify.txt
"$PY" -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        m = s.recv(4096).decode("utf-8", "replace")
        out.write("%.3f %s\n" % (time.time(), m.replace("\n", "|")))
        out.flush()' "$NSOCK" "$NLOG" 2>"$WORK/notify-listener.log" &
track_pid $!
wait_for "notify socket" 5 test -S "$NSOCK" || fail "the notify listener did not bind $NSOCK"

# ---- the daemon, socket-activated, with the watchdog ---------------------------------------------------------------
# systemd-socket-activate passes on only the variables named with -E: the sanitizers' options when set
pass_env=(-E NOTIFY_SOCKET -E WATCHDOG_USEC -E WATCHDOG_PID -E LARDER_TEST_HOOKS -E PATH)
for v in ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS LARDER_LOG_LEVEL; do
    [ -n "${!v:-}" ] && pass_env+=(-E "$v")
done
LARDER_LOG=$WORK/larder.log
LARDER_URL=http://127.0.0.1:$LP
NOTIFY_SOCKET=$NSOCK WATCHDOG_USEC=2000000 LARDER_TEST_HOOKS=1 \
    bash -c 'export WATCHDOG_PID=$$; exec systemd-socket-activate -l "127.0.0.1:$1" "${@:2}"' _ "$LP" \
    "${pass_env[@]}" "$LARDER_BIN" serve --config "$CFG" 2>>"$LARDER_LOG" &
LARDER_PID=$!
track_pid "$LARDER_PID"
wait_for "the activated socket" 10 port_open "$LP" || fail "systemd-socket-activate did not listen on $LP"
# the first connection makes it exec larder (the same pid); larder then answers on the socket it inherited
deadline=$((SECONDS + 15))
until health_ok; do
    pid_alive "$LARDER_PID" || fail "larder exited during start-up"
    [ "$SECONDS" -lt "$deadline" ] || fail "larder did not answer /-/health over the activated socket within 15 s"
    sleep 0.2
done
pass "larder up over the activated socket"
assert_match "$(cat "$LARDER_LOG")" 'listening on systemd socket 0' "larder took the socket from LISTEN_FDS"
assert_not_contains "$(cat "$LARDER_LOG")" "listening on http://" "larder bound no socket of its own"
assert_eq "larder" "$(ps -o comm= -p "$LARDER_PID")" "WATCHDOG_PID is the daemon's pid (the wrapper exec'd)"
wait_for "READY=1" 5 grep -q 'READY=1' "$NLOG" || fail "READY=1 never arrived on NOTIFY_SOCKET"
pass "READY=1 arrived"

# a real request over the activated socket: a miss fetched from nginx, then a hit
out=$(fetch "$LARDER_URL/files/m/x/a.bin" "$WORK/a1")
assert_eq "200 MISS" "$out" "first fetch over the activated socket"
assert_eq "$(sha256_file "$ORIG/root/x/a.bin")" "$(sha256_file "$WORK/a1")" "body fetched through the activated socket"
assert_cache_soon "$LARDER_URL/files/m/x/a.bin" HIT

# journald takes the log when its socket exists (log.c): the log lines are then checked there only through STATUS=
log_here=1
[ -S /run/systemd/journal/socket ] && log_here=0

# ---- healthy: WATCHDOG=1 regularly -------------------------------------------------------------------------------
# pings_between FROM TO -> the unix times of the WATCHDOG=1 datagrams in [FROM, TO], one a line
pings_between() { awk -v a="$1" -v b="$2" '$2 ~ /WATCHDOG=1/ && $1 >= a && $1 <= b { print $1 }' "$NLOG"; }
# max_gap FROM TO -> the longest time in ms without a ping in [FROM, TO] (the edges count)
max_gap() {
    pings_between "$1" "$2" | awk -v a="$1" -v b="$2" '
        { g = $1 - p; if (NR == 1) g = $1 - a; if (g > m) m = g; p = $1 }
        END { if (NR == 0) m = b - a; else if (b - p > m) m = b - p; printf "%d\n", m * 1000 }'
}
now() { date +%s.%N; }
t0=$(now)
sleep 4
t1=$(now)
n=$(pings_between "$t0" "$t1" | wc -l)
assert_gt "$n" 3 "WATCHDOG=1 pings in 4 s of a healthy daemon (every 0.5 s expected), got $n"
assert_le "$(max_gap "$t0" "$t1")" 1900 "the longest gap between pings of a healthy daemon (ms; systemd wants one within 2 s)"
assert_contains "$(cat "$LARDER_LOG")" "systemd watchdog: every 2.0 s; pinged while every worker's and the fetch thread's loop answers within 1.0 s"

# ---- the hook's gate ----------------------------------------------------------------------------------------------
assert_status "$LARDER_URL/-/debug/stall?worker=1&seconds=4" 401 -X POST
assert_status "$LARDER_URL/-/debug/stall?worker=2&seconds=4" 400 -X POST -H "Authorization: Bearer $ADMIN_TOKEN"
assert_status "$LARDER_URL/-/debug/stall?worker=1&seconds=0" 400 -X POST -H "Authorization: Bearer $ADMIN_TOKEN"
assert_status "$LARDER_URL/-/debug/stall?worker=1&seconds=4" 405 -H "Authorization: Bearer $ADMIN_TOKEN"

# ---- worker 1 stalled for 4 s: no ping while it is stuck ----------------------------------------------------------
ts=$(now)
# in the background: when worker 1 took the request itself, its answer may come after the stall
curl -sS -o "$WORK/stall.json" -w '%{http_code}' --max-time 15 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" \
    "$LARDER_URL/-/debug/stall?worker=1&seconds=4" >"$WORK/stall.status" 2>&1 &
stall_curl=$!
track_pid "$stall_curl"
stuck_logged() { grep -q 'STATUS=stuck: worker 1 has not answered a heartbeat' "$NLOG"; }
wait_for "STATUS=stuck naming worker 1" 4 stuck_logged || fail "no STATUS= naming worker 1 within 4 s of the stall"
pass "STATUS= names worker 1"
if [ "$log_here" = 1 ]; then
    wait_for "warn line" 2 larder_log_has 'watchdog: worker 1 has not answered a heartbeat for [0-9.]+ s \(limit 1.0 s\): its event loop is blocked; not pinging the systemd watchdog' ||
        fail "no warn line naming worker 1"
    pass "the warn line names worker 1"
fi
recovered() { awk -v a="$ts" '$1 > a && /STATUS=stuck/ { s = 1 } s && /STATUS=serving/ { f = 1 } END { exit !f }' "$NLOG"; }
wait_for "recovery" 8 recovered || fail "STATUS=serving did not come back within 8 s of the stall's end"
tr=$(now)
sleep 2
te=$(now)
wait "$stall_curl" 2>/dev/null || true
untrack_pid "$stall_curl"
assert_eq 202 "$(cat "$WORK/stall.status")" "the stall hook answered 202"
assert_eq 1 "$(json_get "$(cat "$WORK/stall.json")" 'd["worker"]')" "the hook stalled worker 1"

# the pings stopped: from the stall's start to the recovery, a gap of at least 2.5 s (4 s stall, 1 s limit)
gap=$(max_gap "$ts" "$tr")
assert_gt "$gap" 2500 "the longest time without WATCHDOG=1 during the 4 s stall (ms), got $gap"
# ...and come back after it
n=$(pings_between "$tr" "$te" | wc -l)
assert_gt "$n" 1 "WATCHDOG=1 pings in the 2 s after the recovery, got $n"
assert_le "$(max_gap "$tr" "$te")" 1900 "the longest gap between pings after the recovery (ms)"
# a stall is one episode: STATUS=stuck sent once
assert_eq 1 "$(awk -v a="$ts" '$1 > a && /STATUS=stuck/' "$NLOG" | wc -l)" "one STATUS=stuck for one stall"
if [ "$log_here" = 1 ]; then
    assert_eq 1 "$(grep -c 'watchdog: worker 1 has not answered' "$LARDER_LOG")" "the stall is logged once"
    assert_match "$(cat "$LARDER_LOG")" 'watchdog: every thread answers again \(worker 1 was stuck for [0-9.]+ s\); pinging the systemd watchdog again'
fi
# ---- the fetch thread stalled for 4 s: the pings stop too, and a miss waits for it ----------------------------------
make_file "$ORIG/root/x/b.bin" 100000
tf=$(now)
api_stall=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" \
    "$LARDER_URL/-/debug/stall?worker=fetch&seconds=4")
assert_eq 202 "$api_stall" "the stall hook for the fetch thread answered 202"
out=$(fetch "$LARDER_URL/files/m/x/b.bin" "$WORK/b1")
assert_eq "200 MISS" "$out" "a miss during the fetch thread's stall is served once it resumes"
assert_eq "$(sha256_file "$ORIG/root/x/b.bin")" "$(sha256_file "$WORK/b1")" "the body fetched after the stall"
fetch_stuck() { awk -v a="$tf" '$1 > a && /STATUS=stuck: the fetch thread has not answered/ { f = 1 } END { exit !f }' "$NLOG"; }
wait_for "STATUS=stuck naming the fetch thread" 3 fetch_stuck || fail "no STATUS= naming the fetch thread"
pass "STATUS= names the fetch thread"
# STATUS=serving after the STATUS=stuck of this stall
fetch_recovered() { awk -v a="$tf" '$1 > a && /STATUS=stuck/ { s = 1 } s && /STATUS=serving/ { f = 1 } END { exit !f }' "$NLOG"; }
wait_for "recovery from the fetch stall" 8 fetch_recovered || fail "STATUS=serving did not come back after the fetch stall"
tfr=$(now)
gap=$(max_gap "$tf" "$tfr")
assert_gt "$gap" 2500 "the longest time without WATCHDOG=1 during the fetch thread's 4 s stall (ms), got $gap"
if [ "$log_here" = 1 ]; then
    assert_match "$(cat "$LARDER_LOG")" 'watchdog: the fetch thread has not answered a heartbeat for [0-9.]+ s \(limit 1.0 s\)'
fi

# still serving on the activated socket, from both workers
for _ in 1 2 3 4 5 6; do assert_status "$LARDER_URL/files/m/x/a.bin" 200; done
pid_alive "$LARDER_PID" || fail "larder died"
stop_larder
assert_match "$(cat "$NLOG")" 'STOPPING=1' "STOPPING=1 at shutdown"

# ---- without LARDER_TEST_HOOKS the hook does not exist ------------------------------------------------------------
start_larder "$CFG" "$LP"
assert_status "$LARDER_URL/-/debug/stall?worker=0&seconds=1" 404 -X POST -H "Authorization: Bearer $ADMIN_TOKEN"
assert_not_contains "$(cat "$LARDER_LOG")" "LARDER_TEST_HOOKS=1" "no test-hook warning without the variable"
assert_status "$LARDER_URL/-/health" 200

finish
