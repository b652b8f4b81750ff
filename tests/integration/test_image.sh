#!/usr/bin/env bash
# test_image.sh - the appliance image (issue 15) booted for real: build/image/larder.raw (built by `make image` when
# missing or older than its sources) is copied, grown by 1 GiB, and booted in qemu-system-x86_64 exactly as
# image/README.md says (virtio disk, user networking with port 3142 forwarded to the host, serial console to a log,
# BIOS firmware). The test's larder.yaml reaches the guest through QEMU's fw_cfg (`opt/larder/larder.yaml`, read by
# the first-boot unit) and names a files mirror on an nginx the test runs on the host (10.0.2.2 from the guest).
#
#   boot 1 (first boot): /-/health through the forwarded port; the console shows the URL and the admin token, and
#     that token works (start and stop a recording: refused without it); the machine id was made fresh, the root
#     filesystem grown to the enlarged disk; a file fetched through the VM (MISS), then again (HIT);
#     ACPI power-down from the QEMU monitor, the VM shuts down cleanly
#   boot 2 (upstream stopped): healthy again; no token on the console this time, the same machine id; the file is a
#     HIT from the VM's store, same bytes; the token still works (and a wrong one does not)
#
# KVM only when a probe boot (20 s, -snapshot) shows the kernel printing under it; TCG otherwise. Which one ran,
# and the boot-to-healthy seconds of both boots, are printed at the end. About 4 minutes under TCG on a 2-core
# machine once the image is built (building it the first time: debootstrap, a few minutes more).
# Needs root (the image build), qemu-system-x86, and the image build's tools (scripts/install-deps).
# ctest-labels: integration
# ctest-timeout: 2400
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { skip "needs root (the image build)"; finish; exit 0; }
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing (scripts/install-deps)"

T0=$SECONDS
IMAGE=${LARDER_IMAGE:-$REPO/build/image/larder.raw}
BOOT_TIMEOUT=${LARDER_IMAGE_BOOT_TIMEOUT:-600}

# ---- the image: built when missing or outdated ------------------------------------------------------------------
if [ -z "${LARDER_IMAGE:-}" ]; then
    s=$SECONDS
    log "make image (builds the .deb and the image when missing or outdated)"
    nice make -C "$REPO" --no-print-directory image >"$WORK/make-image.log" 2>&1 ||
        { tail -40 "$WORK/make-image.log" >&2; fail "make image failed (log above)"; }
    log "make image: $((SECONDS - s)) s"
fi
[ -s "$IMAGE" ] || fail "no image at $IMAGE"
pass "image $IMAGE ($(du -h --apparent-size "$IMAGE" | cut -f1))"

DISK=$WORK/disk.raw
cp --sparse=always "$IMAGE" "$DISK"
SIZE0=$(stat -c %s "$DISK")
truncate -s +1G "$DISK" # first boot must grow the root filesystem into this

# ---- the upstream on the host ------------------------------------------------------------------------------------
NP=$(free_port)
HP=$(free_port) # the VM's port 3142, forwarded
make_file "$WORK/origin/root/pub/tool-1.0.tar.gz" 200000
TOOL_SHA=$(sha256_file "$WORK/origin/root/pub/tool-1.0.tar.gz")
start_nginx "$WORK/origin" "$NP"
UP_NGINX=$NGINX_PID

# the guest's config, provisioned through fw_cfg; it has no admin token: the first boot makes one
cat >"$WORK/guest.yaml" <<EOF
listen:
  - address: 0.0.0.0
    port: 3142
data_dir: /var/lib/larder
timeouts:
  connect: 5s
files:
  mirrors:
    - name: host
      url: http://10.0.2.2:$NP/pub/
EOF
if [ -x "$LARDER_BIN" ]; then
    "$LARDER_BIN" config --check "$WORK/guest.yaml" >/dev/null 2>&1 || fail "the guest config does not check"
fi

L=http://127.0.0.1:$HP

# ---- qemu --------------------------------------------------------------------------------------------------------
ACCEL=tcg
QEMU_PID=

