// Debezium as it is deployed: Kafka Connect standalone (ConnectStandalone) running Debezium's
// PostgreSQL connector with the Outbox Event Router, from plain jars (`java -cp`, the classpath
// scripts/bench.sh resolves from bench/debezium/pom.xml), in a work directory of its own.
//
//   auto connect = StartDebezium({.classpath = cp, .dir = dir, ..., .config = DebeziumTuned()},
//                                [&] { return SlotIsActive(); });
//
// The JVM runs with connect-standalone.sh's options (-Xms256m -Xmx2g, G1); every wait has a
// deadline. Used from the bench's main thread only.
#ifndef OUTBOXD_BENCH_SUITE_DEBEZIUM_CONNECT_H_
#define OUTBOXD_BENCH_SUITE_DEBEZIUM_CONNECT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/subprocess.h"

namespace outboxd::bench {

// Writes `props` as a Java .properties file (keys sorted).
absl::Status WriteProperties(const std::string& path,
                             const std::map<std::string, std::string>& props);

// One Debezium configuration: the connector's and the worker's settings beyond the common ones,
// each with the reason it is set (the report lists them).
struct DebeziumSetting {
  std::string key, value, why;
};
struct DebeziumConfig {
  std::string name;          // "defaults" or "tuned"
  std::string topic_prefix;  // route.topic.replacement = topic_prefix + aggregate type
  std::vector<DebeziumSetting> connector;
  std::vector<DebeziumSetting> worker;
};

// The two configurations the bench measures.
DebeziumConfig DebeziumDefaults();
DebeziumConfig DebeziumTuned();
// The settings both share (plugin, slot, publication, router mapping), for the report.
std::vector<DebeziumSetting> DebeziumCommonSettings();

struct DebeziumOptions {
  std::string classpath;  // connect-runtime, the connector, the router plugins, logging
  std::string dir;        // work directory (offsets, configs, log); wiped first
  std::string brokers;
  std::string pg_host;
  int pg_port = 0;
  std::string pg_user;
  std::string pg_dbname;
  std::string slot;         // must exist (created by the bench, so a backlog lies ahead of it)
  std::string publication;  // must exist
  DebeziumConfig config;
};

// Starts ConnectStandalone; returns once the connector's slot is active (it streams).
absl::StatusOr<std::unique_ptr<test::Subprocess>> StartDebezium(
    const DebeziumOptions& options, const std::function<bool()>& slot_active);

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_DEBEZIUM_CONNECT_H_
