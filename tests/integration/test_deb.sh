#!/usr/bin/env bash
# test_deb.sh - the Debian package (issue 15): `make deb`'s .deb (or $LARDER_DEB) passes lintian without errors,
# installs into a fresh Debian bookworm root with its dependencies, lays out its files with the right modes and
# owners (/etc/larder 0750 root:larder, larder.yaml 0640 root:larder, a generated admin token), and runs there:
# the root is booted with systemd (systemd-nspawn --boot, sharing the host's network), so systemd starts
# larder.service from the packaged unit with all its hardening, and /-/health answers on the host. The running
# daemon is checked for the unit's confinement (user larder, no capabilities, seccomp, no_new_privs), the
# generated token for admin writes, and `dpkg --purge` for removing /etc/larder but leaving /var/lib/larder.
#
# Needs root, debootstrap and systemd-container (scripts/install-deps), lintian and debhelper to build the .deb,
# and deb.debian.org the first time (the bookworm root, with the package's dependencies preinstalled, is cached in
# /var/tmp/larder-test-debroot, keyed by the dependency list). About a minute with a warm cache and a built .deb.
# Release phase only (the daemon's code paths are the other tests' business):
# ctest-labels: integration
# ctest-timeout: 1200
. "$(dirname "$0")/lib.sh"

