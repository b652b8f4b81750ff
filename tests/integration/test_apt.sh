#!/usr/bin/env bash
# test_apt.sh - the apt cache with the real apt-get against a local signed repository of real Debian packages
# (nginx): refusals (hosts outside apt.allow, non-repository paths, CONNECT, traversal), `apt-get update` +
# `install --download-only` cold, warm, in path mode, and with the upstream stopped and apt's lists and archives
# emptied; a corrupted .deb refused and not cached; seeding the package closure (signature checked with gpgv), then
# installing with the upstream down.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/apt_fixture.sh"

AP=$(free_port)
LP=$(free_port)
REPO=$WORK/repo
make_apt_repo "$REPO"
start_apt_upstream "$REPO" "$AP"
UP=$APT_UPSTREAM_URL # http://127.0.0.1:AP/debian
ALOG=$REPO/logs/access.log
PKGS=$(tr '\n' ' ' <"$REPO/packages.txt")
NDEBS=$(wc -l <"$REPO/all-debs.txt")

write_larder_config() { # write_larder_config FILE DATA_DIR
    write_config "$1" "$LP" "$2"
    cat >>"$1" <<EOF
apt:
  ttl: 2s
  allow: ["127.0.0.1:$AP"]
EOF
}
CFG=$WORK/larder.yaml
write_larder_config "$CFG" "$WORK/data"
start_larder "$CFG" "$LP"
PROXY="-o Acquire::http::Proxy=$LARDER_URL/"

