#include "admin/admin_server.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/health_check_service_server_builder_option.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "outboxd/status_macros.h"
#include "outboxd/v1/admin.grpc.pb.h"

namespace outboxd::admin {
namespace {

// Equal-time comparison, so response times do not leak how much of a guessed
// token was right.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "='", path, "' cannot be read"));
  }
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

}  // namespace

absl::Status SplitHostPort(absl::string_view address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "' is not HOST:PORT, e.g. 127.0.0.1:7700"));
  }
  absl::string_view h = address.substr(0, colon);
  if (absl::StartsWith(h, "[") && absl::EndsWith(h, "]")) h = h.substr(1, h.size() - 2);
  if (!absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 0 || *port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", address, "' has no valid port (0-65535)"));
  }
  *host = std::string(h);
  return absl::OkStatus();
}

bool IsLoopbackHost(absl::string_view host) {
  return absl::StartsWith(host, "127.") || host == "::1" || absl::AsciiStrToLower(host) == "localhost";
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path, absl::string_view flag) {
  ASSIGN_OR_RETURN(auto content, ReadFile(path, flag));
  std::string token(absl::StripAsciiWhitespace(content));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, "='", path, "' is empty"));
  return token;
}

class AdminServer::Service final : public v1::Admin::Service {
 public:
  Service(StatusReporter* reporter, RelayControl control, std::string token)
      : reporter_(reporter), control_(std::move(control)), token_(std::move(token)) {}

  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest*, v1::Status* out) override {
    if (grpc::Status s = Authorize(context); !s.ok()) return s;
    *out = reporter_->Snapshot(absl::Now());
    return grpc::Status::OK;
  }
  grpc::Status Pause(grpc::ServerContext* context, const v1::PauseRequest*, v1::Status* out) override {
    if (grpc::Status s = Authorize(context); !s.ok()) return s;
    if (control_.pause) control_.pause();
    *out = reporter_->Snapshot(absl::Now());
    return grpc::Status::OK;
  }
  grpc::Status Resume(grpc::ServerContext* context, const v1::ResumeRequest*, v1::Status* out) override {
    if (grpc::Status s = Authorize(context); !s.ok()) return s;
    if (control_.resume) control_.resume();
    *out = reporter_->Snapshot(absl::Now());
    return grpc::Status::OK;
  }

 private:
  grpc::Status Authorize(grpc::ServerContext* context) const {
    if (token_.empty()) return grpc::Status::OK;
    const auto& metadata = context->client_metadata();
    auto it = metadata.find("authorization");
    if (it == metadata.end()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing 'authorization: Bearer <token>' metadata (the token in --admin_token_file)");
    }
    absl::string_view value(it->second.data(), it->second.size());
    if (!absl::ConsumePrefix(&value, "Bearer ") || !ConstantTimeEquals(value, token_)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong bearer token");
    }
    return grpc::Status::OK;
  }

  StatusReporter* reporter_;
  RelayControl control_;
  const std::string token_;
};

absl::Status AdminServer::Validate(const AdminServerOptions& options) {
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort(options.listen, &host, &port); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--admin_listen: ", s.message()));
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--admin_tls_cert and --admin_tls_key go together; give both or neither");
  }
  if (!IsLoopbackHost(host)) {
    if (options.token_file.empty() || options.tls_cert_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--admin_listen=", options.listen,
          " is reachable beyond this machine, so the admin API needs a bearer token and TLS: pass "
          "--admin_token_file=FILE, --admin_tls_cert=PEM and --admin_tls_key=PEM, or listen on "
          "loopback (--admin_listen=127.0.0.1:7700), or disable it with --admin_listen=''"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Create(const AdminServerOptions& options,
                                                                 StatusReporter* reporter,
                                                                 RelayControl control) {
  RETURN_IF_ERROR(Validate(options));
  std::string token;
  if (!options.token_file.empty()) {
    ASSIGN_OR_RETURN(auto t, ReadTokenFile(options.token_file, "admin_token_file"));
    token = std::move(t);
  }
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  const bool tls = !options.tls_cert_file.empty();
  if (tls) {
    ASSIGN_OR_RETURN(auto cert, ReadFile(options.tls_cert_file, "admin_tls_cert"));
    ASSIGN_OR_RETURN(auto key, ReadFile(options.tls_key_file, "admin_tls_key"));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({key, cert});
    credentials = grpc::SslServerCredentials(ssl);
  }

  std::unique_ptr<AdminServer> server(new AdminServer());
  server->reporter_ = reporter;
  server->tick_ = options.tick;
  server->tls_ = tls;
  server->service_ = std::make_unique<Service>(reporter, std::move(control), std::move(token));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(options.listen, credentials, &bound_port);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || bound_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on --admin_listen=", options.listen,
                                               " (address in use or not local?)"));
  }
  std::string host;
  int port = 0;
  (void)SplitHostPort(options.listen, &host, &port);
  server->address_ = absl::StrCat(absl::StrContains(host, ':') ? absl::StrCat("[", host, "]") : host, ":",
                                  bound_port);
  server->Tick();
  server->ticker_ = std::thread([s = server.get()] {
    while (!s->stop_.WaitForNotificationWithTimeout(s->tick_)) s->Tick();
  });
  return server;
}

void AdminServer::Tick() {
  reporter_->Sample(absl::Now());
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    // "" is the server as a whole; the Admin service by name for clients that ask for it.
    const bool ready = reporter_->Ready();
    health->SetServingStatus("", ready);
    health->SetServingStatus(v1::Admin::service_full_name(), ready);
  }
}

void AdminServer::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (ticker_.joinable()) ticker_.join();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
    server_.reset();
  }
}

AdminServer::~AdminServer() { Stop(); }

}  // namespace outboxd::admin
