// A Kafka outage in both delivery modes, with PostgreSQL's walsender set to
// give up on a silent client after 5 s: the relay must go on answering
// PostgreSQL (no "replication timeout"), honour --shutdown_timeout on SIGTERM
// while Kafka is away, and confirm nothing Kafka has not acknowledged (or, in
// exactly-once mode, committed). Runs on kafka-mock (AllDown/AllUp).
#include <signal.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

class KafkaOutageTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (RelayEnv::ExternalKafkaMode()) GTEST_SKIP() << "needs kafka-mock's broker control";
    PgServerOptions pg;
    pg.extra_config = {"wal_sender_timeout = 5s"};
    ASSERT_OK(env_.Start(/*init=*/true, pg));
    ASSERT_OK(env_.kafka().CreateTopic("outbox.event.order", 4));
  }
  std::unique_ptr<Subprocess> StartRelay() {
    auto relay = env_.StartRelay({"--delivery=" + GetParam(), "--shutdown_timeout=5s",
                                  "--admin_listen=", "--metrics_listen="});
    EXPECT_TRUE(relay.ok()) << relay.status();
    return relay.ok() ? std::move(*relay) : nullptr;
  }
  bool WalsenderTimedOut() {
    const std::string log = env_.pg().LogTail(100000);
    return absl::StrContains(log, "replication timeout") ||
           absl::StrContains(log, "terminating walsender");
  }
  // Until the walsender has sent everything up to `lsn` (the relay has it).
  bool WaitSent(Lsn lsn) {
    return WaitFor([&] {
      auto sent = env_.pg().QueryValue("SELECT sent_lsn FROM pg_stat_replication");
      return sent.ok() && Lsn::Parse(*sent).value_or(Lsn()) >= lsn;
    }, absl::Seconds(20), absl::Milliseconds(50));
  }
  std::set<std::string> Ids(const std::vector<Event>& events) {
    std::set<std::string> ids;
    for (const Event& e : events) ids.insert(e.event.id());
    return ids;
  }

  RelayEnv env_;
};

TEST_P(KafkaOutageTest, RelayKeepsAnsweringPostgresThroughAnOutage) {
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_OK(env_.InsertEvent("order", "o-0", "Before", "{}"));
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << relay->Stderr();
  const Lsn before = env_.ConfirmedLsn();
  ASSERT_OK(env_.kafka().AllDown());
  for (int i = 1; i <= 20; ++i) {
    ASSERT_OK(env_.InsertEvent("order", absl::StrCat("o-", i % 5), "During", "{}"));
  }
  // 15 s of outage, three times the walsender's timeout.
  EXPECT_FALSE(WaitFor([&] { return WalsenderTimedOut(); }, absl::Seconds(15), absl::Milliseconds(200)))
      << env_.pg().LogTail(20) << "\nrelay:\n" << relay->Stderr();
  EXPECT_LE(env_.ConfirmedLsn(), before) << "confirmed events Kafka does not have";
  EXPECT_THAT(relay->Stderr(), ::testing::Not(::testing::HasSubstr("reconnecting")));
  ASSERT_OK(env_.kafka().AllUp());
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn(), absl::Seconds(90))) << relay->Stderr();
  EXPECT_EQ(Ids(env_.ReadAllCommitted("outbox.event.order", 200)).size(), 21u);
  EXPECT_EQ(relay->Terminate(), 0) << relay->Stderr();
}

