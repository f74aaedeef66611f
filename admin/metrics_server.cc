#include "admin/metrics_server.h"

#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "admin/admin_server.h"
#include "httplib.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace outboxd::admin {
namespace {

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

prometheus::MetricFamily Counter(std::string name, std::string help, double value) {
  auto f = Family(std::move(name), std::move(help), prometheus::MetricType::Counter);
  prometheus::ClientMetric m;
  m.counter.value = value;
  f.metric.push_back(std::move(m));
  return f;
}

prometheus::MetricFamily Gauge(std::string name, std::string help, double value,
                               std::vector<prometheus::ClientMetric::Label> labels = {}) {
  auto f = Family(std::move(name), std::move(help), prometheus::MetricType::Gauge);
  prometheus::ClientMetric m;
  m.gauge.value = value;
  m.label = std::move(labels);
  f.metric.push_back(std::move(m));
  return f;
}

// Reads RelayStats at scrape time.
class StatsCollector : public prometheus::Collectable {
 public:
  StatsCollector(const StatusReporter* reporter, absl::Time now) : reporter_(reporter), now_(now) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const stats::RelayStats& s = reporter_->stats();
    std::vector<prometheus::MetricFamily> out;
    out.push_back(Gauge("outboxd_up", "1 while the relay process runs", 1));
    out.push_back(Gauge("outboxd_build_info", "outboxd's version, as a label", 1, {{"version", Version()}}));
    out.push_back(Gauge("outboxd_start_time_seconds", "when the relay started, Unix seconds",
                        absl::ToUnixMicros(s.started) / 1e6));
    out.push_back(Counter("outboxd_events_delivered_total",
                          "events acknowledged by Kafka (dead letters included)", s.events_delivered.load()));
    out.push_back(Counter("outboxd_dead_letter_total", "events sent to the dead-letter topic",
                          s.events_dead_lettered.load()));
    out.push_back(Counter("outboxd_reconnects_total", "replication connections lost and re-established",
                          s.reconnects.load()));
    out.push_back(Counter("outboxd_rewinds_total",
                          "deliveries that failed for good: fresh producer, replay from the confirmed LSN",
                          s.rewinds.load()));
    out.push_back(Gauge("outboxd_replication_lag_bytes",
                        "server WAL end minus the confirmed LSN: WAL the slot holds back", LagBytes(s)));
    out.push_back(Gauge("outboxd_confirmed_lsn", "last flush position confirmed to PostgreSQL",
                        static_cast<double>(s.confirmed_lsn.load())));
    out.push_back(Gauge("outboxd_received_lsn", "highest WAL position received",
                        static_cast<double>(s.received_lsn.load())));
    out.push_back(Gauge("outboxd_events_in_flight", "events handed to Kafka and not yet acknowledged",
                        s.events_in_flight.load()));
    out.push_back(Gauge("outboxd_oldest_unacked_event_age_seconds",
                        "age since commit of the oldest event Kafka has not acknowledged (0: none)",
                        OldestUnackedAgeSeconds(s, now_)));
    out.push_back(Gauge("outboxd_postgres_connected", "1 while the replication connection is up",
                        s.postgres_connected.load() ? 1 : 0));
    out.push_back(Gauge("outboxd_kafka_reachable", "1 while the Kafka producer reaches a broker",
                        s.kafka_reachable.load() ? 1 : 0));
    out.push_back(Gauge("outboxd_slot_failover", "1 if the slot has failover = true (PostgreSQL 17+)",
                        s.slot_failover.load() ? 1 : 0));
    out.push_back(Gauge("outboxd_standbys", "physical standbys streaming from the PostgreSQL server",
                        s.standbys.load()));
    out.push_back(Gauge("outboxd_standbys_synchronizing_slots",
                        "standbys whose slot-sync worker is connected (sync_replication_slots = on)",
                        s.standbys_synchronizing.load()));
    out.push_back(Gauge("outboxd_failover_ready",
                        "1 if the slot would survive a failover: failover on, a standby synchronising "
                        "it, its physical slot in synchronized_standby_slots",
                        s.failover_ready.load() ? 1 : 0));
    out.push_back(Gauge("outboxd_paused", "1 while paused through the admin API", s.paused.load() ? 1 : 0));
    out.push_back(Gauge("outboxd_stalled",
                        "1 while work is outstanding and nothing was acknowledged or confirmed for "
                        "--stall_timeout (/healthz answers 503)",
                        reporter_->CheckProgress(now_).stalled ? 1 : 0));
    const RelayInfo& info = reporter_->info();
    out.push_back(Gauge("outboxd_relay_info", "the slot, publication and table this relay streams, as labels", 1,
                        {{"slot", info.slot}, {"publication", info.publication}, {"table", info.table}}));

