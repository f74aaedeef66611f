// The bulk runs: a backlog drain (outboxd against pg_recvlogical over the same WAL) and one
// huge transaction (the relay's memory while it drains).
//
//   absl::StatusOr<DrainResult> d = DrainRun(env, 200000);
//   absl::StatusOr<MemoryResult> m = MemoryRun(env, 1000000);
//
// Drain: with no relay running, commit N events (10 per transaction); stream the same WAL range
// with pg_recvlogical (pgoutput to /dev/null) and time it; then start outboxd and time until the
// consumer has all N; pg_recvlogical once more. Memory: one transaction of N events; start
// outboxd; peak RSS while it drains. Main thread, plus the consumer's own thread.
#ifndef OUTBOXD_BENCH_SUITE_DRAIN_RUN_H_
#define OUTBOXD_BENCH_SUITE_DRAIN_RUN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/suite/bench_env.h"

namespace outboxd::bench {

struct DrainResult {
  int64_t events = 0;
  double wal_mb = 0;
  double recv_s = 0, relay_s = 0;
  double relay_first_to_last_s = 0;  // without outboxd's start-up
  std::vector<double> recv_runs_s;   // pg_recvlogical before and after outboxd
  double relay_cpu_s = 0, relay_peak_rss_mb = 0;
  std::vector<std::string> all_runs;  // ratio and CPU of every run, when repeated
};

struct MemoryResult {
  int64_t events = 0;
  double insert_s = 0, drain_s = 0;
  double peak_rss_mb = 0, end_rss_mb = 0, cpu_s = 0;
  double steady_rss_mb = 0;  // the largest RSS sampled in the second half of the drain
};

// Drops (if present) and creates each logical slot with pgoutput.
absl::Status RecreateSlots(Env& env, const std::vector<std::string>& slots);

absl::StatusOr<DrainResult> DrainRun(Env& env, int64_t n);
absl::StatusOr<MemoryResult> MemoryRun(Env& env, int64_t n);

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_DRAIN_RUN_H_
