#!/usr/bin/env bash
# test_npm.sh - the npm registry handler with the real npm CLI against a local verdaccio holding real packages:
# packument paths (scoped, %2f, dedicated listener, Host-based tarball URLs), full and abbreviated formats,
# `npm install` cold, `npm ci` warm with a lockfile whose resolved URLs name the public registry, `npm ci` and
# `npm install` with the upstream stopped and npm's cache empty, a tampered tarball refused and not cached, a new
# publish found by refreshing the packument, search/audit pass-through (503 at once offline), and seeding from a
# package-lock.json then installing with the upstream down.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/npm_fixture.sh"

VP=$(free_port)
LP=$(free_port)
NP=$(free_port)
FX=$WORK/fx
UPD=$WORK/verdaccio
NPMC=$WORK/npmc # npm's isolated configuration for the client runs
make_npm_packages "$FX"
start_verdaccio "$UPD" "$VP"
publish_npm_packages "$FX" "$VERDACCIO_URL"
make_npm_lockfile "$FX" "$VERDACCIO_URL"
U=$VERDACCIO_URL

CFG=$WORK/larder.yaml
write_config "$CFG" "$LP" "$WORK/data"
# a second listener, dedicated to npm (registry at /)
sed -i "/^    port: $LP\$/a\\  - address: 127.0.0.1\n    port: $NP\n    protocol: npm" "$CFG"
cat >>"$CFG" <<EOF
npm:
  ttl: 2s
  upstream: $U/
EOF
grep -q "protocol: npm" "$CFG" || fail "config: dedicated listener missing"
start_larder "$CFG" "$LP"
R=$LARDER_URL/npm
A='application/vnd.npm.install-v1+json'

jq_py() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- packuments: paths, formats, tarball URLs ---------------------------------------------------------------------
full=$(curl -sS "$R/@larder-test%2fcore")
assert_eq "@larder-test/core" "$(echo "$full" | jq_py 'd["name"]')" "scoped packument via %2f"
tb=$(echo "$full" | jq_py 'd["versions"]["1.1.0"]["dist"]["tarball"]')
assert_eq "$R/@larder-test/core/-/core-1.1.0.tgz" "$tb" "tarball URL rewritten to this registry"
assert_contains "$(echo "$full" | jq_py '"readme" in d')" "True" "the full packument keeps the readme"
assert_eq "$full" "$(curl -sS "$R/@larder-test%2Fcore")" "%2F is the same packument"
assert_eq "$full" "$(curl -sS "$R/@larder-test/core")" "@scope/name is the same packument"
hdr=$(curl -sS -o "$WORK/abbr.json" -D - -H "Accept: $A" "$R/@larder-test%2fcore" | tr -d '\r' | tr 'A-Z' 'a-z')
assert_contains "$hdr" "content-type: $A" "abbreviated packument on Accept"
assert_contains "$hdr" "vary: accept" "Vary: Accept"
assert_eq "False" "$(jq_py '"readme" in d' <"$WORK/abbr.json")" "abbreviated drops the readme"
assert_eq "True" "$(jq_py '"time" in d and "1.1.0" in d["time"]' <"$WORK/abbr.json")" "abbreviated keeps time (pnpm)"
assert_eq "1.1.0" "$(jq_py 'd["dist-tags"]["latest"]' <"$WORK/abbr.json")" "dist-tags kept"
assert_eq "True" "$(jq_py 'd["versions"]["1.0.0"]["dist"]["integrity"].startswith("sha512-")' <"$WORK/abbr.json")" \
    "integrity kept"
assert_eq "True" "$(curl -sS -H "Accept: $A" "$R/larder-test-native" | jq_py 'd["versions"]["1.0.0"].get("hasInstallScript")')" \
    "hasInstallScript in the abbreviated packument"
