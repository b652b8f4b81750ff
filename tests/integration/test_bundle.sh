#!/usr/bin/env bash
# test_bundle.sh - bundles carry a seeded pin set to an air-gapped appliance: a set seeded across files (with one
# large file), pypi, npm and oci is exported while the daemon runs, then imported into a fresh larder that is
# offline and never saw an upstream, while it runs; pip, npm, skopeo and curl then get every byte from it with every
# upstream stopped. A tampered bundle (one byte of a blob), a truncated one, a wrong format version, a wrong token
# and a bundle over quota are refused with a message saying what is wrong, and leave the store as it was (stats, pins,
# no temp files); importing twice changes nothing. A blob corrupted in the exporting store aborts the export (no file
# is left). The daemons' peak RSS during export and import of the large file is printed (constant memory: it must
# not grow with the file). BUNDLE_BIG_MB sets the large file's size (default 300).
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/bundle_fixture.sh"
. "$(dirname "$0")/pypi_fixture.sh"
. "$(dirname "$0")/npm_fixture.sh"
. "$(dirname "$0")/oci_fixture.sh"

BIG_MB=${BUNDLE_BIG_MB:-300}
# under ASan, freed memory sits in a quarantine of 256 MiB by default: the RSS would show the quarantine, not us
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
LP=$(free_port)
LP2=$(free_port)
NP=$(free_port)
IP=$(free_port)
FP=$(free_port)
VP=$(free_port)
OP=$(free_port)

# ---- upstreams: nginx (files), a pip index, verdaccio, docker-registry --------------------------------------------------
ORIG=$WORK/origin
mkdir -p "$ORIG/root/x"
head -c "$((BIG_MB * 1024 * 1024))" /dev/urandom >"$ORIG/root/x/big.bin"
make_file "$ORIG/root/x/small.bin" 70000
make_file "$ORIG/root/x/other.bin" 5000
start_nginx "$ORIG" "$NP"
NGINX_FILES_PID=$NGINX_PID
UP=$WORK/pypi
make_pypi_index "$UP" "$FP"
start_pypi_upstream "$UP" "$IP" "$FP"
NGINX_PYPI_PID=$NGINX_PID
FX=$WORK/npmfx
UPD=$WORK/verdaccio
NPMC=$WORK/npmc
make_npm_packages "$FX"
start_verdaccio "$UPD" "$VP"
publish_npm_packages "$FX" "$VERDACCIO_URL"
make_npm_lockfile "$FX" "$VERDACCIO_URL"
IMG=$WORK/images
UD=$WORK/registry
make_oci_images "$IMG"
start_oci_registry "$UD" "$OP"
push_oci_images "$IMG" "$OCI_REGISTRY_URL" "$WORK/pushed.json"

modules() { # the module sections: the same on both sides, so that keys (upstream URLs, registry names) agree
    cat <<EOF
files:
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
pypi:
  upstream: http://127.0.0.1:$IP/simple/
npm:
  upstream: $VERDACCIO_URL/
oci:
  registries:
    docker.io: $OCI_REGISTRY_URL
    "$OCI_REGISTRY_HOSTPORT": $OCI_REGISTRY_URL
EOF
}
CFG=$WORK/a.yaml
write_config "$CFG" "$LP" "$WORK/data-a"
modules >>"$CFG"
start_larder "$CFG" "$LP"
A_URL=$LARDER_URL
A_PID=$LARDER_PID
A_LOG=$LARDER_LOG

mkdir -p "$WORK/spec/app"
cp "$UP/root/requirements.txt" "$WORK/spec/requirements.txt"
cp "$FX/app-public/package-lock.json" "$WORK/spec/app/"
cat >"$WORK/spec/seed.yaml" <<EOF
pin_set: airgap
files:
  - origin/x/big.bin
  - origin/x/small.bin
pypi:
  python_versions: ["3.11"]
  requirement_files: [requirements.txt]
  requirements:
    - setuptools==$(ls "$UP/root/packages/setuptools/" | sed -n 's/^setuptools-\([^-]*\)-.*/\1/p')
npm:
  lockfiles: [app/package-lock.json]
oci:
  images:
    - larder-test/hello:1.0
    - docker.io/library/larder-hello:1.0
EOF
printf 'pin_set: small\nfiles:\n  - origin/x/small.bin\n  - origin/x/other.bin\n' >"$WORK/spec/small.yaml"
for s in seed small; do
    rc=0
    timeout 300 "$LARDER_BIN" seed --config "$CFG" "$WORK/spec/$s.yaml" >"$WORK/seed-$s.log" 2>&1 </dev/null || rc=$?
    assert_eq 0 "$rc" "larder seed $s.yaml: $(tail -3 "$WORK/seed-$s.log" | tr '\n' ' ')"
