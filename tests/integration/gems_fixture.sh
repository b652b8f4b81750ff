# shellcheck shell=bash disable=SC2034
# gems_fixture.sh - a local rubygems upstream (real gems, `gem generate_index`, a compact index like rubygems.org's,
# served by nginx) and the real `gem` / `bundle` clients, isolated, for the rubygems tests and benchmark (source after
# lib.sh). Needs Debian's ruby (3.1, rubygems 3.3) and bundler (2.3): scripts/install-deps installs both. Nothing here
# contacts the internet: the Gemfile says https://rubygems.org, but bundler is always given a mirror on 127.0.0.1.
#
#   make_gems_repo DIR                 the gem set below, built with `gem build` into DIR/root/gems/, indexed:
#                                      DIR/root/{specs,latest_specs,prerelease_specs}.4.8{,.gz} and
#                                      DIR/root/quick/Marshal.4.8/<full_name>.gemspec.rz (`gem generate_index`),
#                                      DIR/root/{names,versions,info/<name>} (compact index, gems_make_repo.rb),
#                                      DIR/manifest.json, DIR/app/{Gemfile,Gemfile.lock} (a real `bundle lock`
#                                      through a temporary nginx on DIR/root; the lockfile's remote is
#                                      https://rubygems.org/). Sources in DIR/src/, logs in DIR/logs/build-*.log.
#   start_gems_upstream DIR PORT [MODE] nginx on 127.0.0.1:PORT serving DIR/root (ETags from DIR/manifest.json); sets
#                                      NGINX_PID, GEMS_UPSTREAM_URL (http://127.0.0.1:PORT, no trailing slash). Access
#                                      log DIR/logs/access.log: nginx_count works on it, and each line also has
#                                      range="…" inm=… ims="…" ua="…" (nginx writes the quotes of If-None-Match as
#                                      \x22; gems_requests undoes that). nginx appends, so `: >DIR/logs/access.log`
#                                      starts a new phase. A second upstream on the same repo (another MODE): a new
#                                      directory holding symlinks root -> DIR/root and manifest.json ->
#                                      DIR/manifest.json.
#       MODE compact (default)  like rubygems.org: /versions, /names, /info/* as text/plain; charset=utf-8 with
#                               ETag = the quoted MD5 of the body and Repr-Digest: sha-256=:…:, 304 when If-None-Match
#                               is that ETag (nginx's `return 304`, so that 304 carries "Content-Length: 0"),
#                               Range honoured (206, with the ETag of the whole file, as bundler expects); HEAD / is
#                               200 (so `gem install` picks the compact index); /api/v1/dependencies is 404
#                               (rubygems.org switched the dependency API off); If-Modified-Since on the Marshal
#                               indexes is answered 304 when the file is not newer (`if_modified_since before`)
#       MODE index              no compact index: /, /versions, /names, /info/* are 404, so `gem install` and bundler
#                               fall back to specs.4.8.gz + quick/Marshal.4.8 (the "full index")
#       MODE nginx-etag         the compact index files with nginx's own ETag ("<mtime>-<size>" hex) and nginx's own
#                               If-None-Match handling. Bundler 2.3 checks the ETag against the MD5 of what it got,
#                               finds a mismatch and silently falls back to the full index (see the self-test).
#   gems_publish DIR NAME VERSION [DEP:REQ[&REQ]...]  one more gem (NAME is the full name, e.g. larder_test_util;
#                                      platform ruby; runtime dependencies like larder_test_base:~> 1.0), built and
#                                      published like rubygems.org does: a line appended to /info/NAME and
#                                      "NAME VERSION <new md5>" appended to /versions (so a kept bundler cache is
#                                      revalidated with Range requests answered 206), the Marshal indexes regenerated,
#                                      the manifest updated, and a running compact-mode upstream of DIR reloaded
#   gems_upstream_reload DIR           re-reads DIR/manifest.json into the nginx of DIR (compact mode; waits until
#                                      /versions has the new ETag); for other upstreams sharing the repo's root
#   gems_requests DIR                  every request of DIR/logs/access.log, in order, as "METHOD TARGET STATUS BYTES
#                                      range="…" inm=… ims="…"" (If-None-Match with its quotes; "-" when absent)
#   gems_client DIR CMD...             runs CMD (gem, bundle, ruby...) with stdin /dev/null, tracked like every started
#                                      process, in an environment isolated under DIR (below); returns its exit code.
#                                      Run it with a redirection, not inside $(...) (a subshell hides it from the trap).
#   gem_install DIR SOURCE_URL GEM...  `gem install --clear-sources --source SOURCE_URL --install-dir DIR/gems
#                                      --no-document GEM...` into an emptied DIR/gems (so every .gem is downloaded
#                                      again); output to the caller's stdout/stderr; returns gem's exit code
#   bundle_install DIR APPDIR MIRROR_URL [ARGS...]  copies APPDIR/{Gemfile,Gemfile.lock} to an emptied DIR/app and runs
#                                      `bundle install ARGS...` there into an emptied BUNDLE_PATH=DIR/bundle, with
#                                      BUNDLE_FROZEN=true (GEMS_BUNDLE_FROZEN=false to let bundler re-resolve) and
#                                      the mirror https://rubygems.org -> MIRROR_URL (a trailing / is added by bundler)
#                                      (`BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/`, no mirror when MIRROR_URL is "-");
#                                      returns bundle's exit code
#   bundle_exec DIR CMD...             `bundle exec CMD...` in the app and bundle of the last bundle_install DIR
#   gems_app_for_source APPDIR OUTDIR URL  a copy of the app whose Gemfile source and lockfile remote are URL (for a
#                                      bundle_install with MIRROR_URL "-": bundler then talks to URL directly)
#   gems_client_reset DIR              forgets every client cache under DIR: bundler's compact index cache, rubygems'
#                                      spec cache, installed gems. Without it, bundler keeps DIR/bundle-cache/
#                                      compact_index/ between bundle_install calls and revalidates it (Range +
#                                      If-None-Match); .gem files are downloaded by every call either way.
#
# The isolated client environment (gems_client): every GEM_*, BUNDLE_*, RUBY*, XDG_* and proxy variable of the caller
# is dropped; HOME=DIR/home (so no ~/.gemrc, ~/.bundle, ~/.gem, ~/.local/share/gem), GEMRC=DIR/gemrc (empty; Debian
# has no /etc/gemrc), GEM_HOME=GEM_PATH=DIR/gem-home, GEM_SPEC_CACHE=DIR/spec-cache, BUNDLE_USER_HOME=DIR/bundle-home
# (user config and plugins), BUNDLE_USER_CACHE=DIR/bundle-cache (compact index cache:
# DIR/bundle-cache/compact_index/rubygems.org.443.<md5>/{versions,info/*} when the source is https://rubygems.org, even
# through a mirror), BUNDLE_GLOBAL_GEM_CACHE=false, BUNDLE_SILENCE_ROOT_WARNING=true, BUNDLE_DISABLE_VERSION_CHECK=true.
# Debian's default gems (bundler itself, json...) stay visible: they are not under GEM_PATH.
#
# The gems (all tiny pure Ruby, prefix larder_test_; runtime dependencies; made reproducible with SOURCE_DATE_EPOCH, so
# a .gem has the same sha256 on every run):
#   larder_test_base    1.0.0
#   larder_test_util    1.0.0, 1.1.0 (base ~> 1.0), 2.0.0 (base >= 1.0)
#   larder_test_json    1.0.0 (required_ruby_version >= 2.6: "ruby:>= 2.6" in /info)
#   larder_test_core    1.0.0; util ~> 1.0, base >= 1.0 & < 2
#   larder_test_http    1.0.0; core ~> 1.0, json >= 0.9 (and a development dependency, minitest, not in /info)
#   larder_test_color   0.3.1
#   larder_test_cli     1.0.0, executable larder_test_cli; core ~> 1.0, color ~> 0.3
#   larder_test_native  1.0.0 and 1.0.0-x86_64-linux (a platform variant, also pure Ruby)
#   larder_test_assets  1.0.0 with 256 KiB of incompressible data (a ~260 KB .gem)
#   larder_test_pre     1.0.0, 2.0.0.pre.1 (prerelease: in prerelease_specs.4.8, "rubygems:> 1.3.1" in /info;
#                       base ~> 1.0)
# DIR/app's Gemfile wants larder_test_http ~> 1.0, larder_test_cli, larder_test_native, larder_test_assets; its
# lockfile (PLATFORMS ruby and x86_64-linux) has 9 gems: assets, base, cli, color, core, http, json, native (both
# variants listed; x86_64-linux is what gets installed here), util 1.1.0. Note: rubygems 3.3's generate_index keeps one
# latest_specs entry per name whatever the platform (native: only x86_64-linux); neither client reads latest_specs.
#
# What the clients ask the upstream (Debian bookworm: ruby 3.1.7, rubygems 3.3.15, bundler 2.3.27;
# gems_fixture_selftest.sh asserts all of it):
#   gem install, compact mode: per named gem HEAD /, then GET /info/<name> of it and of each dependency, GET
#       /quick/Marshal.4.8/<full>.gemspec.rz of each gem to install (not when GEM_SPEC_CACHE has it), GET
#       /gems/<full>.gem.
#       Never /versions, never Range / If-None-Match (rubygems keeps no compact index cache).
#   gem install, index mode (HEAD / not 2xx): GET /prerelease_specs.4.8.gz and /specs.4.8.gz (with If-Modified-Since
#       once GEM_SPEC_CACHE holds them), quick gemspecs of every candidate version, /gems/<full>.gem.
#   bundle install, compact mode, empty cache: GET /versions, GET /info/<name> for every gem of the lockfile (in
#       parallel), GET /gems/<full>.gem (the x86_64-linux variant of larder_test_native). No HEAD, no /names, no
#       quick gemspecs.
#   bundle install, cache kept: GET /versions with "Range: bytes=<size-1>-" and "If-None-Match: "<md5 of the cached
#       file>"" (304 when unchanged; 206 whose first byte overlaps the cached last byte when appended to); GET
#       /info/<name>, the same way, only for the gems whose MD5 in /versions differs from the cached file's.
#   bundle install, index mode: GET /versions (404), GET /api/v1/dependencies (404), GET /specs.4.8.gz and
#       /prerelease_specs.4.8.gz (no If-Modified-Since: bundler keeps no copy), quick gemspecs of the locked gems (both
#       platform variants of native), /gems/<full>.gem.
#   bundle install, nginx-etag mode: GET /versions twice (the second a retry without Range after the ETag check
#       failed), then as in index mode.
# Bundler 2.3 insists that the ETag of /versions and /info/* is the quoted MD5 of the whole file (also on a 206: it
# appends the range to its copy and compares the MD5 of the result); anything else makes it drop the compact index.

