#!/usr/bin/env bash
# test_git.sh - the git mirror (/git/<remote>/<path>) with the real git client against a real smart-HTTP upstream
# (git http-backend behind nginx + fcgiwrap, git_fixture.sh): clone cold and warm (the warm one costs the upstream
# nothing), protocol v0 and v2, with and without .git, ls-remote, --depth 1 --branch <tag>, a partial clone whose
# checkout fetches blobs lazily, --recurse-submodules through url.<larder>.insteadOf, pip and npm installs from git,
# the refs trusted for git.ttl and refreshed after it; push refused, bad paths and unknown remotes refused; the
# upstream killed (STALE), also across a restart; seeding into a fresh data dir then cloning offline, a seed with a
# ref the upstream lacks failing; 10 concurrent cold clones costing the upstream one fetch.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/git_fixture.sh"

GP=$(free_port)
LP=$(free_port)
ROOT=$WORK/repos
C=$WORK/clients
mkdir -p "$C"
make_git_repos "$ROOT" "http://127.0.0.1:$GP"
start_git_upstream "$ROOT" "$GP"
U=$GIT_UPSTREAM_URL
REFS='info/refs?service=git-upload-pack'

bare() { gitfx_git --git-dir "$ROOT/$1.git" "${@:2}"; }
# gc CLONE ARGS... - local git in a client's clone
gc() { gitfx_git -C "$C/$1" "${@:2}"; }
# ok STEP ARGS... - git_client ARGS..., output in $C/STEP.log; a failure of git fails the test
ok() {
    local step=$1
    shift
    git_client "$@" >"$C/$step.log" 2>&1 || fail "$step: git $* failed (exit $?): $(tail -n 20 "$C/$step.log")"
}
# traced STEP ARGS... - like ok, with GIT_TRACE_CURL (headers only) in $C/STEP.trace and GIT_TRACE_PACKET in
# $C/STEP.packets
traced() {
    local step=$1
    shift
    rm -f "$C/$step.trace" "$C/$step.packets"
    GIT_TRACE_CURL=$C/$step.trace GIT_TRACE_CURL_NO_DATA=1 GIT_TRACE_PACKET=$C/$step.packets ok "$step" "$@"
}
# trace_cache STEP -> the X-Larder-Cache of the first info/refs response in $C/STEP.trace (empty if none)
trace_cache() {
    awk '/=> Send header: [A-Z]+ / { refs = ($0 ~ /=> Send header: GET [^ ]*\/info\/refs/) }
         refs && tolower($0) ~ /<= recv header: x-larder-cache:/ {
             sub(/.*<= Recv header: [^:]*: */, ""); sub(/\r$/, ""); print; exit }' "$C/$1.trace" 2>/dev/null
}
# hdr_of HEADERS NAME -> the value of header NAME (any case) in a block of response headers (curl -D -)
hdr_of() {
    awk -v n="$2" 'BEGIN { n = tolower(n) } { sub(/\r$/, ""); i = index($0, ":")
        if (i > 0 && tolower(substr($0, 1, i - 1)) == n) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); last = v } }
        END { print last }' <<<"$1"
}
# counts REPO -> "INFO_REFS_GETS UPLOAD_PACK_POSTS" the upstream saw for REPO so far
counts() { echo "$(git_upstream_count refs "$1") $(git_upstream_count upload-pack "$1")"; }
# status_in URL CODES WHAT [CURL ARGS...] - the HTTP status of a GET is one of CODES ("400 404")
status_in() {
    local url=$1 codes=$2 what=$3 got
    shift 3
    got=$(http_status "$url" --path-as-is "$@")
    case " $codes " in *" $got "*) pass "$what: $got" ;; *) fail "$what: $url -> HTTP $got, expected one of: $codes" ;; esac
}

