#!/usr/bin/env bash
# test_image_build.sh - the acceptance test (issue 13): an Open edX-style image (tests/integration/image/Dockerfile,
# modelled on Tutor's) built by the real docker daemon with every download going through Larder - the base image
# (registry mirror), apt (proxy), the Python tarball (pyenv's mirror protocol), a git clone and a patch, pip with
# hashes, the Node.js tarball (nodeenv's layout) and npm ci - then built again with every upstream gone and Larder
# offline, from an empty docker daemon. A build that needs one object nobody cached fails naming it.
#
# Phases (times printed at the end, never asserted):
#   (a) the build against the upstreams directly (no Larder), for comparison
#   (b) the build through Larder, online (recording into a pin set when this larder has `larder record`; then the
#       set's seed spec and a bundle are exported)
#   (c) every upstream stopped, Larder restarted with offline: true, the daemon emptied: the build succeeds
#   (d) the same with one more patch that nobody fetched: the build fails, the client output and Larder's log name
#       it (URL and protocol)
#   (e) a fresh Larder, never online, offline, importing the bundle: the build succeeds      [needs larder record]
#   (f) a fresh Larder seeded from the exported spec with the upstreams back, then offline    [needs larder record]
#
# Needs root (dockerd), docker.io, debootstrap (once: the base rootfs is cached in /var/tmp/larder-test-images),
# deb.debian.org reachable the first time (debootstrap, and apt-get download of the apt step's .debs, cached in
# /var/tmp/larder-test-debs), and the other tests' tools (nginx, docker-registry, skopeo, verdaccio, fcgiwrap).
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/oci_fixture.sh"
. "$LIB_DIR/apt_fixture.sh"
. "$LIB_DIR/pypi_fixture.sh"
. "$LIB_DIR/npm_fixture.sh"
. "$LIB_DIR/git_fixture.sh"
. "$LIB_DIR/image_fixture.sh"

[ "$(id -u)" = 0 ] || { skip "needs root (its own docker daemon)"; finish; exit 0; }

T0=$SECONDS
declare -A PHASE_SECS=()
phase_time() { PHASE_SECS[$1]=$2; }

LP=$(free_port)   # larder
AP=$(free_port)   # apt repository (nginx)
IP=$(free_port)   # python index (nginx)
FP=$(free_port)   # its files host
VP=$(free_port)   # verdaccio
GP=$(free_port)   # git http-backend (nginx)
NP=$(free_port)   # plain files (nginx): the Python and Node.js tarballs, patches
RP=$(free_port)   # docker-registry
L=http://127.0.0.1:$LP

PYVER=3.11.8
EDX_TAG=open-release/larder.1
BASE_REF=library/larder-test-base:bookworm

# ---- upstreams ---------------------------------------------------------------------------------------------------
s=$SECONDS
APTFX_PACKAGES="hello figlet" make_apt_repo "$WORK/apt"
start_apt_upstream "$WORK/apt" "$AP"
APT_NGINX_PID=$NGINX_PID

make_pypi_index "$WORK/pypi" "$FP"
start_pypi_upstream "$WORK/pypi" "$IP" "$FP"
PYPI_NGINX_PID=$NGINX_PID

make_npm_packages "$WORK/npm"
start_verdaccio "$WORK/verdaccio" "$VP"
publish_npm_packages "$WORK/npm" "$VERDACCIO_URL"
make_npm_lockfile "$WORK/npm" "$VERDACCIO_URL"

# edx-platform: requirements/edx/base.txt is the index's requirements.txt (pinned, with --hash lines); its
# package-lock.json names registry.npmjs.org, as a real one does (npm sends those requests to --registry)
make_edx_repo "$WORK/git-root" "$WORK/pypi/root/requirements.txt" "$WORK/npm/app-public" "$EDX_TAG"
start_git_upstream "$WORK/git-root" "$GP"

