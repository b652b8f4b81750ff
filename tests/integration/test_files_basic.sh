#!/usr/bin/env bash
# test_files_basic.sh - the files protocol end to end against a real nginx upstream:
# pins, mirrors, /files/sha256/<hex>, HEAD, Range, conditional GET, traversal, unknown names, no open proxy,
# MISS then HIT, upstream 404, a pyenv python-build consumer and a nodeenv-style mirror consumer.
. "$(dirname "$0")/lib.sh"

NP=$(free_port)
LP=$(free_port)
DEAD=$(free_port) # nothing listens here
ORIG=$WORK/origin
R=$ORIG/root

# ---- upstream content -----------------------------------------------------------------------------------------
make_file "$R/pub/tool-1.0.tar.gz" 300000
make_file "$R/pub/data.bin" 150000
printf 'hello from the origin\n' >"$R/pub/readme.txt"
printf 'TOP SECRET: outside every mirror prefix\n' >"$R/secret.txt"
mkdir -p "$R/pub/sub"
printf 'nested\n' >"$R/pub/sub/nested.txt"

# a python.org-style source tarball (a real tar.xz with one top directory)
mkdir -p "$WORK/src/Python-3.11.7"
printf 'print("hi")\n' >"$WORK/src/Python-3.11.7/hello.py"
head -c 50000 /dev/urandom >"$WORK/src/Python-3.11.7/blob.bin"
mkdir -p "$R/ftp/python/3.11.7"
tar -C "$WORK/src" -cJf "$R/ftp/python/3.11.7/Python-3.11.7.tar.xz" Python-3.11.7
PY_SHA=$(sha256_file "$R/ftp/python/3.11.7/Python-3.11.7.tar.xz")

# a nodejs.org/dist-style release directory
NODE_V=20.11.1
NODE_DIR=node-v$NODE_V-linux-x64
mkdir -p "$WORK/src/$NODE_DIR/bin" "$R/dist/v$NODE_V"
printf '#!/bin/sh\necho v%s\n' "$NODE_V" >"$WORK/src/$NODE_DIR/bin/node"
chmod 755 "$WORK/src/$NODE_DIR/bin/node"
tar -C "$WORK/src" -czf "$R/dist/v$NODE_V/$NODE_DIR.tar.gz" "$NODE_DIR"
make_file "$R/dist/v$NODE_V/node-v$NODE_V-linux-arm64.tar.gz" 1000
(cd "$R/dist/v$NODE_V" && sha256sum node-v*.tar.gz >SHASUMS256.txt)

TOOL_SHA=$(sha256_file "$R/pub/tool-1.0.tar.gz")
TOOL_SIZE=$(file_size "$R/pub/tool-1.0.tar.gz")

start_nginx "$ORIG" "$NP"
ALOG=$ORIG/logs/access.log
U=http://127.0.0.1:$NP

# ---- larder -----------------------------------------------------------------------------------------------------
CFG=$WORK/larder.yaml
write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  pins:
    - name: tool
      url: $U/pub/tool-1.0.tar.gz
      sha256: $TOOL_SHA
    - name: readme
      url: $U/pub/readme.txt
    - name: python-3.11.7
      url: $U/ftp/python/3.11.7/Python-3.11.7.tar.xz
      sha256: $PY_SHA
    - name: gone
      url: $U/pub/does-not-exist.bin
  mirrors:
    - name: pub
      url: $U/pub/
    - name: nodejs
      url: $U/dist/
EOF
start_larder "$CFG" "$LP"
L=$LARDER_URL/files

# ---- pin: MISS then HIT, bytes, validators ------------------------------------------------------------------------
out=$(fetch "$L/tool" "$WORK/tool.1") || fail "GET /files/tool: curl failed"
assert_eq "200 MISS" "$out" "first GET of a pin"
assert_eq "$TOOL_SHA" "$(sha256_file "$WORK/tool.1")" "pin bytes (MISS)"
out=$(fetch "$L/tool" "$WORK/tool.2") || fail "GET /files/tool (2nd): curl failed"
assert_eq "200 HIT" "$out" "second GET of a pin"
assert_eq "$TOOL_SHA" "$(sha256_file "$WORK/tool.2")" "pin bytes (HIT)"
assert_eq 1 "$(nginx_count "$ALOG" GET /pub/tool-1.0.tar.gz)" "upstream GETs for a pin fetched twice"
assert_header "$L/tool" ETag "\"$TOOL_SHA\""
assert_header "$L/tool" Accept-Ranges bytes
assert_header "$L/tool" Content-Length "$TOOL_SIZE"
LASTMOD=$(http_header "$L/tool" Last-Modified)
assert_ne "" "$LASTMOD" "Last-Modified on a cached pin"

