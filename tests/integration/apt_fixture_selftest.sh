#!/usr/bin/env bash
# apt_fixture_selftest.sh - checks apt_fixture.sh on its own (no larder): the repository is built and signed, nginx
# serves it, the real apt-get (isolated configuration) updates from it and downloads every package of
# packages.txt with `install --download-only`, once straight from nginx and once through apt-cacher-ng as its
# HTTP proxy (fresh lists and archives), and apt-cacher-ng's cache then holds the files. Prints how long each step
# took. Not a test_*.sh: ctest and run-all.sh do not run it; run it by hand after changing the fixture:
#   bash tests/integration/apt_fixture_selftest.sh
# The first run on a machine downloads ~2.4 MB of .debs from its Debian mirror into LARDER_APT_DEB_CACHE.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/apt_fixture.sh"

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

UP=$WORK/apt
CL=$WORK/client
AC=$WORK/acng
NP=$(acng_free_port) # apt-cacher-ng fetches from it: below 32768
AP=$(acng_free_port)

# ---- the repository
t=$(now)
make_apt_repo "$UP"
log "make_apt_repo ($APT_REPO_DEBS debs, $APT_REPO_BYTES bytes): $(took "$t")"
PKGS=$(cat "$UP/packages.txt")
assert_gt "$(wc -l <"$UP/packages.txt")" 0 "packages.txt lists packages"
assert_eq "$APT_REPO_DEBS" "$(find "$UP/root/pool" -name '*.deb' | wc -l)" "all-debs.txt lists every pool file"
while read -r path sha size; do
    if [ "$(sha256_file "$UP/root/$path")" != "$sha" ] || [ "$(file_size "$UP/root/$path")" != "$size" ]; then
        fail "$path: hash or size differs from all-debs.txt"
    fi
    case "$path" in pool/main/?/*/*.deb | pool/main/lib?/*/*.deb) ;; *) fail "$path: not a Debian pool path" ;; esac
done <"$UP/all-debs.txt"
pass "all-debs.txt matches the pool"
for p in $PKGS; do
    grep -q "^Package: $p\$" "$UP/root/dists/bookworm/main/binary-amd64/Packages" || fail "$p not in Packages"
done
pass "every top-level package is in Packages"
D=$UP/root/dists/bookworm
R=$(cat "$D/Release")
assert_contains "$R" "Acquire-By-Hash: yes"
assert_contains "$R" "Codename: bookworm"
assert_not_contains "$R" "SHA512:" "Release lists MD5Sum and SHA256 only"
for f in main/binary-amd64/Packages main/binary-amd64/Packages.gz main/binary-amd64/Packages.xz \
    main/i18n/Translation-en main/i18n/Translation-en.xz; do
    h=$(sha256_file "$D/$f")
    assert_contains "$R" " $h " "Release has the SHA256 of $f"
    [ -f "$D/$(dirname "$f")/by-hash/SHA256/$h" ] || fail "no by-hash copy of $f"
done
pass "by-hash copies"
assert_contains "$(head -n 1 "$D/InRelease")" "BEGIN PGP SIGNED MESSAGE" "InRelease is clearsigned"
gpgv --keyring "$UP/keyring.gpg" "$D/Release.gpg" "$D/Release" 2>/dev/null || fail "Release.gpg does not verify"
pass "Release.gpg verifies with keyring.gpg"
assert_eq "" "$(pgrep -f "gpg-agent --homedir $UP/gnupg" || true)" "no gpg-agent left running"

# ---- nginx
t=$(now)
start_apt_upstream "$UP" "$NP"
log "nginx start: $(took "$t")"
U=$APT_UPSTREAM_URL
assert_status "$U/dists/bookworm/InRelease" 200
assert_status "$U/nothing-here" 404
assert_status "http://127.0.0.1:$NP/dists/bookworm/InRelease" 404
assert_ne "" "$(http_header "$U/dists/bookworm/Release" ETag)" "ETag on Release"
assert_ne "" "$(http_header "$U/dists/bookworm/Release" Last-Modified)" "Last-Modified on Release"
first=$(grep -m1 -v '+' "$UP/all-debs.txt" | cut -d' ' -f1)
assert_status "$U/$first" 200
assert_eq 1 "$(apt_count "$UP" GET "/debian/$first")" "apt_count counts one GET"
plus=$(grep -m1 '+' "$UP/all-debs.txt" | cut -d' ' -f1 || true)
if [ -n "$plus" ]; then
    n=$(apt_count "$UP" GET "/debian/$plus")
    assert_status "$U/${plus//+/%2b}" 200
    assert_eq $((n + 1)) "$(apt_count "$UP" GET "/debian/$plus")" "apt_count decodes %2b"
fi

