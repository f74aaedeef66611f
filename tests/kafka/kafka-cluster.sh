#!/usr/bin/env bash
# kafka-cluster.sh: real Apache Kafka (KRaft) on loopback for the tests and the bench, from the
# jars pinned in tests/kafka/pom.xml; no Docker, no fixed ports.
#
#   tests/kafka/kafka-cluster.sh start DIR [--nodes=N] [--sasl] [--owner=PID] [--prop=k=v ...]
#       formats and starts N nodes (default 1) in DIR (created; must not hold a running cluster),
#       waits until they answer a real Metadata request and a probe topic has a leader, and
#       prints the bootstrap list (host:port,...) as its one line on stdout, like kafka-mock.
#       The JVMs run detached; `stop` ends them. --owner=PID: they are also stopped when that
#       process ends (--owner=parent: the caller; ctest uses it so that an interrupted run
#       leaves no JVM behind).
#   tests/kafka/kafka-cluster.sh stop DIR [NODE]        SIGTERM (then SIGKILL after 30 s), waits
#   tests/kafka/kafka-cluster.sh kill DIR NODE          SIGKILL, waits until it is gone
#   tests/kafka/kafka-cluster.sh start-node DIR NODE    starts a stopped/killed node, waits ready
#   tests/kafka/kafka-cluster.sh restart DIR NODE       stop + start-node
#   tests/kafka/kafka-cluster.sh pause DIR NODE|all     SIGSTOP: connections stall, nothing closes
#   tests/kafka/kafka-cluster.sh resume DIR NODE|all    SIGCONT
#   tests/kafka/kafka-cluster.sh heal DIR               resume all, start every node that is down,
#                                                       wait until each answers
#   tests/kafka/kafka-cluster.sh leader DIR TOPIC [PARTITION]   prints the leader's node id
#   tests/kafka/kafka-cluster.sh bootstrap DIR          the bootstrap list again
#   tests/kafka/kafka-cluster.sh sasl-bootstrap DIR     the SASL_SSL listeners (with --sasl)
#   tests/kafka/kafka-cluster.sh env DIR                `export` lines for the C++ test harness
#       (tests/support/external_kafka.h; ctest sets OUTBOXD_TEST_KAFKA_CLUSTER=DIR instead)
#   tests/kafka/kafka-cluster.sh halt DIR               kill -9 every node, keep DIR (and the logs)
#   tests/kafka/kafka-cluster.sh destroy DIR            kill -9 every node and remove DIR
#
# DIR/ctl is a copy-free shortcut: `DIR/ctl kill 2` is `kafka-cluster.sh kill DIR 2`.
# From a bench script:
#   brokers=$(tests/kafka/kafka-cluster.sh start "$dir" --nodes=1 --owner=$$)
#   trap 'tests/kafka/kafka-cluster.sh destroy "$dir"' EXIT
#
# Environment: KAFKA_ADMIN (default: build/bin/kafka-admin, or kafka-admin on PATH) answers the
# readiness/leader questions through librdkafka; KAFKA_HEAP (default 384m) is each node's -Xmx;
# OUTBOXD_KAFKA_JARS_CACHE see scripts/fetch-kafka-jars.sh.
#
# Every node is a combined broker+controller (process.roles=broker,controller), formatted with
# `kafka.tools.StorageTool format` and a static controller.quorum.voters naming all N nodes with
# one cluster id (a single node is a quorum of one). Client listener PLAINTEXT, controller
# listener CONTROLLER, optional SASL_SSL (SCRAM-SHA-512 and PLAIN, user "outboxd"/"outboxd-secret"
# and an admin user "admin"/"admin-secret"; SCRAM credentials are added at format time, but
# librdkafka before 2.6.1 cannot do SCRAM with Kafka 4.x (#4895), so the C++ tests use PLAIN over
# TLS; a self-signed certificate made here
# with openssl; ACLs are enforced on it: StandardAuthorizer, super user "User:admin" and
# "User:ANONYMOUS" so the PLAINTEXT listener and the controllers stay unrestricted).
#
# Settings that differ from Kafka's defaults, and why:
#   broker.session.timeout.ms=3000 (9000)     a killed broker is fenced, its partitions get a new
#   broker.heartbeat.interval.ms=500 (2000)   leader and it leaves every ISR within ~3 s instead
#                                             of ~9 s: failover tests stay short
#   controller.quorum.election.timeout.ms=1000, controller.quorum.fetch.timeout.ms=2000 (both the
#                                             defaults, written down because the failover figures
#                                             depend on them)
#   replica.lag.time.max.ms=5000 (30000)      a paused (SIGSTOP) follower leaves the ISR in 5 s
#   default.replication.factor / min.insync.replicas / internal topics' RF: min(N,3) / 2 with 3
#                                             nodes (1 with 1 node); unclean.leader.election off
#   auto.create.topics.enable=false           what production clusters do; the relay must not
#                                             depend on auto-creation
#   transaction.state.log.num.partitions=4, offsets.topic.num.partitions=4 (50)
#                                             the first transactional producer and consumer group
#                                             do not wait for 50 partitions to be created
#   group.initial.rebalance.delay.ms=0 (3000) consumers in tests join at once
#   message.max.bytes=8388608 (1 MiB)         the TOAST test sends a 1 MiB payload plus envelope
#   num.network.threads=2, num.io.threads=2, background.threads=2 and the JVM flags below: a
#                                             2-core machine runs up to 4 nodes beside the tests
# JVM: -Xms64m -Xmx$KAFKA_HEAP -XX:+UseSerialGC -XX:TieredStopAtLevel=1 (C1 only: ~2x faster
# start-up, enough throughput for tests) -XX:-UsePerfData -XX:+ExitOnOutOfMemoryError.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
self="$here/kafka-cluster.sh"

