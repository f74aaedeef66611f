// The command line of `outboxd`: every flag, its OUTBOXD_* environment
// variable, and the help text of each command.
//
//   std::vector<std::pair<std::string, std::string>> kafka;
//   ASSIGN_OR_RETURN(std::vector<char*> rest, ExtractKafkaProperties(argc, argv, &kafka));
//   RETURN_IF_ERROR(ApplyEnvironment());          // OUTBOXD_<FLAG>; the command line wins
//   RETURN_IF_ERROR(CheckFlags(rest, "run"));      // unknown flags are usage errors
//   absl::ParseCommandLine(rest.size(), rest.data());
//   absl::GetFlag(FLAGS_postgres);
//
// A new flag: ABSL_FLAG in flags.cc, ABSL_DECLARE_FLAG below, and its name in
// a group of FlagGroups() (FlagsTest fails otherwise). Its environment
// variable comes from the flag registry by itself.
//
// Thread: main's, before other threads start.
#ifndef OUTBOXD_CMD_OUTBOXD_FLAGS_H_
#define OUTBOXD_CMD_OUTBOXD_FLAGS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

ABSL_DECLARE_FLAG(std::string, postgres);
ABSL_DECLARE_FLAG(std::string, brokers);
ABSL_DECLARE_FLAG(std::string, table);
ABSL_DECLARE_FLAG(std::string, publication);
ABSL_DECLARE_FLAG(std::string, slot);
ABSL_DECLARE_FLAG(bool, slot_failover);
ABSL_DECLARE_FLAG(std::string, source);
ABSL_DECLARE_FLAG(std::string, message_prefix);
ABSL_DECLARE_FLAG(std::string, table_layout);
ABSL_DECLARE_FLAG(std::string, format);
ABSL_DECLARE_FLAG(std::string, cloudevents_source);
ABSL_DECLARE_FLAG(std::string, id_column);
ABSL_DECLARE_FLAG(std::string, aggregate_type_column);
ABSL_DECLARE_FLAG(std::string, aggregate_id_column);
ABSL_DECLARE_FLAG(std::string, event_type_column);
ABSL_DECLARE_FLAG(std::string, payload_column);
ABSL_DECLARE_FLAG(std::string, headers_column);
ABSL_DECLARE_FLAG(std::string, topic_column);
ABSL_DECLARE_FLAG(std::string, topic_prefix);
ABSL_DECLARE_FLAG(std::string, dead_letter_topic);
ABSL_DECLARE_FLAG(std::string, on_poison);
ABSL_DECLARE_FLAG(std::string, delivery);
ABSL_DECLARE_FLAG(std::string, checkpoint_topic);
ABSL_DECLARE_FLAG(bool, accept_checkpoint_system_id_change);
ABSL_DECLARE_FLAG(int64_t, transaction_max_events);
ABSL_DECLARE_FLAG(absl::Duration, transaction_max_age);
ABSL_DECLARE_FLAG(int, linger_ms);
ABSL_DECLARE_FLAG(std::string, kafka_property);
ABSL_DECLARE_FLAG(absl::Duration, status_interval);
ABSL_DECLARE_FLAG(absl::Duration, confirm_interval);
ABSL_DECLARE_FLAG(absl::Duration, max_backoff);
ABSL_DECLARE_FLAG(absl::Duration, replication_timeout);
ABSL_DECLARE_FLAG(absl::Duration, shutdown_timeout);
ABSL_DECLARE_FLAG(absl::Duration, stall_timeout);
ABSL_DECLARE_FLAG(std::string, log_format);
ABSL_DECLARE_FLAG(std::string, log_level);
ABSL_DECLARE_FLAG(std::string, topic);
ABSL_DECLARE_FLAG(std::string, from);
ABSL_DECLARE_FLAG(int64_t, limit);
ABSL_DECLARE_FLAG(absl::Duration, timeout);
ABSL_DECLARE_FLAG(std::string, admin_listen);
ABSL_DECLARE_FLAG(std::string, admin_token_file);
ABSL_DECLARE_FLAG(std::string, admin_tls_cert);
ABSL_DECLARE_FLAG(std::string, admin_tls_key);
ABSL_DECLARE_FLAG(std::string, metrics_listen);
ABSL_DECLARE_FLAG(std::string, admin);
ABSL_DECLARE_FLAG(std::string, admin_tls_ca);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(std::string, end_lsn);
namespace outboxd::cmd {

// `outboxd --help`.
extern const char kUsage[];

// One help group of `outboxd <command> --help`.
struct FlagGroup {
  const char* title;
  std::vector<absl::string_view> commands;  // the commands whose help lists the group
  std::vector<absl::string_view> flags;
};
const std::vector<FlagGroup>& FlagGroups();

// Names of the flags defined in flags.cc, sorted (not absl's or gRPC's own).
std::vector<std::string> OutboxdFlags();
// Those of OutboxdFlags() in no group of FlagGroups(); empty in a good build.
std::vector<std::string> UngroupedFlags();
// "OUTBOXD_" + the name in upper case.
std::string EnvironmentVariable(absl::string_view flag);

// `outboxd <command> --help`: the command's flags by group, each with its default.
void PrintCommandHelp(absl::string_view command);

// Applies OUTBOXD_<FLAG> for every flag; the command line, parsed afterwards, wins.
absl::Status ApplyEnvironment();

// --kafka_property may repeat, which absl flags do not support: takes those
// (and OUTBOXD_KAFKA_PROPERTY, ';'-separated) out of argv before parsing.
// Returns the remaining argv.
using KafkaProperties = std::vector<std::pair<std::string, std::string>>;
absl::StatusOr<std::vector<char*>> ExtractKafkaProperties(int argc, char** argv,
                                                          KafkaProperties* properties);

// absl::ParseCommandLine exits with status 1 on an unknown flag or a bad value;
// this finds both first, as usage errors with a message that says where the
// flags are listed. Reads them the way absl does: --name=value, --name value, --noname.
absl::Status CheckFlags(const std::vector<char*>& args, absl::string_view command);

// Whether the user chose a value other than the default (command line or OUTBOXD_<FLAG>).
bool FlagGiven(absl::string_view name);

// Whether --name was given on the command line (absl 20220623 keeps its own
// record of that private).
bool GivenOnCommandLine(const std::vector<char*>& args, absl::string_view name);

}  // namespace outboxd::cmd

#endif  // OUTBOXD_CMD_OUTBOXD_FLAGS_H_
