#!/usr/bin/env bash
# `make demo`: a throwaway PostgreSQL and kafka-mock, outboxd in between, a few
# business transactions with their outbox rows, and the events as they arrive
# in Kafka. Everything is removed afterwards.
set -euo pipefail
BIN=$(cd "${1:-build/bin}" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/throwaway-pg.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/outboxd-demo.XXXXXX")
RELAY_PID=""
KAFKA_PID=""
cleanup() {
  [[ -n "$RELAY_PID" ]] && kill -TERM "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null || true
  [[ -n "$KAFKA_PID" ]] && kill -TERM "$KAFKA_PID" 2>/dev/null && wait "$KAFKA_PID" 2>/dev/null || true
  pg_stop
  rm -rf "$TMP"
}
trap cleanup EXIT

step "Starting a throwaway PostgreSQL 15 (wal_level=logical)"
pg_start "$TMP"
echo "PostgreSQL at $PG_CONNINFO"

step "Starting kafka-mock (librdkafka's mock cluster: a real Kafka-protocol broker on loopback)"
mkfifo "$TMP/kafka.out"
"$BIN/kafka-mock" --brokers=3 >"$TMP/kafka.out" 2>"$TMP/kafka.log" &
KAFKA_PID=$!
exec 4<"$TMP/kafka.out"
read -r -t 10 BROKERS <&4
echo "Kafka at $BROKERS"

step "outboxd init: creates the outbox table, the publication and the replication slot"
echo "\$ outboxd init --postgres='$PG_CONNINFO'"
"$BIN/outboxd" init --postgres="$PG_CONNINFO"

step "outboxd run: streams the slot to Kafka (its log: $TMP/outboxd.log)"
echo "\$ outboxd run --postgres='$PG_CONNINFO' --brokers=$BROKERS &"
"$BIN/outboxd" run --postgres="$PG_CONNINFO" --brokers="$BROKERS" 2>"$TMP/outboxd.log" &
RELAY_PID=$!
for _ in $(seq 1 100); do
  grep -q "streaming slot" "$TMP/outboxd.log" && break
  sleep 0.1
done
sed 's/^/  [outboxd] /' "$TMP/outboxd.log"

step "A shop places orders: each transaction writes the order AND its outbox row"
pg_psql <<'SQL'
CREATE TABLE orders (id text PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL);

BEGIN;
INSERT INTO orders VALUES ('o-1001', 'ada', 42.50);
INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload, headers)
VALUES ('order', 'o-1001', 'OrderPlaced',
        '{"order_id": "o-1001", "customer": "ada", "total": 42.50}', '{"trace_id": "t-1"}');
COMMIT;

BEGIN;
INSERT INTO orders VALUES ('o-1002', 'grace', 17.00);
INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload)
VALUES ('order', 'o-1002', 'OrderPlaced', '{"order_id": "o-1002", "customer": "grace", "total": 17.00}');
COMMIT;

-- A transaction that rolls back: neither the order nor its event exists.
BEGIN;
INSERT INTO orders VALUES ('o-9999', 'mallory', 1.00);
INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload)
VALUES ('order', 'o-9999', 'OrderPlaced', '{"order_id": "o-9999"}');
ROLLBACK;

-- Two events for one order in one transaction; the row is deleted at once
-- ("keep the outbox empty"): it is in the WAL, so it is still delivered.
BEGIN;
UPDATE orders SET total = 20.00 WHERE id = 'o-1002';
INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload)
VALUES ('order', 'o-1002', 'OrderAmended', '{"order_id": "o-1002", "total": 20.00}'),
       ('order', 'o-1002', 'OrderConfirmed', '{"order_id": "o-1002"}');
DELETE FROM outbox_events WHERE aggregate_id = 'o-1002' AND event_type <> 'OrderPlaced';
COMMIT;
SQL
echo "committed 3 transactions (4 events) and rolled back 1"

step "Events arriving in Kafka, decoded (outboxd tail --topic=outbox.event.order)"
"$BIN/outboxd" tail --brokers="$BROKERS" --topic=outbox.event.order --limit=4 --timeout=30s
echo "(the rolled-back o-9999 is not there: only committed transactions reach the WAL stream)"

# The relay reports its position every second; wait for it to pass the last commit.
LAST=$(pg_psql -At -c "SELECT pg_current_wal_lsn()")
for _ in $(seq 1 50); do
  DONE=$(pg_psql -At -c "SELECT confirmed_flush_lsn >= '$LAST' FROM pg_replication_slots WHERE slot_name = 'outboxd'")
  [[ "$DONE" == t ]] && break
  sleep 0.1
done
step "The slot: PostgreSQL may now recycle the WAL Kafka has acknowledged"
pg_psql -c "SELECT slot_name, confirmed_flush_lsn, pg_current_wal_lsn() AS current_wal_lsn FROM pg_replication_slots"

step "Stopping outboxd (SIGTERM: flush, confirm, exit 0)"
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" && echo "outboxd exited 0"
RELAY_PID=""
tail -n 2 "$TMP/outboxd.log" | sed 's/^/  [outboxd] /'
echo
echo "Demo done; the throwaway PostgreSQL and kafka-mock are being removed."
