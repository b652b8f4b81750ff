# shellcheck shell=bash disable=SC2034
# apt_fixture.sh - a real, signed Debian repository served by nginx, the real apt-get as its client, and
# apt-cacher-ng (the benchmark's reference proxy), for the apt tests and benchmark (source after lib.sh). Nothing
# here contacts anything but 127.0.0.1, except make_apt_repo fetching real .debs from the machine's own Debian
# mirror (apt-get download, system configuration) when they are not in the persistent deb cache yet.
#
#   make_apt_repo DIR                  builds DIR/root (pool/ + dists/bookworm/, signed), DIR/keyring.gpg,
#                                      DIR/packages.txt, DIR/all-debs.txt (see below)
#   make_apt_versions_repo DIR         builds DIR/root with two suites (bookworm, bookworm-updates) listing different
#                                      versions of the same tiny packages made with dpkg-deb (see there)
#   start_apt_upstream DIR PORT [RATE] nginx serving DIR/root as http://127.0.0.1:PORT/debian/ (ETag and
#                                      Last-Modified are nginx's own), access log DIR/logs/access.log; sets
#                                      NGINX_PID and APT_UPSTREAM_URL. RATE: nginx limit_rate (e.g. 20m);
#                                      NGINX_EXTRA (env): more directives in the server block
#   apt_count DIR METHOD PATH          how many METHOD PATH requests the upstream got; PATH is compared after
#                                      %-decoding both sides (apt asks for cowsay_3.03%2bdfsg2-8_all.deb), so
#                                      pass it as in all-debs.txt: /debian/pool/main/c/cowsay/cowsay_3.03+dfsg2-8_all.deb
#   apt_client_sources DIR URL KEYRING writes DIR/sources.list ("deb [signed-by=KEYRING] URL bookworm main") and
#                                      DIR's empty config/state/cache directories
#   apt_client DIR APT_GET_ARGS...     the machine's apt-get with a configuration of its own in DIR (below), plus
#                                      APT_CLIENT_OPTS (env, word-split, e.g. "-o Acquire::http::Proxy=http://
#                                      127.0.0.1:PORT/"); output to the caller's stdout/stderr, returns apt-get's
#                                      exit code; tracked like every started process. Run it with a redirection,
#                                      not inside $(...)
#   apt_client_config DIR              `apt-config dump` with apt_client's configuration
#   apt_client_reset DIR               empties DIR/lists and DIR/cache (archives included): a client that never ran
#   apt_client_debs DIR                the .deb files in DIR/cache/archives, one file name a line, sorted
#   acng_free_port                     a free port below 32768 (free_port's are above): for apt-cacher-ng AND for
#                                      every upstream it is to fetch from. apt-cacher-ng 3.7.4 handles ports as
#                                      signed 16-bit numbers: it cannot listen on a higher port ("Error resolving
#                                      address for binding: Success"), nor connect to one ("503 Connection refused")
#   start_apt_cacher_ng DIR PORT UPSTREAM_PORT...
#                                      apt-cacher-ng on 127.0.0.1:PORT (config DIR/conf/acng.conf, cache DIR/cache,
#                                      logs DIR/log/apt-cacher.{log,err}), allowed to fetch from ports 80 and
#                                      UPSTREAM_PORT...; sets ACNG_PID and ACNG_URL (use it as apt's HTTP proxy).
#                                      ACNG_EXTRA_CONF (env): more acng.conf lines (e.g. "PipelineDepth: 1")
#
# The repository (make_apt_repo):
#   Top-level packages: APTFX_PACKAGES (below), minus any already installed on this machine (so that installing
#   them downloads them); DIR/packages.txt lists those, one a line. The pool holds them and everything apt would
#   have to download to install them with --no-install-recommends on THIS machine: the dependency closure is
#   resolved by the machine's apt against its own lists and its dpkg status. The client therefore uses the same
#   dpkg status (Dir::State::status=/var/lib/dpkg/status), and `apt_client DIR install --download-only
#   $(cat packages.txt)` downloads exactly every .deb in the pool. On a bookworm machine of this kind that is
#   16 .debs, 2.3 MB.
#   Layout as on a Debian mirror: pool/main/<prefix>/<source>/<file>.deb (Debian's own file names, no epoch),
#   dists/bookworm/{InRelease,Release,Release.gpg}, dists/bookworm/main/binary-amd64/Packages{,.gz,.xz} (short
#   descriptions + Description-md5), dists/bookworm/main/i18n/Translation-en{,.xz}, and by-hash/SHA256/<hash>
#   copies of every index (the Release says Acquire-By-Hash: yes, and lists MD5Sum and SHA256 only, as Debian's
#   does, so apt asks for by-hash/SHA256/...). Origin/Label Larder-Test, Suite stable, Codename bookworm.
#   Signed with a throwaway ed25519 key made in DIR/gnupg (its gpg-agent is stopped afterwards); the public key,
#   binary, is DIR/keyring.gpg (for signed-by).
#   DIR/all-debs.txt: "POOL_PATH SHA256 SIZE" a line, POOL_PATH relative to the repository root
#   (pool/main/h/hello/hello_2.10-3_amd64.deb), sorted.
#   The .debs are cached in LARDER_APT_DEB_CACHE (default /var/tmp/larder-test-debs, kept across runs and
#   reboots of /tmp; delete it to force a fresh download), under their pool file name, checked against the hash
#   in the machine's lists on every use. If the machine's lists are missing or stale (a package cannot be found),
#   `apt-get update` (system configuration) runs once.
#
# The client (apt_client): APT_CONFIG=DIR/apt.conf points Dir::Etc::Parts at the empty DIR/apt.conf.d and
# Dir::Etc::Main at /dev/null, so nothing in /etc/apt/apt.conf.d applies (on a Docker-made machine those set
# Acquire::GzipIndexes, Acquire::Languages "none", no pkgcache, ...: a client that behaves unlike a default one).
# -o options then give it its own sources.list (no sources.list.d), preferences, trusted keys (none: signed-by
# only), lists, state, cache, archives and log directories in DIR, the machine's dpkg status, no locking
# (Debug::NoLocking: several clients and the system apt may run at once), APT::Sandbox::User=root (the test
# files are root's), Acquire::Languages=en (Translation-en is fetched, whatever the caller's locale) and
# Assume-Yes. http_proxy and friends are removed from its environment: only APT_CLIENT_OPTS chooses a proxy.
# (`-o Dir::Etc::Parts=...` would come too late: apt reads the parts directory before it parses -o options.)
#
# apt-cacher-ng 3.7.4, as seen here (worth knowing when comparing with it):
#   - Without Remap rules it proxies any http://HOST:PORT/ URL whose port is 80 or in AllowUserPorts; other
#     ports get "403 Configuration error (confusing proxy mode) or prohibited port (see AllowUserPorts)".
#   - Its cache key leaves the port out (DIR/cache/127.0.0.1/debian/...): two upstreams on one host that differ
#     only in port share cache entries. Use one apt-cacher-ng per upstream.
#   - Cold, it sends apt's pipelined requests on to the upstream pipelined (PipelineDepth 10) and fetches some
#     .debs twice (22-28 upstream GETs for 16 .debs); "PipelineDepth: 1" makes that rare.
#   - Warm, it revalidates InRelease with a 1-byte range GET (206) and serves the rest from its cache.

