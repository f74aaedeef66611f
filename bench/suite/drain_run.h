// The bulk runs: a backlog drain (publishers against bench-repl-reader over the same WAL) and one
// huge transaction (the relay's memory while it drains).
//
//   absl::StatusOr<DrainResult> d = DrainRun(env, 200000);
//   absl::StatusOr<MemoryResult> m = MemoryRun(env, 1000000);
//
// Drain: with no publisher running, commit N events (10 per transaction); stream the same WAL
// range with bench-repl-reader (pgoutput, discarded, acked at once: the source's limit) and time
// it; then start each publisher and time until the consumer has all N; the reader once more. Memory: one transaction of N events; start
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

// One publisher's drain of the backlog.
struct PublisherDrain {
  std::string publisher;
  double total_s = 0;          // process start -> last event consumed
  double startup_s = 0;        // process start -> first event consumed
  double first_to_last_s = 0;  // without start-up
  double cpu_s = 0, peak_rss_mb = 0;
  double pg_cpu_s = 0;  // PostgreSQL meanwhile: the walsender (the poller's queries for polling)
};

struct DrainResult {
  int64_t events = 0;
  double wal_mb = 0;
  double recv_s = 0;                 // bench-repl-reader, the faster of its two runs
  std::vector<double> recv_runs_s;   // before and after the publishers
  double reader_pg_cpu_s = 0;        // PostgreSQL's CPU during the faster reader run
  std::vector<PublisherDrain> publishers;
  // outboxd ("cdc"), as the kafka-mock suite reports it.
  double relay_s = 0;
  double relay_first_to_last_s = 0;
  double relay_cpu_s = 0, relay_peak_rss_mb = 0;
  std::vector<std::string> all_runs;  // ratio and CPU of every run, when repeated
};

struct MemoryResult {
  int64_t events = 0;
  double insert_s = 0, drain_s = 0;
  double peak_rss_mb = 0, end_rss_mb = 0, cpu_s = 0;
  double steady_rss_mb = 0;  // the largest RSS sampled in the second half of the drain
};

// Commits n events, then drains them with bench-repl-reader, each publisher in turn (its own
// slot and topics), and bench-repl-reader again.
absl::StatusOr<DrainResult> DrainRun(Env& env, int64_t n,
                                     const std::vector<std::string>& publishers);
absl::StatusOr<MemoryResult> MemoryRun(Env& env, int64_t n);

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_DRAIN_RUN_H_
