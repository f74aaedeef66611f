// outboxd: the binary. Reads the command line (cmd/outboxd/flags.h) and wires
// cdc/ (PostgreSQL) to sink/ (Kafka) and admin/ (status, metrics); all logic
// lives in those modules.
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "admin/admin_server.h"
#include "admin/metrics_server.h"
#include "admin/relay_info.h"
#include "admin/status_command.h"
#include "cdc/peek.h"
#include "cdc/pg_connection.h"
#include "cdc/relay.h"
#include "cdc/setup.h"
#include "cmd/outboxd/flags.h"
#include "outboxd/log.h"
#include "outboxd/status_macros.h"
#include "sink/checkpoint_topic.h"
#include "sink/kafka_sink.h"
#include "sink/tail.h"
#include "sink/transactional_sink.h"


namespace {

using outboxd::cmd::ApplyEnvironment;
using outboxd::cmd::CheckFlags;
using outboxd::cmd::ExtractKafkaProperties;
using outboxd::cmd::FlagGiven;
using outboxd::cmd::GivenOnCommandLine;
using outboxd::cmd::kUsage;
using outboxd::cmd::PrintCommandHelp;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int Fail(const absl::Status& status, int code = kExitFailure) {
  outboxd::LogError(status.message());
  return code;
}

absl::StatusOr<outboxd::cdc::OutboxConfig> OutboxConfigFromFlags() {
  ASSIGN_OR_RETURN(auto table, outboxd::decoder::OutboxTable::Parse(absl::GetFlag(FLAGS_table)));
  outboxd::cdc::OutboxConfig config;
  config.table = table;
  config.publication = absl::GetFlag(FLAGS_publication);
  config.slot = absl::GetFlag(FLAGS_slot);
  config.slot_failover = absl::GetFlag(FLAGS_slot_failover);
  const std::string layout = absl::GetFlag(FLAGS_table_layout);
  if (layout != "outboxd" && layout != "debezium") {
    return absl::InvalidArgumentError(
        absl::StrCat("--table_layout='", layout, "' is not valid; use outboxd or debezium"));
  }
  // A layout names every column; a column flag given as well wins over it.
  struct Column {
    const absl::Flag<std::string>& flag;
    const char* name;
    std::string* field;
    const char* debezium;
  };
  const Column columns[] = {
      {FLAGS_id_column, "id_column", &config.columns.id, "id"},
      {FLAGS_aggregate_type_column, "aggregate_type_column", &config.columns.aggregate_type, "aggregatetype"},
      {FLAGS_aggregate_id_column, "aggregate_id_column", &config.columns.aggregate_id, "aggregateid"},
      {FLAGS_event_type_column, "event_type_column", &config.columns.event_type, "type"},
      {FLAGS_payload_column, "payload_column", &config.columns.payload, "payload"},
      {FLAGS_headers_column, "headers_column", &config.columns.headers, ""},
      {FLAGS_topic_column, "topic_column", &config.columns.topic, ""},
  };
  config.layout = layout == "debezium" ? outboxd::cdc::TableLayout::kDebezium : outboxd::cdc::TableLayout::kOutboxd;
  for (const Column& c : columns) {
    *c.field = config.layout == outboxd::cdc::TableLayout::kDebezium && !FlagGiven(c.name) ? c.debezium
                                                                                        : absl::GetFlag(c.flag);
  }
  RETURN_IF_ERROR(outboxd::cdc::ValidateSlotName(config.slot));
  const std::string source = absl::GetFlag(FLAGS_source);
  if (source != "table" && source != "messages" && source != "both") {
    return absl::InvalidArgumentError(
        absl::StrCat("--source='", source, "' is not valid; use table, messages or both"));
  }
  config.source.table = source != "messages";
  config.source.messages = source != "table";
  config.source.message_prefix = absl::GetFlag(FLAGS_message_prefix);
  return config;
}

absl::Status RequirePostgres() {
  if (!absl::GetFlag(FLAGS_postgres).empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "no PostgreSQL connection given: pass --postgres='host=HOST dbname=DB user=USER' "
      "(or a postgresql:// URI) or set OUTBOXD_POSTGRES");
}

absl::Status RequireBrokers() {
  if (!absl::GetFlag(FLAGS_brokers).empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "no Kafka brokers given: pass --brokers=HOST:PORT[,HOST:PORT...] or set OUTBOXD_BROKERS");
}

// Connects and runs the checks both init and run need. Only init creates what
// is missing (table, publication, slot): run never creates a slot, since one
// made after a failover or a DROP would silently skip what the old one held.
// *database: the name of the database connected to (for CloudEvents' ce_source).
absl::StatusOr<outboxd::Lsn> PrepareDatabase(const outboxd::cdc::OutboxConfig& config, bool init,
                                             std::string* database = nullptr) {
  ASSIGN_OR_RETURN(auto conn, outboxd::cdc::Connect(absl::GetFlag(FLAGS_postgres), outboxd::cdc::ConnectionKind::kSql));
  if (database != nullptr) *database = PQdb(conn.get());
  RETURN_IF_ERROR(outboxd::cdc::CheckServer(conn.get(), config));
  if (config.source.table) {  // a messages-only outbox has no table
    if (init) {
      RETURN_IF_ERROR(outboxd::cdc::CreateTableIfMissing(conn.get(), config));
    }
    RETURN_IF_ERROR(outboxd::cdc::CheckTable(conn.get(), config));
  }
  if (!init) {
    RETURN_IF_ERROR(outboxd::cdc::CheckPublication(conn.get(), config));
    return outboxd::cdc::CheckSlot(conn.get(), config);
  }
  RETURN_IF_ERROR(outboxd::cdc::EnsurePublication(conn.get(), config));
  return outboxd::cdc::EnsureSlot(conn.get(), config);
}

// init on PostgreSQL 17+: the slot's failover setting made to match
// --slot_failover (a slot made by an older outboxd, or by hand, gets it too).
absl::StatusOr<outboxd::cdc::SlotFailoverState> SlotFailoverForInit(const outboxd::cdc::OutboxConfig& config) {
  const std::string conninfo = absl::GetFlag(FLAGS_postgres);
  ASSIGN_OR_RETURN(auto conn, outboxd::cdc::Connect(conninfo, outboxd::cdc::ConnectionKind::kSql));
  ASSIGN_OR_RETURN(auto state, outboxd::cdc::ReadSlotFailoverState(conn.get(), config.slot));
  if (!state.Supported() || state.failover == config.slot_failover) return state;
  ASSIGN_OR_RETURN(auto replication, outboxd::cdc::Connect(conninfo, outboxd::cdc::ConnectionKind::kReplication));
  RETURN_IF_ERROR(outboxd::cdc::SetSlotFailover(replication.get(), config.slot, config.slot_failover));
  return outboxd::cdc::ReadSlotFailoverState(conn.get(), config.slot);
}

int Init(const std::vector<std::pair<std::string, std::string>>& kafka_properties) {
  if (absl::Status s = RequirePostgres(); !s.ok()) return Fail(s, kExitUsage);
  auto config = OutboxConfigFromFlags();
  if (!config.ok()) return Fail(config.status(), kExitUsage);
  auto confirmed = PrepareDatabase(*config, /*init=*/true);
  if (!confirmed.ok()) return Fail(confirmed.status());
  auto failover = SlotFailoverForInit(*config);
  if (!failover.ok()) return Fail(failover.status());
  // With --brokers, also the exactly-once checkpoint topic (compacted), so it
  // is never auto-created with the delete policy.
  if (const std::string brokers = absl::GetFlag(FLAGS_brokers); !brokers.empty()) {
    outboxd::sink::SinkConfig sink_config;
    sink_config.brokers = brokers;
    sink_config.kafka_properties = kafka_properties;
    if (absl::Status s = outboxd::sink::EnsureCheckpointTopic(
            sink_config, absl::GetFlag(FLAGS_checkpoint_topic));
        !s.ok()) {
      return Fail(s);
    }
  }
  std::cout << "ready: " << (config->source.table ? "table " + config->table.QualifiedName() : "messages only")
            << ", publication "
            << config->publication << ", slot " << config->slot << " (confirmed "
            << confirmed->ToString() << "; failover " << failover->Describe() << ")" << std::endl;
  if (const std::string warning = failover->Warning(config->slot); !warning.empty()) {
    outboxd::LogWarning(warning);
  }
  return 0;
}

std::atomic<outboxd::cdc::Relay*> g_relay{nullptr};
std::atomic<bool> g_stop_requested{false};

void OnStopSignal(int) {
  g_stop_requested.store(true);
  if (outboxd::cdc::Relay* relay = g_relay.load()) relay->Stop();
}

void InstallStopHandlers() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int Run(const std::vector<std::pair<std::string, std::string>>& kafka_properties) {
  if (absl::Status s = RequirePostgres(); !s.ok()) return Fail(s, kExitUsage);
  if (absl::Status s = RequireBrokers(); !s.ok()) return Fail(s, kExitUsage);
  auto config = OutboxConfigFromFlags();
  if (!config.ok()) return Fail(config.status(), kExitUsage);

  outboxd::sink::SinkConfig sink_config;
  sink_config.brokers = absl::GetFlag(FLAGS_brokers);
  sink_config.kafka_properties = kafka_properties;
  sink_config.linger_ms = absl::GetFlag(FLAGS_linger_ms);
  sink_config.topic_prefix = absl::GetFlag(FLAGS_topic_prefix);
  sink_config.dead_letter_topic = absl::GetFlag(FLAGS_dead_letter_topic);
  const std::string on_poison = absl::GetFlag(FLAGS_on_poison);
  if (on_poison != "dead-letter" && on_poison != "stop") {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
                    "--on_poison='", on_poison, "' is not valid; use dead-letter or stop")),
                kExitUsage);
  }
  sink_config.stop_on_poison = on_poison == "stop";
  auto format = outboxd::sink::ParseFormat(absl::GetFlag(FLAGS_format));
  if (!format.ok()) return Fail(format.status(), kExitUsage);
  sink_config.format.format = *format;
  sink_config.format.cloudevents_source = absl::GetFlag(FLAGS_cloudevents_source);
  for (const auto& [name, value] : kafka_properties) {
    if ((name == "message.timeout.ms" || name == "delivery.timeout.ms") && value != "0") {
      outboxd::LogWarning(absl::StrCat(
          "--kafka_property=", name, "=", value, ": an outage longer than that makes outboxd "
          "rewind and send again; nothing is lost, but in at-least-once mode an event that timed "
          "out can then arrive after later events of its aggregate. The default (0) waits instead"));
    }
  }
  const std::string delivery = absl::GetFlag(FLAGS_delivery);
  if (delivery != "at-least-once" && delivery != "exactly-once") {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
                    "--delivery='", delivery, "' is not valid; use at-least-once or exactly-once")),
                kExitUsage);
  }
  outboxd::admin::AdminServerOptions admin_options;
  admin_options.listen = absl::GetFlag(FLAGS_admin_listen);
  admin_options.token_file = absl::GetFlag(FLAGS_admin_token_file);
  admin_options.tls_cert_file = absl::GetFlag(FLAGS_admin_tls_cert);
  admin_options.tls_key_file = absl::GetFlag(FLAGS_admin_tls_key);
  if (!admin_options.listen.empty()) {
    if (absl::Status s = outboxd::admin::AdminServer::Validate(admin_options); !s.ok()) return Fail(s, kExitUsage);
  }
  // Bad Kafka settings are a usage error: find them before touching PostgreSQL.
  if (auto probe = outboxd::sink::KafkaSink::Create(sink_config, [](uint64_t, const absl::Status&) {});
      !probe.ok()) {
    return Fail(probe.status(), kExitUsage);
  }

  if (delivery == "exactly-once") {
    // Created if missing; an existing one must be compacted. Kafka out of
    // reach now is ridden out like any outage (the sink retries); a topic
    // with the wrong policy is not.
    const absl::Status topic = outboxd::sink::EnsureCheckpointTopic(
        sink_config, absl::GetFlag(FLAGS_checkpoint_topic), absl::Seconds(10),
        [] { return !g_stop_requested.load(); });
    if (absl::IsCancelled(topic)) {
      outboxd::LogInfo("stopped before streaming began");
      return 0;
    }
    if (absl::IsUnavailable(topic)) {
      outboxd::LogWarning(absl::StrCat("cannot check the checkpoint topic now (", topic.message(),
                                       "); going on"));
    } else if (!topic.ok()) {
      return Fail(topic);
    }
  }

  if (const std::string warning = outboxd::cdc::MultiHostWarning(absl::GetFlag(FLAGS_postgres)); !warning.empty()) {
    outboxd::LogWarning(warning);
  }
  std::string database;
  auto confirmed = PrepareDatabase(*config, /*init=*/false, &database);
  if (!confirmed.ok()) return Fail(confirmed.status());
  sink_config.format.cloudevents_source_prefix = absl::StrCat("/outboxd/", database, "/");

  outboxd::cdc::RelayOptions options;
  options.conninfo = absl::GetFlag(FLAGS_postgres);
  options.outbox = *config;
  options.dead_letter_topic = sink_config.dead_letter_topic;
  options.topic_prefix = sink_config.topic_prefix;
  options.stop_on_poison = sink_config.stop_on_poison;
  options.sink_per_session = delivery == "exactly-once";
  options.sink_description = absl::StrCat("Kafka at ", sink_config.brokers, " (", delivery, ")");
  options.status_interval = absl::GetFlag(FLAGS_status_interval);
  options.confirm_interval = absl::GetFlag(FLAGS_confirm_interval);
  options.max_backoff = absl::GetFlag(FLAGS_max_backoff);
  options.replication_timeout = absl::GetFlag(FLAGS_replication_timeout);
  options.shutdown_flush_timeout = absl::GetFlag(FLAGS_shutdown_timeout);
  outboxd::EventSink::Factory factory;
  if (delivery == "exactly-once") {
    outboxd::sink::TransactionalConfig txn_config;
    txn_config.sink = sink_config;
    txn_config.slot = config->slot;
    txn_config.checkpoint_topic = absl::GetFlag(FLAGS_checkpoint_topic);
    txn_config.max_batch_events = static_cast<uint64_t>(std::max<int64_t>(1, absl::GetFlag(FLAGS_transaction_max_events)));
    txn_config.max_batch_age = absl::GetFlag(FLAGS_transaction_max_age);
    txn_config.accept_system_id_change = absl::GetFlag(FLAGS_accept_checkpoint_system_id_change);
    // One transactional id per PostgreSQL system, database and slot: a
    // restarted or second relay on the slot (or on a physical replica
    // promoted in its place, which keeps the system identifier) fences the
    // previous one, and deployments that share a slot name on different
    // clusters or databases do not fence each other. --kafka_property
    // transactional.id=... overrides it (the user's properties win).
    factory = [txn_config, database](const outboxd::SourceSystem& source,
                                     outboxd::EventSink::DeliveryCallback cb)
        -> absl::StatusOr<std::unique_ptr<outboxd::EventSink>> {
      outboxd::sink::TransactionalConfig session = txn_config;
      session.keep_waiting = source.keep_waiting;
      session.system_identifier = source.system_identifier;
      std::string transactional_id =
          absl::StrCat("outboxd-", source.system_identifier, "-", database, "-", txn_config.slot);
      for (const auto& [name, value] : txn_config.sink.kafka_properties) {
        if (name == "transactional.id") transactional_id = value;  // the last one wins, as in librdkafka
      }
      outboxd::LogInfo(absl::StrCat("exactly-once: Kafka transactional.id ", transactional_id));
      ASSIGN_OR_RETURN(auto kafka, outboxd::sink::MakeRdKafkaTransactional(session.sink, transactional_id));
      ASSIGN_OR_RETURN(auto sink, outboxd::sink::TransactionalSink::Create(std::move(session), std::move(kafka), std::move(cb)));
      return std::unique_ptr<outboxd::EventSink>(std::move(sink));
    };
  } else {
    factory = [sink_config](const outboxd::SourceSystem&, outboxd::EventSink::DeliveryCallback cb)
        -> absl::StatusOr<std::unique_ptr<outboxd::EventSink>> {
      ASSIGN_OR_RETURN(auto sink, outboxd::sink::KafkaSink::Create(sink_config, std::move(cb)));
      return std::unique_ptr<outboxd::EventSink>(std::move(sink));
    };
  }
  outboxd::stats::RelayStats stats;
  outboxd::cdc::Relay relay(options, std::move(factory), &stats);
  // Declared after the relay: destroyed (stopped) before it.
  outboxd::admin::StatusReporter reporter(
      &stats, {.slot = config->slot,
               .publication = config->publication,
               .table = config->source.table ? config->table.QualifiedName() : "",
               .stall_timeout = absl::GetFlag(FLAGS_stall_timeout)});
  std::unique_ptr<outboxd::admin::AdminServer> admin_server;
  if (!admin_options.listen.empty()) {
    auto server = outboxd::admin::AdminServer::Create(
        admin_options, &reporter, {.pause = [&relay] { relay.Pause(); }, .resume = [&relay] { relay.Resume(); }});
    if (server.ok()) {
      admin_server = std::move(*server);
      outboxd::LogInfo(absl::StrCat("admin API listening on ", admin_server->address(),
                                    admin_server->tls() ? " (TLS)" : ""));
    } else if (absl::IsUnavailable(server.status()) && !FlagGiven("admin_listen")) {
      // The default port is taken, most likely by a second relay on this host
      // (a hot standby): relaying matters more than the admin API.
      outboxd::LogWarning(absl::StrCat(server.status().message(),
                                       "; running without the admin API (set --admin_listen to choose a port)"));
    } else {
      return Fail(server.status());
    }
  }
  std::unique_ptr<outboxd::admin::MetricsServer> metrics_server;
  if (const std::string listen = absl::GetFlag(FLAGS_metrics_listen); !listen.empty()) {
    auto server = outboxd::admin::MetricsServer::Create(listen, &reporter);
    if (server.ok()) {
      metrics_server = std::move(*server);
      outboxd::LogInfo(absl::StrCat("metrics listening on http://", metrics_server->address(),
                                    "/metrics (/healthz, /readyz)"));
    } else if (absl::IsUnavailable(server.status()) && !FlagGiven("metrics_listen")) {
      outboxd::LogWarning(absl::StrCat(server.status().message(),
                                       "; running without metrics (set --metrics_listen to choose a port)"));
    } else {
      return Fail(server.status());
    }
  }
  g_relay.store(&relay);
  if (g_stop_requested.load()) relay.Stop();
  absl::Status result = relay.Run(*confirmed);
  g_relay.store(nullptr);
  if (metrics_server) metrics_server->Stop();
  if (admin_server) admin_server->Stop();
  return result.ok() ? 0 : Fail(result);
}

