#!/usr/bin/env bash
# test_npm_stream.sh - streaming packuments: a ~30 MB packument (bench/make_huge_packument.py plus one real,
# installable version) on a real verdaccio behind an nginx that throttles it (limit_rate), asked for in both forms
# at once: the upstream gets ONE GET, a client has its first bytes while the upstream response is still being sent
# (nginx logs a request when it ends: no log line yet), both forms match the upstream document (tarball URLs
# rewritten, the abbreviated fields and `modified`), and the real npm and yarn 1 install the package through Larder.
# A malformed upstream document fails the fetch with a log line, is never stored and is never a short success.
# ctest-timeout: 300
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/npm_fixture.sh"

VP=$(free_port)
NGP=$(free_port)
LP=$(free_port)
UPD=$WORK/verdaccio
NPMC=$WORK/npmc
YARN=$REPO/tests/tools/node_modules/.bin/yarn
[ -x "$YARN" ] || fail "yarn 1 not installed ($YARN): run make test-tools"
start_verdaccio "$UPD" "$VP"

# ---- the upstream: huge-pkg (~30 MB packument, one real version 99.0.0) ----------------------------------------------
mkdir -p "$UPD/storage/huge-pkg"
"$PY" "$REPO/bench/make_huge_packument.py" huge-pkg "${HUGE_VERSIONS:-3000}" "$VERDACCIO_URL" "$WORK/huge.json"
"$PY" - "$WORK/huge.json" "$UPD/storage/huge-pkg" "$VERDACCIO_URL" <<'EOF'
import base64, hashlib, io, json, sys, tarfile
src, dest, url = sys.argv[1:4]
meta = {"name": "huge-pkg", "version": "99.0.0", "main": "index.js", "license": "MIT",
        "scripts": {"postinstall": "node -e \"require('fs').writeFileSync('built.txt','ok')\""}}
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    for name, data in (("package/package.json", json.dumps(meta).encode()),
                       ("package/index.js", b"module.exports = 'huge-pkg 99';\n")):
        ti = tarfile.TarInfo(name)
        ti.size, ti.mtime, ti.mode = len(data), 1577836800, 0o644
        t.addfile(ti, io.BytesIO(data))
tgz = buf.getvalue()
open(f"{dest}/huge-pkg-99.0.0.tgz", "wb").write(tgz)
doc = json.load(open(src))
v = dict(meta, _id="huge-pkg@99.0.0", readme="the real one",
         dist={"integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(),
               "shasum": hashlib.sha1(tgz).hexdigest(), "tarball": f"{url}/huge-pkg/-/huge-pkg-99.0.0.tgz"})
doc["versions"]["99.0.0"] = v
doc["dist-tags"]["latest"] = "99.0.0"
doc["time"]["99.0.0"] = "2024-01-01T00:00:00.000Z"
doc["_attachments"] = {}
# `time` (with `modified`) comes after `versions`, as registries send it
doc = {k: doc[k] for k in [k for k in doc if k != "time"] + ["time"]}
json.dump(doc, open(f"{dest}/package.json", "w"))
EOF
up_bytes=$(curl -sS -o "$WORK/upstream.json" -w '%{size_download}' "$VERDACCIO_URL/huge-pkg")
assert_gt "$up_bytes" 25000000 "the upstream packument is about 30 MB"
up_gets() { echo $(($(verdaccio_count "$UPD" GET /huge-pkg) - 1)); } # GETs of huge-pkg, not counting the one above