FILES=$WORK/files
mkdir -p "$FILES/root/ftp/python/$PYVER" "$FILES/root/github/openedx/edx-platform/commit"
make_python_standin "$FILES/root/ftp/python/$PYVER" "$PYVER"
make_node_tarball
NODEVER=$IMAGEFX_NODE_VERSION
NODE_FILE=node-v$NODEVER-linux-x64.tar.gz
mkdir -p "$FILES/root/download/release/v$NODEVER"
ln -s "$IMAGEFX_NODE_TARBALL" "$FILES/root/download/release/v$NODEVER/$NODE_FILE"
cp "$WORK/patches/$EDX_PATCH1_FILE" "$WORK/patches/$EDX_PATCH2_FILE" "$FILES/root/github/openedx/edx-platform/commit/"
start_nginx "$FILES" "$NP"
FILES_NGINX_PID=$NGINX_PID
N=http://127.0.0.1:$NP

start_oci_registry "$WORK/registry" "$RP"
start_dockerd "$WORK/docker" "$L"
push_base_image "127.0.0.1:$RP" "$BASE_REF"
phase_time setup $((SECONDS - s))
log "upstreams ready ($((SECONDS - s)) s; dockerd storage driver $DOCKERD_DRIVER)"

# ---- larder ------------------------------------------------------------------------------------------------------
# larder_config FILE DATA_DIR
larder_config() {
    CFG_QUOTA=8GiB CFG_CONNECT=2s CFG_IDLE=30s write_config "$1" "$LP" "$2"
    cat >>"$1" <<EOF
apt:
  allow: ["127.0.0.1:$AP"]
pypi:
  upstream: http://127.0.0.1:$IP/simple/
npm:
  upstream: http://127.0.0.1:$VP/
git:
  remotes:
    github.com: http://127.0.0.1:$GP
oci:
  registries:
    docker.io: http://127.0.0.1:$RP
files:
  mirrors:
    - {name: python, url: $N/ftp/python/}
    - {name: nodejs, url: $N/download/release/}
    - {name: github.com, url: $N/github/}
EOF
}
CFG=$WORK/larder.yaml
larder_config "$CFG" "$WORK/data"
start_larder "$CFG" "$LP" "$WORK/larder.log"

# ---- the build -----------------------------------------------------------------------------------------------------
CTX=$WORK/context
mkdir -p "$CTX"
cp "$LIB_DIR/image/Dockerfile" "$LIB_DIR/image/report.sh" "$CTX/"
cp "$WORK/apt/keyring.gpg" "$CTX/larder-test-archive.gpg"
PATCH1_PATH=openedx/edx-platform/commit/$EDX_PATCH1_FILE
PATCH2_PATH=openedx/edx-platform/commit/$EDX_PATCH2_FILE

# build args: the same Dockerfile against the upstreams directly, or through Larder
DIRECT_ARGS=(
    --build-arg "BASE_IMAGE=127.0.0.1:$RP/$BASE_REF"
    --build-arg "APT_SOURCE=http://127.0.0.1:$AP/debian"
    --build-arg "PYTHON_VERSION=$PYVER"
    --build-arg "PYTHON_SHA256=$PYTHON_STANDIN_SHA256"
    --build-arg "PYTHON_PACKAGE_URL=$N/ftp/python/$PYVER/Python-$PYVER.tar.xz"
    --build-arg "EDX_PLATFORM_REPOSITORY=http://127.0.0.1:$GP/openedx/edx-platform.git"
    --build-arg "EDX_PLATFORM_VERSION=$EDX_TAG"
    --build-arg "EDX_PLATFORM_PATCHES=$N/github/$PATCH1_PATH"
    --build-arg "PIP_INDEX_URL=http://127.0.0.1:$IP/simple/"
    --build-arg "NODE_VERSION=$NODEVER"
    --build-arg "NODEENV_MIRROR=$N/download/release"
    --build-arg "NPM_REGISTRY=http://127.0.0.1:$VP/"
)
# through Larder: pyenv's mirror is Larder's by-digest route, and the definition's URL goes through the `python`
# mirror (python.org's layout), as python-build's PYTHON_BUILD_MIRROR_URL_SKIP_CHECKSUM would send it
larder_args() { # larder_args [EXTRA_PATCH_URL]
    LARDER_ARGS=(
        --build-arg "BASE_IMAGE=docker.io/$BASE_REF"
        --build-arg "APT_SOURCE=http://127.0.0.1:$AP/debian"
        --build-arg "APT_PROXY=$L"
        --build-arg "PYTHON_VERSION=$PYVER"
        --build-arg "PYTHON_SHA256=$PYTHON_STANDIN_SHA256"
        --build-arg "PYTHON_PACKAGE_URL=$L/files/python/$PYVER/Python-$PYVER.tar.xz"
        --build-arg "PYTHON_BUILD_MIRROR_URL=$L/files/sha256"
        --build-arg "EDX_PLATFORM_REPOSITORY=$L/git/github.com/openedx/edx-platform.git"
        --build-arg "EDX_PLATFORM_VERSION=$EDX_TAG"
        --build-arg "EDX_PLATFORM_PATCHES=$L/files/github.com/$PATCH1_PATH${1:+ $1}"
        --build-arg "PIP_INDEX_URL=$L/pypi/simple/"
        --build-arg "NODE_VERSION=$NODEVER"
        --build-arg "NODEENV_MIRROR=$L/files/nodejs"
        --build-arg "NPM_REGISTRY=$L/npm/"
    )
}
larder_args

