// The bench's environment: the throwaway PostgreSQL and kafka-mock every run shares, and how to
// start and stop each publisher (outboxd, bench-poller) against them.
//
//   Env env;  // filled by bench_main.cc
//   auto relay = StartOutboxd(env, /*linger_ms=*/1);   // returns once it has caught up
//   ...
//   StopProcess(relay->get());
//
// Used from the main thread only.
#ifndef OUTBOXD_BENCH_SUITE_BENCH_ENV_H_
#define OUTBOXD_BENCH_SUITE_BENCH_ENV_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/kafka_mock_process.h"
#include "tests/support/pg_server.h"
#include "tests/support/subprocess.h"

namespace outboxd::bench {

struct Env {
  std::unique_ptr<test::PgServer> pg;
  std::unique_ptr<test::KafkaMockProcess> kafka;
  std::string conninfo;
  std::string brokers;
  pid_t postmaster = 0;
  int topic_seq = 0;
};

// A progress line on stderr, stamped with the local time.
void Progress(const std::string& line);

absl::Status Sql(Env& env, const std::string& sql);

// `outboxd run` against the environment, with --relay_args appended.
std::vector<std::string> OutboxdArgv(const Env& env, int linger_ms);

// Starts outboxd and returns once it streams and has confirmed everything written so far.
absl::StatusOr<std::unique_ptr<test::Subprocess>> StartOutboxd(Env& env, int linger_ms);

// Starts bench-poller on public.outbox_poll and returns once it says "ready".
absl::StatusOr<std::unique_ptr<test::Subprocess>> StartPoller(Env& env, int interval_ms,
                                                              int linger_ms);

// SIGTERM, then SIGKILL after 15 s.
void StopProcess(test::Subprocess* p);

// Creates a fresh topic for a run; *agg is the aggregate type that routes to it.
absl::StatusOr<std::string> NewTopic(Env& env, const std::string& label, int partitions,
                                     std::string* agg);

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_BENCH_ENV_H_