# check_client DIR WHAT - the archives hold exactly the pool's .debs (apt names them with the epoch as %3a)
check_client() {
    local dir=$1 what=$2 got want
    got=$(apt_client_debs "$dir" | sed 's/_[0-9]*%3a/_/')
    want=$(awk '{ n = split($1, a, "/"); print a[n] }' "$UP/all-debs.txt" | sort)
    assert_eq "$want" "$got" "$what: the archives hold every .deb of the pool"
    local f
    for f in "$dir"/cache/archives/*.deb; do
        dpkg-deb -f "$f" Package >/dev/null || fail "$f is not a .deb"
    done
}

# ---- apt straight from nginx
: >"$UP/logs/access.log" # nginx appends (O_APPEND): truncating is enough to count from zero
apt_client_sources "$CL" "$U" "$UP/keyring.gpg"
apt_client_config "$CL" >"$WORK/apt-config.txt" 2>&1 || fail "apt-config dump failed: $(cat "$WORK/apt-config.txt")"
C=$(cat "$WORK/apt-config.txt")
assert_contains "$C" "Dir::Etc::parts \"$CL/apt.conf.d\";" "the client reads its own (empty) apt.conf.d"
assert_not_contains "$C" "GzipIndexes" "no Acquire::GzipIndexes from /etc/apt/apt.conf.d"
assert_not_contains "$C" "DEP-11" "no DEP-11 index targets from /etc/apt/apt.conf.d"
assert_contains "$C" "Dir::State::status \"/var/lib/dpkg/status\";" "the machine's dpkg status"
assert_not_contains "$C" "Acquire::http::Proxy" "no proxy unless APT_CLIENT_OPTS says so"
t=$(now)
apt_client "$CL" update >"$WORK/update-direct.log" 2>&1 || fail "apt-get update failed: $(tail -n 20 "$WORK/update-direct.log")"
log "apt-get update (direct): $(took "$t")"
assert_not_contains "$(cat "$WORK/update-direct.log")" "W:" "no warnings from apt-get update"
assert_eq 1 "$(apt_count "$UP" GET /debian/dists/bookworm/InRelease)" "one InRelease GET"
assert_eq 0 "$(apt_count "$UP" GET /debian/dists/bookworm/Release)" "no Release GET (InRelease was good)"
assert_eq 0 "$(apt_count "$UP" GET /debian/dists/bookworm/main/binary-amd64/Packages)" "no unhashed Packages GET"
assert_match "$(cat "$UP/logs/access.log")" "GET /debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/[0-9a-f]{64} " \
    "Packages fetched by hash"
assert_match "$(cat "$UP/logs/access.log")" "GET /debian/dists/bookworm/main/i18n/by-hash/SHA256/[0-9a-f]{64} " \
    "Translation-en fetched by hash"
t=$(now)
# shellcheck disable=SC2086
apt_client "$CL" install --download-only $PKGS >"$WORK/install-direct.log" 2>&1 ||
    fail "apt-get install --download-only failed: $(tail -n 20 "$WORK/install-direct.log")"
log "apt-get install --download-only (direct): $(took "$t")"
check_client "$CL" direct
while read -r path _; do
    assert_eq 1 "$(apt_count "$UP" GET "/debian/$path")" "nginx served $path once"
done <"$UP/all-debs.txt"
assert_eq 1 "$(apt_count "$UP" GET "/debian/$first")" "nginx served $first once"

# ---- apt through apt-cacher-ng
t=$(now)
start_apt_cacher_ng "$AC" "$AP" "$NP"
log "apt-cacher-ng start: $(took "$t")"
cp "$UP/logs/access.log" "$WORK/access-direct.log"
: >"$UP/logs/access.log"
apt_client_reset "$CL"
assert_eq "" "$(apt_client_debs "$CL")" "apt_client_reset emptied the archives"
export APT_CLIENT_OPTS="-o Acquire::http::Proxy=$ACNG_URL/"
t=$(now)
apt_client "$CL" update >"$WORK/update-acng.log" 2>&1 || fail "apt-get update via apt-cacher-ng failed: $(tail -n 20 "$WORK/update-acng.log")"
log "apt-get update (apt-cacher-ng, cold): $(took "$t")"
assert_not_contains "$(cat "$WORK/update-acng.log")" "W:" "no warnings from apt-get update via apt-cacher-ng"
t=$(now)
# shellcheck disable=SC2086
apt_client "$CL" install --download-only $PKGS >"$WORK/install-acng.log" 2>&1 ||
    fail "apt-get install --download-only via apt-cacher-ng failed: $(tail -n 20 "$WORK/install-acng.log")"
log "apt-get install --download-only (apt-cacher-ng, cold): $(took "$t")"
check_client "$CL" "apt-cacher-ng cold"
n=$(find "$AC/cache" -name '*.deb' | wc -l)
assert_eq "$APT_REPO_DEBS" "$n" "apt-cacher-ng cached every .deb"
# pool_gets - GETs of pool files nginx received (apt-cacher-ng 3.7.4 fetches some .debs twice when apt pipelines)
pool_gets() { grep -c '"GET /debian/pool/' "$UP/logs/access.log" || true; }
cold_gets=$(pool_gets)
assert_le "$APT_REPO_DEBS" "$cold_gets" "apt-cacher-ng fetched every .deb from nginx"
log "apt-cacher-ng, cold: $cold_gets pool GETs at nginx for $APT_REPO_DEBS .debs"
assert_gt "$(find "$AC/cache" -path '*by-hash*' -type f | wc -l)" 0 "apt-cacher-ng cached by-hash indices"

# a second client through the warm apt-cacher-ng: no .deb goes to nginx again
apt_client_reset "$CL"
t=$(now)
apt_client "$CL" update >"$WORK/update-acng2.log" 2>&1 || fail "apt-get update via warm apt-cacher-ng failed"
# shellcheck disable=SC2086
apt_client "$CL" install --download-only $PKGS >"$WORK/install-acng2.log" 2>&1 ||
    fail "apt-get install --download-only via warm apt-cacher-ng failed: $(tail -n 20 "$WORK/install-acng2.log")"
log "apt-get update + install --download-only (apt-cacher-ng, warm): $(took "$t")"
check_client "$CL" "apt-cacher-ng warm"
assert_eq "$cold_gets" "$(pool_gets)" "warm apt-cacher-ng fetched no .deb from nginx"
log "nginx requests during the apt-cacher-ng runs: $(wc -l <"$UP/logs/access.log")"

finish
