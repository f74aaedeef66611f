// The admin gRPC API, `outboxd status`, and /metrics, /healthz, /readyz,
// against the real outboxd binary on a real PostgreSQL and kafka-mock. Both
// servers listen on port 0; the test reads the bound addresses from the log.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "httplib.h"
#include "outboxd/v1/admin.grpc.pb.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

using ::testing::HasSubstr;

constexpr char kToken[] = "s3cret-token";
constexpr char kTopic[] = "outbox.event.order";

// "... <prefix>HOST:PORT..." in the relay's log; empty until it appears.
std::string AddressAfter(const std::string& log, const std::string& prefix) {
  const size_t at = log.find(prefix);
  if (at == std::string::npos) return "";
  const size_t begin = at + prefix.size();
  const size_t end = log.find_first_of(" \"\n/", begin);
  return log.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// The value of an unlabelled sample `name` in Prometheus text, if present.
std::optional<double> Sample(const std::string& text, absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, " ")) continue;
    double v = 0;
    if (absl::SimpleAtod(line, &v)) return v;
  }
  return std::nullopt;
}

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(env_.Start());
    token_file_ = absl::StrCat(::testing::TempDir(), "/outboxd-admin-token-", getpid());
    std::ofstream(token_file_) << kToken << "\n";
  }
  void TearDown() override { unlink(token_file_.c_str()); }

  // Starts the relay with both servers on free ports and waits for their addresses.
  void StartRelay(std::vector<std::string> extra = {}) {
    extra.push_back("--admin_listen=127.0.0.1:0");
    extra.push_back("--metrics_listen=127.0.0.1:0");
    extra.push_back("--max_backoff=1s");
    auto relay = env_.StartRelay(extra);
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = std::move(*relay);
    ASSERT_TRUE(WaitFor(
        [&] {
          admin_ = AddressAfter(relay_->Stderr(), "admin API listening on ");
          metrics_ = AddressAfter(relay_->Stderr(), "metrics listening on http://");
          return !admin_.empty() && !metrics_.empty();
        },
        absl::Seconds(20)))
        << relay_->Stderr();
    channel_ = grpc::CreateChannel(admin_, grpc::InsecureChannelCredentials());
    stub_ = v1::Admin::NewStub(channel_);
  }

  grpc::Status GetStatus(v1::Status* out, std::optional<std::string> token = kToken) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (token) context.AddMetadata("authorization", absl::StrCat("Bearer ", *token));
    return stub_->GetStatus(&context, v1::GetStatusRequest(), out);
  }
  v1::Status Status() {
    v1::Status s;
    grpc::Status r = GetStatus(&s);
    EXPECT_TRUE(r.ok()) << r.error_message();
    return s;
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Health() {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status r = health->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
    EXPECT_TRUE(r.ok()) << r.error_message();
    return response.status();
  }

  httplib::Result HttpGet(const std::string& path) {
    std::vector<std::string> parts = absl::StrSplit(metrics_, ':');
    httplib::Client client(parts[0], std::stoi(parts[1]));
    client.set_connection_timeout(5);
    client.set_read_timeout(5);
    return client.Get(path.c_str());
  }
  int HttpStatus(const std::string& path) {
    auto res = HttpGet(path);
    return res ? res->status : -1;
  }

  RelayEnv env_;
  std::string token_file_;
  std::unique_ptr<Subprocess> relay_;
  std::string admin_;
  std::string metrics_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Admin::Stub> stub_;
};

