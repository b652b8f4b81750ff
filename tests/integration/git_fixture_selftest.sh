#!/usr/bin/env bash
# git_fixture_selftest.sh - checks git_fixture.sh on its own (no larder): the repositories are built
# deterministically, and the real git client works against the upstream (nginx + fcgiwrap + git http-backend) with
# protocol v0 and v2: ls-remote, clone (with and without .git), --recurse-submodules, --depth 1 --branch <tag>, a
# partial clone whose checkout fetches blobs lazily, fetch of a new upstream commit, push (the upstream accepts
# them: a test that sees a push refused by Larder knows who refused it), pip and npm installs from git, 10 concurrent
# clones, and the upstream stopped and started again. Prints how long each step took. Not a test_*.sh: ctest and
# run-all.sh do not run it; run it by hand after changing the fixture:  bash tests/integration/git_fixture_selftest.sh
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/git_fixture.sh"

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

GP=$(free_port)
ROOT=$WORK/repos
C=$WORK/clients
mkdir -p "$C"
bare() { gitfx_git --git-dir "$ROOT/$1.git" "${@:2}"; }
# gc CLONE ARGS... - git in a client's clone
gc() { gitfx_git -C "$C/$1" "${@:2}"; }
# clone_ok STEP ARGS... - git_client ARGS... with the output in $C/STEP.log, fails the test when git fails
clone_ok() {
    local step=$1
    shift
    git_client "$@" >"$C/$step.log" 2>&1 || fail "$step: git $* failed (exit $?): $(tail -n 20 "$C/$step.log")"
}

# ---- the repositories --------------------------------------------------------------------------------------------
t=$(now)
make_git_repos "$ROOT" "http://127.0.0.1:$GP"
log "make_git_repos: $(took "$t")"
make_git_repos "$WORK/repos-again" "http://127.0.0.1:$GP"
for r in org/app org/lib org/pypkg org/jspkg; do
    assert_eq "$(bare "$r" for-each-ref)" "$(gitfx_git --git-dir "$WORK/repos-again/$r.git" for-each-ref)" \
        "$r: a second build has the same refs and ids"
done
APP_MAIN=$(bare org/app rev-parse main)
APP_V10=$(bare org/app rev-parse 'v1.0^{commit}')
APP_V11=$(bare org/app rev-parse 'v1.1')
APP_REL=$(bare org/app rev-parse release/1.x)
LIB_MAIN=$(bare org/lib rev-parse main)
assert_eq 150 "$(bare org/app rev-list --count --all)" "app has 150 commits"
assert_eq 140 "$(bare org/app rev-list --count main)" "app's main has 140"
assert_eq 110 "$(bare org/app rev-list --count release/1.x)" "release/1.x: 100 shared + 10"
assert_eq tag "$(bare org/app cat-file -t v1.0)" "v1.0 is an annotated tag"
assert_eq commit "$(bare org/app cat-file -t v1.1)" "v1.1 is a lightweight tag"
assert_eq "$APP_REL" "$APP_V11" "v1.1 is release/1.x's tip"
assert_eq "$APP_V10" "$(bare org/app merge-base main release/1.x)" "release/1.x branches at v1.0"
assert_eq "160000 commit $LIB_MAIN	lib" "$(bare org/app ls-tree main lib)" "app's lib submodule is lib's main"
assert_contains "$(bare org/app show main:.gitmodules)" "url = http://127.0.0.1:$GP/org/lib.git" ".gitmodules url"
size=$(bare org/app ls-tree -r -l main | awk '{ s += $4 } END { print s + 0 }')
assert_gt "$size" 300000 "app's main tree is a few hundred KB ($size bytes)"
assert_eq 3 "$(bare org/lib rev-list --count main)" "lib has 3 commits"
REL_BLOB=$(bare org/app rev-parse release/1.x:assets/release-1x.bin)

