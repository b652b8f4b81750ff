# shellcheck shell=bash disable=SC2034
# git_fixture.sh - real git repositories served over smart HTTP by the real `git http-backend` (behind nginx and
# fcgiwrap, as many self-hosted git servers are), and the real git client, isolated, for the git tests and benchmark
# (source after lib.sh). Needs git, nginx-light and fcgiwrap (scripts/install-deps). Nothing here contacts anything
# but 127.0.0.1.
#
#   make_git_repos ROOT BASE_URL       builds the bare repositories below under ROOT (ROOT/org/app.git, ...), with
#                                      fast-import, deterministically: the same BASE_URL gives the same commit ids on
#                                      every run and machine (about a second). BASE_URL (http://127.0.0.1:PORT, no
#                                      trailing /) is the upstream's address as app's .gitmodules names it, so build
#                                      the repositories after choosing the upstream's port
#   start_git_upstream ROOT PORT       fcgiwrap (socket $WORK/git-upstream/fcgiwrap.sock) + nginx on 127.0.0.1:PORT,
#                                      git http-backend with GIT_PROJECT_ROOT=ROOT, every repository exported, protocol
#                                      v2 (nginx passes the Git-Protocol header as GIT_PROTOCOL), .git optional in URLs
#                                      (http-backend finds org/app for /org/app/...). Sets GIT_UPSTREAM_URL
#                                      (http://127.0.0.1:PORT), GIT_UPSTREAM_LOG (the access log, appended across
#                                      restarts), GIT_UPSTREAM_NGINX_PID, GIT_UPSTREAM_FCGI_PIDS. Every process is
#                                      tracked (lib.sh's track_pid), so the EXIT trap stops it
#   stop_git_upstream                  stops nginx and every fcgiwrap process (the upstream is then down: connection
#                                      refused); start_git_upstream ROOT PORT brings it back on the same port
#   git_upstream_commit ROOT REPO [FILE]  one more commit on REPO's main (REPO as org/app), written into the bare
#                                      repository directly (no HTTP); changes FILE (default UPSTREAM-CHANGES.txt);
#                                      prints the new commit id
#   git_upstream_count KIND REPO       how many requests for REPO (org/app; with or without .git in the URL) the
#                                      access log has: KIND refs (GET info/refs?service=git-upload-pack), upload-pack
#                                      (POST git-upload-pack), receive-pack (any request naming git-receive-pack),
#                                      v2 (requests that carried Git-Protocol: version=2), all
#   git_upstream_requests              "METHOD TARGET STATUS gp=GIT_PROTOCOL" for every request, in order
#   gitfx_git ARGS...                  git without the system or user configuration (for local work on the bare
#                                      repositories: rev-parse, for-each-ref, ...); safe inside $(...)
#   git_client ARGS...                 the real git client as a user runs it, isolated: no system or user config
#                                      (GIT_CONFIG_GLOBAL=$WORK/git-client/gitconfig, empty unless a test writes it),
#                                      no proxy variables, no prompts, stdin /dev/null, killed after
#                                      GIT_CLIENT_TIMEOUT seconds (default 120); tracked like every started process;
#                                      output to the caller's stdout/stderr; returns git's exit code. Run it with a
#                                      redirection, not inside $(...) (a subshell would hide it from the EXIT trap).
#                                      Pass config with -c; -c url.X.insteadOf=Y reaches submodule clones as well
#   git_client_start LOG ARGS...       git_client in the background (output to LOG); sets GIT_CLIENT_PID, tracked
#   git_client_wait PID                waits for it; returns git's exit code (for concurrent clients)
#   gitfx_client_run CMD ARGS...       CMD in git_client's environment (for pip and npm, which run git themselves),
#                                      tracked, stdin /dev/null, with the same timeout; returns CMD's exit code
#   git_client_env                     that environment's variables, one NAME=VALUE a line
#
# The repositories (make_git_repos); author/committer "Larder Test <test@larder.invalid>", dates from 2023-11-14 on,
# one hour apart; every bare repository has uploadpack.allowFilter and uploadpack.allowAnySHA1InWant (partial clones
# and their lazy blob fetches, with protocol v0 too):
#   org/app.git    150 commits: main has 140 (c1 adds 40 text files under src/, 8 random 24 KiB binaries under
#                  assets/, README.md and CHANGELOG.md; c3 adds the submodule `lib` (.gitmodules url BASE_URL/
#                  org/lib.git, gitlink = org/lib's main); every commit rewrites one src file and CHANGELOG.md; every
#                  10th one of the binaries). release/1.x branches at main's 100th commit, where the annotated tag
#                  v1.0 points, and has 10 more commits: the first adds assets/release-1x.bin (64 KiB, only on that
#                  branch), each rewrites RELEASE.md (only on that branch) and one src file; the lightweight tag v1.1
#                  is its tip. HEAD -> main. About 0.4 MB at main's tip, 1 MB of history. http.receivepack is ON
#                  (anonymous pushes accepted): so a proxy that passed pushes on would be caught by a test
#   org/lib.git    3 commits on main (README.md, lib/util.sh, VERSION 0.3.0)
#   org/pypkg.git  a pure-Python package, pyproject.toml (PEP 621, build backend setuptools.build_meta, nothing else
#                  required); name larder-test-gitpkg, module larder_test_gitpkg (VERSION = "1.0.0" at the annotated
#                  tag v1.0, "1.1.0.dev0" on main, one commit later)
#   org/jspkg.git  an npm package larder-test-gitdep (package.json + index.js exporting its version): 1.0.0 at the
#                  annotated tag v1.0, 1.1.0 on main, one commit later; no dependencies, no scripts
#
# The upstream (start_git_upstream): nginx's access log DIR/logs/access.log (DIR=$WORK/git-upstream) has one line a
# request: `127.0.0.1 [time] "METHOD TARGET HTTP/1.1" STATUS BYTES rt=SECONDS gp="GIT_PROTOCOL" ua="USER_AGENT"`.
# What one `git fetch`/`git clone` costs the upstream (git 2.39, seen in this log): one GET
# info/refs?service=git-upload-pack, then with protocol v2 one POST git-upload-pack for ls-refs and one or more for
# fetch (none when nothing is new), with v0 one or more POSTs (none when nothing is new). A lazy blob fetch of a
# partial clone (a checkout needing blobs) is a GET info/refs and one POST, v0 and v2 alike. fcgiwrap runs
# GITFX_FCGI_CHILDREN (default 4) processes: that many requests at once, more wait.
#
# pip and npm installing from git (both run the git above, through gitfx_client_run):
#   gitfx_pip_ready                    0 when $PY can build a setuptools package offline, else prints why
#   gitfx_pip_install TARGET REQ       pip install --no-index --no-build-isolation --no-deps --target TARGET REQ
#                                      (REQ: git+http://...@ref); returns pip's exit code
#   gitfx_npm_ready                    0 when npm and node are on PATH, else prints why
#   gitfx_npm_install DIR SPEC         `npm install SPEC` (git+http://...#ref) into a fresh project DIR/app, empty
#                                      cache, own config, a registry that refuses connections; returns npm's exit code