# the base follows the request: Host header, dedicated listener
tbh=$(curl -sS -H 'Host: larder.test:8080' "$R/larder-test-colors" | jq_py 'd["versions"]["1.0.0"]["dist"]["tarball"]')
assert_eq "http://larder.test:8080/npm/larder-test-colors/-/larder-test-colors-1.0.0.tgz" "$tbh" "tarball URL from Host"
assert_status "$R/larder-test-colors" 400 -H 'Host: bad"host'
D=http://127.0.0.1:$NP
tbd=$(curl -sS "$D/larder-test-colors" | jq_py 'd["versions"]["1.0.0"]["dist"]["tarball"]')
assert_eq "$D/larder-test-colors/-/larder-test-colors-1.0.0.tgz" "$tbd" "dedicated listener: registry at /"
assert_status "$D/-/ping" 200
assert_status "$R/-/ping" 200
# misses and refusals
assert_status "$R/no-such-package" 404
assert_status "$R/no-such-package" 404
assert_status "$R/.hidden" 400
assert_status "$R/larder-test-colors/-/../../../etc/passwd" 400 --path-as-is
assert_status "$R/larder-test-colors/-/larder-test-colors-9.9.9.tgz" 404
assert_eq 0 "$(verdaccio_count "$UPD" GET /larder-test-colors/-/larder-test-colors-9.9.9.tgz)" "unlisted tarball not fetched"
assert_status "$R/larder-test-colors" 405 -X PUT -d '{}'

# an abbreviated packument's first request fetches the full one upstream: it says MISS, not HIT; then HIT
assert_cache "$R/larder-test-assets" MISS -H "Accept: $A"
assert_cache "$R/larder-test-assets" HIT -H "Accept: $A"
assert_cache "$R/larder-test-assets" HIT

# ---- npm install, cold --------------------------------------------------------------------------------------------
mkdir -p "$WORK/cold" && cp "$FX/app/package.json" "$WORK/cold/"
rc=0
npm_isolated "$NPMC" install --prefix "$WORK/cold" --registry "$R/" >"$WORK/npm-cold.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "npm install (cold) through larder: $(tail -5 "$WORK/npm-cold.log" | tr '\n' ' ')"
check_tree() { # check_tree DIR
    local d=$1/node_modules
    [ -f "$d/@larder-test/core/package.json" ] || fail "$1: @larder-test/core missing"
    [ -f "$d/larder-test-native/built.txt" ] || fail "$1: the postinstall script did not run"
    [ -e "$d/.bin/larder-test-cli" ] || fail "$1: bin link missing"
    [ -f "$d/larder-test-cli/node_modules/@larder-test/core/package.json" ] || fail "$1: nested core 2.0.0 missing"
    (cd "$1" && node -e 'require("larder-test-server"); require("larder-test-cli/package.json")') ||
        fail "$1: the installed packages do not load"
    pass "$1: the tree is complete and loads"
}
check_tree "$WORK/cold"
assert_contains "$(grep '"resolved"' "$WORK/cold/package-lock.json" | sed -n 1p)" "$R/" "npm recorded our tarball URLs"
assert_eq 1 "$(verdaccio_count "$UPD" GET /larder-test-assets/-/larder-test-assets-1.0.0.tgz)" "tarball fetched once"

# ---- npm ci, warm, with a lockfile that names the public registry ---------------------------------------------------
before=$(verdaccio_requests "$UPD" | grep -c '\.tgz$' || true)
mkdir -p "$WORK/warm" && cp "$FX/app-public/package.json" "$FX/app-public/package-lock.json" "$WORK/warm/"
rc=0
npm_isolated "$NPMC" ci --prefix "$WORK/warm" --registry "$R/" >"$WORK/npm-warm.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "npm ci (warm, resolved URLs on registry.npmjs.org): $(tail -5 "$WORK/npm-warm.log" | tr '\n' ' ')"
check_tree "$WORK/warm"
assert_eq "$before" "$(verdaccio_requests "$UPD" | grep -c '\.tgz$' || true)" "warm: no tarball fetched upstream"
assert_cache "$R/larder-test-assets/-/larder-test-assets-1.0.0.tgz" HIT
assert_eq "" "$(http_header "$R/larder-test-assets/-/larder-test-assets-1.0.0.tgz" Content-Encoding -H 'Accept-Encoding: gzip')" \
    "tarballs are never gzip-encoded"

# ---- search passes through ------------------------------------------------------------------------------------------
assert_status "$R/-/v1/search?text=larder&size=5" 200
assert_cache "$R/-/v1/search?text=larder&size=5" BYPASS

