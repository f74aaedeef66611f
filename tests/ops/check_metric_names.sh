#!/usr/bin/env bash
# Scrapes a running relay (throwaway PostgreSQL + kafka-mock + `outboxd run`) and checks that
# the Grafana dashboard and the Prometheus rules query only metrics it exports.
#   tests/ops/check_metric_names.sh BIN_DIR
set -euo pipefail
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT="$HERE/../.."
source "$ROOT/scripts/lib/throwaway-relay.sh"
relay_env_start "$BIN" ops
"$BIN/outboxd" run --postgres="$PG_CONNINFO" --brokers="$BROKERS" --admin_listen='' \
  --metrics_listen=127.0.0.1:0 > "$T/run.log" 2>&1 &
RELAY=$!
# Up to 30 s: CI machines are busy.
for _ in $(seq 300); do grep -q "streaming slot" "$T/run.log" && break; sleep 0.1; done
ADDR=$(grep -o "metrics listening on http://[0-9.:]*" "$T/run.log" | sed 's|.*http://||')
[[ -n "$ADDR" ]] || fail "no 'metrics listening' line: $(cat "$T/run.log")"
/usr/bin/python3 "$HERE/check_metric_names.py" "$ROOT/deploy/grafana/outboxd.json" \
  "$ROOT/deploy/prometheus/outboxd.rules.yml" "http://$ADDR/metrics"
