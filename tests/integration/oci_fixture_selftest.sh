#!/usr/bin/env bash
# oci_fixture_selftest.sh - checks oci_fixture.sh on its own (no larder): the images are built (deterministically,
# with correct diff_ids), docker-registry starts, skopeo pushes them (OCI manifest, Docker schema 2, OCI index) and
# pulls them back with the same digests; then token auth (anonymous pull and push through our token server, curl
# with a token, a forged token refused), docker-registry as a pull-through cache of the token-auth registry, and a
# registries.conf mirror for docker.io (and for another registry with a namespaced mirror). Prints how long each
# step took. Not a test_*.sh: ctest and run-all.sh do not run it; run it by hand after changing the fixture:
#   bash tests/integration/oci_fixture_selftest.sh
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/oci_fixture.sh"

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

OCI=$WORK/oci
PULL=$WORK/pull
mkdir -p "$PULL"

# ---- images
t=$(now)
make_oci_images "$OCI"
log "make_oci_images: $(took "$t")"
I=$(cat "$OCI_IMAGES_JSON")
assert_eq manifest "$(json_get "$I" 'd["images"]["larder-test/hello:1.0"]["kind"]')" "hello is a single manifest"
assert_eq 3 "$(json_get "$I" 'len(d["images"]["larder-test/hello:1.0"]["layers"])')" "hello has 3 layers"
big=$(json_get "$I" 'max(l["size"] for l in d["images"]["larder-test/hello:1.0"]["layers"])')
assert_gt "$big" 5000000 "hello's data layer is big ($big bytes)"
assert_eq '["linux/amd64", "linux/arm64"]' "$(json_get "$I" 'sorted(d["images"]["larder-test/multi:2.0"]["manifests"])')" \
    "multi has two platforms"
assert_eq application/vnd.oci.image.index.v1+json "$(json_get "$I" 'd["images"]["larder-test/multi:2.0"]["media_type"]')" \
    "multi is an OCI index"
assert_eq 1 "$(json_get "$I" 'len(set(m["layers"][0]["digest"] for m in d["images"]["larder-test/multi:2.0"]["manifests"].values()))')" \
    "multi's platforms share their base layer"
# diff_id = sha256 of the uncompressed tar, config and manifest as the layout holds them
"$PY" - "$OCI" <<'PYEOF' || fail "images.json does not match the layouts"
import gzip, hashlib, json, os, sys
root = sys.argv[1]
d = json.load(open(os.path.join(root, "images.json")))
def blob(layout, dg):
    return open(os.path.join(layout, "blobs", "sha256", dg[7:]), "rb").read()
def check(layout, m):
    man = json.loads(blob(layout, m["digest"]))
    assert man["config"]["digest"] == m["config"]["digest"]
    cfg = json.loads(blob(layout, m["config"]["digest"]))
    assert cfg["architecture"] == m["platform"]["architecture"] and cfg["os"] == "linux"
    for l, di in zip(m["layers"], cfg["rootfs"]["diff_ids"]):
        gz = blob(layout, l["digest"])
        assert len(gz) == l["size"] and gz[:2] == b"\x1f\x8b"
        assert "sha256:" + hashlib.sha256(gzip.decompress(gz)).hexdigest() == di == l["diff_id"], l
    assert len(cfg["history"]) == len(m["layers"])
for key, img in d["images"].items():
    idx = json.load(open(os.path.join(img["layout"], "index.json")))
    assert idx["manifests"][0]["digest"] == img["digest"], key
    if img["kind"] == "index":
        for m in img["manifests"].values():
            check(img["layout"], m)
    else:
        check(img["layout"], img)
PYEOF
pass "diff_ids, sizes and digests of images.json match the layouts"
make_oci_images "$WORK/oci-again" >/dev/null
assert_eq "$(json_get "$I" 'sorted(d["blobs"])')" "$(json_get "$(cat "$WORK/oci-again/images.json")" 'sorted(d["blobs"])')" \
    "a second build gives the same digests"
OCI_IMAGES_JSON=$OCI/images.json
HELLO=$(json_get "$I" 'd["images"]["larder-test/hello:1.0"]["digest"]')
MULTI=$(json_get "$I" 'd["images"]["larder-test/multi:2.0"]["digest"]')
ARM64=$(json_get "$I" 'd["images"]["larder-test/multi:2.0"]["manifests"]["linux/arm64"]["digest"]')
BIG=$(json_get "$I" 'max(d["images"]["larder-test/hello:1.0"]["layers"], key=lambda l: l["size"])["digest"]')