# ---- refusals --------------------------------------------------------------------------------------------------------
body=$(curl -sS -x "$LARDER_URL" http://deb.debian.org/debian/dists/bookworm/InRelease)
assert_contains "$body" "apt.allow" "a host outside apt.allow is refused, naming the setting"
assert_eq 403 "$(curl -sS -o /dev/null -w '%{http_code}' -x "$LARDER_URL" http://example.com/)" "not an open proxy"
assert_eq 403 "$(curl -sS -o /dev/null -w '%{http_code}' -x "$LARDER_URL" "http://127.0.0.1:$AP/etc/passwd")" \
    "only repository paths"
assert_eq 405 "$(curl -sS -o /dev/null -w '%{http_connect}' -p -x "$LARDER_URL" "https://127.0.0.1:$AP/debian/" 2>/dev/null || true)" \
    "CONNECT is refused"
assert_status "$LARDER_URL/apt/127.0.0.1:$AP/debian/pool/../../etc/passwd" 400 --path-as-is
assert_status "$LARDER_URL/apt/127.0.0.1:$AP/debian/dists/bookworm%2fInRelease" 400
assert_status "$LARDER_URL/apt/evil.example/debian/dists/bookworm/InRelease" 403
assert_eq 0 "$(grep -c 'etc/passwd' "$ALOG" || true)" "nothing refused reached the upstream"

# ---- cold, proxy mode ------------------------------------------------------------------------------------------------
install_via() { # install_via CLIENT_DIR LABEL  (APT_CLIENT_OPTS set by the caller)
    local c=$1 rc=0
    apt_client "$c" update >"$WORK/apt-$2-update.log" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$2: apt-get update: $(tail -3 "$WORK/apt-$2-update.log" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    apt_client "$c" install --download-only -y --no-install-recommends $PKGS >"$WORK/apt-$2-install.log" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$2: apt-get install --download-only: $(tail -3 "$WORK/apt-$2-install.log" | tr '\n' ' ')"
    assert_eq "$NDEBS" "$(apt_client_debs "$c" | wc -l)" "$2: every package downloaded"
}
C1=$WORK/client1
apt_client_sources "$C1" "$UP" "$REPO/keyring.gpg"
APT_CLIENT_OPTS=$PROXY install_via "$C1" cold
first_deb=$(head -1 "$REPO/all-debs.txt" | cut -d' ' -f1)
assert_eq 1 "$(apt_count "$REPO" GET "/debian/$first_deb")" "each .deb fetched once"
assert_cache "$LARDER_URL/apt/127.0.0.1:$AP/debian/$first_deb" HIT

# ---- warm, proxy mode, a new client ------------------------------------------------------------------------------------
before=$(grep -c '"GET /debian/pool/' "$ALOG" || true)
C2=$WORK/client2
apt_client_sources "$C2" "$UP" "$REPO/keyring.gpg"
APT_CLIENT_OPTS=$PROXY install_via "$C2" warm
assert_eq "$before" "$(grep -c '"GET /debian/pool/' "$ALOG" || true)" "warm: no package fetched upstream"

# ---- path mode shares the entries ----------------------------------------------------------------------------------------
C3=$WORK/client3
apt_client_sources "$C3" "$LARDER_URL/apt/127.0.0.1:$AP/debian" "$REPO/keyring.gpg"
APT_CLIENT_OPTS="" install_via "$C3" pathmode
assert_eq "$before" "$(grep -c '"GET /debian/pool/' "$ALOG" || true)" "path mode: served from the same entries"

# ---- offline: upstream stopped, Release past its TTL, apt's lists and archives emptied -----------------------------------
sleep 2.2
stop_pid "$NGINX_PID"
apt_client_reset "$C1"
APT_CLIENT_OPTS=$PROXY install_via "$C1" offline
assert_cache "$LARDER_URL/apt/127.0.0.1:$AP/debian/dists/bookworm/InRelease" STALE
assert_status "$LARDER_URL/apt/127.0.0.1:$AP/debian/pool/main/n/nothing/nothing_1_all.deb" 502
stop_larder

# ---- a corrupted .deb upstream: refused, not cached --------------------------------------------------------------------------
start_apt_upstream "$REPO" "$AP"
write_larder_config "$CFG" "$WORK/data-corrupt"
start_larder "$CFG" "$LP"
C4=$WORK/client4
apt_client_sources "$C4" "$UP" "$REPO/keyring.gpg"
rc=0
APT_CLIENT_OPTS=$PROXY apt_client "$C4" update >"$WORK/apt-c4-update.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "update through a fresh cache (the Packages index is recorded)"
victim=$(sed -n 2p "$REPO/all-debs.txt" | cut -d' ' -f1)
cp "$REPO/root/$victim" "$WORK/victim.orig"
printf 'corrupted!' | dd of="$REPO/root/$victim" bs=1 seek=200 conv=notrunc 2>/dev/null
VURL=http://127.0.0.1:$AP/debian/$victim
crc=0
got=$(curl -sS -o "$WORK/victim.got" -w '%{http_code}' -x "$LARDER_URL" "$VURL" 2>/dev/null) || crc=$?
if [ "$got" = 200 ] && [ "$crc" = 0 ]; then fail "a .deb that does not match the Packages index was served whole"; fi
pass "corrupted .deb refused (HTTP $got, curl exit $crc)"
n1=$(apt_count "$REPO" GET "/debian/$victim")
curl -sS -o /dev/null -x "$LARDER_URL" "$VURL" 2>/dev/null || true
assert_eq $((n1 + 1)) "$(apt_count "$REPO" GET "/debian/$victim")" "not cached: asked upstream again"
larder_log_has 'sha256 mismatch' || fail "the log names the mismatch"
cp "$WORK/victim.orig" "$REPO/root/$victim"
stop_larder

# ---- seeding the closure, then installing with the upstream down ----------------------------------------------------------
CFG3=$WORK/larder3.yaml
write_larder_config "$CFG3" "$WORK/data3"
start_larder "$CFG3" "$LP"
cat >"$WORK/seed.yaml" <<EOF
pin_set: build-deps
apt:
  repositories:
    - url: $UP
      suite: bookworm
      components: [main]
      architectures: [amd64]
      signed_by: $REPO/keyring.gpg
  packages: [$(sed 's/ *$//; s/ /, /g' <<<"$PKGS")]
EOF
rc=0
timeout 180 "$LARDER_BIN" seed --config "$CFG3" "$WORK/seed.yaml" >"$WORK/seed.log" 2>&1 </dev/null || rc=$?
# the test repository holds only what this machine lacks: dependencies it has installed (libc6...) are not in it, and
# the seed says so; everything else must be pinned
bad=0
while read -r line; do
    case "$line" in
    FAILED*) dep=${line#FAILED }; dep=${dep%%:*}
        if dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep "install ok installed" >/dev/null ||
            dpkg-query -W -f='${Provides}\n' 2>/dev/null | tr ',' '\n' | sed 's/ *(.*//; s/^ *//' | grep -x "$dep" >/dev/null; then :; else
            bad=1; log "unexpected seed failure: $line"; fi ;;
    esac
done <"$WORK/seed.log"
assert_eq 0 "$bad" "seed: the only failures are dependencies installed on this machine and absent from the repo"
assert_match "$(cat "$WORK/seed.log")" "pin set build-deps: [0-9]+ pinned" "seed summary ($(tail -1 "$WORK/seed.log"))"
pinned=$(sed -n 's/.*pin set build-deps: \([0-9]*\) pinned.*/\1/p' "$WORK/seed.log")
assert_le $((NDEBS + 2)) "$pinned" "every .deb, the Release and the indexes pinned"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then fail "larder seed exit $rc: $(cat "$WORK/seed.log")"; fi
# a keyring that did not sign the repository: nothing of it is seeded
cat >"$WORK/badkey.yaml" <<EOF
pin_set: badkey
apt:
  repositories:
    - {url: $UP, suite: bookworm, signed_by: /usr/share/keyrings/debian-archive-keyring.gpg}
  packages: [$(head -1 "$REPO/packages.txt")]
EOF
rc=0
timeout 60 "$LARDER_BIN" seed --config "$CFG3" "$WORK/badkey.yaml" >"$WORK/badkey.log" 2>&1 </dev/null || rc=$?
assert_ne 0 "$rc" "a repository whose InRelease does not verify is refused"
assert_contains "$(cat "$WORK/badkey.log")" "signature does not verify" "the error says why"

stop_pid "$NGINX_PID"
C5=$WORK/client5
apt_client_sources "$C5" "$UP" "$REPO/keyring.gpg"
APT_CLIENT_OPTS=$PROXY install_via "$C5" seeded

finish
