#!/usr/bin/env bash
# Differential test: the same outbox rows (Debezium's table layout, uuid ids, unicode, small and
# 5 kB JSON payloads, 30 aggregates) relayed by Debezium (Kafka Connect standalone + the Outbox
# Event Router, StringConverter; jars pinned in bench/debezium/pom.xml) and by
# `outboxd --format=debezium --table_layout=debezium` into separate topics of one real Kafka
# (tests/kafka/kafka-cluster.sh, 6 partitions per topic). For every event the key, the value
# bytes, the `id` header, the partition and the order within the partition must be identical.
# Debezium's own `__debezium.context.*` headers and outboxd's `event_type` header are the only
# headers allowed to differ (the test lists them).
#
#   tests/compat/debezium_differential.sh BUILD_BIN_DIR
set -euo pipefail
bin=$(cd "$1" && pwd)
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
work=$(mktemp -d /tmp/outboxd-compat.XXXXXX)
chmod 755 "$work"  # PostgreSQL runs as the postgres user when we are root
source scripts/lib/throwaway-pg.sh
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  pg_stop
  tests/kafka/kafka-cluster.sh destroy "$work/kafka" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/connect/log "$work"/relay.log; do [[ -f $f ]] && tail -30 "$f" >&2; done; exit 1; }

brokers=$(tests/kafka/kafka-cluster.sh start "$work/kafka" --nodes=1 --owner=$$ \
  --prop=num.partitions=6 --prop=auto.create.topics.enable=true)
mkdir -p "$work/pg" "$work/connect"
pg_start "$work/pg"
"$bin/outboxd" init --postgres="$PG_CONNINFO" --table=public.outboxevent --table_layout=debezium >/dev/null
# Debezium's own slot and publication, as a DBA makes them for it.
pg_psql -q -c "CREATE PUBLICATION dbz_pub FOR TABLE public.outboxevent" \
  -c "SELECT pg_create_logical_replication_slot('debezium', 'pgoutput')" >/dev/null
classpath=$(cat "$(scripts/fetch-kafka-jars.sh bench/debezium/pom.xml)/classpath")
cat >"$work/connect/worker.properties" <<P
bootstrap.servers=$brokers
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
offset.storage.file.filename=$work/connect/offsets
offset.flush.interval.ms=1000
listeners=http://127.0.0.1:0
plugin.discovery=service_load
P
cat >"$work/connect/connector.properties" <<P
name=outbox
connector.class=io.debezium.connector.postgresql.PostgresConnector
tasks.max=1
database.hostname=$PG_HOST
database.port=$PG_PORT
database.user=$PG_SUPERUSER
database.password=
database.dbname=postgres
topic.prefix=dbz
slot.name=debezium
publication.name=dbz_pub
plugin.name=pgoutput
snapshot.mode=no_data
publication.autocreate.mode=disabled
table.include.list=public.outboxevent
transforms=outbox
transforms.outbox.type=io.debezium.transforms.outbox.EventRouter
transforms.outbox.route.topic.replacement=dbz.\${routedByValue}
P
java -Xms64m -Xmx512m -XX:+UseSerialGC -cp "$classpath" org.apache.kafka.connect.cli.ConnectStandalone \
  "$work/connect/worker.properties" "$work/connect/connector.properties" >"$work/connect/log" 2>&1 &
pids+=($!)
"$bin/outboxd" run --postgres="$PG_CONNINFO" --brokers="$brokers" --table=public.outboxevent \
  --table_layout=debezium --format=debezium --topic_prefix=odx. --admin_listen= --metrics_listen= \
  >"$work/relay.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 360); do
  [[ $(pg_psql -tAc "SELECT count(*) FROM pg_replication_slots WHERE active") == 2 ]] && break
  sleep 0.5  # polling the condition, with the deadline of the loop
done
[[ $(pg_psql -tAc "SELECT count(*) FROM pg_replication_slots WHERE active") == 2 ]] ||
  fail "Debezium and outboxd did not both stream within 180 s"

# Seeded rows: uuid ids from gen_random_uuid(), so only the content is fixed.
python3 - "$work/rows.sql" <<'PY'
import json, random, sys
random.seed(14)
out = []
for i in range(120):
    kind = random.choice(["Order", "Customer"])
    aggregate = f"{kind[0].lower()}-{random.randint(1, 15)}"
    if i % 7 == 0:
        payload = json.dumps({"big": "x" * 5000, "n": i, "nested": {"a": [1, 2.50, "ü"]}}, ensure_ascii=False)
    else:
        payload = '{"name": "Zoë ✓ 日本", "total": 42.50, "n": %d, "z": null, "b": true}' % i
    payload = payload.replace("'", "''")
    out.append(f"INSERT INTO outboxevent (aggregatetype, aggregateid, type, payload) "
               f"VALUES ('{kind}', '{aggregate}', 'Evt{i % 3}', '{payload}');")
open(sys.argv[1], "w").write("BEGIN;\n" + "\n".join(out[:60]) + "\nCOMMIT;\n" + "\n".join(out[60:]) + "\n")
PY
pg_psql -q -f "$work/rows.sql" >/dev/null
n=$(pg_psql -tAc "SELECT count(*) FROM outboxevent")
for side in dbz odx; do
  "$bin/outboxd" tail --brokers="$brokers" "--topic=^$side\\..*" --format=debezium --limit="$n" \
    --timeout=120s >"$work/$side.jsonl" 2>"$work/$side.err" || fail "$side: $(cat "$work/$side.err")"
done
python3 - "$work/dbz.jsonl" "$work/odx.jsonl" "$n" <<'PY'
import json, sys
def load(path):
    records, order = {}, {}
    for line in open(path):
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        raw = line[line.index('"payload":') + len('"payload":'):].rstrip("\n")[:-1]
        event_id = r["headers"]["id"]
        records[event_id] = (r["topic"].split(".", 1)[1], r["key"], r["partition"], raw)
        order.setdefault((r["topic"].split(".", 1)[1], r["partition"]), []).append((r["offset"], event_id))
        extra = sorted(h for h in r["headers"] if h != "id")
    return records, order, extra
dbz, dbz_order, dbz_extra = load(sys.argv[1])
odx, odx_order, odx_extra = load(sys.argv[2])
n = int(sys.argv[3])
problems = []
if len(dbz) != n or len(odx) != n:
    problems.append(f"events: Debezium {len(dbz)}, outboxd {len(odx)}, written {n}")
for event_id, d in dbz.items():
    o = odx.get(event_id)
    if o is None:
        problems.append(f"{event_id}: not relayed by outboxd")
    elif o != d:
        problems.append(f"{event_id}: Debezium {d[:3]} {d[3][:60]!r}, outboxd {o[:3]} {o[3][:60]!r}")
for k, v in dbz_order.items():
    if [i for _, i in sorted(v)] != [i for _, i in sorted(odx_order.get(k, []))]:
        problems.append(f"order differs in {k}")
print(f"{len(dbz)} events compared: topic, key, value bytes, id header, partition, order")
print(f"headers besides id: Debezium {dbz_extra}, outboxd {odx_extra}")
for p in problems[:20]:
    print("DIFF", p)
sys.exit(1 if problems else 0)
PY