TEST_F(AdminTest, StatusTokenPauseAndResume) {
  StartRelay({"--admin_token_file=" + token_file_});
  for (int i = 0; i < 3; ++i) ASSERT_OK(env_.InsertEvent("order", absl::StrCat("o-", i), "OrderPlaced", "{}"));
  ASSERT_EQ(env_.ReadEvents(kTopic, 3).size(), 3u);
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn()));

  // The relay publishes positions once per status interval (1 s).
  v1::Status status;
  ASSERT_TRUE(WaitFor(
      [&] {
        status = Status();
        return status.events_delivered() == 3 && status.confirmed_lsn_value() == env_.ConfirmedLsn().value();
      },
      absl::Seconds(10)))
      << status.DebugString() << " slot confirmed " << env_.ConfirmedLsn().ToString();
  EXPECT_EQ(status.confirmed_lsn(), env_.ConfirmedLsn().ToString());
  EXPECT_LT(status.lag_bytes(), 1u << 20);
  EXPECT_EQ(status.slot(), "outboxd");
  EXPECT_EQ(status.publication(), "outboxd");
  EXPECT_EQ(status.table(), "public.outbox_events");
  EXPECT_THAT(status.server_version(), HasSubstr("15"));
  EXPECT_TRUE(status.postgres_connected());
  EXPECT_TRUE(status.kafka_reachable());
  EXPECT_FALSE(status.paused());
  EXPECT_EQ(status.events_in_flight(), 0u);
  EXPECT_EQ(status.events_dead_lettered(), 0u);
  EXPECT_FALSE(status.version().empty());
  EXPECT_GT(status.uptime_seconds(), 0);

  // The token: missing or wrong is refused.
  v1::Status ignored;
  EXPECT_EQ(GetStatus(&ignored, std::nullopt).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GetStatus(&ignored, "wrong").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Health needs no token; it follows readiness on the admin server's next tick.
  EXPECT_TRUE(WaitFor([&] { return Health() == grpc::health::v1::HealthCheckResponse::SERVING; },
                      absl::Seconds(5)));

  // `outboxd status`, for people and for scripts.
  auto human = env_.RunOutboxd({"status", "--admin=" + admin_, "--admin_token_file=" + token_file_});
  ASSERT_TRUE(human.ok()) << human.status();
  EXPECT_EQ(human->first, 0) << human->second;
  EXPECT_THAT(human->second, HasSubstr("events delivered:   3"));
  EXPECT_THAT(human->second, HasSubstr("slot:               outboxd"));
  EXPECT_THAT(human->second, HasSubstr("postgres:           connected"));
  // PostgreSQL 15 and no standby: no failover slot, nothing to survive a failover with.
  EXPECT_THAT(human->second, HasSubstr("slot failover:      off, 0 standby(s), 0 synchronising slots\n"));
  auto json = env_.RunOutboxd({"status", "--admin=" + admin_, "--admin_token_file=" + token_file_, "--json"});
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->first, 0) << json->second;
  EXPECT_THAT(json->second, HasSubstr("\"events_delivered\":\"3\""));
  EXPECT_THAT(json->second, HasSubstr("\"paused\":false"));
  auto no_token = env_.RunOutboxd({"status", "--admin=" + admin_});
  ASSERT_TRUE(no_token.ok());
  EXPECT_NE(no_token->first, 0);
  EXPECT_THAT(no_token->second, HasSubstr("--admin_token_file"));

  // Pause: the event is not read, the connection stays up and keeps reporting.
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    v1::Status paused;
    ASSERT_TRUE(stub_->Pause(&context, v1::PauseRequest(), &paused).ok());
    EXPECT_TRUE(paused.paused());
  }
  const Lsn confirmed_before = env_.ConfirmedLsn();
  ASSERT_OK(env_.InsertEvent("order", "o-paused", "OrderPlaced", "{}"));
  auto reply_time = [&] {
    return env_.pg().QueryValue("SELECT reply_time FROM pg_stat_replication WHERE application_name <> ''"
                                " ORDER BY reply_time DESC LIMIT 1");
  };
  auto first_reply = reply_time();
  ASSERT_TRUE(first_reply.ok()) << first_reply.status();
  EXPECT_EQ(env_.ReadEvents(kTopic, 4, absl::Seconds(2)).size(), 3u) << "an event arrived while paused";
  EXPECT_EQ(env_.pg().QueryValue("SELECT active FROM pg_replication_slots WHERE slot_name = 'outboxd'").value_or(""), "t");
  EXPECT_TRUE(WaitFor([&] { return reply_time().value_or("") > *first_reply; }, absl::Seconds(5)))
      << "no status update from the walsender's client while paused";
  EXPECT_EQ(env_.ConfirmedLsn(), confirmed_before) << "confirmed past an unread event";
  EXPECT_TRUE(Status().paused());

  // Resume: it arrives.
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    v1::Status resumed;
    ASSERT_TRUE(stub_->Resume(&context, v1::ResumeRequest(), &resumed).ok());
    EXPECT_FALSE(resumed.paused());
  }
  auto events = env_.ReadEvents(kTopic, 4);
  ASSERT_EQ(events.size(), 4u);
  SortById(events);  // keys differ, so partitions interleave
  EXPECT_EQ(events.back().event.aggregate_id(), "o-paused");
  EXPECT_TRUE(WaitFor([&] { return Status().events_delivered() == 4; }, absl::Seconds(5)));
}