    auto histogram = Family("outboxd_commit_to_ack_seconds",
                            "time from the PostgreSQL commit to Kafka's acknowledgement",
                            prometheus::MetricType::Histogram);
    prometheus::ClientMetric h;
    // Read the total first: a bucket incremented meanwhile then never exceeds +Inf.
    const uint64_t count = s.commit_to_ack_count.load();
    uint64_t cumulative = 0;
    for (size_t i = 0; i < stats::RelayStats::kLatencyBuckets.size(); ++i) {
      cumulative += s.commit_to_ack_buckets[i].load();
      h.histogram.bucket.push_back({std::min(count, cumulative), stats::RelayStats::kLatencyBuckets[i]});
    }
    h.histogram.bucket.push_back({count, std::numeric_limits<double>::infinity()});
    h.histogram.sample_count = count;
    h.histogram.sample_sum = s.commit_to_ack_sum_micros.load() / 1e6;
    histogram.metric.push_back(std::move(h));
    out.push_back(std::move(histogram));
    return out;
  }

 private:
  const StatusReporter* reporter_;
  const absl::Time now_;
};

}  // namespace

std::string RenderMetrics(const StatusReporter& reporter, absl::Time now) {
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, StatsCollector(&reporter, now).Collect());
  return text.str();
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(const std::string& listen,
                                                                     const StatusReporter* reporter) {
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort(listen, &host, &port); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics_listen: ", s.message()));
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->http_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *server->http_;
  http.Get("/metrics", [reporter](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderMetrics(*reporter, absl::Now()), "text/plain; version=0.0.4; charset=utf-8");
  });
  // Liveness means progress: a relay that is up and connected while nothing moves is stuck,
  // and a restart (which replays from the confirmed position) is the cure.
  http.Get("/healthz", [reporter](const httplib::Request&, httplib::Response& res) {
    const Progress progress = reporter->CheckProgress(absl::Now());
    res.status = progress.stalled ? 503 : 200;
    res.set_content(progress.stalled ? absl::StrCat("stalled: ", progress.reason, "\n") : "ok\n", "text/plain");
  });
  http.Get("/readyz", [reporter](const httplib::Request&, httplib::Response& res) {
    const stats::RelayStats& s = reporter->stats();
    const bool pg = s.postgres_connected.load();
    const bool kafka = s.kafka_reachable.load();
    res.status = pg && kafka ? 200 : 503;
    res.set_content(absl::StrCat(pg && kafka ? "ready" : "not ready", ": postgres ",
                                 pg ? "connected" : "disconnected", ", kafka ",
                                 kafka ? "reachable" : "unreachable", "\n"),
                    "text/plain");
  });
  if (port == 0) {
    port = http.bind_to_any_port(host);
    if (port < 0) port = 0;
  } else if (!http.bind_to_port(host, port)) {
    port = 0;
  }
  if (port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on --metrics_listen=", listen, " (address in use or not local?)"));
  }
  server->address_ = absl::StrCat(absl::StrContains(host, ':') ? absl::StrCat("[", host, "]") : host, ":", port);
  server->thread_ = std::thread([s = server.get()] { s->http_->listen_after_bind(); });
  // cpp-httplib's stop() does nothing before the loop runs: wait for it, so
  // that an early Stop() cannot leave the thread listening forever.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!http.is_running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  return server;
}

void MetricsServer::Stop() {
  if (http_ != nullptr) http_->stop();
  if (thread_.joinable()) thread_.join();
}

MetricsServer::~MetricsServer() { Stop(); }

}  // namespace outboxd::admin
