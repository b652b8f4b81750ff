#!/usr/bin/env bash
# gems_fixture_selftest.sh - checks gems_fixture.sh on its own (no larder): the gems are built and indexed, the
# compact index is what rubygems.org would serve, nginx answers like rubygems.org (MD5 ETags, 304, Range), and the real
# clients install from it: `gem install` (compact index, then the full index), `bundle install` through a mirror with
# an empty, a kept and a wiped compact index cache, with the source URL in the Gemfile, against an upstream without a
# compact index, and against one with nginx's own ETags (bundler then gives up the compact index). Asserts the exact
# upstream requests of each and prints them with VERBOSE=1; prints how long each step took. Not a test_*.sh: ctest and
# run-all.sh do not run it; run it by hand after changing the fixture:  bash tests/integration/gems_fixture_selftest.sh
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gems_fixture.sh"

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

UP=$WORK/gems
ALOG=$UP/logs/access.log
# requests of the current phase (since the last `phase`), "METHOD TARGET STATUS BYTES range=… inm=… ims=…"
phase() { : >"$1/logs/access.log"; }
reqs() { gems_requests "$1"; }
show() { if [ "${VERBOSE:-0}" = 1 ]; then log "upstream requests, $2:"; reqs "$1" | sed 's/^/    /' >&2; fi; }
# count DIR REGEX -> how many requests of the phase match REGEX
count() { reqs "$1" | grep -cE -- "$2" || true; }
M() { json_get "$(cat "$UP/manifest.json")" "$1"; }

log "ruby $(ruby -e 'print RUBY_VERSION'), rubygems $(gem -v 2>/dev/null), bundler $(bundle -v 2>/dev/null | awk '{print $NF}')"

# ---------------------------------------------------------------------------------------------------------------
t=$(now)
make_gems_repo "$UP"
log "make_gems_repo (14 x gem build, generate_index, compact index, bundle lock): $(took "$t")"

assert_eq 14 "$(find "$UP/root/gems" -name '*.gem' | wc -l)" "14 .gem files"
assert_eq 14 "$(find "$UP/root/quick/Marshal.4.8" -name '*.gemspec.rz' | wc -l)" "14 quick gemspecs"
for f in specs.4.8 specs.4.8.gz latest_specs.4.8 latest_specs.4.8.gz prerelease_specs.4.8 prerelease_specs.4.8.gz \
    names versions info/larder_test_util; do
    [ -s "$UP/root/$f" ] || fail "missing $UP/root/$f"
done
pass "index files present"
assert_eq 10 "$(M 'len(d["gems"])')" "10 gems in the manifest"
assert_eq '["1.0.0", "1.1.0", "2.0.0"]' "$(M 'sorted(d["gems"]["larder_test_util"]["versions"])')" "util has 3 versions"
assert_eq '["1.0.0", "1.0.0-x86_64-linux"]' "$(M 'sorted(d["gems"]["larder_test_native"]["versions"])')" \
    "native has a platform variant"
assert_eq "$(sha256_file "$UP/root/gems/larder_test_assets-1.0.0.gem")" \
    "$(M 'd["gems"]["larder_test_assets"]["versions"]["1.0.0"]["sha256"]')" "manifest sha256 of a .gem"
core_sha=$(M 'd["gems"]["larder_test_core"]["versions"]["1.0.0"]["sha256"]')
assert_eq "---
1.0.0 larder_test_util:~> 1.0,larder_test_base:>= 1.0&< 2|checksum:$core_sha" "$(cat "$UP/root/info/larder_test_core")" \
    "/info/larder_test_core"
assert_match "$(cat "$UP/root/info/larder_test_pre")" '^2\.0\.0\.pre\.1 larder_test_base:~> 1\.0\|checksum:[0-9a-f]{64},rubygems:> 1\.3\.1$' \
    "prerelease line of /info/larder_test_pre"