# ---- HEAD -------------------------------------------------------------------------------------------------------------
hdrs=$(curl -sS -I --max-time 10 "$L/tool" | tr -d '\r')
assert_match "$hdrs" '^HTTP/[0-9.]+ 200' "HEAD status"
assert_match "$hdrs" "^[Cc]ontent-[Ll]ength: $TOOL_SIZE\$" "HEAD Content-Length"
assert_match "$hdrs" '^[Xx]-[Ll]arder-[Cc]ache: HIT$' "HEAD X-Larder-Cache"
assert_eq 0 "$(curl -sS -I -o /dev/null -w '%{size_download}' --max-time 10 "$L/tool")" "HEAD has no body"

# ---- Range --------------------------------------------------------------------------------------------------------
code=$(curl -sS -o "$WORK/range.1" -w '%{http_code}' -H 'Range: bytes=0-99' "$L/tool")
assert_eq 206 "$code" "Range bytes=0-99 status"
assert_eq "$(head -c 100 "$R/pub/tool-1.0.tar.gz" | sha256_stdin)" "$(sha256_file "$WORK/range.1")" "Range 0-99 bytes"
assert_header "$L/tool" Content-Range "bytes 0-99/$TOOL_SIZE" -H 'Range: bytes=0-99'
code=$(curl -sS -o "$WORK/range.2" -w '%{http_code}' -H 'Range: bytes=1000-1999' "$L/tool")
assert_eq 206 "$code" "Range bytes=1000-1999 status"
assert_eq "$(dd if="$R/pub/tool-1.0.tar.gz" iflag=skip_bytes,count_bytes skip=1000 count=1000 status=none | sha256_stdin)" "$(sha256_file "$WORK/range.2")" "Range middle bytes"
code=$(curl -sS -o "$WORK/range.3" -w '%{http_code}' -H 'Range: bytes=-10' "$L/tool")
assert_eq 206 "$code" "suffix Range status"
assert_eq "$(tail -c 10 "$R/pub/tool-1.0.tar.gz" | sha256_stdin)" "$(sha256_file "$WORK/range.3")" "suffix Range bytes"
code=$(curl -sS -o "$WORK/range.4" -w '%{http_code}' -H "Range: bytes=$((TOOL_SIZE - 5))-" "$L/tool")
assert_eq 206 "$code" "open-ended Range status"
assert_eq 5 "$(file_size "$WORK/range.4")" "open-ended Range length"
assert_status "$L/tool" 416 -H "Range: bytes=$TOOL_SIZE-"
assert_status "$L/tool" 416 -H "Range: bytes=$((TOOL_SIZE + 100))-$((TOOL_SIZE + 200))"

# ---- conditional GET ------------------------------------------------------------------------------------------------
assert_status "$L/tool" 304 -H "If-None-Match: \"$TOOL_SHA\""
assert_status "$L/tool" 304 -H "If-None-Match: \"0000\", \"$TOOL_SHA\""
assert_status "$L/tool" 200 -H 'If-None-Match: "not-the-etag"'
assert_status "$L/tool" 304 -H "If-Modified-Since: $LASTMOD"
assert_status "$L/tool" 200 -H 'If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT'

