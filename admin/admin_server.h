// AdminServer: the relay's gRPC admin API (outboxd.v1.Admin: GetStatus, Pause,
// Resume) and the standard grpc.health.v1.Health service.
//
//   AdminServerOptions options{.listen = "127.0.0.1:7700", .token_file = "/etc/outboxd/token"};
//   auto server = AdminServer::Create(options, &reporter,
//                                     {.pause = [&] { relay.Pause(); }, .resume = [&] { relay.Resume(); }});
//   ...                                   // relay.Run()
//   (*server)->Stop();
//
// Security: with --admin_token_file every Admin call must carry
// `authorization: Bearer <token>` (else UNAUTHENTICATED). Bound beyond loopback
// the server insists on both a token and TLS; Validate() says so before
// anything starts. The health service answers without a token: it tells no
// more than a TCP probe would, and load balancers cannot send one.
//
// Health: SERVING while the relay is connected to PostgreSQL and Kafka is
// reachable, NOT_SERVING otherwise; a ticker thread refreshes it (and the
// events/s sample) every `tick`.
//
// Threads: gRPC's own pool serves calls; one ticker thread; Create/Stop from
// the owner's thread.
#ifndef OUTBOXD_ADMIN_ADMIN_SERVER_H_
#define OUTBOXD_ADMIN_ADMIN_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "admin/relay_info.h"

namespace grpc {
class Server;
}

namespace outboxd::admin {

struct AdminServerOptions {
  std::string listen = "127.0.0.1:7700";  // HOST:PORT; port 0: any free port
  std::string token_file;                 // bearer token; empty: none required
  std::string tls_cert_file;              // PEM certificate chain; with tls_key_file enables TLS
  std::string tls_key_file;
  absl::Duration tick = absl::Milliseconds(500);
};

// What Pause/Resume do; called on gRPC threads.
struct RelayControl {
  std::function<void()> pause;
  std::function<void()> resume;
};

// Splits HOST:PORT ([v6]:PORT too). Port 0 is allowed.
absl::Status SplitHostPort(absl::string_view address, std::string* host, int* port);
// 127.0.0.0/8, ::1 and localhost.
bool IsLoopbackHost(absl::string_view host);
// Reads a token file: its content without surrounding whitespace, never empty.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path, absl::string_view flag);

class AdminServer {
 public:
  // The configuration rules, checked without binding anything (usage errors).
  static absl::Status Validate(const AdminServerOptions& options);
  static absl::StatusOr<std::unique_ptr<AdminServer>> Create(const AdminServerOptions& options,
                                                             StatusReporter* reporter, RelayControl control);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // HOST:PORT actually bound (the port the OS chose for port 0).
  const std::string& address() const { return address_; }
  bool tls() const { return tls_; }
  // Idempotent; waits up to a second for calls in progress.
  void Stop();

 private:
  class Service;
  AdminServer() = default;
  void Tick();

  StatusReporter* reporter_ = nullptr;
  absl::Duration tick_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  bool tls_ = false;
  absl::Notification stop_;
  std::thread ticker_;
};

}  // namespace outboxd::admin

#endif  // OUTBOXD_ADMIN_ADMIN_SERVER_H_