die() { echo "kafka-cluster: $*" >&2; exit 1; }

admin_bin() {
  if [[ -n "${KAFKA_ADMIN:-}" ]]; then echo "$KAFKA_ADMIN"; return; fi
  for c in "${BUILD_DIR:-$root/build}/bin/kafka-admin" "$root/build/bin/kafka-admin"; do
    [[ -x "$c" ]] && { echo "$c"; return; }
  done
  command -v kafka-admin || die "kafka-admin not found: build it (cmake --build build --target kafka-admin) or set KAFKA_ADMIN"
}

# --- per-node helpers -------------------------------------------------------------------------

node_dir() { echo "$DIR/node-$1"; }
node_pid() { cat "$(node_dir "$1")/pid" 2>/dev/null || true; }
alive() { local p; p=$(node_pid "$1"); [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; }
nodes() { seq 1 "$(cat "$DIR/nodes")"; }
client_port() { sed -n "${1}p" "$DIR/ports" | cut -d' ' -f1; }
controller_port() { sed -n "${1}p" "$DIR/ports" | cut -d' ' -f2; }
sasl_port() { sed -n "${1}p" "$DIR/ports" | cut -d' ' -f3; }

java_cmd() {
  local jars
  jars=$(cat "$DIR/jars")
  echo java -Xms64m "-Xmx${KAFKA_HEAP:-384m}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -XX:-UsePerfData -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$here/log4j2.properties" -cp "$(cat "$jars/classpath")"
}

write_config() {
  local n=$1 count voters="" i rf isr sasl
  count=$(cat "$DIR/nodes")
  for i in $(nodes); do voters+="${voters:+,}$i@127.0.0.1:$(controller_port "$i")"; done
  rf=$((count < 3 ? count : 3))
  isr=$((count >= 3 ? 2 : 1))
  sasl=$(cat "$DIR/sasl")
  local listeners="PLAINTEXT://127.0.0.1:$(client_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")"
  local advertised="PLAINTEXT://127.0.0.1:$(client_port "$n")"
  local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ "$sasl" == 1 ]]; then
    listeners+=",SASL_SSL://127.0.0.1:$(sasl_port "$n")"
    advertised+=",SASL_SSL://127.0.0.1:$(sasl_port "$n")"
    protocols+=",SASL_SSL:SASL_SSL"
  fi
  mkdir -p "$(node_dir "$n")"
  cat >"$(node_dir "$n")/server.properties" <<EOF