# ---- /files/sha256/<hex> ----------------------------------------------------------------------------------------------
out=$(fetch "$L/sha256/$TOOL_SHA" "$WORK/bysha") || fail "GET /files/sha256/<hex>: curl failed"
assert_contains "$out" "200 " "GET by digest status"
assert_eq "$TOOL_SHA" "$(sha256_file "$WORK/bysha")" "bytes by digest"
assert_header "$L/sha256/$TOOL_SHA" ETag "\"$TOOL_SHA\""
assert_status "$L/sha256/$(printf 'x%.0s' 1 | sha256_stdin)" 404
UPPER=$(printf '%s' "$TOOL_SHA" | tr a-f A-F)
code=$(http_status "$L/sha256/$UPPER")
case "$code" in 200 | 400 | 404) pass "upper-case digest -> $code" ;; *) fail "upper-case digest: unexpected $code" ;; esac
code=$(http_status "$L/sha256/zz$(printf '%s' "$TOOL_SHA" | cut -c3-)")
case "$code" in 400 | 404) pass "non-hex digest -> $code" ;; *) fail "non-hex digest: expected 400/404, got $code" ;; esac
assert_status "$L/sha256/abc" 404

# ---- mirror ------------------------------------------------------------------------------------------------------------
out=$(fetch "$L/pub/data.bin" "$WORK/data.1") || fail "GET mirror path: curl failed"
assert_eq "200 MISS" "$out" "first GET through a mirror"
assert_eq "$(sha256_file "$R/pub/data.bin")" "$(sha256_file "$WORK/data.1")" "mirror bytes"
out=$(fetch "$L/pub/data.bin" "$WORK/data.2") || fail "GET mirror path (2nd): curl failed"
assert_eq "200 HIT" "$out" "second GET through a mirror"
assert_eq 1 "$(nginx_count "$ALOG" GET /pub/data.bin)" "upstream GETs for a mirrored file fetched twice"
out=$(fetch "$L/pub/sub/nested.txt" "$WORK/nested") || fail "GET nested mirror path: curl failed"
assert_eq "200 MISS" "$out" "nested mirror path"
assert_eq "nested" "$(cat "$WORK/nested")" "nested mirror bytes"
# a pin without sha256 and a query string (not part of the identity)
out=$(fetch "$L/readme" "$WORK/readme") || fail "GET /files/readme failed"
assert_eq "200 MISS" "$out" "pin without digest"
assert_eq "hello from the origin" "$(cat "$WORK/readme")" "pin without digest: bytes"
out=$(fetch "$L/readme?x=1" "$WORK/readme.q") || fail "GET /files/readme?x=1 failed"
assert_eq "200 HIT" "$out" "query string ignored"

# ---- traversal and malformed paths -------------------------------------------------------------------------------------
for p in \
    'pub/../secret.txt' \
    'pub/sub/../../secret.txt' \
    'pub/%2e%2e/secret.txt' \
    'pub/%2E%2E/secret.txt' \
    'pub/.%2e/secret.txt' \
    'pub/..%2fsecret.txt' \
    'pub/..%2Fsecret.txt' \
    'pub/sub%2f..%2f..%2fsecret.txt' \
    'pub/..\secret.txt' \
    'pub/..%5csecret.txt' \
    'pub/%5c..%5csecret.txt' \
    'pub/readme.txt%00.bin' \
    'pub/./readme.txt' \
    'pub/%252e%252e/secret.txt' \
    '../secret.txt' \
    '%2e%2e/secret.txt'; do
    assert_status "$L/$p" 400 --path-as-is
done
assert_eq 0 "$(nginx_count "$ALOG" GET /secret.txt)" "upstream never asked for a file outside the mirror prefix"
assert_eq 0 "$(grep -c 'secret' "$ALOG" || true)" "no traversal attempt reached the upstream"

# ---- unknown names ------------------------------------------------------------------------------------------------------
assert_status "$L/nope" 404
assert_status "$L/nomirror/x.bin" 404
assert_status "$L/" 404
out=$(fetch "$L/nope" "$WORK/nope.body") || true
assert_match "$(cat "$WORK/nope.body")" 'nope' "404 body names the unknown pin"

# ---- not an open proxy --------------------------------------------------------------------------------------------------
code=$(curl -sS -o "$WORK/proxy.body" -w '%{http_code}' --max-time 10 --proxy "http://127.0.0.1:$LP" "$U/secret.txt" 2>/dev/null || true)
assert_ne 200 "$code" "absolute-form request through larder as a proxy"
assert_not_contains "$(cat "$WORK/proxy.body" 2>/dev/null)" "TOP SECRET" "proxy request body"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --proxy "http://127.0.0.1:$LP" "http://127.0.0.1:$NP/pub/readme.txt" 2>/dev/null || true)
assert_ne 200 "$code" "absolute-form request for a URL that a mirror covers"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --proxytunnel --proxy "http://127.0.0.1:$LP" "$U/secret.txt" 2>/dev/null || true)
assert_ne 200 "$code" "CONNECT through larder"
for p in "http://127.0.0.1:$NP/secret.txt" "http:/127.0.0.1:$NP/secret.txt" "pub/http://127.0.0.1:$NP/secret.txt" "127.0.0.1:$NP/secret.txt"; do
    code=$(http_status "$L/$p" --path-as-is)
    case "$code" in 400 | 404) pass "/files/$p -> $code" ;; *) fail "/files/$p: expected 400/404, got $code" ;; esac
