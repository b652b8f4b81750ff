#!/usr/bin/env bash
# bench/git.sh - `git clone --bare` of a repository of a few hundred MB through Larder's git mirror (/git/, issue 12)
# vs straight from the upstream server (nginx + fcgiwrap + git http-backend, tests/integration/git_fixture.sh) vs
# `git daemon` (git://) serving the same repository:
#   1. one clone: Larder cold (a fresh data dir each run: the mirror's own fetch from the upstream comes first), Larder
#      warm (mirror fresh within git.ttl), each against upstream direct and against git daemon
#   2. bytes the upstream sent (nginx's $body_bytes_sent of the upload-pack POSTs) for a Larder cold clone and a direct
#      one (and, as a note, for a warm one: 0)
#   3. BENCH_GIT_CLIENTS concurrent warm clones through Larder vs straight from the upstream (and git daemon): wall time
#   4. Larder's peak RSS (VmHWM), and the goals of issue 12, as notes
# Every comparison runs through bench/lib.sh: alternating runs (anchor, larder, anchor, larder ...), median and spread
# of each side. Ratios are other/larder: > 1.00x means the clone through Larder was faster (the common direction of
# every bench script). It asserts nothing on time. Only correctness is checked: every clone has the upstream's branches
# and tags. See bench/README.md. Loopback only, ports chosen at run time; every process it starts is stopped at exit.
#
#   LARDER_BIN          daemon binary (default: <repo>/build/larder); needs the git module
#   BENCH_GIT_MB        size of the generated repository's pack in MiB (default 300)
#   BENCH_GIT_COMMITS   commits on main (default 400)
#   BENCH_GIT_RUNS      timed clones per side of every single-clone row (default 3)
#   BENCH_GIT_CLIENTS   concurrent clones (default 10)
#   BENCH_GIT_CONC_RUNS runs per side of the concurrent rows (default 1: one run is BENCH_GIT_CLIENTS whole clones)
#   BENCH_GIT_TIMEOUT   seconds before one git command is killed (default 900)
#   BENCH_GIT_CACHE     where generated repositories are kept between runs (default /var/tmp/larder-bench-git-<uid>)
#   BENCH_TARGETS       what to measure (default "upstream daemon larder"; "upstream daemon" runs without a daemon)
#   GITFX_FCGI_CHILDREN git http-backend processes the upstream runs at once (default: BENCH_GIT_CLIENTS, at least 4)
#   KEEP_WORK=1         keep the work directory (clones are deleted as soon as they are checked)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=../tests/integration/git_fixture.sh
. "$BENCH_DIR/../tests/integration/git_fixture.sh"
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"
# shellcheck source=measure.sh
. "$BENCH_DIR/measure.sh"