# image_build NAME ARGS... - an uncached build from an empty daemon; output in $WORK/build-NAME.log; sets BUILD_SECS
image_build() {
    local name=$1 rc=0 s
    shift
    docker_reset
    s=$(date +%s.%N)
    DOCKER_BUILDKIT=0 dockercli build --network host --no-cache --pull --force-rm -t "larder-test/openedx:$name" \
        "$@" "$CTX" >"$WORK/build-$name.log" 2>&1 || rc=$?
    BUILD_SECS=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    return "$rc"
}

# check_image NAME - runs it; every part of the build shows in its output
check_image() {
    local name=$1 out
    dockercli run --rm --network none "larder-test/openedx:$name" >"$WORK/run-$name.log" 2>&1 ||
        fail "docker run of the $name image failed: $(tail -n 20 "$WORK/run-$name.log")"
    out=$(cat "$WORK/run-$name.log")
    assert_contains "$out" "python-tarball: python-standin $PYVER: downloaded the pyenv way" "$name: the Python tarball"
    assert_contains "$out" "wheel: beta 2.1 top 1.0 in /openedx/venv" "$name: the wheels, in the venv"
    assert_contains "$out" "git: RELEASE=$EDX_TAG patched by the first patch" "$name: the tag's checkout, patched"
    assert_contains "$out" "node: v$NODEVER larder-test-server@1.0.0 @larder-test/core@1.1.0,@larder-test/config@1.0.0,larder-test-logger@1.0.0" \
        "$name: node from the tarball, packages from npm ci"
    assert_contains "$out" "apt: hello from the apt-installed hello (figlet " "$name: the apt packages"
}

build_ok() { # build_ok NAME ARGS...
    local name=$1
    image_build "$@" || fail "the $name build failed: $(grep -v -E '^ ---> |^Removing intermediate' "$WORK/build-$name.log" | tail -n 40)"
    pass "the $name build succeeded (${BUILD_SECS} s)"
    check_image "$name"
}

# larder_upstream_bytes -> "TOTAL per-protocol..." from /-/api/v1/stats (bytes fetched from upstreams; git mirrors
# count as their size on disk)
larder_upstream_bytes() {
    "$PY" -c 'import json, sys
d = json.loads(sys.argv[1])
per = {k: v.get("bytes_upstream", 0) for k, v in d["protocols"].items()}
per["git (mirrors on disk)"] = d.get("external_bytes", 0)
print(sum(per.values()), " ".join("%s=%d" % kv for kv in sorted(per.items()) if kv[1]))' "$(api GET stats)"
}