GITFX_HTTP_BACKEND=$(git --exec-path 2>/dev/null)/git-http-backend

# ---------------------------------------------------------------------------------------------------------------
# git, isolated

# gitfx_git ARGS... - git for local work, without /etc/gitconfig or ~/.gitconfig (init.defaultBranch, hooks, ...)
gitfx_git() {
    env GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 \
        GIT_AUTHOR_NAME="Larder Test" GIT_AUTHOR_EMAIL=test@larder.invalid \
        GIT_COMMITTER_NAME="Larder Test" GIT_COMMITTER_EMAIL=test@larder.invalid git "$@"
}

# git_client_env -> one "NAME=VALUE" a line: the variables git_client sets (read them with mapfile, pass to env)
git_client_env() {
    mkdir -p "$WORK/git-client"
    [ -f "$WORK/git-client/gitconfig" ] || : >"$WORK/git-client/gitconfig"
    printf '%s\n' GIT_CONFIG_NOSYSTEM=1 "GIT_CONFIG_GLOBAL=$WORK/git-client/gitconfig" GIT_TERMINAL_PROMPT=0 \
        GIT_ASKPASS=/bin/false SSH_ASKPASS=/bin/false \
        "GIT_AUTHOR_NAME=Larder Test" GIT_AUTHOR_EMAIL=test@larder.invalid \
        "GIT_COMMITTER_NAME=Larder Test" GIT_COMMITTER_EMAIL=test@larder.invalid
}

