#!/usr/bin/env bash
# test_tls.sh - a TLS listener speaking HTTP/2 and HTTP/1.1, and HTTPS upstreams (nginx with TLS on localhost):
# an untrusted certificate must be refused; a self-signed one named by `upstream_ca` is trusted.
. "$(dirname "$0")/lib.sh"

NP=$(free_port)    # plain origin
NTP=$(free_port)   # TLS origin, cert "trusted"
NTP2=$(free_port)  # TLS origin, cert nobody trusts
LP=$(free_port)

mkcert() { # mkcert NAME
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$WORK/$1.key" -out "$WORK/$1.pem" >"$WORK/openssl.$1.log" 2>&1 || fail "openssl req for $1 failed"
    chmod 644 "$WORK/$1.key"
}
mkcert listener
mkcert upstream
mkcert untrusted

make_file "$WORK/origin/root/a.bin" 300000
A_SHA=$(sha256_file "$WORK/origin/root/a.bin")
start_nginx "$WORK/origin" "$NP"
mkdir -p "$WORK/tls-origin/root" "$WORK/tls-origin2/root"
cp "$WORK/origin/root/a.bin" "$WORK/tls-origin/root/s.bin"
cp "$WORK/origin/root/a.bin" "$WORK/tls-origin/root/check.bin"
cp "$WORK/origin/root/a.bin" "$WORK/tls-origin2/root/u.bin"
NGINX_TLS_CERT=$WORK/upstream.pem NGINX_TLS_KEY=$WORK/upstream.key start_nginx "$WORK/tls-origin" "$NTP"
NGINX_TLS_CERT=$WORK/untrusted.pem NGINX_TLS_KEY=$WORK/untrusted.key start_nginx "$WORK/tls-origin2" "$NTP2"
curl -sS --cacert "$WORK/upstream.pem" --resolve "localhost:$NTP:127.0.0.1" -o /dev/null "https://localhost:$NTP/check.bin" ||
    fail "the TLS nginx upstream itself does not work"
pass "TLS nginx upstream serves with its self-signed certificate"

CFG=$WORK/larder.yaml
CFG_TLS_CERT=$WORK/listener.pem CFG_TLS_KEY=$WORK/listener.key write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
upstream_ca: $WORK/upstream.pem
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
    - name: secure
      url: https://localhost:$NTP/
    - name: untrusted
      url: https://localhost:$NTP2/
EOF
LARDER_SCHEME=https start_larder "$CFG" "$LP"
L=$LARDER_URL/files

# ---- TLS listener, HTTP/2 -------------------------------------------------------------------------------------------
w=$(curl -sS -k --http2 -D "$WORK/h2.hdr" -o "$WORK/h2.out" -w '%{http_code} %{http_version}' "$L/origin/a.bin") ||
    fail "curl --http2 over TLS failed"
assert_eq "200 2" "$w" "HTTP/2 over TLS (status, version)"
assert_eq "$A_SHA" "$(sha256_file "$WORK/h2.out")" "bytes over HTTP/2"
assert_match "$(tr -d '\r' <"$WORK/h2.hdr")" '^x-larder-cache: MISS$' "X-Larder-Cache over HTTP/2"
w=$(curl -sS -k --http2 -o "$WORK/h2b.out" -w '%{http_code} %{http_version}' "$L/origin/a.bin")
assert_eq "200 2" "$w" "second HTTP/2 request"
assert_header "$L/origin/a.bin" X-Larder-Cache HIT -k --http2
assert_status "$L/origin/a.bin" 206 -k --http2 -H 'Range: bytes=0-99'
assert_status "$L/origin/a.bin" 304 -k --http2 -H "If-None-Match: \"$A_SHA\""
w=$(curl -sS -k --http1.1 -o /dev/null -w '%{http_code} %{http_version}' "$L/origin/a.bin")
assert_eq "200 1.1" "$w" "HTTP/1.1 over TLS"
# the listener presents the configured certificate (verify it properly, by name)
w=$(curl -sS --cacert "$WORK/listener.pem" --resolve "localhost:$LP:127.0.0.1" -o /dev/null -w '%{http_code}' \
    "https://localhost:$LP/-/health") || fail "verifying the listener certificate failed"
assert_eq 200 "$w" "listener certificate verifies against the configured cert"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$LP/-/health" 2>/dev/null || true)
assert_ne 200 "$code" "plain HTTP on the TLS port"

# concurrent HTTP/2 streams on one connection
args=()
for i in 1 2 3 4 5 6 7 8; do args+=(-o "$WORK/par.$i" "$L/origin/a.bin"); done
curl -sS -k --http2 --parallel --parallel-max 8 "${args[@]}" || fail "parallel HTTP/2 streams failed"
for i in 1 2 3 4 5 6 7 8; do assert_eq "$A_SHA" "$(sha256_file "$WORK/par.$i")" "parallel stream $i"; done

# ---- HTTPS upstreams ----------------------------------------------------------------------------------------------
code=$(curl -sS -k -o "$WORK/u.out" -w '%{http_code}' --max-time 30 "$L/untrusted/u.bin" 2>/dev/null || true)
assert_eq 502 "$code" "upstream with an untrusted certificate is refused"
assert_not_contains "$(api GET 'entries?protocol=files')" "localhost:$NTP2/" "untrusted upstream's object not cached"

code=$(curl -sS -k -o "$WORK/s.out" -w '%{http_code}' --max-time 30 "$L/secure/s.bin" 2>/dev/null || true)
assert_eq 200 "$code" "HTTPS upstream trusted through upstream_ca"
assert_eq "$A_SHA" "$(sha256_file "$WORK/s.out")" "bytes from the HTTPS upstream"
assert_header "$L/secure/s.bin" X-Larder-Cache HIT -k
assert_eq 1 "$(nginx_count "$WORK/tls-origin/logs/access.log" GET /s.bin)" "HTTPS upstream fetched once"

stop_larder

# ---- listen[].http2: false: ALPN offers HTTP/1.1 only (git's curl over https then keeps large POST bodies) -------------
sed -i "s|^      key: $WORK/listener.key\$|&\\n    http2: false|" "$CFG"
assert_contains "$(cat "$CFG")" "http2: false" "the listener is configured without HTTP/2"
LARDER_SCHEME=https start_larder "$CFG" "$LP"
w=$(curl -sS -k --http2 -o /dev/null -w '%{http_code} %{http_version}' "$L/origin/a.bin") || fail "curl over TLS failed"
assert_eq "200 1.1" "$w" "http2: false: a client asking for HTTP/2 gets HTTP/1.1"
stop_larder
finish