# ---- a tampered tarball is refused and not cached ------------------------------------------------------------------
tgz=$(find "$UPD/storage" -name 'core-1.0.0.tgz' | sed -n 1p)
[ -n "$tgz" ] || fail "verdaccio's copy of core-1.0.0.tgz not found"
printf 'tampered' | dd of="$tgz" bs=1 seek=100 conv=notrunc 2>/dev/null
TF=$R/@larder-test/core/-/core-1.0.0.tgz
crc=0
got=$(curl -sS -o "$WORK/tampered.tgz" -w '%{http_code}' "$TF" 2>/dev/null) || crc=$?
if [ "$got" = 200 ] && [ "$crc" = 0 ]; then fail "a tarball that does not match its integrity was served whole"; fi
pass "tampered tarball refused (HTTP $got, curl exit $crc)"
n1=$(verdaccio_count "$UPD" GET /@larder-test/core/-/core-1.0.0.tgz)
curl -sS -o /dev/null "$TF" 2>/dev/null || true
assert_eq $((n1 + 1)) "$(verdaccio_count "$UPD" GET /@larder-test/core/-/core-1.0.0.tgz)" "not cached: asked upstream again"
larder_log_has 'integrity mismatch' || fail "the log names the integrity mismatch"

# ---- a new publish: the packument is refreshed once for a tarball it does not list ----------------------------------
curl -sS -o /dev/null "$R/larder-test-colors" # fresh in the cache
mkdir -p "$WORK/newpkg"
cat >"$WORK/newpkg/package.json" <<EOF
{"name": "larder-test-colors", "version": "1.0.1", "main": "index.js", "license": "MIT"}
EOF
echo 'module.exports = "1.0.1";' >"$WORK/newpkg/index.js"
(cd "$WORK/newpkg" && npm_isolated "$FX" publish --registry "$U/") >"$WORK/publish-new.log" 2>&1 ||
    fail "publishing larder-test-colors 1.0.1 failed: $(tail -5 "$WORK/publish-new.log")"
r=$(fetch "$R/larder-test-colors/-/larder-test-colors-1.0.1.tgz" "$WORK/colors-1.0.1.tgz") || fail "GET new version"
assert_eq "200 MISS" "$r" "a version published after the packument was cached"
assert_contains "$(curl -sS "$R/larder-test-colors")" '"1.0.1"' "the refreshed packument lists it"

# ---- offline: upstream stopped, packuments past their TTL, npm's cache empty -----------------------------------------
sleep 2.2
stop_pid "$VERDACCIO_PID"
assert_cache "$R/@larder-test%2fcore" STALE -H "Accept: $A"
mkdir -p "$WORK/off-ci" && cp "$FX/app-public/package.json" "$FX/app-public/package-lock.json" "$WORK/off-ci/"
rc=0
npm_isolated "$NPMC" ci --prefix "$WORK/off-ci" --registry "$R/" >"$WORK/npm-off-ci.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "npm ci with the upstream down: $(tail -5 "$WORK/npm-off-ci.log" | tr '\n' ' ')"
check_tree "$WORK/off-ci"
mkdir -p "$WORK/off-install" && cp "$FX/app/package.json" "$WORK/off-install/"
rc=0
npm_isolated "$NPMC" install --prefix "$WORK/off-install" --registry "$D/" >"$WORK/npm-off-install.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "npm install (no lockfile, dedicated listener) with the upstream down: $(tail -5 "$WORK/npm-off-install.log" | tr '\n' ' ')"
check_tree "$WORK/off-install"
# search and audit answer at once instead of hanging
t0=$SECONDS
assert_status "$R/-/v1/search?text=larder" 503
assert_status "$R/-/npm/v1/security/advisories/bulk" 503 -X POST -H 'Content-Type: application/json' -d '{}'
assert_le $((SECONDS - t0)) 2 "search/audit answered within 2 s with the upstream down"
stop_larder

# offline: true, same answers
sed -i 's/^offline: false/offline: true/' "$CFG"
start_larder "$CFG" "$LP"
assert_cache "$R/larder-test-logger" STALE
assert_status "$R/-/v1/search?text=x" 503
assert_status "$R/never-seen-package" 504
stop_larder

# ---- seeding from a lockfile, then npm ci with the upstream down ---------------------------------------------------------
start_verdaccio "$UPD" "$VP"
CFG2=$WORK/larder2.yaml
write_config "$CFG2" "$LP" "$WORK/data2"
cat >>"$CFG2" <<EOF
npm:
  upstream: $U/
EOF
start_larder "$CFG2" "$LP"
mkdir -p "$WORK/seed/app"
cp "$FX/app-public/package-lock.json" "$WORK/seed/app/"
cat >"$WORK/seed/seed.yaml" <<EOF
pin_set: frontend
npm:
  lockfiles: [app/package-lock.json]
  packages: ["larder-test-colors@1.0.1"]
