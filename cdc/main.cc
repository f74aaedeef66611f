// outboxd: the command line. Parses flags (each also read from OUTBOXD_<FLAG>)
// and wires cdc/ (PostgreSQL) to sink/ (Kafka); all logic lives in those modules.
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
#include "cdc/event_sink.h"
#include "cdc/peek.h"
#include "cdc/pg_connection.h"
#include "cdc/relay.h"
#include "cdc/setup.h"
#include "outboxd/log.h"
#include "sink/kafka_sink.h"
#include "sink/tail.h"
#include "sink/transactional_sink.h"

// Connections.
ABSL_FLAG(std::string, postgres, "",
          "libpq connection string or URI of the database holding the outbox table, e.g. "
          "'host=db dbname=shop user=outboxd'. Passwords: PGPASSWORD, ~/.pgpass or PGPASSFILE");
ABSL_FLAG(std::string, brokers, "", "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]");
// What to read.
ABSL_FLAG(std::string, table, "public.outbox_events", "outbox table, schema.name");
ABSL_FLAG(std::string, publication, "outboxd", "publication to stream (created if missing)");
ABSL_FLAG(std::string, slot, "outboxd", "logical replication slot (created if missing)");
ABSL_FLAG(std::string, source, "table",
          "where events come from: 'table' (inserts into --table), 'messages' (transactional "
          "pg_logical_emit_message(true, --message_prefix, json); PostgreSQL 14+) or 'both'");
ABSL_FLAG(std::string, message_prefix, "outbox", "prefix of the logical decoding messages that are events");
ABSL_FLAG(std::string, id_column, "id", "column with the event id");
ABSL_FLAG(std::string, aggregate_type_column, "aggregate_type", "column that routes the topic");
ABSL_FLAG(std::string, aggregate_id_column, "aggregate_id", "column used as the Kafka key");
ABSL_FLAG(std::string, event_type_column, "event_type", "column with the event type");
ABSL_FLAG(std::string, payload_column, "payload", "column with the payload");
ABSL_FLAG(std::string, headers_column, "headers", "optional jsonb column of string headers");
ABSL_FLAG(std::string, topic_column, "topic", "optional column overriding the topic per row");
// Kafka.
ABSL_FLAG(std::string, topic_prefix, "outbox.event.", "topic = prefix + aggregate type");
ABSL_FLAG(std::string, dead_letter_topic, "outbox.dead-letter",
          "where events go that cannot go where they belong (reason in headers)");
ABSL_FLAG(std::string, on_poison, "dead-letter",
          "an event that can never be delivered (invalid topic, NULL required column, record "
          "the broker rejects): 'dead-letter' parks it in --dead_letter_topic and goes on, "
          "'stop' exits non-zero without confirming past it");
ABSL_FLAG(std::string, delivery, "at-least-once",
          "'at-least-once' (idempotent producer; a crash may repeat events) or 'exactly-once' "
          "(Kafka transactions with a checkpoint; read_committed consumers see each event once)");
ABSL_FLAG(std::string, checkpoint_topic, "outboxd.checkpoints",
          "exactly-once: compacted topic holding each slot's last committed position");
ABSL_FLAG(int64_t, transaction_max_events, 10000,
          "exactly-once: commit the Kafka transaction once it holds this many events");
ABSL_FLAG(absl::Duration, transaction_max_age, absl::Milliseconds(100),
          "exactly-once: commit the Kafka transaction at the latest this long after it began "
          "(it commits at once when the stream goes quiet)");
ABSL_FLAG(int, linger_ms, 1, "how long the producer waits to batch events (librdkafka linger.ms)");
ABSL_FLAG(std::string, kafka_property, "",
          "any librdkafka property as key=value; repeat the flag for more (SASL, TLS, "
          "compression). Environment: OUTBOXD_KAFKA_PROPERTY, several separated by ';'");
