# shellcheck shell=bash
# bundle_fixture.sh - helpers of the bundle tests (source after lib.sh). The test defines `state` (what must not
# change when an import is refused, printed) and sets BUNDLE_CFG (the importing larder's config).

# bundle_refused FILE LABEL EXPECTED_TEXT [CONFIG] - `larder import FILE` fails, says EXPECTED_TEXT, changes nothing
bundle_refused() {
    local before after rc=0
    before=$(state)
    timeout 120 "$LARDER_BIN" import --config "${4:-$BUNDLE_CFG}" "$1" >"$WORK/import-$2.log" 2>&1 </dev/null || rc=$?
    assert_ne 0 "$rc" "import of the $2 bundle is refused: $(tail -1 "$WORK/import-$2.log")"
    assert_contains "$(cat "$WORK/import-$2.log")" "$3" "the $2 bundle's refusal says why"
    sleep 0.3
    after=$(state)
    assert_eq "$before" "$after" "the $2 bundle left the store as it was"
}

# bundle_flip TAR PREFIX - flip one bit in the middle of the first member whose name starts with PREFIX
bundle_flip() {
    local off
    off=$("$PY" -c 'import sys, tarfile
t = tarfile.open(sys.argv[1])
m = [m for m in t.getmembers() if m.name.startswith(sys.argv[2])][0]
print(m.offset_data + m.size // 2)' "$1" "$2") || fail "bundle_flip: no member $2 in $1"
    "$PY" -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 1]))' \
        "$1" "$off"
}
