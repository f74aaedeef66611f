// The flags of `outboxd`, their OUTBOXD_* variables and `outboxd <command> --help`.
//
// Every flag is defined here, and only here: the registry (absl::GetAllFlags(),
// filtered to this file) is what gives each flag its environment variable, so a
// new flag cannot miss it. Help groups come from FlagGroups() below; a flag left
// out of every group is still listed (under "Other") and fails FlagsTest.
#include "cmd/outboxd/flags.h"

#include <stdlib.h>

#include <algorithm>
#include <iostream>
#include <set>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

// Connections.
ABSL_FLAG(std::string, postgres, "",
          "libpq connection string or URI of the database holding the outbox table, e.g. "
          "'host=db dbname=shop user=outboxd'. Passwords: PGPASSWORD, ~/.pgpass or PGPASSFILE");
ABSL_FLAG(std::string, brokers, "", "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]");
// What to read.
ABSL_FLAG(std::string, table, "public.outbox_events", "outbox table, schema.name");
ABSL_FLAG(std::string, publication, "outboxd", "publication to stream (created if missing)");
ABSL_FLAG(std::string, slot, "outboxd", "logical replication slot (created if missing)");
ABSL_FLAG(bool, slot_failover, true,
          "init: create the slot with failover = true (and set it on an existing slot) so "
          "standbys that synchronise slots keep it through a failover; PostgreSQL 17+ only, "
          "older servers have no failover slots (init says so)");
ABSL_FLAG(std::string, source, "table",
          "where events come from: 'table' (inserts into --table), 'messages' (transactional "
          "pg_logical_emit_message(true, --message_prefix, json); PostgreSQL 14+) or 'both'");
ABSL_FLAG(std::string, message_prefix, "outbox", "prefix of the logical decoding messages that are events");
ABSL_FLAG(std::string, table_layout, "outboxd",
          "outboxd, or debezium: the column names of Debezium's default outbox table (id, aggregatetype, "
          "aggregateid, type, payload; no headers or topic column), and init creates that table; "
          "a --*_column flag still overrides");
ABSL_FLAG(std::string, id_column, "id", "column with the event id");
ABSL_FLAG(std::string, aggregate_type_column, "aggregate_type", "column that routes the topic");
ABSL_FLAG(std::string, aggregate_id_column, "aggregate_id", "column used as the Kafka key");
ABSL_FLAG(std::string, event_type_column, "event_type", "column with the event type");
ABSL_FLAG(std::string, payload_column, "payload", "column with the payload");
ABSL_FLAG(std::string, headers_column, "headers", "optional jsonb column of string headers");
ABSL_FLAG(std::string, topic_column, "topic", "optional column overriding the topic per row");
// Kafka.
ABSL_FLAG(std::string, format, "envelope",
          "record format: envelope (outboxd.v1.OutboxEvent), debezium (what Debezium's Outbox Event "
          "Router writes with StringConverter), cloudevents (CloudEvents 1.0 Kafka binding, binary "
          "mode) or json (the envelope as one JSON object); tail: read every record as this format "
          "instead of recognising each record's");
ABSL_FLAG(std::string, cloudevents_source, "",
          "--format=cloudevents: ce_source of every event (default /outboxd/<database>/<schema>.<table>, "
          "or /outboxd/<database>/message:<prefix> for messages)");
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
ABSL_FLAG(bool, accept_checkpoint_system_id_change, false,
          "exactly-once: accept a checkpoint written for another PostgreSQL system (e.g. after "
          "pg_upgrade or a migration to a new cluster); its position is ignored and replication "
          "resumes at the slot's (events may repeat). Without it such a checkpoint stops outboxd");
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
          "how often the confirmed position is reported to PostgreSQL when it has not moved");
ABSL_FLAG(absl::Duration, confirm_interval, absl::Milliseconds(10),
          "how soon a confirmed position that moved (Kafka acknowledged up to it) is reported to "
          "PostgreSQL: at most one status update per interval while it moves; 0 reports it only "
          "every --status_interval");
ABSL_FLAG(absl::Duration, max_backoff, absl::Seconds(5), "longest wait between reconnect attempts");
ABSL_FLAG(absl::Duration, replication_timeout, absl::Seconds(30),
          "after this long without a message from PostgreSQL, ask it for a reply and "
          "reconnect if none comes within 10 s (a dead network path or a hung server); 0 turns "
          "the check off");
ABSL_FLAG(absl::Duration, shutdown_timeout, absl::Seconds(10),
          "on SIGTERM, how long to wait for Kafka to acknowledge events in flight");
ABSL_FLAG(absl::Duration, stall_timeout, absl::Minutes(5),
          "run: /healthz answers 503 (and outboxd_stalled is 1) once events are in flight, or WAL "
          "was received, and nothing has been acknowledged or confirmed for this long while not "
          "paused; 0 disables it");
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

