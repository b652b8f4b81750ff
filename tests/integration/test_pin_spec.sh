#!/usr/bin/env bash
# test_pin_spec.sh - GET /-/api/v1/pins/<set>/spec: a pin set (made here by seeding, then used by the real clients:
# pip, npm, skopeo for one foreign platform, git, curl) becomes a seed spec naming exact versions and digests; a
# FRESH larder with the same upstreams seeds that spec, is restarted offline, and the same client runs succeed there
# with the same bytes. Also: 404 for an unknown set, application/yaml, reads open.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pypi_fixture.sh"
. "$(dirname "$0")/npm_fixture.sh"
. "$(dirname "$0")/oci_fixture.sh"
. "$(dirname "$0")/git_fixture.sh"

LP=$(free_port)
IP=$(free_port)
FP=$(free_port)
VP=$(free_port)
OP=$(free_port)
GP=$(free_port)
NP=$(free_port)

# ---- the upstreams ----------------------------------------------------------------------------------------------------
PUP=$WORK/pypi
make_pypi_index "$PUP" "$FP"
start_pypi_upstream "$PUP" "$IP" "$FP"
FX=$WORK/npmfx
make_npm_packages "$FX"
start_verdaccio "$WORK/verdaccio" "$VP"
publish_npm_packages "$FX" "$VERDACCIO_URL"
make_npm_lockfile "$FX" "$VERDACCIO_URL"
IMG=$WORK/img
UD=$WORK/registry
make_oci_images "$IMG"
start_oci_registry "$UD" "$OP"
push_oci_images "$IMG" "$OCI_REGISTRY_URL" "$WORK/pushed.json"
MULTI=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["images"]["larder-test/multi:2.0"]["digest"])' \
    "$WORK/pushed.json")
GROOT=$WORK/git
make_git_repos "$GROOT" "http://127.0.0.1:$GP"
start_git_upstream "$GROOT" "$GP"
ORIG=$WORK/origin
make_file "$ORIG/root/rel/tool-2.0.tar.gz" 100000
TOOL_SHA=$(sha256_file "$ORIG/root/rel/tool-2.0.tar.gz")
start_nginx "$ORIG" "$NP"

larder_config() { # larder_config FILE DATA_DIR
    write_config "$1" "$LP" "$2"
    cat >>"$1" <<EOF
pypi:
  upstream: http://127.0.0.1:$IP/simple/
npm:
  upstream: $VERDACCIO_URL/
oci:
  registries:
    docker.io: $OCI_REGISTRY_URL
git:
  remotes:
    upstream.test: $GIT_UPSTREAM_URL
files:
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
EOF
}
seed() { # seed CONFIG SPEC LOG -> larder seed's exit code
    local rc=0
    (cd "$(dirname "$2")" && timeout 300 "$LARDER_BIN" seed --config "$1" "$2") >"$3" 2>&1 </dev/null || rc=$?
    return $rc
}
LH=127.0.0.1:$LP
NPMC=$WORK/npmc

# the clients a build runs; each asserts success (LABEL tells the runs apart)
run_clients() { # run_clients LABEL
    local label=$1 rc=0
    rm -rf "$WORK/pip-$label"
    timeout 300 "$PY" -m pip install --no-cache-dir --disable-pip-version-check --no-input --no-build-isolation \
        --target "$WORK/pip-$label" --index-url "$LARDER_URL/pypi/simple/" -r "$PUP/root/requirements.txt" \
        >"$WORK/pip-$label.log" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$label: pip install -r requirements.txt: $(tail -3 "$WORK/pip-$label.log" | tr '\n' ' ')"
    rc=0
    mkdir -p "$WORK/npm-$label" && cp "$FX/app-public/package.json" "$FX/app-public/package-lock.json" "$WORK/npm-$label/"
    npm_isolated "$NPMC" ci --prefix "$WORK/npm-$label" --registry "$LARDER_URL/npm/" >"$WORK/npm-$label.log" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$label: npm ci: $(tail -3 "$WORK/npm-$label.log" | tr '\n' ' ')"
    [ -f "$WORK/npm-$label/node_modules/larder-test-native/built.txt" ] || fail "$label: npm tree incomplete"
    rc=0
    skopeo_pull "$LH/larder-test/multi:2.0" "dir:$WORK/oci-$label" --override-os linux --override-arch arm64 \
        --override-variant v8 >"$WORK/skopeo-$label.log" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$label: skopeo copy multi:2.0 (linux/arm64): $(tail -2 "$WORK/skopeo-$label.log" | tr '\n' ' ')"
    oci_dir_verify "$WORK/oci-$label" >/dev/null || fail "$label: pulled blobs do not match their digests"
    rc=0
    git_client clone -q "$LARDER_URL/git/upstream.test/org/app.git" "$WORK/git-$label" >"$WORK/git-$label.log" 2>&1 ||
        rc=$?
    assert_eq 0 "$rc" "$label: git clone: $(tail -2 "$WORK/git-$label.log" | tr '\n' ' ')"
    fetch "$LARDER_URL/files/origin/rel/tool-2.0.tar.gz" "$WORK/tool-$label" >/dev/null || fail "$label: GET tool"
    assert_eq "$TOOL_SHA" "$(sha256_file "$WORK/tool-$label")" "$label: the file's bytes"
}

