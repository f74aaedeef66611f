// The side-by-side suite on a real Kafka; see compare_suite.h.

#include "bench/suite/compare_suite.h"

#include <algorithm>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/suite/flags.h"
#include "bench/suite/proc_stats.h"
#include "bench/suite/report.h"
#include "outboxd/status_macros.h"

namespace outboxd::bench {

std::string SystemName(const std::string& publisher) {
  if (publisher == "cdc") return "outboxd (at-least-once)";
  if (publisher == "cdc-eos") return "outboxd (exactly-once)";
  if (publisher == "dbz-defaults") return "Debezium (defaults)";
  if (publisher == "dbz-tuned") return "Debezium (tuned)";
  if (publisher == "poll") {
    return absl::StrCat("polling (", absl::GetFlag(FLAGS_compare_poll_ms), " ms)");
  }
  if (publisher == "floor") return "Kafka floor";
  return publisher;
}

absl::Status CompareSuite(Env& env, double load_before, absl::Time t0) {
  // A real broker answers a fetch as soon as records arrive (fetch.min.bytes=1), so a long wait
  // adds nothing to latency and keeps the consumer from polling the broker every millisecond.
  absl::SetFlag(&FLAGS_consumer_fetch_wait_ms, 100);
  std::vector<std::string> systems;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_systems), ',', absl::SkipEmpty())) {
    if (IsDebezium(std::string(s)) && env.connect_classpath.empty()) {
      Progress(absl::StrCat("no --connect_classpath: skipping ", s));
      continue;
    }
    systems.emplace_back(s);
  }
  std::vector<double> rates, tx_sizes;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_compare_rates), ',',
                                               absl::SkipEmpty())) {
    double v = 0;
    if (absl::SimpleAtod(part, &v)) rates.push_back(v);
  }
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_tx_sizes), ',',
                                               absl::SkipEmpty())) {
    double v = 0;
    if (absl::SimpleAtod(part, &v)) tx_sizes.push_back(v);
  }
  double load_max = load_before;
  std::vector<RunResult> runs;
  int planned = 0, done = 0;
  for (const std::string& sys : systems) {
    planned += static_cast<int>(rates.size() * (sys == "floor" ? 1 : tx_sizes.size()));
  }
  for (const std::string& sys : systems) {
    for (double tx : tx_sizes) {
      // The floor has no transactions.
      if (sys == "floor" && tx != 1) continue;
      for (double rate : rates) {
        LoadSpec spec{.rate = rate,
                      .events_per_tx = static_cast<int>(tx),
                      .writers = absl::GetFlag(FLAGS_writers),
                      .linger_ms = absl::GetFlag(FLAGS_linger_ms),
                      .partitions = absl::GetFlag(FLAGS_latency_partitions)};
        Progress(absl::StrFormat("[%d/%d] %s, offered %s ev/s, %d ev/tx", ++done, planned,
                                 SystemName(sys), rate > 0 ? Fmt(rate, 0) : "max",
                                 spec.events_per_tx));
        ASSIGN_OR_RETURN(RunResult r,
                         LatencyRun(env, sys, absl::GetFlag(FLAGS_compare_poll_ms), spec));
        Progress(absl::StrFormat(
            "    achieved %.0f ev/s, p50 %s ms, p99 %s ms, max %s ms, %.2f µs/ev, RSS %.1f MB, "
            "WAL held mean %s KB %s",
            r.achieved, Fmt(r.p50), Fmt(r.p99), Fmt(r.max),
            r.pub_cpu_s / std::max<int64_t>(1, r.expected) * 1e6, r.pub_steady_rss_mb,
            Fmt(r.wal_mean_bytes / 1024, 0), r.note));
        runs.push_back(r);
        load_max = std::max(load_max, LoadAverage1());
        if (sys == "poll") RETURN_IF_ERROR(Sql(env, "TRUNCATE public.outbox_poll"));
      }
    }
  }
  std::optional<DrainResult> drain;
  if (const int64_t n = absl::GetFlag(FLAGS_drain_events); n > 0) {
    std::vector<std::string> publishers;
    for (const std::string& sys : systems) {
      if (sys != "floor") publishers.push_back(sys);
    }
    ASSIGN_OR_RETURN(DrainResult d, DrainRun(env, n, publishers));
    drain = d;
    load_max = std::max(load_max, LoadAverage1());
  }
  WriteCompareReport(env, systems, runs, drain, load_before, load_max,
                     absl::ToDoubleSeconds(absl::Now() - t0));
  Progress("report: " + absl::GetFlag(FLAGS_out) + "/report.md");
  return absl::OkStatus();
}

}  // namespace outboxd::bench