assert_match "$(cat "$UP/root/info/larder_test_json")" '^1\.0\.0 \|checksum:[0-9a-f]{64},ruby:>= 2\.6$' "ruby: requirement"
assert_match "$(cat "$UP/root/info/larder_test_native")" '^1\.0\.0-x86_64-linux \|checksum:' "platform line"
util_md5=$(openssl dgst -md5 -r "$UP/root/info/larder_test_util" | cut -d' ' -f1)
assert_eq "$util_md5" "$(M 'd["gems"]["larder_test_util"]["info_md5"]')" "manifest md5 of /info/larder_test_util"
assert_eq "larder_test_util 1.0.0,1.1.0,2.0.0 $util_md5" "$(grep '^larder_test_util ' "$UP/root/versions")" \
    "/versions line with the info MD5"
assert_eq "created_at: 2024-01-01T00:00:00Z" "$(head -n1 "$UP/root/versions")" "/versions header"
assert_eq 11 "$(wc -l <"$UP/root/names")" "/names: --- and 10 names"
# the Marshal indexes, read back with rubygems
gems_client "$WORK/rb" ruby -rrubygems -rzlib -e '
    %w[specs latest_specs prerelease_specs].each do |f|
      l = Marshal.load(Zlib.gunzip(File.binread("#{ARGV[0]}/#{f}.4.8.gz")))
      puts "#{f} #{l.size} #{l.map { |n, v, p| [n, v.to_s, p].join("-") }.sort.join(" ")}"
    end
    s = Marshal.load(Zlib::Inflate.inflate(File.binread("#{ARGV[0]}/quick/Marshal.4.8/larder_test_http-1.0.0.gemspec.rz")))
    puts "quick #{s.full_name} #{s.runtime_dependencies.map(&:to_s).sort.join(", ")}"' "$UP/root" >"$WORK/marshal.txt" 2>&1 ||
    fail "reading the Marshal indexes: $(cat "$WORK/marshal.txt")"
assert_match "$(cat "$WORK/marshal.txt")" '^specs 13 ' "specs.4.8.gz: 13 released versions"
# rubygems 3.3's indexer keeps one latest entry per name, whatever the platform (native: only x86_64-linux)
assert_match "$(cat "$WORK/marshal.txt")" '^latest_specs 10 .*larder_test_native-1\.0\.0-x86_64-linux ' \
    "latest_specs.4.8.gz: one per name"
assert_match "$(cat "$WORK/marshal.txt")" '^prerelease_specs 1 larder_test_pre-2\.0\.0\.pre\.1-ruby$' "prerelease_specs.4.8.gz"
assert_contains "$(cat "$WORK/marshal.txt")" \
    "quick larder_test_http-1.0.0 larder_test_core (~> 1.0), larder_test_json (>= 0.9)" "quick gemspec"
# reproducible: the same gemspec built again gives the same bytes
cp -r "$UP/src/larder_test_core-1.0.0" "$WORK/rebuild"
GEMSFX_ENV=("SOURCE_DATE_EPOCH=$GEMSFX_EPOCH" env -C "$WORK/rebuild")
gems_client "$WORK/rb" gem build larder_test_core.gemspec >"$WORK/rebuild.log" 2>&1 || fail "gem build: $(cat "$WORK/rebuild.log")"
GEMSFX_ENV=()
assert_eq "$core_sha" "$(sha256_file "$WORK/rebuild/larder_test_core-1.0.0.gem")" "gem build is reproducible"

LOCK=$(cat "$UP/app/Gemfile.lock")
assert_contains "$LOCK" "GEM
  remote: https://rubygems.org/
  specs:" "lockfile remote"
assert_contains "$LOCK" "PLATFORMS
  ruby
  x86_64-linux
" "lockfile platforms"
assert_eq 10 "$(grep -cE '^    [a-z_]+ \(' "$UP/app/Gemfile.lock")" "lockfile: 10 specs (9 gems, native twice)"
assert_contains "$LOCK" "    larder_test_util (1.1.0)" "util 1.1.0 locked"
assert_contains "$LOCK" "    larder_test_native (1.0.0-x86_64-linux)" "native platform variant locked"
assert_not_contains "$LOCK" "127.0.0.1" "no local URL in the lockfile"