# _gitfx_unset_args -> env(1) -u arguments for every variable that would change what the client does: proxies, and
# GIT_* ones a caller may have set (GIT_DIR, GIT_WORK_TREE, GIT_CONFIG_PARAMETERS...) except the trace switches
_gitfx_unset_args() {
    local v
    for v in $(compgen -e); do
        case "$v" in
        http_proxy | https_proxy | HTTP_PROXY | HTTPS_PROXY | all_proxy | ALL_PROXY | no_proxy | NO_PROXY) echo "-u" "$v" ;;
        GIT_TRACE* | GIT_CURL_VERBOSE | GIT_REDACT_COOKIES) ;;
        GIT_*) echo "-u" "$v" ;;
        esac
    done
}

# gitfx_client_run CMD ARGS... - CMD (git, pip, npm: anything that runs git) in git_client's environment, tracked,
# stdin /dev/null, killed after GIT_CLIENT_TIMEOUT seconds; returns CMD's exit code
gitfx_client_run() {
    local envs=() unset=() pid rc=0
    mapfile -t envs < <(git_client_env)
    # shellcheck disable=SC2207
    unset=($(_gitfx_unset_args))
    env "${unset[@]+"${unset[@]}"}" "${envs[@]}" timeout --kill-after=5 "${GIT_CLIENT_TIMEOUT:-120}" "$@" </dev/null &
    pid=$!
    track_pid "$pid"
    wait "$pid" || rc=$?
    untrack_pid "$pid"
    return "$rc"
}

# git_client ARGS... - see the header
git_client() { gitfx_client_run git "$@"; }

# git_client_start LOG ARGS... - git_client in the background, output to LOG; sets GIT_CLIENT_PID (tracked)
git_client_start() {
    local logf=$1 envs=() unset=()
    shift
    mapfile -t envs < <(git_client_env)
    # shellcheck disable=SC2207
    unset=($(_gitfx_unset_args))
    env "${unset[@]+"${unset[@]}"}" "${envs[@]}" timeout --kill-after=5 "${GIT_CLIENT_TIMEOUT:-120}" git "$@" \
        </dev/null >"$logf" 2>&1 &
    GIT_CLIENT_PID=$!
    track_pid "$GIT_CLIENT_PID"
}

# git_client_wait PID - waits for a git_client_start; returns git's exit code
git_client_wait() {
    local rc=0
    wait "$1" || rc=$?
    untrack_pid "$1"
    return "$rc"
}

# ---------------------------------------------------------------------------------------------------------------
# the repositories