# ---- registry without auth, push, pull back
RP=$(free_port)
t=$(now)
start_oci_registry "$OCI" "$RP"
log "start_oci_registry (no auth): $(took "$t")"
assert_eq '{}' "$(curl -sS "$OCI_REGISTRY_URL/v2/")" "GET /v2/ answers {}"
assert_header "$OCI_REGISTRY_URL/v2/" Docker-Distribution-Api-Version registry/2.0
n=$(oci_count "$OCI" GET /v2/larder-test/nothing/manifests/1)
assert_status "$OCI_REGISTRY_URL/v2/larder-test/nothing/manifests/1" 404
sleep 0.2
assert_eq $((n + 1)) "$(oci_count "$OCI" GET /v2/larder-test/nothing/manifests/1)" "oci_count counts one request once"
assert_contains "$(oci_requests "$OCI" | tail -n 1)" "GET /v2/larder-test/nothing/manifests/1 404" "oci_requests format"

t=$(now)
push_oci_images "$OCI" "$OCI_REGISTRY_URL"
log "push_oci_images (4 refs + pushed.json): $(took "$t")"
P=$(cat "$OCI/pushed.json")
assert_eq "$HELLO" "$(json_get "$P" 'd["images"]["larder-test/hello:1.0"]["digest"]')" "hello pushed with its digest"
assert_eq "$MULTI" "$(json_get "$P" 'd["images"]["larder-test/multi:2.0"]["digest"]')" "multi index pushed with its digest"
assert_eq "$HELLO" "$(json_get "$P" 'd["images"]["library/larder-hello:1.0"]["digest"]')" "library/larder-hello = hello"
assert_eq application/vnd.docker.distribution.manifest.v2+json \
    "$(json_get "$P" 'd["images"]["larder-test/hello:1.0-docker"]["media_type"]')" "1.0-docker is Docker schema 2"
assert_eq application/vnd.docker.container.image.v1+json \
    "$(json_get "$P" 'd["images"]["larder-test/hello:1.0-docker"]["config"]["media_type"]')" "Docker config media type"
assert_eq "$(json_get "$I" '[l["digest"] for l in d["images"]["larder-test/hello:1.0"]["layers"]]')" \
    "$(json_get "$P" '[l["digest"] for l in d["images"]["larder-test/hello:1.0-docker"]["layers"]]')" \
    "the Docker schema 2 variant has the same layers"
DOCKER=$(json_get "$P" 'd["images"]["larder-test/hello:1.0-docker"]["digest"]')
assert_ne "$HELLO" "$DOCKER" "the Docker schema 2 variant has its own manifest digest"
assert_eq "/v2/larder-test/hello/blobs/$BIG" \
    "$(json_get "$P" '[l["path"] for l in d["images"]["larder-test/hello:1.0"]["layers"] if l["digest"] == "'"$BIG"'"][0]')" \
    "blob path in pushed.json"
assert_header "$OCI_REGISTRY_URL/v2/larder-test/multi/manifests/2.0" Docker-Content-Digest "$MULTI" -I \
    -H "Accept: application/vnd.oci.image.index.v1+json"
assert_header "$OCI_REGISTRY_URL/v2/larder-test/hello/manifests/1.0" Content-Type \
    application/vnd.oci.image.manifest.v1+json -I -H "Accept: application/vnd.oci.image.manifest.v1+json"

assert_eq 0 "$(oci_count "$OCI" GET "/v2/larder-test/hello/blobs/$BIG")" "no GET of the big layer yet (pushes HEAD it)"
t=$(now)
skopeo_pull "$OCI_REGISTRY_HOSTPORT/larder-test/hello:1.0" "$PULL/hello" -q >"$WORK/skopeo-pull-hello.log" 2>&1 ||
    fail "skopeo_pull hello: $(cat "$WORK/skopeo-pull-hello.log")"
