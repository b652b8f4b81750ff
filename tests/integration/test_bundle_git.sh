#!/usr/bin/env bash
# test_bundle_git.sh - bundles carry git mirrors: repositories cloned through Larder's /git/ while recording (plus a
# file, so the set mixes blobs and external data) are exported while the daemon runs; the bundle holds each mirror as
# an external/<n> member (a git bundle) with its sha256 in the manifest. A fresh larder that never saw the upstream,
# offline, with the upstream stopped, imports it while it runs; then the real git client clones from it with
# protocol v0 and v2 and gets the upstream's branches, tags, HEAD and tree, --branch <tag> and submodules included.
# A bundle with one byte of a mirror flipped, and one whose mirror member is missing, are refused and leave the store
# and the git directory as they were (stats, pins, no temp file, no mirror). Importing twice is fine, and a restart
# keeps the imported mirrors.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/bundle_fixture.sh"
. "$(dirname "$0")/git_fixture.sh"

GP=$(free_port)
LP=$(free_port)
LP2=$(free_port)
NP=$(free_port)
ROOT=$WORK/repos
C=$WORK/clients
mkdir -p "$C"
make_git_repos "$ROOT" "http://127.0.0.1:$GP"
start_git_upstream "$ROOT" "$GP"
U=$GIT_UPSTREAM_URL
ORIG=$WORK/origin
mkdir -p "$ORIG/root/x"
make_file "$ORIG/root/x/small.bin" 70000
start_nginx "$ORIG" "$NP"

bare() { gitfx_git --git-dir "$ROOT/$1.git" "${@:2}"; }
gc() { gitfx_git -C "$C/$1" "${@:2}"; }
ok() {
    local step=$1
    shift
    git_client "$@" >"$C/$step.log" 2>&1 || fail "$step: git $* failed (exit $?): $(tail -n 20 "$C/$step.log")"
}
refs_of() { gc "$1" for-each-ref --format='%(objectname) %(refname)' refs/remotes/origin refs/tags; }

APP_MAIN=$(bare org/app rev-parse main)
APP_TREE=$(bare org/app rev-parse 'main^{tree}')
APP_V10=$(bare org/app rev-parse 'v1.0^{commit}')
LIB_MAIN=$(bare org/lib rev-parse main)

ok direct clone -q "$U/org/app.git" "$C/direct"
DIRECT_REFS=$(refs_of direct)

# larder_config FILE PORT DATA_DIR - the same module sections on both sides (CFG_OFFLINE as in write_config)
larder_config() {
    write_config "$1" "$2" "$3"
    cat >>"$1" <<EOF
files:
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
git:
  ttl: 1s
  remotes:
    upstream.test: $U
EOF
}

# ---- side A: record clones through /git/, export ---------------------------------------------------------------------
CFG=$WORK/a.yaml
larder_config "$CFG" "$LP" "$WORK/data-a"
start_larder "$CFG" "$LP"
L=$LARDER_URL/git/upstream.test
REWRITE="url.$L/.insteadOf=$U/"
"$LARDER_BIN" record start gitset --config "$CFG" >"$C/rec1.log" 2>&1 || fail "record start: $(cat "$C/rec1.log")"
ok a-clone -c "$REWRITE" clone -q --recurse-submodules "$L/org/app.git" "$C/a-clone"
assert_eq "$LIB_MAIN" "$(gc a-clone/lib rev-parse HEAD)" "side A: the submodule cloned through Larder"
curl -sS -o "$C/small.bin" "$LARDER_URL/files/origin/x/small.bin" || fail "side A: a file through /files/"
"$LARDER_BIN" record stop --config "$CFG" >"$C/rec2.log" 2>&1 || fail "record stop: $(cat "$C/rec2.log")"
pins=$(api GET pins/gitset)
assert_contains "$pins" "m/upstream.test/org/app" "the recorded set pins app's mirror"
assert_contains "$pins" "m/upstream.test/org/lib" "the recorded set pins lib's mirror"