# _gitfx_import DIR PYTHON_ARGS... - a new bare repository DIR (main) filled by the fast-import stream that the
# generator below writes for PYTHON_ARGS
_gitfx_import() {
    local dir=$1
    shift
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    gitfx_git init -q --bare -b main "$dir" || fail "git init --bare $dir failed"
    "$PY" - "$@" <<'PYEOF' | gitfx_git -C "$dir" fast-import --quiet --done ||
import random, sys

kind = sys.argv[1]
out = sys.stdout.buffer
T0 = 1700000000  # 2023-11-14
IDENT = b"Larder Test <test@larder.invalid>"
clock = [0]
marks = {}
WORDS = ("larder cache mirror offline seed pin quota fetch clone branch tag commit tree blob pack delta ref "
         "remote upstream client server proxy stream chunk index object module request response header").split()


def w(b):
    out.write(b if isinstance(b, bytes) else b.encode())


def data(b):
    b = b if isinstance(b, bytes) else b.encode()
    w(b"data %d\n" % len(b))
    w(b)
    w(b"\n")


def text(seed, size):
    r = random.Random(seed)
    lines, n = [], 0
    while n < size:
        line = "# " + " ".join(r.choice(WORDS) for _ in range(r.randint(6, 12)))
        lines.append(line)
        n += len(line) + 1
    return "\n".join(lines) + "\n"


def binary(seed, size):
    return random.Random(seed).randbytes(size)


def commit(ref, mark, msg, files, parent=None, gitlinks=()):
    clock[0] += 3600
    ts = T0 + clock[0]
    w("commit %s\nmark :%d\n" % (ref, mark))
    w(b"author %s %d +0000\ncommitter %s %d +0000\n" % (IDENT, ts, IDENT, ts))
    data(msg + "\n")
    if parent is not None:
        w("from :%d\n" % parent)
    for path, content in files:
        w("M 100644 inline %s\n" % path)
        data(content)
    for path, sha in gitlinks:
        w("M 160000 %s %s\n" % (sha, path))
    w("\n")


def annotated(name, target, msg):
    clock[0] += 60
    w("tag %s\nfrom :%d\n" % (name, target))
    w(b"tagger %s %d +0000\n" % (IDENT, T0 + clock[0]))
    data(msg + "\n")


def lightweight(name, target):
    w("reset refs/tags/%s\nfrom :%d\n\n" % (name, target))


if kind == "app":
    base_url, lib_sha = sys.argv[2], sys.argv[3]
    SRC = ["src/pkg%d/module_%d.py" % (p, m) for p in range(5) for m in range(8)]
    ASSETS = ["assets/image-%d.bin" % i for i in range(8)]
    changelog = ["# Changelog", ""]

    def main_commit(i, extra=(), gitlinks=()):
        changelog.append("- commit %d on main" % i)
        files = [("CHANGELOG.md", "\n".join(changelog) + "\n"),
                 (SRC[i % len(SRC)], text("main-%d" % i, 2000 + 40 * (i % 50)))]
        if i % 10 == 0:
            a = (i // 10) % len(ASSETS)
            files.append((ASSETS[a], binary("asset-%d-%d" % (a, i), 24 * 1024)))
        commit("refs/heads/main", i, "main: change %d" % i, files + list(extra), gitlinks=gitlinks)

    first = [("README.md", "# app\n\nThe git fixture's main repository (Larder tests).\n")]
    first += [(p, text("src-" + p, 3000)) for p in SRC]
    first += [(a, binary("asset-" + a, 24 * 1024)) for a in ASSETS]
    main_commit(1, first)
    main_commit(2)
    gitmodules = '[submodule "lib"]\n\tpath = lib\n\turl = %s/org/lib.git\n' % base_url
    main_commit(3, [(".gitmodules", gitmodules)], gitlinks=[("lib", lib_sha)])
    for i in range(4, 101):
        main_commit(i)
    annotated("v1.0", 100, "app 1.0")
    for j in range(1, 11):
        files = [("RELEASE.md", "# Release 1.x\n\n" + "".join("- fix %d\n" % k for k in range(1, j + 1))),
                 (SRC[(j * 7) % len(SRC)], text("release-%d" % j, 2500))]
        if j == 1:
            files.append(("assets/release-1x.bin", binary("release-1x", 64 * 1024)))
        commit("refs/heads/release/1.x", 1000 + j, "release/1.x: fix %d" % j, files, parent=100 if j == 1 else None)
    lightweight("v1.1", 1010)
    for i in range(101, 141):
        main_commit(i)
elif kind == "lib":
    commit("refs/heads/main", 1, "lib: start", [("README.md", "# lib\n\nA submodule of app.\n"),
                                               ("VERSION", "0.1.0\n")])
    commit("refs/heads/main", 2, "lib: util", [("lib/util.sh", "util() { echo util; }\n"), ("VERSION", "0.2.0\n")])
    commit("refs/heads/main", 3, "lib: 0.3.0", [("VERSION", "0.3.0\n")])
elif kind == "pypkg":
    def files(version):
        return [("pyproject.toml",
                 '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
                 '[project]\nname = "larder-test-gitpkg"\nversion = "%s"\n'
                 'description = "A package installed from git by the Larder tests"\n\n'
                 '[tool.setuptools]\npackages = ["larder_test_gitpkg"]\n' % version),
                ("larder_test_gitpkg/__init__.py", 'VERSION = "%s"\n' % version),
                ("README.md", "# larder-test-gitpkg\n")]
    commit("refs/heads/main", 1, "pypkg 1.0.0", files("1.0.0"))
    annotated("v1.0", 1, "larder-test-gitpkg 1.0.0")
    commit("refs/heads/main", 2, "pypkg: start 1.1.0.dev0", files("1.1.0.dev0"))
elif kind == "jspkg":
    def files(version):
        return [("package.json", '{\n  "name": "larder-test-gitdep",\n  "version": "%s",\n  "description": '
                 '"An npm git dependency for the Larder tests",\n  "main": "index.js",\n  "license": "MIT"\n}\n'
                 % version),
                ("index.js", "'use strict';\nexports.version = '%s';\n" % version)]
    commit("refs/heads/main", 1, "jspkg 1.0.0", files("1.0.0"))
    annotated("v1.0", 1, "larder-test-gitdep 1.0.0")
    commit("refs/heads/main", 2, "jspkg 1.1.0", files("1.1.0"))
else:
    raise SystemExit("unknown repository kind " + kind)
w("done\n")
PYEOF
        fail "make_git_repos: building $dir ($1) failed"
    gitfx_git -C "$dir" config uploadpack.allowFilter true
    gitfx_git -C "$dir" config uploadpack.allowAnySHA1InWant true
    # fast-import's pack has few deltas: repack as a server would have it
    gitfx_git -C "$dir" repack -a -d -q || fail "make_git_repos: git repack in $dir failed"
}

# make_git_repos ROOT BASE_URL
make_git_repos() {
    local root=$1 base=${2%/}
    [ -n "$base" ] || fail "make_git_repos: give the upstream's base URL (http://127.0.0.1:PORT)"
    command -v git >/dev/null 2>&1 || fail "git not found (scripts/install-deps installs it)"
    mkdir -p "$root"
    chmod 755 "$root"
    _gitfx_import "$root/org/lib.git" lib
    local lib_sha
    lib_sha=$(gitfx_git -C "$root/org/lib.git" rev-parse refs/heads/main) || fail "make_git_repos: no lib main"
    _gitfx_import "$root/org/app.git" app "$base" "$lib_sha"
    gitfx_git -C "$root/org/app.git" config http.receivepack true
    _gitfx_import "$root/org/pypkg.git" pypkg
    _gitfx_import "$root/org/jspkg.git" jspkg
    local n
    n=$(gitfx_git -C "$root/org/app.git" rev-list --count --all)
    [ "$n" = 150 ] || fail "make_git_repos: org/app has $n commits, expected 150"
}

# git_upstream_commit ROOT REPO [FILE] -> the new commit id on REPO's main
git_upstream_commit() {
    local root=$1 repo=$2 file=${3:-UPSTREAM-CHANGES.txt}
    local gd=$root/$repo.git idx old blob tree new
    [ -d "$gd" ] || fail "git_upstream_commit: no repository $gd"
    idx=$(mktemp "$WORK/gitfx-index.XXXXXX")
    rm -f "$idx"
    old=$(gitfx_git --git-dir "$gd" rev-parse refs/heads/main) || fail "git_upstream_commit: $repo has no main"
    GIT_INDEX_FILE=$idx gitfx_git --git-dir "$gd" read-tree "$old" || fail "git_upstream_commit: read-tree"
    blob=$({ gitfx_git --git-dir "$gd" cat-file blob "$old:$file" 2>/dev/null || true
        echo "change made upstream at $(date -u +%FT%T.%NZ)"; } | gitfx_git --git-dir "$gd" hash-object -w --stdin) ||
        fail "git_upstream_commit: hash-object"
    GIT_INDEX_FILE=$idx gitfx_git --git-dir "$gd" update-index --add --cacheinfo "100644,$blob,$file" ||
        fail "git_upstream_commit: update-index"
    tree=$(GIT_INDEX_FILE=$idx gitfx_git --git-dir "$gd" write-tree) || fail "git_upstream_commit: write-tree"
    rm -f "$idx"
    new=$(gitfx_git --git-dir "$gd" commit-tree "$tree" -p "$old" -m "upstream change to $file") ||
        fail "git_upstream_commit: commit-tree"
    gitfx_git --git-dir "$gd" update-ref -m "git_upstream_commit" refs/heads/main "$new" "$old" ||
        fail "git_upstream_commit: update-ref"
    echo "$new"
}

# ---------------------------------------------------------------------------------------------------------------
# the upstream

# _gitfx_children PID -> the PIDs of PID's children, one a line
_gitfx_children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# start_git_upstream ROOT PORT
start_git_upstream() {
    local root=$1 port=$2
    local dir=$WORK/git-upstream
    local sock=$dir/fcgiwrap.sock n=${GITFX_FCGI_CHILDREN:-4}
    command -v fcgiwrap >/dev/null 2>&1 || [ -x /usr/sbin/fcgiwrap ] ||
        fail "fcgiwrap not installed (scripts/install-deps installs it: apt-get install fcgiwrap)"
    [ -x "$GITFX_HTTP_BACKEND" ] || fail "git http-backend not found at $GITFX_HTTP_BACKEND"
    [ -n "$(find "$root" -mindepth 2 -maxdepth 2 -name '*.git' -type d -print -quit 2>/dev/null)" ] ||
        fail "start_git_upstream: no repositories in $root (make_git_repos first)"
    mkdir -p "$dir/logs" "$dir/tmp"
    chmod 755 "$dir"
    rm -f "$sock"
    # fcgiwrap execs the CGI with the FastCGI parameters as its whole environment (nothing of ours leaks through);
    # -f sends the CGI's stderr to nginx's error log
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$(command -v fcgiwrap || echo /usr/sbin/fcgiwrap)" -f -c "$n" \
        -s "unix:$sock" </dev/null >>"$dir/logs/fcgiwrap.log" 2>&1 &
    local fpid=$!
    track_pid "$fpid"
    local deadline=$((SECONDS + 10)) kids=()
    while :; do
        mapfile -t kids < <(_gitfx_children "$fpid")
        [ -S "$sock" ] && [ "${#kids[@]}" -ge "$n" ] && break
        pid_alive "$fpid" || fail "fcgiwrap exited at start-up: $(cat "$dir/logs/fcgiwrap.log")"
        [ "$SECONDS" -lt "$deadline" ] || fail "fcgiwrap did not create $sock and $n workers within 10 s"
        sleep 0.05
    done
    # fcgiwrap's workers outlive their parent, and the parent replaces a worker that dies: stop the parent first,
    # so track the workers, then the parent again (the EXIT trap stops the last tracked first)
    untrack_pid "$fpid"
    local k
    for k in "${kids[@]}"; do track_pid "$k"; done
    track_pid "$fpid"
    GIT_UPSTREAM_FCGI_PIDS="$fpid ${kids[*]}"
    {
        nginx_common_main "$dir"
        cat <<EOF
    log_format gitfx '\$remote_addr [\$time_local] "\$request" \$status \$body_bytes_sent rt=\$request_time gp="\$http_git_protocol" ua="\$http_user_agent"';
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        access_log $dir/logs/access.log gitfx;
        client_max_body_size 0;
        location / {
            fastcgi_pass unix:$sock;
            fastcgi_param SCRIPT_FILENAME $GITFX_HTTP_BACKEND;
            fastcgi_param GIT_PROJECT_ROOT $root;
            fastcgi_param GIT_HTTP_EXPORT_ALL 1;
            fastcgi_param GIT_CONFIG_NOSYSTEM 1;
            fastcgi_param GIT_PROTOCOL \$http_git_protocol;
            fastcgi_param PATH_INFO \$uri;
            fastcgi_param QUERY_STRING \$query_string;
            fastcgi_param REQUEST_METHOD \$request_method;
            fastcgi_param CONTENT_TYPE \$content_type;
            fastcgi_param CONTENT_LENGTH \$content_length;
            fastcgi_param REQUEST_URI \$request_uri;
            fastcgi_param SERVER_PROTOCOL \$server_protocol;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param REMOTE_ADDR \$remote_addr;
            fastcgi_param REMOTE_USER \$remote_user;
            fastcgi_param PATH /usr/bin:/bin;
            fastcgi_read_timeout 120s;
            fastcgi_buffering off;
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    NGINX_WAIT_PORTS=$port run_nginx "$dir"
    GIT_UPSTREAM_NGINX_PID=$NGINX_PID
    GIT_UPSTREAM_URL=http://127.0.0.1:$port
    GIT_UPSTREAM_LOG=$dir/logs/access.log
}

# stop_git_upstream
stop_git_upstream() {
    local p
    [ -n "${GIT_UPSTREAM_NGINX_PID:-}" ] && stop_pid "$GIT_UPSTREAM_NGINX_PID"
    for p in ${GIT_UPSTREAM_FCGI_PIDS:-}; do stop_pid "$p"; done
    GIT_UPSTREAM_NGINX_PID=
    GIT_UPSTREAM_FCGI_PIDS=
}

# git_upstream_count KIND REPO
git_upstream_count() {
    local kind=$1 repo=$2
    [ -f "${GIT_UPSTREAM_LOG:-}" ] || { echo 0; return; }
    local re=${repo//./\\.} pat
    case "$kind" in
    refs) pat="\"GET /$re(\\.git)?/info/refs\\?service=git-upload-pack " ;;
    upload-pack) pat="\"POST /$re(\\.git)?/git-upload-pack " ;;
    receive-pack) pat="\"[A-Z]+ /$re(\\.git)?/[^ ]*git-receive-pack" ;;
    v2) pat="\"[A-Z]+ /$re(\\.git)?/.* gp=\"[^\"]*version=2" ;;
    all) pat="\"[A-Z]+ /$re(\\.git)?/" ;;
    *) fail "git_upstream_count: unknown kind $kind" ;;
    esac
    awk -v p="$pat" '$0 ~ p { n++ } END { print n + 0 }' "$GIT_UPSTREAM_LOG"
}

