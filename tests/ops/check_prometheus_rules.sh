#!/usr/bin/env bash
# deploy/prometheus/outboxd.rules.yml: valid rules (promtool check rules) that fire when they
# should and not before (promtool test rules on the synthetic series of outboxd.rules.test.yml).
#   tests/ops/check_prometheus_rules.sh DEPLOY_PROMETHEUS_DIR
set -euo pipefail
cd "$1"
if ! command -v promtool >/dev/null; then
  echo "FAIL: promtool not found; run scripts/install-deps.sh (Debian package prometheus)" >&2
  exit 1
fi
promtool check rules outboxd.rules.yml
promtool test rules outboxd.rules.test.yml
