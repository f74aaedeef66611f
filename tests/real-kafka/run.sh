#!/usr/bin/env bash
# Runs the fault suite in exactly-once mode against a real, single-node Kafka (Docker), kill -9
# scenarios included, asserting that a read_committed reader sees zero duplicates.
#
#   tests/real-kafka/run.sh                      # exactly-once scenarios (the default filter)
#   tests/real-kafka/run.sh --gtest_filter='*'   # both modes (extra arguments go to the test)
#   KEEP_KAFKA=1 tests/real-kafka/run.sh         # leave Kafka running afterwards
#   BUILD_DIR=build-x tests/real-kafka/run.sh    # another build directory (default: build)
#
# Exit codes: 0 passed, 1 a test failed, 2 no Docker (compose or a running engine).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
COMPOSE_FILE="$ROOT/tests/real-kafka/docker-compose.yml"
PROJECT=outboxd-real-kafka
BROKERS=localhost:39092
BUILD_DIR="${BUILD_DIR:-build}"

if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
else
  echo "run.sh: needs Docker Compose ('docker compose' or 'docker-compose'); neither was found" >&2
  exit 2
fi
if ! docker info >/dev/null 2>&1; then
  echo "run.sh: no Docker engine is running (docker info failed); start Docker and run again" >&2
  exit 2
fi
# One string, for the tests' `sh -c` and for messages.
COMPOSE_CMD="${COMPOSE[*]} -p $PROJECT -f $COMPOSE_FILE"

teardown() {
  if [[ "${KEEP_KAFKA:-}" == 1 ]]; then
    echo "run.sh: Kafka left running on $BROKERS (stop it: $COMPOSE_CMD down -v)"
  else
    $COMPOSE_CMD down -v >/dev/null 2>&1 || true
  fi
}
trap teardown EXIT

echo "run.sh: starting Kafka ($COMPOSE_CMD up -d)"
$COMPOSE_CMD up -d
# Unpaused in case an earlier run was interrupted during an outage.
$COMPOSE_CMD unpause kafka >/dev/null 2>&1 || true

echo -n "run.sh: waiting for Kafka"
deadline=$((SECONDS + 180))
until $COMPOSE_CMD exec -T kafka /opt/kafka/bin/kafka-broker-api-versions.sh \
    --bootstrap-server localhost:9092 >/dev/null 2>&1; do
  if ((SECONDS > deadline)); then
    echo; echo "run.sh: Kafka did not answer within 180 s" >&2
    $COMPOSE_CMD logs --tail=50 kafka >&2 || true
    exit 1
  fi
  echo -n .; sleep 2
done
echo " up"

echo "run.sh: building ($BUILD_DIR)"
[[ -f "$BUILD_DIR/CMakeCache.txt" ]] || cmake -S . -B "$BUILD_DIR"
cmake --build "$BUILD_DIR" -j"$(nproc)" --target fault_suite_test outboxd kafka-mock

args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(--gtest_filter='*exactly_once*')
report="$ROOT/$BUILD_DIR/real-kafka-faults.xml"
log="$ROOT/$BUILD_DIR/real-kafka-faults.log"
echo "run.sh: fault suite against $BROKERS: ${args[*]}"
status=0
OUTBOXD_TEST_KAFKA_BROKERS="$BROKERS" \
OUTBOXD_TEST_KAFKA_DOWN_CMD="$COMPOSE_CMD pause kafka" \
OUTBOXD_TEST_KAFKA_UP_CMD="$COMPOSE_CMD unpause kafka" \
  "$BUILD_DIR/bin/fault_suite_test" --gtest_output="xml:$report" "${args[@]}" 2>&1 |
  tee "$log" || status=$?

echo
echo "run.sh: summary (duplicates must be 0 in mode=exactly_once; the test asserts it)"
grep -o 'faults: scenario=[^|]*' "$log" || true
if ((status == 0)); then
  echo "run.sh: PASSED"
else
  echo "run.sh: FAILED (exit $status); log $log, report $report"
fi
exit $((status == 0 ? 0 : 1))