// Behaviour.
ABSL_FLAG(absl::Duration, status_interval, absl::Seconds(1),
          "how often the confirmed position is reported to PostgreSQL");
ABSL_FLAG(absl::Duration, max_backoff, absl::Seconds(5), "longest wait between reconnect attempts");
ABSL_FLAG(absl::Duration, shutdown_timeout, absl::Seconds(10),
          "on SIGTERM, how long to wait for Kafka to acknowledge events in flight");
ABSL_FLAG(std::string, log_format, "text", "text or json");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
// tail.
ABSL_FLAG(std::string, topic, "", "tail: topic to read, or a regex starting with ^");
ABSL_FLAG(std::string, from, "beginning", "tail: start at the 'beginning' or the 'end'");
ABSL_FLAG(int64_t, limit, 0, "tail: exit after this many events (0: run until stopped)");
ABSL_FLAG(absl::Duration, timeout, absl::ZeroDuration(),
          "tail: exit (status 1) if --limit events have not arrived within this time (0: wait)");
// Operations: admin API and metrics (run), and `status`.
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:7700",
          "run: HOST:PORT of the admin gRPC API (GetStatus, Pause, Resume, grpc.health.v1); "
          "port 0 picks a free one (logged); '' disables it. Beyond loopback it needs "
          "--admin_token_file and --admin_tls_cert/--admin_tls_key");
ABSL_FLAG(std::string, admin_token_file, "",
          "run: file holding the bearer token every admin call must send "
          "('authorization: Bearer <token>'); status: the token to send");
ABSL_FLAG(std::string, admin_tls_cert, "", "run: PEM certificate chain for the admin API (TLS)");
ABSL_FLAG(std::string, admin_tls_key, "", "run: PEM private key for the admin API (TLS)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9187",
          "run: HOST:PORT serving /metrics (Prometheus), /healthz and /readyz; port 0 picks a "
          "free one (logged); '' disables it");
ABSL_FLAG(std::string, admin, "127.0.0.1:7700", "status: address of a running relay's admin API");
ABSL_FLAG(std::string, admin_tls_ca, "",
          "status: connect with TLS, trusting this PEM (CA or the server's own certificate)");
ABSL_FLAG(bool, json, false, "status: print protobuf's JSON mapping instead of aligned lines");
// peek.
ABSL_FLAG(std::string, end_lsn, "", "peek: stop once the stream reaches this LSN (X/Y)");

namespace {

constexpr char kUsage[] = R"(outboxd relays transactional outbox rows from PostgreSQL to Kafka.

usage: outboxd <command> [flags]

commands:
  init    create the outbox table, publication and slot (idempotent)
          --postgres [--table --publication --slot]
  run     stream outbox inserts to Kafka; confirms WAL only after Kafka acknowledges
          --postgres --brokers [--table --publication --slot --kafka_property=k=v ...]
  tail    print events from Kafka as JSON lines
          --brokers --topic [--from=beginning|end --limit=N]
  peek    print the decoded replication stream as JSON lines; confirms nothing
          --postgres [--slot (default: a temporary slot from now) --publication
          --end_lsn=X/Y --limit=N]
  status  print a running relay's status from its admin API
          --admin=HOST:PORT [--admin_token_file --admin_tls_ca --json]

Every flag also reads an environment variable: --postgres from OUTBOXD_POSTGRES,
--brokers from OUTBOXD_BROKERS, and so on; a flag on the command line wins.
--flagfile=FILE reads flags from a file. `outboxd <command> --help` lists all flags.
)";

