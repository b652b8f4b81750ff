# shellcheck shell=bash disable=SC2034
# oci_fixture.sh - a real OCI registry upstream (Debian's docker-registry 2.8) and real OCI images for the OCI tests
# and benchmark (source after lib.sh). Nothing here contacts the internet: the images are built locally (no docker,
# no network), every server listens on 127.0.0.1, and skopeo runs with its own empty configuration.
#
#   make_oci_images DIR                  OCI image layouts DIR/layouts/{hello,multi} and DIR/images.json (below)
#   start_oci_registry DIR PORT [AUTH]   docker-registry on 127.0.0.1:PORT, config DIR/config.yml, storage
#                                        DIR/storage; AUTH "token": token auth with a token server of ours on
#                                        another port (anyone gets any action: anonymous pull AND push work).
#                                        Sets OCI_REGISTRY_PID, OCI_REGISTRY_URL (http://127.0.0.1:PORT),
#                                        OCI_REGISTRY_HOSTPORT (127.0.0.1:PORT); with token auth also OCI_TOKEN_PID,
#                                        OCI_TOKEN_URL (http://127.0.0.1:TOKENPORT/token; the port is $OCI_TOKEN_PORT
#                                        when set, else free_port)
#   start_oci_proxy_registry DIR PORT UPSTREAM_URL
#                                        docker-registry as a pull-through cache of UPSTREAM_URL (the benchmark
#                                        reference); sets OCI_PROXY_PID, OCI_PROXY_URL, OCI_PROXY_HOSTPORT
#   stop_oci_registry DIR                stops the registry (and token server) started with DIR; the storage stays,
#                                        so start_oci_registry DIR PORT [AUTH] can restart it (another AUTH too)
#   push_oci_images DIR REGISTRY_URL [OUT_JSON]
#                                        skopeo copy of DIR/layouts/* to the registry (below), then reads every
#                                        pushed ref back from the registry into OUT_JSON (default DIR/pushed.json)
#   oci_count DIR METHOD PATH            how many METHOD PATH requests the registry of DIR got (exact request
#                                        target, query string included; %XX decoded on both sides)
#   oci_requests DIR                     every request the registry of DIR got, one "METHOD TARGET STATUS" a line
#   oci_token_count DIR [SCOPE]          token requests (all, or those asking for exactly SCOPE, e.g.
#                                        repository:larder-test/hello:pull)
#   oci_token DIR REPO [ACTIONS]         prints a token for REPO (ACTIONS default pull), for curl -H "Authorization:
#                                        Bearer ..."; it counts in DIR/token.log like any token request
#   skopeo_run ARGS...                   the machine's skopeo with an isolated configuration (below); tracked
#   skopeo_pull REF DEST [ARGS...]       skopeo copy --src-tls-verify=false docker://REF dir:DEST (DEST may also be
#                                        oci:PATH:TAG or dir:PATH); ARGS go to `copy` (--all, --format ...) except
#                                        skopeo's global options (--override-os/-arch/-variant, --registries-conf,
#                                        --debug, --tmpdir, --command-timeout, --policy, --insecure-policy), which are
#                                        put before `copy`; returns skopeo's exit code
#   skopeo_registries_conf FILE MIRROR [PREFIX]
#                                        a registries.conf that sends pulls of PREFIX (default docker.io) to the
#                                        mirror MIRROR (host:port, or host:port/namespace), over plain HTTP
#   oci_dir_digest DEST                  sha256:... of DEST/manifest.json (what skopeo_pull wrote)
#   oci_dir_verify DEST                  checks every blob (and, after --all, every instance manifest) in DEST
#                                        against its digest; prints "MANIFEST_DIGEST BLOBS_CHECKED"
#
# Run skopeo_run / skopeo_pull with a redirection, not inside $(...) (a subshell would hide the process from the
# EXIT trap). skopeo's configuration: $OCIFX_SKOPEO_DIR (default $WORK/skopeo) holds an empty auth file (auth.json,
# "{}"), an empty home/ (skopeo runs with HOME there and no XDG_* variables, so the fallback auth files
# ~/.docker/config.json, ~/.config/containers/auth.json... are never read), a registries.conf with no registries
# and no search registries (override: --registries-conf FILE in the ARGS, or SKOPEO_REGISTRIES_CONF), a
# policy.json accepting anything, and tmp/ for --tmpdir. REGISTRY_AUTH_FILE, CONTAINERS_*, DOCKER_CONFIG and proxy
# variables are removed from its environment. Not isolated (skopeo 1.9 has no option for it): the blob info cache, as root
# /var/lib/containers/cache/blob-info-cache-v1.boltdb; it only lets pushes try cross-repository mounts.
# skopeo with --src-tls-verify=false (or a registries.conf `insecure = true`) first tries HTTPS: it sends a TLS
# ClientHello to the plain HTTP port, then, after the handshake fails, does the same requests over HTTP. Each skopeo
# run starts with GET /v2/ (a 404 there makes it try GET /v1/_ping too).
#
# The images (deterministic: the same bytes, so the same digests, on every run of the same machine):
#   larder-test/hello:1.0   an OCI image manifest, linux/amd64: config + 3 tar+gzip layers: a small base (files, a
#                           symlink), ~5 MiB of incompressible data (/opt/hello/data.bin; OCIFX_BIG_LAYER_BYTES
#                           changes the size), a small layer with a whiteout
#   larder-test/multi:2.0   an OCI image index: linux/amd64 and linux/arm64 (variant v8), each with its own config,
#                           a base layer both share and a layer of its own (1 MiB / 768 KiB of random data)
# push_oci_images pushes them as (REGISTRY = host:port of REGISTRY_URL):
#   REGISTRY/larder-test/hello:1.0          --preserve-digests: the digests of images.json
#   REGISTRY/larder-test/hello:1.0-docker   --format v2s2: a Docker schema 2 manifest
#                                           (application/vnd.docker.distribution.manifest.v2+json, config
#                                           application/vnd.docker.container.image.v1+json, layers
#                                           application/vnd.docker.image.rootfs.diff.tar.gzip); same config and
#                                           layer blobs, another manifest digest
#   REGISTRY/larder-test/multi:2.0          --all --preserve-digests: the index and both platform manifests
#   REGISTRY/library/larder-hello:1.0       hello again (same digests), so that a client's docker.io/larder-hello
#                                           (= docker.io/library/larder-hello) can be pulled through a mirror
#
# DIR/images.json (what make_oci_images built) and OUT_JSON (what the registry serves) have one format:
#   {"images": {"REPO:TAG": IMAGE...}, "blobs": {DIGEST: {"size": N, "repos": [REPO...]}}}
#   IMAGE of a single manifest: {"kind": "manifest", "repo", "tag", "media_type", "digest", "size", "platform":
#     {"os", "architecture"[, "variant"]}, "config": {"media_type", "digest", "size"}, "layers": [{"media_type",
#     "digest", "size", "diff_id"}]}
#   IMAGE of an index: {"kind": "index", "repo", "tag", "media_type", "digest", "size", "manifests":
#     {"linux/amd64": MANIFEST, "linux/arm64": MANIFEST}} with MANIFEST as a single manifest without repo/tag
#   images.json adds "layout" and "oci_ref" (oci:PATH:TAG) to each image. OUT_JSON adds "registry" (the URL) at the
#   top, "ref" (host:port/repo:tag) and "tag_path" (/v2/REPO/manifests/TAG) to each image, "manifest_path"
#   (/v2/REPO/manifests/DIGEST) to each manifest and index, and "path" (/v2/REPO/blobs/DIGEST) to configs and
#   layers. Reading OUT_JSON back makes requests too: GET of every manifest (by tag and by digest) and config blob,
#   HEAD of every layer; take request counts after push_oci_images.
#
# Logs: DIR/logs/access.log is the registry's access log (Apache combined format, one line per request when the
# response is done: `127.0.0.1 - - [date] "GET /v2/... HTTP/1.1" 200 1234 "" "skopeo/1.9.3"`; oci_count reads it),
# DIR/logs/registry.log its JSON log (logrus: one {"msg": "response completed", "http.request.method",
# "http.request.uri", "http.response.status", ...} object per request, plus errors and auth decisions),
# DIR/token.log the token server's, one JSON object per token request: {"time", "method", "target" (the raw
# request target with its query string), "query" (decoded, each value a list), "scopes", "granted", "status"}.