EOF
rc=0
timeout 180 "$LARDER_BIN" seed --config "$CFG2" "$WORK/seed/seed.yaml" >"$WORK/seed.log" 2>&1 </dev/null || rc=$?
assert_eq 0 "$rc" "larder seed with a package-lock.json: $(tail -5 "$WORK/seed.log" | tr '\n' ' ')"
assert_match "$(cat "$WORK/seed.log")" "pin set frontend: [0-9]+ pinned, 0 failed" "seed summary"
cat >"$WORK/seed/bad.yaml" <<EOF
pin_set: bad
npm:
  packages: ["larder-test-colors@^1.0.0"]
EOF
rc=0
timeout 60 "$LARDER_BIN" seed --config "$CFG2" "$WORK/seed/bad.yaml" >"$WORK/seed-bad.log" 2>&1 </dev/null || rc=$?
assert_ne 0 "$rc" "a range is refused"
assert_contains "$(cat "$WORK/seed-bad.log")" "not pinned to an exact version" "the error says why"
stop_pid "$VERDACCIO_PID"
mkdir -p "$WORK/seeded" && cp "$FX/app-public/package.json" "$FX/app-public/package-lock.json" "$WORK/seeded/"
rc=0
npm_isolated "$NPMC" ci --prefix "$WORK/seeded" --registry "$R/" >"$WORK/npm-seeded.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "npm ci from the seeded cache, upstream down: $(tail -5 "$WORK/npm-seeded.log" | tr '\n' ' ')"
check_tree "$WORK/seeded"
assert_cache "$R/larder-test-colors/-/larder-test-colors-1.0.1.tgz" HIT

# ---- yarn 1 and npm share one upstream packument per package --------------------------------------------------------
# npm 11 asks for the full packument (Accept: application/json), yarn 1 for the abbreviated one
# (application/vnd.npm.install-v1+json; q=1.0, ...): the upstream is asked for the full one once and the abbreviated
# one is derived from it, also when Larder has no upstream (offline: true). Both directions.
stop_larder
YARN=$REPO/tests/tools/node_modules/.bin/yarn
[ -x "$YARN" ] || fail "yarn 1 not installed ($YARN): run make test-tools"
start_verdaccio "$UPD" "$VP"
yarn_isolated() { # yarn_isolated DIR REGISTRY ARGS... : empty cache, no ~/.yarnrc, no self-update check
    local dir=$1 reg=$2
    shift 2
    printf 'registry "%s"\ndisable-self-update-check true\n' "$reg" >"$dir/.yarnrc"
    mkdir -p "$dir/.home"
    (cd "$dir" && HOME=$dir/.home timeout 240 "$YARN" "$@" --cache-folder "$(mktemp -d "$WORK/yarn-cache.XXXXXX")" \
        --non-interactive --no-progress --network-timeout 5000)
}
packument_gets() { # upstream GETs of the fixture's 12 packuments
    local n=0 p
    for p in /@larder-test%2fcore /@larder-test%2futil /@larder-test%2fconfig /@larder-test%2ftypes /larder-test-left-pad \
        /larder-test-colors /larder-test-logger /larder-test-cli /larder-test-server /larder-test-native \
        /larder-test-docs /larder-test-assets; do
        n=$((n + $(verdaccio_count "$UPD" GET "$p")))
    done
    echo "$n"
}
CFG4=$WORK/larder4.yaml
for dir in npm-then-yarn yarn-then-npm; do
    rm -rf "$WORK/data4"
    write_config "$CFG4" "$LP" "$WORK/data4"
    printf 'npm:\n  upstream: %s/\n' "$U" >>"$CFG4"
    start_larder "$CFG4" "$LP"
    g0=$(packument_gets)
    mkdir -p "$WORK/$dir/online" "$WORK/$dir/offline"
    cp "$FX/app/package.json" "$WORK/$dir/online/"
    cp "$FX/app/package.json" "$WORK/$dir/offline/"
    rc=0
    if [ "$dir" = npm-then-yarn ]; then
        npm_isolated "$NPMC" install --prefix "$WORK/$dir/online" --registry "$R/" >"$WORK/$dir/online.log" 2>&1 || rc=$?
    else
        yarn_isolated "$WORK/$dir/online" "$R/" install >"$WORK/$dir/online.log" 2>&1 || rc=$?
    fi
    assert_eq 0 "$rc" "$dir: online install: $(tail -5 "$WORK/$dir/online.log" | tr '\n' ' ')"
    # the other client's form, still online: no second upstream GET
    [ "$dir" = npm-then-yarn ] && acc="application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*" ||
        acc="application/json"
    for p in @larder-test%2fcore @larder-test%2futil @larder-test%2fconfig @larder-test%2ftypes larder-test-left-pad \
        larder-test-colors larder-test-logger larder-test-cli larder-test-server larder-test-native larder-test-docs \
        larder-test-assets; do
        assert_status "$R/$p" 200 -H "Accept: $acc"
    done
    assert_eq 12 "$(($(packument_gets) - g0))" "$dir: one upstream packument GET per package (12 packages), both forms"
    stop_larder
    sed -i 's/^offline: false/offline: true/' "$CFG4"
    start_larder "$CFG4" "$LP"
    rc=0
    if [ "$dir" = npm-then-yarn ]; then
        yarn_isolated "$WORK/$dir/offline" "$R/" install >"$WORK/$dir/offline.log" 2>&1 || rc=$?
    else
        npm_isolated "$NPMC" install --prefix "$WORK/$dir/offline" --registry "$R/" >"$WORK/$dir/offline.log" 2>&1 || rc=$?
    fi
    assert_eq 0 "$rc" "$dir: the other client installs with larder offline: $(tail -5 "$WORK/$dir/offline.log" | tr '\n' ' ')"
    check_tree "$WORK/$dir/offline"
    assert_eq 12 "$(($(packument_gets) - g0))" "$dir: still one upstream packument GET per package"
    stop_larder