int PeekCommand(const std::vector<char*>& args) {
  if (absl::Status s = RequirePostgres(); !s.ok()) return Fail(s, kExitUsage);
  outboxd::cdc::PeekOptions options;
  options.conninfo = absl::GetFlag(FLAGS_postgres);
  options.publication = absl::GetFlag(FLAGS_publication);
  // The relay's slot only when asked for: by default peek looks at what
  // happens from now on, in a temporary slot of its own.
  if (getenv("OUTBOXD_SLOT") != nullptr || GivenOnCommandLine(args, "slot")) {
    options.slot = absl::GetFlag(FLAGS_slot);
  }
  if (const std::string end = absl::GetFlag(FLAGS_end_lsn); !end.empty()) {
    auto lsn = outboxd::Lsn::Parse(end);
    if (!lsn.ok()) return Fail(absl::InvalidArgumentError(absl::StrCat("--end_lsn: ", lsn.status().message())), kExitUsage);
    options.end_lsn = *lsn;
  }
  options.limit = absl::GetFlag(FLAGS_limit);
  absl::Status result = outboxd::cdc::Peek(options, std::cout, g_stop_requested);
  return result.ok() ? 0 : Fail(result);
}

int StatusCommand() {
  outboxd::admin::StatusCommandOptions options;
  options.admin = absl::GetFlag(FLAGS_admin);
  options.token_file = absl::GetFlag(FLAGS_admin_token_file);
  options.tls_ca_file = absl::GetFlag(FLAGS_admin_tls_ca);
  options.json = absl::GetFlag(FLAGS_json);
  absl::Status result = outboxd::admin::PrintStatus(options, std::cout);
  if (absl::IsInvalidArgument(result)) return Fail(result, kExitUsage);
  return result.ok() ? 0 : Fail(result);
}

