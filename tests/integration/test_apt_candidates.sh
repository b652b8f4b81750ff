#!/usr/bin/env bash
# test_apt_candidates.sh - apt seeding pins the versions apt itself installs when several suites list a package:
# a signed local repository with two suites (bookworm, bookworm-updates) listing different versions of the same
# packages, the higher one sometimes in each (so the order the indexes arrive in cannot decide), with a versioned
# dependency, an alternative whose first member is too old, one whose first member exists nowhere, a dependency
# satisfied by a versioned Provides, and a :any qualifier (apt_fixture.sh make_apt_versions_repo). The real apt-get,
# pointed at the repository directly, says which files it takes; seeding (repositories in both orders, each into an
# empty cache) must pin exactly those and none of the other versions; then, the upstream stopped, apt-get update +
# install --download-only through Larder in a fresh state directory succeeds.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/apt_fixture.sh"

AP=$(free_port)
LP=$(free_port)
REPO=$WORK/repo
make_apt_versions_repo "$REPO"
start_apt_upstream "$REPO" "$AP"
UP=$APT_UPSTREAM_URL
KEY=$REPO/keyring.gpg
EXPECTED=$(cat "$REPO/expected-debs.txt")

two_suites() { # two_suites CLIENT_DIR URL
    apt_client_sources "$1" "$2" "$KEY"
    echo "deb [signed-by=$KEY] ${2%/} bookworm-updates main" >>"$1/sources.list"
}

# sorted, %-decoded lines of stdin
decoded() {
    "$PY" -c 'import sys, urllib.parse
print("\n".join(sorted(urllib.parse.unquote(l.strip()) for l in sys.stdin if l.strip())))'
}

# ---- what apt itself takes, straight from the repository -------------------------------------------------------------
C0=$WORK/client0
two_suites "$C0" "$UP"
rc=0
apt_client "$C0" update >"$WORK/apt-direct-update.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "apt-get update from the repository: $(tail -3 "$WORK/apt-direct-update.log" | tr '\n' ' ')"
apt_client "$C0" install --print-uris -qq vtop >"$WORK/apt-direct-uris.txt" 2>"$WORK/apt-direct-uris.log" || rc=$?
assert_eq 0 "$rc" "apt-get install --print-uris vtop: $(tail -3 "$WORK/apt-direct-uris.log" | tr '\n' ' ')"
apt_takes=$(sed -n "s|^'$UP/\([^']*\)'.*|\1|p" "$WORK/apt-direct-uris.txt" | decoded)
assert_eq "$EXPECTED" "$apt_takes" "apt's own choice is the fixture's expectation"

write_larder_config() { # write_larder_config FILE DATA_DIR
    write_config "$1" "$LP" "$2"
    printf 'apt:\n  ttl: 2s\n  allow: ["127.0.0.1:%s"]\n' "$AP" >>"$1"
}

# seed_and_install LABEL SUITE1 SUITE2: an empty cache, seed vtop with the repositories in that order, stop the
# upstream, check what is cached, install offline
seed_and_install() {
    local label=$1 s1=$2 s2=$3 rc=0
    pid_alive "${NGINX_PID:-0}" || start_apt_upstream "$REPO" "$AP"
    local cfg=$WORK/larder-$label.yaml
    write_larder_config "$cfg" "$WORK/data-$label"
    start_larder "$cfg" "$LP"
    {
        printf 'pin_set: candidates\napt:\n  repositories:\n'
        printf '    - {url: %s, suite: %s, components: [main], architectures: [%s], signed_by: %s}\n' \
            "$UP" "$s1" "$APTFX_ARCH" "$KEY" "$UP" "$s2" "$APTFX_ARCH" "$KEY"
        printf '  packages: [vtop]\n'
    } >"$WORK/seed-$label.yaml"
    timeout 120 "$LARDER_BIN" seed --config "$cfg" "$WORK/seed-$label.yaml" >"$WORK/seed-$label.log" 2>&1 </dev/null || rc=$?
    assert_eq 0 "$rc" "$label: seed exits 0: $(grep FAILED "$WORK/seed-$label.log" | tr '\n' ' ')"
    assert_not_contains "$(cat "$WORK/seed-$label.log")" "FAILED" "$label: no seed item failed"
    stop_pid "$NGINX_PID"
    # exactly apt's files are cached: each of them served, no other version of them
    local pool code bad=""
    while read -r pool _; do
        code=$(curl -sS -o /dev/null -w '%{http_code}' "$LARDER_URL/apt/127.0.0.1:$AP/debian/$pool" 2>/dev/null || true)
        if grep -Fx "$pool" <<<"$EXPECTED" >/dev/null; then
            [ "$code" = 200 ] || bad="$bad $pool:$code(apt-takes-it)"
        else
            [ "$code" != 200 ] || bad="$bad $pool:pinned(apt-does-not-take-it)"
        fi
    done <"$REPO/all-debs.txt"
    assert_eq "" "$bad" "$label: the cache holds the versions apt takes, and only those"
    # a client that never ran, the upstream down
    local c=$WORK/client-$label
    two_suites "$c" "$UP"
    rc=0
    APT_CLIENT_OPTS="-o Acquire::http::Proxy=$LARDER_URL/" apt_client "$c" update >"$WORK/apt-$label-update.log" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$label: offline apt-get update: $(tail -3 "$WORK/apt-$label-update.log" | tr '\n' ' ')"
    APT_CLIENT_OPTS="-o Acquire::http::Proxy=$LARDER_URL/" apt_client "$c" install --download-only vtop \
        >"$WORK/apt-$label-install.log" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$label: offline apt-get install --download-only vtop: $(tail -3 "$WORK/apt-$label-install.log" | tr '\n' ' ')"
    # (apt names the archive with the epoch, vlib_1%3a1.0-1+deb12u1_amd64.deb; the pool file has none)
    assert_eq "$(sed 's|.*/||' <<<"$EXPECTED" | sort)" "$(apt_client_debs "$c" | decoded | sed 's/_[0-9]*:/_/' | sort)" \
        "$label: apt downloaded its candidates"
    stop_larder
}

seed_and_install main-first bookworm bookworm-updates
seed_and_install updates-first bookworm-updates bookworm

finish
