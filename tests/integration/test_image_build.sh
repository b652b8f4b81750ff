#!/usr/bin/env bash
# test_image_build.sh - the acceptance test (issue 13): an Open edX-style image (tests/integration/image/Dockerfile,
# modelled on Tutor's) built by the real docker daemon with every download going through Larder - the base image
# (registry mirror), apt (proxy), the Python tarball (pyenv's mirror protocol), a git clone and a patch, pip with
# hashes, the Node.js tarball (nodeenv's layout) and npm ci - then built again with every upstream gone and Larder
# offline, from an empty docker daemon. A build that needs one object nobody cached fails naming it.
#
# Phases (times printed at the end, never asserted):
#   (a) the build against the upstreams directly (no Larder), for comparison
#   (b) the build through Larder, online, recorded into a pin set (`larder record`); then the set's seed spec and a
#       bundle are exported
#   (c) every upstream stopped, Larder restarted with offline: true, the daemon emptied: the build succeeds
#   (d) the same with one more patch that nobody fetched: the build fails, the client output and Larder's log name
#       it (URL and protocol)
#   (e) a fresh Larder, never online, offline, importing the bundle: the build succeeds
#   (f) a fresh Larder seeded from the exported spec with the upstreams back, then offline
#
# Needs root (dockerd), docker.io, debootstrap (once: the base rootfs is cached in /var/tmp/larder-test-images),
# deb.debian.org reachable the first time (debootstrap, and apt-get download of the apt step's .debs, cached in
# /var/tmp/larder-test-debs), and the other tests' tools (nginx, docker-registry, skopeo, verdaccio, fcgiwrap).
# About 5 minutes (more the first time on a machine: debootstrap); not run again under ASan (the daemon's code paths
# are the other tests' business; this one is about real clients end to end):
# ctest-labels: integration
# ctest-timeout: 1500
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
  pins:
    - {name: Python-$PYVER.tar.xz, url: $N/ftp/python/$PYVER/Python-$PYVER.tar.xz, sha256: $PYTHON_STANDIN_SHA256}
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
PY_URL=$N/ftp/python/$PYVER/Python-$PYVER.tar.xz # the URL in python-build's definition (python.org's, really)
DIRECT_ARGS=(
    --build-arg "BASE_IMAGE=127.0.0.1:$RP/$BASE_REF"
    --build-arg "APT_SOURCE=http://127.0.0.1:$AP/debian"
    --build-arg "PYTHON_VERSION=$PYVER"
    --build-arg "PYTHON_SHA256=$PYTHON_STANDIN_SHA256"
    --build-arg "PYTHON_PACKAGE_URL=$PY_URL"
    --build-arg "EDX_PLATFORM_REPOSITORY=http://127.0.0.1:$GP/openedx/edx-platform.git"
    --build-arg "EDX_PLATFORM_VERSION=$EDX_TAG"
    --build-arg "EDX_PLATFORM_PATCHES=$N/github/$PATCH1_PATH"
    --build-arg "PIP_INDEX_URL=http://127.0.0.1:$IP/simple/"
    --build-arg "NODE_VERSION=$NODEVER"
    --build-arg "NODEENV_MIRROR=$N/download/release"
    --build-arg "NPM_REGISTRY=http://127.0.0.1:$VP/"
)
# through Larder: python-build's mirror is Larder's /files/sha256, the pyenv way (the tarball by its sha256 name):
# the files pin that has that sha256 fetches it through Larder on first use (and it is recorded), rather than from
# python.org past it. (contrib/tutor-larder uses the other mode, the `python` mirror with
# PYTHON_BUILD_MIRROR_URL_SKIP_CHECKSUM, which needs no pin per version; test_files_basic runs python-build both ways.)
larder_args() { # larder_args [EXTRA_PATCH_URL]
    LARDER_ARGS=(
        --build-arg "BASE_IMAGE=docker.io/$BASE_REF"
        --build-arg "APT_SOURCE=http://127.0.0.1:$AP/debian"
        --build-arg "APT_PROXY=$L"
        --build-arg "PYTHON_VERSION=$PYVER"
        --build-arg "PYTHON_SHA256=$PYTHON_STANDIN_SHA256"
        --build-arg "PYTHON_PACKAGE_URL=$PY_URL"
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
    # every output line prefixed with the seconds since the start (to see which steps take the time)
    DOCKER_BUILDKIT=0 dockercli build --network host --no-cache --pull --force-rm -t "larder-test/openedx:$name" \
        "$@" "$CTX" > >(stamp_lines "$s" >"$WORK/build-$name.log") 2>&1 || rc=$?
    wait $! 2>/dev/null || true # the process substitution: the whole log is written
    BUILD_SECS=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    return "$rc"
}
stamp_lines() {
    local l
    while IFS= read -r l; do printf '%7.1f %s\n' "$(awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" "$l"; done
}
# slowest_steps NAME -> the five build steps that took longest, "SECONDS Step N/M : INSTRUCTION" (for the report)
slowest_steps() {
    awk '$2 == "Step" { if (prev != "") printf "%.1f %s\n", $1 - t, prev; t = $1; prev = substr($0, index($0, "Step"), 70) }
         END { if (prev != "") printf "%.1f %s\n", $1 - t, prev }' "$WORK/build-$1.log" | sort -rn | head -n 5
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

# `larder record` and `larder export` / `larder import`: the phases that use them are skipped (with a SKIP line)
# when the binary does not have them yet
larder_ctl() { # larder_ctl CONFIG COMMAND ARGS... - the CLI against the running daemon; output in $WORK/ctl.log
    local cfg=$1 cmd=$2
    shift 2
    echo "==== larder $cmd --config $cfg $*" >>"$WORK/ctl.log"
    timeout 600 "$LARDER_BIN" "$cmd" --config "$cfg" "$@" >>"$WORK/ctl.log" 2>&1 </dev/null
}
SET=image-build

# ---- (a) directly ----------------------------------------------------------------------------------------------------
# LARDER_IMAGE_TEST_DIRECT=0 leaves it out (a minute less)
if [ "${LARDER_IMAGE_TEST_DIRECT:-1}" = 1 ]; then
    nreq_before=$(grep -c -E ' (GET|HEAD|POST) ' "$WORK/larder.log" || true)
    build_ok direct "${DIRECT_ARGS[@]}"
    phase_time a_direct "$BUILD_SECS"
    assert_eq "$nreq_before" "$(grep -c -E ' (GET|HEAD|POST) ' "$WORK/larder.log" || true)" "the direct build sent nothing to Larder"
else
    skip "(a) the build against the upstreams directly (LARDER_IMAGE_TEST_DIRECT=0)"
fi

# ---- (b) through Larder, online ----------------------------------------------------------------------------------
larder_ctl "$CFG" record start "$SET" || fail "larder record start failed: $(tail -n 5 "$WORK/ctl.log")"
build_ok larder "${LARDER_ARGS[@]}"
phase_time b_larder_online "$BUILD_SECS"
blog=$(cat "$WORK/build-larder.log")
assert_contains "$blog" "-> $L/files/sha256/$PYTHON_STANDIN_SHA256" "python-build fetched the tarball by its sha256 name"
for p in apt pypi npm git oci files; do
    assert_match "$(cat "$WORK/larder.log")" "$p (GET|HEAD|POST) .* MISS" "the build fetched through Larder's $p module"
done
read -r UP_BYTES UP_DETAIL <<<"$(larder_upstream_bytes)"
log "online build through Larder: $UP_BYTES bytes from the upstreams ($UP_DETAIL)"
larder_ctl "$CFG" record stop || fail "larder record stop failed: $(tail -n 5 "$WORK/ctl.log")"
set_json=$(api GET "pins/$SET")
assert_eq 200 "$(api_status)" "GET pins/$SET"
log "pin set $SET: $(json_get "$set_json" 'len(d.get("entries", []))') entries"
assert_match "$set_json" '"protocol": *"git"' "the recording pinned the git mirror"
assert_match "$set_json" '"protocol": *"oci"' "the recording pinned the base image"
api GET "pins/$SET/spec" >"$WORK/spec.yaml"
assert_eq 200 "$(api_status)" "GET pins/$SET/spec"
for sec in apt pypi npm git oci files; do
    assert_match "$(cat "$WORK/spec.yaml")" "^$sec:" "the recorded set's spec has a $sec section"
done
assert_not_contains "$(cat "$WORK/spec.yaml")" "# not reproducible" "every recorded entry is reproducible from the upstreams"
rc=0
larder_ctl "$CFG" export "$SET" "$WORK/bundle.tar" || rc=$?
assert_eq 0 "$rc" "larder export $SET ($(tail -n 3 "$WORK/ctl.log"))"
BUNDLE_BYTES=$(file_size "$WORK/bundle.tar")
log "bundle: $BUNDLE_BYTES bytes; downloaded from the upstreams: $UP_BYTES bytes"

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
    "offline: python-build got the tarball by its sha256 name"
# pyenv's other mode (the python mirror with python.org's layout) finds the same entry
assert_status "$L/files/python/$PYVER/Python-$PYVER.tar.xz" 200 -I

# ---- (d) one object nobody cached ----------------------------------------------------------------------------------
MISSING_URL=$N/github/$PATCH2_PATH
larder_args "$L/files/github.com/$PATCH2_PATH"
rc=0
image_build missing "${LARDER_ARGS[@]}" || rc=$?
phase_time d_missing_object "$BUILD_SECS"
assert_ne 0 "$rc" "a build needing an object nobody cached fails offline"
mlog=$(cat "$WORK/build-missing.log")
# Larder's 504 body, printed by the build's curl: the protocol and the upstream URL of exactly that object
assert_contains "$mlog" "larder is offline and files $MISSING_URL is not cached" "the build output names the missing object (protocol, URL)"
assert_match "$(cat "$WORK/larder.log")" "files GET /files/github.com/$PATCH2_PATH 504" "Larder's log has the request"
assert_contains "$(cat "$WORK/larder.log")" "offline: files $MISSING_URL is not cached" "Larder's log names the missing object (protocol, URL)"
larder_args
stop_larder

# ---- (e) a fresh Larder from the bundle ------------------------------------------------------------------------------
CFG_E=$WORK/larder-e.yaml
CFG_OFFLINE=true larder_config "$CFG_E" "$WORK/data-e"
start_larder "$CFG_E" "$LP" "$WORK/larder-e.log"
rc=0
larder_ctl "$CFG_E" import "$WORK/bundle.tar" || rc=$?
assert_eq 0 "$rc" "larder import ($(tail -n 3 "$WORK/ctl.log"))"
build_ok bundle "${LARDER_ARGS[@]}"
phase_time e_bundle_offline "$BUILD_SECS"
stop_larder

# ---- (f) a fresh Larder seeded from the spec -------------------------------------------------------------------------
start_apt_upstream "$WORK/apt" "$AP"
APT_NGINX_PID=$NGINX_PID
start_pypi_upstream "$WORK/pypi" "$IP" "$FP"
PYPI_NGINX_PID=$NGINX_PID
start_verdaccio "$WORK/verdaccio" "$VP"
start_git_upstream "$WORK/git-root" "$GP"
start_nginx "$FILES" "$NP"
FILES_NGINX_PID=$NGINX_PID
start_oci_registry "$WORK/registry" "$RP"
CFG_F=$WORK/larder-f.yaml
larder_config "$CFG_F" "$WORK/data-f"
start_larder "$CFG_F" "$LP" "$WORK/larder-f.log"
rc=0
larder_ctl "$CFG_F" seed "$WORK/spec.yaml" || rc=$?
assert_eq 0 "$rc" "larder seed of the exported spec ($(tail -n 3 "$WORK/ctl.log"))"
stop_pid "$APT_NGINX_PID"
stop_pid "$PYPI_NGINX_PID"
stop_pid "$FILES_NGINX_PID"
stop_pid "$VERDACCIO_PID"
stop_git_upstream
stop_oci_registry "$WORK/registry"
stop_larder
CFG_F_OFF=$WORK/larder-f-offline.yaml
CFG_OFFLINE=true larder_config "$CFG_F_OFF" "$WORK/data-f"
start_larder "$CFG_F_OFF" "$LP" "$WORK/larder-f.log"
build_ok seeded "${LARDER_ARGS[@]}"
phase_time f_seeded_offline "$BUILD_SECS"
stop_larder

# ---- report ----------------------------------------------------------------------------------------------------------
phase_time total $((SECONDS - T0))
for k in setup a_direct b_larder_online c_larder_offline d_missing_object e_bundle_offline f_seeded_offline total; do
    [ -n "${PHASE_SECS[$k]:-}" ] && log "time: $k ${PHASE_SECS[$k]} s"
done
for b in direct larder offline; do
    [ -f "$WORK/build-$b.log" ] || continue
    log "slowest steps of the $b build: $(slowest_steps "$b" | tr '\n' ';')"
done
log "bytes from the upstreams in the online build: $UP_BYTES ($UP_DETAIL)${BUNDLE_BYTES:+; bundle $BUNDLE_BYTES bytes}"
stop_dockerd
finish
