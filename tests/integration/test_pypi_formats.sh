#!/usr/bin/env bash
# test_pypi_formats.sh - the Simple API in both formats from an upstream that knows only one (PEP 503 HTML only,
# then PEP 691 JSON only): the project list and project pages converted both ways and checked against the PEPs by
# pypi_check_simple.py; one cached form per page (one upstream fetch serves both formats, and with the upstream
# gone a page fetched only as JSON is still served as HTML); PEP 691 negotiation (q-values, latest, wildcards,
# 406, Vary); a file refused under another project's URL; the real pip installing as a JSON client (pip 23) and as
# an HTML-only client (pypi_pip_accept.py) from each upstream.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pypi_fixture.sh"

IP=$(free_port)
FP=$(free_port)
LP=$(free_port)
UP=$WORK/upstream
make_pypi_index "$UP" "$FP"
M=$UP/root/manifest.json
IDX_LOG=$UP/logs/access.log
FILES_LOG=$UP/logs/files-access.log
J='application/vnd.pypi.simple.v1+json'
H1='application/vnd.pypi.simple.v1+html'
TH='text/html; charset=utf-8'
PIP_JSON='application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01'

# check_doc KIND URL ACCEPT CONTENT_TYPE [PROJECT] - GET with that Accept: the content type, then the PEP checks
n_doc=0
check_doc() {
    local kind=$1 url=$2 accept=$3 want_ct=$4 project=${5:-} out r
    n_doc=$((n_doc + 1))
    out=$WORK/doc.$n_doc
    local ct
    ct=$(curl -sS -o "$out" -w '%{content_type}' -H "Accept: $accept" -- "$url") || fail "GET $url"
    assert_eq "$want_ct" "$ct" "$kind $url as '$accept': content type"
    if r=$("$PY" "$LIB_DIR/pypi_check_simple.py" "$kind" "$out" "$M" $project 2>&1); then
        pass "$r ($url as '$accept')"
    else
        fail "$kind $url as '$accept': $r"
    fi
}

pip_install() { # pip_install TARGET LOG ACCEPT ARGS... (ACCEPT "" = pip's own header: JSON first)
    local target=$1 logf=$2 accept=$3
    shift 3
    local runner=(-m pip)
    [ -z "$accept" ] || runner=("$LIB_DIR/pypi_pip_accept.py")
    PIP_ACCEPT=$accept timeout 300 "$PY" "${runner[@]}" install --no-cache-dir --disable-pip-version-check --no-input \
        --no-build-isolation --target "$target" --index-url "$S/" "$@" >"$logf" 2>&1
}
# HTML_SET: what the HTML-only client installs. Not `top`: Debian's pip 23.0.1, reading data-core-metadata (it
# ignores core-metadata in JSON), compares the metadata's Name with the requirement's spelling unnormalized and
# rejects gamma-utils (Name: Gamma.Utils) whatever the index; pip 23.1 compares normalized names.
HTML_SET="alpha beta epsilon zeta eta theta iota kappa lambda_pkg mu_sdist"
imports_ok() { # imports_ok TARGET [MODULES]
    PYTHONPATH=$1 "$PY" -c "import ${2:-alpha, beta, gamma_utils, delta, epsilon, zeta, eta, theta, iota, kappa, lambda_pkg, mu_sdist, top}
assert epsilon.VERSION == '1.0', epsilon.VERSION   # 2.0 requires Python >= 3.99
assert zeta.VERSION == '1.0', zeta.VERSION         # 1.1 is yanked
assert beta.VERSION == '2.1', beta.VERSION"
}
pip_both() { # pip_both TAG - install top as a JSON client and as an HTML-only client
    local tag=$1 rc
    rc=0
    pip_install "$WORK/$tag-json" "$WORK/pip-$tag-json.log" "" top || rc=$?
    assert_eq 0 "$rc" "pip (JSON client) installs top, $tag: $(tail -3 "$WORK/pip-$tag-json.log" | tr '\n' ' ')"
    imports_ok "$WORK/$tag-json" || fail "$tag, JSON client: imports/versions wrong"
    grep -q "as application/vnd.pypi.simple.v1+json" <("$PY" -m pip download --no-deps --no-cache-dir \
        --disable-pip-version-check -vv -d "$WORK/dl-$tag" --index-url "$S/" delta 2>&1) ||
        fail "$tag: pip did not read a JSON page"
    rc=0
    pip_install "$WORK/$tag-html" "$WORK/pip-$tag-html.log" "text/html" $HTML_SET || rc=$?
    assert_eq 0 "$rc" "pip as an HTML-only client installs, $tag: $(tail -3 "$WORK/pip-$tag-html.log" | tr '\n' ' ')"
    imports_ok "$WORK/$tag-html" "alpha, beta, delta, epsilon, zeta, eta, theta, iota, kappa, lambda_pkg, mu_sdist" ||
        fail "$tag, HTML client: imports/versions wrong"
    grep -q "as text/html" <(PIP_ACCEPT=text/html "$PY" "$LIB_DIR/pypi_pip_accept.py" download --no-deps --no-cache-dir \
        --disable-pip-version-check -vv -d "$WORK/dlh-$tag" --index-url "$S/" delta 2>&1) ||
        fail "$tag: the HTML-only pip did not read an HTML page"
    pass "$tag: pip installs as a JSON and as an HTML client; requires-python and yanked honoured in both"
}