done

# ---- the peak RSS of a process while a command runs -----------------------------------------------------------------
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
PEAK_KB=0
with_rss() { # with_rss PID CMD...: runs CMD, sets PEAK_KB to the highest RSS of PID seen meanwhile, returns CMD's status
    local pid=$1
    shift
    local f=$WORK/rss.$RANDOM
    (
        peak=0
        while [ ! -e "$f.stop" ]; do
            r=$(rss_kb "$pid")
            [ "${r:-0}" -gt "$peak" ] && peak=$r
            echo "$peak" >"$f"
            sleep 0.05
        done
    ) &
    local sampler=$!
    local rc=0
    "$@" || rc=$?
    touch "$f.stop"
    wait "$sampler" 2>/dev/null || true
    PEAK_KB=$(cat "$f")
    return $rc
}

# ---- export while the daemon runs ------------------------------------------------------------------------------------------
B=$WORK/airgap.tar
rss0=$(rss_kb "$A_PID")
rc=0
with_rss "$A_PID" timeout 300 "$LARDER_BIN" export --config "$CFG" airgap "$B" >"$WORK/export.log" 2>&1 </dev/null || rc=$?
assert_eq 0 "$rc" "larder export airgap: $(tail -3 "$WORK/export.log" | tr '\n' ' ')"
log "exporting daemon RSS: ${rss0} KiB before, peak ${PEAK_KB} KiB during the export of a ${BIG_MB} MiB file (bundle $(file_size "$B") bytes)"
assert_le "$PEAK_KB" "$((rss0 + 64 * 1024))" "the exporting daemon's RSS grew by less than 64 MiB (constant memory)"
assert_contains "$(cat "$WORK/export.log")" "airgap.tar written" "export says what it wrote"
[ -e "$B.part" ] && fail "FILE.part left behind"
listing=$(tar tvf "$B") || fail "tar tvf cannot list the bundle"
assert_eq "larder-bundle.json" "$(tar tf "$B" | sed -n 1p)" "the header is the first member"
assert_eq "manifest.json" "$(tar tf "$B" | sed -n 2p)" "the manifest is the second member"
BIG_SHA=$(sha256_file "$ORIG/root/x/big.bin")
assert_contains "$listing" "blobs/sha256/$BIG_SHA" "tar lists the large file's blob"
man=$(tar xOf "$B" manifest.json)
for p in files pypi npm oci; do assert_contains "$man" "\"protocol\": \"$p\"" "the manifest holds $p entries"; done
assert_contains "$man" '"key": "f/' "the manifest carries the pip page's file records"
assert_contains "$man" '"key": "t/' "the manifest carries the npm packument's tarball records"
assert_contains "$man" '"key": "mt/' "the manifest carries the manifests' media types"
assert_contains "$(tar xOf "$B" larder-bundle.json)" '"version": 1' "the header names the format version"
rc=0
timeout 60 "$LARDER_BIN" export --config "$CFG" small "$WORK/small.tar" >"$WORK/export-small.log" 2>&1 </dev/null || rc=$?
assert_eq 0 "$rc" "larder export small: $(tail -2 "$WORK/export-small.log" | tr '\n' ' ')"
rc=0
timeout 60 "$LARDER_BIN" export --config "$CFG" nosuchset "$WORK/none.tar" >"$WORK/export-none.log" 2>&1 </dev/null || rc=$?
assert_ne 0 "$rc" "exporting an unknown set fails"
assert_contains "$(cat "$WORK/export-none.log")" "no such pin set" "and says why"
[ -e "$WORK/none.tar" ] || [ -e "$WORK/none.tar.part" ] && fail "a failed export left a file"

# ---- a blob damaged in the exporting store aborts the export; no file is left -------------------------------------------
OTHER_SHA=$(sha256_file "$ORIG/root/x/other.bin")
blobf=$WORK/data-a/blobs/sha256/${OTHER_SHA:0:2}/$OTHER_SHA
printf 'X' | dd of="$blobf" bs=1 seek=100 conv=notrunc 2>/dev/null
rc=0
timeout 60 "$LARDER_BIN" export --config "$CFG" small "$WORK/bad-export.tar" >"$WORK/export-bad.log" 2>&1 </dev/null || rc=$?
assert_ne 0 "$rc" "exporting a set with a corrupt stored blob fails ($(tail -1 "$WORK/export-bad.log"))"
[ -e "$WORK/bad-export.tar" ] || [ -e "$WORK/bad-export.tar.part" ] && fail "the aborted export left a file"
grep -q "stored blob $OTHER_SHA is corrupt" "$A_LOG" || fail "the exporting daemon's log names the corrupt blob"
stop_larder

