#!/usr/bin/env bash
# test_ui.sh - the admin web UI (/-/ui/) in a real browser: Debian's chromium driven by playwright-core
# (tests/tools, pinned) runs tests/ui/ui.mjs against the real daemon with real local upstreams (nginx files origin
# with a slow path, a PEP 503/691 index, verdaccio with published packages, a rubygems repo). The browser pastes a
# real requirements.txt, package-lock.json and Gemfile.lock and waits for each job to finish; a job with a missing
# item shows its reason; cancel and retry; the traffic charts after real traffic; browse, pin, delete; pin sets,
# spec export, bundle download, recording, unpin; the client snippets; every page without console errors and, at
# 390 px, without horizontal overflow; the daemon stopped (the page must say "cannot reach Larder") and started again.
#
# Screenshots of every page (desktop and 390 px) and results.json go to $UI_SCREENSHOTS, by default
# <build dir>/ui-screenshots (the directory of $LARDER_BIN: build/ui-screenshots in `make test`).
# Needs chromium (scripts/install-deps) and tests/tools (scripts/install-test-tools). About 3-4 minutes; the browser
# is the point here, not the daemon's memory safety, so it does not run again under ASan:
# ctest-labels: integration
# ctest-timeout: 1200
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/pypi_fixture.sh"
. "$LIB_DIR/npm_fixture.sh"
. "$LIB_DIR/gems_fixture.sh"

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PW=$REPO/tests/tools/node_modules/playwright-core/package.json
[ -x "$CHROMIUM" ] || fail "$CHROMIUM not found: install Debian's chromium (scripts/install-deps)"
[ -f "$PW" ] || fail "playwright-core is not installed in tests/tools: run scripts/install-test-tools"
command -v node >/dev/null 2>&1 || fail "node not found"

OUT=${UI_SCREENSHOTS:-$(cd "$(dirname "$LARDER_BIN")" && pwd)/ui-screenshots}
rm -rf "$OUT"
mkdir -p "$OUT"

LP=$(free_port)  # larder
NP=$(free_port)  # files origin (nginx)
IP=$(free_port)  # pypi index
FP=$(free_port)  # pypi files host
VP=$(free_port)  # verdaccio
GP=$(free_port)  # gems

# ---- upstreams ----------------------------------------------------------------------------------------------------
ORIG=$WORK/origin
for f in a b c d e; do make_file "$ORIG/root/x/$f.bin" $((20000 + RANDOM)); done
for i in 1 2 3 4; do make_file "$ORIG/root/slow/s$i.bin" 3000000; done
# the slow path keeps a seed job running long enough to be cancelled from the browser
NGINX_EXTRA='location /slow/ { limit_rate 50k; }' start_nginx "$ORIG" "$NP"

PYX=$WORK/pypi
make_pypi_index "$PYX" "$FP"
start_pypi_upstream "$PYX" "$IP" "$FP"

NPX=$WORK/npm
make_npm_packages "$NPX"
start_verdaccio "$WORK/verdaccio" "$VP"
publish_npm_packages "$NPX" "$VERDACCIO_URL"
make_npm_lockfile "$NPX" "$VERDACCIO_URL"

GR=$WORK/gems
make_gems_repo "$GR"
start_gems_upstream "$GR" "$GP"

REQS=$PYX/root/requirements.txt
LOCK=$NPX/app-public/package-lock.json # resolved URLs of registry.npmjs.org, as a developer's lockfile has them
GEMLOCK=$GR/app/Gemfile.lock           # remote https://rubygems.org/
for f in "$REQS" "$LOCK" "$GEMLOCK"; do [ -s "$f" ] || fail "fixture $f is missing"; done

# ---- larder -------------------------------------------------------------------------------------------------------
CFG=$WORK/larder.yaml
write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
pypi:
  upstream: http://127.0.0.1:$IP/simple/
npm:
  upstream: $VERDACCIO_URL/
gems:
  upstream: $GEMS_UPSTREAM_URL/
EOF
start_larder "$CFG" "$LP"

# traffic for the charts and the hit ratio: every file twice (a miss, then a hit), a project page
for f in a b c d; do
    for _ in 1 2; do fetch "$LARDER_URL/files/origin/x/$f.bin" /dev/null >/dev/null || fail "GET $f.bin through larder"; done
done
fetch "$LARDER_URL/pypi/simple/alpha/" /dev/null >/dev/null || fail "GET a pypi page through larder"

# ---- the browser ----------------------------------------------------------------------------------------------------
CTL=$WORK/ui-ctl
mkdir -p "$CTL"
UI_LOG=$WORK/ui.log
LARDER_URL=$LARDER_URL ADMIN_TOKEN=$ADMIN_TOKEN UI_OUT=$OUT UI_CTL=$CTL CHROMIUM=$CHROMIUM \
    UI_REQUIREMENTS=$REQS UI_PACKAGE_LOCK=$LOCK UI_GEMFILE_LOCK=$GEMLOCK UI_ORIGIN_ROOT=$ORIG/root UI_ORIGIN_PORT=$NP \
    timeout 900 node "$REPO/tests/ui/ui.mjs" >"$UI_LOG" 2>&1 </dev/null &
NODE_PID=$!
track_pid "$NODE_PID"
# the browser test asks (through $CTL/request) for the daemon to be stopped and started again
while pid_alive "$NODE_PID"; do
    if [ -f "$CTL/request" ]; then
        req=$(cat "$CTL/request")
        rm -f "$CTL/request"
        case "$req" in
        stop) stop_larder ;;
        start) start_larder "$CFG" "$LP" ;;
        *) log "unknown request from ui.mjs: $req" ;;
        esac
        touch "$CTL/ack-$req"
    fi
    sleep 0.2
done
rc=0
wait "$NODE_PID" || rc=$?
untrack_pid "$NODE_PID"
cat "$UI_LOG" >&2

# every browser check is one check here
while IFS= read -r line; do
    case "$line" in
    "ok - "*) pass "${line#ok - }" ;;
    "FAIL - "*) CONTINUE_ON_FAIL=1 fail "${line#FAIL - }" ;;
    esac
done <"$UI_LOG"
grep -qE '^ui: [0-9]+ passed, [0-9]+ failed$' "$UI_LOG" || CONTINUE_ON_FAIL=1 fail "ui.mjs did not finish (exit $rc)"
[ "$rc" = 0 ] || [ "$T_FAILED" -gt 0 ] || CONTINUE_ON_FAIL=1 fail "ui.mjs exited $rc"
n=$(find "$OUT" -maxdepth 1 -name '*.png' | wc -l)
assert_gt "$n" 10 "screenshots in $OUT"
log "screenshots: $OUT"

stop_larder
finish