OCIFX_PY=$LIB_DIR/oci_fixture.py
OCIFX_REGISTRY_BIN=${OCIFX_REGISTRY_BIN:-/usr/bin/docker-registry}
OCIFX_SERVICE=larder-test-registry
OCIFX_ISSUER=larder-test-issuer

# ---------------------------------------------------------------------------------------------------------------
# images

# make_oci_images DIR - sets OCI_IMAGES_JSON
make_oci_images() {
    local dir=$1
    mkdir -p "$dir"
    rm -rf "$dir/layouts"
    "$PY" "$OCIFX_PY" make "$dir" || fail "make_oci_images: oci_fixture.py make failed"
    OCI_IMAGES_JSON=$dir/images.json
}

# ---------------------------------------------------------------------------------------------------------------
# skopeo

# _ocifx_skopeo_conf - the isolated configuration files in $OCIFX_SKOPEO_DIR
_ocifx_skopeo_conf() {
    OCIFX_SKOPEO_DIR=${OCIFX_SKOPEO_DIR:-$WORK/skopeo}
    local d=$OCIFX_SKOPEO_DIR
    [ -f "$d/policy.json" ] && return 0
    mkdir -p "$d/tmp" "$d/home"
    echo '{}' >"$d/auth.json"
    printf '# no registries: every reference is fully qualified\nunqualified-search-registries = []\n' \
        >"$d/registries.conf"
    echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$d/policy.json"
}

