#!/usr/bin/env bash
# Admin API over TLS with a bearer token, end to end: a self-signed
# certificate for 127.0.0.1, `outboxd run` serving with it, `outboxd status`
# succeeding with the CA and the token, and refused without either.
#   tests/integration/admin_tls_test.sh BIN_DIR
set -euo pipefail
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../scripts/lib/throwaway-relay.sh"
relay_env_start "$BIN" tls

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
  -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
printf 's3cret-token' > "$T/token"
"$BIN/outboxd" run --postgres="$PG_CONNINFO" --brokers="$BROKERS" --metrics_listen='' \
  --admin_listen=127.0.0.1:0 --admin_token_file="$T/token" \
  --admin_tls_cert="$T/cert.pem" --admin_tls_key="$T/key.pem" > "$T/run.log" 2>&1 &
RELAY=$!
for _ in $(seq 200); do grep -q "admin API listening" "$T/run.log" && break; sleep 0.05; done
ADDR=$(grep -o "admin API listening on [0-9.:]*" "$T/run.log" | awk '{print $5}')
[[ -n "$ADDR" ]] || fail "no 'admin API listening' line: $(cat "$T/run.log")"

out=$("$BIN/outboxd" status --admin="$ADDR" --admin_tls_ca="$T/cert.pem" --admin_token_file="$T/token" --json) ||
  fail "status over TLS with the token failed: $out"
grep -q '"slot":"outboxd"' <<<"$out" || fail "status over TLS: unexpected output: $out"

if out=$(timeout 20 "$BIN/outboxd" status --admin="$ADDR" --admin_token_file="$T/token" 2>&1); then
  fail "a plaintext client got through to the TLS server: $out"
fi
grep -q -- "--admin_tls_ca" <<<"$out" || fail "plaintext refusal does not point at --admin_tls_ca: $out"

if out=$("$BIN/outboxd" status --admin="$ADDR" --admin_tls_ca="$T/cert.pem" 2>&1); then
  fail "a request without the token got through: $out"
fi
grep -q -- "--admin_token_file" <<<"$out" || fail "token refusal does not name --admin_token_file: $out"
echo "admin TLS: 1 passed, 0 failed"