# ---- every upstream stops; a fresh larder, offline, never online --------------------------------------------------------
stop_pid "$NGINX_FILES_PID"
stop_pid "$NGINX_PYPI_PID"
stop_pid "$VERDACCIO_PID"
stop_oci_registry "$UD"
CFG2=$WORK/b.yaml
CFG_OFFLINE=true write_config "$CFG2" "$LP2" "$WORK/data-b"
modules >>"$CFG2"
start_larder "$CFG2" "$LP2"
B_PID=$LARDER_PID

state() { # what must not change when an import is refused
    curl -sS "$LARDER_URL/-/api/v1/stats" | "$PY" -c 'import json,sys; d=json.load(sys.stdin)
print(d["blob_bytes"], d["blobs"], sorted((k, v["entries"], v["bytes"]) for k, v in d["protocols"].items()))'
    curl -sS "$LARDER_URL/-/api/v1/pins"
    ls -A "$WORK/data-b/tmp" "$WORK/data-b/blobs/sha256"
}
BUNDLE_CFG=$CFG2

# tampered: one byte of a blob flipped
cp "$WORK/small.tar" "$WORK/tampered.tar"
bundle_flip "$WORK/tampered.tar" blobs/
bundle_refused "$WORK/tampered.tar" tampered "is corrupt"
# truncated in the middle of the large blob
head -c "$(($(file_size "$B") / 2))" "$B" >"$WORK/truncated.tar"
bundle_refused "$WORK/truncated.tar" truncated "truncated"
# the end-of-archive marker missing
head -c "$(($(file_size "$WORK/small.tar") - 1024))" "$WORK/small.tar" >"$WORK/noend.tar"
bundle_refused "$WORK/noend.tar" no-end "truncated"
# a format version from the future
mkdir -p "$WORK/v2" && (cd "$WORK/v2" && tar xf "$WORK/small.tar")
sed -i 's/"version": 1/"version": 2/' "$WORK/v2/larder-bundle.json"
(cd "$WORK/v2" && tar --format=ustar -cf "$WORK/v2.tar" larder-bundle.json manifest.json blobs)
bundle_refused "$WORK/v2.tar" version-2 "format version 2"
# not a bundle at all
bundle_refused "$ORIG/root/x/small.bin" not-a-bundle "not a tar archive"
# a blob the manifest does not name
cp "$ORIG/root/x/other.bin" "$WORK/v2/blobs/sha256/$(printf '%064d' 0)"
sed -i 's/"version": 2/"version": 1/' "$WORK/v2/larder-bundle.json"
(cd "$WORK/v2" && tar --format=ustar -cf "$WORK/extra.tar" larder-bundle.json manifest.json blobs)
bundle_refused "$WORK/extra.tar" extra-blob "not named by the manifest"
# a wrong token
sed "s/token: $ADMIN_TOKEN/token: not-the-token/" "$CFG2" >"$WORK/wrongtoken.yaml"
bundle_refused "$WORK/small.tar" wrong-token "admin token" "$WORK/wrongtoken.yaml"
# over quota: a larder whose quota.total is smaller than the bundle
stop_larder
CFG3=$WORK/c.yaml
CFG_OFFLINE=true CFG_QUOTA=$((BIG_MB / 2))MiB write_config "$CFG3" "$LP2" "$WORK/data-b"
modules >>"$CFG3"
start_larder "$CFG3" "$LP2"
bundle_refused "$B" over-quota "does not fit" "$CFG3"
stop_larder
start_larder "$CFG2" "$LP2"
B_PID=$LARDER_PID

# ---- the import, while the daemon runs ------------------------------------------------------------------------------------
rss0=$(rss_kb "$B_PID")
rc=0
with_rss "$B_PID" timeout 600 "$LARDER_BIN" import --config "$CFG2" "$B" >"$WORK/import.log" 2>&1 </dev/null || rc=$?
assert_eq 0 "$rc" "larder import airgap.tar into the offline larder: $(tail -3 "$WORK/import.log" | tr '\n' ' ')"
log "importing daemon RSS: ${rss0} KiB before, peak ${PEAK_KB} KiB during the import of a ${BIG_MB} MiB file"
assert_le "$PEAK_KB" "$((rss0 + 64 * 1024))" "the importing daemon's RSS grew by less than 64 MiB (constant memory)"
assert_match "$(cat "$WORK/import.log")" "pin set airgap: [0-9]+ entries pinned \([0-9]+ added, 0 replaced, 0 already there\)" \
    "import summary"