APTFX_PACKAGES=${APTFX_PACKAGES:-"hello cowsay sl figlet tree pv units toilet fortune-mod htop"}
APTFX_DEB_CACHE=${LARDER_APT_DEB_CACHE:-/var/tmp/larder-test-debs}
APTFX_DIST=bookworm
APTFX_ARCH=$(dpkg --print-architecture)

# ---------------------------------------------------------------------------------------------------------------
# the repository

# _aptfx_sys_apt ARGS... - the machine's apt-get, system configuration, no lock, unsandboxed (root writes the cache)
_aptfx_sys_apt() {
    env -u APT_CONFIG DEBIAN_FRONTEND=noninteractive apt-get -o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@" </dev/null
}

# _aptfx_resolve DIR PKGS... -> DIR/work/uris.txt: the .debs apt would download to install PKGS (print-uris lines)
_aptfx_resolve() {
    local dir=$1
    shift
    mkdir -p "$dir/work/empty-archives/partial"
    local try
    for try in 1 2; do
        if _aptfx_sys_apt -o Dir::Cache::archives="$dir/work/empty-archives" install --print-uris -qq -y \
            --no-install-recommends "$@" >"$dir/work/uris.txt" 2>"$dir/logs/resolve.log"; then
            return 0
        fi
        [ "$try" = 1 ] || break
        log "make_apt_repo: the machine's apt cannot resolve $* ($(tail -n 1 "$dir/logs/resolve.log")): apt-get update"
        _aptfx_sys_apt -qq update >"$dir/logs/system-apt-update.log" 2>&1 ||
            fail "make_apt_repo: apt-get update failed: $(tail -n 20 "$dir/logs/system-apt-update.log")"
    done
    fail "make_apt_repo: the machine's apt cannot resolve $*: $(tail -n 20 "$dir/logs/resolve.log")"
}

# _aptfx_hash_ok FILE TYPE:HEX
_aptfx_hash_ok() {
    local file=$1 want=${2#*:} tool
    case "${2%%:*}" in
    MD5Sum) tool=md5sum ;; SHA1) tool=sha1sum ;; SHA256) tool=sha256sum ;; SHA512) tool=sha512sum ;;
    *) return 1 ;;
    esac
    [ -f "$file" ] && [ "$("$tool" "$file" | cut -d' ' -f1)" = "$want" ]
}