# git_upstream_requests
git_upstream_requests() {
    [ -f "${GIT_UPSTREAM_LOG:-}" ] || return 0
    awk -F'"' '{ split($2, r, " "); split($3, s, " "); print r[1], r[2], s[1], "gp=" $4 }' "$GIT_UPSTREAM_LOG"
}

# ---------------------------------------------------------------------------------------------------------------
# pip and npm, installing from git

# gitfx_pip_ready -> 0 when $PY can build a setuptools package offline (pip, setuptools.build_meta and wheel
# importable: --no-build-isolation installs nothing); otherwise prints why
gitfx_pip_ready() {
    local why
    # two processes: pip and setuptools in one may trip over setuptools' distutils shim
    if why=$("$PY" -m pip --version 2>&1) && why=$("$PY" -c 'import setuptools.build_meta, wheel' 2>&1); then
        return 0
    fi
    echo "$PY cannot build a setuptools package without the internet: ${why##*$'\n'}"
    return 1
}

# gitfx_pip_install TARGET REQUIREMENT - pip install of one requirement (git+http://...@ref) into the directory
# TARGET, offline-capable: no index, no build isolation, no dependencies, no cache, no user/site config. Output to
# the caller's stdout/stderr; returns pip's exit code
gitfx_pip_install() {
    local target=$1 req=$2
    rm -rf "$target"
    mkdir -p "$target"
    gitfx_client_run env PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 PYTHONNOUSERSITE=1 "$PY" -m pip install \
        --no-index --no-build-isolation --no-deps --no-cache-dir --disable-pip-version-check --target "$target" "$req"
}

