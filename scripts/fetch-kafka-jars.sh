#!/usr/bin/env bash
# Resolves the Apache Kafka jars pinned in tests/kafka/pom.xml (or in the pom given, e.g.
# bench/debezium/pom.xml: Kafka Connect + Debezium) into a cache outside the build tree and
# prints the cache directory (its `classpath` file is the -cp):
#
#   dir=$(scripts/fetch-kafka-jars.sh)     # ~/.cache/outboxd/kafka-jars/<pom hash>
#   java -cp "$(cat "$dir/classpath")" kafka.Kafka server.properties
#   dir=$(scripts/fetch-kafka-jars.sh bench/debezium/pom.xml)
#
# The cache is keyed by the pom's hash, so a changed pom resolves again and an unchanged one is
# offline and instant (the `complete` marker is written last). Maven itself fills ~/.m2 the first
# time (about 40 MB); later runs need no network. OUTBOXD_KAFKA_JARS_CACHE moves the cache.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pom="${1:-$root/tests/kafka/pom.xml}"
[[ -f "$pom" ]] || { echo "fetch-kafka-jars: no pom at $pom" >&2; exit 1; }
hash=$(sha256sum "$pom" | cut -c1-16)
cache="${OUTBOXD_KAFKA_JARS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd/kafka-jars}/$hash"

if [[ -f "$cache/complete" ]]; then
  echo "$cache"
  exit 0
fi
for tool in java mvn; do
  if ! command -v "$tool" >/dev/null; then
    echo "fetch-kafka-jars: $tool is missing; run scripts/install-deps.sh (openjdk-17-jre-headless, maven)" >&2
    exit 1
  fi
done

# Resolved into a fresh directory and renamed into place, so a run that is interrupted (or two
# runs at once) never leave a half-filled cache behind the marker.
mkdir -p "$(dirname "$cache")"
tmp=$(mktemp -d "$cache.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch-kafka-jars: resolving $pom into $cache" >&2
# -f: run from anywhere; runtime scope is what the broker needs, no test or provided jars.
if ! mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$tmp/jars" >"$tmp/mvn.log" 2>&1; then
  cat "$tmp/mvn.log" >&2
  echo "fetch-kafka-jars: mvn could not resolve $pom (no network to the Maven repository and nothing in ~/.m2?)" >&2
  exit 1
fi
ls "$tmp"/jars/*.jar >/dev/null
(cd "$tmp/jars" && ls *.jar | sed "s|^|$cache/jars/|" | paste -sd: -) >"$tmp/classpath"
rm -f "$tmp/mvn.log"
touch "$tmp/complete"
if ! mv -T "$tmp" "$cache" 2>/dev/null; then
  # Another run finished first; its cache is as good as ours.
  [[ -f "$cache/complete" ]] || { echo "fetch-kafka-jars: could not move $tmp to $cache" >&2; exit 1; }
fi
trap - EXIT
rm -rf "$tmp"
echo "$cache"
