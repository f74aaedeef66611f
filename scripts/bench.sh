#!/usr/bin/env bash
# Runs the CDC-vs-polling bench suite (bench/suite) and writes its report.
#
#   scripts/bench.sh [--quick] [--build-dir=build] [-- outboxd-bench flags...]
#
# Full run (~10-12 min on 2 cores): bench/results/<date>-<host>.md (tables), <...>-latency.png
# (gnuplot) and <...>.tsv (raw rows). --quick (~30 s, CI smoke from `make test`): a few short
# runs into <build-dir>/bench-quick/, nothing written under bench/results; it checks that every
# stage ran and produced a report, not that targets are met.
#
# The suite starts its own throwaway PostgreSQL 15 and kafka-mock. Expects the binaries built
# (make build). Progress goes to stderr.
set -euo pipefail

cd "$(dirname "$0")/.."
quick=0
build_dir=build
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --build-dir=*) build_dir=${1#--build-dir=} ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: $0 [--quick] [--build-dir=DIR] [-- outboxd-bench flags]" >&2; exit 2 ;;
  esac
  shift
done
bin="$build_dir/bin"
for b in outboxd-bench bench-poller outboxd kafka-mock; do
  [[ -x "$bin/$b" ]] || { echo "bench: $bin/$b is missing; run make build first" >&2; exit 1; }
done

# gnuplot draws the plot. The full bench installs it; the quick smoke run only uses it if present.
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
  rm -rf "$out"
  "$bin/outboxd-bench" --quick --out="$out" --git_rev="$rev" ${extra[@]+"${extra[@]}"}
  command -v gnuplot >/dev/null && gnuplot "$out/latency.gp"
  for section in "## Latency" "## Drain" "## Memory" "## Targets"; do
    grep -q "^$section" "$out/report.md" || { echo "bench: report lacks '$section'" >&2; exit 1; }
  done
  echo "bench (quick): OK, report in $out/report.md"
  exit 0
fi

stamp="$(date -u +%Y-%m-%d)-$(hostname -s)"
out="$build_dir/bench-$stamp"
rm -rf "$out"
"$bin/outboxd-bench" --out="$out" --plot_name="$stamp-latency.png" --git_rev="$rev" \
  ${extra[@]+"${extra[@]}"}
gnuplot "$out/latency.gp"
mkdir -p bench/results
cp "$out/report.md" "bench/results/$stamp.md"
cp "$out/$stamp-latency.png" "bench/results/$stamp-latency.png"
cp "$out/runs.tsv" "bench/results/$stamp.tsv"
echo "bench: bench/results/$stamp.md, bench/results/$stamp-latency.png, bench/results/$stamp.tsv"