done
# yarn 1 fetches tarballs from the URLs its yarn.lock records and does not move them to the configured registry
# (it only swaps registry.npmjs.org for registry.yarnpkg.com when the registry is yarnpkg's): a yarn.lock naming
# another registry host bypasses Larder; with its URLs rewritten to Larder's it installs offline
yl=$WORK/npm-then-yarn/offline/yarn.lock
assert_contains "$(cat "$yl")" "resolved \"$R/" "yarn.lock records Larder's tarball URLs"
mkdir -p "$WORK/ylock" && cp "$FX/app/package.json" "$WORK/ylock/"
sed "s#$R/#$U/#g" "$yl" >"$WORK/ylock/yarn.lock"
sed -i 's/^offline: true/offline: false/' "$CFG4"
start_larder "$CFG4" "$LP"
t0=$(verdaccio_count "$UPD" GET /larder-test-assets/-/larder-test-assets-1.0.0.tgz)
rc=0
yarn_isolated "$WORK/ylock" "$R/" install --frozen-lockfile >"$WORK/ylock.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "yarn install with a yarn.lock naming the upstream host: $(tail -5 "$WORK/ylock.log" | tr '\n' ' ')"
assert_eq $((t0 + 1)) "$(verdaccio_count "$UPD" GET /larder-test-assets/-/larder-test-assets-1.0.0.tgz)" \
    "yarn 1 fetched the tarball from the host in yarn.lock, not through the configured registry"
stop_larder
sed -i 's/^offline: false/offline: true/' "$CFG4"
start_larder "$CFG4" "$LP"
mkdir -p "$WORK/ylock2" && cp "$FX/app/package.json" "$WORK/ylock2/"
sed "s#$U/#$R/#g" "$WORK/ylock/yarn.lock" >"$WORK/ylock2/yarn.lock"
rc=0
yarn_isolated "$WORK/ylock2" "$R/" install --frozen-lockfile >"$WORK/ylock2.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "yarn install offline after rewriting yarn.lock to Larder: $(tail -5 "$WORK/ylock2.log" | tr '\n' ' ')"
check_tree "$WORK/ylock2"
stop_larder

# ---- seeding: a lockfile without resolved URLs (omit-lockfile-registry-resolved); unseedable items fail -------------
CFG3=$WORK/larder3.yaml
write_config "$CFG3" "$LP" "$WORK/data3"
printf 'npm:\n  upstream: %s/\n' "$U" >>"$CFG3"
start_larder "$CFG3" "$LP"
mkdir -p "$WORK/nores/app" "$WORK/nores/git"
cp "$FX/app/package.json" "$WORK/nores/app/"
npm_isolated "$NPMC" install --package-lock-only --ignore-scripts --omit-lockfile-registry-resolved --registry "$U/" \
    --prefix "$WORK/nores/app" >"$WORK/nores-lock.log" 2>&1 ||
    fail "npm --omit-lockfile-registry-resolved: $(tail -5 "$WORK/nores-lock.log")"
