#!/usr/bin/env bash
# deploy/prometheus/outboxd.rules.yml: valid rules (promtool check rules) that fire when they
# should and not before (promtool test rules on the synthetic series of outboxd.rules.test.yml).
#   tests/ops/check_prometheus_rules.sh DEPLOY_PROMETHEUS_DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
promtool=$("$root/scripts/fetch-promtool.sh") || { echo "FAIL: no promtool (see above)" >&2; exit 1; }
cd "$1"
"$promtool" check rules outboxd.rules.yml
"$promtool" test rules outboxd.rules.test.yml