log "skopeo_pull hello:1.0 (~5 MB): $(took "$t")"
assert_eq "$HELLO 4" "$(oci_dir_verify "$PULL/hello")" "hello pulled: same manifest digest, config + 3 layers verified"
sleep 0.2
assert_eq 1 "$(oci_count "$OCI" GET "/v2/larder-test/hello/blobs/$BIG")" "one GET of the big layer"
assert_eq 2 "$(oci_count "$OCI" GET /v2/larder-test/hello/manifests/1.0)" \
    "two GETs of the manifest by tag: push_oci_images' read-back and the pull"

t=$(now)
skopeo_pull "$OCI_REGISTRY_HOSTPORT/larder-test/multi:2.0" "$PULL/multi" --all -q >"$WORK/skopeo-pull-multi.log" 2>&1 ||
    fail "skopeo_pull --all multi: $(cat "$WORK/skopeo-pull-multi.log")"
log "skopeo_pull --all multi:2.0: $(took "$t")"
assert_eq "$MULTI 6" "$(oci_dir_verify "$PULL/multi")" "multi --all: same index digest, 2 x (config + 2 layers) verified"
assert_eq 2 "$(find "$PULL/multi" -name '*.manifest.json' | wc -l)" "both platform manifests pulled"

skopeo_pull "$OCI_REGISTRY_HOSTPORT/larder-test/multi:2.0" "$PULL/multi-arm64" --override-arch arm64 -q \
    >"$WORK/skopeo-pull-arm64.log" 2>&1 || fail "skopeo_pull arm64: $(cat "$WORK/skopeo-pull-arm64.log")"
assert_eq "$ARM64 3" "$(oci_dir_verify "$PULL/multi-arm64")" "--override-arch arm64 picks the arm64 manifest"

skopeo_pull "$OCI_REGISTRY_HOSTPORT/larder-test/hello:1.0-docker" "$PULL/hello-docker" -q \
    >"$WORK/skopeo-pull-docker.log" 2>&1 || fail "skopeo_pull 1.0-docker: $(cat "$WORK/skopeo-pull-docker.log")"
assert_eq "$DOCKER 4" "$(oci_dir_verify "$PULL/hello-docker")" "Docker schema 2 variant pulled with its digest"

if skopeo_pull "$OCI_REGISTRY_HOSTPORT/larder-test/nothing:1" "$PULL/nothing" -q >"$WORK/skopeo-pull-nothing.log" 2>&1; then
    fail "skopeo_pull of a missing image succeeded"
fi
assert_contains "$(cat "$WORK/skopeo-pull-nothing.log")" "manifest unknown" "a missing image: skopeo fails with manifest unknown"

# ---- the same storage behind token auth
stop_oci_registry "$OCI"
RP2=$(free_port)
t=$(now)
start_oci_registry "$OCI" "$RP2" token
log "start_oci_registry (token auth, token server on ${OCI_TOKEN_URL#http://}): $(took "$t")"
assert_status "$OCI_REGISTRY_URL/v2/" 401
assert_eq "Bearer realm=\"$OCI_TOKEN_URL\",service=\"larder-test-registry\"" \
    "$(http_header "$OCI_REGISTRY_URL/v2/" WWW-Authenticate)" "the Bearer challenge"
assert_eq "Bearer realm=\"$OCI_TOKEN_URL\",service=\"larder-test-registry\",scope=\"repository:larder-test/hello:pull\"" \
    "$(http_header "$OCI_REGISTRY_URL/v2/larder-test/hello/manifests/1.0" WWW-Authenticate)" "the challenge names the scope"
assert_eq 0 "$(oci_token_count "$OCI")" "no token requests yet"

t=$(now)
skopeo_pull "$OCI_REGISTRY_HOSTPORT/larder-test/hello:1.0" "$PULL/hello-token" -q >"$WORK/skopeo-pull-token.log" 2>&1 ||
    fail "skopeo_pull through token auth: $(cat "$WORK/skopeo-pull-token.log")"
log "skopeo_pull hello:1.0 with token auth: $(took "$t")"
assert_eq "$HELLO 4" "$(oci_dir_verify "$PULL/hello-token")" "anonymous pull through token auth: same digest"
assert_eq 1 "$(oci_token_count "$OCI" repository:larder-test/hello:pull)" "skopeo asked for one pull token"
assert_contains "$(tail -n 1 "$OCI/token.log")" '"target": "/token?scope=repository%3Alarder-test%2Fhello%3Apull&service=larder-test-registry"' \
    "token.log has the request target"

