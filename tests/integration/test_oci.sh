#!/usr/bin/env bash
# test_oci.sh - the registry mirror with skopeo against a local docker-registry holding a single-manifest image
# (OCI and Docker schema 2) and a multi-platform index: API answers and errors, Accept, Docker-Content-Digest,
# Range, ?ns=, cold/warm pulls (blobs fetched once), a docker.io mirror through registries.conf, tag revalidation
# with HEAD, pulls with the upstream stopped, a corrupted blob refused and not cached, a token-auth upstream (tokens
# cached), and seeding an image for one platform then pulling it with the upstream down.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/oci_fixture.sh"

UPP=$(free_port)
LP=$(free_port)
IMG=$WORK/images
UD=$WORK/upstream
make_oci_images "$IMG"
start_oci_registry "$UD" "$UPP"
push_oci_images "$IMG" "$OCI_REGISTRY_URL" "$WORK/pushed.json"
U=$OCI_REGISTRY_URL
UH=$OCI_REGISTRY_HOSTPORT
jq_py() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$WORK/pushed.json"; }
HELLO=$(jq_py 'd["images"]["larder-test/hello:1.0"]["digest"]')
HELLO_DOCKER=$(jq_py 'd["images"]["larder-test/hello:1.0-docker"]["digest"]')
MULTI=$(jq_py 'd["images"]["larder-test/multi:2.0"]["digest"]')
BIG=$(jq_py 'max(d["images"]["larder-test/hello:1.0"]["layers"], key=lambda l: l["size"])["digest"]')

write_larder_config() { # FILE DATA_DIR
    write_config "$1" "$LP" "$2"
    cat >>"$1" <<EOF
oci:
  ttl: 2s
  registries:
    docker.io: $U
    "$UH": $U
    registry-5000.local: $U
EOF
}
CFG=$WORK/larder.yaml
write_larder_config "$CFG" "$WORK/data"
start_larder "$CFG" "$LP"
L=$LARDER_URL
LH=127.0.0.1:$LP
MT_OCI='application/vnd.oci.image.manifest.v1+json'
MT_IDX='application/vnd.oci.image.index.v1+json'
MT_D2='application/vnd.docker.distribution.manifest.v2+json'

# ---- the API -------------------------------------------------------------------------------------------------------
assert_header "$L/v2/" Docker-Distribution-API-Version "registry/2.0"
assert_status "$L/v2/" 200
body=$(curl -sS -X PUT -d '{}' "$L/v2/larder-test/hello/manifests/9.9")
assert_contains "$body" '"UNSUPPORTED"' "push refused with UNSUPPORTED"
assert_status "$L/v2/larder-test/hello/blobs/uploads/" 405 -X POST
assert_contains "$(curl -sS "$L/v2/ghcr.io/astral-sh/uv/manifests/latest")" "oci.registries" "unknown registry named"
assert_contains "$(curl -sS "$L/v2/Bad_Name/manifests/1")" '"NAME_INVALID"' "bad name"
assert_contains "$(curl -sS "$L/v2/larder-test/hello/blobs/latest")" '"DIGEST_INVALID"' "bad digest"
A_ALL="Accept: $MT_OCI, $MT_IDX, $MT_D2"
assert_header "$L/v2/larder-test/hello/manifests/1.0" Docker-Content-Digest "$HELLO" -H "$A_ALL"
assert_header "$L/v2/larder-test/hello/manifests/1.0" Content-Type "$MT_OCI" -H "$A_ALL"
assert_eq "$HELLO" "sha256:$(curl -sS -H "$A_ALL" "$L/v2/larder-test/hello/manifests/1.0" | sha256_stdin)" \
    "manifest bytes unchanged (digest)"
assert_status "$L/v2/larder-test/hello/manifests/1.0" 404 -H "Accept: $MT_D2"
assert_contains "$(curl -sS -H "Accept: $MT_D2" "$L/v2/larder-test/hello/manifests/1.0")" MANIFEST_UNKNOWN \
    "a media type the client does not accept is never served (nor converted)"
assert_header "$L/v2/larder-test/hello/manifests/1.0-docker" Content-Type "$MT_D2" -H "Accept: $MT_D2"
assert_header "$L/v2/larder-test/hello/manifests/$HELLO" Docker-Content-Digest "$HELLO" -I -H "$A_ALL"
assert_header "$L/v2/larder-test/hello/manifests/1.0?ns=$UH" OCI-Namespace "$UH" -H "$A_ALL"
# containerd and BuildKit send ns= percent-encoded (Go's url.Values.Encode): ns=127.0.0.1%3A5000
assert_header "$L/v2/larder-test/hello/manifests/1.0?ns=${UH//:/%3A}" OCI-Namespace "$UH" -H "$A_ALL"
assert_status "$L/v2/larder-test/hello/manifests/$HELLO?ns=${UH//:/%3a}" 200 -H "$A_ALL"
assert_status "$L/v2/larder-test/hello/manifests/1.0?ns=${UH//:/%3G}" 400 -H "$A_ALL"
assert_status "$L/v2/$UH/larder-test/hello/manifests/1.0" 200 -H "$A_ALL"
# Range on a cold blob (answered while it downloads) and on a stored one
BIGFILE=$(find "$UD/storage" -path "*/blobs/sha256/*/${BIG#sha256:}/data" | sed -n 1p)
assert_eq "$(dd if="$BIGFILE" bs=1 skip=1000 count=100 2>/dev/null | od -An -tx1)" \
    "$(curl -sS -r 1000-1099 "$L/v2/larder-test/hello/blobs/$BIG" | od -An -tx1)" "Range on a cold blob"