# Written by tests/kafka/kafka-cluster.sh; see its header for why each value differs from Kafka's.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protocols
inter.broker.listener.name=PLAINTEXT
log.dirs=$(node_dir "$n")/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=4
unclean.leader.election.enable=false
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
message.max.bytes=8388608
replica.fetch.max.bytes=8388608
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
controller.quorum.election.timeout.ms=1000
controller.quorum.fetch.timeout.ms=2000
replica.lag.time.max.ms=5000
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
EOF
  if [[ "$sasl" == 1 ]]; then
    cat >>"$(node_dir "$n")/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" user_outboxd="outboxd-secret";
ssl.keystore.type=PKCS12
ssl.keystore.location=$DIR/tls/broker.p12
ssl.keystore.password=broker-key
ssl.key.password=broker-key
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
  fi
}

# A self-signed certificate for 127.0.0.1/localhost; clients trust DIR/tls/ca.pem (itself).
make_certificate() {
  local tls="$DIR/tls"
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -sha256 -days 2 -nodes -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$tls/key.pem" -out "$tls/ca.pem" >/dev/null 2>&1 || die "openssl could not make a certificate"
  # PKCS#12: Java 17 reads OpenSSL 3's default PKCS#12 encryption, but not its PBES2-encrypted
  # PKCS#8 keys (a PEM keystore would need one).
  openssl pkcs12 -export -in "$tls/ca.pem" -inkey "$tls/key.pem" -name broker \
    -passout pass:broker-key -out "$tls/broker.p12" >/dev/null 2>&1 || die "openssl pkcs12 failed"
}

launch() {
  local n=$1 d
  d=$(node_dir "$n")
  # Detached from the caller's terminal, stdin and pipes (ctest waits for its pipes to close).
  # shellcheck disable=SC2046
  setsid $(java_cmd) "-Dkafka.logs.dir=$d" kafka.Kafka "$d/server.properties" \
    </dev/null >"$d/out.log" 2>&1 &
  echo $! >"$d/pid"
}

wait_node_ready() {
  local n=$1 timeout=${2:-90s}
  local args=(ready "--brokers=127.0.0.1:$(client_port "$n")" "--node=$n" "--timeout=$timeout"
              "--pid=$(node_pid "$n")")
  if ! "$(admin_bin)" "${args[@]}"; then
    alive "$n" || echo "kafka-cluster: node $n exited; $(node_dir "$n")/out.log:" >&2
    tail -5 "$(node_dir "$n")/out.log" >&2 || true
    grep -E "ERROR|FATAL" "$(node_dir "$n")/server.log" 2>/dev/null | tail -5 >&2 || true
    return 1
  fi
}

bootstrap() {
  local i out=""
  for i in $(nodes); do out+="${out:+,}127.0.0.1:$(client_port "$i")"; done
  echo "$out"
}

sasl_bootstrap() {
  local i out=""
  for i in $(nodes); do out+="${out:+,}127.0.0.1:$(sasl_port "$i")"; done
  echo "$out"
}

signal_node() {
  local sig=$1 n=$2 p
  p=$(node_pid "$n")
  [[ -n "$p" ]] && kill "-$sig" "$p" 2>/dev/null || true
}

stop_node() {
  local n=$1 sig=${2:-TERM} p i
  p=$(node_pid "$n")
  [[ -z "$p" ]] && return 0
  kill -CONT "$p" 2>/dev/null || true  # a paused JVM cannot act on SIGTERM
  kill "-$sig" "$p" 2>/dev/null || true
  for i in $(seq 1 300); do
    kill -0 "$p" 2>/dev/null || break
    [[ $i == 300 ]] && kill -KILL "$p" 2>/dev/null
    sleep 0.1  # polling for the process to end, with the 30 s deadline above
  done
  while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
  rm -f "$(node_dir "$n")/pid"
}

