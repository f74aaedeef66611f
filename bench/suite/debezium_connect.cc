// Kafka Connect + Debezium for the bench; see debezium_connect.h.

#include "bench/suite/debezium_connect.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "outboxd/status_macros.h"
#include "tests/support/wait.h"

namespace outboxd::bench {

using test::Subprocess;

absl::Status WriteProperties(const std::string& path,
                             const std::map<std::string, std::string>& props) {
  std::ofstream out(path);
  for (const auto& [k, v] : props) out << k << "=" << v << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("could not write ", path));
  return absl::OkStatus();
}

namespace {

// Logs WARN and above to stderr, plus INFO of one logger (the worker's start and stop).
absl::Status WriteLog4j(const std::string& path, const std::string& info_logger) {
  std::ofstream out(path);
  out << "status = warn\n"
         "appender.console.type = Console\n"
         "appender.console.name = STDERR\n"
         "appender.console.target = SYSTEM_ERR\n"
         "appender.console.layout.type = PatternLayout\n"
         "appender.console.layout.pattern = %d{HH:mm:ss.SSS} %-5p %c{1}: %m%n\n"
         "rootLogger.level = warn\n"
         "rootLogger.appenderRef.console.ref = STDERR\n"
         "logger.ready.name = "
      << info_logger << "\nlogger.ready.level = info\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("could not write ", path));
  return absl::OkStatus();
}

// The JVM options bin/connect-standalone.sh gives Connect (KAFKA_HEAP_OPTS and
// KAFKA_JVM_PERFORMANCE_OPTS of kafka-run-class.sh): Debezium as teams start it.
std::vector<std::string> JavaArgv(const std::string& classpath, const std::string& log4j,
                                  std::vector<std::string> rest) {
  std::vector<std::string> argv = {"java",
                                   "-Xms256m",
                                   "-Xmx2g",
                                   "-server",
                                   "-XX:+UseG1GC",
                                   "-XX:MaxGCPauseMillis=20",
                                   "-XX:InitiatingHeapOccupancyPercent=35",
                                   "-XX:+ExplicitGCInvokesConcurrent",
                                   "-XX:MaxInlineLevel=15",
                                   "-Djava.awt.headless=true",
                                   "-Dlog4j2.configurationFile=" + log4j,
                                   "-cp",
                                   classpath};
  argv.insert(argv.end(), rest.begin(), rest.end());
  return argv;
}

}  // namespace

std::vector<DebeziumSetting> DebeziumCommonSettings() {
  return {
      {"plugin.name", "pgoutput", "the built-in decoder outboxd reads too"},
      {"snapshot.mode", "no_data", "stream only; the bench's slot marks where to start"},
      {"publication.autocreate.mode", "disabled",
       "its own publication (FOR TABLE public.outbox_events), created by the bench"},
      {"table.include.list", "public.outbox_events", "outboxd's outbox table"},
      {"transforms", "outbox", ""},
      {"transforms.outbox.type", "io.debezium.transforms.outbox.EventRouter",
       "the Outbox Event Router (debezium-connect-plugins)"},
      {"transforms.outbox.table.field.event.id", "id", "outboxd's column names"},
      {"transforms.outbox.table.field.event.key", "aggregate_id", "key = aggregate id"},
      {"transforms.outbox.table.field.event.payload", "payload", ""},
      {"transforms.outbox.route.by.field", "aggregate_type", "topic per aggregate type"},
      {"key.converter / value.converter", "org.apache.kafka.connect.storage.StringConverter",
       "key and payload as plain strings"},
      {"plugin.discovery", "service_load", "worker: faster start-up; no effect on streaming"},
  };
}

DebeziumConfig DebeziumDefaults() {
  return {.name = "defaults", .topic_prefix = "dbzd.event.", .connector = {}, .worker = {}};
}