# ---- appliance A: a pin set made by seeding, used by the clients -------------------------------------------------------
CFGA=$WORK/a.yaml
larder_config "$CFGA" "$WORK/data-a"
start_larder "$CFGA" "$LP"
mkdir -p "$WORK/s1"
cp "$PUP/root/requirements.txt" "$WORK/s1/requirements.txt"
cp "$FX/app-public/package-lock.json" "$WORK/s1/package-lock.json"
cat >"$WORK/s1/spec.yaml" <<EOF
pin_set: build-1
pypi:
  python_versions: ["3.11"]
  requirement_files: [requirements.txt]
npm:
  lockfiles: [package-lock.json]
oci:
  platforms: [linux/arm64/v8]
  images: [larder-test/multi:2.0]
git:
  - upstream.test/org/app
files:
  - origin/rel/tool-2.0.tar.gz
EOF
rc=0
seed "$CFGA" "$WORK/s1/spec.yaml" "$WORK/seed-a.log" || rc=$?
assert_eq 0 "$rc" "seeding A: $(tail -3 "$WORK/seed-a.log" | tr '\n' ' ')"
run_clients online-a

assert_status "$LARDER_URL/-/api/v1/pins/no-such-set/spec" 404
assert_status "$LARDER_URL/-/api/v1/pins/bad%20name/spec" 400
assert_header "$LARDER_URL/-/api/v1/pins/build-1/spec" Content-Type application/yaml
# reads are open: no token
curl -fsS "$LARDER_URL/-/api/v1/pins/build-1/spec" >"$WORK/spec.yaml" || fail "GET pins/build-1/spec"
SPEC=$(cat "$WORK/spec.yaml")
assert_contains "$SPEC" 'pin_set: "build-1"' "the spec names the set"
assert_not_contains "$SPEC" "# not reproducible:" "every entry of the set is reproducible"
# exact versions and digests
assert_contains "$SPEC" "docker.io/larder-test/multi:2.0@$MULTI --index-only" "the tag with its digest"
ARM=$("$PY" -c 'import json,sys
d = json.load(open(sys.argv[1]))
print([m["digest"] for m in d["manifests"] if m["platform"]["architecture"] == "arm64"][0])' \
    "$WORK/oci-online-a/manifest.json" 2>/dev/null || true)
[ -n "$ARM" ] || ARM=sha256:$(sha256_file "$WORK/oci-online-a/manifest.json")
assert_contains "$SPEC" "docker.io/larder-test/multi@$ARM" "the arm64 manifest by digest"
ALPHA_SHA=$(sha256_file "$PUP/root/packages/alpha/alpha-1.0-py3-none-any.whl")
assert_contains "$SPEC" "alpha==1.0 --file=alpha-1.0-py3-none-any.whl --hash=sha256:$ALPHA_SHA" "pip: the exact file"
PAD_SRI=sha256-$(openssl dgst -sha256 -binary "$FX/tarballs/larder-test-left-pad-1.0.0.tgz" | base64 -w0)
assert_contains "$SPEC" "larder-test-left-pad@1.0.0 $PAD_SRI" "npm: the exact tarball"
assert_contains "$SPEC" '"upstream.test/org/app"' "git: the repository"
assert_contains "$SPEC" "{path: \"origin/rel/tool-2.0.tar.gz\", sha256: $TOOL_SHA}" "files: the path with its digest"
stop_larder

# ---- the upstream's tag moves on after the recording: the spec still gives the recorded image ---------------------------
hp=${OCI_REGISTRY_URL#*://}
skopeo_run copy --src-tls-verify=false --dest-tls-verify=false --retry-times 0 \
    "oci:$IMG/layouts/hello:1.0" "docker://$hp/larder-test/multi:2.0" >"$WORK/retag.log" 2>&1 ||
    fail "moving the upstream's multi:2.0: $(tail -3 "$WORK/retag.log")"
now=$(curl -fsS -o /dev/null -w '%header{docker-content-digest}' -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "$OCI_REGISTRY_URL/v2/larder-test/multi/manifests/2.0" 2>/dev/null || true)
assert_ne "$MULTI" "$now" "the upstream's multi:2.0 now names another image ($now)"

# ---- appliance B: fresh, seeded from the spec, then offline --------------------------------------------------------------
CFGB=$WORK/b.yaml
larder_config "$CFGB" "$WORK/data-b"
start_larder "$CFGB" "$LP"
mkdir -p "$WORK/s2" && cp "$WORK/spec.yaml" "$WORK/s2/spec.yaml"
rc=0
seed "$CFGB" "$WORK/s2/spec.yaml" "$WORK/seed-b.log" || rc=$?
assert_eq 0 "$rc" "seeding B from the spec: $(tail -3 "$WORK/seed-b.log" | tr '\n' ' ')"
# the spec of B's set is the same spec (same entries, same digests)
curl -fsS "$LARDER_URL/-/api/v1/pins/build-1/spec" >"$WORK/spec-b.yaml" || fail "GET B's spec"
assert_eq "$(grep -v '^#' "$WORK/spec.yaml")" "$(grep -v '^#' "$WORK/spec-b.yaml")" "B's pin set gives the same spec"
stop_larder
CFG_OFFLINE=true larder_config "$CFGB" "$WORK/data-b"
grep -q '^offline: true' "$CFGB" || fail "offline config"
start_larder "$CFGB" "$LP"
run_clients offline-b
assert_eq "$(cat "$WORK/oci-online-a/manifest.json" | sha256sum)" "$(cat "$WORK/oci-offline-b/manifest.json" | sha256sum)" \
    "the same image manifest offline"
assert_eq "$(git -C "$WORK/git-online-a" rev-parse HEAD)" "$(git -C "$WORK/git-offline-b" rev-parse HEAD)" \
    "the same commit offline"
stop_larder

finish
