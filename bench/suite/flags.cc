// The flags of outboxd-bench (declared in flags.h for the run and report files).

#include "bench/suite/flags.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/flag.h"

ABSL_FLAG(bool, quick, false, "CI smoke: few short runs, small drain and memory runs");
ABSL_FLAG(std::string, out, "bench-out", "directory for runs.tsv, latency.dat, report.md");
ABSL_FLAG(std::string, plot_name, "latency.png", "file name of the plot the report links to");
ABSL_FLAG(std::string, git_rev, "", "source revision for the report");
ABSL_FLAG(int, writers, 4, "concurrent writer connections");
ABSL_FLAG(int, partitions, 16,
          "partitions per topic of the drain and memory runs (kafka-mock keeps 5 MB per partition)");
ABSL_FLAG(int, latency_partitions, 1,
          "partitions per topic of the latency runs; kafka-mock's fetch walks a partition's "
          "message sets from the first, so its CPU grows with message sets per partition");
ABSL_FLAG(double, duration_s, 10, "measured seconds per latency run");
ABSL_FLAG(double, warmup_s, 2, "unmeasured seconds before each latency run");
ABSL_FLAG(std::string, rates, "1000,5000,10000,20000,0",
          "offered events/s for the main runs; 0 = as fast as the writers can");
ABSL_FLAG(std::string, poll_intervals_ms, "10,100,500", "bench-poller intervals");
ABSL_FLAG(int, poll_batch, 500, "bench-poller LIMIT per poll");
ABSL_FLAG(int, poll_workers, 1, "bench-poller workers");
ABSL_FLAG(int64_t, drain_events, 200000, "events committed for the drain run (0: skip)");
ABSL_FLAG(int64_t, memory_events, 1000000, "events in the single transaction (0: skip)");
ABSL_FLAG(int, repeats, 3,
          "runs of the target rows (CDC at 1k and 10k ev/s) and of the drain; the report shows "
          "the median run and lists every run, since a 2-core machine's tails vary run to run");
ABSL_FLAG(bool, variants, true,
          "also run CDC with 10 events/transaction, 2 KB payloads, and linger.ms=0");
ABSL_FLAG(std::vector<std::string>, relay_args, {},
          "extra `outboxd run` arguments, comma-separated, e.g. "
          "--kafka_property=queue.buffering.max.kbytes=16384");
ABSL_FLAG(int, consumer_fetch_wait_ms, 1,
          "latency consumer's fetch.wait.max.ms; kafka-mock answers an empty fetch only after it, "
          "even when records arrive meanwhile, so it adds up to this much to every latency");
ABSL_FLAG(int, linger_ms, 1, "producer linger.ms of outboxd and bench-poller (outboxd's default)");
ABSL_FLAG(std::string, broker, "kafka",
          "'kafka': a real Apache Kafka at --kafka_brokers, every system side by side; 'mock': "
          "kafka-mock (started here), outboxd against polling (the earlier suite)");
ABSL_FLAG(std::string, kafka_brokers, "",
          "bootstrap servers of the real Kafka (scripts/bench.sh starts one)");
ABSL_FLAG(std::string, kafka_version, "", "the real Kafka's version, for the report");
ABSL_FLAG(std::string, connect_classpath, "",
          "java -cp of Kafka Connect + Debezium (scripts/bench.sh; empty: no Debezium rows)");
ABSL_FLAG(std::string, systems, "cdc,cdc-eos,dbz-defaults,dbz-tuned,poll,floor",
          "--broker=kafka: the systems measured, in order");
ABSL_FLAG(std::string, tx_sizes, "1,10", "--broker=kafka: events per transaction of the runs");
ABSL_FLAG(int, drain_poll_ms, 100, "bench-poller interval of the drain run");
ABSL_FLAG(std::string, compare_rates, "1000,5000,10000,0",
          "--broker=kafka: offered events/s; 0 = as fast as the writers can (the highest rate "
          "each system sustains)");
ABSL_FLAG(int, compare_poll_ms, 100, "--broker=kafka: bench-poller interval");
ABSL_FLAG(std::string, outboxd_binary, "",
          "the outboxd the runs start (`run` only; init is always the build's); empty: the "
          "build's own. For before/after comparisons, e.g. a binary built from an older commit");
ABSL_FLAG(double, jvm_warmup_s, 6,
          "extra unmeasured seconds of load before each Debezium run (JIT warm-up)");