// Every flag this binary defines, grouped for `outboxd <command> --help`; each
// also comes from OUTBOXD_<NAME> (kafka_property has its own rule). A new flag
// goes into a group here, or it has no environment variable and no help.
struct FlagGroup {
  const char* title;
  std::vector<absl::string_view> commands;
  std::vector<absl::string_view> flags;
};
const std::vector<FlagGroup>& FlagGroups() {
  static const std::vector<FlagGroup> groups = {
      {"PostgreSQL", {"init", "run", "peek"}, {"postgres"}},
      {"Outbox", {"init", "run"},
       {"table", "publication", "slot", "source", "message_prefix", "id_column",
        "aggregate_type_column", "aggregate_id_column", "event_type_column", "payload_column",
        "headers_column", "topic_column"}},
      {"Kafka", {"run", "tail"}, {"brokers"}},
      {"Routing and producer", {"run"},
       {"topic_prefix", "dead_letter_topic", "on_poison", "linger_ms", "kafka_property"}},
      {"Delivery", {"run"}, {"delivery", "checkpoint_topic", "transaction_max_events", "transaction_max_age"}},
      {"Behaviour", {"run"}, {"status_interval", "max_backoff", "shutdown_timeout"}},
      {"Admin API and metrics", {"run"},
       {"admin_listen", "admin_token_file", "admin_tls_cert", "admin_tls_key", "metrics_listen"}},
      {"tail", {"tail"}, {"topic", "from", "limit", "timeout"}},
      {"peek", {"peek"}, {"slot", "publication", "end_lsn", "limit"}},
      {"status", {"status"}, {"admin", "admin_token_file", "admin_tls_ca", "json"}},
      {"Logging", {"init", "run", "tail", "peek", "status"}, {"log_format", "log_level"}},
  };
  return groups;
}

// `outboxd <command> --help`: the command's flags by group, each with its default.
void PrintCommandHelp(absl::string_view command) {
  std::cout << "usage: outboxd " << command << " [flags]\n";
  for (const FlagGroup& group : FlagGroups()) {
    if (std::find(group.commands.begin(), group.commands.end(), command) == group.commands.end()) continue;
    std::cout << "\n" << group.title << ":\n";
    for (absl::string_view name : group.flags) {
      const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
      if (flag == nullptr) continue;
      const std::string def = flag->DefaultValue();
      std::cout << "  --" << name << (def.empty() ? "" : "  (default: " + def + ")") << "\n      "
                << flag->Help() << "\n";
    }
  }
  std::cout << "\nEvery flag also reads OUTBOXD_<FLAG> (e.g. OUTBOXD_POSTGRES); the command line wins.\n"
               "--flagfile=FILE reads flags from a file.\n";
}

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int Fail(const absl::Status& status, int code = kExitFailure) {
  outboxd::LogError(status.message());
  return code;
}

// Applies OUTBOXD_<FLAG> for every flag; the command line, parsed afterwards, wins.
absl::Status ApplyEnvironment() {
  std::set<absl::string_view> names;
  for (const FlagGroup& group : FlagGroups()) names.insert(group.flags.begin(), group.flags.end());
  names.erase("kafka_property");  // several values: see ExtractKafkaProperties
  for (absl::string_view name : names) {
    const std::string var = absl::StrCat("OUTBOXD_", absl::AsciiStrToUpper(name));
    const char* value = getenv(var.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string error;
    if (flag == nullptr || !flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat(var, "='", value, "' is not valid: ", error));
    }
  }
  return absl::OkStatus();
}

// --kafka_property may repeat, which absl flags do not support: take those out
// of argv before parsing. Returns the remaining argv.
absl::StatusOr<std::vector<char*>> ExtractKafkaProperties(
    int argc, char** argv, std::vector<std::pair<std::string, std::string>>* properties) {
  std::vector<std::string> raw;
  if (const char* env = getenv("OUTBOXD_KAFKA_PROPERTY")) {
    for (absl::string_view p : absl::StrSplit(env, ';', absl::SkipWhitespace())) raw.emplace_back(p);
  }
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--kafka_property=") || absl::ConsumePrefix(&arg, "-kafka_property=")) {
      raw.emplace_back(arg);
    } else if ((arg == "--kafka_property" || arg == "-kafka_property") && i + 1 < argc) {
      raw.emplace_back(argv[++i]);
    } else {
      rest.push_back(argv[i]);
    }
  }
  for (const std::string& p : raw) {
    const size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--kafka_property='", p, "' is not key=value, e.g. --kafka_property=compression.type=lz4"));
    }
    properties->emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  return rest;
}