# ---------------------------------------------------------------------------------------------------------------
P=$(free_port)
t=$(now)
start_gems_upstream "$UP" "$P"
log "nginx start: $(took "$t")"
U=$GEMS_UPSTREAM_URL
v_md5=$(M 'd["files"]["/versions"]["md5"]')
v_size=$(file_size "$UP/root/versions")
assert_header "$U/versions" ETag "\"$v_md5\""
assert_header "$U/versions" Content-Type "text/plain; charset=utf-8"
assert_header "$U/versions" Repr-Digest "sha-256=:$(M 'd["files"]["/versions"]["sha256_base64"]'):"
assert_header "$U/info/larder_test_util" ETag "\"$util_md5\""
assert_header "$U/names" ETag "\"$(M 'd["files"]["/names"]["md5"]')\""
assert_status "$U/versions" 304 -H "If-None-Match: \"$v_md5\""
assert_status "$U/versions" 200 -H "If-None-Match: \"0123\""
assert_status "$U/versions" 206 -H "Range: bytes=$((v_size - 1))-"
assert_header "$U/versions" ETag "\"$v_md5\"" -H "Range: bytes=$((v_size - 1))-"
assert_status "$U/versions" 304 -H "Range: bytes=$((v_size - 1))-" -H "If-None-Match: \"$v_md5\""
assert_status "$U/" 200 -I
assert_status "$U/api/v1/dependencies" 404
assert_status "$U/info/no_such_gem" 404
assert_status "$U/specs.4.8.gz" 200
assert_status "$U/quick/Marshal.4.8/larder_test_cli-1.0.0.gemspec.rz" 200
curl -sS -o "$WORK/dl.gem" "$U/gems/larder_test_assets-1.0.0.gem"
assert_eq "$(M 'd["gems"]["larder_test_assets"]["versions"]["1.0.0"]["sha256"]')" "$(sha256_file "$WORK/dl.gem")" \
    "a .gem served intact"
assert_eq 1 "$(nginx_count "$ALOG" GET /api/v1/dependencies)" "nginx_count on the access log"

# ---------------------------------------------------------------------------------------------------------------
# gem install, compact index
C1=$WORK/gem-client
phase "$UP"
t=$(now)
gem_install "$C1" "$U" larder_test_cli larder_test_pre >"$WORK/gem-install-1.log" 2>&1 ||
    fail "gem install failed: $(tail -n 30 "$WORK/gem-install-1.log")"
log "gem install larder_test_cli larder_test_pre (compact index, empty caches): $(took "$t")"
show "$UP" "gem install, compact index, empty spec cache"
assert_eq "larder_test_base-1.0.0 larder_test_cli-1.0.0 larder_test_color-0.3.1 larder_test_core-1.0.0 larder_test_pre-1.0.0 larder_test_util-1.1.0" \
    "$(cd "$C1/gems/specifications" && echo * | sed 's/\.gemspec//g')" "gem install: 6 gems installed"
assert_eq 2 "$(count "$UP" '^HEAD / 200 ')" "gem install HEADs / once per named gem"
assert_eq 6 "$(count "$UP" '^GET /info/larder_test_[a-z]+ 200 ')" "gem install: /info of 6 gems"
assert_eq 6 "$(count "$UP" '^GET /quick/Marshal\.4\.8/[^ ]+\.gemspec\.rz 200 ')" "gem install: 6 quick gemspecs"
assert_eq 6 "$(count "$UP" '^GET /gems/[^ ]+\.gem 200 ')" "gem install: 6 .gem downloads"
assert_eq 0 "$(count "$UP" '^GET /(versions|names|specs|latest_specs|prerelease_specs|api/)')" \
    "gem install reads neither /versions nor the Marshal indexes"