start_phase() { # start_phase FORMAT DATA - an upstream serving only FORMAT, a fresh Larder in front of it
    start_pypi_upstream "$UP" "$IP" "$FP" "$1"
    CFG=$WORK/larder-$1.yaml
    write_config "$CFG" "$LP" "$WORK/$2"
    cat >>"$CFG" <<EOC
pypi:
  ttl: 300s
  upstream: http://127.0.0.1:$IP/simple/
EOC
    start_larder "$CFG" "$LP"
    S=$LARDER_URL/pypi/simple
}

# ==== an HTML-only upstream ========================================================================================
start_phase html data-html
# the project list: JSON made from the upstream's HTML (it used to be the HTML labelled as JSON)
check_doc index-json "$S/" "$J" "$J"
check_doc index-json "$S/" "application/vnd.pypi.simple.latest+json" "$J"
check_doc index-html "$S/" "text/html" "$TH"
check_doc index-html "$S/" "$H1" "$H1"
assert_eq 1 "$(nginx_count "$IDX_LOG" GET /simple/)" "the project list fetched once for every format"
for p in alpha beta epsilon zeta legacy-meta mu-sdist; do
    check_doc page-json "$S/$p/" "$PIP_JSON" "$J" "$p"
    check_doc page-html "$S/$p/" "text/html" "$TH" "$p"
    check_doc page-html "$S/$p/" "application/vnd.pypi.simple.latest+html" "$H1" "$p"
    assert_eq 1 "$(nginx_count "$IDX_LOG" GET "/simple/$p/")" "$p: one upstream fetch for both formats"
done

# negotiation (PEP 691): the most specific range wins, then q; latest answers with the v1 type; 406 otherwise
assert_header "$S/alpha/" Content-Type "$J" -H 'Accept: application/*'
assert_header "$S/alpha/" Content-Type "$TH" -H 'Accept: */*'
assert_header "$S/alpha/" Content-Type "$TH"
assert_header "$S/alpha/" Content-Type "$J" -H 'Accept: */*;q=0.5, text/html;q=0'
assert_header "$S/alpha/" Content-Type "$H1" -H "Accept: $J;q=0.1, $H1;q=0.2, text/html;q=0.01"
assert_status "$S/alpha/" 406 -H 'Accept: application/json, image/*'
assert_status "$S/" 406 -H "Accept: $J;q=0"
assert_header "$S/alpha/" Vary Accept -H 'Accept: image/png'
body=$(curl -sS -H 'Accept: image/png' "$S/alpha/")
assert_contains "$body" "$J" "the 406 names the acceptable types"
for a in "$J" text/html; do
    assert_header "$S/alpha/" Vary Accept -H "Accept: $a"
    assert_header "$S/" Vary Accept -H "Accept: $a"
done
# each representation has its own validator; conditional requests and HEAD work on the rendered HTML too
ej=$(http_header "$S/alpha/" ETag -H "Accept: $J")
eh=$(http_header "$S/alpha/" ETag -H 'Accept: text/html')
assert_ne "$ej" "$eh" "JSON and HTML have different ETags"
assert_status "$S/alpha/" 304 -H 'Accept: text/html' -H "If-None-Match: $eh"
assert_status "$S/alpha/" 200 -H 'Accept: text/html' -H "If-None-Match: $ej"
hl=$(curl -sS -H 'Accept: text/html' "$S/alpha/" | wc -c)
assert_header "$S/alpha/" Content-Length "$hl" -I -H 'Accept: text/html'
assert_cache "$S/alpha/" HIT -H 'Accept: text/html'

# names (PEP 503): any spelling redirects to the normalized project page
assert_header "$S/Gamma_Utils.X--y/" Location /pypi/simple/gamma-utils-x-y/
assert_header "$S/LEGACY.meta" Location /pypi/simple/legacy-meta/
assert_header "$S" Location /pypi/simple/

