# shellcheck shell=bash disable=SC2034
# image_fixture.sh - a docker daemon of the test's own, a Debian base image, and the upstream content of the image
# build in tests/integration/image/ (the acceptance test, test_image_build.sh). Source after lib.sh and
# oci_fixture.sh (skopeo_run). Needs docker.io (dockerd 20.10, /usr/bin/docker), debootstrap, skopeo, git, xz-utils.
#
#   start_dockerd DIR MIRROR_URL       dockerd with everything under DIR (data DIR/d, exec DIR/e, socket
#                                      DIR/docker.sock, pid DIR/docker.pid, log DIR/dockerd.log), no iptables, no
#                                      bridge (builds and runs use --network host), MIRROR_URL as its registry mirror
#                                      (used for docker.io names). Storage driver overlay2 when it works here, else
#                                      vfs (slow, every layer a full copy). Sets DOCKERD_DIR, DOCKERD_PID,
#                                      DOCKERD_DRIVER and exports DOCKER_HOST. Never touches the machine's own daemon
#   stop_dockerd                       SIGTERM by PID (dockerd stops its containers and its containerd), then
#                                      SIGKILL of any process still naming DIR (a containerd-shim), unmount of
#                                      anything still mounted under DIR, and removal of DIR/d and DIR/e. The test's
#                                      EXIT trap calls it (lib.sh at_cleanup)
#   dockercli ARGS...                  /usr/bin/docker (Debian's 20.10 client, not whatever else is on PATH) against
#                                      that daemon, with a client config of its own; output to the caller's
#                                      stdout/stderr, tracked like every started process; returns docker's exit code
#   docker_reset                       removes every container, image and build cache entry of that daemon: the next
#                                      build pulls and downloads everything again
#   make_base_rootfs                   IMAGEFX_BASE_TARBALL: a Debian bookworm rootfs (debootstrap --variant=minbase
#                                      from deb.debian.org, plus IMAGEFX_BASE_INCLUDE), as a .tar.gz cached in
#                                      IMAGEFX_CACHE (default /var/tmp/larder-test-images) under a name keyed by
#                                      the suite, variant and package list; made once (a few minutes), then reused
#   push_base_image REGISTRY_HOSTPORT REPO:TAG
#                                      the rootfs as a one-layer image in the registry: `docker import` into the
#                                      test's daemon, then skopeo from the daemon into an OCI layout cached next to
#                                      the tarball (so later runs skip both), and skopeo from that layout to
#                                      docker://REGISTRY_HOSTPORT/REPO:TAG. The daemon keeps no copy
#   make_node_tarball                  IMAGEFX_NODE_VERSION, IMAGEFX_NODE_TARBALL: this machine's node binary and
#                                      npm (`command -v node`) laid out as nodejs.org's node-vX-linux-x64.tar.gz
#                                      (bin/node, bin/npm and bin/npx links, lib/node_modules/npm, README.md,
#                                      LICENSE, CHANGELOG.md), reproducible (sorted, fixed mtimes, gzip -n), cached
#                                      in IMAGEFX_CACHE keyed by the version and the binary's sha256
#   make_python_standin DIR VERSION    DIR/Python-VERSION.tar.xz: a stand-in for CPython's source tarball (a
#                                      Python-VERSION/ directory with a README, Include/patchlevel.h and
#                                      LARDER-STANDIN.txt, whose first line the image prints); compiling real
#                                      CPython inside the test would take far too long. Sets PYTHON_STANDIN_SHA256
#   make_edx_repo ROOT PIP_REQ NPM_DIR TAG
#                                      a bare repository ROOT/openedx/edx-platform.git shaped like edx-platform where
#                                      the build reads it: requirements/edx/base.txt (PIP_REQ), package.json and
#                                      package-lock.json (from NPM_DIR), RELEASE (says TAG), lms/__init__.py.
#                                      Annotated tag TAG, then one more commit on master (RELEASE says master).
#                                      Two patches made on top of TAG, as GitHub serves them
#                                      (commit/<sha>.patch, `git format-patch` output): EDX_PATCH1 (adds PATCHED-1)
#                                      and EDX_PATCH2 (adds PATCHED-2, applies after EDX_PATCH1); their file names in
#                                      EDX_PATCH1_FILE, EDX_PATCH2_FILE, written to ROOT/../patches/

