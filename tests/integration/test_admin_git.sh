#!/usr/bin/env bash
# test_admin_git.sh - the admin API on an entry whose bytes live outside the blob store (a git mirror, counted as
# the entry's external bytes): it is listed with them, hits count the warm clones, DELETE removes the mirror through
# the module's evicted hook and returns its bytes to the usage, and the next clone is a MISS that builds it again;
# GET /-/api/v1/info names the configured remote. Real git client, real smart-HTTP upstream (git_fixture.sh).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/git_fixture.sh"

GP=$(free_port)
LP=$(free_port)
ROOT=$WORK/repos
C=$WORK/clients
mkdir -p "$C"
make_git_repos "$ROOT" "http://127.0.0.1:$GP"
start_git_upstream "$ROOT" "$GP"
U=$GIT_UPSTREAM_URL

CFG=$WORK/larder.yaml
write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
git:
  ttl: 5m
  remotes:
    upstream.test: $U
EOF
start_larder "$CFG" "$LP"
L=$LARDER_URL/git/upstream.test
clone() { git_client clone -q "$L/org/app.git" "$C/$1" >"$C/$1.log" 2>&1 || fail "clone $1: $(tail -5 "$C/$1.log")"; }
mirror_dirs() { find "$WORK/data/git" -name '*.git' -type d -not -path '*/.trash/*' -not -path '*/.tmp/*' 2>/dev/null | wc -l; }

clone c1
clone c2
out=$(api GET "entries?protocol=git")
assert_eq 1 "$(json_get "$out" 'len(d["entries"])')" "one git entry (the mirror)"
KEY=$(json_get "$out" 'd["entries"][0]["key"]')
assert_gt "$(json_get "$out" 'd["entries"][0]["external"]')" 0 "the entry carries the mirror's bytes"
assert_gt "$(json_get "$out" 'd["entries"][0]["hits"]')" 0 "the warm clone counted hits"
assert_eq 1 "$(mirror_dirs)" "the mirror is on disk"
assert_gt "$(json_get "$(api GET stats)" 'd["protocols"]["git"]["bytes"]')" 0 "git usage counts the mirror"

enc=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$KEY")
api DELETE "entries?protocol=git&key=$enc" >/dev/null
assert_eq 200 "$(api_status)" "DELETE the mirror's entry"
wait_for "the mirror removed" 10 test "$(mirror_dirs)" -eq 0
assert_eq 0 "$(json_get "$(api GET stats)" 'd["protocols"]["git"]["bytes"]')" "git usage back to 0"
assert_eq 0 "$(json_get "$(api GET stats)" 'd["external_bytes"]')" "no external bytes left"
assert_eq 0 "$(json_get "$(api GET "entries?protocol=git")" 'len(d["entries"])')" "no git entry left"

c0=$(git_upstream_count upload-pack org/app)
clone c3
assert_gt "$(git_upstream_count upload-pack org/app)" "$c0" "the next clone fetched from the upstream again (a MISS)"
assert_eq 1 "$(mirror_dirs)" "and built the mirror again"

out=$(api GET info)
assert_eq '[{"name": "upstream.test", "url": "'"$U"'"}]' "$(json_get "$out" 'd["protocols"]["git"]["remotes"]')" \
    "info names the git remote"

stop_larder
finish