# a file listed under one project is not served under another project's URL (nor fetched)
AW=http/127.0.0.1:$FP/packages/alpha/alpha-1.0-py3-none-any.whl
assert_status "$LARDER_URL/pypi/files/beta/$AW" 404
body=$(curl -sS "$LARDER_URL/pypi/files/beta/$AW")
assert_contains "$body" "not listed in the index page of 'beta'" "the refusal says why"
assert_status "$LARDER_URL/pypi/files/no-such-project/$AW" 404
assert_status "$LARDER_URL/pypi/files/beta/$AW.metadata" 404
assert_eq 0 "$(nginx_count "$FILES_LOG" GET /packages/alpha/alpha-1.0-py3-none-any.whl)" "nothing fetched for those"
assert_status "$LARDER_URL/pypi/files/Alpha/$AW" 200
assert_status "$LARDER_URL/pypi/files/beta/$AW" 404 # still refused once the file is cached

pip_both html-upstream

# the upstream gone: a page fetched only as JSON is served as HTML from that one cached form
curl -sS -o /dev/null -H "Accept: $J" "$S/badpkg/"
stop_pid "$NGINX_PID"
assert_cache "$S/badpkg/" HIT -H 'Accept: text/html'
check_doc page-html "$S/badpkg/" "text/html" "$TH" badpkg
check_doc index-html "$S/" "text/html" "$TH"
stop_larder

# ==== a JSON-only upstream =========================================================================================
: >"$IDX_LOG"
start_phase json data-json
check_doc index-html "$S/" "text/html" "$TH"
check_doc index-html "$S/" "$H1" "$H1"
check_doc index-json "$S/" "$J" "$J"
assert_eq 1 "$(nginx_count "$IDX_LOG" GET /simple/)" "the project list fetched once for every format"
for p in alpha beta epsilon zeta legacy-meta mu-sdist; do
    check_doc page-html "$S/$p/" "text/html" "$TH" "$p"
    check_doc page-json "$S/$p/" "$J" "$J" "$p"
    assert_eq 1 "$(nginx_count "$IDX_LOG" GET "/simple/$p/")" "$p: one upstream fetch for both formats"
done
pj=$(curl -sS -H "Accept: $J" "$S/alpha/")
assert_eq "1.1" "$(json_get "$pj" 'd["meta"]["api-version"]')" "a 1.1 upstream page stays 1.1 (versions, size kept)"
assert_eq "2024-01-01T00:00:00.000000Z" "$(json_get "$pj" 'd["files"][0]["upload-time"]')" "upload-time kept"

pip_both json-upstream

curl -sS -o /dev/null -H "Accept: $J" "$S/badpkg/"
stop_pid "$NGINX_PID"
assert_cache "$S/badpkg/" HIT -H 'Accept: text/html'
check_doc page-html "$S/badpkg/" "text/html" "$TH" badpkg
check_doc page-json "$S/zeta/" "$J" "$J" zeta
stop_larder

# ==== bit rot in a stored page is caught before it is converted (verify_on_read) =======================================
start_phase json data-json
ents=$(api GET "entries?protocol=pypi&limit=1000")
page_sha=$(json_get "$ents" '[e["sha256"] for e in d["entries"] if e["key"].startswith("page/alpha")][0]')
blob=$WORK/data-json/blobs/sha256/${page_sha:0:2}/$page_sha
[ -f "$blob" ] || fail "blob of the alpha page not found ($blob)"
# rendered as HTML now and kept (cache.c's rendered documents): the damage below must not be hidden by that copy
h1=$(curl -sS -H 'Accept: text/html' "$S/alpha/" | sha256sum)
assert_eq "$h1" "$(curl -sS -H 'Accept: text/html' "$S/alpha/" | sha256sum)" "the kept rendering is the same HTML"
printf 'X' | dd of="$blob" bs=1 seek=10 conv=notrunc status=none
assert_status "$S/alpha/" 502 -H 'Accept: text/html'
assert_contains "$(cat "$LARDER_LOG")" "stored blob $page_sha of pypi page/alpha/json is corrupt" "the damaged page is logged"
[ -n "$(find "$WORK/data-json/quarantine" -name "$page_sha.*" 2>/dev/null)" ] || fail "the damaged page is not in quarantine"
assert_cache "$S/alpha/" MISS -H 'Accept: text/html'
check_doc page-html "$S/alpha/" "text/html" "$TH" alpha
stop_larder

finish