# ---- the upstream ----------------------------------------------------------------------------------------------------
t=$(now)
start_git_upstream "$ROOT" "$GP"
log "start_git_upstream: $(took "$t")"
U=$GIT_UPSTREAM_URL
assert_eq 5 "$(wc -w <<<"$GIT_UPSTREAM_FCGI_PIDS")" "fcgiwrap: a parent and 4 workers"
assert_status "$U/org/app.git/info/refs?service=git-upload-pack" 200
assert_header "$U/org/app.git/info/refs?service=git-upload-pack" Content-Type application/x-git-upload-pack-advertisement
assert_status "$U/org/nope.git/info/refs?service=git-upload-pack" 404
assert_eq 2 "$(git_upstream_count refs org/app)" "git_upstream_count counts the two info/refs GETs (.git form)"
assert_status "$U/org/app/info/refs?service=git-upload-pack" 200
assert_eq 3 "$(git_upstream_count refs org/app)" "and the form without .git"
assert_eq 0 "$(git_upstream_count refs org/lib)" "nothing for org/lib"
v2=$(curl -sS -H 'Git-Protocol: version=2' "$U/org/app.git/info/refs?service=git-upload-pack")
assert_contains "$v2" "version 2" "Git-Protocol: version=2 reaches http-backend (v2 capability advertisement)"
assert_contains "$v2" "ls-refs" "v2 advertises ls-refs"
assert_match "$v2" "fetch=.*filter" "v2 fetch advertises filter (uploadpack.allowFilter)"
assert_eq 1 "$(git_upstream_count v2 org/app)" "git_upstream_count v2 sees the Git-Protocol header"

# ---- ls-remote, v0 and v2 --------------------------------------------------------------------------------------------
want=$(bare org/app for-each-ref --format='%(objectname)	%(refname)' | sort)
for v in 0 2; do
    t=$(now)
    GIT_TRACE_PACKET=$C/ls-remote-v$v.trace git_client -c protocol.version=$v ls-remote "$U/org/app.git" \
        >"$C/ls-remote-v$v.out" 2>"$C/ls-remote-v$v.log" || fail "ls-remote v$v: $(cat "$C/ls-remote-v$v.log")"
    log "ls-remote v$v: $(took "$t")"
    got=$(grep -v -e '	HEAD$' -e '\^{}$' "$C/ls-remote-v$v.out" | sort)
    assert_eq "$want" "$got" "ls-remote v$v lists every ref"
    assert_contains "$(cat "$C/ls-remote-v$v.out")" "$APP_V10	refs/tags/v1.0^{}" "ls-remote v$v peels v1.0"
    assert_contains "$(cat "$C/ls-remote-v$v.out")" "$APP_MAIN	HEAD" "ls-remote v$v: HEAD is main"
done
assert_contains "$(cat "$C/ls-remote-v2.trace")" "git< version 2" "protocol v2 spoken when asked for"
assert_not_contains "$(cat "$C/ls-remote-v0.trace")" "version 2" "protocol v0 when asked for"

# ---- clones ------------------------------------------------------------------------------------------------------------
for v in 0 2; do
    n0=$(git_upstream_count refs org/app)
    p0=$(git_upstream_count upload-pack org/app)
    t=$(now)
    clone_ok clone-v$v -c protocol.version=$v clone -q "$U/org/app.git" "$C/app-v$v"
    log "clone v$v: $(took "$t")"
    assert_eq "$APP_MAIN" "$(gc "app-v$v" rev-parse HEAD)" "clone v$v: HEAD is main"
    assert_eq "$(bare org/app rev-parse 'main^{tree}')" "$(gc "app-v$v" rev-parse 'HEAD^{tree}')" "clone v$v: tree"
    assert_eq "$APP_REL" "$(gc "app-v$v" rev-parse origin/release/1.x)" "clone v$v: release/1.x"
    assert_eq "$APP_V10" "$(gc "app-v$v" rev-parse 'v1.0^{commit}')" "clone v$v: tag v1.0"
    gc "app-v$v" fsck --no-progress >"$C/fsck-v$v.log" 2>&1 || fail "fsck of clone v$v: $(cat "$C/fsck-v$v.log")"
    assert_eq $((n0 + 1)) "$(git_upstream_count refs org/app)" "clone v$v: one info/refs GET"
    p1=$(git_upstream_count upload-pack org/app)
    assert_le $((p0 + 1)) "$p1" "clone v$v: at least one upload-pack POST"
done
clone_ok clone-nogit clone -q "$U/org/app" "$C/app-nogit"
assert_eq "$APP_MAIN" "$(gc app-nogit rev-parse HEAD)" "clone without .git"

