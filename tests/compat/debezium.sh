#!/usr/bin/env bash
# Debezium against outboxd on one real Kafka, with one Kafka Connect start for both parts.
#
# 1. Differential test: the same outbox rows (Debezium's table layout, uuid ids, unicode, small and
# 5 kB JSON payloads, 30 aggregates) relayed by Debezium (Kafka Connect standalone + the Outbox
# Event Router, StringConverter; jars pinned in bench/debezium/pom.xml) and by
# `outboxd --format=debezium --table_layout=debezium` into separate topics of one real Kafka
# (tests/kafka/kafka-cluster.sh, 6 partitions per topic). For every event the key, the value
# bytes, the `id` header, the partition and the order within the partition must be identical.
# Debezium's own `__debezium.context.*` headers and outboxd's `event_type` header are the only
# headers allowed to differ (the test lists them).
#
# 2. Migration (README "Switching from Debezium"): Debezium, with its own slot and publication as
# it creates them by default (slot `debezium`, publication `dbz_publication` FOR ALL TABLES),
# relays a further stream of outbox rows (and writes to another table, and outbox rows inserted
# and deleted in one transaction) and is stopped as a Connect worker is (SIGTERM); more rows are
# written while nothing relays; then `outboxd run --slot=debezium --publication=dbz_publication
# --format=debezium --table_layout=debezium --topic_prefix=dbz.` relays the rest into Debezium's
# topics. Every event must be in those topics (none missing, none extra, per partition in commit
# order once repeats are dropped); the repeats are counted and printed, per phase.
#
#   tests/compat/debezium.sh BUILD_BIN_DIR
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
fail() { echo "FAIL: $*" >&2; for f in "$work"/connect/log "$work"/relay.log "$work"/takeover.log; do [[ -f $f ]] && tail -30 "$f" >&2; done; exit 1; }

brokers=$(tests/kafka/kafka-cluster.sh start "$work/kafka" --nodes=1 --owner=$$ \
  --prop=num.partitions=6 --prop=auto.create.topics.enable=true)
mkdir -p "$work/pg" "$work/connect"
pg_start "$work/pg"
"$bin/outboxd" init --postgres="$PG_CONNINFO" --table=public.outboxevent --table_layout=debezium >/dev/null
# Another table of the application: Debezium's default publication (FOR ALL TABLES) carries it.
pg_psql -q -c "CREATE TABLE orders (id int PRIMARY KEY, state text)" >/dev/null
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
# Debezium's defaults, written out: it creates the slot and the publication (FOR ALL TABLES,
# publication.autocreate.mode=all_tables) itself at its first start.
slot.name=debezium
publication.name=dbz_publication
plugin.name=pgoutput
snapshot.mode=no_data
table.include.list=public.outboxevent
transforms=outbox
transforms.outbox.type=io.debezium.transforms.outbox.EventRouter
transforms.outbox.route.topic.replacement=dbz.\${routedByValue}
P
java -Xms64m -Xmx512m -XX:+UseSerialGC -cp "$classpath" org.apache.kafka.connect.cli.ConnectStandalone \
  "$work/connect/worker.properties" "$work/connect/connector.properties" >"$work/connect/log" 2>&1 &
connect_pid=$!
pids+=($connect_pid)
"$bin/outboxd" run --postgres="$PG_CONNINFO" --brokers="$brokers" --table=public.outboxevent \
  --table_layout=debezium --format=debezium --topic_prefix=odx. --admin_listen= --metrics_listen= \
  >"$work/relay.log" 2>&1 &
relay_pid=$!
pids+=($relay_pid)
for _ in $(seq 1 360); do
  [[ $(pg_psql -tAc "SELECT count(*) FROM pg_replication_slots WHERE active") == 2 ]] && break
  sleep 0.5  # polling the condition, with the deadline of the loop
done
[[ $(pg_psql -tAc "SELECT count(*) FROM pg_replication_slots WHERE active") == 2 ]] ||
  fail "Debezium and outboxd did not both stream within 180 s"

# Seeded rows: the differential's with uuid ids from gen_random_uuid(), so only the content is
# fixed; the migration's phases (b1, b2: Debezium relays them; c: written while nothing relays)
# with seeded uuids, since some are deleted in the transaction that inserts them.
python3 - "$work" <<'PY'
import json, random, sys, uuid
random.seed(14)
work = sys.argv[1]
n = 0
def row(ident=None):
    global n
    kind = random.choice(["Order", "Customer"])
    aggregate = f"{kind[0].lower()}-{random.randint(1, 15)}"
    if n % 7 == 0:
        payload = json.dumps({"big": "x" * 5000, "n": n, "nested": {"a": [1, 2.50, "ü"]}}, ensure_ascii=False)
    else:
        payload = '{"name": "Zoë ✓ 日本", "total": 42.50, "n": %d, "z": null, "b": true}' % n
    payload = payload.replace("'", "''")
    columns = "aggregatetype, aggregateid, type, payload"
    values = f"'{kind}', '{aggregate}', 'Evt{n % 3}', '{payload}'"
    if ident:
        columns, values = "id, " + columns, f"'{ident}', " + values
    n += 1
    return f"INSERT INTO outboxevent ({columns}) VALUES ({values});"