# `larder record`, export and import (being built): the phases that use them are skipped until the binary has them
HAVE_RECORD=0
if "$LARDER_BIN" --help 2>&1 | grep -q 'larder record' &&
    "$LARDER_BIN" record status --config "$CFG" >"$WORK/record-probe.log" 2>&1 </dev/null; then
    HAVE_RECORD=1
fi
SET=image-build

# ---- (a) directly ----------------------------------------------------------------------------------------------------
nreq_before=$(grep -c -E ' (GET|HEAD|POST) ' "$WORK/larder.log" || true)
build_ok direct "${DIRECT_ARGS[@]}"
phase_time a_direct "$BUILD_SECS"
assert_eq "$nreq_before" "$(grep -c -E ' (GET|HEAD|POST) ' "$WORK/larder.log" || true)" "the direct build sent nothing to Larder"

# ---- (b) through Larder, online ----------------------------------------------------------------------------------
if [ "$HAVE_RECORD" = 1 ]; then
    "$LARDER_BIN" record start "$SET" --config "$CFG" >"$WORK/record-start.log" 2>&1 </dev/null ||
        fail "larder record start failed: $(cat "$WORK/record-start.log")"
fi
build_ok larder "${LARDER_ARGS[@]}"
phase_time b_larder_online "$BUILD_SECS"
blog=$(cat "$WORK/build-larder.log")
assert_contains "$blog" "-> $L/files/python/$PYVER/Python-$PYVER.tar.xz" "cold: pyenv's mirror URL (by sha256) was not cached yet, the package URL was used"
for p in apt pypi npm git oci files; do
    assert_match "$(cat "$WORK/larder.log")" "$p (GET|HEAD|POST) .* MISS" "the build fetched through Larder's $p module"
done
read -r UP_BYTES UP_DETAIL <<<"$(larder_upstream_bytes)"
log "online build through Larder: $UP_BYTES bytes from the upstreams ($UP_DETAIL)"
if [ "$HAVE_RECORD" = 1 ]; then
    "$LARDER_BIN" record stop --config "$CFG" >"$WORK/record-stop.log" 2>&1 </dev/null ||
        fail "larder record stop failed: $(cat "$WORK/record-stop.log")"
    api GET "pins/$SET/spec" >"$WORK/spec.yaml"
    assert_eq 200 "$(api_status)" "GET pins/$SET/spec"
    rc=0
    "$LARDER_BIN" export "$SET" "$WORK/bundle" --config "$CFG" >"$WORK/export.log" 2>&1 </dev/null || rc=$?
    assert_eq 0 "$rc" "larder export $SET ($(tail -n 3 "$WORK/export.log"))"
    BUNDLE_BYTES=$(file_size "$WORK/bundle")
    log "bundle: $BUNDLE_BYTES bytes; downloaded from the upstreams: $UP_BYTES bytes"
else
    skip "(b) recording the online build into pin set $SET, its spec and a bundle: larder record not in this binary (not merged yet)"
fi

# ---- (c) offline, every upstream gone --------------------------------------------------------------------------------
stop_larder
stop_pid "$APT_NGINX_PID"
stop_pid "$PYPI_NGINX_PID"
stop_pid "$FILES_NGINX_PID"
stop_pid "$VERDACCIO_PID"
stop_git_upstream
stop_oci_registry "$WORK/registry"
for p in "$AP" "$IP" "$FP" "$VP" "$GP" "$NP" "$RP"; do
    if port_open "$p"; then fail "upstream port $p still open"; fi
done
pass "every upstream is down"
CFG_OFF=$WORK/larder-offline.yaml
CFG_OFFLINE=true larder_config "$CFG_OFF" "$WORK/data"
start_larder "$CFG_OFF" "$LP" "$WORK/larder.log"
build_ok offline "${LARDER_ARGS[@]}"
phase_time c_larder_offline "$BUILD_SECS"
assert_contains "$(cat "$WORK/build-offline.log")" "-> $L/files/sha256/$PYTHON_STANDIN_SHA256" \
    "offline: pyenv's mirror URL (by sha256) answered"