APP_MAIN=$(bare org/app rev-parse main)
APP_TREE=$(bare org/app rev-parse 'main^{tree}')
APP_V10=$(bare org/app rev-parse 'v1.0^{commit}')
APP_REL=$(bare org/app rev-parse release/1.x)
LIB_MAIN=$(bare org/lib rev-parse main)
REL_BLOB=$(bare org/app rev-parse release/1.x:assets/release-1x.bin)
REL_SHA=$(bare org/app cat-file blob release/1.x:assets/release-1x.bin | sha256_stdin)

# the reference: straight from the upstream
ok direct clone -q "$U/org/app.git" "$C/direct"
DIRECT_REFS=$(gc direct for-each-ref --format='%(objectname) %(refname)' refs/remotes/origin refs/tags)
for v in 0 2; do
    git_client -c protocol.version=$v ls-remote "$U/org/app.git" >"$C/direct-ls-v$v.out" 2>"$C/direct-ls-v$v.log" ||
        fail "ls-remote v$v of the upstream: $(cat "$C/direct-ls-v$v.log")"
done

"$LARDER_BIN" config --keys 2>/dev/null | grep -q '^git\.ttl' ||
    fail "$LARDER_BIN has no git module (no git.ttl in 'larder config --keys'): issue 12 is not built in"

# git_config FILE DATA_DIR TTL - a larder.yaml with the git section (CFG_OFFLINE as in write_config)
git_config() {
    write_config "$1" "$LP" "$2"
    cat >>"$1" <<EOF
git:
  ttl: $3
  remotes:
    upstream.test: $U
EOF
}

CFG=$WORK/larder.yaml
git_config "$CFG" "$WORK/data" 5m
start_larder "$CFG" "$LP"
L=$LARDER_URL/git/upstream.test
# what a user puts in ~/.gitconfig to send every clone of the upstream through Larder (given with -c here)
REWRITE="url.$L/.insteadOf=$U/"

# ---- cold and warm clones --------------------------------------------------------------------------------------------
# recorded (larder record): the cold clone's mirror is pinned after its fetch, a warm one's from a HIT
"$LARDER_BIN" record start git-cold --config "$CFG" >"$C/rec1.log" 2>&1 || fail "record start: $(cat "$C/rec1.log")"
c0=$(counts org/app)
traced cold clone -q "$L/org/app.git" "$C/cold"
c1=$(counts org/app)
assert_eq MISS "$(trace_cache cold)" "cold clone: X-Larder-Cache of info/refs"
assert_eq "$((${c0% *} + 1))" "${c1% *}" "cold clone: the mirror fetched once (one info/refs GET upstream)"
assert_gt "${c1#* }" "${c0#* }" "cold clone: the mirror's fetch POSTed upload-pack upstream"
assert_eq "$APP_MAIN" "$(gc cold rev-parse HEAD)" "cold clone: HEAD is main"
assert_eq "$APP_TREE" "$(gc cold rev-parse 'HEAD^{tree}')" "cold clone: tree"
assert_eq "$DIRECT_REFS" "$(gc cold for-each-ref --format='%(objectname) %(refname)' refs/remotes/origin refs/tags)" \
    "cold clone: branches and tags as a direct clone has them"
assert_eq "$L/org/app.git" "$(gc cold config remote.origin.url)" "the clone's origin is Larder"
gc cold fsck --no-progress >"$C/fsck-cold.log" 2>&1 || fail "fsck of the cold clone: $(cat "$C/fsck-cold.log")"

hdr=$({ curl -sS -o "$C/refs-v0.body" -D - --max-time 30 "$L/org/app.git/$REFS" || true; } | tr -d '\r')
assert_match "$hdr" '^HTTP/[0-9.]+ 200' "info/refs: 200"
assert_eq application/x-git-upload-pack-advertisement "$(hdr_of "$hdr" Content-Type)" "info/refs: Content-Type"
assert_eq HIT "$(hdr_of "$hdr" X-Larder-Cache)" "warm info/refs within ttl: HIT"
refs0=$(tr '\0' ' ' <"$C/refs-v0.body") # the capabilities follow a NUL
assert_contains "$refs0" "# service=git-upload-pack" "smart HTTP advertisement (v0)"
assert_contains "$refs0" "$APP_MAIN refs/heads/main" "v0 advertisement lists main"
assert_contains "$refs0" "filter" "v0 advertisement offers filter"
v2=$(curl -sS --max-time 30 -H 'Git-Protocol: version=2' "$L/org/app.git/$REFS" || true)
assert_contains "$v2" "version 2" "Git-Protocol: version=2 gets the v2 capabilities"
assert_contains "$v2" "ls-refs" "v2: ls-refs"
assert_match "$v2" "fetch=.*filter" "v2: fetch=...filter"
assert_match "$v2" "fetch=.*shallow" "v2: fetch=...shallow"

