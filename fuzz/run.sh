#!/usr/bin/env bash
# Runs a libFuzzer target built by `make fuzz`.
#
#   fuzz/run.sh FUZZ_BUILD_DIR SECONDS [pgoutput|json] [extra libFuzzer flags...]
#
# pgoutput (the default): fuzz/pgoutput_fuzz.cc. Seeds come from
# tests/fixtures/pgoutput*/ (real captures and hand-built messages), framed
# the way fuzz/pgoutput_fuzz.cc reads its input: one configuration byte
# (protocol version of the folder: pgoutput-vN, plain pgoutput = 1; v4 with
# parallel streaming), then each message as Int16 length + bytes. One seed
# per folder holds its whole message sequence (so stream state and the
# relation cache are reached; messages over 4 kB left out), once more with
# logical decoding messages as events, and one seed per message alone.
# New inputs the fuzzer finds go to FUZZ_BUILD_DIR/corpus; a crash is written
# to FUZZ_BUILD_DIR/crash-* and the script fails.
# json: fuzz/json_fuzz.cc, the decoder's JSON (message content, headers).
# Seeds: each line of fuzz/json_seeds.txt once per way of reading it (the
# first byte); new inputs go to FUZZ_BUILD_DIR/corpus-json.
# Exit 77 (ctest: skipped) when the fuzzer was not built.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "${1:?usage: fuzz/run.sh FUZZ_BUILD_DIR SECONDS}" 2>/dev/null && pwd) || {
  echo "fuzz: build dir $1 missing (make fuzz); skipping" >&2
  exit 77
}
SECONDS_TO_RUN=${2:?usage: fuzz/run.sh FUZZ_BUILD_DIR SECONDS}
shift 2
TARGET=pgoutput
if [[ ${1:-} == pgoutput || ${1:-} == json ]]; then
  TARGET=$1
  shift
fi
FUZZER="$BUILD/bin/${TARGET}_fuzz"
if [[ ! -x $FUZZER ]]; then
  echo "fuzz: $FUZZER not built (make fuzz); skipping" >&2
  exit 77
fi

if [[ $TARGET == json ]]; then
  SEEDS="$BUILD/seeds-json"
  CORPUS="$BUILD/corpus-json"
  rm -rf "$SEEDS"
  mkdir -p "$SEEDS" "$CORPUS"
  n=0
  while IFS= read -r line; do
    n=$((n + 1))
    for mode in 0 1 2 3; do
      { printf "\\x0$mode"; printf '%s' "$line"; } >"$SEEDS/line$n-mode$mode"
    done
  done <"$HERE/json_seeds.txt"
  cd "$BUILD"
  exec "$FUZZER" -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 -max_len=16384 \
    -timeout=10 -rss_limit_mb=2048 "$@" "$CORPUS" "$SEEDS"
fi

SEEDS="$BUILD/seeds"
CORPUS="$BUILD/corpus"
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$CORPUS"

# Int16 big-endian length, as raw bytes.
len16() { printf "\\x$(printf %02x $(($1 >> 8)))\\x$(printf %02x $(($1 & 255)))"; }

for dir in "$HERE"/../tests/fixtures/pgoutput*/; do
  name=$(basename "$dir")
  version=1
  [[ $name =~ -v([1-4]) ]] && version=${BASH_REMATCH[1]}
  config=$((version - 1))
  [[ $version == 4 ]] && config=$((config | 4))
  cfg() { printf "\\x$(printf %02x "$config")"; }
  whole="$SEEDS/$name-all"
  cfg >"$whole"
  for f in "$dir"*.bin; do
    size=$(stat -c %s "$f")
    # The sequence leaves out messages over 4 kB (the 64 kB inserts that make
    # the server stream): they would push the seed past -max_len, cutting off
    # the stream and two-phase messages after them. Each is still a seed alone.
    ((size <= 4096)) && { len16 "$size"; cat "$f"; } >>"$whole"
    { cfg; len16 "$size"; cat "$f"; } >"$SEEDS/$name-$(basename "$f" .bin)"
  done
  # The same sequence with logical decoding messages as events (bit 3).
  { printf "\\x$(printf %02x $((config | 8)))"; tail -c +2 "$whole"; } >"$whole-messages"
done
# Regression inputs of past findings, as the fuzzer wrote them.
if compgen -G "$HERE/regressions/*" >/dev/null; then cp "$HERE"/regressions/* "$SEEDS"/; fi

cd "$BUILD"
exec "$FUZZER" -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 -max_len=65536 \
  -timeout=10 -rss_limit_mb=2048 "$@" "$CORPUS" "$SEEDS"