assert_eq 0 "$(grep -c '"resolved"' "$WORK/nores/app/package-lock.json" || true)" "the lockfile records no resolved URLs"
assert_contains "$(cat "$WORK/nores/app/package-lock.json")" '"integrity": "sha512-' "but integrity"
printf 'pin_set: nores\nnpm:\n  lockfiles: [app/package-lock.json]\n' >"$WORK/nores/seed.yaml"
rc=0
timeout 180 "$LARDER_BIN" seed --config "$CFG3" "$WORK/nores/seed.yaml" >"$WORK/seed-nores.log" 2>&1 </dev/null || rc=$?
assert_eq 0 "$rc" "larder seed of a lockfile without resolved: $(tail -5 "$WORK/seed-nores.log" | tr '\n' ' ')"
assert_match "$(cat "$WORK/seed-nores.log")" "pin set nores: [1-9][0-9]* pinned, 0 failed" "every entry seeded"
# a git dependency and a tarball URL are failures; a link to a local directory is not fetched
"$PY" - "$WORK/nores/app/package-lock.json" "$WORK/nores/git/package-lock.json" <<'PYEOF'
import json, sys
lock = json.load(open(sys.argv[1]))
p = lock["packages"]
p["node_modules/gitdep"] = {"version": "1.0.0",
                            "resolved": "git+ssh://git@github.com/example/gitdep.git#0123456789abcdef0123456789abcdef01234567"}
p["node_modules/urldep"] = {"version": "1.0.0", "resolved": "https://example.invalid/downloads/urldep.tgz"}
p["node_modules/localdep"] = {"resolved": "../localdep", "link": True}
json.dump(lock, open(sys.argv[2], "w"), indent=2)
PYEOF
printf 'pin_set: gitdeps\nnpm:\n  lockfiles: [git/package-lock.json]\n' >"$WORK/nores/seed-git.yaml"
rc=0
timeout 180 "$LARDER_BIN" seed --config "$CFG3" "$WORK/nores/seed-git.yaml" >"$WORK/seed-git.log" 2>&1 </dev/null || rc=$?
assert_eq 1 "$rc" "larder seed exits 1 when a lockfile entry cannot be seeded"
out=$(cat "$WORK/seed-git.log")
assert_match "$out" "FAILED [^ ]*package-lock.json: node_modules/gitdep: a git dependency" "the git entry is listed"
assert_match "$out" "FAILED [^ ]*package-lock.json: node_modules/urldep: not resolved from a registry" "the URL entry is listed"
assert_not_contains "$(grep '^FAILED' <<<"$out" || true)" "localdep" "a link is no failure"
assert_match "$out" "pin set gitdeps: [1-9][0-9]* pinned, 2 failed" "both counted in the summary"
# git requirement lines in the pip section
cat >"$WORK/nores/requirements.txt" <<'REQEOF'
git+https://github.com/example/tool.git@v1.0#egg=tool
-e git+https://github.com/example/lib.git#egg=lib
REQEOF
printf 'pin_set: pipgit\npypi:\n  requirement_files: [requirements.txt]\n' >"$WORK/nores/seed-pip.yaml"
rc=0
timeout 60 "$LARDER_BIN" seed --config "$CFG3" "$WORK/nores/seed-pip.yaml" >"$WORK/seed-pip.log" 2>&1 </dev/null || rc=$?
assert_eq 1 "$rc" "larder seed exits 1 for git requirement lines"
out=$(cat "$WORK/seed-pip.log")
assert_match "$out" "FAILED [^ ]*requirements.txt: git\+https://github.com/example/tool.git@v1.0#egg=tool: .*pip section cannot seed git" \
    "a git+https line is a failure that says why"
assert_match "$out" "FAILED [^ ]*requirements.txt: -e git\+https://github.com/example/lib.git#egg=lib: .*pip section cannot seed git" \
    "an -e git+https line too"
assert_contains "$out" "pin set pipgit: 0 pinned, 2 failed" "both counted"
stop_pid "$VERDACCIO_PID"
mkdir -p "$WORK/nores-ci" && cp "$WORK/nores/app/package.json" "$WORK/nores/app/package-lock.json" "$WORK/nores-ci/"
rc=0
npm_isolated "$NPMC" ci --prefix "$WORK/nores-ci" --registry "$R/" >"$WORK/npm-nores-ci.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "npm ci of the lockfile without resolved, upstream down: $(tail -5 "$WORK/npm-nores-ci.log" | tr '\n' ' ')"
check_tree "$WORK/nores-ci"

finish