for v in 2 0; do
    traced warm-v$v -c protocol.version=$v clone -q "$L/org/app.git" "$C/warm-v$v"
    assert_eq HIT "$(trace_cache "warm-v$v")" "warm clone v$v: X-Larder-Cache"
    assert_eq "$c1" "$(counts org/app)" "warm clone v$v within ttl: no upstream request"
    assert_eq "$APP_TREE" "$(gc "warm-v$v" rev-parse 'HEAD^{tree}')" "warm clone v$v: tree"
    assert_eq "$DIRECT_REFS" "$(gc "warm-v$v" for-each-ref --format='%(objectname) %(refname)' refs/remotes/origin refs/tags)" \
        "warm clone v$v: refs"
done
assert_contains "$(cat "$C/warm-v2.packets")" "git< version 2" "clone v2 spoke protocol v2 with Larder"
assert_not_contains "$(cat "$C/warm-v0.packets")" "version 2" "clone v0 spoke protocol v0"
"$LARDER_BIN" record stop --config "$CFG" >"$C/rec2.log" 2>&1 || fail "record stop: $(cat "$C/rec2.log")"
assert_contains "$(api GET pins/git-cold)" '"key":"m/upstream.test/org/app"' "the cold clone's mirror is in the recorded set"
"$LARDER_BIN" record start git-warm --config "$CFG" >"$C/rec3.log" 2>&1 || fail "record start: $(cat "$C/rec3.log")"
ok nogit clone -q "$L/org/app" "$C/nogit"
"$LARDER_BIN" record stop --config "$CFG" >"$C/rec4.log" 2>&1 || fail "record stop: $(cat "$C/rec4.log")"
assert_contains "$(api GET pins/git-warm)" '"key":"m/upstream.test/org/app"' "a warm clone (HIT) records the mirror"
assert_eq "$APP_MAIN" "$(gc nogit rev-parse HEAD)" "clone without .git"
assert_eq "$c1" "$(counts org/app)" "org/app and org/app.git are one mirror"

# the refs are trusted for the ttl: a new upstream commit is not seen yet
NEW=$(git_upstream_commit "$ROOT" org/app)
git_client ls-remote "$L/org/app.git" main >"$C/ls-in-ttl.out" 2>"$C/ls-in-ttl.log" || fail "ls-remote: $(cat "$C/ls-in-ttl.log")"
assert_eq "$APP_MAIN	refs/heads/main" "$(cat "$C/ls-in-ttl.out")" "within ttl: main as the mirror has it"
assert_eq "$c1" "$(counts org/app)" "within ttl: ls-remote asks the upstream nothing"
bare org/app update-ref refs/heads/main "$APP_MAIN" "$NEW" # undo it: the next checks compare with the upstream

# ---- ls-remote, v0 and v2 ----------------------------------------------------------------------------------------------
for v in 0 2; do
    GIT_TRACE_PACKET=$C/ls-v$v.packets git_client -c protocol.version=$v ls-remote "$L/org/app.git" \
        >"$C/ls-v$v.out" 2>"$C/ls-v$v.log" || fail "ls-remote v$v through Larder: $(cat "$C/ls-v$v.log")"
    assert_eq "$(cat "$C/direct-ls-v$v.out")" "$(cat "$C/ls-v$v.out")" "ls-remote v$v: as from the upstream"