out = [row() for _ in range(120)]
open(f"{work}/rows.sql", "w").write("BEGIN;\n" + "\n".join(out[:60]) + "\nCOMMIT;\n" + "\n".join(out[60:]) + "\n")
ids = open(f"{work}/migration-ids", "w")
for phase in ("b1", "b2", "c"):
    sql = []
    for t in range(12):
        ident = str(uuid.UUID(int=random.getrandbits(128), version=4))
        ids.write(f"{ident} {phase}\n")
        if t % 4 == 3:
            # The outbox pattern without retention work: insert and delete in one transaction.
            sql.append(f"BEGIN; {row(ident)} DELETE FROM outboxevent WHERE id = '{ident}'; COMMIT;")
        elif t % 4 == 2:
            second = str(uuid.UUID(int=random.getrandbits(128), version=4))
            ids.write(f"{second} {phase}\n")
            sql.append(f"BEGIN; {row(ident)} {row(second)} "
                       f"INSERT INTO orders VALUES ({n}, 'new'); UPDATE orders SET state = 'paid' WHERE id = {n}; COMMIT;")
        else:
            sql.append(row(ident))
    open(f"{work}/{phase}.sql", "w").write("\n".join(sql) + "\n")
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

echo "timing: start and differential ${SECONDS} s"
started_migration=$SECONDS

# ---- 2. Migration: Debezium relays b1 and b2 and is stopped; c is written while nothing relays;
# outboxd takes over on Debezium's slot and publication and relays the rest into its topics.
kill -TERM "$relay_pid"
wait "$relay_pid" || fail "the differential's outboxd exited $? on SIGTERM"
records() { "$bin/kafka-admin" records --brokers="$brokers" --topic_prefix=dbz. --timeout=30s; }
slot_lsn() { pg_psql -tAc "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'debezium'"; }
slot_past() { [[ $(pg_psql -tAc "SELECT confirmed_flush_lsn > '$1' FROM pg_replication_slots WHERE slot_name = 'debezium'") == t ]]; }
records_at_least() { (($(records) >= $1)); }
wait_for() {  # wait_for SECONDS WHAT COMMAND...: polls COMMAND until it succeeds, or fails at the deadline
  local seconds=$1 what=$2
  local deadline=$((SECONDS + seconds))
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || fail "$what: not within $seconds s (Debezium's slot at $(slot_lsn))"
    sleep 0.2  # polling the condition, with the deadline above
  done
}
phase_count() { grep -c " $1\$" "$work/migration-ids"; }
mark=$(pg_psql -tAc "SELECT pg_current_wal_lsn()")
pg_psql -q -f "$work/b1.sql" >/dev/null
# Debezium confirms to its slot when Connect has committed its offsets (offset.flush.interval.ms),
# and then the commit LSN of the transaction before the last one it sent: wait until it has
# confirmed some of b1.
wait_for 60 "Debezium confirming part of b1 (its slot past $mark)" slot_past "$mark"
pg_psql -q -f "$work/b2.sql" >/dev/null
before_stop=$((n + $(phase_count b1) + $(phase_count b2)))
wait_for 60 "Debezium relaying b2 ($before_stop records in dbz.*)" records_at_least "$before_stop"
# Stopped as a Connect worker is stopped: SIGTERM, the worker stops the task and commits.
kill -TERM "$connect_pid"
wait "$connect_pid" || true  # the JVM's exit status on SIGTERM is 143
dbz_records=$(records)
dbz_confirmed=$(slot_lsn)
[[ $(pg_psql -tAc "SELECT active FROM pg_replication_slots WHERE slot_name = 'debezium'") == f ]] ||
  fail "Debezium's slot is still active after the worker stopped"
pg_psql -q -f "$work/c.sql" >/dev/null
end_lsn=$(pg_psql -tAc "SELECT pg_current_wal_lsn()")
pg_psql -tAc "SELECT pubname, puballtables, pubinsert, pubupdate, pubdelete, pubviaroot FROM pg_publication WHERE pubname = 'dbz_publication'" \
  >"$work/publication"
echo "Debezium stopped: $dbz_records records in dbz.*, its slot confirmed $dbz_confirmed; after c the WAL is at $end_lsn"
echo "Debezium's publication (name|all tables|insert|update|delete|via root): $(cat "$work/publication")"