# ---- nginx in front of verdaccio, throttled; it also serves a malformed packument -----------------------------------
NG=$WORK/nginx
mkdir -p "$NG/root"
# a large valid start, then garbage: the rewrite has sent bytes by the time it finds the error
"$PY" -c "import json; d = json.load(open('$WORK/upstream.json')); s = json.dumps(d)[:3000000]
open('$NG/root/bad-pkg', 'w').write(s + ']]] not json')"
printf '{"name":"small-bad","versions":{"1.0.0":{"dist":{"tarball":"http://x/a-1.0.0.tgz"}}' >"$NG/root/small-bad"
NGINX_EXTRA="location ~ ^/(bad-pkg|small-bad)\$ { default_type application/json; }
        location / { proxy_pass http://127.0.0.1:$VP; proxy_buffering on; }" \
    start_nginx "$NG" "$NGP" 8m
NU=http://127.0.0.1:$NGP

CFG=$WORK/larder.yaml
CFG_IDLE=30s write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
npm:
  ttl: 10m
  upstream: $NU/
EOF
start_larder "$CFG" "$LP"
R=$LARDER_URL/npm
A='application/vnd.npm.install-v1+json'

# ---- both forms at once, cold ----------------------------------------------------------------------------------------
curl -sS -o "$WORK/full.json" -w '%{http_code} %{time_starttransfer} %{time_total}\n' "$R/huge-pkg" >"$WORK/full.w" &
P1=$!
track_pid "$P1"
curl -sS -o "$WORK/abbr.json" -w '%{http_code} %{time_starttransfer} %{time_total}\n' \
    -H "Accept: $A; q=1.0, application/json; q=0.8, */*" "$R/huge-pkg" >"$WORK/abbr.w" &
P2=$!
track_pid "$P2"
# the first bytes of both answers arrive while nginx is still sending the upstream document (it logs the request
# only when it ends)
deadline=$((SECONDS + 60))
until [ -s "$WORK/full.json" ] && [ -s "$WORK/abbr.json" ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "no bytes of the packument within 60 s"
    sleep 0.02
done
assert_eq 0 "$(nginx_count "$NG/logs/access.log" GET /huge-pkg)" \
    "both clients had bytes before the upstream response ended"
wait "$P1" || fail "curl of the full form failed"
wait "$P2" || fail "curl of the abbreviated form failed"
untrack_pid "$P1"
untrack_pid "$P2"
read -r code1 st1 tt1 <"$WORK/full.w"
read -r code2 st2 tt2 <"$WORK/abbr.w"
assert_eq "200 200" "$code1 $code2" "both forms answered"
assert_eq 1 "$(awk -v a="$st1" -v b="$tt1" 'BEGIN { print (a < b) }')" "full form: first byte ($st1 s) before the end ($tt1 s)"
assert_eq 1 "$(awk -v a="$st2" -v b="$tt2" 'BEGIN { print (a < b) }')" "abbreviated form: first byte before the end"
assert_eq 1 "$(up_gets)" "one upstream GET served both forms"
assert_eq 1 "$(nginx_count "$NG/logs/access.log" GET /huge-pkg)" "one GET through nginx"

check_forms() { # check_forms FULL ABBR : both forms against the upstream document
    "$PY" - "$WORK/upstream.json" "$1" "$2" "$R" <<'EOF'
import json, sys
up, full, abbr = (json.load(open(p)) for p in sys.argv[1:4])
base = sys.argv[4]
fields = ["name", "version", "deprecated", "dependencies", "optionalDependencies", "devDependencies",
          "bundleDependencies", "bundledDependencies", "peerDependencies", "peerDependenciesMeta", "acceptDependencies",
          "bin", "directories", "dist", "engines", "cpu", "os", "libc", "_hasShrinkwrap", "hasInstallScript", "funding",
          "license"]
assert set(full) == set(up), "full: the same top-level fields"
for k in up:
    if k != "versions":
        assert full[k] == up[k], f"full: {k} unchanged"
assert set(full["versions"]) == set(up["versions"])
for v, uv in up["versions"].items():
    fv = dict(full["versions"][v])
    want = f"{base}/huge-pkg/-/huge-pkg-{v}.tgz"
    assert fv["dist"]["tarball"] == want, f"full {v}: tarball {fv['dist']['tarball']} != {want}"
    fv["dist"] = dict(fv["dist"], tarball=uv["dist"]["tarball"])
    assert fv == uv, f"full {v}: everything else unchanged"
assert set(abbr) == {"name", "dist-tags", "time", "versions", "modified"}, sorted(abbr)
assert abbr["modified"] == up["time"]["modified"] and abbr["time"] == up["time"]
assert abbr["dist-tags"] == up["dist-tags"] and abbr["name"] == up["name"]
for v, uv in up["versions"].items():
    av = abbr["versions"][v]
    want = {k: uv[k] for k in fields if k in uv}
    want["dist"] = full["versions"][v]["dist"]
    s = uv.get("scripts", {})
    if any(k in s for k in ("preinstall", "install", "postinstall")) and "hasInstallScript" not in uv:
        want["hasInstallScript"] = True
    assert av == want, f"abbreviated {v}: {sorted(av)} != {sorted(want)}"
print("ok")
EOF
}
assert_eq ok "$(check_forms "$WORK/full.json" "$WORK/abbr.json" 2>&1 | tail -1)" "both forms match the upstream document"

# stored: both forms again are hits, still one upstream GET
assert_cache "$R/huge-pkg" HIT
curl -sS -D "$WORK/h2" -o "$WORK/abbr2.json" -H "Accept: $A" "$R/huge-pkg"
assert_contains "$(tr -d '\r' <"$WORK/h2")" "x-larder-cache: HIT" "the abbreviated form is stored"
cmp -s "$WORK/abbr.json" "$WORK/abbr2.json" || fail "the stored abbreviated form differs from the streamed one"
curl -sS -o "$WORK/full2.json" "$R/huge-pkg"
cmp -s "$WORK/full.json" "$WORK/full2.json" || fail "the stored full form differs from the streamed one"
assert_eq 1 "$(up_gets)" "still one upstream GET"

# ---- the real npm and yarn 1 install it through Larder ------------------------------------------------------------------
mkdir -p "$WORK/app-npm" "$WORK/app-yarn"
printf '{"name":"app","version":"1.0.0","private":true,"dependencies":{"huge-pkg":"^99.0.0"}}\n' |
    tee "$WORK/app-npm/package.json" >"$WORK/app-yarn/package.json"
npm_isolated "$NPMC" install --prefix "$WORK/app-npm" --registry "$R/" >"$WORK/npm.log" 2>&1 ||
    fail "npm install failed: $(tail -5 "$WORK/npm.log")"
assert_eq "module.exports = 'huge-pkg 99';" "$(cat "$WORK/app-npm/node_modules/huge-pkg/index.js")" "npm installed it"
assert_eq ok "$(cat "$WORK/app-npm/node_modules/huge-pkg/built.txt" 2>/dev/null)" "npm ran its postinstall"
printf 'registry "%s/"\ndisable-self-update-check true\n' "$R" >"$WORK/app-yarn/.yarnrc"
mkdir -p "$WORK/app-yarn/.home"
(cd "$WORK/app-yarn" && HOME=$WORK/app-yarn/.home timeout 120 "$YARN" install --cache-folder "$WORK/yarn-cache" \
    --non-interactive --no-progress --network-timeout 20000 >"$WORK/yarn.log" 2>&1) ||
    fail "yarn install failed: $(tail -5 "$WORK/yarn.log")"
assert_eq "module.exports = 'huge-pkg 99';" "$(cat "$WORK/app-yarn/node_modules/huge-pkg/index.js")" "yarn installed it"
assert_eq 1 "$(up_gets)" "npm and yarn were answered from the stored forms"
assert_eq 1 "$(verdaccio_count "$UPD" GET /huge-pkg/-/huge-pkg-99.0.0.tgz)" "one upstream GET of the tarball"

# ---- a malformed upstream document: an aborted transfer or an error, never stored ----------------------------------------
for p in bad-pkg small-bad; do
    for acc in "application/json" "$A"; do
        rc=0
        curl -sS -f -o "$WORK/bad.out" -H "Accept: $acc" "$R/$p" 2>"$WORK/bad.err" || rc=$?
        assert_ne 0 "$rc" "$p ($acc): never a complete success ($(cat "$WORK/bad.err"))"
    done
    assert_eq 2 "$(nginx_count "$NG/logs/access.log" GET "/$p")" "$p: nothing stored, each request asked again"
done
larder_log_has "packument of bad-pkg .* is malformed" || fail "no log line names the malformed packument"
larder_log_has "fetch: $NU/bad-pkg failed: rewriting the upstream document failed" || fail "no failed-fetch log line"
assert_eq 200 "$(http_status "$R/huge-pkg")" "the daemon still answers"

finish