done
assert_contains "$(cat "$C/ls-v2.packets")" "git< version 2" "ls-remote v2 spoke v2"
assert_not_contains "$(cat "$C/ls-v0.packets")" "version 2" "ls-remote v0 spoke v0"
assert_contains "$(cat "$C/ls-v0.out")" "$APP_V10	refs/tags/v1.0^{}" "annotated tag peeled"

# ---- shallow and partial clones ------------------------------------------------------------------------------------------
for v in 2 0; do
    ok depth-v$v -c protocol.version=$v clone -q --depth 1 --branch v1.0 "$L/org/app.git" "$C/depth-v$v"
    assert_eq "$APP_V10" "$(gc "depth-v$v" rev-parse HEAD)" "--depth 1 --branch v1.0 (v$v): HEAD is v1.0"
    assert_eq 1 "$(gc "depth-v$v" rev-list --count HEAD)" "--depth 1 (v$v): one commit"
    assert_eq true "$(gc "depth-v$v" rev-parse --is-shallow-repository)" "--depth 1 (v$v): a shallow repository"
done
for v in 2 0; do
    ok filter-v$v -c protocol.version=$v clone -q --filter=blob:none "$L/org/app.git" "$C/filter-v$v"
    assert_not_contains "$(cat "$C/filter-v$v.log")" "filtering not recognized" "Larder accepts the filter (v$v)"
    missing=$(gc "filter-v$v" rev-list --objects --all --missing=print | grep -c '^?' || true)
    assert_gt "$missing" 100 "partial clone v$v: the history's blobs were not sent ($missing missing)"
    assert_contains "$(gc "filter-v$v" rev-list --objects --all --missing=print)" "?$REL_BLOB" \
        "partial clone v$v: release-1x.bin not there yet"
    ok filter-checkout-v$v -c protocol.version=$v -C "$C/filter-v$v" checkout -q release/1.x
    assert_eq "$APP_REL" "$(gc "filter-v$v" rev-parse HEAD)" "partial clone v$v: checkout of release/1.x"
    assert_eq "$REL_SHA" "$(sha256_file "$C/filter-v$v/assets/release-1x.bin")" "lazily fetched blob (v$v)"
    assert_not_contains "$(gc "filter-v$v" rev-list --objects --all --missing=print)" "?$REL_BLOB" \
        "partial clone v$v: release-1x.bin fetched by the checkout"
done
assert_eq "$c1" "$(counts org/app)" "shallow and partial clones served from the mirror: no upstream request"

# ---- submodules through url.<larder>.insteadOf ------------------------------------------------------------------------------
l0=$(counts org/lib)
ok sub -c "$REWRITE" clone -q --recurse-submodules "$L/org/app.git" "$C/sub"
assert_eq "$LIB_MAIN" "$(gc sub/lib rev-parse HEAD)" "--recurse-submodules: lib at the gitlink"
assert_eq "0.3.0" "$(cat "$C/sub/lib/VERSION" 2>&1)" "--recurse-submodules: lib's files"
assert_eq "$U/org/lib.git" "$(gc sub/lib config remote.origin.url)" "the submodule's URL is the upstream's (rewritten at use)"
assert_eq HIT "$(http_header "$L/org/lib.git/$REFS" X-Larder-Cache)" "lib is mirrored: the submodule came through Larder"
assert_eq "$((${l0% *} + 1))" "$(git_upstream_count refs org/lib)" "lib fetched upstream once"
# the user's whole configuration: clone by the upstream's URL
ok sub-rewrite -c "$REWRITE" clone -q --recurse-submodules "$U/org/app.git" "$C/sub-rewrite"
assert_eq "$LIB_MAIN" "$(gc sub-rewrite/lib rev-parse HEAD)" "clone by the upstream URL, rewritten: submodule"
assert_eq "$c1" "$(counts org/app)" "the rewritten clone did not reach the upstream"

