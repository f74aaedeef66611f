// The flags of outboxd-bench, defined in flags.cc. The run and report files read them through
// absl::GetFlag(FLAGS_x); bench_main.cc's --quick overrides the sizes before any run starts.
#ifndef OUTBOXD_BENCH_SUITE_FLAGS_H_
#define OUTBOXD_BENCH_SUITE_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(bool, quick);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_DECLARE_FLAG(std::string, plot_name);
ABSL_DECLARE_FLAG(std::string, git_rev);
ABSL_DECLARE_FLAG(int, writers);
ABSL_DECLARE_FLAG(int, partitions);
ABSL_DECLARE_FLAG(int, latency_partitions);
ABSL_DECLARE_FLAG(double, duration_s);
ABSL_DECLARE_FLAG(double, warmup_s);
ABSL_DECLARE_FLAG(std::string, rates);
ABSL_DECLARE_FLAG(std::string, poll_intervals_ms);
ABSL_DECLARE_FLAG(int, poll_batch);
ABSL_DECLARE_FLAG(int, poll_workers);
ABSL_DECLARE_FLAG(int64_t, drain_events);
ABSL_DECLARE_FLAG(int64_t, memory_events);
ABSL_DECLARE_FLAG(int, repeats);
ABSL_DECLARE_FLAG(bool, variants);
ABSL_DECLARE_FLAG(std::vector<std::string>, relay_args);
ABSL_DECLARE_FLAG(int, consumer_fetch_wait_ms);
ABSL_DECLARE_FLAG(int, linger_ms);
ABSL_DECLARE_FLAG(std::string, broker);
ABSL_DECLARE_FLAG(std::string, kafka_brokers);
ABSL_DECLARE_FLAG(std::string, kafka_version);
ABSL_DECLARE_FLAG(std::string, connect_classpath);
ABSL_DECLARE_FLAG(std::string, systems);
ABSL_DECLARE_FLAG(std::string, tx_sizes);
ABSL_DECLARE_FLAG(int, drain_poll_ms);
ABSL_DECLARE_FLAG(std::string, compare_rates);
ABSL_DECLARE_FLAG(int, compare_poll_ms);
ABSL_DECLARE_FLAG(double, jvm_warmup_s);
ABSL_DECLARE_FLAG(std::string, outboxd_binary);

#endif  // OUTBOXD_BENCH_SUITE_FLAGS_H_
