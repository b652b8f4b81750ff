# shellcheck shell=bash
# npm_fixture.sh - a real npm upstream (verdaccio 6.8.0 from tests/tools) and real npm packages for the npm tests
# and benchmark (source after lib.sh). Nothing here ever contacts the internet: verdaccio has no uplinks, npm talks
# to 127.0.0.1 only and runs with an isolated configuration.
#
#   start_verdaccio DIR PORT            verdaccio on 127.0.0.1:PORT, config DIR/config.yaml, packages DIR/storage,
#                                       JSON log DIR/logs/verdaccio.log; sets VERDACCIO_PID, VERDACCIO_URL
#   verdaccio_count DIR METHOD PATH     how many METHOD PATH requests verdaccio received (exact request target)
#   verdaccio_requests DIR              every request verdaccio received, one "METHOD TARGET" a line
#   make_npm_packages DIR               sources DIR/src/*, tarballs DIR/tarballs/*.tgz (npm pack), app DIR/app
#   publish_npm_packages DIR URL        npm publish of every tarball (dist-tags as below); writes DIR/manifest.json
#   make_npm_lockfile DIR URL           DIR/app/package-lock.json (resolved -> URL) and DIR/app-public/ (resolved ->
#                                       https://registry.npmjs.org/, as a developer using the public registry has it)
#   npm_isolated DIR NPM_ARGS...        the machine's npm with an empty cache DIR/npm-cache-XXXXXX, the config files
#                                       DIR/npmrc and DIR/npm-global.npmrc (so ~/.npmrc and /etc/npmrc never apply)
#                                       and no audit, fund or update check; tracked like every started process
#
# The packages (name: versions; dependencies), all tiny but real CommonJS that requires its dependencies:
#   @larder-test/util    1.0.0
#   @larder-test/core    1.0.0, 1.1.0 (dist-tag latest), 2.0.0 (dist-tag next); @larder-test/util ^1.0.0,
#                        2.0.0 also larder-test-left-pad ^1.0.0
#   @larder-test/config  1.0.0; larder-test-left-pad ^1.0.0
#   @larder-test/types   1.0.0 (index.d.ts only)
#   larder-test-left-pad 1.0.0
#   larder-test-colors   1.0.0
#   larder-test-logger   1.0.0; larder-test-colors ^1.0.0, @larder-test/util ^1.0.0
#   larder-test-cli      1.0.0, bin larder-test-cli; @larder-test/core ^2.0.0, larder-test-logger ^1.0.0
#   larder-test-server   1.0.0; @larder-test/core ^1.0.0, @larder-test/config ^1.0.0, larder-test-logger ^1.0.0
#   larder-test-native   1.0.0, postinstall `node install.js` writes built.txt into the package directory
#   larder-test-docs     1.0.0, a ~50 KB README.md (its full packument is ~53 KB)
#   larder-test-assets   1.0.0, 256 KiB of incompressible data (a ~260 KB tarball)
# DIR/app (larder-test-app, private) depends on @larder-test/core ^1.0.0, @larder-test/types, larder-test-server,
# larder-test-cli, larder-test-native, larder-test-docs, larder-test-assets (all ^1.0.0); its install tree has 13
# entries: the 12 packages, @larder-test/core 1.1.0 at the top and 2.0.0 nested under larder-test-cli
# (@larder-test/core 1.0.0 is published but in no lockfile). Tarballs are reproducible (npm pack fixes mtimes and
# order), so their integrity is the same on every run; packuments differ (publish times).

NPMFX_VERDACCIO=${VERDACCIO_BIN:-$REPO/tests/tools/node_modules/.bin/verdaccio}
NPMFX_PUBLIC=https://registry.npmjs.org

# ---------------------------------------------------------------------------------------------------------------
# npm, isolated

# _npmfx_conf DIR - the npm config files in DIR (the user config gets publish tokens added)
_npmfx_conf() {
    mkdir -p "$1"
    [ -f "$1/npmrc" ] || printf 'update-notifier=false\nfund=false\naudit=false\n' >"$1/npmrc"
    [ -f "$1/npm-global.npmrc" ] || : >"$1/npm-global.npmrc"
}