# skopeo_run ARGS... - skopeo with the isolated policy, registries.conf (unless ARGS has --registries-conf) and
# temporary directory; the auth file must be named by the caller's copy options (skopeo_pull and push_oci_images
# pass --authfile). Output to the caller's stdout/stderr; returns skopeo's exit code.
skopeo_run() {
    command -v skopeo >/dev/null 2>&1 || fail "skopeo not found (scripts/install-deps installs it)"
    _ocifx_skopeo_conf
    local d=$OCIFX_SKOPEO_DIR conf=() a
    conf=(--registries-conf "${SKOPEO_REGISTRIES_CONF:-$d/registries.conf}")
    for a in "$@"; do
        case "$a" in --registries-conf | --registries-conf=*) conf=() ;; esac
    done
    local unset=() v
    for v in $(compgen -e); do
        case "$v" in REGISTRY_AUTH_FILE | CONTAINERS_* | DOCKER_CONFIG | XDG_* | http_proxy | https_proxy | HTTP_PROXY | \
            HTTPS_PROXY | all_proxy | ALL_PROXY | no_proxy | NO_PROXY) unset+=(-u "$v") ;;
        esac
    done
    local pid rc=0
    env "${unset[@]+"${unset[@]}"}" HOME="$d/home" skopeo "${conf[@]+"${conf[@]}"}" --policy "$d/policy.json" --tmpdir "$d/tmp" \
        "$@" </dev/null &
    pid=$!
    track_pid "$pid"
    wait "$pid" || rc=$?
    untrack_pid "$pid"
    return "$rc"
}