assert_eq 0 "$(count "$UP" 'range="bytes|inm="')" "gem install sends no Range / If-None-Match"
GEMSFX_ENV=(GEM_HOME="$C1/gems" GEM_PATH="$C1/gems")
gems_client "$C1" "$C1/gems/bin/larder_test_cli" >"$WORK/gem-bin.log" 2>&1 || fail "larder_test_cli: $(cat "$WORK/gem-bin.log")"
GEMSFX_ENV=()
assert_eq "larder_test_cli 1.0.0 core 1.0.0 util 1.1.0" "$(cat "$WORK/gem-bin.log")" "the gem's executable runs"

phase "$UP"
t=$(now)
gem_install "$C1" "$U" larder_test_cli larder_test_pre >"$WORK/gem-install-2.log" 2>&1 ||
    fail "gem install (2) failed: $(tail -n 30 "$WORK/gem-install-2.log")"
log "gem install again (spec cache kept): $(took "$t")"
show "$UP" "gem install, compact index, spec cache kept"
assert_eq 6 "$(count "$UP" '^GET /info/')" "gem install (2): /info again (rubygems keeps no compact index cache)"
assert_eq 0 "$(count "$UP" '^GET /quick/')" "gem install (2): quick gemspecs from GEM_SPEC_CACHE"
assert_eq 6 "$(count "$UP" '^GET /gems/')" "gem install (2): every .gem downloaded again"

# ---------------------------------------------------------------------------------------------------------------
# bundle install through a mirror, compact index
B1=$WORK/bundle-client
check_bundle() {
    local b=$1 what=$2
    assert_eq "larder_test_assets-1.0.0 larder_test_base-1.0.0 larder_test_cli-1.0.0 larder_test_color-0.3.1 larder_test_core-1.0.0 larder_test_http-1.0.0 larder_test_json-1.0.0 larder_test_native-1.0.0-x86_64-linux larder_test_util-1.1.0" \
        "$(cd "$b/bundle/ruby/"*/gems && echo *)" "$what: 9 gems installed"
}
phase "$UP"
t=$(now)
bundle_install "$B1" "$UP/app" "$U" >"$WORK/bundle-1.log" 2>&1 || fail "bundle install failed: $(tail -n 30 "$WORK/bundle-1.log")"
log "bundle install (mirror, empty compact index cache): $(took "$t")"
show "$UP" "bundle install via mirror, empty cache"
check_bundle "$B1" "bundle install"
bundle_exec "$B1" larder_test_cli >"$WORK/bundle-exec.log" 2>&1 || fail "bundle exec failed: $(cat "$WORK/bundle-exec.log")"
assert_eq "larder_test_cli 1.0.0 core 1.0.0 util 1.1.0" "$(cat "$WORK/bundle-exec.log")" "bundle exec larder_test_cli"
assert_eq "GET /versions 200 $v_size range=\"-\" inm=- ims=\"-\"" "$(reqs "$UP" | grep ' /versions ')" \
    "bundle install: one plain GET /versions"
assert_eq 9 "$(count "$UP" '^GET /info/larder_test_[a-z]+ 200 [0-9]+ range="-" inm=- ')" "bundle install: 9 plain /info GETs"
assert_eq 9 "$(count "$UP" '^GET /gems/[^ ]+\.gem 200 ')" "bundle install: 9 .gem downloads"
assert_eq 1 "$(count "$UP" '^GET /gems/larder_test_native-1\.0\.0-x86_64-linux\.gem ')" "the x86_64-linux variant"
assert_eq 0 "$(count "$UP" '^(HEAD /|GET /(names|specs|latest_specs|prerelease_specs|quick/|api/))')" \
    "bundle install reads neither /names nor the Marshal indexes"
ci_dir=$(echo "$B1"/bundle-cache/compact_index/rubygems.org.443.*)
if [ ! -f "$ci_dir/versions" ] || [ ! -f "$ci_dir/info/larder_test_util" ]; then
    fail "no compact index cache in $B1/bundle-cache"
fi
pass "compact index cached under the rubygems.org slug: ${ci_dir##*/}"
assert_eq "$(cat "$UP/root/versions")" "$(cat "$ci_dir/versions")" "cached /versions is the upstream's"