B=$WORK/gitset.tar
rc=0
timeout 300 "$LARDER_BIN" export --config "$CFG" gitset "$B" >"$WORK/export.log" 2>&1 </dev/null || rc=$?
assert_eq 0 "$rc" "larder export of a set with git mirrors: $(tail -3 "$WORK/export.log" | tr '\n' ' ')"
[ -e "$B.part" ] && fail "FILE.part left behind"
listing=$(tar tf "$B") || fail "tar cannot list the bundle"
assert_eq 2 "$(grep -c '^external/' <<<"$listing")" "the bundle has one external member per mirror"
man=$(tar xOf "$B" manifest.json)
assert_contains "$man" '"external": {' "the manifest describes the mirrors' members"
assert_contains "$man" '"note": "refs/heads/main"' "the manifest carries the mirror's HEAD branch"
# the member of org/app is a git bundle of every branch and tag
idx=$("$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print([i for i, e in enumerate(m["entries"]) if e["key"] == "m/upstream.test/org/app"][0])' <(printf '%s' "$man"))
mkdir -p "$WORK/x" && (cd "$WORK/x" && tar xf "$B" "external/$idx")
heads=$(gitfx_git bundle list-heads "$WORK/x/external/$idx") || fail "git bundle list-heads of external/$idx"
assert_contains "$heads" "$APP_MAIN refs/heads/main" "the git bundle has main"
assert_contains "$heads" "refs/tags/v1.0" "the git bundle has the tags"
[ -z "$(ls -A "$WORK/data-a/tmp")" ] || fail "the export left temp files: $(ls -A "$WORK/data-a/tmp")"
stop_larder

# ---- side B: fresh, offline, never online; the upstream stopped ------------------------------------------------------
stop_git_upstream
stop_pid "$NGINX_PID"
CFG2=$WORK/b.yaml
CFG_OFFLINE=true larder_config "$CFG2" "$LP2" "$WORK/data-b"
start_larder "$CFG2" "$LP2"
L=$LARDER_URL/git/upstream.test
REWRITE="url.$L/.insteadOf=$U/"

state() { # what must not change when an import is refused
    curl -sS "$LARDER_URL/-/api/v1/stats" | "$PY" -c 'import json,sys; d=json.load(sys.stdin)
print(d["blob_bytes"], d["blobs"], sorted((k, v["entries"], v["bytes"]) for k, v in d["protocols"].items()))'
    curl -sS "$LARDER_URL/-/api/v1/pins"
    ls -A "$WORK/data-b/tmp" "$WORK/data-b/blobs/sha256"
    find "$WORK/data-b/git" -mindepth 1 -maxdepth 3 -not -path '*/.home*' | sort
}
BUNDLE_CFG=$CFG2

# one byte of the mirror's git bundle flipped
cp "$B" "$WORK/tampered.tar"
bundle_flip "$WORK/tampered.tar" external/
bundle_refused "$WORK/tampered.tar" tampered "is corrupt"
# a mirror's member left out
mkdir -p "$WORK/re" && (cd "$WORK/re" && tar xf "$B")
(cd "$WORK/re" && tar --format=ustar -cf "$WORK/lacking.tar" larder-bundle.json manifest.json blobs \
    $(ls external | sed -n 2p | sed 's|^|external/|'))
bundle_refused "$WORK/lacking.tar" lacking "lacks member external/"
assert_eq 504 "$(http_status "$L/org/app.git/info/refs?service=git-upload-pack")" "before the import: no mirror (504)"

import_ok() { # import_ok LABEL
    local rc=0
    timeout 300 "$LARDER_BIN" import --config "$CFG2" "$B" >"$WORK/import-$1.log" 2>&1 </dev/null || rc=$?
    assert_eq 0 "$rc" "larder import ($1): $(tail -3 "$WORK/import-$1.log" | tr '\n' ' ')"
}
# clones LABEL - what must work from the imported mirrors alone
clones() {
    local tag=$1 v
    for v in 0 2; do
        ok "b-$tag-v$v" -c protocol.version=$v clone -q "$L/org/app.git" "$C/b-$tag-v$v"
        assert_eq "$APP_MAIN" "$(gc "b-$tag-v$v" rev-parse HEAD)" "$tag: clone (protocol v$v) checks out main"
        assert_eq "$APP_TREE" "$(gc "b-$tag-v$v" rev-parse 'HEAD^{tree}')" "$tag: clone (protocol v$v): main's tree"
        assert_eq "main" "$(gc "b-$tag-v$v" symbolic-ref --short HEAD)" "$tag: clone (protocol v$v): HEAD is main"
        assert_eq "$DIRECT_REFS" "$(refs_of "b-$tag-v$v")" "$tag: clone (protocol v$v): the upstream's branches and tags"
        gc "b-$tag-v$v" fsck --no-progress >"$C/fsck-$tag-v$v.log" 2>&1 || fail "fsck: $(cat "$C/fsck-$tag-v$v.log")"
    done
    ok "b-$tag-sub" -c "$REWRITE" clone -q --recurse-submodules --branch v1.0 "$L/org/app.git" "$C/b-$tag-sub"
    assert_eq "$APP_V10" "$(gc "b-$tag-sub" rev-parse HEAD)" "$tag: clone --branch v1.0"
    assert_eq "$LIB_MAIN" "$(gc "b-$tag-sub/lib" rev-parse HEAD)" "$tag: its submodule, from the imported lib mirror"
    assert_eq "$(sha256_file "$ORIG/root/x/small.bin")" "$(curl -sS "$LARDER_URL/files/origin/x/small.bin" | sha256_stdin)" \
        "$tag: the set's file is served too"
}

import_ok first
assert_contains "$(cat "$WORK/import-first.log")" "added" "import reports what it added"
stats=$(curl -sS "$LARDER_URL/-/api/v1/stats")
ext=$("$PY" -c 'import json,sys; print(json.load(sys.stdin).get("external_bytes", 0))' <<<"$stats")
assert_gt "$ext" 0 "the imported mirrors count as external bytes ($ext)"
[ -z "$(ls -A "$WORK/data-b/tmp")" ] || fail "the import left temp files: $(ls -A "$WORK/data-b/tmp")"
sleep 1.2 # past git.ttl: offline, the mirrors are served STALE, never fetched
clones imported
import_ok twice
clones twice
[ -z "$(ls -A "$WORK/data-b/git/.tmp")" ] || sleep 2
[ -z "$(ls -A "$WORK/data-b/git/.tmp")" ] || fail "the replaced mirrors were not removed: $(ls -A "$WORK/data-b/git/.tmp")"
stop_larder
start_larder "$CFG2" "$LP2"
ok b-restarted clone -q "$L/org/app.git" "$C/b-restarted"
assert_eq "$APP_MAIN" "$(gc b-restarted rev-parse HEAD)" "after a restart: the imported mirror still serves"

finish