GEMSFX_PUBLIC=https://rubygems.org
GEMSFX_EPOCH=1704067200 # 2024-01-01T00:00:00Z: gem dates, tar mtimes, /versions created_at

# ---------------------------------------------------------------------------------------------------------------
# clients, isolated

_gemsfx_need() {
    if ! command -v ruby >/dev/null 2>&1 || ! command -v gem >/dev/null 2>&1 || ! command -v bundle >/dev/null 2>&1; then
        fail "ruby, gem and bundle are needed (Debian packages ruby and bundler: scripts/install-deps)"
    fi
}

gems_client() {
    local dir=$1
    shift
    _gemsfx_need
    mkdir -p "$dir/home" "$dir/gem-home" "$dir/spec-cache" "$dir/bundle-home" "$dir/bundle-cache"
    [ -f "$dir/gemrc" ] || echo "--- {}" >"$dir/gemrc"
    local unset=() v
    for v in $(compgen -e); do
        case "$v" in
        GEM_* | BUNDLE_* | BUNDLER_* | RUBY* | GEMRC | XDG_* | DEBUG_COMPACT_INDEX | [Hh][Tt][Tt][Pp]_[Pp][Rr][Oo][Xx][Yy] | \
            [Hh][Tt][Tt][Pp][Ss]_[Pp][Rr][Oo][Xx][Yy] | [Aa][Ll][Ll]_[Pp][Rr][Oo][Xx][Yy] | [Nn][Oo]_[Pp][Rr][Oo][Xx][Yy])
            unset+=(-u "$v") ;;
        esac
    done
    local pid rc=0
    env "${unset[@]+"${unset[@]}"}" HOME="$dir/home" GEMRC="$dir/gemrc" GEM_HOME="$dir/gem-home" \
        GEM_PATH="$dir/gem-home" GEM_SPEC_CACHE="$dir/spec-cache" BUNDLE_USER_HOME="$dir/bundle-home" \
        BUNDLE_USER_CACHE="$dir/bundle-cache" BUNDLE_GLOBAL_GEM_CACHE=false BUNDLE_SILENCE_ROOT_WARNING=true \
        BUNDLE_DISABLE_VERSION_CHECK=true LANG=C.UTF-8 "${GEMSFX_ENV[@]+"${GEMSFX_ENV[@]}"}" "$@" </dev/null &
    pid=$!
    track_pid "$pid"
    wait "$pid" || rc=$?
    untrack_pid "$pid"
    return "$rc"
}

