#!/usr/bin/env bash
# test_gems.sh - the rubygems cache with the real bundler and gem (Debian ruby) against a local upstream of real gems
# (compact index like rubygems.org's, and the full index from `gem generate_index`, served by nginx): what bundler
# checks (MD5 ETag, Repr-Digest, ranges, 304), `bundle install` cold, warm (with bundler's compact index cache kept:
# range requests), after a new publish, and with the upstream stopped; `gem install` through the cache; a tampered
# .gem refused and not cached; the dependency API 404; seeding from Gemfile.lock then installing offline.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gems_fixture.sh"

GP=$(free_port)
LP=$(free_port)
REPO=$WORK/repo
make_gems_repo "$REPO"
start_gems_upstream "$REPO" "$GP"
ALOG=$REPO/logs/access.log
U=$GEMS_UPSTREAM_URL

write_larder_config() { # FILE DATA_DIR
    write_config "$1" "$LP" "$2"
    cat >>"$1" <<EOF
gems:
  ttl: 2s
  upstream: $U/
EOF
}
CFG=$WORK/larder.yaml
write_larder_config "$CFG" "$WORK/data"
start_larder "$CFG" "$LP"
G=$LARDER_URL/gems
C=$WORK/client

# ---- what bundler checks ------------------------------------------------------------------------------------------------
curl -sS -D "$WORK/v.hdr" -o "$WORK/versions" "$G/versions"
hdr=$(tr -d '\r' <"$WORK/v.hdr" | tr 'A-Z' 'a-z')
md5=$(md5sum <"$WORK/versions" | cut -d' ' -f1)
b64=$(openssl dgst -sha256 -binary <"$WORK/versions" | base64)
assert_contains "$hdr" "etag: \"$md5\"" "ETag is the quoted MD5 of the bytes served"
assert_contains "$(tr -d '\r' <"$WORK/v.hdr")" "repr-digest: sha-256=:$b64:" "Repr-Digest of the whole file"
assert_eq "$(cat "$REPO/root/versions" | md5sum)" "$(md5sum <"$WORK/versions")" "the file is the upstream's, byte for byte"
size=$(file_size "$WORK/versions")
tail_got=$(curl -sS -r "$((size - 1))-" -D "$WORK/r.hdr" "$G/versions" | od -An -c | tr -d ' \n')
assert_eq 206 "$(head -1 "$WORK/r.hdr" | awk '{print $2}')" "a range of /versions is answered 206"
assert_eq '\n' "$tail_got" "the last byte"
assert_contains "$(tr -d '\r' <"$WORK/r.hdr" | tr 'A-Z' 'a-z')" "etag: \"$md5\"" "the 206 carries the whole file's ETag"
assert_contains "$(tr -d '\r' <"$WORK/r.hdr")" "repr-digest: sha-256=:$b64:" "and its Repr-Digest"
assert_status "$G/versions" 304 -H "If-None-Match: \"$md5\""
assert_status "$G/versions" 200 -r "$((size + 100))-" # unsatisfiable: the whole file
info_md5=$(curl -sS "$G/info/larder_test_core" | md5sum | cut -d' ' -f1)
assert_header "$G/info/larder_test_core" ETag "\"$info_md5\""
assert_status "$G/api/v1/dependencies?gems=larder_test_core" 404
assert_status "$G/info/../../etc/passwd" 404 --path-as-is
assert_status "$G/gems/larder_test_core-9.9.9.gem" 404

# ---- bundle install: cold, warm (compact index cache kept), after a publish -------------------------------------------------
bi() { # bi LABEL [ARGS...]
    local label=$1 rc=0
    shift
    bundle_install "$C" "$REPO/app" "$G" "$@" >"$WORK/bundle-$label.log" 2>&1 || rc=$?
    assert_eq 0 "$rc" "bundle install ($label): $(tail -3 "$WORK/bundle-$label.log" | tr '\n' ' ')"
    bundle_exec "$C" ruby -e 'require "larder_test_http"; require "larder_test_cli"' >"$WORK/exec-$label.log" 2>&1 ||
        fail "$label: the bundle does not load: $(tail -3 "$WORK/exec-$label.log")"
}
bi cold
ngem=$(grep -c '"GET /gems/.*\.gem ' "$ALOG" || true)
assert_gt "$ngem" 3 "gems fetched upstream"
assert_eq 1 "$(nginx_count "$ALOG" GET /gems/larder_test_assets-1.0.0.gem)" "each .gem fetched once"
bi warm
assert_eq "$ngem" "$(grep -c '"GET /gems/.*\.gem ' "$ALOG" || true)" "warm: no .gem fetched upstream"
assert_match "$(grep -E 'GET /gems/(versions|info/)' "$LARDER_LOG" | tail -5)" " (206|304) " \
    "bundler's kept compact index is revalidated with ranges / If-None-Match"