# skopeo_pull REF DEST [ARGS...]
skopeo_pull() {
    local ref=$1 dest=$2
    shift 2
    local glob=() copy=()
    while [ "$#" -gt 0 ]; do
        case "$1" in
        --override-os | --override-arch | --override-variant | --registries-conf | --tmpdir | --command-timeout | --policy)
            [ "$#" -ge 2 ] || fail "skopeo_pull: $1 needs a value"
            glob+=("$1" "$2")
            shift 2
            continue
            ;;
        --override-os=* | --override-arch=* | --override-variant=* | --registries-conf=* | --tmpdir=* | \
            --command-timeout=* | --policy=* | --debug | --insecure-policy) glob+=("$1") ;;
        *) copy+=("$1") ;;
        esac
        shift
    done
    case "$dest" in dir:* | oci:* | oci-archive:* | docker-archive:*) ;; *) dest=dir:$dest ;; esac
    _ocifx_skopeo_conf
    skopeo_run "${glob[@]+"${glob[@]}"}" copy --src-tls-verify=false --authfile "$OCIFX_SKOPEO_DIR/auth.json" \
        "${copy[@]+"${copy[@]}"}" "docker://$ref" "$dest"
}

# skopeo_registries_conf FILE MIRROR [PREFIX]
# Pulls of PREFIX/... go to the mirror first (docker.io/library/alpine:3 -> MIRROR/library/alpine:3, a mirror
# with a namespace, 127.0.0.1:PORT/ns, gets ns/library/alpine), then, if the mirror fails, to PREFIX itself (which
# fails at once here: no DNS for registry-1.docker.io). Tags as well as digests are pulled from the mirror (the
# containers-registries.conf default of this version). `insecure = true` allows plain HTTP (after the failed TLS
# attempt described at the top). Pushes never use mirrors.
skopeo_registries_conf() {
    local file=$1 mirror=$2 prefix=${3:-docker.io}
    mkdir -p "$(dirname "$file")"
    cat >"$file" <<EOF
# written by skopeo_registries_conf (tests/integration/oci_fixture.sh)
unqualified-search-registries = []

[[registry]]
prefix = "$prefix"
location = "$prefix"

[[registry.mirror]]
location = "$mirror"
insecure = true
EOF
}

oci_dir_digest() { echo "sha256:$(sha256_file "$1/manifest.json")"; }

oci_dir_verify() { "$PY" "$OCIFX_PY" verify-dir "$1"; }

# ---------------------------------------------------------------------------------------------------------------
# docker-registry

# _ocifx_serve DIR PORT WANT_STATUS WHAT - runs docker-registry with DIR/config.yml, waits for GET /v2/ to answer
# WANT_STATUS; sets _OCIFX_PID
_ocifx_serve() {
    local dir=$1 port=$2 want=$3 what=$4
    [ -x "$OCIFX_REGISTRY_BIN" ] || fail "docker-registry not found ($OCIFX_REGISTRY_BIN): scripts/install-deps installs it"
    local unset=() v
    for v in $(compgen -e); do
        # REGISTRY_* variables override the configuration file
        case "$v" in REGISTRY_* | http_proxy | https_proxy | HTTP_PROXY | HTTPS_PROXY | all_proxy | ALL_PROXY | no_proxy | NO_PROXY)
            unset+=(-u "$v") ;;
        esac
    done
    echo "==== docker-registry serve $dir/config.yml ($(date -u +%FT%TZ))" >>"$dir/logs/registry.log"
    env "${unset[@]+"${unset[@]}"}" "$OCIFX_REGISTRY_BIN" serve "$dir/config.yml" \
        >>"$dir/logs/access.log" 2>>"$dir/logs/registry.log" </dev/null &
    _OCIFX_PID=$!
    track_pid "$_OCIFX_PID"
    echo "$_OCIFX_PID" >"$dir/registry.pid"
    local deadline=$((SECONDS + 15)) code
    while :; do
        code=$(CURL_MAX_TIME=2 http_status "http://127.0.0.1:$port/v2/")
        [ "$code" = "$want" ] && break
        pid_alive "$_OCIFX_PID" || fail "$what exited at start-up: $(tail -n 20 "$dir/logs/registry.log")"
        [ "$SECONDS" -lt "$deadline" ] || fail "$what: GET http://127.0.0.1:$port/v2/ did not answer $want within 15 s (last: $code)"
        sleep 0.1
    done
}