gems_client_reset() {
    local dir=${1:?}
    rm -rf "${dir:?}/home" "$dir/gem-home" "$dir/spec-cache" "$dir/bundle-home" "$dir/bundle-cache" "$dir/gems" \
        "$dir/bundle" "$dir/app"
}

gem_install() {
    local dir=$1 src=$2
    shift 2
    rm -rf "$dir/gems"
    mkdir -p "$dir/gems"
    gems_client "$dir" gem install --clear-sources --source "$src" --install-dir "$dir/gems" --no-document "$@"
}

# _gemsfx_bundle_env DIR MIRROR_URL -> GEMSFX_ENV (declare it local first): the app in DIR/app, gems in DIR/bundle
_gemsfx_bundle_env() {
    local dir=$1 mirror=$2
    GEMSFX_ENV=(BUNDLE_GEMFILE="$dir/app/Gemfile" BUNDLE_APP_CONFIG="$dir/app/.bundle" BUNDLE_PATH="$dir/bundle"
        BUNDLE_FROZEN="${GEMS_BUNDLE_FROZEN:-true}")
    [ "$mirror" = - ] || GEMSFX_ENV+=("BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/=$mirror")
    GEMSFX_ENV+=(env -C "$dir/app")
}

bundle_install() {
    local dir=$1 app=$2 mirror=$3
    shift 3
    [ -f "$app/Gemfile" ] || fail "bundle_install: no $app/Gemfile"
    rm -rf "$dir/app" "$dir/bundle"
    mkdir -p "$dir/app"
    cp "$app/Gemfile" "$dir/app/"
    [ ! -f "$app/Gemfile.lock" ] || cp "$app/Gemfile.lock" "$dir/app/"
    local GEMSFX_ENV
    _gemsfx_bundle_env "$dir" "$mirror"
    gems_client "$dir" bundle install "$@"
}

