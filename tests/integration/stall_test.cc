// Health tied to progress, end to end: a broker that keeps its connections but acknowledges
// nothing (the kafka-mock process stopped with SIGSTOP) makes /healthz answer 503 once
// --stall_timeout has passed, never before, while /readyz still says "connected"; when the
// broker answers again /healthz recovers by itself and every event arrives. `outboxd status`
// says so too.
#include <signal.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

using ::testing::HasSubstr;

constexpr char kTopic[] = "outbox.event.order";
constexpr absl::Duration kStallTimeout = absl::Seconds(3);

struct Http {
  int status = -1;
  std::string body;
};

// "... <prefix>HOST:PORT..." in the relay's log; empty until it appears.
std::string AddressAfter(const std::string& log, const std::string& prefix) {
  const size_t at = log.find(prefix);
  if (at == std::string::npos) return "";
  const size_t begin = at + prefix.size();
  const size_t end = log.find_first_of(" /\n", begin);
  return log.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

Http Get(const std::string& address, const std::string& path) {
  std::vector<std::string> parts = absl::StrSplit(address, ':');
  httplib::Client client(parts[0], std::stoi(parts[1]));
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  auto res = client.Get(path.c_str());
  if (!res) return {};
  return {res->status, res->body};
}

// The value of the unlabelled sample `name` in Prometheus text.
std::optional<double> Sample(const std::string& text, absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, " ")) continue;
    double v = 0;
    if (absl::SimpleAtod(line, &v)) return v;
  }
  return std::nullopt;
}

TEST(StallTest, HealthzFailsWhileKafkaAcknowledgesNothingAndRecoversByItself) {
  if (RelayEnv::ExternalKafkaMode()) GTEST_SKIP() << "stops the kafka-mock process";
  RelayEnv env;
  ASSERT_OK(env.Start());
  auto* mock = dynamic_cast<KafkaMockProcess*>(&env.kafka());
  ASSERT_NE(mock, nullptr);
  ASSERT_OK(env.kafka().CreateTopic(kTopic, 1));
  auto relay = env.StartRelay({"--metrics_listen=127.0.0.1:0", "--admin_listen=127.0.0.1:0",
                               absl::StrCat("--stall_timeout=", absl::FormatDuration(kStallTimeout))});
  ASSERT_TRUE(relay.ok()) << relay.status();
  std::string metrics, admin;
  ASSERT_TRUE(WaitFor(
      [&] {
        metrics = AddressAfter((*relay)->Stderr(), "metrics listening on http://");
        admin = AddressAfter((*relay)->Stderr(), "admin API listening on ");
        return !metrics.empty() && !admin.empty();
      },
      absl::Seconds(20)))
      << (*relay)->Stderr();
  auto status = [&] {
    auto out = env.RunOutboxd({"status", "--admin=" + admin});
    return out.ok() ? out->second : out.status().ToString();
  };
  ASSERT_TRUE(RelayEnv::WaitStreaming(**relay)) << (*relay)->Stderr();
  ASSERT_OK(env.InsertEvent("order", "o-1", "OrderPlaced", "{}"));
  ASSERT_EQ(env.ReadEvents(kTopic, 1).size(), 1u);
  ASSERT_TRUE(env.WaitConfirmed(env.CurrentWalLsn()));

  // Idle past the timeout is healthy: nothing is outstanding.
  const absl::Time idle_end = absl::Now() + kStallTimeout + absl::Seconds(1);
  while (absl::Now() < idle_end) {
    ASSERT_EQ(Get(metrics, "/healthz").status, 200) << (*relay)->Stderr();
    absl::SleepFor(absl::Milliseconds(100));  // sampling a condition that must hold throughout
  }

  // The broker stops answering; its sockets stay open, so the producer just waits.
  ASSERT_EQ(kill(mock->pid(), SIGSTOP), 0);
  absl::Cleanup resume_broker = [&] { kill(mock->pid(), SIGCONT); };
  const absl::Time inserted = absl::Now();
  ASSERT_OK(env.InsertEvent("order", "o-2", "OrderPlaced", "{}"));
  Http health;
  ASSERT_TRUE(WaitFor([&] { return (health = Get(metrics, "/healthz")).status == 503; },
                      kStallTimeout + absl::Seconds(15), absl::Milliseconds(50)))
      << health.status << " " << health.body << (*relay)->Stderr();
  const absl::Duration until_stalled = absl::Now() - inserted;
  EXPECT_GE(until_stalled, kStallTimeout) << "stalled before --stall_timeout passed";
  EXPECT_THAT(health.body, HasSubstr("stalled: Kafka has acknowledged none of the 1 events in flight since"));
  EXPECT_THAT(health.body, HasSubstr("to topic outbox.event.order"));
  EXPECT_EQ(Get(metrics, "/readyz").status, 200) << "readiness still means connected";
  EXPECT_EQ(Sample(Get(metrics, "/metrics").body, "outboxd_stalled"), 1);
  EXPECT_THAT((*relay)->Stderr(), HasSubstr("stalled: Kafka has acknowledged none of the 1 events in flight"));
  EXPECT_THAT(status(), HasSubstr("state:              stalled: Kafka has acknowledged none"));

  // Acknowledgements resume: healthy again without anyone's help, and nothing was lost.
  std::move(resume_broker).Invoke();
  ASSERT_TRUE(WaitFor([&] { return (health = Get(metrics, "/healthz")).status == 200; }, absl::Seconds(60),
                      absl::Milliseconds(50)))
      << health.status << " " << health.body << (*relay)->Stderr();
  EXPECT_EQ(Sample(Get(metrics, "/metrics").body, "outboxd_stalled"), 0);
  EXPECT_THAT((*relay)->Stderr(), HasSubstr("no longer stalled"));
  EXPECT_THAT(status(), HasSubstr("state:              running"));
  EXPECT_EQ(env.ReadEvents(kTopic, 2).size(), 2u);
  EXPECT_TRUE(env.WaitConfirmed(env.CurrentWalLsn()));
  EXPECT_EQ((*relay)->Terminate(), 0) << (*relay)->Stderr();
  std::cerr << "stalled after " << absl::FormatDuration(until_stalled) << " (--stall_timeout="
            << absl::FormatDuration(kStallTimeout) << ")\n";
}

}  // namespace
}  // namespace outboxd::test