# npm_isolated DIR NPM_ARGS... - runs npm (stdin /dev/null, output to the caller's stdout/stderr), returns its exit
# code. Run it with a redirection, not inside $(...) (a subshell would hide the process from the EXIT trap).
# Sets NPM_LAST_CACHE to the cache directory used.
npm_isolated() {
    local dir=$1
    shift
    command -v npm >/dev/null 2>&1 || fail "npm not found (the npm tests need node and npm on PATH)"
    _npmfx_conf "$dir"
    NPM_LAST_CACHE=$(mktemp -d "$dir/npm-cache-XXXXXX")
    # npm_config_* (set by an outer npm, or by the user) and proxies would override the files above
    local unset=() v
    for v in $(compgen -e); do
        case "$v" in [Nn][Pp][Mm]_[Cc][Oo][Nn][Ff][Ii][Gg]_* | http_proxy | https_proxy | HTTP_PROXY | HTTPS_PROXY | all_proxy | ALL_PROXY)
            unset+=(-u "$v") ;;
        esac
    done
    local pid rc=0
    env "${unset[@]+"${unset[@]}"}" npm --userconfig "$dir/npmrc" --globalconfig "$dir/npm-global.npmrc" \
        --cache "$NPM_LAST_CACHE" --no-audit --no-fund --no-update-notifier "$@" </dev/null &
    pid=$!
    track_pid "$pid"
    wait "$pid" || rc=$?
    untrack_pid "$pid"
    return "$rc"
}

# _npmfx_npm DIR STEP NPM_ARGS...  - npm_isolated with the output in DIR/logs/npm-STEP.log; fails on an error
_npmfx_npm() {
    local dir=$1 step=$2
    shift 2
    mkdir -p "$dir/logs"
    npm_isolated "$dir" "$@" >"$dir/logs/npm-$step.log" 2>&1 ||
        fail "npm $* failed (exit $?): $(tail -n 30 "$dir/logs/npm-$step.log")"
}

# ---------------------------------------------------------------------------------------------------------------
# verdaccio