TOK=$(oci_token "$OCI" larder-test/hello)
assert_status "$OCI_REGISTRY_URL/v2/larder-test/hello/manifests/1.0" 200 -H "Authorization: Bearer $TOK" \
    -H "Accept: application/vnd.oci.image.manifest.v1+json"
assert_status "$OCI_REGISTRY_URL/v2/larder-test/multi/manifests/2.0" 401 -H "Authorization: Bearer $TOK"
assert_status "$OCI_REGISTRY_URL/v2/larder-test/hello/manifests/1.0" 401 -H "Authorization: Bearer ${TOK%?????}AAAAA"
# the openssl signer (used when python3-cryptography is missing) makes tokens the registry accepts too
OP=$(free_port)
"$PY" "$OCIFX_PY" token-server --port "$OP" --key "$OCI/token.key" --cert "$OCI/token.crt" --log "$WORK/token2.log" \
    --signer openssl 2>"$WORK/token2.stderr.log" &
T2=$!
track_pid "$T2"
wait_for "second token server" 10 port_open "$OP" || fail "token-server --signer openssl did not start"
assert_contains "$(cat "$WORK/token2.stderr.log")" "signing with openssl" "second token server signs with openssl"
TOK2=$(curl -fsS "http://127.0.0.1:$OP/token?service=larder-test-registry&scope=repository:larder-test/multi:pull" |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["token"])')
assert_status "$OCI_REGISTRY_URL/v2/larder-test/multi/manifests/2.0" 200 -H "Authorization: Bearer $TOK2" \
    -H "Accept: application/vnd.oci.image.index.v1+json"
stop_pid "$T2"

# anonymous push through token auth (the token server grants push to anyone)
skopeo_run copy -q --dest-tls-verify=false --authfile "$OCIFX_SKOPEO_DIR/auth.json" --preserve-digests \
    "oci:$OCI/layouts/hello:1.0" "docker://$OCI_REGISTRY_HOSTPORT/larder-test/pushed-with-token:1" \
    >"$WORK/skopeo-push-token.log" 2>&1 || fail "push through token auth: $(cat "$WORK/skopeo-push-token.log")"
# (a second token request usually adds repository:larder-test/hello:pull: skopeo's blob info cache knows the blobs
# are in larder-test/hello and tries a cross-repository mount)
assert_le 1 "$(oci_token_count "$OCI" repository:larder-test/pushed-with-token:pull,push)" "pull,push tokens for the push"

# ---- docker-registry as a pull-through cache of the token-auth registry
PX=$WORK/oci-proxy
PP=$(free_port)
t=$(now)
start_oci_proxy_registry "$PX" "$PP" "$OCI_REGISTRY_URL"
log "start_oci_proxy_registry: $(took "$t")"
AMD_LAYER=$(json_get "$I" 'd["images"]["larder-test/multi:2.0"]["manifests"]["linux/amd64"]["layers"][1]["digest"]')
up0=$(oci_count "$OCI" GET "/v2/larder-test/multi/blobs/$AMD_LAYER")
t=$(now)
skopeo_pull "$OCI_PROXY_HOSTPORT/larder-test/multi:2.0" "$PULL/multi-proxy" --all -q >"$WORK/skopeo-pull-proxy.log" 2>&1 ||
    fail "skopeo_pull --all through the proxy registry: $(cat "$WORK/skopeo-pull-proxy.log")"
log "skopeo_pull --all multi:2.0 through the proxy registry, cold: $(took "$t")"
assert_eq "$MULTI 6" "$(oci_dir_verify "$PULL/multi-proxy")" "multi through the proxy registry: same digests"
sleep 0.5 # the proxy's second (background) GET of each blob
up=$(oci_count "$OCI" GET "/v2/larder-test/multi/blobs/$AMD_LAYER")
assert_le 1 $((up - up0)) "the proxy fetched the amd64 layer upstream ($((up - up0)) GETs for one client GET)"
assert_eq 1 "$(oci_count "$PX" GET "/v2/larder-test/multi/blobs/$AMD_LAYER")" "the client GET the layer from the proxy once"
t=$(now)
skopeo_pull "$OCI_PROXY_HOSTPORT/larder-test/multi:2.0" "$PULL/multi-proxy2" --all -q >"$WORK/skopeo-pull-proxy2.log" 2>&1 ||
    fail "second pull through the proxy registry: $(cat "$WORK/skopeo-pull-proxy2.log")"