// absl::ParseCommandLine exits with status 1 on an unknown flag or a bad value;
// here both are usage errors (2) with a message that says where the flags are
// listed. Checked the way absl reads them: --name=value, --name value, --noname.
absl::Status CheckFlags(const std::vector<char*>& args, absl::string_view command) {
  for (size_t i = 1; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "-")) continue;
    absl::ConsumePrefix(&arg, "-");
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    // absl's own flags (help, flagfile, ...): absl::ParseCommandLine handles them.
    if (absl::StartsWith(name, "help") || name == "version" || name == "only_check_args" ||
        name == "flagfile" || name == "fromenv" || name == "tryfromenv" || name == "undefok") {
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && eq == absl::string_view::npos) {
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) continue;
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag --", name, "; `outboxd ", command, " --help` lists the flags"));
    }
    absl::string_view value;
    if (eq != absl::string_view::npos) {
      value = arg.substr(eq + 1);
    } else if (flag->IsOfType<bool>()) {
      continue;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value: --", name, "=VALUE"));
    }
    std::string error;
    // The value is parsed again by absl::ParseCommandLine, to the same result.
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, "='", value, "' is not valid: ", error));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<outboxd::cdc::OutboxConfig> OutboxConfigFromFlags() {
  auto table = outboxd::decoder::OutboxTable::Parse(absl::GetFlag(FLAGS_table));
  if (!table.ok()) return table.status();
  outboxd::cdc::OutboxConfig config;
  config.table = *table;
  config.publication = absl::GetFlag(FLAGS_publication);
  config.slot = absl::GetFlag(FLAGS_slot);
  config.columns.id = absl::GetFlag(FLAGS_id_column);
  config.columns.aggregate_type = absl::GetFlag(FLAGS_aggregate_type_column);
  config.columns.aggregate_id = absl::GetFlag(FLAGS_aggregate_id_column);
  config.columns.event_type = absl::GetFlag(FLAGS_event_type_column);
  config.columns.payload = absl::GetFlag(FLAGS_payload_column);
  config.columns.headers = absl::GetFlag(FLAGS_headers_column);
  config.columns.topic = absl::GetFlag(FLAGS_topic_column);
  if (absl::Status s = outboxd::cdc::ValidateSlotName(config.slot); !s.ok()) return s;
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

// Connects and runs the checks both init and run need; creates what is missing.
absl::StatusOr<outboxd::Lsn> PrepareDatabase(const outboxd::cdc::OutboxConfig& config, bool create_table) {
  auto conn = outboxd::cdc::Connect(absl::GetFlag(FLAGS_postgres), outboxd::cdc::ConnectionKind::kSql);
  if (!conn.ok()) return conn.status();
  if (absl::Status s = outboxd::cdc::CheckServer(conn->get(), config); !s.ok()) return s;
  if (config.source.table) {  // a messages-only outbox has no table
    if (create_table) {
      if (absl::Status s = outboxd::cdc::CreateTableIfMissing(conn->get(), config); !s.ok()) return s;
    }
    if (absl::Status s = outboxd::cdc::CheckTable(conn->get(), config); !s.ok()) return s;
  }
  if (absl::Status s = outboxd::cdc::EnsurePublication(conn->get(), config); !s.ok()) return s;
  return outboxd::cdc::EnsureSlot(conn->get(), config);
}

int Init() {
  if (absl::Status s = RequirePostgres(); !s.ok()) return Fail(s, kExitUsage);
  auto config = OutboxConfigFromFlags();
  if (!config.ok()) return Fail(config.status(), kExitUsage);
  auto confirmed = PrepareDatabase(*config, /*create_table=*/true);
  if (!confirmed.ok()) return Fail(confirmed.status());
  std::cout << "ready: " << (config->source.table ? "table " + config->table.QualifiedName() : "messages only")
            << ", publication "
            << config->publication << ", slot " << config->slot << " (confirmed "
            << confirmed->ToString() << ")" << std::endl;
  return 0;
}

// KafkaSink behind cdc's EventSink: the one place that knows both.
class KafkaEventSink : public outboxd::cdc::EventSink {
 public:
  explicit KafkaEventSink(std::unique_ptr<outboxd::sink::KafkaSink> sink) : sink_(std::move(sink)) {}
  absl::Status Produce(const outboxd::v1::OutboxEvent& event, absl::string_view topic_override,
                       uint64_t ticket) override {
    return sink_->Produce(event, topic_override, ticket);
  }
  void Poll(int timeout_ms) override { sink_->Poll(timeout_ms); }
  int wakeup_fd() const override { return sink_->wakeup_fd(); }
  absl::Status Flush(absl::Duration timeout) override { return sink_->Flush(timeout); }
  int InFlight() const override { return sink_->InFlight(); }
  uint64_t DeadLettered() const override { return sink_->DeadLettered(); }
  bool Reachable() const override { return sink_->BrokersReachable(); }

 private:
  std::unique_ptr<outboxd::sink::KafkaSink> sink_;
};

// TransactionalSink (exactly-once) behind cdc's EventSink.
class TransactionalEventSink : public outboxd::cdc::EventSink {
 public:
  explicit TransactionalEventSink(std::unique_ptr<outboxd::sink::TransactionalSink> sink)
      : sink_(std::move(sink)) {}
  absl::Status Produce(const outboxd::v1::OutboxEvent& event, absl::string_view topic_override,
                       uint64_t ticket) override {
    return sink_->Produce(event, topic_override, ticket);
  }
  void Poll(int timeout_ms) override { sink_->Poll(timeout_ms); }
  int wakeup_fd() const override { return sink_->wakeup_fd(); }
  absl::Status Flush(absl::Duration timeout) override { return sink_->Flush(timeout); }
  int InFlight() const override { return sink_->InFlight(); }
  void EndOfTransaction(outboxd::Lsn end_lsn) override { sink_->EndOfTransaction(end_lsn); }
  void StreamIdle() override { sink_->StreamIdle(); }
  outboxd::Lsn RecoveredPosition() const override { return sink_->RecoveredPosition(); }
  uint64_t DeadLettered() const override { return sink_->dead_lettered(); }

 private:
  std::unique_ptr<outboxd::sink::TransactionalSink> sink_;
};

// Whether the user chose a value other than the default (command line or OUTBOXD_<FLAG>).
template <typename T>
bool FlagGiven(const absl::Flag<T>& flag, absl::string_view name) {
  const absl::CommandLineFlag& handle = absl::GetFlagReflectionHandle(flag);
  return handle.CurrentValue() != handle.DefaultValue() ||
         getenv(absl::StrCat("OUTBOXD_", absl::AsciiStrToUpper(name)).c_str()) != nullptr;
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

  auto confirmed = PrepareDatabase(*config, /*create_table=*/false);
  if (!confirmed.ok()) return Fail(confirmed.status());

  outboxd::cdc::RelayOptions options;
  options.conninfo = absl::GetFlag(FLAGS_postgres);
  options.outbox = *config;
  options.dead_letter_topic = sink_config.dead_letter_topic;
  options.stop_on_poison = sink_config.stop_on_poison;
  options.sink_per_session = delivery == "exactly-once";
  options.sink_description = absl::StrCat("Kafka at ", sink_config.brokers, " (", delivery, ")");
  options.status_interval = absl::GetFlag(FLAGS_status_interval);
  options.max_backoff = absl::GetFlag(FLAGS_max_backoff);
  options.shutdown_flush_timeout = absl::GetFlag(FLAGS_shutdown_timeout);
  outboxd::cdc::EventSink::Factory factory;
  if (delivery == "exactly-once") {
    outboxd::sink::TransactionalConfig txn_config;
    txn_config.sink = sink_config;
    txn_config.slot = config->slot;
    txn_config.checkpoint_topic = absl::GetFlag(FLAGS_checkpoint_topic);
    txn_config.max_batch_events = static_cast<uint64_t>(std::max<int64_t>(1, absl::GetFlag(FLAGS_transaction_max_events)));
    txn_config.max_batch_age = absl::GetFlag(FLAGS_transaction_max_age);
    // One transactional id per slot: a restarted or second relay on the slot
    // fences the previous one.
    const std::string transactional_id = absl::StrCat("outboxd-", config->slot);
    factory = [txn_config, transactional_id](outboxd::cdc::EventSink::DeliveryCallback cb)
        -> absl::StatusOr<std::unique_ptr<outboxd::cdc::EventSink>> {
      auto kafka = outboxd::sink::MakeRdKafkaTransactional(txn_config.sink, transactional_id);
      if (!kafka.ok()) return kafka.status();
      auto sink = outboxd::sink::TransactionalSink::Create(txn_config, std::move(*kafka), std::move(cb));
      if (!sink.ok()) return sink.status();
      return std::make_unique<TransactionalEventSink>(std::move(*sink));
    };
  } else {
    factory = [sink_config](outboxd::cdc::EventSink::DeliveryCallback cb)
        -> absl::StatusOr<std::unique_ptr<outboxd::cdc::EventSink>> {
      auto sink = outboxd::sink::KafkaSink::Create(sink_config, std::move(cb));
      if (!sink.ok()) return sink.status();
      return std::make_unique<KafkaEventSink>(std::move(*sink));
    };
  }
  outboxd::cdc::RelayStats stats;
  outboxd::cdc::Relay relay(options, std::move(factory), &stats);
  // Declared after the relay: destroyed (stopped) before it.
  outboxd::admin::StatusReporter reporter(
      &stats, {.slot = config->slot,
               .publication = config->publication,
               .table = config->source.table ? config->table.QualifiedName() : ""});
  std::unique_ptr<outboxd::admin::AdminServer> admin_server;
  if (!admin_options.listen.empty()) {
    auto server = outboxd::admin::AdminServer::Create(
        admin_options, &reporter, {.pause = [&relay] { relay.Pause(); }, .resume = [&relay] { relay.Resume(); }});
    if (server.ok()) {
      admin_server = std::move(*server);
      outboxd::LogInfo(absl::StrCat("admin API listening on ", admin_server->address(),
                                    admin_server->tls() ? " (TLS)" : ""));
    } else if (absl::IsUnavailable(server.status()) && !FlagGiven(FLAGS_admin_listen, "admin_listen")) {
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
    } else if (absl::IsUnavailable(server.status()) && !FlagGiven(FLAGS_metrics_listen, "metrics_listen")) {
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

// Whether --name was given on the command line (absl 20220623 keeps its own
// record of that private).
bool GivenOnCommandLine(const std::vector<char*>& args, absl::string_view name) {
  for (const char* arg : args) {
    absl::string_view a = arg;
    if ((absl::ConsumePrefix(&a, "--") || absl::ConsumePrefix(&a, "-")) &&
        (a == name || absl::StartsWith(a, absl::StrCat(name, "=")))) {
      return true;
    }
  }
  return false;
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

  if (command == "init") return Init();
  if (command == "run") return Run(kafka_properties);
  if (command == "tail") return Tail();
  if (command == "peek") return PeekCommand(*rest);
  if (command == "status") return StatusCommand();
  return Fail(absl::InvalidArgumentError(absl::StrCat("unknown command '", command,
                                                      "'; run `outboxd --help` for the commands")),
              kExitUsage);
}
