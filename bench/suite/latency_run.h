// One latency run: a publisher (outboxd or bench-poller) under a fixed offered load, measured
// from each writer's clock before COMMIT to the event's consumption from Kafka.
//
//   absl::StatusOr<RunResult> r = LatencyRun(env, "cdc", 0, spec);
//
// Per run: p50/p95/p99/p99.9/max, achieved throughput, publisher CPU per event, publisher peak
// and steady RSS, CPU of PostgreSQL's processes other than the load generator's own backends.
// Threads: the calling thread samples /proc; one thread per writer; the consumer's own thread.
#ifndef OUTBOXD_BENCH_SUITE_LATENCY_RUN_H_
#define OUTBOXD_BENCH_SUITE_LATENCY_RUN_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/suite/bench_env.h"
#include "bench/suite/load_generator.h"
#include "bench/suite/wal_sampler.h"

namespace outboxd::bench {

struct RunResult {
  std::string publisher;  // cdc, cdc-eos, dbz-defaults, dbz-tuned, poll, floor (bench_env.h)
  int interval_ms = 0;
  LoadSpec spec;
  double duration_s = 0;
  int64_t expected = 0, measured = 0;
  double achieved = 0;
  double p50 = 0, p95 = 0, p99 = 0, p999 = 0, max = 0;  // ms
  double pub_cpu_s = 0, pub_peak_rss_mb = 0, pub_steady_rss_mb = 0;
  double pg_cpu_s = 0;  // PostgreSQL minus the writers' backends
  std::vector<WalSample> wal;  // WAL held by the publisher's slot, each second of the run
  double wal_mean_bytes = NAN, wal_max_bytes = NAN;
  std::string note;
};

// The q-quantile of sorted microsecond samples, in milliseconds; NaN when there are none.
double Percentile(const std::vector<int64_t>& sorted, double q);

// `publisher` is one of bench_env.h's ids ("poll": bench-poller every `interval_ms`).
absl::StatusOr<RunResult> LatencyRun(Env& env, const std::string& publisher, int interval_ms,
                                     LoadSpec spec);

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_LATENCY_RUN_H_