_aptfx_urldecode() { printf '%b' "${1//%/\\x}"; }

# _aptfx_fetch_debs DIR - every deb of DIR/work/uris.txt into the deb cache (downloading what is missing);
# writes DIR/work/debs.txt: "POOL_PATH CACHE_FILE" lines
_aptfx_fetch_debs() {
    local dir=$1 cache=$APTFX_DEB_CACHE
    mkdir -p "$cache"
    : >"$dir/work/debs.txt"
    local url file size hash base pool rel want=() wantfile=()
    while read -r url file _size hash; do
        url=${url//\'/}
        base=$(_aptfx_urldecode "${url##*/}")
        rel=${url%/*}                              # .../pool/[updates/]main/h/hello
        pool="pool/main/${rel#"${rel%/*/*}"/}/$base" # the last two directories: h/hello
        echo "$pool $cache/$base" >>"$dir/work/debs.txt"
        _aptfx_hash_ok "$cache/$base" "$hash" && continue
        # apt-get download names the file after the package, version (epoch as %3a) and architecture
        local name=${file%%_*} rest=${file#*_} ver arch
        ver=$(_aptfx_urldecode "${rest%_*}")
        arch=${rest##*_}
        arch=${arch%.deb}
        if [ "$arch" = all ] || [ "$arch" = "$APTFX_ARCH" ]; then want+=("$name=$ver"); else want+=("$name:$arch=$ver"); fi
        wantfile+=("$file $base $hash")
    done <"$dir/work/uris.txt"
    [ "${#want[@]}" -gt 0 ] || return 0
    log "make_apt_repo: downloading ${#want[@]} .deb(s) into $cache"
    # one download at a time per cache (parallel test runs), into a private directory, then renamed in
    local tmp
    tmp=$(mktemp -d "$cache/.download.XXXXXX")
    (
        cd "$tmp" && flock 9 && _aptfx_sys_apt -q download "${want[@]}"
    ) 9>"$cache/.lock" >"$dir/logs/apt-download.log" 2>&1 || {
        rm -rf "$tmp"
        fail "make_apt_repo: apt-get download ${want[*]} failed: $(tail -n 20 "$dir/logs/apt-download.log")"
    }
    local line
    for line in "${wantfile[@]}"; do
        read -r file base hash <<<"$line"
        _aptfx_hash_ok "$tmp/$file" "$hash" || {
            rm -rf "$tmp"
            fail "make_apt_repo: downloaded $file does not match $hash"
        }
        mv -f "$tmp/$file" "$cache/$base"
    done
    rm -rf "$tmp"
}

# _aptfx_ftparchive ARGS... - apt-ftparchive with the Release fields and Debian's hash set (MD5Sum, SHA256)
_aptfx_ftparchive() {
    apt-ftparchive -o APT::FTPArchive::Release::Origin=Larder-Test -o APT::FTPArchive::Release::Label=Larder-Test \
        -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename="$APTFX_DIST" \
        -o APT::FTPArchive::Release::Version=12 \
        -o APT::FTPArchive::Release::Architectures="$APTFX_ARCH" -o APT::FTPArchive::Release::Components=main \
        -o APT::FTPArchive::Release::Description="Larder test repository (made by apt_fixture.sh)" \
        -o APT::FTPArchive::Release::Acquire-By-Hash=yes \
        -o APT::FTPArchive::SHA1=false -o APT::FTPArchive::SHA512=false \
        -o APT::FTPArchive::Release::SHA1=false -o APT::FTPArchive::Release::SHA512=false "$@"
}

# _aptfx_indices DIR - Packages*, Translation-en*, Release, by-hash copies (unsigned)
_aptfx_indices() {
    local dir=$1 root=$1/root
    local dists=$root/dists/$APTFX_DIST
    local bin=$dists/main/binary-$APTFX_ARCH i18n=$dists/main/i18n
    mkdir -p "$bin" "$i18n"
    # long descriptions for Translation-en, then the Packages file Debian-style (short description + md5)
    (cd "$root" && apt-ftparchive packages pool/main) >"$dir/work/Packages.long" 2>"$dir/logs/ftparchive.log" ||
        fail "apt-ftparchive packages failed: $(cat "$dir/logs/ftparchive.log")"
    (cd "$root" && _aptfx_ftparchive -o APT::FTPArchive::LongDescription=false packages pool/main) \
        >"$bin/Packages" 2>>"$dir/logs/ftparchive.log" || fail "apt-ftparchive packages failed"
    "$PY" - "$dir/work/Packages.long" "$bin/Packages" "$i18n/Translation-en" <<'PYEOF' || fail "Translation-en failed"
import hashlib, sys
def stanzas(path):
    out = []
    for block in open(path, encoding="utf-8").read().split("\n\n"):
        if not block.strip():
            continue
        fields, key = {}, None
        for line in block.split("\n"):
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            else:
                key, _, val = line.partition(":")
                fields[key] = val.strip()
        out.append(fields)
    return out
short = {(s["Package"], s["Version"]): s.get("Description-md5") for s in stanzas(sys.argv[2])}
seen = set()
with open(sys.argv[3], "w", encoding="utf-8") as f:
    for s in stanzas(sys.argv[1]):
        desc = s["Description"]
        md5 = hashlib.md5((desc + "\n").encode()).hexdigest()
        if short[(s["Package"], s["Version"])] != md5:
            raise SystemExit("Description-md5 of %s differs: %s %s" % (s["Package"], short[(s["Package"], s["Version"])], md5))
        if md5 in seen:
            continue
        seen.add(md5)
        f.write("Package: %s\nDescription-md5: %s\nDescription-en: %s\n\n" % (s["Package"], md5, desc))
PYEOF
    gzip -9nc "$bin/Packages" >"$bin/Packages.gz"
    xz -9c "$bin/Packages" >"$bin/Packages.xz"
    xz -9c "$i18n/Translation-en" >"$i18n/Translation-en.xz"
    # Release: made outside dists/ (apt-ftparchive would list a half-written Release), then moved in
    rm -f "$dists/Release" "$dists/InRelease" "$dists/Release.gpg"
    (cd "$dists" && _aptfx_ftparchive release .) >"$dir/work/Release" 2>>"$dir/logs/ftparchive.log" ||
        fail "apt-ftparchive release failed: $(cat "$dir/logs/ftparchive.log")"
    mv "$dir/work/Release" "$dists/Release"
    # by-hash: every index named in the Release under its SHA256, next to it
    awk '/^[A-Za-z0-9-]+:/ { sec = $1 } sec == "SHA256:" && /^ / { print $1, $3 }' "$dists/Release" |
        while read -r h f; do
            mkdir -p "$dists/$(dirname "$f")/by-hash/SHA256"
            cp -p "$dists/$f" "$dists/$(dirname "$f")/by-hash/SHA256/$h"
        done
}

# _aptfx_sign DIR [SUITE...] - throwaway key in DIR/gnupg, InRelease + Release.gpg of each suite (default
# APTFX_DIST), DIR/keyring.gpg
_aptfx_sign() {
    local dir=$1 gh=$1/gnupg rc=0 suite
    shift
    local suites=("$@")
    [ "${#suites[@]}" -gt 0 ] || suites=("$APTFX_DIST")
    rm -rf "$gh"
    mkdir -m 700 "$gh"
    local g=(gpg --homedir "$gh" --batch --no-tty --quiet --pinentry-mode loopback --passphrase '')
    {
        "${g[@]}" --quick-gen-key "Larder test repository <larder-test@example.invalid>" ed25519 sign never &&
            APTFX_KEY=$("${g[@]}" --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }') &&
            [ -n "$APTFX_KEY" ] &&
            "${g[@]}" --export "$APTFX_KEY" >"$dir/keyring.gpg"
    } >>"$dir/logs/gpg.log" 2>&1 || rc=$?
    for suite in "${suites[@]}"; do
        [ "$rc" = 0 ] || break
        {
            "${g[@]}" --yes --local-user "$APTFX_KEY" --digest-algo SHA256 --clearsign \
                -o "$dir/root/dists/$suite/InRelease" "$dir/root/dists/$suite/Release" &&
                "${g[@]}" --yes --local-user "$APTFX_KEY" --digest-algo SHA256 --armor --detach-sign \
                    -o "$dir/root/dists/$suite/Release.gpg" "$dir/root/dists/$suite/Release"
        } >>"$dir/logs/gpg.log" 2>&1 || rc=$?
    done
    # gpg started an agent (a daemon, not ours to track by PID): stop it by its home directory
    gpgconf --homedir "$gh" --kill all >>"$dir/logs/gpg.log" 2>&1 || true
    [ "$rc" = 0 ] || fail "make_apt_repo: signing failed: $(tail -n 20 "$dir/logs/gpg.log")"
    for suite in "${suites[@]}"; do
        local dists=$dir/root/dists/$suite
        gpgv --keyring "$dir/keyring.gpg" "$dists/InRelease" >>"$dir/logs/gpg.log" 2>&1 ||
            fail "make_apt_repo: $suite InRelease does not verify: $(tail -n 5 "$dir/logs/gpg.log")"
        gpgv --keyring "$dir/keyring.gpg" "$dists/Release.gpg" "$dists/Release" >>"$dir/logs/gpg.log" 2>&1 ||
            fail "make_apt_repo: $suite Release.gpg does not verify: $(tail -n 5 "$dir/logs/gpg.log")"
    done
}

# make_apt_repo DIR
make_apt_repo() {
    local dir=$1
    rm -rf "$dir/root" "$dir/work"
    mkdir -p "$dir/root/pool/main" "$dir/work" "$dir/logs"
    chmod 755 "$dir" "$dir/root"
    command -v apt-ftparchive >/dev/null 2>&1 || fail "apt-ftparchive not found (install apt-utils: scripts/install-deps)"
    command -v gpg >/dev/null 2>&1 || fail "gpg not found (install gnupg: scripts/install-deps)"
    local p top=()
    for p in $APTFX_PACKAGES; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null; then
            log "make_apt_repo: $p is installed on this machine: left out of packages.txt"
        else
            top+=("$p")
        fi
    done
    [ "${#top[@]}" -gt 0 ] || fail "make_apt_repo: every package of APTFX_PACKAGES is installed here"
    printf '%s\n' "${top[@]}" >"$dir/packages.txt"
    _aptfx_resolve "$dir" "${top[@]}"
    [ -s "$dir/work/uris.txt" ] || fail "make_apt_repo: apt would download nothing for ${top[*]}"
    _aptfx_fetch_debs "$dir"
    local pool src total=0
    : >"$dir/all-debs.txt.tmp"
    while read -r pool src; do
        mkdir -p "$dir/root/$(dirname "$pool")"
        cp "$src" "$dir/root/$pool" # a copy: tests may damage pool files, the cache must stay intact
        echo "$pool $(sha256_file "$src") $(file_size "$src")" >>"$dir/all-debs.txt.tmp"
        total=$((total + $(file_size "$src")))
    done <"$dir/work/debs.txt"
    sort "$dir/all-debs.txt.tmp" >"$dir/all-debs.txt"
    rm -f "$dir/all-debs.txt.tmp"
    [ "$total" -le $((30 * 1024 * 1024)) ] ||
        log "make_apt_repo: WARNING: the pool is $total bytes (this machine's apt wants more than expected)"
    _aptfx_indices "$dir"
    _aptfx_sign "$dir"
    find "$dir/root" -type d -exec chmod 755 {} + && find "$dir/root" -type f -exec chmod 644 {} +
    APT_REPO_DEBS=$(wc -l <"$dir/all-debs.txt")
    APT_REPO_BYTES=$total
}

# make_apt_versions_repo DIR - a small repository with two suites listing different versions of the same packages,
# for apt's candidate selection: DIR/root/dists/{bookworm,bookworm-updates}/ (signed with one throwaway key,
# DIR/keyring.gpg; by-hash; no Translation), one pool of tiny .debs made with dpkg-deb (no payload but a doc file).
# The top-level package is vtop; DIR/expected-debs.txt lists the pool files apt installs for it (apt's own choice
# is checked against it by the test), DIR/all-debs.txt every pool file ("POOL_PATH SHA256 SIZE").
#   vtop 1.0            Pre-Depends: vpre; Depends: vlib (>= 1:1.0-1+deb12u1), vold (>= 5) | valt, vgone | valt2,
#                       vvirt (>= 3), vany:any
#   vlib   bookworm 1:1.0-1 (all)          updates 1:1.0-1+deb12u1 (native)   <- updates (epoch, +deb12u1)
#   vpre   bookworm 2.0-1                  updates 2.0~rc1-1                  <- bookworm ('~')
#   valt   bookworm 1.0-1                  updates 1.0-2                      <- updates (vold 1.0 is too old)
#   valt2  bookworm 3                                                         <- (vgone exists nowhere)
#   vprov  bookworm 3.0-1 Provides: vvirt (= 3.0)   updates 2.9-1 Provides: vvirt  <- bookworm (versioned Provides)
#   vany   both suites 1.0, the same file, Multi-Arch: allowed
#   vold   bookworm 1.0 (not installed: its version does not satisfy vold (>= 5))
APTFX_VSUITES="bookworm bookworm-updates"

# _aptfx_fake_deb DIR SUITE NAME VERSION ARCH [CONTROL_LINES] - builds the .deb into the pool, notes it for SUITE
_aptfx_fake_deb() {
    local dir=$1 suite=$2 name=$3 ver=$4 arch=$5 extra=${6:-}
    local fver=${ver#*:}
    local pool=pool/main/v/$name/${name}_${fver}_${arch}.deb
    echo "$pool" >>"$dir/work/suite-$suite.txt"
    [ -f "$dir/root/$pool" ] && return 0
    local b=$dir/work/build/${name}_${fver}_$arch
    mkdir -p "$b/DEBIAN" "$b/usr/share/doc/$name" "$dir/root/${pool%/*}"
    echo "$name $ver ($arch), made by apt_fixture.sh" >"$b/usr/share/doc/$name/README"
    {
        echo "Package: $name"
        echo "Version: $ver"
        echo "Architecture: $arch"
        echo "Maintainer: Larder tests <larder-test@example.invalid>"
        echo "Section: misc"
        echo "Priority: optional"
        [ -z "$extra" ] || printf '%b\n' "$extra"
        echo "Description: $name $ver for the candidate tests"
    } >"$b/DEBIAN/control"
    dpkg-deb --root-owner-group -Zgzip -z1 --build "$b" "$dir/root/$pool" >>"$dir/logs/dpkg-deb.log" 2>&1 ||
        fail "make_apt_versions_repo: dpkg-deb failed: $(tail -n 5 "$dir/logs/dpkg-deb.log")"
}

make_apt_versions_repo() {
    local dir=$1 a=$APTFX_ARCH
    rm -rf "$dir/root" "$dir/work"
    mkdir -p "$dir/root/pool/main" "$dir/work/build" "$dir/logs"
    chmod 755 "$dir" "$dir/root"
    command -v apt-ftparchive >/dev/null 2>&1 || fail "apt-ftparchive not found (install apt-utils: scripts/install-deps)"
    local A=bookworm B=bookworm-updates
    _aptfx_fake_deb "$dir" $A vtop 1.0 "$a" "Pre-Depends: vpre\nDepends: vlib (>= 1:1.0-1+deb12u1), vold (>= 5) | valt, vgone | valt2, vvirt (>= 3), vany:any"
    _aptfx_fake_deb "$dir" $A vlib 1:1.0-1 all
    _aptfx_fake_deb "$dir" $B vlib 1:1.0-1+deb12u1 "$a"
    _aptfx_fake_deb "$dir" $A vpre 2.0-1 "$a"
    _aptfx_fake_deb "$dir" $B vpre 2.0~rc1-1 "$a"
    _aptfx_fake_deb "$dir" $A vold 1.0 all
    _aptfx_fake_deb "$dir" $A valt 1.0-1 all
    _aptfx_fake_deb "$dir" $B valt 1.0-2 all
    _aptfx_fake_deb "$dir" $A valt2 3 all
    _aptfx_fake_deb "$dir" $A vprov 3.0-1 all "Provides: vvirt (= 3.0)"
    _aptfx_fake_deb "$dir" $B vprov 2.9-1 all "Provides: vvirt"
    _aptfx_fake_deb "$dir" $A vany 1.0 "$a" "Multi-Arch: allowed"
    _aptfx_fake_deb "$dir" $B vany 1.0 "$a" "Multi-Arch: allowed"
    printf '%s\n' "pool/main/v/vtop/vtop_1.0_$a.deb" "pool/main/v/vlib/vlib_1.0-1+deb12u1_$a.deb" \
        "pool/main/v/vpre/vpre_2.0-1_$a.deb" "pool/main/v/valt/valt_1.0-2_all.deb" "pool/main/v/valt2/valt2_3_all.deb" \
        "pool/main/v/vprov/vprov_3.0-1_all.deb" "pool/main/v/vany/vany_1.0_$a.deb" | sort >"$dir/expected-debs.txt"
    # every stanza once, then each suite's Packages: the stanzas of its own files
    (cd "$dir/root" && apt-ftparchive packages pool/main) >"$dir/work/Packages.all" 2>"$dir/logs/ftparchive.log" ||
        fail "apt-ftparchive packages failed: $(cat "$dir/logs/ftparchive.log")"
    local suite
    for suite in $APTFX_VSUITES; do
        local dists=$dir/root/dists/$suite bin=$dir/root/dists/$suite/main/binary-$a
        mkdir -p "$bin"
        awk -v list="$dir/work/suite-$suite.txt" 'BEGIN { while ((getline l < list) > 0) want[l] = 1; RS = ""; ORS = "\n\n" }
            { if (match($0, /\nFilename: [^\n]*/)) { f = substr($0, RSTART + 11, RLENGTH - 11); if (f in want) print } }' \
            "$dir/work/Packages.all" >"$bin/Packages"
        [ -s "$bin/Packages" ] || fail "make_apt_versions_repo: empty Packages for $suite"
        gzip -9nc "$bin/Packages" >"$bin/Packages.gz"
        xz -9c "$bin/Packages" >"$bin/Packages.xz"
        (cd "$dists" && _aptfx_ftparchive -o APT::FTPArchive::Release::Suite="$suite" \
            -o APT::FTPArchive::Release::Codename="$suite" release .) >"$dir/work/Release" 2>>"$dir/logs/ftparchive.log" ||
            fail "apt-ftparchive release failed: $(cat "$dir/logs/ftparchive.log")"
        mv "$dir/work/Release" "$dists/Release"
        awk '/^[A-Za-z0-9-]+:/ { sec = $1 } sec == "SHA256:" && /^ / { print $1, $3 }' "$dists/Release" |
            while read -r h f; do
                mkdir -p "$dists/$(dirname "$f")/by-hash/SHA256"
                cp -p "$dists/$f" "$dists/$(dirname "$f")/by-hash/SHA256/$h"
            done
    done
    # shellcheck disable=SC2086 # a list of suites
    _aptfx_sign "$dir" $APTFX_VSUITES
    (cd "$dir/root" && find pool -name '*.deb' | sort | while read -r f; do echo "$f $(sha256_file "$f") $(file_size "$f")"; done) \
        >"$dir/all-debs.txt"
    find "$dir/root" -type d -exec chmod 755 {} + && find "$dir/root" -type f -exec chmod 644 {} +
}

# ---------------------------------------------------------------------------------------------------------------
# the upstream

# start_apt_upstream DIR PORT [LIMIT_RATE]
start_apt_upstream() {
    local dir=$1 port=$2 rate=${3:-}
    [ -f "$dir/root/dists/$APTFX_DIST/InRelease" ] || fail "start_apt_upstream: run make_apt_repo $dir first"
    mkdir -p "$dir/logs" "$dir/tmp"
    {
        nginx_common_main "$dir"
        cat <<EOF
    sendfile on;
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        types { application/vnd.debian.binary-package deb; application/x-gzip gz; application/x-xz xz; }
        location /debian/ {
            alias $dir/root/;
            ${rate:+limit_rate $rate;}
        }
        location / { return 404; }
        ${NGINX_EXTRA:-}
    }
}
EOF
    } >"$dir/nginx.conf"
    NGINX_WAIT_PORTS=$port run_nginx "$dir"
    APT_UPSTREAM_URL=http://127.0.0.1:$port/debian
}

# apt_count DIR METHOD PATH
apt_count() {
    local logf=$1/logs/access.log
    [ -f "$logf" ] || { echo 0; return; }
    awk -v m="$2" -v p="$3" '
        function dec(s,   out, i, c) {
            out = ""
            for (i = 1; i <= length(s); i++) {
                c = substr(s, i, 1)
                if (c == "%" && i + 2 <= length(s) && (substr(s, i + 1, 2) in hex)) { out = out hex[substr(s, i + 1, 2)]; i += 2 }
                else out = out c
            }
            return out
        }
        BEGIN {
            for (i = 0; i < 256; i++) { h = sprintf("%02x", i); ch = sprintf("%c", i); hex[h] = ch; hex[toupper(h)] = ch }
            p = dec(p)
        }
        { i = index($0, "\""); if (i == 0) next
          split(substr($0, i + 1), r, " ")
          if (r[1] == m && dec(r[2]) == p) n++ }
        END { print n + 0 }' "$logf"
}

# ---------------------------------------------------------------------------------------------------------------
# the client

# apt_client_sources DIR URL KEYRING
apt_client_sources() {
    local dir=$1 url=${2%/} keyring=$3
    mkdir -p "$dir/apt.conf.d" "$dir/sources.list.d" "$dir/preferences.d" "$dir/trusted.gpg.d" "$dir/state" "$dir/log" \
        "$dir/lists/partial" "$dir/cache/archives/partial"
    # read by apt before /etc/apt/apt.conf.d would be: points the parts directory and the main file elsewhere
    cat >"$dir/apt.conf" <<EOF
Dir::Etc::Parts "$dir/apt.conf.d";
Dir::Etc::Main "/dev/null";
EOF
    echo "deb [signed-by=$keyring] $url $APTFX_DIST main" >"$dir/sources.list"
}

# apt_client_reset DIR
apt_client_reset() {
    local dir=$1
    rm -rf "$dir/lists" "$dir/cache"
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
}

# _aptfx_client_run DIR PROGRAM ARGS... - an apt program with the client's configuration (see the top of this file)
_aptfx_client_run() {
    local dir=$1 prog=$2
    shift 2
    if [ ! -f "$dir/sources.list" ] || [ ! -f "$dir/apt.conf" ]; then
        fail "apt_client: run apt_client_sources $dir ... first"
    fi
    local unset=() v
    for v in $(compgen -e); do
        case "$v" in http_proxy | https_proxy | ftp_proxy | all_proxy | no_proxy | HTTP_PROXY | HTTPS_PROXY | FTP_PROXY | ALL_PROXY | NO_PROXY)
            unset+=(-u "$v") ;;
        esac
    done
    local pid rc=0
    # shellcheck disable=SC2086 # APT_CLIENT_OPTS is a list of words
    env "${unset[@]+"${unset[@]}"}" APT_CONFIG="$dir/apt.conf" DEBIAN_FRONTEND=noninteractive "$prog" \
        -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts="$dir/sources.list.d" \
        -o Dir::Etc::Preferences="$dir/preferences" -o Dir::Etc::PreferencesParts="$dir/preferences.d" \
        -o Dir::Etc::Trusted="$dir/trusted.gpg" -o Dir::Etc::TrustedParts="$dir/trusted.gpg.d" \
        -o Dir::State="$dir/state" -o Dir::State::Lists="$dir/lists" -o Dir::State::status=/var/lib/dpkg/status \
        -o Dir::Cache="$dir/cache" -o Dir::Cache::archives="$dir/cache/archives" -o Dir::Log="$dir/log" \
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o Acquire::Languages=en -o APT::Get::Assume-Yes=true \
        ${APT_CLIENT_OPTS:-} "$@" </dev/null &
    pid=$!
    track_pid "$pid"
    wait "$pid" || rc=$?
    untrack_pid "$pid"
    return "$rc"
}

# apt_client DIR ARGS...
apt_client() {
    local dir=$1
    shift
    _aptfx_client_run "$dir" apt-get "$@"
}

# apt_client_config DIR - `apt-config dump` with the client's configuration (what apt_client's apt-get sees)
apt_client_config() { _aptfx_client_run "$1" apt-config dump; }

# apt_client_debs DIR
apt_client_debs() {
    find "$1/cache/archives" -maxdepth 1 -name '*.deb' -printf '%f\n' 2>/dev/null | sort
}

# ---------------------------------------------------------------------------------------------------------------
# apt-cacher-ng

# acng_free_port -> a free TCP port on 127.0.0.1 in 20000-32767 (free_port's come from the ephemeral range, above it)
acng_free_port() {
    local p
    p=$("$PY" - "$T_PORTS_USED" <<'PYEOF'
import random, socket, sys
used = set(sys.argv[1].split())
for _ in range(200):
    p = random.randint(20000, 32767)
    if str(p) in used:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
PYEOF
    ) || true
    [ -n "$p" ] || fail "acng_free_port: no free port below 32768"
    T_PORTS_USED="$T_PORTS_USED$p "
    echo "$p"
}

acng_up() { curl -sS --max-time 2 -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null; }

# start_apt_cacher_ng DIR PORT UPSTREAM_PORT...
start_apt_cacher_ng() {
    local dir=$1 port=$2
    shift 2
    local acng=/usr/sbin/apt-cacher-ng
    [ -x "$acng" ] || fail "apt-cacher-ng not installed (scripts/install-deps)"
    local p
    for p in "$port" "$@"; do
        [ "$p" -lt 32768 ] || fail "start_apt_cacher_ng: port $p: apt-cacher-ng 3.7 cannot use ports above 32767 (acng_free_port)"
    done
    mkdir -p "$dir/conf" "$dir/cache" "$dir/log"
    # Our own configuration directory, not /etc/apt-cacher-ng: its Remap-* lines would send anything that looks like
    # a Debian mirror path (/debian/...) to the backends in /etc/apt-cacher-ng (deb.debian.org). Without Remap
    # rules, apt-cacher-ng fetches every proxied URL from the host and port in it, if AllowUserPorts allows the port.
    cat >"$dir/conf/acng.conf" <<EOF
CacheDir: $dir/cache
LogDir: $dir/log
SupportDir: /usr/lib/apt-cacher-ng
Port: $port
BindAddress: 127.0.0.1
ConnectProto: v4
PidFile: $dir/pid
SocketPath: $dir/socket
ForeGround: 1
AllowUserPorts: 80 $*
VerboseLog: 1
ReportPage: acng-report.html
ExThreshold: 4
UseWrap: 0
${ACNG_EXTRA_CONF:-}
EOF
    # The options again on the command line (they win over the file); note that apt-cacher-ng with no -c reads
    # /etc/apt-cacher-ng and, without ForeGround=1, daemonises on 0.0.0.0:3142.
    "$acng" -c "$dir/conf" ForeGround=1 Port="$port" BindAddress=127.0.0.1 CacheDir="$dir/cache" LogDir="$dir/log" \
        PidFile="$dir/pid" SocketPath="$dir/socket" "AllowUserPorts=80 $*" \
        >>"$dir/log/stdout.log" 2>&1 </dev/null &
    ACNG_PID=$!
    track_pid "$ACNG_PID"
    ACNG_URL=http://127.0.0.1:$port
    local deadline=$((SECONDS + 15))
    until port_open "$port" && acng_up "$port"; do
        pid_alive "$ACNG_PID" ||
            fail "apt-cacher-ng exited at start-up: $(tail -n 20 "$dir/log/stdout.log" "$dir/log/apt-cacher.err" 2>/dev/null)"
        [ "$SECONDS" -lt "$deadline" ] || fail "apt-cacher-ng did not answer on $ACNG_URL within 15 s"
        sleep 0.1
    done
}
