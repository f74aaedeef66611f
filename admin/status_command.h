// `outboxd status`: asks a running relay's admin API for its status and
// prints it, aligned `key: value` lines for people or protobuf's JSON mapping
// for scripts.
//
//   StatusCommandOptions options{.admin = "127.0.0.1:7700", .json = true};
//   absl::Status s = PrintStatus(options, std::cout);   // Unavailable: not reachable
#ifndef OUTBOXD_ADMIN_STATUS_COMMAND_H_
#define OUTBOXD_ADMIN_STATUS_COMMAND_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "outboxd/v1/admin.pb.h"

namespace outboxd::admin {

struct StatusCommandOptions {
  std::string admin = "127.0.0.1:7700";  // HOST:PORT of the admin API
  std::string token_file;                // bearer token, if the server wants one
  std::string tls_ca_file;               // set: connect with TLS, trusting this PEM
  bool json = false;
  absl::Duration timeout = absl::Seconds(5);
};

absl::Status PrintStatus(const StatusCommandOptions& options, std::ostream& out);
// The human-readable form.
std::string FormatStatus(const v1::Status& status);

}  // namespace outboxd::admin

#endif  // OUTBOXD_ADMIN_STATUS_COMMAND_H_
