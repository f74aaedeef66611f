#include "admin/status_command.h"

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "admin/admin_server.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "outboxd/status_macros.h"
#include "outboxd/v1/admin.grpc.pb.h"

namespace outboxd::admin {
namespace {

std::string YesNo(bool b, absl::string_view yes, absl::string_view no) { return std::string(b ? yes : no); }

std::string Duration(double seconds) {
  return absl::FormatDuration(absl::Trunc(absl::Seconds(seconds), absl::Milliseconds(seconds < 60 ? 1 : 1000)));
}

}  // namespace

std::string FormatStatus(const v1::Status& s) {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"version", s.version()},
      {"uptime", Duration(s.uptime_seconds())},
      {"state", s.paused() ? "paused" : s.stalled() ? absl::StrCat("stalled: ", s.stalled_reason()) : "running"},
      {"postgres", absl::StrCat(YesNo(s.postgres_connected(), "connected", "disconnected"),
                                s.server_version().empty() ? "" : absl::StrCat(" (PostgreSQL ", s.server_version(), ")"))},
      {"kafka", YesNo(s.kafka_reachable(), "reachable", "unreachable")},
      {"slot", s.slot()},
      {"slot failover", absl::StrCat(YesNo(s.slot_failover(), "on", "off"), ", ", s.standbys(), " standby(s), ",
                                     s.standbys_synchronizing(), " synchronising slots",
                                     s.failover_ready()  ? ": survives a failover"
                                     : s.standbys() > 0 ? ": would NOT survive a failover"
                                                        : "")},
      {"publication", s.publication()},
      {"table", s.table().empty() ? "-" : s.table()},
      {"confirmed lsn", s.confirmed_lsn()},
      {"received lsn", s.received_lsn()},
      {"server wal end", s.server_wal_end()},
      {"lag", absl::StrCat(s.lag_bytes(), " bytes")},
      {"events in flight", absl::StrCat(s.events_in_flight())},
      {"oldest unacked age", Duration(s.oldest_unacked_age_seconds())},
      {"events delivered", absl::StrCat(s.events_delivered())},
      {"events per second", absl::StrFormat("%.1f", s.events_per_second())},
      {"dead-lettered", absl::StrCat(s.events_dead_lettered())},
      {"reconnects", absl::StrCat(s.reconnects())},
      {"rewinds", absl::StrCat(s.rewinds())},
  };
  size_t width = 0;
  for (const auto& [key, value] : rows) width = std::max(width, key.size());
  std::string out;
  for (const auto& [key, value] : rows) {
    absl::StrAppend(&out, key, ":", std::string(width - key.size() + 1, ' '), value, "\n");
  }
  return out;
}

absl::Status PrintStatus(const StatusCommandOptions& options, std::ostream& out) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.tls_ca_file.empty()) {
    std::ifstream in(options.tls_ca_file, std::ios::binary);
    if (!in) return absl::InvalidArgumentError(absl::StrCat("--admin_tls_ca='", options.tls_ca_file, "' cannot be read"));
    std::stringstream pem;
    pem << in.rdbuf();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.str();
    credentials = grpc::SslCredentials(ssl);
  }
  auto channel = grpc::CreateChannel(options.admin, credentials);
  auto stub = v1::Admin::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(absl::ToInt64Milliseconds(options.timeout)));
  if (!options.token_file.empty()) {
    ASSIGN_OR_RETURN(auto token, ReadTokenFile(options.token_file, "admin_token_file"));
    context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }
  v1::Status status;
  grpc::Status result = stub->GetStatus(&context, v1::GetStatusRequest(), &status);
  if (result.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    return absl::UnauthenticatedError(absl::StrCat("the admin API at ", options.admin, " refused the request: ",
                                                   result.error_message(), "; pass --admin_token_file=FILE"));
  }
  if (!result.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach the admin API at ", options.admin, ": ", result.error_message(),
        ". Is `outboxd run` running with --admin_listen=", options.admin,
        "? (With TLS on the server, pass --admin_tls_ca=PEM.)"));
  }
  if (options.json) {
    std::string json;
    google::protobuf::util::JsonPrintOptions print;
    print.always_print_primitive_fields = true;
    print.preserve_proto_field_names = true;
    if (auto s = google::protobuf::util::MessageToJsonString(status, &json, print); !s.ok()) {
      return absl::InternalError(absl::StrCat("cannot print the status as JSON: ", s.ToString()));
    }
    out << json << "\n";
  } else {
    out << FormatStatus(status);
  }
  return absl::OkStatus();
}

}  // namespace outboxd::admin