DebeziumConfig DebeziumTuned() {
  return {
      .name = "tuned",
      .topic_prefix = "dbzt.event.",
      .connector =
          {
              {"poll.interval.ms", "1",
               "default 500: how long the task waits for new change events before it hands a "
               "batch to Connect; the largest fixed delay on the path"},
              {"max.batch.size", "2048", "default kept: a batch is handed over as soon as "
                                         "events are there, so size only bounds bursts"},
          },
      .worker =
          {
              {"offset.flush.interval.ms", "1000",
               "default 60000: Debezium confirms the slot's LSN only when Connect flushes "
               "offsets, so this bounds the WAL the primary holds"},
              {"producer.linger.ms", "1", "default 5 (Kafka 4): outboxd's linger"},
              {"producer.acks", "all", "as outboxd (Connect's default too)"},
              {"producer.enable.idempotence", "true", "as outboxd"},
          },
  };
}

absl::StatusOr<std::unique_ptr<Subprocess>> StartDebezium(
    const DebeziumOptions& options, const std::function<bool()>& slot_active) {
  if (options.classpath.empty()) {
    return absl::FailedPreconditionError(
        "no Kafka Connect classpath: scripts/bench.sh passes --connect_classpath (the jars of "
        "bench/debezium/pom.xml)");
  }
  std::filesystem::remove_all(options.dir);
  std::filesystem::create_directories(options.dir);
  std::map<std::string, std::string> worker = {
      {"bootstrap.servers", options.brokers},
      {"key.converter", "org.apache.kafka.connect.storage.StringConverter"},
      {"value.converter", "org.apache.kafka.connect.storage.StringConverter"},
      {"offset.storage.file.filename", options.dir + "/offsets"},
      // The REST API on a free port (nothing here uses it).
      {"listeners", "http://127.0.0.1:0"},
      {"plugin.discovery", "service_load"},
  };
  for (const DebeziumSetting& s : options.config.worker) worker[s.key] = s.value;
  std::map<std::string, std::string> connector = {
      {"name", "outbox-" + options.config.name},
      {"connector.class", "io.debezium.connector.postgresql.PostgresConnector"},
      {"tasks.max", "1"},
      {"database.hostname", options.pg_host},
      {"database.port", absl::StrCat(options.pg_port)},
      {"database.user", options.pg_user},
      {"database.password", ""},
      {"database.dbname", options.pg_dbname},
      {"topic.prefix", "dbz"},
      {"slot.name", options.slot},
      {"publication.name", options.publication},
  };
  for (const DebeziumSetting& s : DebeziumCommonSettings()) {
    if (absl::StrContains(s.key, "converter") || s.key == "plugin.discovery") continue;
    connector[s.key] = s.value;
  }
  connector["transforms.outbox.route.topic.replacement"] =
      options.config.topic_prefix + "${routedByValue}";
  for (const DebeziumSetting& s : options.config.connector) connector[s.key] = s.value;
  RETURN_IF_ERROR(WriteProperties(options.dir + "/worker.properties", worker));
  RETURN_IF_ERROR(WriteProperties(options.dir + "/connector.properties", connector));
  const std::string log4j = options.dir + "/log4j2.properties";
  RETURN_IF_ERROR(WriteLog4j(log4j, "org.apache.kafka.connect.runtime.Worker"));
  ASSIGN_OR_RETURN(auto connect,
                   Subprocess::Start(JavaArgv(options.classpath, log4j,
                                              {"org.apache.kafka.connect.cli.ConnectStandalone",
                                               options.dir + "/worker.properties",
                                               options.dir + "/connector.properties"})));
  Subprocess* p = connect.get();
  if (!test::WaitFor([&] { return !p->Running() || slot_active(); }, absl::Seconds(120),
                     absl::Milliseconds(50)) ||
      !p->Running()) {
    return absl::InternalError("Debezium did not start streaming: " + p->Stderr());
  }
  return connect;
}

}  // namespace outboxd::bench