phase "$UP"
t=$(now)
bundle_install "$B1" "$UP/app" "$U" >"$WORK/bundle-2.log" 2>&1 || fail "bundle install (2) failed: $(tail -n 30 "$WORK/bundle-2.log")"
log "bundle install again (compact index cache kept): $(took "$t")"
show "$UP" "bundle install via mirror, compact index cache kept"
check_bundle "$B1" "bundle install (2)"
assert_eq "GET /versions 304 0 range=\"bytes=$((v_size - 1))-\" inm=\"$v_md5\" ims=\"-\"" "$(reqs "$UP" | grep ' /versions ')" \
    "bundle install (2): GET /versions with Range: bytes=size-1- and If-None-Match: the MD5 -> 304"
assert_eq 0 "$(count "$UP" '^GET /info/')" "bundle install (2): no /info (the MD5s in /versions match the cache)"
assert_eq 9 "$(count "$UP" '^GET /gems/')" "bundle install (2): every .gem downloaded again"

gems_client_reset "$B1"
phase "$UP"
t=$(now)
bundle_install "$B1" "$UP/app" "$U" >"$WORK/bundle-3.log" 2>&1 || fail "bundle install (3) failed: $(tail -n 30 "$WORK/bundle-3.log")"
log "bundle install after gems_client_reset: $(took "$t")"
show "$UP" "bundle install via mirror, cache wiped"
assert_eq "GET /versions 200 $v_size range=\"-\" inm=- ims=\"-\"" "$(reqs "$UP" | grep ' /versions ')" \
    "bundle install (3): plain GET /versions again"
assert_eq 9 "$(count "$UP" '^GET /info/larder_test_[a-z]+ 200 [0-9]+ range="-" inm=- ')" "bundle install (3): 9 /info again"
assert_eq 9 "$(count "$UP" '^GET /gems/')" "bundle install (3): 9 .gem"

# the Gemfile naming the upstream itself (no mirror): same requests, cache under the 127.0.0.1 slug
gems_app_for_source "$UP/app" "$WORK/app-direct" "$U"
B2=$WORK/bundle-direct
phase "$UP"
t=$(now)
bundle_install "$B2" "$WORK/app-direct" - >"$WORK/bundle-direct.log" 2>&1 ||
    fail "bundle install (source $U) failed: $(tail -n 30 "$WORK/bundle-direct.log")"
log "bundle install (source = upstream URL, no mirror): $(took "$t")"
show "$UP" "bundle install, Gemfile source = upstream"
check_bundle "$B2" "bundle install (direct)"
assert_eq 1 "$(count "$UP" '^GET /versions 200 ')" "bundle install (direct): /versions"
assert_eq 9 "$(count "$UP" '^GET /info/')" "bundle install (direct): 9 /info"
[ -f "$(echo "$B2"/bundle-cache/compact_index/127.0.0.1."$P".*/versions)" ] ||
    fail "no compact index cache under the 127.0.0.1.$P slug: $(ls "$B2/bundle-cache/compact_index")"
pass "compact index cached under the 127.0.0.1.$P slug"

# ---------------------------------------------------------------------------------------------------------------
# an upstream without a compact index: both clients use specs.4.8.gz and quick/Marshal.4.8
UPI=$WORK/gems-index
mkdir -p "$UPI"
ln -s "$UP/root" "$UPI/root"
ln -s "$UP/manifest.json" "$UPI/manifest.json"
start_gems_upstream "$UPI" "$(free_port)" index
UI=$GEMS_UPSTREAM_URL
assert_status "$UI/versions" 404
assert_status "$UI/info/larder_test_util" 404
assert_status "$UI/" 404 -I
assert_status "$UI/specs.4.8.gz" 200
C3=$WORK/gem-client-index
phase "$UPI"
t=$(now)
gem_install "$C3" "$UI" larder_test_cli larder_test_pre >"$WORK/gem-install-index.log" 2>&1 ||
    fail "gem install (full index) failed: $(tail -n 30 "$WORK/gem-install-index.log")"