# kvm_probe: boots the image for up to 20 s under KVM (-snapshot: the disk is not written) and looks for the guest
# kernel's or systemd's output on the serial console. Guests have been seen to hang right after decompression under
# KVM on these machines.
kvm_probe() {
    [ -r /dev/kvm ] && [ -w /dev/kvm ] || { log "KVM: /dev/kvm not usable"; return 1; }
    [ "${LARDER_IMAGE_KVM:-probe}" != no ] || { log "KVM: off (LARDER_IMAGE_KVM=no)"; return 1; }
    local plog=$WORK/kvm-probe.console.log pid i ok=1
    qemu-system-x86_64 -enable-kvm -m 1024 -snapshot -drive "file=$DISK,format=raw,if=virtio" \
        -nic none -nographic -serial "file:$plog" -monitor none </dev/null >"$WORK/kvm-probe.qemu.log" 2>&1 &
    pid=$!
    track_pid "$pid"
    for i in $(seq 1 40); do
        if grep -aqE 'Linux version|Welcome to|systemd\[1\]|Run /init' "$plog" 2>/dev/null; then ok=0; break; fi
        pid_alive "$pid" || break
        sleep 0.5
    done
    stop_pid "$pid" KILL
    if [ "$ok" = 0 ]; then log "KVM: the probe guest's kernel printed within 20 s: using KVM"; else
        log "KVM: the probe guest printed nothing from its kernel in 20 s ($(tr -d '\r' <"$plog" 2>/dev/null |
            grep -a . | tail -1 | cut -c1-80)): using TCG"
    fi
    return "$ok"
}

# boot_vm N [QEMU ARGS...] - starts the VM in the background (console: $WORK/console.N.log, monitor socket
# $WORK/monitor.sock); sets QEMU_PID and CONSOLE
boot_vm() {
    local n=$1
    shift
    CONSOLE=$WORK/console.$n.log
    local accel=(-accel tcg)
    [ "$ACCEL" = kvm ] && accel=(-enable-kvm)
    rm -f "$WORK/monitor.sock"
    qemu-system-x86_64 "${accel[@]}" -m 1024 -smp 2 -drive "file=$DISK,format=raw,if=virtio" \
        -nic "user,hostfwd=tcp:127.0.0.1:$HP-:3142" -nographic -serial "file:$CONSOLE" \
        -monitor "unix:$WORK/monitor.sock,server,nowait" "$@" </dev/null >"$WORK/qemu.$n.log" 2>&1 &
    QEMU_PID=$!
    track_pid "$QEMU_PID"
}

# wait_healthy -> prints the seconds from the start of qemu to the first 200 from /-/health
wait_healthy() {
    local start=$SECONDS
    until curl -fsS --max-time 3 "$L/-/health" >/dev/null 2>&1; do
        pid_alive "$QEMU_PID" || { tail -30 "$CONSOLE" >&2; fail "qemu exited before /-/health answered"; }
        [ $((SECONDS - start)) -lt "$BOOT_TIMEOUT" ] ||
            { tr -d '\r' <"$CONSOLE" | tail -40 >&2; fail "/-/health did not answer within $BOOT_TIMEOUT s"; }
        sleep 1
    done
    echo $((SECONDS - start))
}

# console_wait REGEX [SECONDS] - waits for a line on the current console log
console_wait() {
    local i
    for i in $(seq 1 "${2:-120}"); do
        tr -d '\r' <"$CONSOLE" | grep -aEq -- "$1" && return 0
        sleep 1
    done
    return 1
}

# power_down - ACPI power button through the monitor; waits for qemu to exit (a clean shutdown), 180 s at most
power_down() {
    local i
    "$PY" -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(0.3); s.recv(4096)
s.sendall(b"system_powerdown\n"); time.sleep(0.5); s.close()' "$WORK/monitor.sock" ||
        fail "could not talk to the qemu monitor"
    for i in $(seq 1 180); do
        pid_alive "$QEMU_PID" || break
        sleep 1
    done
    if pid_alive "$QEMU_PID"; then
        stop_pid "$QEMU_PID" KILL
        fail "the VM did not power off within 180 s of system_powerdown"
    fi
    wait "$QEMU_PID" 2>/dev/null || true
    untrack_pid "$QEMU_PID"
    pass "the VM powered off on ACPI power-down"
}

kvm_probe && ACCEL=kvm
log "accelerator: $ACCEL"

# ---- boot 1 -------------------------------------------------------------------------------------------------------
boot_vm 1 -fw_cfg "name=opt/larder/larder.yaml,file=$WORK/guest.yaml"
BOOT1=$(wait_healthy)
pass "boot 1 ($ACCEL): /-/health answered $BOOT1 s after qemu started"
log "boot 1 ($ACCEL): healthy after $BOOT1 s"