verdaccio_up() { curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$1/-/ping" 2>/dev/null; }

# start_verdaccio DIR PORT
start_verdaccio() {
    local dir=$1 port=$2
    [ -x "$NPMFX_VERDACCIO" ] ||
        fail "verdaccio not installed ($NPMFX_VERDACCIO): run scripts/install-test-tools (needs node and npm)"
    command -v node >/dev/null 2>&1 || fail "node not found: verdaccio needs Node.js"
    mkdir -p "$dir/storage" "$dir/logs"
    # web.enable (not "enabled") switches the UI off; no `proxy:` under packages and no uplinks: never the internet.
    # Anyone may publish: npm sends a made-up token, verdaccio treats the unknown token as anonymous.
    cat >"$dir/config.yaml" <<EOF
storage: $dir/storage
listen:
  - 127.0.0.1:$port
uplinks: {}
auth:
  htpasswd:
    file: $dir/htpasswd
    max_users: -1
packages:
  '@*/*':
    access: \$all
    publish: \$all
    unpublish: \$all
  '**':
    access: \$all
    publish: \$all
    unpublish: \$all
web:
  enable: false
max_body_size: 100mb
server:
  keepAliveTimeout: 60
log:
  type: file
  path: $dir/logs/verdaccio.log
  format: json
  level: http
EOF
    env -u VERDACCIO_PUBLIC_URL -u NODE_ENV -u DEBUG "$NPMFX_VERDACCIO" --config "$dir/config.yaml" \
        >>"$dir/logs/verdaccio-stderr.log" 2>&1 </dev/null &
    VERDACCIO_PID=$!
    track_pid "$VERDACCIO_PID"
    VERDACCIO_URL=http://127.0.0.1:$port
    local deadline=$((SECONDS + 30))
    until port_open "$port" && verdaccio_up "$port"; do
        pid_alive "$VERDACCIO_PID" ||
            fail "verdaccio exited at start-up: $(tail -n 20 "$dir/logs/verdaccio-stderr.log" "$dir/logs/verdaccio.log" 2>/dev/null)"
        [ "$SECONDS" -lt "$deadline" ] || fail "verdaccio did not answer $VERDACCIO_URL/-/ping within 30 s"
        sleep 0.1
    done
}

# verdaccio's log (DIR/logs/verdaccio.log) is pino JSON, one object a line. Each request gives one level-30 line
# {"req": {"method": "GET", "url": "/@larder-test%2fcore", ...}, "msg": "127.0.0.1 requested 'GET /...'"} when it
# arrives, then level-25 ("http") lines with the status, usually two (verdaccio logs on res.end and again on close),
# so requests are counted by the level-30 "requested" lines.

# verdaccio_count DIR METHOD PATH -> the number of METHOD requests whose target is exactly PATH (query string
# included), where %2f / %2F and / are the same (npm asks for /@scope%2fname, other clients for /@scope/name)
verdaccio_count() {
    local logf=$1/logs/verdaccio.log
    [ -f "$logf" ] || { echo 0; return; }
    "$PY" - "$logf" "$2" "$3" <<'EOF'
import json, sys
logf, method, path = sys.argv[1:4]
norm = lambda p: p.replace("%2f", "/").replace("%2F", "/")
want, n = norm(path), 0
with open(logf, encoding="utf-8", errors="replace") as f:
    for line in f:
        if " requested '" not in line:
            continue
        try:
            r = json.loads(line).get("req") or {}
        except ValueError:
            continue
        if r.get("method") == method and norm(r.get("url", "")) == want:
            n += 1
print(n)
EOF
}

# verdaccio_requests DIR -> "METHOD TARGET" for every request, in order
verdaccio_requests() {
    local logf=$1/logs/verdaccio.log
    [ -f "$logf" ] || return 0
    "$PY" - "$logf" <<'EOF'
import json, sys
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    for line in f:
        if " requested '" in line:
            try:
                r = json.loads(line).get("req") or {}
            except ValueError:
                continue
            print(r.get("method"), r.get("url"))
EOF
}

# ---------------------------------------------------------------------------------------------------------------
# packages

# make_npm_packages DIR - writes DIR/src/<name>-<version>/ and DIR/app/package.json, packs every source into
# DIR/tarballs/ (file names as npm pack gives them: larder-test-core-1.1.0.tgz for @larder-test/core 1.1.0) and
# lists them, in publish order, in DIR/tarballs/publish-order.txt ("FILE TAG" lines)
make_npm_packages() {
    local dir=$1
    rm -rf "$dir/src" "$dir/tarballs" "$dir/app"
    mkdir -p "$dir/src" "$dir/tarballs" "$dir/app"
    "$PY" - "$dir" <<'PYEOF' || fail "make_npm_packages: writing the package sources failed"
import json, os, random, sys

root = sys.argv[1]
W = "^1.0.0"
# name, version, dist-tag, dependencies, extras
PKGS = [
    ("@larder-test/util", "1.0.0", "latest", {}, {}),
    ("larder-test-left-pad", "1.0.0", "latest", {}, {}),
    ("larder-test-colors", "1.0.0", "latest", {}, {}),
    ("@larder-test/core", "1.0.0", "latest", {"@larder-test/util": W}, {}),
    ("@larder-test/core", "1.1.0", "latest", {"@larder-test/util": W}, {}),
    ("@larder-test/core", "2.0.0", "next", {"@larder-test/util": W, "larder-test-left-pad": W}, {}),
    ("@larder-test/config", "1.0.0", "latest", {"larder-test-left-pad": W}, {}),
    ("@larder-test/types", "1.0.0", "latest", {}, {"types": "index.d.ts"}),
    ("larder-test-logger", "1.0.0", "latest", {"larder-test-colors": W, "@larder-test/util": W}, {}),
    ("larder-test-cli", "1.0.0", "latest", {"@larder-test/core": "^2.0.0", "larder-test-logger": W},
     {"bin": {"larder-test-cli": "bin/cli.js"}}),
    ("larder-test-server", "1.0.0", "latest",
     {"@larder-test/core": W, "@larder-test/config": W, "larder-test-logger": W}, {}),
    ("larder-test-native", "1.0.0", "latest", {}, {"scripts": {"postinstall": "node install.js"}}),
    ("larder-test-docs", "1.0.0", "latest", {}, {}),
    ("larder-test-assets", "1.0.0", "latest", {}, {}),
]


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)
    os.chmod(path, mode)


order = []
for name, version, tag, deps, extra in PKGS:
    d = os.path.join(root, "src", name.lstrip("@").replace("/", "-") + "-" + version)
    pj = {"name": name, "version": version, "description": "Larder test package " + name,
          "main": "index.js", "license": "MIT", "repository": {"type": "git", "url": "https://example.invalid/larder-test.git"}}
    pj.update(extra)
    if deps:
        pj["dependencies"] = deps
    requires = "".join("const d%d = require(%s);\n" % (i, json.dumps(n)) for i, n in enumerate(deps))
    used = ", ".join("d%d" % i for i in range(len(deps)))
    write(os.path.join(d, "index.js"),
          "'use strict';\n%sexports.name = %s;\nexports.version = %s;\nexports.deps = [%s].map((m) => m.name + '@' + m.version);\n"
          % (requires, json.dumps(name), json.dumps(version), used))
    write(os.path.join(d, "README.md"), "# %s\n\nA package made by Larder's npm test fixture.\n" % name)
    if name == "@larder-test/types":
        write(os.path.join(d, "index.d.ts"), "export declare const name: string;\nexport declare const version: string;\n")
    if name == "larder-test-cli":
        write(os.path.join(d, "bin", "cli.js"),
              "#!/usr/bin/env node\n'use strict';\nconst core = require('@larder-test/core');\n"
              "console.log('larder-test-cli 1.0.0 core ' + core.version);\n", 0o755)
    if name == "larder-test-native":
        write(os.path.join(d, "install.js"),
              "'use strict';\nconst fs = require('fs');\nconst path = require('path');\n"
              "fs.writeFileSync(path.join(__dirname, 'built.txt'), 'built by postinstall of larder-test-native 1.0.0\\n');\n")
    if name == "larder-test-docs":
        lines = ["# larder-test-docs", "", "A package with a long README, so that its packument is big.", ""]
        i = 0
        while sum(len(l) + 1 for l in lines) < 50000:
            i += 1
            lines.append("## Section %d\n\nParagraph %d: the quick brown fox jumps over the lazy dog; "
                         "pack my box with five dozen liquor jugs. `larder` caches packuments and tarballs.\n" % (i, i))
        write(os.path.join(d, "README.md"), "\n".join(lines) + "\n")
    if name == "larder-test-assets":
        write(os.path.join(d, "data.bin"), random.Random(20240101).randbytes(256 * 1024))
    write(os.path.join(d, "package.json"), json.dumps(pj, indent=2) + "\n")
    order.append((d, name, version, tag))

with open(os.path.join(root, "src", "order.txt"), "w") as f:
    for d, name, version, tag in order:
        f.write("%s %s %s %s\n" % (d, name, version, tag))

app = {"name": "larder-test-app", "version": "1.0.0", "private": True, "description": "depends on the fixture's packages",
       "license": "MIT", "dependencies": {"@larder-test/core": W, "@larder-test/types": W, "larder-test-server": W,
                                          "larder-test-cli": W, "larder-test-native": W, "larder-test-docs": W,
                                          "larder-test-assets": W}}
write(os.path.join(root, "app", "package.json"), json.dumps(app, indent=2) + "\n")
PYEOF
    local srcs=() d
    while read -r d _; do srcs+=("$d"); done <"$dir/src/order.txt"
    # one npm process packs them all
    _npmfx_npm "$dir" pack pack --offline --json --pack-destination "$dir/tarballs" "${srcs[@]}"
    "$PY" - "$dir" <<'PYEOF' || fail "make_npm_packages: npm pack output unexpected: $(tail -n 30 "$dir/logs/npm-pack.log")"
import json, os, sys
root = sys.argv[1]
log = open(os.path.join(root, "logs", "npm-pack.log")).read()
packed = json.loads(log[log.index("["):])  # npm may print notices before the JSON
by_id = {p["id"]: p for p in packed}
with open(os.path.join(root, "src", "order.txt")) as f, open(os.path.join(root, "tarballs", "publish-order.txt"), "w") as out:
    for line in f:
        d, name, version, tag = line.split()
        p = by_id["%s@%s" % (name, version)]
        assert os.path.isfile(os.path.join(root, "tarballs", p["filename"])), p["filename"]
        out.write("%s %s\n" % (p["filename"], tag))
PYEOF
}