TEST_P(KafkaOutageTest, SigtermDuringAnOutageExitsWithinShutdownTimeout) {
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_OK(env_.InsertEvent("order", "o-0", "Before", "{}"));
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << relay->Stderr();
  const Lsn before = env_.ConfirmedLsn();
  ASSERT_OK(env_.kafka().AllDown());
  for (int i = 1; i <= 10; ++i) {
    ASSERT_OK(env_.InsertEvent("order", absl::StrCat("o-", i % 5), "During", "{}"));
  }
  ASSERT_TRUE(WaitSent(env_.CurrentWalLsn()));
  EXPECT_FALSE(WaitFor([&] { return env_.ConfirmedLsn() > before; }, absl::Seconds(2)));

  const absl::Time signalled = absl::Now();
  relay->Signal(SIGTERM);
  absl::StatusOr<int> code = relay->Wait(absl::Seconds(30));
  const absl::Duration took = absl::Now() - signalled;
  ASSERT_TRUE(code.ok()) << "still running 30 s after SIGTERM\n" << relay->Stderr();
  std::cerr << GetParam() << ": exit " << *code << " " << absl::FormatDuration(took)
            << " after SIGTERM with --shutdown_timeout=5s, brokers down\n";
  EXPECT_EQ(*code, 0) << relay->Stderr();
  EXPECT_LT(took, absl::Seconds(7)) << relay->Stderr();
  EXPECT_LE(env_.ConfirmedLsn(), before) << "confirmed events Kafka does not have";
  EXPECT_FALSE(WalsenderTimedOut()) << env_.pg().LogTail(20);

  // Nothing was lost: a new relay delivers all of it once Kafka is back.
  ASSERT_OK(env_.kafka().AllUp());
  relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn(), absl::Seconds(60))) << relay->Stderr();
  EXPECT_EQ(Ids(env_.ReadAllCommitted("outbox.event.order", 200)).size(), 11u);
  EXPECT_EQ(relay->Terminate(), 0) << relay->Stderr();
}

// Started while Kafka is away: exactly-once recovery (checkpoint topic,
// fencing, checkpoint read) waits for the brokers, and while it waits, with
// the slot held, PostgreSQL must go on hearing from the relay and a SIGTERM
// must end it within --shutdown_timeout, confirming nothing.
TEST_P(KafkaOutageTest, StartedDuringAnOutageAnswersPostgresAndHonoursSigterm) {
  ASSERT_OK(env_.InsertEvent("order", "o-0", "Before", "{}"));
  const Lsn before = env_.ConfirmedLsn();
  ASSERT_OK(env_.kafka().AllDown());
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_TRUE(WaitFor([&] {
    return env_.pg().QueryValue("SELECT active FROM pg_replication_slots WHERE slot_name = 'outboxd'")
               .value_or("") == "t";
  }, absl::Seconds(30), absl::Milliseconds(50))) << "the relay never took the slot\n" << relay->Stderr();
  // 8 s with the slot held, past the walsender's 5 s timeout.
  EXPECT_FALSE(WaitFor([&] { return WalsenderTimedOut(); }, absl::Seconds(8), absl::Milliseconds(200)))
      << env_.pg().LogTail(20) << "\nrelay:\n" << relay->Stderr();
  const absl::Time signalled = absl::Now();
  relay->Signal(SIGTERM);
  absl::StatusOr<int> code = relay->Wait(absl::Seconds(30));
  const absl::Duration took = absl::Now() - signalled;
  ASSERT_TRUE(code.ok()) << "still running 30 s after SIGTERM\n" << relay->Stderr();
  std::cerr << GetParam() << ": started during an outage, exit " << *code << " "
            << absl::FormatDuration(took) << " after SIGTERM\n";
  EXPECT_EQ(*code, 0) << relay->Stderr();
  EXPECT_LT(took, absl::Seconds(7)) << relay->Stderr();
  EXPECT_LE(env_.ConfirmedLsn(), before) << "confirmed events Kafka does not have";

  ASSERT_OK(env_.kafka().AllUp());
  relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn(), absl::Seconds(60))) << relay->Stderr();
  EXPECT_EQ(Ids(env_.ReadAllCommitted("outbox.event.order", 200)).size(), 1u);
  EXPECT_EQ(relay->Terminate(), 0) << relay->Stderr();
}

INSTANTIATE_TEST_SUITE_P(Modes, KafkaOutageTest,
                         ::testing::Values("at-least-once", "exactly-once"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == "exactly-once" ? std::string("exactly_once")
                                                               : std::string("at_least_once");
                         });

}  // namespace
}  // namespace outboxd::test