# _ocifx_config DIR PORT - the common part of config.yml
_ocifx_config() {
    local dir=$1 port=$2
    cat <<EOF
version: 0.1
log:
  level: info
  formatter: json
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: larder-test-http-secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
}

# _ocifx_token_server DIR PORT - the token server (certificate DIR/token.crt, key DIR/token.key, log DIR/token.log)
_ocifx_token_server() {
    local dir=$1 port=$2
    if [ ! -f "$dir/token.crt" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/token.key" -out "$dir/token.crt" -days 30 \
            -subj "/CN=larder-test-token-issuer" >"$dir/logs/openssl.log" 2>&1 ||
            fail "openssl req (token certificate) failed: $(cat "$dir/logs/openssl.log")"
    fi
    "$PY" "$OCIFX_PY" token-server --port "$port" --key "$dir/token.key" --cert "$dir/token.crt" --log "$dir/token.log" \
        --issuer "$OCIFX_ISSUER" --service "$OCIFX_SERVICE" --expiry "${OCIFX_TOKEN_EXPIRY:-300}" \
        --signer "${OCIFX_TOKEN_SIGNER:-auto}" >>"$dir/logs/token-server.log" 2>&1 </dev/null &
    OCI_TOKEN_PID=$!
    track_pid "$OCI_TOKEN_PID"
    echo "$OCI_TOKEN_PID" >"$dir/token-server.pid"
    OCI_TOKEN_URL=http://127.0.0.1:$port/token
    echo "$OCI_TOKEN_URL" >"$dir/token-url"
    local deadline=$((SECONDS + 10))
    until port_open "$port"; do
        pid_alive "$OCI_TOKEN_PID" || fail "the token server exited at start-up: $(tail -n 20 "$dir/logs/token-server.log")"
        [ "$SECONDS" -lt "$deadline" ] || fail "the token server did not listen on 127.0.0.1:$port within 10 s"
        sleep 0.1
    done
}

# start_oci_registry DIR PORT [AUTH]
start_oci_registry() {
    local dir=$1 port=$2 auth=${3:-none} want=200 tport
    mkdir -p "$dir/storage" "$dir/logs"
    rm -f "$dir/token-url"
    case "$auth" in
    none | "") ;;
    token)
        tport=${OCI_TOKEN_PORT:-}
        [ -n "$tport" ] || tport=$(free_port)
        _ocifx_token_server "$dir" "$tport"
        want=401
        ;;
    *) fail "start_oci_registry: AUTH must be empty, none or token (got '$auth')" ;;
    esac
    {
        _ocifx_config "$dir" "$port"
        if [ "$auth" = token ]; then
            cat <<EOF
auth:
  token:
    realm: $OCI_TOKEN_URL
    service: $OCIFX_SERVICE
    issuer: $OCIFX_ISSUER
    rootcertbundle: $dir/token.crt
EOF
        fi
    } >"$dir/config.yml"
    _ocifx_serve "$dir" "$port" "$want" "docker-registry"
    OCI_REGISTRY_PID=$_OCIFX_PID
    OCI_REGISTRY_URL=http://127.0.0.1:$port
    OCI_REGISTRY_HOSTPORT=127.0.0.1:$port
}

# start_oci_proxy_registry DIR PORT UPSTREAM_URL - docker-registry 2.8 in proxy mode (a pull-through cache; it
# refuses pushes). With a token-auth upstream it fetches anonymous tokens itself. What it asks its upstream
# (measured with this fixture): a GET /v2/ before each upstream operation; a cold blob costs HEAD + 2 x GET upstream
# (one GET streams to the client, a second one, in the background, fills its storage); a manifest by tag costs
# HEAD + GET when cold and a HEAD (freshness check) on every later pull; manifests by digest and blobs are then
# served from its storage without asking upstream.
start_oci_proxy_registry() {
    local dir=$1 port=$2 upstream=${3%/}
    mkdir -p "$dir/storage" "$dir/logs"
    {
        _ocifx_config "$dir" "$port"
        cat <<EOF
proxy:
  remoteurl: $upstream
EOF
    } >"$dir/config.yml"
    _ocifx_serve "$dir" "$port" 200 "docker-registry (proxy of $upstream)"
    OCI_PROXY_PID=$_OCIFX_PID
    OCI_PROXY_URL=http://127.0.0.1:$port
    OCI_PROXY_HOSTPORT=127.0.0.1:$port
}