console_wait 'LARDER ADMIN TOKEN: [A-Za-z0-9_-]+' 120 || fail "no admin token on the first boot's console"
TOKEN=$(tr -d '\r' <"$CONSOLE" | grep -aoE 'LARDER ADMIN TOKEN: [A-Za-z0-9_-]+' | tail -1 | awk '{ print $4 }')
assert_match "$TOKEN" '^[A-Za-z0-9_-]{32,}$' "the console shows a generated admin token"
assert_match "$(tr -d '\r' <"$CONSOLE")" "http://10\\.0\\.2\\.15:3142/-/ui/" "the console shows the URL"
assert_match "$(tr -d '\r' <"$CONSOLE")" "Admin token: +/etc/larder/admin.token" "the console says where the token is"
assert_match "$(tr -d '\r' <"$CONSOLE")" "installed the provisioned config" "the fw_cfg config was installed"
MACHINE_ID=$(tr -d '\r' <"$CONSOLE" | grep -aoE 'Machine ID: +[0-9a-f]{32}' | tail -1 | awk '{ print $3 }')
assert_match "$MACHINE_ID" '^[0-9a-f]{32}$' "a machine id was made at first boot"
grown=$(tr -d '\r' <"$CONSOLE" | grep -aoE 'root filesystem [^:]+: [0-9.]+[MG] -> [0-9.]+[MG]' | tail -1)
log "first boot: $grown"
before=$(sed -E 's/.*: ([0-9.]+[MG]) -> .*/\1/' <<<"$grown")
after=$(sed -E 's/.* -> ([0-9.]+[MG])/\1/' <<<"$grown")
[ -n "$grown" ] && [ "$before" != "$after" ] && pass "root filesystem grown ($grown)" ||
    fail "the root filesystem was not grown to the disk (console: '$grown')"

# the token works, and is needed
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -X POST -H 'Content-Type: application/json' \
    -d '{"pin_set":"image-test"}' "$L/-/api/v1/record")
assert_match "$code" '^40[13]$' "starting a recording without the token is refused"
code=$(curl -sS -o "$WORK/record.json" -w '%{http_code}' --max-time 30 -X POST -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"pin_set":"image-test"}' "$L/-/api/v1/record")
assert_match "$code" '^20[01]$' "starting a recording with the console's token ($(cat "$WORK/record.json"))"

# a file through the VM, from the host's upstream
out=$(CURL_MAX_TIME=120 fetch "$L/files/host/tool-1.0.tar.gz" "$WORK/tool.1") || fail "GET through the VM failed"
assert_eq "200 MISS" "$out" "first GET through the VM"
assert_eq "$TOOL_SHA" "$(sha256_file "$WORK/tool.1")" "bytes through the VM"
out=$(fetch "$L/files/host/tool-1.0.tar.gz" "$WORK/tool.2") || fail "second GET through the VM failed"
assert_eq "200 HIT" "$out" "second GET through the VM"

code=$(curl -sS -o "$WORK/record.json" -w '%{http_code}' --max-time 30 -X DELETE -H "Authorization: Bearer $TOKEN" \
    "$L/-/api/v1/record")
assert_eq 200 "$code" "stopping the recording with the token ($(cat "$WORK/record.json"))"

power_down

# ---- boot 2: the upstream is gone, the store is not --------------------------------------------------------------
stop_pid "$UP_NGINX"
boot_vm 2
BOOT2=$(wait_healthy)
pass "boot 2 ($ACCEL): /-/health answered $BOOT2 s after qemu started"
log "boot 2 ($ACCEL): healthy after $BOOT2 s"
out=$(fetch "$L/files/host/tool-1.0.tar.gz" "$WORK/tool.3") || fail "GET through the VM after the reboot failed"
assert_eq "200 HIT" "$out" "the file after a reboot, upstream stopped"
assert_eq "$TOOL_SHA" "$(sha256_file "$WORK/tool.3")" "bytes after the reboot"
console_wait 'Web UI and API: +http://' 120 || fail "no banner on the second boot's console"
assert_not_contains "$(tr -d '\r' <"$CONSOLE")" "LARDER ADMIN TOKEN" "the token is printed on the first boot only"
assert_not_contains "$(tr -d '\r' <"$CONSOLE")" "larder-firstboot:" "the first-boot unit ran once"
assert_contains "$(tr -d '\r' <"$CONSOLE")" "Machine ID:      $MACHINE_ID" "the machine id persists"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -X POST -H "Authorization: Bearer not-$TOKEN" \
    -H 'Content-Type: application/json' -d '{"pin_set":"image-test-2"}' "$L/-/api/v1/record")
assert_match "$code" '^40[13]$' "a wrong token is refused after the reboot"
code=$(curl -sS -o "$WORK/record2.json" -w '%{http_code}' --max-time 30 -X POST -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"pin_set":"image-test-2"}' "$L/-/api/v1/record")
assert_match "$code" '^20[01]$' "the token still works after the reboot ($(cat "$WORK/record2.json"))"
power_down

log "summary: accelerator $ACCEL; image $((SIZE0 / 1048576)) MiB; boot-to-healthy $BOOT1 s (first boot), $BOOT2 s" \
    "(second); whole test $((SECONDS - T0)) s"
finish