log "gem install (full index): $(took "$t")"
show "$UPI" "gem install, no compact index, empty spec cache"
assert_eq 2 "$(count "$UPI" '^HEAD / 404 ')" "gem install HEADs / (404: no compact index)"
assert_eq 1 "$(count "$UPI" '^GET /specs\.4\.8\.gz 200 [0-9]+ range="-" inm=- ims="-"$')" "gem install: specs.4.8.gz"
assert_eq 1 "$(count "$UPI" '^GET /prerelease_specs\.4\.8\.gz 200 [0-9]+ range="-" inm=- ims="-"$')" \
    "gem install: prerelease_specs.4.8.gz"
# the second named gem revalidates the spec cache the first one wrote
assert_eq 2 "$(count "$UPI" '^GET /(prerelease_)?specs\.4\.8\.gz 304 0 range="-" inm=- ims="[A-Z]')" \
    "gem install: then both with If-Modified-Since -> 304"
assert_eq 7 "$(count "$UPI" '^GET /quick/')" "gem install: 7 quick gemspecs (both util 1.x looked at)"
assert_eq 6 "$(count "$UPI" '^GET /gems/')" "gem install: 6 .gem"
phase "$UPI"
t=$(now)
gem_install "$C3" "$UI" larder_test_cli larder_test_pre >"$WORK/gem-install-index-2.log" 2>&1 ||
    fail "gem install (full index, 2) failed: $(tail -n 30 "$WORK/gem-install-index-2.log")"
log "gem install again (full index, spec cache kept): $(took "$t")"
show "$UPI" "gem install, no compact index, spec cache kept"
assert_eq 0 "$(count "$UPI" '^GET /quick/')" "gem install (2): quick gemspecs from the spec cache"
assert_eq 4 "$(count "$UPI" '^GET /(prerelease_)?specs\.4\.8\.gz 304 0 range="-" inm=- ims="[A-Z]')" \
    "gem install (2): the Marshal indexes revalidated (If-Modified-Since -> 304)"
assert_eq 6 "$(count "$UPI" '^GET /gems/')" "gem install (2): 6 .gem"

B3=$WORK/bundle-client-index
phase "$UPI"
t=$(now)
bundle_install "$B3" "$UP/app" "$UI" >"$WORK/bundle-index.log" 2>&1 ||
    fail "bundle install (full index) failed: $(tail -n 30 "$WORK/bundle-index.log")"
log "bundle install (mirror without compact index): $(took "$t")"
show "$UPI" "bundle install, no compact index"
check_bundle "$B3" "bundle install (full index)"
assert_eq "GET /versions 404
GET /api/v1/dependencies 404
GET /specs.4.8.gz 200
GET /prerelease_specs.4.8.gz 200" "$(reqs "$UPI" | grep -vE ' /(quick|gems)/' | cut -d' ' -f1-3)" \
    "bundle install: /versions 404, dependency API 404, then the Marshal indexes"
assert_eq 10 "$(count "$UPI" '^GET /quick/Marshal\.4\.8/[^ ]+ 200 ')" "bundle install: 10 quick gemspecs (both native variants)"
assert_eq 9 "$(count "$UPI" '^GET /gems/')" "bundle install: 9 .gem"

# ---------------------------------------------------------------------------------------------------------------
# nginx's own ETag on the compact index: bundler 2.3 rejects it (not the MD5 of the body) and uses the full index
UPE=$WORK/gems-nginx-etag
mkdir -p "$UPE"
ln -s "$UP/root" "$UPE/root"
ln -s "$UP/manifest.json" "$UPE/manifest.json"
start_gems_upstream "$UPE" "$(free_port)" nginx-etag
UE=$GEMS_UPSTREAM_URL
assert_match "$(http_header "$UE/versions" ETag)" '^"[0-9a-f]+-[0-9a-f]+"$' "nginx's own ETag"
phase "$UPE"
B4=$WORK/bundle-client-nginx-etag
t=$(now)
bundle_install "$B4" "$UP/app" "$UE" >"$WORK/bundle-nginx-etag.log" 2>&1 ||
    fail "bundle install (nginx ETag) failed: $(tail -n 30 "$WORK/bundle-nginx-etag.log")"
