// The bench's environment: the throwaway PostgreSQL and the broker every run shares (kafka-mock,
// or a real single-node Kafka), and how to start and stop each publisher against them.
//
//   Env env;  // filled by bench_main.cc
//   auto relay = StartPublisher(env, "cdc", 0, /*linger_ms=*/1);  // returns once it streams
//   ...
//   StopProcess(relay->get());
//
// Publishers, by id: "cdc" (outboxd, at-least-once), "cdc-eos" (outboxd --delivery=exactly-once),
// "dbz-defaults" / "dbz-tuned" (Kafka Connect + Debezium), "poll" (bench-poller), "floor" (no
// publisher: the bench produces to Kafka itself). Used from the main thread only.
#ifndef OUTBOXD_BENCH_SUITE_BENCH_ENV_H_
#define OUTBOXD_BENCH_SUITE_BENCH_ENV_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/kafka_control.h"
#include "tests/support/pg_server.h"
#include "tests/support/subprocess.h"

namespace outboxd::bench {

struct Env {
  std::unique_ptr<test::PgServer> pg;
  std::unique_ptr<test::KafkaControl> kafka;
  bool real_kafka = false;
  std::string kafka_version;   // of the real broker
  std::string connect_classpath;  // Kafka Connect + Debezium jars
  std::string work_dir;        // Connect's configs and offsets
  std::string conninfo;
  std::string brokers;
  pid_t postmaster = 0;
  int topic_seq = 0;
};

// outboxd --delivery=exactly-once's checkpoint topic in the bench.
inline constexpr char kCheckpointTopic[] = "outboxd.bench.checkpoints";

// A progress line on stderr, stamped with the local time.
void Progress(const std::string& line);

absl::Status Sql(Env& env, const std::string& sql);

// Topic prefix of a publisher's records (each publisher writes its own topics, so a drain's
// consumer counts only that publisher's records).
std::string TopicPrefix(const std::string& publisher);
// The replication slot a publisher streams from; "" for poll and floor.
std::string SlotOf(const std::string& publisher);
bool IsDebezium(const std::string& publisher);

// Drops (if present) and creates each logical slot with pgoutput.
absl::Status RecreateSlots(Env& env, const std::vector<std::string>& slots);

// `outboxd run` for "cdc" or "cdc-eos" against the environment, with --relay_args appended.
std::vector<std::string> OutboxdArgv(const Env& env, const std::string& publisher, int linger_ms);

// Starts a publisher and returns once it streams (outboxd: and has confirmed everything written
// so far; Debezium: its slot is active; bench-poller: it says "ready"). nullptr for "floor".
absl::StatusOr<std::unique_ptr<test::Subprocess>> StartPublisher(Env& env,
                                                                 const std::string& publisher,
                                                                 int interval_ms, int linger_ms);

// SIGTERM, then SIGKILL after 15 s.
void StopProcess(test::Subprocess* p);

// Creates a fresh topic for a run of `publisher`; *agg is the aggregate type that routes to it.
absl::StatusOr<std::string> NewTopic(Env& env, const std::string& publisher,
                                     const std::string& label, int partitions, std::string* agg);

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_BENCH_ENV_H_