TEST_F(AdminTest, MetricsReadinessAndHealthFollowPostgres) {
  StartRelay();
  for (int i = 0; i < 5; ++i) ASSERT_OK(env_.InsertEvent("order", absl::StrCat("o-", i), "OrderPlaced", "{}"));
  ASSERT_EQ(env_.ReadEvents(kTopic, 5).size(), 5u);

  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto res = HttpGet("/metrics");
        if (!res || res->status != 200) return false;
        text = res->body;
        return Sample(text, "outboxd_events_delivered_total") == 5.0;
      },
      absl::Seconds(10)))
      << text;
  EXPECT_THAT(text, HasSubstr("# TYPE outboxd_events_delivered_total counter"));
  EXPECT_THAT(text, HasSubstr("# TYPE outboxd_commit_to_ack_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("outboxd_commit_to_ack_seconds_bucket{le=\"+Inf\"} 5"));
  EXPECT_THAT(text, HasSubstr("outboxd_build_info{version=\""));
  EXPECT_GT(Sample(text, "outboxd_commit_to_ack_seconds_count").value_or(0), 0);
  // Cumulative buckets: none falls below the one before, and on loopback all
  // 5 are acknowledged within the 5 s bucket.
  double previous = 0;
  for (const char* le : {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                         "1", "2.5", "5"}) {
    const std::optional<double> bucket =
        Sample(text, absl::StrCat("outboxd_commit_to_ack_seconds_bucket{le=\"", le, "\"}"));
    ASSERT_TRUE(bucket.has_value()) << "no bucket le=" << le << " in\n" << text;
    EXPECT_GE(*bucket, previous) << "le=" << le;
    previous = *bucket;
  }
  EXPECT_EQ(previous, 5.0);
  EXPECT_EQ(Sample(text, "outboxd_dead_letter_total"), 0.0);
  EXPECT_EQ(Sample(text, "outboxd_reconnects_total"), 0.0);
  EXPECT_EQ(Sample(text, "outboxd_rewinds_total"), 0.0);
  EXPECT_EQ(Sample(text, "outboxd_up"), 1.0);
  EXPECT_EQ(Sample(text, "outboxd_postgres_connected"), 1.0);
  EXPECT_EQ(Sample(text, "outboxd_kafka_reachable"), 1.0);
  EXPECT_EQ(Sample(text, "outboxd_paused"), 0.0);
  EXPECT_EQ(Sample(text, "outboxd_slot_failover"), 0.0);
  EXPECT_EQ(Sample(text, "outboxd_standbys"), 0.0);
  EXPECT_EQ(Sample(text, "outboxd_standbys_synchronizing_slots"), 0.0);
  EXPECT_EQ(Sample(text, "outboxd_failover_ready"), 0.0);
  EXPECT_TRUE(Sample(text, "outboxd_replication_lag_bytes").has_value());
  EXPECT_TRUE(Sample(text, "outboxd_confirmed_lsn").has_value());
  EXPECT_TRUE(Sample(text, "outboxd_events_in_flight").has_value());
  EXPECT_TRUE(Sample(text, "outboxd_oldest_unacked_event_age_seconds").has_value());

  EXPECT_EQ(HttpStatus("/healthz"), 200);
  EXPECT_EQ(HttpStatus("/readyz"), 200);
  // gRPC health follows on the admin server's next tick (every 500 ms).
  EXPECT_TRUE(WaitFor([&] { return Health() == grpc::health::v1::HealthCheckResponse::SERVING; },
                      absl::Seconds(5)));

  // PostgreSQL down: not ready, not serving, but alive.
  ASSERT_OK(env_.pg().Stop("fast"));
  EXPECT_TRUE(WaitFor([&] { return HttpStatus("/readyz") == 503; }, absl::Seconds(10)));
  EXPECT_EQ(HttpStatus("/healthz"), 200);
  EXPECT_TRUE(WaitFor([&] { return Health() == grpc::health::v1::HealthCheckResponse::NOT_SERVING; },
                      absl::Seconds(5)));

  ASSERT_OK(env_.pg().StartAgain());
  EXPECT_TRUE(WaitFor([&] { return HttpStatus("/readyz") == 200; }, absl::Seconds(20))) << relay_->Stderr();
  EXPECT_TRUE(WaitFor([&] { return Health() == grpc::health::v1::HealthCheckResponse::SERVING; },
                      absl::Seconds(5)));
  auto res = HttpGet("/metrics");
  ASSERT_TRUE(res);
  EXPECT_GE(Sample(res->body, "outboxd_reconnects_total").value_or(0), 1.0);

  EXPECT_EQ(relay_->Terminate(), 0) << relay_->Stderr();
}

// No environment needed: configuration errors and an unreachable relay.
TEST(AdminConfigTest, RefusesAdminBeyondLoopbackWithoutTokenAndTls) {
  auto p = Subprocess::Start({BinaryPath("outboxd"), "run", "--postgres=host=127.0.0.1 port=1",
                              "--brokers=127.0.0.1:1", "--admin_listen=0.0.0.0:0",
                              "--metrics_listen="});
  ASSERT_TRUE(p.ok()) << p.status();
  auto code = (*p)->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 2) << (*p)->Stderr();
  EXPECT_THAT((*p)->Stderr(), HasSubstr("needs a bearer token and TLS"));
}

TEST(AdminConfigTest, StatusOfUnreachableRelayFails) {
  // Port 1: nothing listens there (and binding it needs root).
  auto p = Subprocess::Start({BinaryPath("outboxd"), "status", "--admin=127.0.0.1:1"});
  ASSERT_TRUE(p.ok()) << p.status();
  auto code = (*p)->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 1) << (*p)->Stderr();
  EXPECT_THAT((*p)->Stderr(), HasSubstr("cannot reach the admin API at 127.0.0.1:1"));
}

}  // namespace
}  // namespace outboxd::test