done
code=$(http_status "$LARDER_URL/secret.txt" -H "Host: 127.0.0.1:$NP")
assert_ne 200 "$code" "foreign Host header"
assert_eq 0 "$(nginx_count "$ALOG" GET /secret.txt)" "upstream never asked for /secret.txt"

# ---- upstream 404 -------------------------------------------------------------------------------------------------------
assert_status "$L/pub/missing.bin" 404
out=$(fetch "$L/pub/missing.bin" /dev/null) || true
assert_not_contains "$out" "HIT" "upstream 404 not served from cache"
assert_eq 2 "$(nginx_count "$ALOG" GET /pub/missing.bin)" "upstream 404 is not cached (two requests, two upstream GETs)"
assert_status "$L/gone" 404

# ---- pyenv python-build consumer: PYTHON_BUILD_MIRROR_URL=.../files/sha256 ---------------------------------------------
PYMIRROR=$LARDER_URL/files/sha256
# never fetched yet: the pin with that sha256 answers /files/sha256/<hex> (fetched through it, verified)
out=$(fetch "$PYMIRROR/$PY_SHA" "$WORK/py.tar.xz") || fail "GET /files/sha256/<python sha256> failed"
assert_eq "200 MISS" "$out" "python tarball by its sha256 name, fetched through the pin that has that sha256"
assert_eq "$PY_SHA" "$(sha256_file "$WORK/py.tar.xz")" "python tarball bytes"
assert_eq "200 HIT" "$(fetch "$L/python-3.11.7" "$WORK/py2.tar.xz")" "the pin's entry is the one the digest request filled"
PB=$(command -v python-build || true)
[ -n "$PB" ] || PB=$(ls "${PYENV_ROOT:-$HOME/.pyenv}/plugins/python-build/bin/python-build" 2>/dev/null || true)
if [ -n "$PB" ] && [ -x "$PB" ]; then
    # a real python-build run with a definition whose own URL is dead: it can only succeed through the mirror
    mkdir -p "$WORK/pb/tmp"
    cat >"$WORK/pb/larder-3.11.7" <<EOF
build_package_larder_check() {
    test -f hello.py && test -f blob.bin
    mkdir -p "\$PREFIX_PATH"
    cp hello.py "\$PREFIX_PATH/hello.py"
}
install_package "Python-3.11.7" "http://127.0.0.1:$DEAD/ftp/python/3.11.7/Python-3.11.7.tar.xz#$PY_SHA" larder_check
EOF
    if PYTHON_BUILD_MIRROR_URL=$PYMIRROR TMPDIR=$WORK/pb/tmp PYTHON_BUILD_CURL_OPTS="--max-time 30" \
        "$PB" "$WORK/pb/larder-3.11.7" "$WORK/pb/prefix" >"$WORK/pb/python-build.log" 2>&1; then
        pass "python-build via PYTHON_BUILD_MIRROR_URL"
    else
        cat "$WORK"/pb/tmp/python-build.*.log >>"$WORK/pb/python-build.log" 2>/dev/null || true
        fail "python-build with PYTHON_BUILD_MIRROR_URL=$PYMIRROR failed: $(tail -20 "$WORK/pb/python-build.log")"
    fi
    assert_eq 'print("hi")' "$(cat "$WORK/pb/prefix/hello.py")" "python-build unpacked the mirrored tarball"
else
    skip "python-build not found: emulating its requests with curl"