# publish_npm_packages DIR REGISTRY_URL - npm publish of DIR/tarballs/* in publish-order.txt order, each with its
# dist-tag (@larder-test/core: 1.0.0 and 1.1.0 as latest, then 2.0.0 as next). Then DIR/manifest.json:
#   {"registry": URL, "packages": {NAME: {"name", "packument_path" (/@scope%2fname as npm asks for it),
#    "dist_tags", "versions": {VERSION: {"file" (tarball file name in DIR/tarballs/), "tarball_url",
#    "tarball_path", "shasum", "integrity" (sha512-...), "size"}}}}}
# taken from the packuments verdaccio serves (and checked against the local tarballs).
publish_npm_packages() {
    local dir=$1 url=${2%/}
    [ -f "$dir/tarballs/publish-order.txt" ] || fail "publish_npm_packages: run make_npm_packages $dir first"
    local hostport=${url#*://}
    hostport=${hostport%%/*}
    _npmfx_conf "$dir"
    grep -qF "//$hostport/:_authToken=" "$dir/npmrc" ||
        echo "//$hostport/:_authToken=larder-test-fake-token" >>"$dir/npmrc"
    local file tag n=0
    while read -r file tag; do
        n=$((n + 1))
        _npmfx_npm "$dir" "publish-$n" publish "$dir/tarballs/$file" --registry "$url/" --tag "$tag"
    done <"$dir/tarballs/publish-order.txt"
    "$PY" - "$dir" "$url" <<'PYEOF' || fail "publish_npm_packages: building $dir/manifest.json failed"
import base64, hashlib, json, os, sys, urllib.parse, urllib.request
root, url = sys.argv[1], sys.argv[2]
names = []
with open(os.path.join(root, "src", "order.txt")) as f:
    for line in f:
        n = line.split()[1]
        if n not in names:
            names.append(n)
files = [l.split()[0] for l in open(os.path.join(root, "tarballs", "publish-order.txt"))]
manifest = {"registry": url, "packages": {}}
for name in names:
    path = "/" + name.replace("/", "%2f")
    req = urllib.request.Request(url + path, headers={"Accept": "application/json"})
    doc = json.load(urllib.request.urlopen(req, timeout=30))
    versions = {}
    for v, meta in doc["versions"].items():
        dist = meta["dist"]
        fname = os.path.basename(urllib.parse.urlparse(dist["tarball"]).path)
        local = name.lstrip("@").replace("/", "-") + "-" + v + ".tgz"
        assert local in files, (local, files)
        data = open(os.path.join(root, "tarballs", local), "rb").read()
        integ = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        assert integ == dist["integrity"], (name, v, integ, dist["integrity"])
        assert hashlib.sha1(data).hexdigest() == dist["shasum"], (name, v)
        versions[v] = {"file": local, "tarball_url": dist["tarball"], "tarball_path": urllib.parse.urlparse(dist["tarball"]).path,
                       "shasum": dist["shasum"], "integrity": dist["integrity"], "size": len(data)}
    manifest["packages"][name] = {"name": name, "packument_path": path, "dist_tags": doc["dist-tags"], "versions": versions}
with open(os.path.join(root, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
    f.write("\n")
PYEOF
}

# make_npm_lockfile DIR REGISTRY_URL - `npm install --package-lock-only` of DIR/app against REGISTRY_URL (empty
# cache) -> DIR/app/package-lock.json (lockfileVersion 3, resolved URLs under REGISTRY_URL); then DIR/app-public/
# with the same package.json and that lockfile with every resolved URL moved to https://registry.npmjs.org (same
# path), integrity kept
make_npm_lockfile() {
    local dir=$1 url=${2%/}
    [ -f "$dir/app/package.json" ] || fail "make_npm_lockfile: run make_npm_packages $dir first"
    rm -f "$dir/app/package-lock.json"
    _npmfx_npm "$dir" lockfile install --package-lock-only --ignore-scripts --registry "$url/" --prefix "$dir/app"
    [ -f "$dir/app/package-lock.json" ] || fail "make_npm_lockfile: npm wrote no $dir/app/package-lock.json"
    rm -rf "$dir/app-public"
    mkdir -p "$dir/app-public"
    cp "$dir/app/package.json" "$dir/app-public/package.json"
    "$PY" - "$dir/app/package-lock.json" "$dir/app-public/package-lock.json" "$url" "$NPMFX_PUBLIC" <<'PYEOF' || fail "make_npm_lockfile: rewriting the lockfile failed"
import json, sys
src, dst, url, public = sys.argv[1:5]
lock = json.load(open(src))
n = 0
def fix(key, e):
    global n
    r = e.get("resolved", "")
    if not r.startswith(url + "/"):
        raise SystemExit("%s: resolved %r is not under %s" % (key, r, url))
    if not e.get("integrity", "").startswith("sha512-"):
        raise SystemExit("%s: no sha512 integrity" % key)
    e["resolved"] = public + r[len(url):]
    n += 1
for key, e in lock.get("packages", {}).items():
    if key:  # "" is the app itself
        fix(key, e)
def fix_v1(deps):  # the lockfile v1/v2 "dependencies" tree, if present
    for key, e in deps.items():
        fix(key, e)
        fix_v1(e.get("dependencies", {}))
fix_v1(lock.get("dependencies", {}))
if n == 0:
    raise SystemExit("no resolved URLs in " + src)
with open(dst, "w") as f:
    json.dump(lock, f, indent=2)
    f.write("\n")
PYEOF
}
