# Sourced by shell tests that run `outboxd run` against a throwaway PostgreSQL
# (throwaway-pg.sh) and kafka-mock.
#
#   source scripts/lib/throwaway-relay.sh
#   relay_env_start BIN_DIR NAME   # sets T (scratch dir), PG_CONNINFO, BROKERS; `outboxd init` done
#   "$BIN/outboxd" run --postgres="$PG_CONNINFO" --brokers="$BROKERS" ... > "$T/run.log" 2>&1 &
#   RELAY=$!                       # SIGTERMed and waited for on exit
#   fail "message"                 # prints FAIL: message, exits 1
#
# An EXIT trap stops the relay, kafka-mock and PostgreSQL and removes the
# scratch directories; every wait has a deadline.

source "$(dirname "${BASH_SOURCE[0]}")/throwaway-pg.sh"

T=""
RELAY=""
KM=""
_RELAY_ENV_PG=""

relay_env_cleanup() {
  [[ -n "$RELAY" ]] && kill -TERM "$RELAY" 2>/dev/null && wait "$RELAY" 2>/dev/null || true
  [[ -n "$KM" ]] && kill "$KM" 2>/dev/null || true
  pg_stop
  [[ -n "$T" ]] && rm -rf "$T"
  [[ -n "$_RELAY_ENV_PG" ]] && rm -rf "$_RELAY_ENV_PG"
  return 0
}

fail() { echo "FAIL: $*" >&2; exit 1; }

relay_env_start() {
  local bin=$1 name=$2
  T=$(mktemp -d "/tmp/outboxd-$name.XXXXXX")
  _RELAY_ENV_PG=$(mktemp -d "/tmp/outboxd-$name-pg.XXXXXX")
  trap relay_env_cleanup EXIT
  pg_start "$_RELAY_ENV_PG" >/dev/null
  "$bin/kafka-mock" --brokers=1 > "$T/km.out" 2>/dev/null &
  KM=$!
  # Up to 30 s: CI machines are busy.
  for _ in $(seq 300); do [[ -s "$T/km.out" ]] && break; sleep 0.1; done
  BROKERS=$(head -1 "$T/km.out")
  [[ -n "$BROKERS" ]] || fail "kafka-mock printed no bootstrap list"
  "$bin/outboxd" init --postgres="$PG_CONNINFO" >/dev/null
}
