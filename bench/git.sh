#!/usr/bin/env bash
# bench/git.sh - `git clone --bare` of a repository of a few hundred MB through Larder's git mirror (/git/, issue 12)
# vs straight from the upstream server (nginx + fcgiwrap + git http-backend, tests/integration/git_fixture.sh) vs
# `git daemon` (git://) serving the same repository:
#   1. one clone, median of BENCH_GIT_RUNS: Larder cold (fresh data dir each run: the mirror's own fetch from the
#      upstream comes first), Larder warm (mirror fresh within git.ttl), upstream direct, git daemon
#   2. bytes the upstream sent (nginx's $body_bytes_sent of the upload-pack POSTs) for a Larder cold and warm clone,
#      and for a direct one
#   3. BENCH_GIT_CLIENTS concurrent warm clones through Larder vs straight from the upstream (and git daemon):
#      total wall time
#   4. Larder's peak RSS (VmHWM)
# It reports ratios larder/upstream and larder/git-daemon (lower is better) and the goals of issue 12; it asserts
# nothing on time. Only correctness is checked: every clone has the upstream's branches and tags.
# See bench/README.md. Loopback only, ports chosen at run time; every process it starts is stopped at exit.
#
#   LARDER_BIN          daemon binary (default: <repo>/build/larder); needs the git module
#   BENCH_GIT_MB        size of the generated repository's pack in MiB (default 300)
#   BENCH_GIT_COMMITS   commits on main (default 400)
#   BENCH_GIT_RUNS      timed clones per row, the median is shown (default 3)
#   BENCH_GIT_CLIENTS   concurrent clones (default 10)
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

MB=${BENCH_GIT_MB:-300}
COMMITS=${BENCH_GIT_COMMITS:-400}
RUNS=${BENCH_GIT_RUNS:-3}
CLIENTS=${BENCH_GIT_CLIENTS:-10}
export GIT_CLIENT_TIMEOUT=${BENCH_GIT_TIMEOUT:-900}
CACHE=${BENCH_GIT_CACHE:-/var/tmp/larder-bench-git-$(id -u)}
TARGETS=${BENCH_TARGETS:-upstream daemon larder}
GITFX_FCGI_CHILDREN=${GITFX_FCGI_CHILDREN:-$((CLIENTS > 4 ? CLIENTS : 4))}
GEN_VERSION=1 # bump when the generator below changes: the cache is keyed by it
has_target() { case " $TARGETS " in *" $1 "*) return 0 ;; esac; return 1; }
for v in MB COMMITS RUNS CLIENTS GIT_CLIENT_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || fail "$v must be a positive integer, got '${!v}'"
done
[ "$COMMITS" -ge 20 ] || fail "BENCH_GIT_COMMITS must be at least 20"
if has_target larder; then
    [ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first, or BENCH_TARGETS=\"upstream daemon\")"
    "$LARDER_BIN" config --keys 2>/dev/null | grep -q '^git\.ttl' ||
        fail "$LARDER_BIN has no git module (no git.ttl in 'larder config --keys'); BENCH_TARGETS=\"upstream daemon\" runs without it"
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
# clone of the run is served from the mirror without asking the upstream (the within-ttl case of the issue's goal)
larder_start() {
    CFG_QUOTA=$((MB * 4 / 1000 + 4))GiB CFG_IDLE=60s write_config "$CFG" "$LP" "$1"
    cat >>"$CFG" <<EOF
git:
  ttl: 1h
  remotes:
    bench.test: '$U'
EOF
    start_larder "$CFG" "$LP" "$WORK/larder.log"
}
L=http://127.0.0.1:$LP/git/bench.test

# ---- measuring ---------------------------------------------------------------------------------------------------------
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
LARDER_HWM=0
# larder_stop - stop_larder, keeping the highest VmHWM of every larder process of the run
larder_stop() {
    [ -n "${LARDER_PID:-}" ] || return 0
    local h
    h=$(hwm_kb "$LARDER_PID")
    [ "$h" -le "$LARDER_HWM" ] || LARDER_HWM=$h
    stop_larder
}

up_mark() { wc -l <"$GIT_UPSTREAM_LOG"; }
# up_bytes FROM_LINE -> bytes of response bodies the upstream sent for upload-pack POSTs of $REPO after line FROM
up_bytes() {
    sleep 0.2 # nginx logs a request when it has finished it, just after the client got the last byte
    awk -F'"' -v from="$1" -v r="POST /$REPO" 'NR > from {
            split($2, q, " "); if (q[1] " " q[2] !~ ("^" r "(\\.git)?/git-upload-pack$")) next
            split($3, s, " "); n += s[2] } END { printf "%.0f\n", n }' "$GIT_UPSTREAM_LOG"
}
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", b - a }'; }