# ---- pip and npm installing from git ---------------------------------------------------------------------------------------
if why=$(gitfx_pip_ready); then
    gitfx_pip_install "$C/pip-target" "git+$L/org/pypkg.git@v1.0" >"$C/pip.log" 2>&1 ||
        fail "pip install git+$L/org/pypkg.git@v1.0 failed: $(tail -n 20 "$C/pip.log")"
    assert_eq 1.0.0 "$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import larder_test_gitpkg as m; print(m.VERSION)' \
        "$C/pip-target" 2>&1)" "pip install git+http://larder/...@v1.0 installed the tag"
    assert_eq 1 "$(git_upstream_count refs org/pypkg)" "pypkg fetched upstream once"
else
    skip "pip install from git: $why"
fi
if why=$(gitfx_npm_ready); then
    gitfx_npm_install "$C/npm" "git+$L/org/jspkg.git#v1.0" >"$C/npm.log" 2>&1 ||
        fail "npm install git+$L/org/jspkg.git#v1.0 failed: $(tail -n 30 "$C/npm.log")"
    assert_eq 1.0.0 "$(node -p 'require(process.argv[1]).version' "$C/npm/app/node_modules/larder-test-gitdep/package.json" 2>&1)" \
        "npm git dependency through Larder: the v1.0 tag"
    assert_eq 1 "$(git_upstream_count refs org/jspkg)" "jspkg fetched upstream once"
else
    skip "npm install from git: $why"
fi

# ---- never a way to the upstream for anything but reading configured remotes -------------------------------------------
rc=0
GIT_CURL_VERBOSE=1 git_client -C "$C/cold" push "$L/org/app.git" HEAD:refs/heads/pushed-through-larder \
    >"$C/push.log" 2>&1 || rc=$?
assert_ne 0 "$rc" "git push to Larder fails"
assert_match "$(cat "$C/push.log")" "(HTTP/[0-9.]+ 403|error: 403)" "push refused with 403"
assert_status "$L/org/app.git/info/refs?service=git-receive-pack" 403
assert_eq 403 "$(http_status "$L/org/app.git/git-receive-pack" -X POST -H 'Content-Type: application/x-git-receive-pack-request' \
    --data-binary 0000)" "POST git-receive-pack: 403"
assert_eq 0 "$(git_upstream_count receive-pack org/app)" "no receive-pack request reached the upstream"
rc=0
bare org/app rev-parse -q --verify refs/heads/pushed-through-larder >/dev/null 2>&1 || rc=$?
assert_ne 0 "$rc" "the upstream has no pushed branch (it accepts anonymous pushes: Larder stopped it)"

all0=$(wc -l <"$GIT_UPSTREAM_LOG")
status_in "$LARDER_URL/git/upstream.test/../upstream.test/org/app.git/$REFS" "400 404" "../ before the remote"
status_in "$L/org/../../../etc/passwd/$REFS" "400 404" "../ in the path"
status_in "$L/org/%2e%2e/%2e%2e/org/app.git/$REFS" "400 404" "%2e%2e in the path"
status_in "$L/org/app.git/../lib.git/$REFS" "400 404" "../ after the repository"
status_in "$L/$REFS" "400 404" "no repository path"
status_in "$LARDER_URL/git/nosuch.test/org/app.git/$REFS" "400 404" "unknown remote"
status_in "$LARDER_URL/git/127.0.0.1:$GP/org/app.git/$REFS" "400 404" "an upstream address is not a remote"
status_in "$LARDER_URL/git/$REFS" "400 404" "no remote"
assert_eq "$all0" "$(wc -l <"$GIT_UPSTREAM_LOG")" "none of them reached the upstream"
rc=0
git_client clone -q "$LARDER_URL/git/nosuch.test/org/app.git" "$C/unknown" >"$C/unknown.log" 2>&1 || rc=$?
assert_ne 0 "$rc" "git clone from an unknown remote fails"
assert_eq 404 "$(http_status "$L/org/no-such-repo.git/$REFS")" "a repository the upstream does not have: 404"

