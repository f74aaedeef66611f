#!/usr/bin/env bash
# CloudEvents, read by a real CloudEvents SDK: outboxd --format=cloudevents relays outbox rows
# (jsonb payloads with unicode, a `headers` column with a ce_* extension, a ce_* name no
# extension may have, which outboxd leaves out, and a non-CloudEvents header; two aggregate
# types, two transactions) to a real Kafka; the CloudEvents Java SDK's
# Kafka binding (io.cloudevents:cloudevents-kafka, pinned in tests/compat/cloudevents/pom.xml)
# reads them back with CloudEventDeserializer (tests/compat/cloudevents/CloudEventsReader.java,
# compiled here with javac) and prints what it made of each; this asserts every attribute
# against the row in PostgreSQL: specversion 1.0, id, source, type, time (= the transaction's
# commit timestamp, to the microsecond), subject, datacontenttype, data, the extension, and
# the record key and topic.
#
#   tests/compat/cloudevents_sdk.sh BUILD_BIN_DIR
# OUTBOXD_TEST_KAFKA_CLUSTER: the ctest fixture's cluster directory (kafka_single); without it
# a cluster of its own is started.
set -euo pipefail
bin=$(cd "$1" && pwd)
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
work=$(mktemp -d /tmp/outboxd-cloudevents.XXXXXX)
chmod 755 "$work"  # PostgreSQL runs as the postgres user when we are root
source scripts/lib/throwaway-pg.sh
relay_pid=""
own_cluster=""
cleanup() {
  set +e
  [[ -n $relay_pid ]] && { kill "$relay_pid" 2>/dev/null; wait "$relay_pid" 2>/dev/null; }
  pg_stop
  [[ -n $own_cluster ]] && tests/kafka/kafka-cluster.sh destroy "$work/kafka" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [[ -f $work/relay.log ]] && tail -30 "$work/relay.log" >&2; exit 1; }

jars=$(scripts/fetch-kafka-jars.sh tests/compat/cloudevents/pom.xml)
mkdir -p "$work/classes" "$work/pg"
javac -nowarn -d "$work/classes" -cp "$(cat "$jars/classpath")" \
  tests/compat/cloudevents/CloudEventsReader.java || fail "javac"
if [[ -n ${OUTBOXD_TEST_KAFKA_CLUSTER:-} ]]; then
  brokers=$(tests/kafka/kafka-cluster.sh bootstrap "$OUTBOXD_TEST_KAFKA_CLUSTER")
else
  own_cluster=1
  brokers=$(tests/kafka/kafka-cluster.sh start "$work/kafka" --nodes=1 --owner=$$ \
    --prop=auto.create.topics.enable=true)
fi
# The commit timestamp of each row's transaction is what ce_time must say.
pg_start "$work/pg" track_commit_timestamp=on
"$bin/outboxd" init --postgres="$PG_CONNINFO" --table=public.outbox >/dev/null
prefix="ce$$."
"$bin/outboxd" run --postgres="$PG_CONNINFO" --brokers="$brokers" --table=public.outbox \
  --format=cloudevents --topic_prefix="$prefix" --admin_listen= --metrics_listen= \
  >"$work/relay.log" 2>&1 &
relay_pid=$!
pg_psql -q <<'SQL'
BEGIN;
INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) VALUES
  ('Order', 'o-1', 'com.example.order.created', '{"name": "Zoë ✓ 日本", "total": 42.50, "items": [1, 2]}',
   '{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "ce_tenant": "acme",
    "ce_Tenant-ID": "no extension may be named so"}'),
  ('Order', 'o-1', 'com.example.order.paid', '{"paid": true, "z": null}', NULL);
COMMIT;
INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) VALUES
  ('Customer', 'c-7', 'com.example.customer.renamed', '[1, "two", {"three": 3}]');
SQL
pg_psql -tA -F $'\t' -c "SELECT id, aggregate_type, aggregate_id, event_type, payload::text,
    (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint,
    coalesce(headers->>'ce_tenant', '') FROM outbox ORDER BY id" >"$work/rows.tsv"
count=$(wc -l <"$work/rows.tsv")
java -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$(cat "$jars/classpath"):$work/classes" \
  CloudEventsReader "$brokers" "${prefix}Order,${prefix}Customer" "$count" 60 \
  >"$work/sdk.jsonl" 2>"$work/sdk.err" || fail "the CloudEvents SDK: $(grep -v SLF4J "$work/sdk.err")"
python3 - "$work/sdk.jsonl" "$work/rows.tsv" "$prefix" <<'PY'
import json, sys
events = {}
for line in open(sys.argv[1], encoding="utf-8"):
    e = json.loads(line)
    events[e["id"]] = e
prefix = sys.argv[3]
problems = []
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2], encoding="utf-8")]
for ident, aggregate_type, aggregate_id, event_type, payload, commit_micros, tenant in rows:
    e = events.get(ident)
    if e is None:
        problems.append(f"event {ident}: not read by the SDK")
        continue
    want = {
        "topic": prefix + aggregate_type, "key": aggregate_id, "specversion": "1.0", "id": ident,
        "source": "/outboxd/postgres/public.outbox", "type": event_type, "subject": aggregate_id,
        "datacontenttype": "application/json", "dataschema": None, "time_micros": int(commit_micros),
        "extensions": {"tenant": tenant} if tenant else {}, "data": payload,
    }
    for name, value in want.items():
        if e[name] != value:
            problems.append(f"event {ident}: {name} is {e[name]!r}, want {value!r}")
    print(f"event {ident}: specversion {e['specversion']}, source {e['source']}, type {e['type']}, "
          f"time {e['time']}, subject {e['subject']}, datacontenttype {e['datacontenttype']}, "
          f"extensions {e['extensions']}, data {len(e['data'].encode())} bytes")
if len(events) != len(rows):
    problems.append(f"the SDK read {len(events)} events, PostgreSQL has {len(rows)}")
for p in problems:
    print("CLOUDEVENTS", p)
print(f"{len(rows)} events read back by the CloudEvents Java SDK, {len(problems)} problems")
sys.exit(1 if problems else 0)
PY