# check_clone DIR WHAT - the bare clone has every branch and tag of the upstream, at the same commits; then deleted
check_clone() {
    local got
    got=$(gitfx_git --git-dir "$1" for-each-ref --format='%(objectname) %(refname)' refs/heads refs/tags 2>&1 || true)
    [ "$got" = "$UP_REFS" ] || fail "$2: the clone's refs differ from the upstream's: $(diff <(echo "$UP_REFS") <(echo "$got") | head -n 10)"
    rm -rf "$1"
}

# The two below set SECS rather than print it: git_client must not run inside $(...), where the EXIT trap would not
# see its process and a failure would end the subshell only.
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

# median VALUES... -> their median ("-" for none)
median() {
    [ $# -gt 0 ] || { echo -; return; }
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A T  # T[row]="run1 run2 ..." (seconds)
declare -A B  # B[row]="bytes1 bytes2 ..." (upstream bytes per clone)
declare -A CC # CC[target]=seconds for CLIENTS concurrent clones

# ---- smoke test and warm-up --------------------------------------------------------------------------------------------
# the small fixture repository through each server (fails fast on a broken set-up), then one untimed direct clone of
# the big one so that its pack is in the page cache for every timed run alike
git_client clone --bare -q "$U/org/app.git" "$C/smoke-upstream" >"$C/smoke.log" 2>&1 || fail "clone of org/app from the upstream: $(cat "$C/smoke.log")"
git_client clone --bare -q "$D/org/app.git" "$C/smoke-daemon" >"$C/smoke.log" 2>&1 || fail "clone of org/app from git daemon: $(cat "$C/smoke.log")"
rm -rf "$C/smoke-upstream" "$C/smoke-daemon"
log "warm-up: one untimed clone of $REPO ($(awk -v b="$PACK_BYTES" 'BEGIN { printf "%.0f", b / 1048576 }') MiB pack) from the upstream"
timed_clone warmup "$U/$REPO.git"

# ---- single clones -----------------------------------------------------------------------------------------------------
if has_target larder; then
    for i in $(seq 1 "$RUNS"); do
        larder_stop
        rm -rf "$WORK"/data-cold-*
        larder_start "$WORK/data-cold-$i"
        log "larder cold clone $i/$RUNS (a fresh data dir: the mirror fetches $REPO first)"
        m=$(up_mark)
        timed_clone "cold-$i" "$L/$REPO.git"
        T[cold]+="$SECS "
        B[cold]+="$(up_bytes "$m") "
    done
    # larder stays up with the last cold run's mirror for the warm clones
fi
for i in $(seq 1 "$RUNS"); do
    if has_target upstream; then
        log "upstream direct clone $i/$RUNS"
        m=$(up_mark)
        timed_clone "direct-$i" "$U/$REPO.git"
        T[direct]+="$SECS "
        B[direct]+="$(up_bytes "$m") "
    fi
    if has_target daemon; then
        log "git daemon clone $i/$RUNS"
        timed_clone "daemon-$i" "$D/$REPO.git"
        T[daemon]+="$SECS "
    fi
    if has_target larder; then
        log "larder warm clone $i/$RUNS"
        m=$(up_mark)
        timed_clone "warm-$i" "$L/$REPO.git"
        T[warm]+="$SECS "
        B[warm]+="$(up_bytes "$m") "
    fi
done

# ---- concurrent clones -------------------------------------------------------------------------------------------------
if has_target upstream; then
    log "$CLIENTS concurrent clones straight from the upstream"
    concurrent conc-direct "$U/$REPO.git"
    CC[upstream]=$SECS
fi
if has_target daemon; then
    log "$CLIENTS concurrent clones from git daemon"
    concurrent conc-daemon "$D/$REPO.git"
    CC[daemon]=$SECS
fi
if has_target larder; then
    log "$CLIENTS concurrent warm clones through larder"
    m=$(up_mark)
    concurrent conc-larder "$L/$REPO.git"
    CC[larder]=$SECS
    B[conc]=$(up_bytes "$m")
    larder_stop
fi

# ---- table -------------------------------------------------------------------------------------------------------------
# shellcheck disable=SC2086 # the runs are word lists
{
    med_cold=$(median ${T[cold]:-})
    med_warm=$(median ${T[warm]:-})
    med_direct=$(median ${T[direct]:-})
    med_daemon=$(median ${T[daemon]:-})
    b_cold=$(median ${B[cold]:-})
    b_warm=$(median ${B[warm]:-})
    b_direct=$(median ${B[direct]:-})
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'; }
mib() { awk -v b="$1" 'BEGIN { if (b == "-" || b == "") print "-"; else printf "%.1f\n", b / 1048576 }'; }
row() { printf '%-34s %10s %10s %10s %16s %18s\n' "$@"; }
# goal WHAT RATIO LIMIT -> one line saying whether RATIO is within LIMIT
goal() {
    awk -v w="$1" -v r="$2" -v l="$3" 'BEGIN {
        if (r == "-") { printf "  %-44s not measured\n", w ":"; exit }
        v = r + 0; printf "  %-44s %s  %s\n", w " within " l "x of upstream:", r, (v <= l ? "met" : "NOT met") }'
}
echo
echo "git clone --bare of $REPO: $(mib "$PACK_BYTES") MiB pack, $N_COMMITS commits, $N_OBJECTS objects;" \
    "median of $RUNS run$([ "$RUNS" = 1 ] || echo s); $CLIENTS concurrent; $(nproc) cores; loopback; $(git --version)"
row "" larder upstream git-daemon larder/upstream larder/git-daemon
row "clone, cold mirror (s)" "${med_cold}" "${med_direct}" "${med_daemon}" "$(ratio "$med_cold" "$med_direct")" "$(ratio "$med_cold" "$med_daemon")"
row "clone, warm mirror (s)" "${med_warm}" "${med_direct}" "${med_daemon}" "$(ratio "$med_warm" "$med_direct")" "$(ratio "$med_warm" "$med_daemon")"
row "upstream MiB sent, cold clone" "$(mib "$b_cold")" "$(mib "$b_direct")" - "$(ratio "$b_cold" "$b_direct")" -
row "upstream MiB sent, warm clone" "$(mib "$b_warm")" "$(mib "$b_direct")" - "$(ratio "$b_warm" "$b_direct")" -
row "$CLIENTS concurrent warm clones (s)" "${CC[larder]:--}" "${CC[upstream]:--}" "${CC[daemon]:--}" \
    "$(ratio "${CC[larder]:--}" "${CC[upstream]:--}")" "$(ratio "${CC[larder]:--}" "${CC[daemon]:--}")"
if has_target larder; then hwm=$(awk -v k="$LARDER_HWM" 'BEGIN { printf "%.1f", k / 1024 }'); else hwm=-; fi
row "larder peak RSS MiB (VmHWM)" "$hwm" - - - -
echo "times: wall seconds of the clone (lower is better; ratio = larder / other, so < 1.00x means larder is faster)."
echo "upstream and git daemon have no cache: the cold and warm rows show the same runs of them."
echo "upstream MiB: response bytes of the upstream's upload-pack POSTs for $REPO (nginx \$body_bytes_sent)."
echo "goals (issue 12):"
goal "warm clone" "$(ratio "$med_warm" "$med_direct")" 1.1
goal "cold clone" "$(ratio "$med_cold" "$med_direct")" 1.3
echo "runs (s): larder cold: ${T[cold]:--}| larder warm: ${T[warm]:--}| upstream: ${T[direct]:--}| git daemon: ${T[daemon]:--}"
if has_target larder; then
    echo "upstream bytes: larder cold: ${B[cold]}| larder warm: ${B[warm]}| $CLIENTS concurrent warm through larder: ${B[conc]}"
fi
# shellcheck disable=SC2034 # read by the EXIT trap in lib.sh
T_DONE=1