# ---- after the ttl: a fetch sees the new upstream commit ------------------------------------------------------------------
stop_larder
git_config "$CFG" "$WORK/data" 2s
start_larder "$CFG" "$LP"
NEW=$(git_upstream_commit "$ROOT" org/app)
sleep 2.5
c2=$(counts org/app)
traced fetch-new -C "$C/cold" fetch -q
assert_eq "$NEW" "$(gc cold rev-parse origin/main)" "git fetch after the ttl sees the new upstream commit"
assert_eq "$((${c2% *} + 1))" "$(git_upstream_count refs org/app)" "the mirror fetched from the upstream once"
got=$(trace_cache fetch-new)
assert_match "$got" '^(MISS|REVALIDATED|EXPIRED)$' "refreshed info/refs is neither HIT nor STALE"
ok clone-new clone -q "$L/org/app.git" "$C/clone-new"
assert_eq "$NEW" "$(gc clone-new rev-parse HEAD)" "a new clone has the new commit"

# ---- the upstream killed: the mirror is served as it is --------------------------------------------------------------------
stop_git_upstream
sleep 2.5 # past the ttl: Larder tries the upstream, cannot reach it
hdr=$({ curl -sS -o /dev/null -D - --max-time 30 "$L/org/app.git/$REFS" || true; } | tr -d '\r')
assert_match "$hdr" '^HTTP/[0-9.]+ 200' "upstream down: info/refs still 200"
assert_eq STALE "$(hdr_of "$hdr" X-Larder-Cache)" "upstream down: STALE"
# offline_checks TAG - what must work from the mirrors alone
offline_checks() {
    local tag=$1
    traced "down-$tag" clone -q "$L/org/app.git" "$C/down-$tag"
    assert_eq STALE "$(trace_cache "down-$tag")" "$tag: clone sees STALE"
    assert_eq "$NEW" "$(gc "down-$tag" rev-parse HEAD)" "$tag: clone of main"
    for v in 0 2; do
        git_client -c protocol.version=$v ls-remote "$L/org/app.git" refs/tags/v1.0 >"$C/down-ls-$tag-v$v.out" \
            2>"$C/down-ls-$tag-v$v.log" || fail "$tag: ls-remote v$v: $(cat "$C/down-ls-$tag-v$v.log")"
        assert_contains "$(cat "$C/down-ls-$tag-v$v.out")" "refs/tags/v1.0" "$tag: ls-remote v$v"
    done
    ok "down-sub-$tag" -c "$REWRITE" clone -q --recurse-submodules --branch v1.0 "$L/org/app.git" "$C/down-sub-$tag"
    assert_eq "$APP_V10" "$(gc "down-sub-$tag" rev-parse HEAD)" "$tag: clone --branch v1.0"
    assert_eq "$LIB_MAIN" "$(gc "down-sub-$tag/lib" rev-parse HEAD)" "$tag: its submodule, through Larder"
    ok "down-filter-$tag" clone -q --filter=blob:none "$L/org/app.git" "$C/down-filter-$tag"
    ok "down-filter-co-$tag" -C "$C/down-filter-$tag" checkout -q release/1.x
    assert_eq "$REL_SHA" "$(sha256_file "$C/down-filter-$tag/assets/release-1x.bin")" "$tag: partial clone + lazy fetch"
}
offline_checks upstream-down
stop_larder
start_larder "$CFG" "$LP"
offline_checks restarted
rc=0
git_client -C "$C/cold" push "$L/org/app.git" HEAD:refs/heads/x >"$C/push-down.log" 2>&1 || rc=$?
assert_ne 0 "$rc" "push still refused"

# ---- seeding into a fresh data dir, then offline --------------------------------------------------------------------------
stop_larder
start_git_upstream "$ROOT" "$GP"
git_config "$CFG" "$WORK/data-seed" 5m
start_larder "$CFG" "$LP"
seed() { # seed SPEC LOG -> exit code of `larder seed`
    local rc=0
    timeout 180 "$LARDER_BIN" seed --config "$CFG" "$1" >"$2" 2>&1 </dev/null || rc=$?
    return $rc
}
cat >"$WORK/seed-good.yaml" <<EOF
pin_set: git-test
git:
  - repo: upstream.test/org/app
    refs: [v1.0, main]
  - upstream.test/org/lib
