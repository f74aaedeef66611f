// The bench report: OUT/report.md (settings, a table per question, where each target stands),
// OUT/runs.tsv (raw rows) and OUT/latency.dat + OUT/latency.gp (gnuplot draws the PNG).
//
//   WriteReport(env, runs, drain, mem, load_before, wall_s);
//
// Main thread only.
#ifndef OUTBOXD_BENCH_SUITE_REPORT_H_
#define OUTBOXD_BENCH_SUITE_REPORT_H_

#include <optional>
#include <string>
#include <vector>

#include "bench/suite/bench_env.h"
#include "bench/suite/drain_run.h"
#include "bench/suite/latency_run.h"

namespace outboxd::bench {

// `v` with `digits` decimals; "–" for NaN (a run that measured nothing).
std::string Fmt(double v, int digits = 2);

// The row label of a run: "outboxd (CDC)" or "poll N ms", plus what differs from the defaults.
std::string PublisherName(const RunResult& r);

void WriteReport(Env& env, const std::vector<RunResult>& runs,
                 const std::optional<DrainResult>& drain, const std::optional<MemoryResult>& mem,
                 double load_before, double wall_s);

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_REPORT_H_