log "skopeo_pull --all multi:2.0 through the proxy registry, warm: $(took "$t")"
assert_eq "$MULTI 6" "$(oci_dir_verify "$PULL/multi-proxy2")" "warm pull through the proxy registry: same digests"
sleep 0.2
assert_eq "$up" "$(oci_count "$OCI" GET "/v2/larder-test/multi/blobs/$AMD_LAYER")" "warm: the layer came from the proxy's storage"
if skopeo_run copy -q --dest-tls-verify=false --authfile "$OCIFX_SKOPEO_DIR/auth.json" "oci:$OCI/layouts/hello:1.0" \
    "docker://$OCI_PROXY_HOSTPORT/larder-test/proxy-push:1" >"$WORK/skopeo-push-proxy.log" 2>&1; then
    fail "a push to the proxy registry succeeded"
fi
pass "the proxy registry refuses pushes"

# ---- registries.conf: docker.io (and another registry, with a namespaced mirror) mirrored by the local registry
CONF=$WORK/mirror/registries.conf
skopeo_registries_conf "$CONF" "$OCI_REGISTRY_HOSTPORT"
t=$(now)
skopeo_pull docker.io/larder-test/hello:1.0 "$PULL/mirror-hello" --registries-conf "$CONF" -q \
    >"$WORK/skopeo-pull-mirror.log" 2>&1 || fail "pull of docker.io/larder-test/hello:1.0 through the mirror: $(cat "$WORK/skopeo-pull-mirror.log")"
log "skopeo_pull docker.io/larder-test/hello:1.0 via the mirror: $(took "$t")"
assert_eq "$HELLO 4" "$(oci_dir_verify "$PULL/mirror-hello")" "docker.io/larder-test/hello:1.0 came from the mirror"
n=$(oci_count "$OCI" GET /v2/library/larder-hello/manifests/1.0)
skopeo_pull docker.io/larder-hello:1.0 "$PULL/mirror-library" --registries-conf "$CONF" -q \
    >"$WORK/skopeo-pull-mirror2.log" 2>&1 || fail "pull of docker.io/larder-hello:1.0 through the mirror: $(cat "$WORK/skopeo-pull-mirror2.log")"
assert_eq "$HELLO 4" "$(oci_dir_verify "$PULL/mirror-library")" "docker.io/larder-hello:1.0 came from the mirror"
sleep 0.2
assert_eq $((n + 1)) "$(oci_count "$OCI" GET /v2/library/larder-hello/manifests/1.0)" \
    "docker.io/larder-hello asks the mirror for library/larder-hello"
SKOPEO_REGISTRIES_CONF=$CONF skopeo_pull docker.io/library/larder-hello:1.0 "$PULL/mirror-library2" -q \
    >"$WORK/skopeo-pull-mirror3.log" 2>&1 || fail "SKOPEO_REGISTRIES_CONF: $(cat "$WORK/skopeo-pull-mirror3.log")"
pass "SKOPEO_REGISTRIES_CONF selects the registries.conf"
t=$(now)
if skopeo_pull docker.io/library/larder-nothing:1 "$PULL/mirror-nothing" --registries-conf "$CONF" -q \
    >"$WORK/skopeo-pull-mirror-missing.log" 2>&1; then
    fail "a pull of an image the mirror does not have succeeded"
fi
log "failed pull through the mirror (falls back to docker.io, unreachable here): $(took "$t")"
assert_contains "$(cat "$WORK/skopeo-pull-mirror-missing.log")" "Mirrors also failed" "skopeo reports the mirror failure"
CONF2=$WORK/mirror/registries-ns.conf
skopeo_registries_conf "$CONF2" "$OCI_REGISTRY_HOSTPORT/larder-test" registry.larder-test.invalid
skopeo_pull registry.larder-test.invalid/multi:2.0 "$PULL/mirror-ns" --all --registries-conf="$CONF2" -q \
    >"$WORK/skopeo-pull-mirror-ns.log" 2>&1 || fail "namespaced mirror: $(cat "$WORK/skopeo-pull-mirror-ns.log")"
assert_eq "$MULTI 6" "$(oci_dir_verify "$PULL/mirror-ns")" "registry.larder-test.invalid/multi:2.0 came from HOST/larder-test/multi"

finish