IMAGEFX_CACHE=${LARDER_IMAGE_CACHE:-/var/tmp/larder-test-images}
IMAGEFX_SUITE=bookworm
IMAGEFX_MIRROR=${LARDER_DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}
# what the build needs that its apt step does not install (the apt step's repository is made from this machine's
# package lists and dpkg status, so it only holds packages this machine does not have): python3 and venv for the
# python stages, curl for the downloads, git for the checkout, xz-utils for the .tar.xz, ca-certificates for curl
IMAGEFX_BASE_INCLUDE=${IMAGEFX_BASE_INCLUDE:-"ca-certificates curl git python3 python3-venv xz-utils"}
IMAGEFX_DOCKER=/usr/bin/docker

# ---------------------------------------------------------------------------------------------------------------
# the docker daemon

_imagefx_dockerd_up() { "$IMAGEFX_DOCKER" -H "unix://$DOCKERD_DIR/docker.sock" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# _imagefx_dockerd_run DRIVER MIRROR -> 0 when it came up with DRIVER
_imagefx_dockerd_run() {
    local driver=$1 mirror=$2 dir=$DOCKERD_DIR
    mkdir -p "$dir/d" "$dir/e" "$dir/cli"
    echo "==== dockerd --storage-driver $driver ($(date -u +%FT%TZ))" >>"$dir/dockerd.log"
    env -u DOCKER_HOST -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u no_proxy -u NO_PROXY \
        /usr/sbin/dockerd --data-root "$dir/d" --exec-root "$dir/e" -H "unix://$dir/docker.sock" \
        --pidfile "$dir/docker.pid" --iptables=false --ip6tables=false --bridge=none --ip-forward=false \
        --ip-masq=false --registry-mirror "$mirror" --storage-driver "$driver" --log-level warn \
        --max-concurrent-downloads 3 >>"$dir/dockerd.log" 2>&1 </dev/null &
    DOCKERD_PID=$!
    track_pid "$DOCKERD_PID"
    local deadline=$((SECONDS + 60))
    until _imagefx_dockerd_up; do
        if ! pid_alive "$DOCKERD_PID"; then
            wait "$DOCKERD_PID" 2>/dev/null || true
            untrack_pid "$DOCKERD_PID"
            DOCKERD_PID=
            return 1
        fi
        [ "$SECONDS" -lt "$deadline" ] || fail "dockerd did not answer on $dir/docker.sock within 60 s: $(tail -n 20 "$dir/dockerd.log")"
        sleep 0.2
    done
    DOCKERD_DRIVER=$("$IMAGEFX_DOCKER" -H "unix://$dir/docker.sock" info --format '{{.Driver}}' 2>/dev/null)
    [ "$DOCKERD_DRIVER" = "$driver" ]
}

start_dockerd() {
    local dir=$1 mirror=$2
    [ -x /usr/sbin/dockerd ] && [ -x "$IMAGEFX_DOCKER" ] || fail "dockerd or $IMAGEFX_DOCKER missing (scripts/install-deps installs docker.io)"
    [ "$(id -u)" = 0 ] || fail "start_dockerd: dockerd needs root"
    DOCKERD_DIR=$dir
    mkdir -p "$dir"
    at_cleanup stop_dockerd
    if grep -qw overlay /proc/filesystems 2>/dev/null && _imagefx_dockerd_run overlay2 "$mirror"; then
        :
    else
        [ -z "${DOCKERD_PID:-}" ] || _imagefx_stop_dockerd_only
        log "dockerd: overlay2 does not work here ($(grep -i -m1 -E 'overlay|error' "$dir/dockerd.log" || true)): vfs (slow)"
        _imagefx_dockerd_run vfs "$mirror" || fail "dockerd did not start: $(tail -n 20 "$dir/dockerd.log")"
    fi
    export DOCKER_HOST=unix://$dir/docker.sock
}

_imagefx_stop_dockerd_only() {
    [ -n "${DOCKERD_PID:-}" ] || return 0
    # dockerd stops its containers (10 s each at most) and its containerd on SIGTERM
    local pid=$DOCKERD_PID i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    stop_pid "$pid" KILL
    DOCKERD_PID=
}

stop_dockerd() {
    [ -n "${DOCKERD_DIR:-}" ] || return 0
    local dir=$DOCKERD_DIR p m
    _imagefx_stop_dockerd_only
    # anything left that was started for this daemon (containerd, a shim after a SIGKILL) names its directory
    for p in $(pgrep -f -- "$dir/e" 2>/dev/null || true); do
        [ "$p" != "$$" ] && kill -9 "$p" 2>/dev/null || true
    done
    # mounts under the daemon's directories, deepest first
    for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "stop_dockerd: could not unmount $m"
    done
    rm -rf "$dir/d" "$dir/e" "$dir/docker.sock" 2>/dev/null || log "stop_dockerd: could not remove all of $dir"
    DOCKERD_DIR=
}

# dockercli ARGS...
dockercli() {
    [ -n "${DOCKERD_DIR:-}" ] || fail "dockercli: start_dockerd first"
    local pid rc=0
    env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u no_proxy -u NO_PROXY \
        DOCKER_HOST="unix://$DOCKERD_DIR/docker.sock" DOCKER_CONFIG="$DOCKERD_DIR/cli" \
        "$IMAGEFX_DOCKER" "$@" </dev/null &
    pid=$!
    track_pid "$pid"
    wait "$pid" || rc=$?
    untrack_pid "$pid"
    return "$rc"
}

docker_reset() {
    local logf=$DOCKERD_DIR/reset.log ids
    {
        ids=$(DOCKER_CONFIG="$DOCKERD_DIR/cli" "$IMAGEFX_DOCKER" -H "unix://$DOCKERD_DIR/docker.sock" ps -aq)
        # shellcheck disable=SC2086 # a list of ids
        [ -z "$ids" ] || dockercli rm -f $ids
        dockercli image prune -af
        dockercli builder prune -af
        ids=$(DOCKER_CONFIG="$DOCKERD_DIR/cli" "$IMAGEFX_DOCKER" -H "unix://$DOCKERD_DIR/docker.sock" images -aq)
        # shellcheck disable=SC2086 # a list of ids
        [ -z "$ids" ] || dockercli rmi -f $ids
    } >>"$logf" 2>&1 || true
    local left
    left=$(DOCKER_CONFIG="$DOCKERD_DIR/cli" "$IMAGEFX_DOCKER" -H "unix://$DOCKERD_DIR/docker.sock" images -aq | wc -l)
    [ "$left" = 0 ] || fail "docker_reset: $left image(s) left in the daemon: $(tail -n 20 "$logf")"
}

# ---------------------------------------------------------------------------------------------------------------
# the base image

_imagefx_base_key() {
    printf '%s\n' "debootstrap --variant=minbase $IMAGEFX_SUITE $IMAGEFX_MIRROR" $IMAGEFX_BASE_INCLUDE "fixture 1" |
        sha256_stdin | cut -c1-16
}

make_base_rootfs() {
    command -v debootstrap >/dev/null 2>&1 || fail "debootstrap not found (scripts/install-deps installs it)"
    local key
    key=$(_imagefx_base_key)
    IMAGEFX_BASE_KEY=$key
    IMAGEFX_BASE_TARBALL=$IMAGEFX_CACHE/base-$IMAGEFX_SUITE-minbase-$key.tar.gz
    [ -s "$IMAGEFX_BASE_TARBALL" ] && return 0
    mkdir -p "$IMAGEFX_CACHE" "$WORK/logs"
    (
        flock 9
        [ -s "$IMAGEFX_BASE_TARBALL" ] && exit 0
        tmp=$(mktemp -d "$IMAGEFX_CACHE/.debootstrap.XXXXXX")
        # shellcheck disable=SC2064
        trap "for m in \$(awk -v d='$tmp/' 'index(\$2, d) == 1 { print \$2 }' /proc/self/mounts | sort -r); do umount -l \"\$m\"; done; rm -rf '$tmp'" EXIT
        log "make_base_rootfs: debootstrap --variant=minbase $IMAGEFX_SUITE from $IMAGEFX_MIRROR (once; cached in $IMAGEFX_BASE_TARBALL)"
        inc=$(echo "$IMAGEFX_BASE_INCLUDE" | tr ' ' ',')
        env -u http_proxy -u HTTP_PROXY nice debootstrap --variant=minbase --include="$inc" "$IMAGEFX_SUITE" "$tmp/root" \
            "$IMAGEFX_MIRROR" >"$WORK/logs/debootstrap.log" 2>&1 || exit 1
        r=$tmp/root
        # no network source in the image (the build writes its own), no downloaded .debs, no lists
        echo "# written by the build (tests/integration/image/Dockerfile)" >"$r/etc/apt/sources.list"
        rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/var/log/* "$r"/tmp/*
        rm -f "$r/etc/hostname" "$r/etc/resolv.conf"
        tar --numeric-owner --sort=name -C "$r" --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* -czf \
            "$tmp/base.tar.gz" . || exit 1
        mv "$tmp/base.tar.gz" "$IMAGEFX_BASE_TARBALL"
    ) 9>"$IMAGEFX_CACHE/.base.lock" || fail "make_base_rootfs: debootstrap failed: $(tail -n 20 "$WORK/logs/debootstrap.log" 2>/dev/null)"
    [ -s "$IMAGEFX_BASE_TARBALL" ] || fail "make_base_rootfs: no $IMAGEFX_BASE_TARBALL"
}

push_base_image() {
    local hostport=$1 ref=$2
    make_base_rootfs
    local layout=$IMAGEFX_CACHE/base-$IMAGEFX_SUITE-minbase-$IMAGEFX_BASE_KEY.oci
    mkdir -p "$WORK/logs"
    if [ ! -f "$layout/index.json" ]; then
        rm -rf "$layout.tmp"
        dockercli import --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            "$IMAGEFX_BASE_TARBALL" larder-test-import/base:latest >"$WORK/logs/docker-import.log" 2>&1 ||
            fail "docker import failed: $(tail -n 20 "$WORK/logs/docker-import.log")"
        skopeo_run copy --src-daemon-host "$DOCKER_HOST" docker-daemon:larder-test-import/base:latest \
            "oci:$layout.tmp:latest" >"$WORK/logs/skopeo-from-daemon.log" 2>&1 ||
            fail "skopeo copy from the daemon failed: $(tail -n 20 "$WORK/logs/skopeo-from-daemon.log")"
        mv "$layout.tmp" "$layout"
        dockercli rmi larder-test-import/base:latest >>"$WORK/logs/docker-import.log" 2>&1 || true
    fi
    _ocifx_skopeo_conf
    skopeo_run copy --dest-tls-verify=false --authfile "$OCIFX_SKOPEO_DIR/auth.json" --retry-times 0 --preserve-digests \
        "oci:$layout:latest" "docker://$hostport/$ref" >"$WORK/logs/skopeo-push-base.log" 2>&1 ||
        fail "skopeo push of the base image failed: $(tail -n 20 "$WORK/logs/skopeo-push-base.log")"
}

# ---------------------------------------------------------------------------------------------------------------
# downloads

make_node_tarball() {
    local node npm_dir ver sum
    node=$(command -v node) || fail "make_node_tarball: node not found"
    node=$(readlink -f "$node")
    npm_dir=$(dirname "$node")/../lib/node_modules/npm
    [ -f "$npm_dir/bin/npm-cli.js" ] || npm_dir=/usr/lib/node_modules/npm
    [ -f "$npm_dir/bin/npm-cli.js" ] || fail "make_node_tarball: npm not found next to $node"
    ver=$("$node" --version)
    ver=${ver#v}
    sum=$(sha256_file "$node" | cut -c1-12)
    IMAGEFX_NODE_VERSION=$ver
    local name=node-v$ver-linux-x64
    mkdir -p "$IMAGEFX_CACHE/node-$sum"
    IMAGEFX_NODE_TARBALL=$IMAGEFX_CACHE/node-$sum/$name.tar.gz
    [ -s "$IMAGEFX_NODE_TARBALL" ] && return 0
    local tmp
    tmp=$(mktemp -d "$IMAGEFX_CACHE/.node.XXXXXX")
    local d=$tmp/$name
    mkdir -p "$d/bin" "$d/lib/node_modules"
    cp "$node" "$d/bin/node"
    cp -a "$npm_dir" "$d/lib/node_modules/npm"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$d/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$d/bin/npx"
    printf 'Node.js %s for linux-x64, repacked from this machine by image_fixture.sh (Larder tests)\n' "$ver" >"$d/README.md"
    printf 'see https://github.com/nodejs/node/blob/main/LICENSE\n' >"$d/LICENSE"
    printf '# Changelog\n' >"$d/CHANGELOG.md"
    log "make_node_tarball: $name.tar.gz (once; cached in $IMAGEFX_NODE_TARBALL)"
    (cd "$tmp" && tar --sort=name --mtime=2024-01-01 --owner=0 --group=0 --numeric-owner -cf - "$name" | gzip -n -6 >"$tmp/out.tar.gz") ||
        { rm -rf "$tmp"; fail "make_node_tarball: tar failed"; }
    mv "$tmp/out.tar.gz" "$IMAGEFX_NODE_TARBALL"
    rm -rf "$tmp"
}

make_python_standin() {
    local dir=$1 ver=$2
    local t=$WORK/python-standin/Python-$ver
    rm -rf "$WORK/python-standin"
    mkdir -p "$t/Include" "$dir"
    printf 'This is a stand-in for the Python %s source release (tests/integration/image_fixture.sh).\n' "$ver" >"$t/README.rst"
    printf '#define PY_VERSION "%s"\n' "$ver" >"$t/Include/patchlevel.h"
    printf 'python-standin %s: downloaded the pyenv way\n' "$ver" >"$t/LARDER-STANDIN.txt"
    (cd "$WORK/python-standin" && tar --sort=name --mtime=2024-01-01 --owner=0 --group=0 --numeric-owner -cf - "Python-$ver" |
        xz -6 >"$dir/Python-$ver.tar.xz") || fail "make_python_standin: tar failed"
    PYTHON_STANDIN_SHA256=$(sha256_file "$dir/Python-$ver.tar.xz")
}

# ---------------------------------------------------------------------------------------------------------------
# the edx-platform-like repository

make_edx_repo() {
    local root=$1 req=$2 npmdir=$3 tag=$4
    local src=$WORK/edx-src bare=$root/openedx/edx-platform.git
    rm -rf "$src" "$bare"
    mkdir -p "$src/requirements/edx" "$src/lms" "$root/openedx"
    gitfx_git init -q -b master "$src"
    cp "$req" "$src/requirements/edx/base.txt"
    cp "$npmdir/package.json" "$npmdir/package-lock.json" "$src/"
    printf '"""An edx-platform-like repository for Larder'"'"'s image build test."""\n' >"$src/lms/__init__.py"
    echo "$tag" >"$src/RELEASE"
    printf '# edx-platform (stand-in)\n\nMade by tests/integration/image_fixture.sh.\n' >"$src/README.md"
    gitfx_git -C "$src" add -A && gitfx_git -C "$src" commit -q -m "edx-platform stand-in $tag" &&
        gitfx_git -C "$src" tag -a -m "release $tag" "$tag" || fail "make_edx_repo: commit failed"
    # two patches on top of the tag, as GitHub serves commits (https://github.com/ORG/REPO/commit/SHA.patch)
    local pdir=$root/../patches
    rm -rf "$pdir"
    mkdir -p "$pdir"
    gitfx_git -C "$src" checkout -q -b patches "$tag"
    echo "patched by the first patch" >"$src/PATCHED-1"
    gitfx_git -C "$src" add PATCHED-1 && gitfx_git -C "$src" commit -q -m "fix: the first patch" || fail "make_edx_repo: patch 1"
    echo "patched by the second patch" >"$src/PATCHED-2"
    gitfx_git -C "$src" add PATCHED-2 && gitfx_git -C "$src" commit -q -m "fix: the second patch" || fail "make_edx_repo: patch 2"
    local c1 c2
    c1=$(gitfx_git -C "$src" rev-parse HEAD~1)
    c2=$(gitfx_git -C "$src" rev-parse HEAD)
    gitfx_git -C "$src" format-patch -q --stdout HEAD~2..HEAD~1 >"$pdir/$c1.patch"
    gitfx_git -C "$src" format-patch -q --stdout HEAD~1..HEAD >"$pdir/$c2.patch"
    EDX_PATCH1_FILE=$c1.patch
    EDX_PATCH2_FILE=$c2.patch
    # master moves on after the release
    gitfx_git -C "$src" checkout -q master
    echo master >"$src/RELEASE"
    gitfx_git -C "$src" commit -q -am "master moves on" || fail "make_edx_repo: commit on master"
    gitfx_git clone -q --bare "$src" "$bare" || fail "make_edx_repo: clone --bare"
    gitfx_git -C "$bare" branch -D patches >/dev/null 2>&1 || true
    gitfx_git -C "$bare" config uploadpack.allowFilter true
    gitfx_git -C "$bare" config uploadpack.allowAnySHA1InWant true
}