assert_cache_soon "$L/v2/larder-test/hello/blobs/$BIG" HIT
assert_status "$L/v2/larder-test/hello/blobs/$BIG" 206 -r 0-99
assert_header "$L/v2/larder-test/hello/blobs/$BIG" Docker-Content-Digest "$BIG" -I
assert_status "$L/v2/larder-test/hello/manifests/no-such-tag" 404 -H "$A_ALL"

# ---- skopeo: cold, warm ----------------------------------------------------------------------------------------------
pull() { # pull LABEL REF DEST [ARGS...] -> asserts success
    local label=$1 ref=$2 dest=$3 rc=0
    shift 3
    skopeo_pull "$ref" "dir:$dest" "$@" >"$WORK/skopeo-$label.log" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$label: skopeo copy $ref: $(tail -2 "$WORK/skopeo-$label.log" | tr '\n' ' ')"
}
pull cold-hello "$LH/larder-test/hello:1.0" "$WORK/p1"
assert_eq "$HELLO" "$(oci_dir_digest "$WORK/p1")" "cold: the manifest digest is the upstream's"
oci_dir_verify "$WORK/p1" >/dev/null || fail "cold: blobs do not match their digests"
pull cold-multi "$LH/larder-test/multi:2.0" "$WORK/p2" --all
oci_dir_verify "$WORK/p2" >/dev/null || fail "cold --all: blobs do not match their digests"
pull cold-docker "$LH/larder-test/hello:1.0-docker" "$WORK/p3"
assert_eq "$HELLO_DOCKER" "$(oci_dir_digest "$WORK/p3")" "Docker schema 2 manifest passed through unchanged"
assert_eq 1 "$(oci_count "$UD" GET "/v2/larder-test/hello/blobs/$BIG")" "the big layer was fetched upstream once"
blob_gets=$(oci_requests "$UD" | grep -c '^GET /v2/.*/blobs/' || true)
pull warm-hello "$LH/larder-test/hello:1.0" "$WORK/p4"
pull warm-multi "$LH/larder-test/multi:2.0" "$WORK/p5" --all
assert_eq "$blob_gets" "$(oci_requests "$UD" | grep -c '^GET /v2/.*/blobs/' || true)" "warm: no blob fetched upstream"

# ---- as the docker.io mirror in registries.conf (library/ names) -----------------------------------------------------------
skopeo_registries_conf "$WORK/mirror.conf" "$LH"
pull mirror "docker.io/larder-hello:1.0" "$WORK/p6" --registries-conf "$WORK/mirror.conf"
assert_eq "$HELLO" "$(oci_dir_digest "$WORK/p6")" "docker.io/larder-hello through the mirror"
# a registry with a port (registry.invalid:5000, which does not resolve: only the mirror can answer) through an
# alias name in oci.registries: a registries.conf mirror location cannot hold a second host:port
skopeo_registries_conf "$WORK/alias.conf" "$LH/registry-5000.local" "registry.invalid:5000"
pull alias "registry.invalid:5000/larder-test/hello:1.0" "$WORK/p6b" --registries-conf "$WORK/alias.conf"
assert_eq "$HELLO" "$(oci_dir_digest "$WORK/p6b")" "a registry with a port, through its alias"

# ---- tags past their TTL are revalidated with HEAD, not GET ---------------------------------------------------------------
sleep 2.2
gets=$(oci_count "$UD" GET /v2/larder-test/hello/manifests/1.0)
heads=$(oci_count "$UD" HEAD /v2/larder-test/hello/manifests/1.0)
pull reval "$LH/larder-test/hello:1.0" "$WORK/p7"
assert_eq "$gets" "$(oci_count "$UD" GET /v2/larder-test/hello/manifests/1.0)" "revalidation: no GET of the tag"
assert_gt "$(oci_count "$UD" HEAD /v2/larder-test/hello/manifests/1.0)" "$heads" "revalidation: a HEAD of the tag"