DEBROOT_CACHE=${LARDER_DEBROOT_CACHE:-/var/tmp/larder-test-debroot}
MIRROR=${LARDER_DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
[ "$(id -u)" = 0 ] || { skip "needs root (debootstrap, systemd-nspawn)"; finish; exit 0; }
for t in debootstrap systemd-nspawn lintian dpkg-deb nsenter; do
    command -v "$t" >/dev/null 2>&1 || fail "$t not found (scripts/install-deps installs it)"
done

# --- the package --------------------------------------------------------------------------------------------------
DEB=${LARDER_DEB:-}
if [ -z "$DEB" ]; then
    log "building the .deb (make deb)"
    make -C "$REPO" deb >"$WORK/make-deb.log" 2>&1 || fail "make deb failed: $(tail -n 30 "$WORK/make-deb.log")"
    DEB=$(ls "$REPO"/build/deb/larder_*_"$(dpkg --print-architecture)".deb | tail -n 1)
fi
[ -s "$DEB" ] || fail "no .deb at '$DEB'"
assert_eq larder "$(dpkg-deb -f "$DEB" Package)" "the .deb is the larder package"
log "$(basename "$DEB"): $(stat -c %s "$DEB") bytes"

lintian --fail-on error "$DEB" >"$WORK/lintian.log" 2>&1 || fail "lintian reports errors: $(cat "$WORK/lintian.log")"
pass "lintian: no errors"
log "lintian: $(grep -c '^W:' "$WORK/lintian.log" || true) warning(s): $(grep '^W:' "$WORK/lintian.log" | cut -d' ' -f3 | tr '\n' ' ')"

# --- the bookworm root: debootstrap once, with the .deb's dependencies (first alternatives) and systemd as init -----
deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g' | grep . | sort -u)
include=$(printf '%s\n' $deps systemd systemd-sysv dbus | sort -u | tr '\n' ',' | sed 's/,$//')
key=$(printf '%s\n' "debootstrap --variant=minbase $SUITE $MIRROR" "$include" "fixture 1" | sha256_stdin | cut -c1-16)
TARBALL=$DEBROOT_CACHE/$SUITE-minbase-$key.tar.gz
if [ ! -s "$TARBALL" ]; then
    mkdir -p "$DEBROOT_CACHE"
    (
        flock 9
        [ -s "$TARBALL" ] && exit 0
        tmp=$(mktemp -d "$DEBROOT_CACHE/.debootstrap.XXXXXX")
        # shellcheck disable=SC2064
        trap "for m in \$(awk -v d='$tmp/' 'index(\$2, d) == 1 { print \$2 }' /proc/self/mounts | sort -r); do umount -l \"\$m\"; done; rm -rf '$tmp'" EXIT
        log "debootstrap --variant=minbase $SUITE from $MIRROR (once; cached in $TARBALL)"
        env -u http_proxy -u HTTP_PROXY nice debootstrap --variant=minbase --include="$include" "$SUITE" "$tmp/root" \
            "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || exit 1
        r=$tmp/root
        rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/tmp/*
        rm -f "$r/etc/hostname" "$r/etc/machine-id"
        tar --numeric-owner -C "$r" --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* -czf "$tmp/root.tar.gz" . ||
            exit 1
        mv "$tmp/root.tar.gz" "$TARBALL"
    ) 9>"$DEBROOT_CACHE/.lock" || fail "debootstrap failed: $(tail -n 20 "$WORK/debootstrap.log" 2>/dev/null)"
fi
ROOT=$WORK/root
mkdir -p "$ROOT"
tar --numeric-owner -C "$ROOT" -xzf "$TARBALL" || fail "cannot unpack $TARBALL"
cp "$DEB" "$ROOT/root/larder.deb"
MACHINE=larder-deb-$$
# a container without --boot: one command, no network of its own needed
in_root() { systemd-nspawn -q -D "$ROOT" --machine="$MACHINE" --register=no --keep-unit "$@"; }

# --- install: apt resolves the Depends (all preinstalled: no network needed) ------------------------------------
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y /root/larder.deb >"$WORK/install.log" 2>&1 ||
    fail "apt-get install of the .deb failed: $(tail -n 30 "$WORK/install.log")"
pass "the .deb installs into a fresh bookworm root"
assert_contains "$(cat "$WORK/install.log")" "generated an admin token in /etc/larder/admin.token" "postinst says where the token is"

# files, modes, owners (numeric ids resolved in the root: the larder user exists only there)
st() { in_root stat -c '%a %U:%G' "$1" 2>/dev/null | tr -d '\r'; }
assert_eq "755 root:root" "$(st /usr/bin/larder)" "/usr/bin/larder"
assert_eq "750 root:larder" "$(st /etc/larder)" "/etc/larder"
assert_eq "640 root:larder" "$(st /etc/larder/larder.yaml)" "/etc/larder/larder.yaml"
assert_eq "640 root:larder" "$(st /etc/larder/admin.token)" "/etc/larder/admin.token"
assert_eq "750 larder:larder" "$(st /var/lib/larder)" "/var/lib/larder"
for f in /lib/systemd/system/larder.service /lib/systemd/system/larder.socket /usr/lib/sysusers.d/larder.conf \
    /usr/lib/tmpfiles.d/larder.conf /lib/systemd/system/larder-admin-token.service \
    /usr/libexec/larder/larder-admin-token /usr/share/doc/larder/README.md /usr/share/doc/larder/install.md; do
    [ -f "$ROOT$f" ] && pass "$f" || fail "$f is not installed"
done
[ -f "$ROOT/lib/systemd/system-preset/80-larder.preset" ] && pass "the preset file" || fail "no preset file"
grep -qx '/etc/larder/larder.yaml' "$ROOT/var/lib/dpkg/info/larder.conffiles" && pass "larder.yaml is a conffile" ||
    fail "larder.yaml is not a conffile"
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/larder.service" ] && pass "larder.service is enabled" ||
    fail "larder.service is not enabled"
in_root getent passwd larder >"$WORK/passwd" 2>/dev/null || fail "no larder user"
assert_match "$(cat "$WORK/passwd")" '^larder:x:[0-9]+:[0-9]+:[^:]*:/var/lib/larder:/usr/sbin/nologin' "the larder user"
TOKEN=$(cat "$ROOT/etc/larder/admin.token")
assert_match "$TOKEN" '^[A-Za-z0-9_-]{43}$' "the admin token: 43 random URL-safe characters"
in_root larder config --check /etc/larder/larder.yaml >"$WORK/config-check.log" 2>&1 ||
    fail "the packaged larder.yaml does not check: $(cat "$WORK/config-check.log")"
pass "the packaged larder.yaml checks"

# --- boot: systemd starts larder.service from the unit ---------------------------------------------------------
PORT=$(free_port)
# the test's own port on loopback (the container shares the host's network): the conffile edited as an admin would
sed -i -e "s/^  - address: \"0.0.0.0\"/  - address: \"127.0.0.1\"/" -e "s/^    port: 3142/    port: $PORT/" \
    "$ROOT/etc/larder/larder.yaml"
grep -q "port: $PORT" "$ROOT/etc/larder/larder.yaml" || fail "cannot set the port in larder.yaml"
# an upstream on the host for a real fetch by the confined daemon (libcurl, getaddrinfo of "localhost")
UPORT=$(free_port)
mkdir -p "$WORK/upstream/dist"
make_file "$WORK/upstream/dist/blob.bin" 100000
"$PY" -m http.server --bind 127.0.0.1 --directory "$WORK/upstream" "$UPORT" >"$WORK/upstream.log" 2>&1 &
UPSTREAM=$!
track_pid "$UPSTREAM"
printf '\nfiles:\n  mirrors: [{name: up, url: "http://localhost:%s/dist/"}]\n' "$UPORT" >>"$ROOT/etc/larder/larder.yaml"
echo "$MACHINE" >"$ROOT/etc/hostname"
# no getty on a console nobody reads; no network management (the container shares the host's network)
for u in console-getty.service systemd-networkd.service systemd-networkd.socket systemd-timesyncd.service; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$u"
done
# larder.socket must stay disabled even on this first boot (systemd's preset-all; the package's preset file says
# so); should it start anyway, it listens on the test's port, never on the host's 3142
mkdir -p "$ROOT/etc/systemd/system/larder.socket.d"
printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\n' "$PORT" >"$ROOT/etc/systemd/system/larder.socket.d/test.conf"
t0=$SECONDS
systemd-nspawn -q -D "$ROOT" --machine="$MACHINE" --register=no --keep-unit --boot --console=passive \
    >"$WORK/boot.log" 2>&1 &
NSPAWN=$!
track_pid "$NSPAWN"
stop_container() {
    pid_alive "$NSPAWN" || return 0
    # SIGTERM: nspawn asks the container's systemd to power off (SIGRTMIN+3)
    kill -TERM "$NSPAWN" 2>/dev/null || true
    local i
    for i in $(seq 1 300); do pid_alive "$NSPAWN" || break; sleep 0.1; done
    pid_alive "$NSPAWN" && { log "container did not power off within 30 s: SIGKILL"; kill -9 "$NSPAWN" 2>/dev/null; }
    wait "$NSPAWN" 2>/dev/null || true
    untrack_pid "$NSPAWN"
}
at_cleanup stop_container
if ! wait_for "health after boot" 90 curl -fsS --max-time 2 "http://127.0.0.1:$PORT/-/health"; then
    pid_alive "$NSPAWN" || fail "systemd-nspawn --boot exited: $(tail -n 30 "$WORK/boot.log")"
    fail "no /-/health on 127.0.0.1:$PORT within 90 s of booting: $(tail -n 30 "$WORK/boot.log")"
fi
log "booted; /-/health answered after $((SECONDS - t0)) s"
pass "/-/health answers from larder.service in the booted root"

# the container's init (nspawn's child) and the daemon below it
INIT=$(ps -o pid= --ppid "$NSPAWN" | head -n 1 | tr -d ' ')
[ -n "$INIT" ] || fail "no init process under systemd-nspawn"
in_ct() { nsenter -t "$INIT" -a "$@"; }
assert_eq active "$(in_ct systemctl is-active larder.service 2>&1)" "larder.service is active"
assert_eq disabled "$(in_ct systemctl is-enabled larder.socket 2>&1)" "larder.socket stays disabled on a first boot"
assert_eq inactive "$(in_ct systemctl is-active larder.socket 2>&1)" "larder.socket is not running"
in_ct journalctl -u larder.service -b --no-pager >"$WORK/larder-journal.log" 2>&1 || true
assert_contains "$(cat "$WORK/larder-journal.log")" "listening on http://127.0.0.1:$PORT" "the daemon bound the configured port"
MAINPID=$(in_ct systemctl show -P MainPID larder.service)
# the unit's confinement, as the kernel sees it (the PID is the container's; its /proc is the container's too)
status=$(in_ct cat "/proc/$MAINPID/status")
assert_match "$status" $'Uid:\t[0-9]+' "daemon uid"
uid=$(awk '/^Uid:/ { print $2 }' <<<"$status")
assert_eq "$(in_ct id -u larder)" "$uid" "the daemon runs as the larder user"
assert_match "$status" $'CapEff:\t0000000000000000' "no effective capabilities"
assert_match "$status" $'CapBnd:\t0000000000000000' "an empty capability bounding set"
assert_match "$status" $'NoNewPrivs:\t1' "no_new_privs"
assert_match "$status" $'Seccomp:\t2' "a seccomp filter"
# the hardening settings are those of the packaged unit (systemd parsed them: no "Unknown key" warnings)
in_ct journalctl -b --no-pager >"$WORK/journal.log" 2>&1 || true
assert_not_contains "$(grep -i 'larder.service' "$WORK/journal.log")" "Unknown key" "systemd knows every key of the unit"
assert_eq "yes" "$(in_ct systemctl show -P MemoryDenyWriteExecute larder.service)" "MemoryDenyWriteExecute"
# the daemon can run git and gpgv (spawned by the git and apt modules) under the unit's restrictions: a transient
# service with the same settings runs them
props=$(in_ct systemctl show larder.service -P ExecStart >/dev/null && sed -n '/^\[Service\]/,/^\[/p' \
    "$ROOT/lib/systemd/system/larder.service" | grep -E '^[A-Z][A-Za-z]+=' |
    grep -vE '^(Type|ExecStart|ExecReload|WatchdogSec|Restart|RestartSec|StateDirectory|StateDirectoryMode)=')
args=()
while IFS= read -r p; do args+=(-p "$p"); done <<<"$props"
in_ct systemd-run --wait --pipe -q "${args[@]}" -p StateDirectory=larder \
    /bin/sh -c 'git --version && cd /var/lib/larder && rm -rf t.git && git init -q --bare t.git && rm -rf t.git &&
               gpgv --version | head -n 1' >"$WORK/tools.log" 2>&1 ||
    fail "git/gpgv under the unit's settings failed: $(cat "$WORK/tools.log")"
assert_contains "$(cat "$WORK/tools.log")" "git version" "git runs under the unit's settings"
assert_contains "$(cat "$WORK/tools.log")" "gpgv (GnuPG)" "gpgv runs under the unit's settings"

# a fetch from an upstream, stored in /var/lib/larder and served again from the cache
curl -fsS --max-time 30 -o "$WORK/got1" "http://127.0.0.1:$PORT/files/up/blob.bin" ||
    fail "fetch through the confined daemon failed: $(in_ct journalctl -u larder.service -n 20 --no-pager)"
cmp -s "$WORK/got1" "$WORK/upstream/dist/blob.bin" && pass "a file fetched from the upstream by the confined daemon" ||
    fail "the fetched file differs"
stop_pid "$UPSTREAM"
curl -fsS --max-time 30 -o "$WORK/got2" "http://127.0.0.1:$PORT/files/up/blob.bin" && cmp -s "$WORK/got2" "$WORK/got1" &&
    pass "served again from the cache with the upstream gone" || fail "not served from the cache after the upstream stopped"

# the generated token is the daemon's: an admin write without it is refused, with it accepted (a bad spec: 400)
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'Content-Type: application/yaml' \
    --data-binary 'nonsense: [' "http://127.0.0.1:$PORT/-/api/v1/jobs")
assert_eq 401 "$code" "an admin write without the token"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/yaml' --data-binary 'nonsense: [' "http://127.0.0.1:$PORT/-/api/v1/jobs")
assert_eq 400 "$code" "an admin write with the generated token gets to the spec parser"
# a root without the token file (an image built with the .deb ships none) gets a fresh one when larder starts:
# larder-admin-token.service runs before it
rm -f "$ROOT/etc/larder/admin.token"
in_ct systemctl restart larder.service || fail "larder.service does not restart: $(in_ct journalctl -n 20 --no-pager)"
wait_for "health after the restart" 30 curl -fsS --max-time 2 "http://127.0.0.1:$PORT/-/health" ||
    fail "no /-/health after the restart without a token file"
NEWTOKEN=$(cat "$ROOT/etc/larder/admin.token" 2>/dev/null || true)
assert_match "$NEWTOKEN" '^[A-Za-z0-9_-]{43}$' "a fresh token generated before larder started"
assert_ne "$TOKEN" "$NEWTOKEN" "the fresh token is new"
assert_eq "640 root:larder" "$(in_ct stat -c '%a %U:%G' /etc/larder/admin.token)" "the fresh token's mode"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H "Authorization: Bearer $NEWTOKEN" \
    -H 'Content-Type: application/yaml' --data-binary 'nonsense: [' "http://127.0.0.1:$PORT/-/api/v1/jobs")
assert_eq 400 "$code" "the daemon took the fresh token"

# something for the data dir to hold
in_ct ls /var/lib/larder >"$WORK/datadir.ls" 2>&1
[ -s "$WORK/datadir.ls" ] && pass "the daemon wrote /var/lib/larder" || fail "/var/lib/larder is empty"

# --- socket activation under the same unit: systemd owns the port, the first connection starts the service ------
in_ct systemctl stop larder.service
wait_for "service stopped" 10 sh -c "! curl -fsS --max-time 1 http://127.0.0.1:$PORT/-/health" || fail "larder.service did not stop"
in_ct systemctl start larder.socket || fail "larder.socket does not start: $(in_ct systemctl status larder.socket)"
assert_eq inactive "$(in_ct systemctl is-active larder.service 2>&1)" "larder.service waits for a connection"
wait_for "health through the socket" 30 curl -fsS --max-time 5 "http://127.0.0.1:$PORT/-/health" ||
    fail "no /-/health through larder.socket: $(in_ct journalctl -u larder.service -n 20 --no-pager)"
pass "/-/health through larder.socket (socket activation)"
assert_eq active "$(in_ct systemctl is-active larder.service 2>&1)" "the connection started larder.service"
# the daemon serves the socket systemd handed it (LISTEN_FDS), not one it bound itself
in_ct journalctl -u larder.service -b --no-pager >"$WORK/larder-journal.log" 2>&1 || true
assert_contains "$(cat "$WORK/larder-journal.log")" "listening on systemd socket 0" "the daemon took systemd's socket"

# --- purge (inside the running system, as an admin would): config gone, data left with a note ------------------
in_ct env DEBIAN_FRONTEND=noninteractive dpkg --purge larder >"$WORK/purge.log" 2>&1 ||
    fail "dpkg --purge larder failed: $(cat "$WORK/purge.log")"
assert_contains "$(cat "$WORK/purge.log")" "/var/lib/larder was left in place" "purge says the data was left"
in_ct test -e /etc/larder && fail "/etc/larder survives the purge" || pass "purge removes /etc/larder"
in_ct test -d /var/lib/larder/ && [ -s "$WORK/datadir.ls" ] && [ -n "$(in_ct ls /var/lib/larder)" ] &&
    pass "purge leaves /var/lib/larder and its contents" || fail "purge removed /var/lib/larder"
in_ct systemctl is-active -q larder.service && fail "larder.service still runs after the purge" ||
    pass "larder.service is stopped by the purge"
stop_container
pass "the container powered off"

finish