# --recurse-submodules: .gitmodules names the upstream itself
t=$(now)
clone_ok clone-sub clone -q --recurse-submodules "$U/org/app.git" "$C/app-sub"
log "clone --recurse-submodules: $(took "$t")"
assert_eq "$LIB_MAIN" "$(gc app-sub/lib rev-parse HEAD)" "submodule lib checked out at the gitlink"
assert_eq "0.3.0" "$(cat "$C/app-sub/lib/VERSION")" "submodule files"
# ... and rewritten with insteadOf to another URL of the same server (as the larder test rewrites it to larder)
lib_refs=$(git_upstream_count refs org/lib)
clone_ok clone-sub-rewrite -c "url.http://localhost:$GP/.insteadOf=http://127.0.0.1:$GP/" clone -q \
    --recurse-submodules "http://localhost:$GP/org/app.git" "$C/app-sub2"
assert_eq "$LIB_MAIN" "$(gc app-sub2/lib rev-parse HEAD)" "submodule through insteadOf"
assert_eq "http://127.0.0.1:$GP/org/lib.git" "$(gc app-sub2/lib config remote.origin.url)" \
    "the submodule keeps its .gitmodules URL (insteadOf rewrites at use)"
assert_eq $((lib_refs + 1)) "$(git_upstream_count refs org/lib)" "one lib info/refs for it"
assert_contains "$(grep 'info/refs' "$GIT_UPSTREAM_LOG" | tail -n 2)" "org/lib.git" "lib fetched by the rewritten URL"

# --depth 1 --branch <annotated tag>
for v in 0 2; do
    clone_ok depth-v$v -c protocol.version=$v clone -q --depth 1 --branch v1.0 "$U/org/app.git" "$C/depth-v$v"
    assert_eq "$APP_V10" "$(gc "depth-v$v" rev-parse HEAD)" "--depth 1 --branch v1.0 (v$v): HEAD"
    assert_eq 1 "$(gc "depth-v$v" rev-list --count HEAD)" "--depth 1 (v$v): one commit"
    assert_eq true "$(gc "depth-v$v" rev-parse --is-shallow-repository)" "--depth 1 (v$v): shallow"
done

# --filter=blob:none, then a checkout that needs blobs the clone does not have
for v in 0 2; do
    t=$(now)
    clone_ok filter-v$v -c protocol.version=$v clone -q --filter=blob:none "$U/org/app.git" "$C/filter-v$v"
    assert_not_contains "$(cat "$C/filter-v$v.log")" "filtering not recognized" "filter accepted (v$v)"
    missing=$(gc "filter-v$v" rev-list --objects --all --missing=print | grep -c '^?' || true)
    assert_gt "$missing" 100 "partial clone v$v: blobs of history are missing ($missing)"
    assert_contains "$(gc "filter-v$v" rev-list --objects --all --missing=print)" "?$REL_BLOB" \
        "partial clone v$v: release-1x.bin not fetched yet"
    p0=$(git_upstream_count upload-pack org/app)
    clone_ok filter-checkout-v$v -c protocol.version=$v -C "$C/filter-v$v" checkout -q release/1.x
    log "partial clone + lazy checkout v$v: $(took "$t")"
    assert_eq "$APP_REL" "$(gc "filter-v$v" rev-parse HEAD)" "checkout release/1.x (v$v)"
    assert_eq "$(bare org/app cat-file blob release/1.x:assets/release-1x.bin | sha256_stdin)" \
        "$(sha256_file "$C/filter-v$v/assets/release-1x.bin")" "lazily fetched blob content (v$v)"
    assert_not_contains "$(gc "filter-v$v" rev-list --objects --all --missing=print)" "?$REL_BLOB" \
        "release-1x.bin is there now (v$v)"
    assert_le $((p0 + 1)) "$(git_upstream_count upload-pack org/app)" "the lazy fetch was an upload-pack POST (v$v)"
done

# ---- a new upstream commit ---------------------------------------------------------------------------------------------
NEW=$(git_upstream_commit "$ROOT" org/app)
assert_eq "$APP_MAIN" "$(bare org/app rev-parse "$NEW^")" "git_upstream_commit: parent is the old main"
assert_eq "$NEW" "$(bare org/app rev-parse main)" "git_upstream_commit: main moved"
assert_contains "$(bare org/app show --stat main)" "UPSTREAM-CHANGES.txt" "git_upstream_commit changed its file"
NEW2=$(git_upstream_commit "$ROOT" org/app)
assert_eq "$NEW" "$(bare org/app rev-parse "$NEW2^")" "a second commit on top"
clone_ok fetch-new -C "$C/app-v2" fetch -q
assert_eq "$NEW2" "$(gc app-v2 rev-parse origin/main)" "git fetch sees the new commits"