namespace outboxd::cmd {
namespace {

void PrintFlag(const absl::CommandLineFlag& flag) {
  const std::string def = flag.DefaultValue();
  std::cout << "  --" << flag.Name() << (def.empty() ? "" : "  (default: " + def + ")") << "\n      "
            << flag.Help() << "\n";
}

}  // namespace

const char kUsage[] = R"(outboxd relays transactional outbox rows from PostgreSQL to Kafka.

usage: outboxd <command> [flags]

commands:
  init    create the outbox table, publication and slot (idempotent); with --brokers
          also the compacted checkpoint topic of --delivery=exactly-once
          --postgres [--table --publication --slot --brokers --checkpoint_topic]
  run     stream outbox inserts to Kafka; confirms WAL only after Kafka acknowledges
          --postgres --brokers [--table --publication --slot --format --kafka_property=k=v ...]
  tail    print events from Kafka as JSON lines
          --brokers --topic [--from=beginning|end --limit=N --format=F]
  peek    print the decoded replication stream as JSON lines; confirms nothing
          --postgres [--slot (default: a temporary slot from now) --publication
          --end_lsn=X/Y --limit=N]
  status  print a running relay's status from its admin API
          --admin=HOST:PORT [--admin_token_file --admin_tls_ca --json]

Every flag also reads an environment variable: --postgres from OUTBOXD_POSTGRES,
--brokers from OUTBOXD_BROKERS, and so on; a flag on the command line wins.
--flagfile=FILE reads flags from a file. `outboxd <command> --help` lists all flags.
)";

std::vector<std::string> OutboxdFlags() {
  std::vector<std::string> names;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    // This file's own flags; libraries linked in (absl, gRPC) define others.
    if (absl::EndsWith(flag->Filename(), "cmd/outboxd/flags.cc")) names.emplace_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string EnvironmentVariable(absl::string_view flag) {
  return absl::StrCat("OUTBOXD_", absl::AsciiStrToUpper(flag));
}

const std::vector<FlagGroup>& FlagGroups() {
  static const std::vector<FlagGroup> groups = {
      {"PostgreSQL", {"init", "run", "peek"}, {"postgres"}},
      {"Outbox", {"init", "run"},
       {"table", "publication", "slot", "slot_failover", "source", "message_prefix", "table_layout", "id_column",
        "aggregate_type_column", "aggregate_id_column", "event_type_column", "payload_column",
        "headers_column", "topic_column"}},
      {"Kafka", {"run", "tail"}, {"brokers"}},
      {"Exactly-once checkpoint topic (created when --brokers is given)", {"init"},
       {"brokers", "checkpoint_topic", "kafka_property"}},
      {"Routing and producer", {"run"},
       {"format", "cloudevents_source", "topic_prefix", "dead_letter_topic", "on_poison", "linger_ms",
        "kafka_property"}},
      {"Delivery", {"run"}, {"delivery", "checkpoint_topic", "accept_checkpoint_system_id_change",
                                   "transaction_max_events", "transaction_max_age"}},
      {"Behaviour", {"run"}, {"status_interval", "confirm_interval", "max_backoff", "replication_timeout", "shutdown_timeout", "stall_timeout"}},
      {"Admin API and metrics", {"run"},
       {"admin_listen", "admin_token_file", "admin_tls_cert", "admin_tls_key", "metrics_listen"}},
      {"tail", {"tail"}, {"topic", "from", "limit", "timeout", "format"}},
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
      PrintFlag(*flag);
    }
  }
  // A flag nobody put in a group still shows (FlagsTest fails on it, so it is fixed before
  // a release): every command lists it.
  if (const std::vector<std::string> other = UngroupedFlags(); !other.empty()) {
    std::cout << "\nOther:\n";
    for (const std::string& name : other) PrintFlag(*absl::FindCommandLineFlag(name));
  }
  std::cout << "\nEvery flag also reads OUTBOXD_<FLAG> (e.g. OUTBOXD_POSTGRES); the command line wins.\n"
               "--flagfile=FILE reads flags from a file.\n";
}

std::vector<std::string> UngroupedFlags() {
  std::set<absl::string_view> grouped;
  for (const FlagGroup& group : FlagGroups()) grouped.insert(group.flags.begin(), group.flags.end());
  std::vector<std::string> ungrouped;
  for (const std::string& name : OutboxdFlags()) {
    if (!grouped.contains(name)) ungrouped.push_back(name);
  }
  return ungrouped;
}

absl::Status ApplyEnvironment() {
  for (const std::string& name : OutboxdFlags()) {
    if (name == "kafka_property") continue;  // several values: see ExtractKafkaProperties
    const std::string var = EnvironmentVariable(name);
    const char* value = getenv(var.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat(var, "='", value, "' is not valid: ", error));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<char*>> ExtractKafkaProperties(int argc, char** argv,
                                                          KafkaProperties* properties) {
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

bool FlagGiven(absl::string_view name) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  return (flag != nullptr && flag->CurrentValue() != flag->DefaultValue()) ||
         getenv(EnvironmentVariable(name).c_str()) != nullptr;
}

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

}  // namespace outboxd::cmd
