// MetricsServer: Prometheus metrics and health checks over HTTP.
//
//   auto server = MetricsServer::Create("127.0.0.1:9187", &reporter);
//   // GET /metrics  Prometheus text format (RelayStats rendered by prometheus-cpp)
//   // GET /healthz  200 while the process serves and makes progress; 503 once
//   //               stalled (StatusReporter::CheckProgress)
//   // GET /readyz   200 when connected to PostgreSQL and Kafka is reachable, else 503
//   (*server)->Stop();
//
// The HTTP server is cpp-httplib, the text format prometheus-cpp's
// TextSerializer over a Collectable that reads RelayStats at scrape time (no
// second copy of the counters to keep in step).
//
// Threads: cpp-httplib's listener thread and its worker pool; Create/Stop
// from the owner's thread.
#ifndef OUTBOXD_ADMIN_METRICS_SERVER_H_
#define OUTBOXD_ADMIN_METRICS_SERVER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "admin/relay_info.h"

namespace httplib {
class Server;
}

namespace outboxd::admin {

// The /metrics text for these stats, at `now`.
std::string RenderMetrics(const StatusReporter& reporter, absl::Time now);

class MetricsServer {
 public:
  // listen: HOST:PORT; port 0 picks a free port (see address()).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(const std::string& listen,
                                                               const StatusReporter* reporter);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  const std::string& address() const { return address_; }
  // Idempotent.
  void Stop();

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  std::string address_;
};

}  // namespace outboxd::admin

#endif  // OUTBOXD_ADMIN_METRICS_SERVER_H_