int Tail() {
  if (absl::Status s = RequireBrokers(); !s.ok()) return Fail(s, kExitUsage);
  outboxd::sink::TailOptions options;
  options.brokers = absl::GetFlag(FLAGS_brokers);
  options.topic = absl::GetFlag(FLAGS_topic);
  options.from_beginning = absl::GetFlag(FLAGS_from) != "end";
  options.limit = absl::GetFlag(FLAGS_limit);
  options.timeout = absl::GetFlag(FLAGS_timeout);
  if (FlagGiven("format")) {
    auto format = outboxd::sink::ParseFormat(absl::GetFlag(FLAGS_format));
    if (!format.ok()) return Fail(format.status(), kExitUsage);
    options.format = *format;
  }
  if (options.topic.empty()) {
    return Fail(absl::InvalidArgumentError(
                    "no topic given: pass --topic=NAME, or a regex such as --topic='^outbox\\..*'"),
                kExitUsage);
  }
  if (absl::GetFlag(FLAGS_from) != "end" && absl::GetFlag(FLAGS_from) != "beginning") {
    return Fail(absl::InvalidArgumentError("--from must be 'beginning' or 'end'"), kExitUsage);
  }
  absl::Status result = outboxd::sink::Tail(options, std::cout, g_stop_requested);
  return result.ok() ? 0 : Fail(result);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || absl::string_view(argv[1]) == "--help" || absl::string_view(argv[1]) == "-h" ||
      absl::string_view(argv[1]) == "help") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? kExitUsage : 0;
  }
  const std::string command = argv[1];
  absl::SetProgramUsageMessage(kUsage);
  for (int i = 2; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-help" || arg == "-h" || arg == "--helpfull") {
      PrintCommandHelp(command);
      return 0;
    }
  }
  setenv("PGCONNECT_TIMEOUT", "10", /*overwrite=*/0);

  std::vector<std::pair<std::string, std::string>> kafka_properties;
  // argv[1], the command, stands where absl expects the program name.
  auto rest = ExtractKafkaProperties(argc - 1, argv + 1, &kafka_properties);
  if (!rest.ok()) return Fail(rest.status(), kExitUsage);
  if (absl::Status s = ApplyEnvironment(); !s.ok()) return Fail(s, kExitUsage);
  if (absl::Status s = CheckFlags(*rest, command); !s.ok()) return Fail(s, kExitUsage);
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(rest->size()), rest->data());
  if (positional.size() > 1) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional[1],
                                                        "'; flags look like --name=value")),
                kExitUsage);
  }

  const std::string log_format = absl::GetFlag(FLAGS_log_format);
  outboxd::SetLogFormat(log_format == "json" ? outboxd::LogFormat::kJson : outboxd::LogFormat::kText);
  const std::string level = absl::GetFlag(FLAGS_log_level);
  outboxd::SetMinLogLevel(level == "debug"     ? outboxd::LogLevel::kDebug
                          : level == "warning" ? outboxd::LogLevel::kWarning
                          : level == "error"   ? outboxd::LogLevel::kError
                                               : outboxd::LogLevel::kInfo);
  InstallStopHandlers();

  if (command == "init") return Init(kafka_properties);
  if (command == "run") return Run(kafka_properties);
  if (command == "tail") return Tail();
  if (command == "peek") return PeekCommand(*rest);
  if (command == "status") return StatusCommand();
  return Fail(absl::InvalidArgumentError(absl::StrCat("unknown command '", command,
                                                      "'; run `outboxd --help` for the commands")),
              kExitUsage);
}