start_all() {
  local count=1 sasl=0 owner="" props=() attempt
  for a in "$@"; do
    case "$a" in
      --nodes=*) count=${a#--nodes=} ;;
      --sasl) sasl=1 ;;
      --owner=parent) owner=$PPID ;;
      --owner=*) owner=${a#--owner=} ;;
      --prop=*) props+=("${a#--prop=}") ;;
      *) die "start: unknown argument $a" ;;
    esac
  done
  [[ "$count" =~ ^[1-9]$ ]] || die "start: --nodes must be 1..9"
  if [[ -f "$DIR/nodes" ]]; then
    for i in $(nodes); do alive "$i" && die "$DIR already runs node $i; destroy it first"; done
  fi
  if [[ -d "$DIR" && ! -f "$DIR/nodes" && -n "$(ls -A "$DIR")" ]]; then
    die "$DIR is not empty and holds no cluster; name a new or an earlier cluster's directory"
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
  echo "$count" >"$DIR/nodes"
  echo "$sasl" >"$DIR/sasl"
  "$root/scripts/fetch-kafka-jars.sh" >"$DIR/jars"
  printf '#!/bin/sh\nverb=$1; shift; exec "%s" "$verb" "%s" "$@"\n' "$self" "$DIR" >"$DIR/ctl"
  chmod +x "$DIR/ctl"
  [[ "$sasl" == 1 ]] && make_certificate

  # A port the OS said was free can be taken before the JVM binds it (other tests run beside
  # this): then the node exits at once and everything starts again on new ports.
  for attempt in 1 2 3; do
    local ports i
    ports=$("$(admin_bin)" free-ports $((count * 3)))
    read -r -a p <<<"$ports"
    : >"$DIR/ports"
    for i in $(seq 0 $((count - 1))); do
      echo "${p[$((i * 3))]} ${p[$((i * 3 + 1))]} ${p[$((i * 3 + 2))]}" >>"$DIR/ports"
    done
    local cluster_id
    # What `StorageTool random-uuid` prints (16 random bytes, URL-safe base64), without a JVM.
    cluster_id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    for i in $(nodes); do
      write_config "$i"
      for prop in "${props[@]}"; do echo "$prop" >>"$(node_dir "$i")/server.properties"; done
      rm -rf "$(node_dir "$i")/data"
      local scram=()
      if [[ "$sasl" == 1 ]]; then
        scram=(--add-scram 'SCRAM-SHA-512=[name="admin",password="admin-secret"]'
               --add-scram 'SCRAM-SHA-512=[name="outboxd",password="outboxd-secret"]')
      fi
      # shellcheck disable=SC2046
      $(java_cmd) "-Dkafka.logs.dir=$(node_dir "$i")" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$(node_dir "$i")/server.properties" "${scram[@]}" \
        >"$(node_dir "$i")/format.log" 2>&1 || { cat "$(node_dir "$i")/format.log" >&2; die "format of node $i failed"; }
    done
    for i in $(nodes); do launch "$i"; done
    local ok=1
    for i in $(nodes); do wait_node_ready "$i" 120s || { ok=0; break; }; done
    if [[ $ok == 1 ]]; then
      # The quorum has a leader and the brokers can host a topic of the full replication factor.
      "$(admin_bin)" ready "--brokers=$(bootstrap)" "--count=$count" --probe_topic=kafka-cluster.ready \
        --timeout=60s && break
    fi
    if grep -qs "Address already in use" "$DIR"/node-*/out.log "$DIR"/node-*/server.log && ((attempt < 3)); then
      echo "kafka-cluster: a port was taken meanwhile; starting again on new ports" >&2
      for i in $(nodes); do stop_node "$i" KILL; done
      continue
    fi
    for i in $(nodes); do stop_node "$i" KILL; done
    die "the cluster in $DIR did not become ready (logs: $DIR/node-*/server.log)"
  done
  if [[ -n "$owner" ]]; then
    # Stops the nodes when the owner ends without calling `stop` (an interrupted ctest).
    setsid bash -c 'while kill -0 '"$owner"' 2>/dev/null && [ -f "'"$DIR"'/nodes" ]; do sleep 2; done
                    "'"$self"'" halt "'"$DIR"'" >/dev/null 2>&1' </dev/null >/dev/null 2>&1 &
    echo $! >"$DIR/watchdog.pid"
  fi
  bootstrap >"$DIR/bootstrap"
  [[ "$sasl" == 1 ]] && sasl_bootstrap >"$DIR/sasl-bootstrap"
  cat "$DIR/bootstrap"
}

