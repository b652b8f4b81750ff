#!/usr/bin/env bash
# test_modules.sh - the module boundary holds (issue 11) and `larder config` works as documented:
#   - nothing in appliance/ names a protocol outside comments, or includes a header of protocols/;
#   - no protocol source file is over 700 lines;
#   - every module directory has its declaration (module.c) and is registered once in protocols/registry.c;
#   - `larder config --defaults` prints a configuration that `larder config --check` accepts and prints back
#     unchanged; `--check` refuses a bad file with file, line and key and exit status 2; the key list names every
#     module's section; a seed spec section and a config section exist for every registered module.
. "$(dirname "$0")/lib.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)

# ---- the boundary -------------------------------------------------------------------------------------------------
# appliance/*.c and *.h without comments and string literals' contents kept (a protocol named in a message counts)
code=$("$PY" - "$SRC"/appliance/*.c "$SRC"/appliance/*.h <<'PYEOF'
import re, sys
for path in sys.argv[1:]:
    text = open(path, encoding="utf-8").read()
    # drop /* */ and // comments, keep strings (a protocol in a message is protocol knowledge too)
    out = re.sub(r'"(?:\\.|[^"\\])*"|/\*.*?\*/|//[^\n]*',
                 lambda m: m.group(0) if m.group(0).startswith('"') else " ", text, flags=re.S)
    for n, line in enumerate(out.split("\n"), 1):
        if re.search(r'pypi|npm|apt|gems|oci|\bgit\b', line, re.I):
            print(f"{path}:{n}: {line.strip()}")
PYEOF
)
assert_eq "" "$code" "appliance/ names no protocol outside comments"

incs=$(grep -HnE '#include "[^"]+"' "$SRC"/appliance/*.c "$SRC"/appliance/*.h | while IFS= read -r l; do
    h=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"$l")
    [ -e "$SRC/appliance/$h" ] || printf '%s\n' "$l"
done)
assert_eq "" "$incs" "appliance/ includes only its own headers (and generated ones)"

big=$(find "$SRC/protocols" -name '*.c' -exec awk 'END { if (NR > 700) print FILENAME ": " NR " lines" }' {} \;)
assert_eq "" "$big" "no protocol source file over 700 lines"

for d in "$SRC"/protocols/*/; do
    name=$(basename "$d")
    [ -f "$d/module.c" ] || fail "protocols/$name has no module.c"
    n=$(grep -c "&larder_protocol_$name," "$SRC/protocols/registry.c" || true)
    assert_eq 1 "$n" "protocols/$name is registered once"
done

# ---- larder config ---------------------------------------------------------------------------------------------
"$LARDER_BIN" config --defaults >"$WORK/defaults.yaml" 2>"$WORK/defaults.err" || fail "config --defaults failed: $(cat "$WORK/defaults.err")"
"$LARDER_BIN" config --check "$WORK/defaults.yaml" >"$WORK/check.yaml" 2>"$WORK/check.err" ||
    fail "config --check of the printed defaults failed: $(cat "$WORK/check.err")"
assert_contains "$(cat "$WORK/check.err")" "configuration OK" "--check says OK"
# the same configuration: only the first line (which names the source file) differs
assert_eq "$(tail -n +2 "$WORK/defaults.yaml")" "$(tail -n +2 "$WORK/check.yaml")" "printed defaults parse back to themselves"

keys=$("$LARDER_BIN" config --keys)
for d in "$SRC"/protocols/*/; do
    name=$(basename "$d")
    assert_match "$keys" "^$name\\.enabled	bool	true	$name\$" "$name declares its section"
    assert_match "$(cat "$WORK/defaults.yaml")" "^$name:  # " "$name's section is printed with its summary"
done

cat >"$WORK/custom.yaml" <<'YAML'
data_dir: /srv/larder
npm:
  public_url: https://larder.example/npm/
apt:
  allow: [deb.debian.org, '127.0.0.1:8080']
oci:
  registries:
    ghcr.io: https://ghcr.io
YAML
out=$("$LARDER_BIN" config --check "$WORK/custom.yaml" 2>/dev/null) || fail "a valid file was refused"
assert_contains "$out" 'data_dir: "/srv/larder"  # core:' "core keys are printed with their owner"
assert_contains "$out" 'public_url: "https://larder.example/npm"  # npm:' "module keys are printed, normalised"
assert_contains "$out" 'allow: ["deb.debian.org", "127.0.0.1:8080"]  # apt:' "host lists are printed"
assert_contains "$out" 'ghcr.io: {url: "https://ghcr.io"}' "a module's own key type is printed"
assert_not_contains "$out" 'docker.io:' "a list given replaces its default"

printf 'npm:\n  ttl: 10m\n  public_url: ftp://x/\n' >"$WORK/bad.yaml"
set +e
err=$("$LARDER_BIN" config --check "$WORK/bad.yaml" 2>&1 >/dev/null)
rc=$?
set -e
assert_eq 2 "$rc" "--check of a bad file exits 2"
assert_contains "$err" "$WORK/bad.yaml:3: key 'npm.public_url'" "the error names file, line and key"

printf 'pypi:\n  enabled: false\nsvn:\n  allow: [x]\n' >"$WORK/unknown.yaml"
set +e
err=$("$LARDER_BIN" config --check "$WORK/unknown.yaml" 2>&1 >/dev/null)
rc=$?
set -e
assert_eq 2 "$rc" "an unknown section is refused"
assert_contains "$err" "unknown top-level key 'svn'" "the unknown section is named"

finish