bundle_exec() {
    local dir=$1
    shift
    local GEMSFX_ENV
    _gemsfx_bundle_env "$dir" -
    gems_client "$dir" bundle exec "$@"
}

gems_app_for_source() {
    local app=$1 out=$2 url=${3%/}
    mkdir -p "$out"
    sed "s|^source \"$GEMSFX_PUBLIC\"|source \"$url\"|" "$app/Gemfile" >"$out/Gemfile"
    sed "s|^  remote: $GEMSFX_PUBLIC/\$|  remote: $url/|" "$app/Gemfile.lock" >"$out/Gemfile.lock"
    grep -q "^  remote: $url/\$" "$out/Gemfile.lock" || fail "gems_app_for_source: no remote line rewritten in $out/Gemfile.lock"
}

# ---------------------------------------------------------------------------------------------------------------
# the upstream

# _gemsfx_conf PREFIX ROOT PORT MODE -> PREFIX/nginx.conf
_gemsfx_conf() {
    local prefix=$1 root=$2 port=$3 mode=$4
    mkdir -p "$prefix/logs" "$prefix/tmp"
    local compact slash='default_type text/plain; return 200 "larder test rubygems upstream\n";'
    [ "$mode" != index ] || slash="return 404;"
    case "$mode" in
    compact)
        compact="etag off;
            add_header ETag \$gems_etag;
            add_header Repr-Digest \$gems_digest;
            if (\$gems_not_modified) { return 304; }"
        ;;
    nginx-etag) compact="" ;;
    index) compact="return 404;" ;;
    *) fail "start_gems_upstream: unknown mode '$mode' (compact, index or nginx-etag)" ;;
    esac
    {
        nginx_common_main "$prefix"
        cat <<EOF
    sendfile on;
    map_hash_bucket_size 256;
    log_format gems_test '\$remote_addr [\$time_local] "\$request" \$status \$body_bytes_sent rt=\$request_time range="\$http_range" inm=\$http_if_none_match ims="\$http_if_modified_since" ua="\$http_user_agent"';
EOF
        # ETag / Repr-Digest / 304 of the compact index files, from the manifest
        "$PY" - "$root/../manifest.json" <<'PYEOF' || fail "start_gems_upstream: cannot read the manifest"
import json, sys
files = json.load(open(sys.argv[1]))["files"]
print('    map $uri $gems_etag {\n        default "";')
for p, f in sorted(files.items()):
    print('        %s "\\"%s\\"";' % (p, f["md5"]))
print('    }\n    map $uri $gems_digest {\n        default "";')
for p, f in sorted(files.items()):
    print('        %s "sha-256=:%s:";' % (p, f["sha256_base64"]))
print('    }\n    map "$uri $http_if_none_match" $gems_not_modified {\n        default 0;')
for p, f in sorted(files.items()):
    print('        "%s \\"%s\\"" 1;' % (p, f["md5"]))
print('    }')
PYEOF
        cat <<EOF
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        root $root;
        access_log $prefix/logs/access.log gems_test;
        types { }
        default_type application/octet-stream;
        # rubygems sends the local mtime of its cached specs.4.8.gz as If-Modified-Since: answer 304 when the file is
        # not newer (as S3 / CDNs do), not only on an exact match (nginx's default)
        if_modified_since before;
        location = / {
            $slash
        }
        location = /versions {
            default_type text/plain;
            charset utf-8;
            $compact
        }
        location = /names {
            default_type text/plain;
            charset utf-8;
            $compact
        }
        location /info/ {
            default_type text/plain;
            charset utf-8;
            $compact
        }
        location /api/ { return 404; }
        location /gems/ { }
        location /quick/ { }
        location ~ ^/(specs|latest_specs|prerelease_specs)\.4\.8(\.gz)?\$ { }
        location / { return 404; }
    }
}
EOF
    } >"$prefix/nginx.conf"
}