EOF
rc=0
seed "$WORK/seed-good.yaml" "$WORK/seed-good.log" || rc=$?
assert_eq 0 "$rc" "larder seed of app (v1.0, main) and lib ($(tail -n 3 "$WORK/seed-good.log" | tr '\n' ' '))"
assert_contains "$(api GET pins)" "git-test" "the pin set exists"
cat >"$WORK/seed-bad.yaml" <<EOF
pin_set: git-bad
git:
  - upstream.test/org/lib
  - repo: upstream.test/org/jspkg
    refs: [v1.0, no-such-ref]
EOF
rc=0
seed "$WORK/seed-bad.yaml" "$WORK/seed-bad.log" || rc=$?
assert_eq 1 "$rc" "a seed with a ref the upstream lacks exits 1"
bad=$(cat "$WORK/seed-bad.log")
assert_match "$bad" "FAILED.*no-such-ref" "the failed item names the missing ref"
assert_not_contains "$(grep FAILED <<<"$bad" || true)" "org/lib" "the good item is not reported as failed"

stop_larder
stop_git_upstream
# ttl 1s: the seeded mirrors are expired by the time they are asked for, so offline they are served STALE (within
# their ttl they would be a HIT, offline or not, as every other protocol's fresh entries are)
CFG_OFFLINE=true git_config "$CFG" "$WORK/data-seed" 1s
start_larder "$CFG" "$LP"
sleep 1.5
ok seeded-main clone -q "$L/org/app.git" "$C/seeded-main"
assert_eq "$NEW" "$(gc seeded-main rev-parse HEAD)" "offline: clone of the seeded app (main)"
ok seeded-v10 clone -q --depth 1 --branch v1.0 "$L/org/app.git" "$C/seeded-v10"
assert_eq "$APP_V10" "$(gc seeded-v10 rev-parse HEAD)" "offline: --depth 1 --branch v1.0"
ok seeded-sub -c "$REWRITE" clone -q --recurse-submodules "$L/org/app" "$C/seeded-sub"
assert_eq "$LIB_MAIN" "$(gc seeded-sub/lib rev-parse HEAD)" "offline: the seeded submodule"
assert_eq STALE "$(http_header "$L/org/app.git/$REFS" X-Larder-Cache)" "offline: STALE"
rc=0
git_client clone -q "$L/org/pypkg.git" "$C/unseeded" >"$C/unseeded.log" 2>&1 || rc=$?
assert_ne 0 "$rc" "offline: a repository never mirrored cannot be cloned"
assert_eq 504 "$(http_status "$L/org/pypkg.git/$REFS")" "offline, never mirrored: 504"

# ---- 10 concurrent cold clones: one upstream fetch ----------------------------------------------------------------------
stop_larder
start_git_upstream "$ROOT" "$GP"
git_config "$CFG" "$WORK/data-conc" 5m
start_larder "$CFG" "$LP"
c3=$(counts org/app)
pids=()
for i in $(seq 1 10); do
    git_client_start "$C/conc-$i.log" clone -q "$L/org/app.git" "$C/conc-$i"
    pids+=("$GIT_CLIENT_PID")
done
for i in $(seq 1 10); do
    git_client_wait "${pids[$((i - 1))]}" || fail "concurrent clone $i failed: $(tail -n 20 "$C/conc-$i.log")"
done
pass "10 concurrent cold clones succeeded"
heads=$(for i in $(seq 1 10); do gc "conc-$i" rev-parse HEAD; done | sort -u)
assert_eq "$NEW" "$heads" "all 10 have the same HEAD, the upstream's main"
c4=$(counts org/app)
assert_eq "$((${c3% *} + 1))" "${c4% *}" "10 concurrent cold clones: one info/refs GET upstream (one fetch)"
assert_le "${c4#* }" "$((${c3#* } + 4))" "... and a handful of upload-pack POSTs at most ($((${c4#* } - ${c3#* })))"

finish