fi
# python-build's own requests, exactly: `curl -qsILf URL` (HEAD) then `curl -q -o FILE -sSLf URL`
curl -qsILf "$PYMIRROR/$PY_SHA" >/dev/null || fail "python-build-style HEAD $PYMIRROR/$PY_SHA failed"
pass "python-build-style HEAD"
curl -q -o "$WORK/Python-3.11.7.tar.xz" -sSLf "$PYMIRROR/$PY_SHA" || fail "python-build-style GET failed"
assert_eq "$PY_SHA" "$(sha256_file "$WORK/Python-3.11.7.tar.xz")" "python tarball by digest"
tar -tJf "$WORK/Python-3.11.7.tar.xz" | grep '^Python-3.11.7/hello.py$' >/dev/null || fail "tarball by digest does not unpack"
pass "tarball by digest unpacks"
assert_eq 1 "$(nginx_count "$ALOG" GET /ftp/python/3.11.7/Python-3.11.7.tar.xz)" "python tarball fetched upstream once"

# ---- nodeenv-style mirror: nodeenv --mirror=http://larder/files/nodejs ------------------------------------------------
# nodeenv (1.x) downloads <mirror>/v<ver>/node-v<ver>-linux-x64.tar.gz and checks it against <mirror>/v<ver>/SHASUMS256.txt
NODE_MIRROR=$LARDER_URL/files/nodejs
mkdir -p "$WORK/nodeenv"
curl -sSf -A 'nodeenv' -o "$WORK/nodeenv/SHASUMS256.txt" "$NODE_MIRROR/v$NODE_V/SHASUMS256.txt" || fail "GET SHASUMS256.txt through the nodejs mirror"
curl -sSf -A 'nodeenv' -o "$WORK/nodeenv/$NODE_DIR.tar.gz" "$NODE_MIRROR/v$NODE_V/$NODE_DIR.tar.gz" || fail "GET node tarball through the nodejs mirror"
(cd "$WORK/nodeenv" && grep " $NODE_DIR.tar.gz\$" SHASUMS256.txt | sha256sum -c --quiet -) || fail "node tarball does not match SHASUMS256.txt"
pass "node tarball matches SHASUMS256.txt"
tar -C "$WORK/nodeenv" -xzf "$WORK/nodeenv/$NODE_DIR.tar.gz"
assert_eq "v$NODE_V" "$("$WORK/nodeenv/$NODE_DIR/bin/node" --version)" "node from the mirrored tarball runs"
assert_cache "$NODE_MIRROR/v$NODE_V/$NODE_DIR.tar.gz" HIT
assert_cache "$NODE_MIRROR/v$NODE_V/SHASUMS256.txt" HIT
assert_eq 1 "$(nginx_count "$ALOG" GET "/dist/v$NODE_V/$NODE_DIR.tar.gz")" "node tarball fetched upstream once"

# ---- every response carries X-Larder-Cache, and the request log has one line per request -------------------------------
for u in "$L/tool" "$L/nope" "$L/pub/..%2fsecret.txt" "$L/pub/missing.bin"; do
    v=$(http_header "$u" X-Larder-Cache --path-as-is)
    assert_match "$v" '^(HIT|MISS|STALE|REVALIDATED|EXPIRED|BYPASS)$' "X-Larder-Cache on $u"
done
assert_match "$(cat "$LARDER_LOG")" 'files GET /files/tool 200 (HIT|MISS)' "request log line for /files/tool"
assert_match "$(cat "$LARDER_LOG")" 'files GET /files/pub/data.bin 200 MISS .*bytes=150000' "request log line with bytes"

# ---- metrics and admin API -----------------------------------------------------------------------------------------------
assert_gt "$(metric larder_cache_hits_total 'protocol="files"')" 0 "hits metric"
assert_gt "$(metric larder_cache_misses_total 'protocol="files"')" 0 "misses metric"
assert_gt "$(metric larder_bytes_served_total)" 0 "bytes served metric"
assert_gt "$(metric larder_bytes_upstream_total)" 0 "bytes upstream metric"
entries=$(api GET 'entries?protocol=files')
assert_eq 200 "$(api_status)" "GET entries"
assert_contains "$entries" "$U/pub/tool-1.0.tar.gz" "entries lists the pinned URL"
assert_contains "$entries" "$TOOL_SHA" "entries lists the digest"
api GET stats >/dev/null
assert_eq 200 "$(api_status)" "GET stats"

stop_larder
finish