start_gems_upstream() {
    local dir=$1 port=$2 mode=${3:-compact}
    [ -f "$dir/manifest.json" ] || fail "start_gems_upstream: run make_gems_repo $dir first"
    _gemsfx_conf "$dir" "$dir/root" "$port" "$mode"
    echo "$port $mode" >"$dir/upstream.args"
    NGINX_WAIT_PORTS=$port run_nginx "$dir"
    GEMS_UPSTREAM_URL=http://127.0.0.1:$port
}

_gemsfx_gone() { ! pid_alive "$1"; }
_gemsfx_etag_is() { [ "$(http_header "http://127.0.0.1:$1/versions" ETag)" = "$2" ]; }

gems_upstream_reload() {
    local dir=$1 port mode pid
    [ -f "$dir/upstream.args" ] && [ -f "$dir/nginx.pid" ] || return 0
    read -r port mode <"$dir/upstream.args"
    [ "$mode" = compact ] || return 0 # the other modes take nothing from the manifest
    pid=$(cat "$dir/nginx.pid")
    pid_alive "$pid" || return 0
    _gemsfx_conf "$dir" "$dir/root" "$port" "$mode"
    "$NGINX" -t -q -c "$dir/nginx.conf" -p "$dir" 2>"$dir/logs/configtest.log" ||
        fail "gems_upstream_reload: nginx config test failed: $(cat "$dir/logs/configtest.log")"
    # after SIGHUP the old workers keep accepting for a moment: wait until they are gone, then for the new ETag
    local old_workers w
    old_workers=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
    kill -HUP "$pid"
    for w in $old_workers; do
        wait_for "old nginx worker $w" 10 _gemsfx_gone "$w" || fail "gems_upstream_reload: nginx worker $w did not exit"
    done
    local want
    want="\"$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["files"]["/versions"]["md5"])' "$dir/manifest.json")\""
    wait_for "nginx reload" 10 _gemsfx_etag_is "$port" "$want" ||
        fail "gems_upstream_reload: /versions on port $port still has the old ETag after 10 s"
}

gems_publish() {
    local dir=$1 name=$2 version=$3
    shift 3
    local GEMSFX_ENV=("SOURCE_DATE_EPOCH=$GEMSFX_EPOCH") d spec
    mkdir -p "$dir/logs"
    gems_client "$dir/build-client" ruby "$LIB_DIR/gems_make_repo.rb" one "$dir/src" "$name" "$version" "$@" \
        >"$dir/logs/publish-source.txt" 2>>"$dir/logs/build-publish.log" ||
        fail "gems_publish: writing the source failed: $(tail -n 30 "$dir/logs/build-publish.log")"
    read -r d spec <"$dir/logs/publish-source.txt"
    [ -f "$d/$spec" ] || fail "gems_publish: no gemspec written for $name $version"
    GEMSFX_ENV=("SOURCE_DATE_EPOCH=$GEMSFX_EPOCH" env -C "$d")
    _gemsfx_step "$dir" publish gem build "$spec"
    mv "$d"/*.gem "$dir/root/gems/"
    GEMSFX_ENV=("SOURCE_DATE_EPOCH=$GEMSFX_EPOCH")
    _gemsfx_step "$dir" publish gem generate_index -d "$dir/root"
    _gemsfx_step "$dir" publish ruby "$LIB_DIR/gems_make_repo.rb" append "$dir/root" "$dir/manifest.json" \
        "$dir/root/gems/$name-$version.gem"
    gems_upstream_reload "$dir"
}

gems_requests() {
    local logf=$1/logs/access.log
    [ -f "$logf" ] || return 0
    sed -E 's/\\x22/"/g' "$logf" | awk '{
        r = ""; rg = ""; inm = ""; ims = ""
        if (match($0, /"[A-Z]+ [^ ]+ HTTP\/[0-9.]+"/)) { split(substr($0, RSTART + 1, RLENGTH - 2), q, " "); r = q[1] " " q[2] }
        split(substr($0, RSTART + RLENGTH + 1), s, " ")
        if (match($0, / range="[^"]*"/)) rg = substr($0, RSTART + 1, RLENGTH - 1)
        if (match($0, / inm=("[^"]*"|-)/)) inm = substr($0, RSTART + 1, RLENGTH - 1)
        if (match($0, / ims="[^"]*"/)) ims = substr($0, RSTART + 1, RLENGTH - 1)
        print r, s[1], s[2], rg, inm, ims }'
}

# ---------------------------------------------------------------------------------------------------------------
# the repository

_gemsfx_step() {
    local dir=$1 step=$2
    shift 2
    gems_client "$dir/build-client" "$@" >>"$dir/logs/build-$step.log" 2>&1 ||
        fail "make_gems_repo: $* failed: $(tail -n 30 "$dir/logs/build-$step.log")"
}

make_gems_repo() {
    local dir=$1
    _gemsfx_need
    rm -rf "$dir/src" "$dir/root" "$dir/app" "$dir/manifest.json" "$dir/build-client" "$dir/lock-upstream" \
        "$dir"/logs/build-*.log
    mkdir -p "$dir/root/gems" "$dir/app" "$dir/logs"
    chmod 755 "$dir" "$dir/root"
    local GEMSFX_ENV=("SOURCE_DATE_EPOCH=$GEMSFX_EPOCH")
    _gemsfx_step "$dir" sources ruby "$LIB_DIR/gems_make_repo.rb" sources "$dir/src"
    local d spec
    while read -r d spec; do
        GEMSFX_ENV=("SOURCE_DATE_EPOCH=$GEMSFX_EPOCH" env -C "$d")
        _gemsfx_step "$dir" gem-build gem build "$spec"
        mv "$d"/*.gem "$dir/root/gems/"
    done <"$dir/src/order.txt"
    GEMSFX_ENV=("SOURCE_DATE_EPOCH=$GEMSFX_EPOCH")
    _gemsfx_step "$dir" generate-index gem generate_index -d "$dir/root"
    _gemsfx_step "$dir" compact-index ruby "$LIB_DIR/gems_make_repo.rb" index "$dir/root" "$dir/manifest.json"
    cat >"$dir/app/Gemfile" <<EOF
# frozen_string_literal: true
# made by tests/integration/gems_fixture.sh; tests map https://rubygems.org to a local server
source "$GEMSFX_PUBLIC"

gem "larder_test_http", "~> 1.0"
gem "larder_test_cli"
gem "larder_test_native"
gem "larder_test_assets"
EOF
    # the lockfile: a real `bundle lock` through a throwaway nginx on the same root (its own prefix and log)
    local port saved_pid=${NGINX_PID:-}
    port=$(free_port)
    _gemsfx_conf "$dir/lock-upstream" "$dir/root" "$port" compact
    NGINX_WAIT_PORTS=$port run_nginx "$dir/lock-upstream"
    GEMSFX_ENV=(BUNDLE_GEMFILE="$dir/app/Gemfile" BUNDLE_APP_CONFIG="$dir/build-client/app-config"
        "BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/=http://127.0.0.1:$port" env -C "$dir/app")
    _gemsfx_step "$dir" lock bundle lock --add-platform ruby x86_64-linux
    stop_pid "$NGINX_PID"
    NGINX_PID=$saved_pid
    [ -f "$dir/app/Gemfile.lock" ] || fail "make_gems_repo: bundle lock wrote no $dir/app/Gemfile.lock"
    grep -q "^  remote: $GEMSFX_PUBLIC/\$" "$dir/app/Gemfile.lock" ||
        fail "make_gems_repo: the lockfile's remote is not $GEMSFX_PUBLIC/: $(cat "$dir/app/Gemfile.lock")"
}