MB=${BENCH_GIT_MB:-300}
COMMITS=${BENCH_GIT_COMMITS:-400}
RUNS=${BENCH_GIT_RUNS:-3}
CLIENTS=${BENCH_GIT_CLIENTS:-10}
CONC_RUNS=${BENCH_GIT_CONC_RUNS:-1}
export GIT_CLIENT_TIMEOUT=${BENCH_GIT_TIMEOUT:-900}
CACHE=${BENCH_GIT_CACHE:-/var/tmp/larder-bench-git-$(id -u)}
TARGETS=${BENCH_TARGETS:-upstream daemon larder}
GITFX_FCGI_CHILDREN=${GITFX_FCGI_CHILDREN:-$((CLIENTS > 4 ? CLIENTS : 4))}
GEN_VERSION=1 # bump when the generator below changes: the cache is keyed by it
has_target() { case " $TARGETS " in *" $1 "*) return 0 ;; esac; return 1; }
for v in MB COMMITS RUNS CLIENTS CONC_RUNS GIT_CLIENT_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || fail "$v must be a positive integer, got '${!v}'"
done
[ "$COMMITS" -ge 20 ] || fail "BENCH_GIT_COMMITS must be at least 20"
if has_target larder; then
    [ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first, or BENCH_TARGETS=\"upstream daemon\")"
    "$LARDER_BIN" config --keys 2>/dev/null | grep -q '^git\.ttl' ||
        fail "$LARDER_BIN has no git module (no git.ttl in 'larder config --keys'); BENCH_TARGETS=\"upstream daemon\" runs without it"
fi
if has_target larder && ! has_target upstream && ! has_target daemon; then
    fail "BENCH_TARGETS: larder needs an anchor to be compared with (upstream, daemon or both)"
fi
[ -x "$(git --exec-path)/git-daemon" ] || fail "git daemon not found in $(git --exec-path)"

GP=$(free_port) # the upstream: nginx + git http-backend
DP=$(free_port) # git daemon
LP=$(free_port) # larder
REPO=bench/big  # the repository's path below every server's root
C=$WORK/clients
mkdir -p "$C"

# ---- the repository: generated once per size and generator version, kept in $CACHE --------------------------------
# gen_repo DIR - a new bare repository DIR: COMMITS commits on main, each rewriting 3 of 48 text files (a few KB,
# compressible, delta-friendly) and one of 64 binary assets with fresh random bytes (incompressible: the pack's size
# is about MB), sizes varying 0.3-1.7x around the mean; an annotated tag every 50 commits; a branch release/1.x of 10
# text-only commits from the middle of main. Then `git repack -a -d -b` as a served repository has been gc'd: one
# pack with a reachability bitmap (git gc writes one in a bare repository by default).
gen_repo() {
    local dir=$1
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    gitfx_git init -q --bare -b main "$dir" || fail "git init --bare $dir failed"
    "$PY" - "$MB" "$COMMITS" <<'PYEOF' | gitfx_git -C "$dir" fast-import --quiet --done || fail "git fast-import into $dir failed"
import random, sys

mb, commits = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
T0 = 1700000000
IDENT = b"Larder Bench <bench@larder.invalid>"
WORDS = ("larder cache mirror offline seed pin quota fetch clone branch tag commit tree blob pack delta ref "
         "remote upstream client server proxy stream chunk index object module request response header").split()
TEXTS = ["src/mod_%d/file_%d.c" % (m, f) for m in range(8) for f in range(6)]
ASSETS = ["assets/set_%d/blob_%02d.bin" % (a // 16, a) for a in range(64)]
rnd = random.Random(20261130)
clock = [0]
text_state = {}


def w(b):
    out.write(b if isinstance(b, bytes) else b.encode())


def data(b):
    w(b"data %d\n" % len(b))
    w(b)
    w(b"\n")


def text(path, i):
    # a file that keeps most of its lines from one version to the next: git stores it as deltas
    lines = text_state.get(path)
    r = random.Random("%s-%d" % (path, i))
    if lines is None:
        lines = ["/* %s */" % " ".join(r.choice(WORDS) for _ in range(r.randint(6, 12))) for _ in range(200)]
    else:
        for _ in range(r.randint(3, 12)):
            lines[r.randrange(len(lines))] = "/* %s */" % " ".join(r.choice(WORDS) for _ in range(r.randint(6, 12)))
    text_state[path] = lines
    return ("\n".join(lines) + "\n").encode()


def commit(ref, mark, msg, files, parent=None):
    clock[0] += 3600
    ts = T0 + clock[0]
    w("commit %s\nmark :%d\n" % (ref, mark))
    w(b"author %s %d +0000\ncommitter %s %d +0000\n" % (IDENT, ts, IDENT, ts))
    data(msg.encode() + b"\n")
    if parent is not None:
        w("from :%d\n" % parent)
    for path, content in files:
        w("M 100644 inline %s\n" % path)
        data(content)
    w("\n")


mean = mb * 1048576 // commits
first = [("README.md", b"# big\n\nLarder's git benchmark repository (bench/git.sh).\n")]
first += [(p, text(p, 0)) for p in TEXTS]
for i in range(1, commits + 1):
    files = list(first) if i == 1 else []
    first = []
    files += [(TEXTS[rnd.randrange(len(TEXTS))], None) for _ in range(3)]
    files = [(p, c if c is not None else text(p, i)) for p, c in files]
    files.append((ASSETS[i % len(ASSETS)], rnd.randbytes(int(mean * rnd.uniform(0.3, 1.7)))))
    commit("refs/heads/main", i, "main: change %d" % i, files)
    if i % 50 == 0:
        clock[0] += 60
        w("tag v0.%d\nfrom :%d\n" % (i // 50, i))
        w(b"tagger %s %d +0000\n" % (IDENT, T0 + clock[0]))
        data(b"release 0.%d\n" % (i // 50))
base = commits // 2
for j in range(1, 11):
    p = TEXTS[j % len(TEXTS)]
    commit("refs/heads/release/1.x", commits + j, "release/1.x: fix %d" % j, [(p, text(p, commits + j))],
           parent=base if j == 1 else None)
w("done\n")
PYEOF
    gitfx_git -C "$dir" repack -a -d -b -q || fail "git repack in $dir failed"
    gitfx_git -C "$dir" pack-refs --all || fail "git pack-refs in $dir failed"
}

KEY=v$GEN_VERSION-${MB}mb-${COMMITS}c
BIG=$CACHE/$KEY/big.git
if [ -d "$BIG/objects/pack" ] && gitfx_git --git-dir "$BIG" rev-parse -q --verify refs/heads/main >/dev/null 2>&1; then
    log "using the generated repository $BIG"
else
    log "generating a ${MB} MB repository with $COMMITS commits into $BIG (once; kept for later runs)"
    mkdir -p "$CACHE"
    chmod 755 "$CACHE"
    tmp=$CACHE/.tmp.$KEY.$$
    gen_start=$SECONDS
    gen_repo "$tmp/big.git"
    rm -rf "${CACHE:?}/$KEY"
    mv -T "$tmp" "$CACHE/$KEY" || fail "cannot move $tmp to $CACHE/$KEY"
    log "generated in $((SECONDS - gen_start)) s"
fi
chmod 755 "$CACHE" "$CACHE/$KEY"
PACK_BYTES=$(find "$BIG/objects/pack" -name '*.pack' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
N_OBJECTS=$(gitfx_git --git-dir "$BIG" count-objects -v | awk '$1 == "in-pack:" { print $2 }')
N_COMMITS=$(gitfx_git --git-dir "$BIG" rev-list --count --all)
UP_REFS=$(gitfx_git --git-dir "$BIG" for-each-ref --format='%(objectname) %(refname)' refs/heads refs/tags)

# the served root: the fixture's small repositories (start_git_upstream wants them; org/app is the smoke test) and
# the big one, linked (git http-backend and git daemon both enter a repository through symlinks)
ROOT=$WORK/repos
make_git_repos "$ROOT" "http://127.0.0.1:$GP"
mkdir -p "$ROOT/bench"
ln -s "$BIG" "$ROOT/$REPO.git"

# ---- servers ---------------------------------------------------------------------------------------------------------
start_git_upstream "$ROOT" "$GP"
U=$GIT_UPSTREAM_URL

# git daemon: the isolated environment of gitfx_git, without its function wrapper so that $! is git daemon itself
mkdir -p "$WORK/git-daemon"
env GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null git daemon --reuseaddr --listen=127.0.0.1 --port="$DP" \
    --base-path="$ROOT" --export-all --informative-errors --max-connections=$((CLIENTS * 2 + 8)) \
    </dev/null >"$WORK/git-daemon/daemon.log" 2>&1 &
GIT_DAEMON_PID=$!
track_pid "$GIT_DAEMON_PID"
wait_for "git daemon" 10 port_open "$DP" || fail "git daemon did not listen on 127.0.0.1:$DP: $(cat "$WORK/git-daemon/daemon.log")"
D=git://127.0.0.1:$DP

CFG=$WORK/larder.yaml
# larder_start DATA_DIR - larder with a git section naming the upstream bench.test; a ttl of 1h so that every warm
# clone of the run is served from the mirror without asking the upstream (the within-ttl case of the issue's goal).
# Safe in a subshell ($(...), as bench_pair may call a measurement): larder's stdout is not the caller's, and its
# PID is also written to $WORK/larder.pids, which the EXIT trap reads.
larder_start() {
    CFG_QUOTA=$((MB * 4 / 1000 + 4))GiB CFG_IDLE=60s write_config "$CFG" "$LP" "$1"
    cat >>"$CFG" <<EOF
git:
  ttl: 1h
  remotes:
    bench.test: '$U'
EOF
    start_larder "$CFG" "$LP" "$WORK/larder.log" >/dev/null
    echo "$LARDER_PID" >>"$WORK/larder.pids"
}
# larder_stop - stop_larder, appending its VmHWM to $WORK/larder.hwm (each cold run is a new process)
larder_stop() {
    [ -n "${LARDER_PID:-}" ] || return 0
    bench_hwm_kb "$LARDER_PID" >>"$WORK/larder.hwm"
    stop_larder
}
stop_larders() { # the EXIT trap's: every larder still running, whichever shell started it
    local p
    [ -f "$WORK/larder.pids" ] || return 0
    while read -r p; do stop_pid "$p"; done <"$WORK/larder.pids"
}
at_cleanup stop_larders
L=http://127.0.0.1:$LP/git/bench.test

# ---- measuring ---------------------------------------------------------------------------------------------------------
up_mark() { wc -l <"$GIT_UPSTREAM_LOG"; }
# up_bytes FROM_LINE -> bytes of response bodies the upstream sent for upload-pack POSTs of $REPO after line FROM
up_bytes() {
    sleep 0.2 # nginx logs a request when it has finished it, just after the client got the last byte
    awk -F'"' -v from="$1" -v r="POST /$REPO" 'NR > from {
            split($2, q, " "); if (q[1] " " q[2] !~ ("^" r "(\\.git)?/git-upload-pack$")) next
            split($3, s, " "); n += s[2] } END { printf "%.0f\n", n }' "$GIT_UPSTREAM_LOG"
}
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

# check_clone DIR WHAT - the bare clone has every branch and tag of the upstream, at the same commits; then deleted
check_clone() {
    local got
    got=$(gitfx_git --git-dir "$1" for-each-ref --format='%(objectname) %(refname)' refs/heads refs/tags 2>&1 || true)
    [ "$got" = "$UP_REFS" ] || fail "$2: the clone's refs differ from the upstream's: $(diff <(echo "$UP_REFS") <(echo "$got") | head -n 10)"
    rm -rf "$1"
}

# The two below set SECS rather than print it, and run git_client in the caller's shell: call them directly, not
# inside $(...). (bench_pair may run a whole measurement in a subshell; each one then still waits for its own git.)
# timed_clone STEP URL - `git clone --bare -q URL`, checked, then deleted; SECS=its wall time
timed_clone() {
    local step=$1 url=$2 t0 t1
    rm -rf "${C:?}/$step"
    t0=$(now)
    git_client clone --bare -q "$url" "$C/$step" >"$C/$step.log" 2>&1 ||
        fail "$step: git clone --bare $url failed: $(tail -n 20 "$C/$step.log")"
    t1=$(now)
    check_clone "$C/$step" "$step"
    SECS=$(elapsed "$t0" "$t1")
}

# concurrent STEP URL - CLIENTS clones of URL at once; SECS=from the first start to the last exit
concurrent() {
    local step=$1 url=$2 t0 t1 i pids=()
    t0=$(now)
    for i in $(seq 1 "$CLIENTS"); do
        rm -rf "$C/$step-$i"
        git_client_start "$C/$step-$i.log" clone --bare -q "$url" "$C/$step-$i"
        pids+=("$GIT_CLIENT_PID")
    done
    for i in $(seq 1 "$CLIENTS"); do
        git_client_wait "${pids[$((i - 1))]}" || fail "$step: concurrent clone $i failed: $(tail -n 20 "$C/$step-$i.log")"
    done
    t1=$(now)
    for i in $(seq 1 "$CLIENTS"); do check_clone "$C/$step-$i" "$step $i"; done
    SECS=$(elapsed "$t0" "$t1")
}

# The measurements bench_pair calls: each prints its seconds, and also appends them to $WORK/secs.KIND (for the
# baseline without larder) and the upstream's bytes to $WORK/bytes.KIND. Step names carry the time: unique in any shell.
# clone_direct, clone_daemon, clone_warm - one clone straight from the upstream, from git daemon, through the warm
# larder; clone_cold - larder started on an empty data dir (so the time includes its own fetch of the repository from
# the upstream), one clone through it, larder stopped and its data deleted
clone_measure() { # KIND URL
    local m
    m=$(up_mark)
    timed_clone "$1-${EPOCHREALTIME/./}" "$2" >&2
    up_bytes "$m" >>"$WORK/bytes.$1"
    echo "$SECS" >>"$WORK/secs.$1"
    echo "$SECS"
}
clone_direct() { clone_measure direct "$U/$REPO.git"; }
clone_daemon() { clone_measure daemon "$D/$REPO.git"; }
clone_warm() { clone_measure warm "$L/$REPO.git"; }
clone_cold() {
    local dir=$WORK/data-cold-${EPOCHREALTIME/./}
    larder_start "$dir"
    log "larder cold clone (a fresh data dir: the mirror fetches $REPO first)"
    clone_measure cold "$L/$REPO.git"
    larder_stop
    rm -rf "$dir"
}
conc_measure() { # KIND URL
    local m
    m=$(up_mark)
    log "$CLIENTS concurrent clones: $1"
    concurrent "conc-$1-${EPOCHREALTIME/./}" "$2" >&2
    up_bytes "$m" >>"$WORK/bytes.conc-$1"
    echo "$SECS"
}
conc_direct() { conc_measure direct "$U/$REPO.git"; }
conc_daemon() { conc_measure daemon "$D/$REPO.git"; }
conc_larder() { conc_measure larder "$L/$REPO.git"; }
# values FILE -> its lines as one space-separated list ("" when it does not exist)
values() { if [ -f "$1" ]; then tr '\n' ' ' <"$1"; fi; }
mib_list() { local v; for v in $(values "$1"); do awk -v b="$v" 'BEGIN { printf "%.1f ", b / 1048576 }'; done; }

# ---- smoke test and warm-up --------------------------------------------------------------------------------------------
# the small fixture repository through each server (fails fast on a broken set-up), then one untimed direct clone of
# the big one so that its pack is in the page cache for every timed run alike
git_client clone --bare -q "$U/org/app.git" "$C/smoke-upstream" >"$C/smoke.log" 2>&1 || fail "clone of org/app from the upstream: $(cat "$C/smoke.log")"
git_client clone --bare -q "$D/org/app.git" "$C/smoke-daemon" >"$C/smoke.log" 2>&1 || fail "clone of org/app from git daemon: $(cat "$C/smoke.log")"
rm -rf "$C/smoke-upstream" "$C/smoke-daemon"
log "warm-up: one untimed clone of $REPO ($(awk -v b="$PACK_BYTES" 'BEGIN { printf "%.0f", b / 1048576 }') MiB pack) from the upstream"
timed_clone warmup "$U/$REPO.git"

bench_note "git clone --bare of $REPO: $(awk -v b="$PACK_BYTES" 'BEGIN { printf "%.1f", b / 1048576 }') MiB pack, $N_COMMITS commits, $N_OBJECTS objects; $CLIENTS concurrent; $(nproc) cores; loopback; $(git --version)"

if ! has_target larder; then
    # a baseline without a daemon: the anchors alone, as notes
    for k in upstream daemon; do
        has_target "$k" || continue
        fn=clone_direct
        [ "$k" = upstream ] || fn=clone_daemon
        for _ in $(seq 1 "$RUNS"); do "$fn" >/dev/null; done
        f=$WORK/secs.${fn#clone_}
        # shellcheck disable=SC2046
        bench_note "clone from $k (no larder): median $(bench_median $(values "$f")) s, spread $(bench_spread $(values "$f")) %, n=$RUNS"
    done
    # shellcheck disable=SC2034 # read by the EXIT trap in lib.sh
    T_DONE=1
    exit 0
fi

# ---- single clones: cold, then warm ------------------------------------------------------------------------------------
export BENCH_RUNS=$RUNS
has_target upstream && bench_pair "clone, cold mirror" s lower upstream clone_direct clone_cold
has_target daemon && bench_pair "clone, cold mirror, vs git daemon" s lower git-daemon clone_daemon clone_cold
# the warm mirror: larder on an empty data dir, filled by one untimed clone; it stays up for the rest of the run
larder_start "$WORK/data-warm"
log "larder: filling the warm mirror (one untimed clone)"
timed_clone warm-fill "$L/$REPO.git"
has_target upstream && bench_pair "clone, warm mirror" s lower upstream clone_direct clone_warm
has_target daemon && bench_pair "clone, warm mirror, vs git daemon" s lower git-daemon clone_daemon clone_warm

# ---- concurrent clones, warm -------------------------------------------------------------------------------------------
BENCH_RUNS=$CONC_RUNS
has_target upstream && bench_pair "$CLIENTS concurrent warm clones" s lower upstream conc_direct conc_larder
has_target daemon && bench_pair "$CLIENTS concurrent warm clones, vs git daemon" s lower git-daemon conc_daemon conc_larder
BENCH_RUNS=$RUNS
larder_stop

# ---- upstream bytes, RSS, the goals of issue 12 -------------------------------------------------------------------------
if has_target upstream; then
    bench_record "upstream MiB sent, cold clone" MiB lower upstream "$(mib_list "$WORK/bytes.direct")" "$(mib_list "$WORK/bytes.cold")"
    bench_record "upstream MiB sent, warm clone" MiB lower upstream "$(mib_list "$WORK/bytes.direct")" "$(mib_list "$WORK/bytes.warm")" \
        "0 is the goal: within git.ttl larder asks the upstream nothing"
fi
bench_record "larder peak RSS MiB (VmHWM)" MiB lower - - "$(bench_kib_mib "$(sort -n "$WORK/larder.hwm" | tail -n 1)")" \
    "the daemon's own, the git processes it runs not counted"
{
    bench_note "upstream MiB sent per run of $CLIENTS concurrent warm clones through larder: $(mib_list "$WORK/bytes.conc-larder")"
    if has_target upstream; then
        # from the rows just written, so that the goals agree with the table: larder median / upstream median
        goal() { # goal WHAT ROW LIMIT
            awk -F'\t' -v sc="$BENCH_SCRIPT" -v row="$2" -v w="$1" -v lim="$3" '$1 == sc && $2 == row { u = $6; l = $8 }
                END { if (u == "" || u + 0 == 0) { printf "goal of issue 12: a %s clone within %.2fx of the upstream: not measured\n", w, lim; exit }
                      r = l / u; printf "goal of issue 12: a %s clone within %.2fx of the upstream (larder/upstream, the medians of the row \"%s\"): %.2fx, %s\n",
                          w, lim, row, r, (r <= lim ? "met" : "NOT met") }' "$BENCH_SUMMARY"
        }
        bench_note "$(goal warm "clone, warm mirror" 1.10)"
        bench_note "$(goal cold "clone, cold mirror" 1.30)"
    fi
}
# shellcheck disable=SC2034 # read by the EXIT trap in lib.sh
T_DONE=1
