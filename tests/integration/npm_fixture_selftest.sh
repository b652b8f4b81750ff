#!/usr/bin/env bash
# npm_fixture_selftest.sh - checks npm_fixture.sh on its own (no larder): verdaccio starts, the packages are
# packed and published, the lockfiles are written, and `npm ci` of the app installs everything (bin linked,
# postinstall run), once from the verdaccio lockfile and once from the public-registry lockfile (npm's
# replace-registry-host sends those to --registry). Prints how long each step took. Not a test_*.sh: ctest and
# run-all.sh do not run it; run it by hand after changing the fixture:  bash tests/integration/npm_fixture_selftest.sh
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/npm_fixture.sh"

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

UP=$WORK/npm
VP=$(free_port)

t=$(now)
start_verdaccio "$UP" "$VP"
log "verdaccio start: $(took "$t")"
assert_eq '{}' "$(curl -sS "$VERDACCIO_URL/-/ping")" "verdaccio answers /-/ping"
assert_status "$VERDACCIO_URL/no-such-package" 404
assert_eq 1 "$(verdaccio_count "$UP" GET /no-such-package)" "verdaccio_count counts one request once"

t=$(now)
make_npm_packages "$UP"
log "make packages (npm pack): $(took "$t")"
assert_eq 14 "$(wc -l <"$UP/tarballs/publish-order.txt")" "14 tarballs packed"

t=$(now)
publish_npm_packages "$UP" "$VERDACCIO_URL"
log "publish 14 tarballs + manifest: $(took "$t")"
M=$(cat "$UP/manifest.json")
assert_eq 12 "$(json_get "$M" 'len(d["packages"])')" "12 packages in the manifest"
assert_eq '["1.0.0", "1.1.0", "2.0.0"]' "$(json_get "$M" 'sorted(d["packages"]["@larder-test/core"]["versions"])')" \
    "@larder-test/core has 3 versions"
assert_eq '{"latest": "1.1.0", "next": "2.0.0"}' "$(json_get "$M" 'd["packages"]["@larder-test/core"]["dist_tags"]')" \
    "@larder-test/core dist-tags"
assert_eq "/@larder-test/core/-/core-1.1.0.tgz" \
    "$(json_get "$M" 'd["packages"]["@larder-test/core"]["versions"]["1.1.0"]["tarball_path"]')" "scoped tarball path"
assert_eq "larder-test-core-1.1.0.tgz" \
    "$(json_get "$M" 'd["packages"]["@larder-test/core"]["versions"]["1.1.0"]["file"]')" "scoped tarball file"
assert_match "$(json_get "$M" 'd["packages"]["larder-test-cli"]["versions"]["1.0.0"]["integrity"]')" '^sha512-' \
    "integrity in the manifest"
docs_size=$(curl -sS "$VERDACCIO_URL/larder-test-docs" | wc -c)
assert_gt "$docs_size" 50000 "larder-test-docs packument is big ($docs_size bytes)"
# npm publish itself GETs the packument (abbreviated, and full when that is a 404) before its PUT
n=$(verdaccio_count "$UP" GET /@larder-test%2fcore)
assert_status "$VERDACCIO_URL/@larder-test/core" 200
assert_eq $((n + 1)) "$(verdaccio_count "$UP" GET /@larder-test%2fcore)" "one more packument GET (%2f form)"
assert_eq $((n + 1)) "$(verdaccio_count "$UP" GET /@larder-test/core)" "the / form of a scoped name counts the same"
assert_eq 3 "$(verdaccio_count "$UP" PUT /@larder-test%2fcore)" "3 publishes of @larder-test/core"

t=$(now)
make_npm_lockfile "$UP" "$VERDACCIO_URL"
log "lockfile (npm install --package-lock-only): $(took "$t")"
L=$(cat "$UP/app/package-lock.json")
P=$(cat "$UP/app-public/package-lock.json")
assert_eq 3 "$(json_get "$L" 'd["lockfileVersion"]')" "lockfileVersion 3"
assert_eq 13 "$(json_get "$L" 'len([k for k in d["packages"] if k])')" "13 entries in the lockfile"
assert_eq "$VERDACCIO_URL/@larder-test/core/-/core-2.0.0.tgz" \
    "$(json_get "$L" 'd["packages"]["node_modules/larder-test-cli/node_modules/@larder-test/core"]["resolved"]')" \
    "nested @larder-test/core 2.0.0 resolved at verdaccio"