# a new release: appended to /versions and /info upstream; past the TTL bundler fetches the tail through larder
sleep 2.2
gems_publish "$REPO" larder_test_color 0.3.2
rc=0
bundle_install "$C" "$REPO/app" "$G" >"$WORK/bundle-update.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "bundle install after a publish"
curl -sS -o "$WORK/versions2" "$G/versions"
assert_contains "$(cat "$WORK/versions2")" "0.3.2" "the refreshed /versions lists the new release"
assert_eq "$(md5sum <"$REPO/root/versions")" "$(md5sum <"$WORK/versions2")" "and is the upstream's file"

# ---- gem install through the cache ------------------------------------------------------------------------------------------
rc=0
gem_install "$C" "$G/" larder_test_http >"$WORK/gem-install.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "gem install through larder: $(tail -3 "$WORK/gem-install.log" | tr '\n' ' ')"

# ---- offline: upstream stopped, indexes past their TTL, bundler's caches wiped ---------------------------------------------------
sleep 2.2
stop_pid "$NGINX_PID"
gems_client_reset "$C"
bi offline
assert_cache "$G/versions" STALE
rc=0
gem_install "$C" "$G/" larder_test_http >"$WORK/gem-offline.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "gem install with the upstream down: $(tail -3 "$WORK/gem-offline.log" | tr '\n' ' ')"
stop_larder

# ---- a tampered .gem: refused, not cached -----------------------------------------------------------------------------------------
start_gems_upstream "$REPO" "$GP"
write_larder_config "$CFG" "$WORK/data-tamper"
start_larder "$CFG" "$LP"
curl -sS -o /dev/null "$G/info/larder_test_color" # the checksums are recorded
victim=$REPO/root/gems/larder_test_color-0.3.1.gem
cp "$victim" "$WORK/victim.orig"
printf 'tampered' | dd of="$victim" bs=1 seek=100 conv=notrunc 2>/dev/null
crc=0
got=$(curl -sS -o "$WORK/victim.got" -w '%{http_code}' "$G/gems/larder_test_color-0.3.1.gem" 2>/dev/null) || crc=$?
if [ "$got" = 200 ] && [ "$crc" = 0 ]; then fail "a .gem that does not match /info's checksum was served whole"; fi
pass "tampered .gem refused (HTTP $got, curl exit $crc)"
n1=$(nginx_count "$ALOG" GET /gems/larder_test_color-0.3.1.gem)
curl -sS -o /dev/null "$G/gems/larder_test_color-0.3.1.gem" 2>/dev/null || true
assert_eq $((n1 + 1)) "$(nginx_count "$ALOG" GET /gems/larder_test_color-0.3.1.gem)" "not cached: asked upstream again"
larder_log_has 'sha256 mismatch' || fail "the log names the mismatch"
cp "$WORK/victim.orig" "$victim"
stop_larder

# ---- seeding from Gemfile.lock, then bundle install with the upstream down ---------------------------------------------------------
write_larder_config "$CFG" "$WORK/data-seed"
start_larder "$CFG" "$LP"
mkdir -p "$WORK/seed"
cp "$REPO/app/Gemfile.lock" "$WORK/seed/"
cat >"$WORK/seed/seed.yaml" <<EOF
pin_set: ruby
gems:
  lockfiles: [Gemfile.lock]
  gems: ["larder_test_pre:1.0.0"]
EOF
rc=0
timeout 120 "$LARDER_BIN" seed --config "$CFG" "$WORK/seed/seed.yaml" >"$WORK/seed.log" 2>&1 </dev/null || rc=$?
assert_eq 0 "$rc" "larder seed with a Gemfile.lock: $(tail -3 "$WORK/seed.log" | tr '\n' ' ')"
cat >"$WORK/seed/bad.yaml" <<EOF
pin_set: bad
gems:
  gems: ["larder_test_core"]
EOF
rc=0
timeout 60 "$LARDER_BIN" seed --config "$CFG" "$WORK/seed/bad.yaml" >"$WORK/seed-bad.log" 2>&1 </dev/null || rc=$?
assert_ne 0 "$rc" "a gem without a version is refused"
assert_contains "$(cat "$WORK/seed-bad.log")" "has no version" "the error says why"
stop_pid "$NGINX_PID"
gems_client_reset "$C"
bi seeded

finish
