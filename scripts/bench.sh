#!/usr/bin/env bash
# Runs the bench suite (bench/suite) and writes its report.
#
#   scripts/bench.sh [--quick] [--mock] [--build-dir=build] [-- outboxd-bench flags...]
#
# Default: outboxd (at-least-once and exactly-once), Debezium (Kafka Connect standalone, two
# configurations), polling and the bare Kafka floor side by side on one real Apache Kafka
# (tests/kafka/kafka-cluster.sh, the tests' launcher) and one throwaway PostgreSQL 15: latency
# at 1k/5k/10k/max events/s with 1- and 10-event transactions, WAL held, CPU, RSS, and a
# 200,000-event backlog drain against bench-repl-reader (the source's limit). Full run (~17 min
# on 2 cores): bench/results/<date>-<host>.md, <...>-latency.png, <...>-wal.png, <...>.tsv.
#
# --quick (~65 s, from `make test`): every system for a few seconds at 1k events/s and a 5,000
# event drain into <build-dir>/bench-quick/, nothing under bench/results; it fails unless every
# system delivered and every section is in the report (targets are not checked).
#
# --mock: the earlier suite on kafka-mock (outboxd against polling, variants, repeats, a
# 1,000,000-event transaction; ~10-12 min, or ~30 s with --quick).
#
# Java: the broker's jars come from tests/kafka/pom.xml, Connect's and Debezium's from
# bench/debezium/pom.xml, both through scripts/fetch-kafka-jars.sh (resolved once into a cache,
# offline afterwards). Expects the binaries built (make build). Progress goes to stderr.
set -euo pipefail

cd "$(dirname "$0")/.."
quick=0
mock=0
build_dir=build
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --mock) mock=1 ;;
    --build-dir=*) build_dir=${1#--build-dir=} ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: $0 [--quick] [--mock] [--build-dir=DIR] [-- outboxd-bench flags]" >&2; exit 2 ;;
  esac
  shift
done
bin="$build_dir/bin"
for b in outboxd-bench bench-poller bench-repl-reader outboxd kafka-mock kafka-admin; do
  [[ -x "$bin/$b" ]] || { echo "bench: $bin/$b is missing; run make build first" >&2; exit 1; }
done

# gnuplot draws the plots. The full bench installs it; the quick smoke run only uses it if present.
if ! command -v gnuplot >/dev/null && [[ $quick -eq 0 ]]; then
  echo "bench: installing gnuplot-nox"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends gnuplot-nox ||
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        $sudo apt-get install -y -qq --no-install-recommends gnuplot-nox; }
fi

rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
# Earlier results under bench/results are not local changes to what is measured.
if ! git diff --quiet HEAD -- . ':(exclude)bench/results' 2>/dev/null; then rev="$rev+local changes"; fi

if [[ $quick -eq 1 ]]; then
  out="$build_dir/bench-quick"
  stamp=""
else
  stamp="$(date -u +%Y-%m-%d)-$(hostname -s)"
  [[ $mock -eq 1 ]] && stamp="$stamp-mock"
  out="$build_dir/bench-$stamp"
fi
rm -rf "$out"
mkdir -p "$out"
args=(--out="$out" --git_rev="$rev")
[[ $quick -eq 1 ]] && args+=(--quick)
[[ -n "$stamp" ]] && args+=(--plot_name="$stamp-latency.png")

kafka_dir=""
cleanup() {
  [[ -n "$kafka_dir" ]] && tests/kafka/kafka-cluster.sh destroy "$kafka_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [[ $mock -eq 1 ]]; then
  args+=(--broker=mock)
else
  connect_jars=$(scripts/fetch-kafka-jars.sh bench/debezium/pom.xml)
  kafka_dir="$out/kafka"
  export BUILD_DIR="$build_dir"  # kafka-cluster.sh finds kafka-admin there
  echo "bench: starting Apache Kafka (tests/kafka/kafka-cluster.sh)" >&2
  brokers=$(tests/kafka/kafka-cluster.sh start "$kafka_dir" --nodes=1 --owner=$$)
  kafka_jar=$(tr ':' '\n' <"$(cat "$kafka_dir/jars")/classpath" | grep -o 'kafka_2\.13-[^/]*\.jar$' | head -1)
  kafka_version=${kafka_jar#kafka_2.13-}
  args+=(--broker=kafka --kafka_brokers="$brokers" --kafka_version="${kafka_version%.jar}"
         --connect_classpath="$(cat "$connect_jars/classpath")")
fi

uptime_before=$(uptime)
"$bin/outboxd-bench" "${args[@]}" ${extra[@]+"${extra[@]}"}
uptime_after=$(uptime)
# The machine's load around the run (its figures are only comparable at similar load).
printf '\n## Machine load\n\n`uptime` before the run: `%s`  \nafter: `%s`\n' \
  "$(sed 's/^ *//' <<<"$uptime_before")" "$(sed 's/^ *//' <<<"$uptime_after")" >>"$out/report.md"
if command -v gnuplot >/dev/null; then
  for gp in "$out"/*.gp; do gnuplot "$gp"; done
fi

if [[ $quick -eq 1 ]]; then
  if [[ $mock -eq 1 ]]; then
    sections=("## Latency" "## Drain" "## Memory" "## Targets")
  else
    sections=("## Settings" "## Latency" "## WAL held" "## Drain" "## Targets")
    # Every system measured (all, or those of an outboxd-bench --systems=... after --) delivered
    # in its latency run (a p50 figure, not "–") and drained.
    declare -A names=([cdc]="outboxd (at-least-once)" [cdc-eos]="outboxd (exactly-once)"
                      [dbz-defaults]="Debezium (defaults)" [dbz-tuned]="Debezium (tuned)"
                      [poll]="polling" [floor]="Kafka floor")
    measured=(cdc cdc-eos dbz-defaults dbz-tuned poll floor)
    for arg in ${extra[@]+"${extra[@]}"}; do
      [[ $arg == --systems=* ]] && IFS=, read -ra measured <<<"${arg#--systems=}"
    done
    for key in "${measured[@]}"; do
      system=${names[$key]:-$key}
      grep -E "^\| $(sed 's/[()]/\\&/g' <<<"$system")[^|]* \| 1000 \| [0-9]+ \| [0-9]" "$out/report.md" >/dev/null ||
        { echo "bench: no measured latency row for $system in $out/report.md" >&2; exit 1; }
    done
  fi
  for section in "${sections[@]}"; do
    grep -q "^$section" "$out/report.md" || { echo "bench: report lacks '$section'" >&2; exit 1; }
  done
  echo "bench (quick): OK, report in $out/report.md"
  exit 0
fi

mkdir -p bench/results
cp "$out/report.md" "bench/results/$stamp.md"
cp "$out/runs.tsv" "bench/results/$stamp.tsv"
for png in "$out"/*.png; do cp "$png" bench/results/; done
echo "bench: bench/results/$stamp.md (+ plots and .tsv)"