# stop_oci_registry DIR
stop_oci_registry() {
    local dir=$1 f pid
    for f in "$dir/registry.pid" "$dir/token-server.pid"; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        rm -f "$f"
        [ -n "$pid" ] && stop_pid "$pid"
    done
}

# oci_count DIR METHOD PATH
oci_count() {
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

# oci_requests DIR -> "METHOD TARGET STATUS" lines, in order
oci_requests() {
    local logf=$1/logs/access.log
    [ -f "$logf" ] || return 0
    awk '{ i = index($0, "\""); if (i == 0) next
           rest = substr($0, i + 1); j = index(rest, "\""); split(substr(rest, 1, j - 1), r, " ")
           split(substr(rest, j + 1), s, " "); print r[1], r[2], s[1] }' "$logf"
}

# oci_token_count DIR [SCOPE]
oci_token_count() {
    local logf=$1/token.log
    [ -f "$logf" ] || { echo 0; return; }
    if [ -n "${2:-}" ]; then
        "$PY" -c 'import json, sys
print(sum(1 for l in open(sys.argv[1]) if l.strip() and sys.argv[2] in json.loads(l)["scopes"]))' "$logf" "$2"
    else
        grep -c . "$logf" || true
    fi
}

# oci_token DIR REPO [ACTIONS]
oci_token() {
    local dir=$1 repo=$2 actions=${3:-pull}
    [ -f "$dir/token-url" ] || fail "oci_token: no token server for $dir (start_oci_registry $dir PORT token)"
    curl -fsS --max-time 10 -G --data-urlencode "service=$OCIFX_SERVICE" \
        --data-urlencode "scope=repository:$repo:$actions" -- "$(cat "$dir/token-url")" |
        "$PY" -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}

# ---------------------------------------------------------------------------------------------------------------
# pushing

# push_oci_images DIR REGISTRY_URL [OUT_JSON]
push_oci_images() {
    local dir=$1 url=${2%/} out=${3:-$1/pushed.json}
    [ -f "$dir/images.json" ] || fail "push_oci_images: run make_oci_images $dir first"
    local hp=${url#*://}
    hp=${hp%%/*}
    mkdir -p "$dir/logs"
    _ocifx_skopeo_conf
    local n=0 spec src dst opts
    # source tag | destination repo:tag | copy options
    for spec in "hello:1.0|larder-test/hello:1.0|--preserve-digests" \
        "hello:1.0|larder-test/hello:1.0-docker|--format v2s2" \
        "multi:2.0|larder-test/multi:2.0|--all --preserve-digests" \
        "hello:1.0|library/larder-hello:1.0|--preserve-digests"; do
        n=$((n + 1))
        IFS='|' read -r src dst opts <<<"$spec"
        # shellcheck disable=SC2086 # opts is a list of words
        skopeo_run copy --dest-tls-verify=false --authfile "$OCIFX_SKOPEO_DIR/auth.json" --retry-times 0 $opts \
            "oci:$dir/layouts/$src" "docker://$hp/$dst" >"$dir/logs/skopeo-push-$n.log" 2>&1 ||
            fail "skopeo copy oci:$dir/layouts/$src docker://$hp/$dst failed: $(tail -n 20 "$dir/logs/skopeo-push-$n.log")"
    done
    "$PY" "$OCIFX_PY" describe "$url" "$out" "$dir/images.json" larder-test/hello:1.0 larder-test/hello:1.0-docker \
        larder-test/multi:2.0 library/larder-hello:1.0 >"$dir/logs/describe.log" 2>&1 ||
        fail "push_oci_images: reading the pushed images back failed: $(tail -n 20 "$dir/logs/describe.log")"
}