assert_eq "https://registry.npmjs.org/@larder-test/core/-/core-1.1.0.tgz" \
    "$(json_get "$P" 'd["packages"]["node_modules/@larder-test/core"]["resolved"]')" "public lockfile: npmjs URL"
assert_eq "$(json_get "$L" '[e.get("integrity") for e in d["packages"].values()]')" \
    "$(json_get "$P" '[e.get("integrity") for e in d["packages"].values()]')" "integrity kept in the public lockfile"
assert_eq "$(json_get "$M" 'd["packages"]["larder-test-assets"]["versions"]["1.0.0"]["integrity"]')" \
    "$(json_get "$L" 'd["packages"]["node_modules/larder-test-assets"]["integrity"]')" "manifest and lockfile agree"
assert_not_contains "$P" "127.0.0.1" "no verdaccio URL left in the public lockfile"

# check_install DIR - node_modules of the app as npm ci leaves it
check_install() {
    local app=$1 v
    for v in @larder-test/core @larder-test/util @larder-test/config @larder-test/types larder-test-left-pad \
        larder-test-colors larder-test-logger larder-test-cli larder-test-server larder-test-native larder-test-docs \
        larder-test-assets; do
        [ -f "$app/node_modules/$v/package.json" ] || fail "$app: $v not installed"
    done
    pass "12 packages installed"
    assert_eq 1.1.0 "$(node -p 'require(process.argv[1]).version' "$app/node_modules/@larder-test/core/package.json")" \
        "top-level @larder-test/core is 1.1.0"
    assert_eq 2.0.0 "$(node -p 'require(process.argv[1]).version' \
        "$app/node_modules/larder-test-cli/node_modules/@larder-test/core/package.json")" "nested @larder-test/core is 2.0.0"
    assert_eq "built by postinstall of larder-test-native 1.0.0" "$(cat "$app/node_modules/larder-test-native/built.txt" 2>&1)" \
        "postinstall ran"
    assert_eq "larder-test-cli 1.0.0 core 2.0.0" "$("$app/node_modules/.bin/larder-test-cli" 2>&1)" "bin linked and runs"
    assert_eq '["@larder-test/core@1.1.0","@larder-test/config@1.0.0","larder-test-logger@1.0.0"]' \
        "$(cd "$app" && node -p 'JSON.stringify(require("larder-test-server").deps)')" "the code requires its dependencies"
}

tgz_before=$(verdaccio_count "$UP" GET /larder-test-assets/-/larder-test-assets-1.0.0.tgz)
t=$(now)
mkdir -p "$WORK/ci1"
cp "$UP/app/package.json" "$UP/app/package-lock.json" "$WORK/ci1/"
npm_isolated "$UP" ci --registry "$VERDACCIO_URL/" --prefix "$WORK/ci1" >"$UP/logs/npm-ci1.log" 2>&1 ||
    fail "npm ci (verdaccio lockfile) failed: $(tail -n 30 "$UP/logs/npm-ci1.log")"
log "npm ci (verdaccio lockfile, empty cache): $(took "$t")"
check_install "$WORK/ci1"
assert_eq $((tgz_before + 1)) "$(verdaccio_count "$UP" GET /larder-test-assets/-/larder-test-assets-1.0.0.tgz)" \
    "npm ci fetched the tarball from verdaccio once"

t=$(now)
mkdir -p "$WORK/ci2"
cp "$UP/app-public/package.json" "$UP/app-public/package-lock.json" "$WORK/ci2/"
npm_isolated "$UP" ci --registry "$VERDACCIO_URL/" --prefix "$WORK/ci2" >"$UP/logs/npm-ci2.log" 2>&1 ||
    fail "npm ci (public lockfile) failed: $(tail -n 30 "$UP/logs/npm-ci2.log")"
log "npm ci (public lockfile -> --registry, empty cache): $(took "$t")"
check_install "$WORK/ci2"
assert_eq $((tgz_before + 2)) "$(verdaccio_count "$UP" GET /larder-test-assets/-/larder-test-assets-1.0.0.tgz)" \
    "the public lockfile's tarball URL went to verdaccio"
assert_eq 2 "$(verdaccio_count "$UP" GET /@larder-test/core/-/core-2.0.0.tgz)" "nested tarball fetched by each npm ci"
if [ "${VERBOSE:-0}" = 1 ]; then verdaccio_requests "$UP" | sort | uniq -c | sort -rn >&2; fi

finish