assert_eq "" "$(ls -A "$WORK/data-b/tmp")" "no temp file left after the import"
after1=$(state)
rc=0
timeout 600 "$LARDER_BIN" import --config "$CFG2" "$B" >"$WORK/import2.log" 2>&1 </dev/null || rc=$?
assert_eq 0 "$rc" "importing the same bundle again succeeds"
assert_match "$(cat "$WORK/import2.log")" "\(0 added, 0 replaced, [0-9]+ already there\), 0 new blobs" \
    "the second import adds nothing: $(tail -1 "$WORK/import2.log")"
assert_eq "$after1" "$(state)" "importing twice is idempotent (stats, pins, blobs)"
set_a=$(tar xOf "$B" manifest.json | "$PY" -c 'import json,sys; print(sorted((e["protocol"], e["key"]) for e in json.load(sys.stdin)["entries"]))')
set_b=$(curl -sS "$LARDER_URL/-/api/v1/pins/airgap" | "$PY" -c 'import json,sys; print(sorted((e["protocol"], e["key"]) for e in json.load(sys.stdin)["entries"] if e["cached"]))')
assert_eq "$set_a" "$set_b" "the imported pin set holds every entry of the exported one, cached"

# ---- the real clients, offline, against the imported larder --------------------------------------------------------------
L=$LARDER_URL
for f in big.bin small.bin; do
    r=$(fetch "$L/files/origin/x/$f" "$WORK/got-$f") || fail "GET $f from the imported larder"
    assert_match "$r" "^200 (HIT|STALE)$" "files: $f served from the imported entry"
    assert_eq "$(sha256_file "$ORIG/root/x/$f")" "$(sha256_file "$WORK/got-$f")" "files: $f bytes"
done
rc=0
timeout 300 "$PY" -m pip download --no-cache-dir --disable-pip-version-check --no-input --no-build-isolation \
    --index-url "$L/pypi/simple/" --require-hashes -r "$WORK/spec/requirements.txt" -d "$WORK/pipdl" \
    >"$WORK/pip.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "pip download -r requirements.txt --require-hashes, offline: $(tail -3 "$WORK/pip.log" | tr '\n' ' ')"
n=0
for f in "$WORK"/pipdl/*; do
    src=$(find "$UP/root/packages" -name "$(basename "$f")" | head -1)
    [ -n "$src" ] || fail "pip downloaded $(basename "$f"), which the index does not hold"
    assert_eq "$(sha256_file "$src")" "$(sha256_file "$f")" "pip: $(basename "$f") bytes" >/dev/null
    n=$((n + 1))
done
assert_gt "$n" 5 "pip downloaded the requirement closure ($n files), byte for byte"
mkdir -p "$WORK/npmapp" && cp "$FX/app-public/package.json" "$FX/app-public/package-lock.json" "$WORK/npmapp/"
rc=0
npm_isolated "$NPMC" ci --prefix "$WORK/npmapp" --registry "$L/npm/" >"$WORK/npm.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "npm ci, offline: $(tail -3 "$WORK/npm.log" | tr '\n' ' ')"
(cd "$WORK/npmapp" && node -e 'require("larder-test-server"); require("larder-test-cli/package.json")') ||
    fail "the packages npm installed do not load"
rc=0
skopeo_pull "127.0.0.1:$LP2/larder-test/hello:1.0" "dir:$WORK/img1" >"$WORK/skopeo1.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "skopeo copy larder-test/hello:1.0, offline: $(tail -2 "$WORK/skopeo1.log" | tr '\n' ' ')"
oci_dir_verify "$WORK/img1" >/dev/null || fail "skopeo: the image's blobs do not match their digests"
HELLO=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["images"]["larder-test/hello:1.0"]["digest"])' "$WORK/pushed.json")
assert_eq "$HELLO" "$(oci_dir_digest "$WORK/img1")" "skopeo: the manifest is the pushed one, byte for byte"
rc=0
skopeo_pull "127.0.0.1:$LP2/larder-hello:1.0" "dir:$WORK/img2" >"$WORK/skopeo2.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "skopeo copy docker.io larder-hello:1.0, offline: $(tail -2 "$WORK/skopeo2.log" | tr '\n' ' ')"
oci_dir_verify "$WORK/img2" >/dev/null || fail "skopeo: larder-hello's blobs do not match"
assert_eq 0 "$(metric larder_bytes_upstream_total)" "nothing was fetched upstream"
check_sanitizers

finish