log "bundle install (compact index with nginx's ETag): $(took "$t")"
show "$UPE" "bundle install, compact index with nginx's ETag"
check_bundle "$B4" "bundle install (nginx ETag)"
assert_eq 2 "$(count "$UPE" '^GET /versions 200 [0-9]+ range="-" inm=- ')" \
    "bundle install: /versions twice (the retry after the ETag mismatch)"
assert_eq 0 "$(count "$UPE" '^GET /info/')" "bundle install: no /info (compact index given up)"
assert_eq 1 "$(count "$UPE" '^GET /specs\.4\.8\.gz 200 ')" "bundle install: fell back to specs.4.8.gz"

# ---------------------------------------------------------------------------------------------------------------
# a new version published (appended, like rubygems.org): the kept cache is revalidated with Range -> 206
old_info_size=$(file_size "$UP/root/info/larder_test_util")
old_v_md5=$v_md5
t=$(now)
gems_publish "$UP" larder_test_util 1.2.0 "larder_test_base:~> 1.0"
log "gems_publish larder_test_util 1.2.0 (gem build, generate_index, append, nginx reload): $(took "$t")"
v_md5=$(M 'd["files"]["/versions"]["md5"]')
assert_ne "$old_v_md5" "$v_md5" "/versions changed"
util_md5=$(M 'd["gems"]["larder_test_util"]["info_md5"]')
assert_eq "larder_test_util 1.2.0 $util_md5" "$(tail -n 1 "$UP/root/versions")" "/versions: a line appended"
assert_eq "$(head -c "$v_size" "$UP/root/versions" | openssl dgst -md5 -r | cut -d' ' -f1)" "$old_v_md5" \
    "/versions: the old content is a prefix"
assert_match "$(tail -n 1 "$UP/root/info/larder_test_util")" '^1\.2\.0 larder_test_base:~> 1\.0\|checksum:[0-9a-f]{64}$' \
    "/info/larder_test_util: a line appended"
assert_header "$U/versions" ETag "\"$v_md5\""
assert_status "$U/gems/larder_test_util-1.2.0.gem" 200
phase "$UP"
t=$(now)
bundle_install "$B1" "$UP/app" "$U" >"$WORK/bundle-4.log" 2>&1 || fail "bundle install (4) failed: $(tail -n 30 "$WORK/bundle-4.log")"
log "bundle install (cache kept, upstream appended to): $(took "$t")"
show "$UP" "bundle install via mirror, cache kept, a version appended upstream"
check_bundle "$B1" "bundle install (4)"
assert_eq "GET /versions 206 $(($(file_size "$UP/root/versions") - v_size + 1)) range=\"bytes=$((v_size - 1))-\" inm=\"$old_v_md5\" ims=\"-\"" \
    "$(reqs "$UP" | grep ' /versions ')" "bundle install (4): /versions revalidated, 206 with the new tail"
assert_match "$(reqs "$UP" | grep ' /info/')" "^GET /info/larder_test_util 206 [0-9]+ range=\"bytes=$((old_info_size - 1))-\" inm=\"[0-9a-f]{32}\" " \
    "bundle install (4): only /info/larder_test_util, 206 with Range"
assert_eq "$(cat "$UP/root/versions")" "$(cat "$ci_dir/versions")" "the cache now equals the upstream /versions"
assert_eq "$(cat "$UP/root/info/larder_test_util")" "$(cat "$ci_dir/info/larder_test_util")" "and /info/larder_test_util"
phase "$UP"
gem_install "$C1" "$U" larder_test_cli >"$WORK/gem-install-3.log" 2>&1 || fail "gem install (3): $(tail -n 30 "$WORK/gem-install-3.log")"
assert_contains "$(cat "$WORK/gem-install-3.log")" "Successfully installed larder_test_util-1.2.0" "gem install resolves to the new util"

finish