# ---- (d) one object nobody cached ----------------------------------------------------------------------------------
MISSING_URL=$N/github/$PATCH2_PATH
larder_args "$L/files/github.com/$PATCH2_PATH"
rc=0
image_build missing "${LARDER_ARGS[@]}" || rc=$?
phase_time d_missing_object "$BUILD_SECS"
assert_ne 0 "$rc" "a build needing an object nobody cached fails offline"
mlog=$(cat "$WORK/build-missing.log")
assert_contains "$mlog" "$MISSING_URL" "the build output names the missing object's upstream URL"
assert_match "$mlog" "offline.*files|files.*offline" "the build output names the protocol"
assert_match "$(cat "$WORK/larder.log")" "files GET /files/github.com/$PATCH2_PATH 504" "Larder's log has the request"
assert_contains "$(cat "$WORK/larder.log")" "$MISSING_URL" "Larder's log names the upstream URL"
larder_args
stop_larder

# ---- (e) a fresh Larder from the bundle ------------------------------------------------------------------------------
if [ "$HAVE_RECORD" = 1 ]; then
    CFG_E=$WORK/larder-e.yaml
    CFG_OFFLINE=true larder_config "$CFG_E" "$WORK/data-e"
    start_larder "$CFG_E" "$LP" "$WORK/larder-e.log"
    rc=0
    "$LARDER_BIN" import "$WORK/bundle" --config "$CFG_E" >"$WORK/import.log" 2>&1 </dev/null || rc=$?
    assert_eq 0 "$rc" "larder import ($(tail -n 3 "$WORK/import.log"))"
    build_ok bundle "${LARDER_ARGS[@]}"
    phase_time e_bundle_offline "$BUILD_SECS"
    stop_larder
else
    skip "(e) a fresh offline Larder importing the bundle: larder record/export/import not in this binary (not merged yet)"
fi

# ---- (f) a fresh Larder seeded from the spec -------------------------------------------------------------------------
if [ "$HAVE_RECORD" = 1 ]; then
    start_apt_upstream "$WORK/apt" "$AP"
    start_pypi_upstream "$WORK/pypi" "$IP" "$FP"
    start_verdaccio "$WORK/verdaccio" "$VP"
    start_git_upstream "$WORK/git-root" "$GP"
    start_nginx "$FILES" "$NP"
    start_oci_registry "$WORK/registry" "$RP"
    CFG_F=$WORK/larder-f.yaml
    larder_config "$CFG_F" "$WORK/data-f"
    start_larder "$CFG_F" "$LP" "$WORK/larder-f.log"
    rc=0
    timeout 300 "$LARDER_BIN" seed --config "$CFG_F" "$WORK/spec.yaml" >"$WORK/seed-f.log" 2>&1 </dev/null || rc=$?
    assert_eq 0 "$rc" "larder seed of the exported spec ($(tail -n 3 "$WORK/seed-f.log"))"
    stop_larder
    CFG_F_OFF=$WORK/larder-f-offline.yaml
    CFG_OFFLINE=true larder_config "$CFG_F_OFF" "$WORK/data-f"
    start_larder "$CFG_F_OFF" "$LP" "$WORK/larder-f.log"
    build_ok seeded "${LARDER_ARGS[@]}"
    phase_time f_seeded_offline "$BUILD_SECS"
    stop_larder
else
    skip "(f) a fresh Larder seeded from the exported spec, then offline: larder record not in this binary (not merged yet)"
fi

# ---- report ----------------------------------------------------------------------------------------------------------
phase_time total $((SECONDS - T0))
for k in setup a_direct b_larder_online c_larder_offline d_missing_object e_bundle_offline f_seeded_offline total; do
    [ -n "${PHASE_SECS[$k]:-}" ] && log "time: $k ${PHASE_SECS[$k]} s"
done
log "bytes from the upstreams in the online build: $UP_BYTES ($UP_DETAIL)${BUNDLE_BYTES:+; bundle $BUNDLE_BYTES bytes}"
stop_dockerd
finish