# ---- upstream stopped ----------------------------------------------------------------------------------------------------
sleep 2.2
stop_oci_registry "$UD"
t0=$SECONDS
pull off-hello "$LH/larder-test/hello:1.0" "$WORK/p8"
pull off-multi "$LH/larder-test/multi:2.0" "$WORK/p9" --all
assert_le $((SECONDS - t0)) 10 "pulls with the upstream down answer at once"
assert_cache "$L/v2/larder-test/hello/manifests/1.0" STALE -H "$A_ALL"
stop_larder

# ---- a corrupted blob upstream: refused, not cached ---------------------------------------------------------------------------
start_oci_registry "$UD" "$UPP"
write_larder_config "$CFG" "$WORK/data-corrupt"
start_larder "$CFG" "$LP"
data=$(find "$UD/storage" -path "*/blobs/sha256/*/${BIG#sha256:}/data" | sed -n 1p)
[ -n "$data" ] || fail "the big layer's file in the registry storage was not found"
cp "$data" "$WORK/big.orig"
printf 'corrupted' | dd of="$data" bs=1 seek=1000 conv=notrunc 2>/dev/null
crc=0
got=$(curl -sS -o "$WORK/big.got" -w '%{http_code}' "$L/v2/larder-test/hello/blobs/$BIG" 2>/dev/null) || crc=$?
if [ "$got" = 200 ] && [ "$crc" = 0 ]; then fail "a blob that does not match its digest was served whole"; fi
pass "corrupted blob refused (HTTP $got, curl exit $crc)"
n1=$(oci_count "$UD" GET "/v2/larder-test/hello/blobs/$BIG")
curl -sS -o /dev/null "$L/v2/larder-test/hello/blobs/$BIG" 2>/dev/null || true
assert_eq $((n1 + 1)) "$(oci_count "$UD" GET "/v2/larder-test/hello/blobs/$BIG")" "not cached: asked upstream again"
larder_log_has 'sha256 mismatch' || fail "the log names the mismatch"
rc=0
skopeo_pull "$LH/larder-test/hello:1.0" "dir:$WORK/p10" >"$WORK/skopeo-corrupt.log" 2>&1 || rc=$?
assert_ne 0 "$rc" "skopeo does not get the corrupted image"
cp "$WORK/big.orig" "$data"
stop_larder
stop_oci_registry "$UD"

# ---- a token-auth upstream ------------------------------------------------------------------------------------------------------
start_oci_registry "$UD" "$UPP" token
assert_status "$U/v2/" 401
write_larder_config "$CFG" "$WORK/data-token"
start_larder "$CFG" "$LP"
pull token-hello "$LH/larder-test/hello:1.0" "$WORK/p11"
assert_eq "$HELLO" "$(oci_dir_digest "$WORK/p11")" "pulled through token auth"
ntok=$(oci_token_count "$UD" "repository:larder-test/hello:pull")
assert_gt "$ntok" 0 "larder asked the token server"
pull token-hello2 "$LH/larder-test/hello:1.0-docker" "$WORK/p12"
assert_eq "$ntok" "$(oci_token_count "$UD" "repository:larder-test/hello:pull")" "the token is cached until it expires"
grep -q 'Authorization' "$UD/logs/access.log" 2>/dev/null && fail "client credentials leaked into the access log"
stop_larder

# ---- seeding one platform, then pulling it with the upstream down ----------------------------------------------------------------
write_larder_config "$CFG" "$WORK/data-seed"
start_larder "$CFG" "$LP"
cat >"$WORK/seed.yaml" <<EOF
pin_set: images
oci:
  platforms: [linux/arm64/v8]
  images:
    - larder-test/multi:2.0
    - docker.io/library/larder-hello:1.0
EOF
rc=0
timeout 120 "$LARDER_BIN" seed --config "$CFG" "$WORK/seed.yaml" >"$WORK/seed.log" 2>&1 </dev/null || rc=$?
# larder-hello is linux/amd64 only: its single manifest is seeded whatever the platforms (no index to choose from)
assert_eq 0 "$rc" "larder seed: $(tail -3 "$WORK/seed.log" | tr '\n' ' ')"
cat >"$WORK/seed-bad.yaml" <<EOF
pin_set: bad
oci:
  images: [larder-test/multi:2.0]
  platforms: [windows/amd64]
EOF
rc=0
timeout 60 "$LARDER_BIN" seed --config "$CFG" "$WORK/seed-bad.yaml" >"$WORK/seed-bad.log" 2>&1 </dev/null || rc=$?
assert_ne 0 "$rc" "no manifest for the platform"
assert_contains "$(cat "$WORK/seed-bad.log")" "no manifest for the seed's platforms" "the error says why"
stop_oci_registry "$UD"
sleep 2.2
pull seeded-arm "$LH/larder-test/multi:2.0" "$WORK/p13" --override-os linux --override-arch arm64 --override-variant v8
oci_dir_verify "$WORK/p13" >/dev/null || fail "seeded arm64 pull: blobs do not match"
pull seeded-hello "$LH/larder-hello:1.0" "$WORK/p14"

finish