# --- main -----------------------------------------------------------------------------------

[[ $# -ge 2 ]] || { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
verb=$1
DIR=$2
shift 2
if [[ "$verb" != start ]]; then
  [[ -f "$DIR/nodes" ]] || die "$DIR holds no cluster (start one: kafka-cluster.sh start $DIR)"
  DIR="$(cd "$DIR" && pwd)"
fi
node_arg() {
  [[ -n "${1:-}" ]] || die "$verb: which node (1..$(cat "$DIR/nodes"))?"
  [[ "$1" =~ ^[0-9]+$ && -d "$(node_dir "$1")" ]] || die "$verb: no node $1 in $DIR"
  echo "$1"
}
targets() {
  if [[ "${1:-all}" == all ]]; then nodes; else node_arg "$1"; fi
}

case "$verb" in
  start) start_all "$@" ;;
  stop)
    # All at once when all: one by one, each controlled shutdown would wait for the others.
    for n in $(targets "${1:-all}"); do signal_node CONT "$n"; signal_node TERM "$n"; done
    for n in $(targets "${1:-all}"); do stop_node "$n"; done ;;
  halt) for n in $(nodes); do stop_node "$n" KILL; done ;;
  heal)
    for n in $(nodes); do signal_node CONT "$n"; alive "$n" || launch "$n"; done
    for n in $(nodes); do wait_node_ready "$n"; done ;;
  kill) n=$(node_arg "${1:-}"); stop_node "$n" KILL ;;
  start-node)
    n=$(node_arg "${1:-}")
    alive "$n" && die "node $n is running"
    launch "$n"
    wait_node_ready "$n" ;;
  restart)
    n=$(node_arg "${1:-}")
    stop_node "$n"
    launch "$n"
    wait_node_ready "$n" ;;
  pause) for n in $(targets "${1:-}"); do signal_node STOP "$n"; done ;;
  resume) for n in $(targets "${1:-}"); do signal_node CONT "$n"; done ;;
  leader)
    [[ -n "${1:-}" ]] || die "leader: which topic?"
    "$(admin_bin)" leader "--brokers=$(bootstrap)" "--topic=$1" "--partition=${2:-0}" --timeout=30s ;;
  bootstrap) bootstrap ;;
  sasl-bootstrap) sasl_bootstrap ;;
  pid) n=$(node_arg "${1:-}"); node_pid "$n" ;;
  env)
    echo "export OUTBOXD_TEST_KAFKA_CLUSTER=$DIR"
    echo "export OUTBOXD_TEST_KAFKA_BROKERS=$(bootstrap)"
    echo "export OUTBOXD_TEST_KAFKA_DOWN_CMD='$DIR/ctl pause all'"
    echo "export OUTBOXD_TEST_KAFKA_UP_CMD='$DIR/ctl resume all'" ;;
  destroy)
    # The data goes too, so nothing is gained by a controlled shutdown (which, node by node,
    # waits for a quorum the earlier stops have taken away).
    for n in $(nodes); do signal_node KILL "$n"; done
    for n in $(nodes); do stop_node "$n" KILL; done
    wp=$(cat "$DIR/watchdog.pid" 2>/dev/null || true)
    [[ -n "$wp" ]] && kill "$wp" 2>/dev/null || true
    rm -rf "$DIR" ;;
  *) die "unknown command $verb (see the top of $0)" ;;
esac