# ---- push: the upstream accepts it on org/app (http.receivepack), refuses it elsewhere --------------------------------
clone_ok push-app -C "$C/app-v2" push -q "$U/org/app.git" HEAD:refs/heads/pushed-by-selftest
assert_eq "$APP_MAIN" "$(bare org/app rev-parse pushed-by-selftest)" "a push straight to the upstream works"
assert_eq 2 "$(git_upstream_count receive-pack org/app)" "receive-pack requests counted (info/refs + POST)"
bare org/app update-ref -d refs/heads/pushed-by-selftest
rc=0
git_client -C "$C/app-sub/lib" push "$U/org/lib.git" HEAD:refs/heads/x >"$C/push-lib.log" 2>&1 || rc=$?
assert_ne 0 "$rc" "push to org/lib (no http.receivepack) is refused"
assert_contains "$(cat "$C/push-lib.log")" "403" "with 403"

# ---- pip and npm install from git ----------------------------------------------------------------------------------------
if why=$(gitfx_pip_ready); then
    t=$(now)
    gitfx_pip_install "$C/pip-target" "git+$U/org/pypkg.git@v1.0" >"$C/pip.log" 2>&1 ||
        fail "pip install git+...@v1.0 failed: $(tail -n 20 "$C/pip.log")"
    log "pip install git+http://...@v1.0: $(took "$t")"
    assert_eq 1.0.0 "$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import larder_test_gitpkg as m; print(m.VERSION)' \
        "$C/pip-target")" "pip installed the v1.0 tag, not main"
    assert_match "$(ls "$C/pip-target")" "larder_test_gitpkg-1\.0\.0\.dist-info" "dist-info 1.0.0"
else
    skip "pip install from git: $why"
fi
if why=$(gitfx_npm_ready); then
    t=$(now)
    gitfx_npm_install "$C/npm" "git+$U/org/jspkg.git#v1.0" >"$C/npm.log" 2>&1 ||
        fail "npm install git+...#v1.0 failed: $(tail -n 30 "$C/npm.log")"
    log "npm install git+http://...#v1.0: $(took "$t")"
    assert_eq 1.0.0 "$(node -p 'require(process.argv[1]).version' "$C/npm/app/node_modules/larder-test-gitdep/package.json")" \
        "npm installed the v1.0 tag, not main"
    assert_eq 1.0.0 "$(cd "$C/npm/app" && node -p 'require("larder-test-gitdep").version')" "and it loads"
    assert_contains "$(cat "$C/npm/app/package.json")" "org/jspkg.git#v1.0" "package.json records the git spec"
else
    skip "npm install from git: $why"
fi

# ---- 10 concurrent clones --------------------------------------------------------------------------------------------------
t=$(now)
pids=()
for i in $(seq 1 10); do
    git_client_start "$C/conc-$i.log" clone -q "$U/org/app.git" "$C/conc-$i"
    pids+=("$GIT_CLIENT_PID")
done
for i in $(seq 1 10); do
    git_client_wait "${pids[$((i - 1))]}" || fail "concurrent clone $i failed: $(tail -n 20 "$C/conc-$i.log")"
    assert_eq "$NEW2" "$(gc "conc-$i" rev-parse HEAD)" "concurrent clone $i"
done
log "10 concurrent clones: $(took "$t")"

# ---- the upstream down, then up again --------------------------------------------------------------------------------
stop_git_upstream
assert_eq 000 "$(http_status "$U/org/app.git/info/refs?service=git-upload-pack")" "upstream down: connection refused"
rc=0
git_client ls-remote "$U/org/app.git" >"$C/ls-down.log" 2>&1 || rc=$?
assert_ne 0 "$rc" "ls-remote fails with the upstream down"
t=$(now)
start_git_upstream "$ROOT" "$GP"
log "restart of the upstream: $(took "$t")"
clone_ok clone-again clone -q "$U/org/lib.git" "$C/lib-again"
assert_eq "$LIB_MAIN" "$(gc lib-again rev-parse HEAD)" "clone after the restart"
if [ "${VERBOSE:-0}" = 1 ]; then git_upstream_requests | awk '{ print $1, $3, $4 }' | sort | uniq -c >&2; fi

finish