# gitfx_npm_ready -> 0 when the machine's npm and node are there; otherwise prints why
gitfx_npm_ready() {
    command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 && return 0
    echo "npm or node not on PATH"
    return 1
}

# gitfx_npm_install DIR SPEC - a fresh project DIR/app (package.json, no dependencies) and `npm install SPEC` in it
# (SPEC: git+http://...#ref), with an empty cache DIR/npm-cache, config files of its own (DIR/npmrc) and a registry
# that refuses connections (127.0.0.1:9), so nothing but git is used. Output to the caller's stdout/stderr; returns
# npm's exit code. The package lands in DIR/app/node_modules/<name>
gitfx_npm_install() {
    local dir=$1 spec=$2 v unset=()
    rm -rf "$dir/app" "$dir/npm-cache"
    mkdir -p "$dir/app" "$dir/npm-cache"
    printf '{\n  "name": "larder-test-git-app",\n  "version": "1.0.0",\n  "private": true\n}\n' >"$dir/app/package.json"
    printf 'update-notifier=false\nfund=false\naudit=false\n' >"$dir/npmrc"
    : >"$dir/npm-global.npmrc"
    for v in $(compgen -e); do
        case "$v" in [Nn][Pp][Mm]_[Cc][Oo][Nn][Ff][Ii][Gg]_*) unset+=(-u "$v") ;; esac
    done
    gitfx_client_run env "${unset[@]+"${unset[@]}"}" npm --userconfig "$dir/npmrc" --globalconfig "$dir/npm-global.npmrc" \
        --cache "$dir/npm-cache" --registry http://127.0.0.1:9/ --no-audit --no-fund --no-update-notifier \
        --prefix "$dir/app" install "$spec"
}