# outboxd on Debezium's slot and publication, into Debezium's topics (README "Switching from Debezium").
"$bin/outboxd" run --postgres="$PG_CONNINFO" --brokers="$brokers" --table=public.outboxevent \
  --table_layout=debezium --format=debezium --slot=debezium --publication=dbz_publication \
  --topic_prefix=dbz. --admin_listen= --metrics_listen= >"$work/takeover.log" 2>&1 &
takeover_pid=$!
pids+=($takeover_pid)
expected=$((n + $(wc -l <"$work/migration-ids")))
all_there() {
  local total
  total=$(records)
  ((total >= expected)) || return 1
  "$bin/outboxd" tail --brokers="$brokers" '--topic=^dbz\..*' --format=debezium --limit="$total" \
    --timeout=60s >"$work/migrated.jsonl" 2>"$work/migrated.err" || fail "tail: $(cat "$work/migrated.err")"
  python3 - "$work/migrated.jsonl" "$work/all-ids" <<'PY'
import json, sys
seen = {json.loads(l)["headers"]["id"] for l in open(sys.argv[1]) if l.startswith("{")}
sys.exit(0 if set(open(sys.argv[2]).read().split()) <= seen else 1)
PY
}
{ pg_psql -tAc "SELECT id FROM outboxevent"; cut -d' ' -f1 "$work/migration-ids"; } | sort -u >"$work/all-ids"
kill -0 "$takeover_pid" 2>/dev/null || fail "outboxd on Debezium's slot exited: $(cat "$work/takeover.log")"
wait_for 90 "every event in dbz.* after the takeover" all_there
# It resumed where Debezium's slot was confirmed.
grep -q "streaming slot debezium (publication dbz_publication.*confirmed $dbz_confirmed[,;]" "$work/takeover.log" ||
  fail "outboxd did not say it resumed at Debezium's confirmed $dbz_confirmed: $(grep 'streaming slot' "$work/takeover.log")"
grep -o "streaming slot debezium.*confirmed $dbz_confirmed" "$work/takeover.log" | sed 's/ from PostgreSQL.*, starting/, starting/'
kill -TERM "$takeover_pid"
wait "$takeover_pid" || { tail -20 "$work/takeover.log" >&2; fail "outboxd on Debezium's slot exited $? on SIGTERM"; }
# Nothing writes any more: read back exactly what is there.
total=$(records)
"$bin/outboxd" tail --brokers="$brokers" '--topic=^dbz\..*' --format=debezium --limit="$total" \
  --timeout=60s >"$work/migrated.jsonl" 2>"$work/migrated.err" || fail "tail: $(cat "$work/migrated.err")"
python3 - "$work/migrated.jsonl" "$work/all-ids" "$work/migration-ids" "$dbz_records" <<'PY'
import collections, json, sys
records = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
expected = set(open(sys.argv[2]).read().split())
phase = {l.split()[0]: l.split()[1] for l in open(sys.argv[3])}
dbz_records = int(sys.argv[4])
count = collections.Counter(r["headers"]["id"] for r in records)
missing = expected - set(count)
extra = set(count) - expected
repeats = {i: c - 1 for i, c in count.items() if c > 1}
by_phase = collections.Counter(phase.get(i, "differential") for i, c in repeats.items() for _ in range(c))
problems = []
if missing:
    problems.append(f"{len(missing)} events missing, e.g. {sorted(missing)[:3]}")
if extra:
    problems.append(f"{len(extra)} records of no outbox event, e.g. {sorted(extra)[:3]}")
# Per partition, the first record of each event must follow the commit order (payload "n").
parts = collections.defaultdict(list)
for r in sorted(records, key=lambda r: (r["topic"], r["partition"], r["offset"])):
    parts[(r["topic"], r["partition"])].append((r["headers"]["id"], r["payload"]["n"]))
for part, rows in parts.items():
    first, seen = [], set()
    for i, n in rows:
        if i not in seen:
            seen.add(i)
            first.append(n)
    if first != sorted(first):
        problems.append(f"{part}: events out of commit order: {first}")
print(f"migration: {len(expected)} events expected, {len(count)} distinct in Debezium's topics, "
      f"{len(records)} records ({dbz_records} by Debezium, {len(records) - dbz_records} by outboxd), "
      f"missing {len(missing)}, extra {len(extra)}")
print(f"migration: repeats {sum(repeats.values())} (by phase: {dict(by_phase) or 'none'})")
for p in problems[:20]:
    print("MIGRATION", p)
sys.exit(1 if problems else 0)
PY
echo "timing: migration $((SECONDS - started_migration)) s"
