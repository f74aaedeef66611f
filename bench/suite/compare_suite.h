// The side-by-side suite on a real Kafka: outboxd (at-least-once and exactly-once), Debezium
// (defaults and tuned for latency), polling and the bare Kafka floor, each at the same offered
// loads and transaction sizes, then one backlog drained by each and by bench-repl-reader.
//
//   RETURN_IF_ERROR(CompareSuite(env, load_before, t0));   // env from bench_main.cc's SetUp
//
// Writes OUT/report.md, OUT/runs.tsv, OUT/latency.{dat,gp}, OUT/wal.{dat,gp} (compare_report).
// Main thread; the runs start their own threads.
#ifndef OUTBOXD_BENCH_SUITE_COMPARE_SUITE_H_
#define OUTBOXD_BENCH_SUITE_COMPARE_SUITE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "bench/suite/bench_env.h"
#include "bench/suite/drain_run.h"
#include "bench/suite/latency_run.h"

namespace outboxd::bench {

absl::Status CompareSuite(Env& env, double load_before, absl::Time t0);

// The report of the suite (compare_report.cc).
void WriteCompareReport(Env& env, const std::vector<std::string>& systems,
                        const std::vector<RunResult>& runs,
                        const std::optional<DrainResult>& drain, double load_before,
                        double load_max, double wall_s);

// "outboxd (at-least-once)", "Debezium (tuned)", ...
std::string SystemName(const std::string& publisher);

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_COMPARE_SUITE_H_
