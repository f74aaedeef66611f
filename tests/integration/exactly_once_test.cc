// --delivery=exactly-once on real PostgreSQL + kafka-mock. The mock accepts
// transactions but shows aborted and open ones to every reader, so these
// tests avoid crashes (those run against a real Kafka: ctest -L kafka, tests/kafka/);
// they check the wiring: batching, checkpoint records, resume after a crash
// that followed a commit, the standby, and riding out a broker outage without
// loss (repeats there are printed: kafka-mock shows aborted batches).
#include <signal.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "outboxd/v1/checkpoint.pb.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

class ExactlyOnceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(env_.Start());
    ASSERT_OK(env_.kafka().CreateTopic("outbox.event.order", 8));
  }
  std::unique_ptr<Subprocess> StartRelay(std::vector<std::string> extra = {}) {
    extra.push_back("--delivery=exactly-once");
    auto relay = env_.StartRelay(std::move(extra));
    EXPECT_TRUE(relay.ok()) << relay.status();
    return relay.ok() ? std::move(*relay) : nullptr;
  }
  // Last checkpoint in the checkpoint topic for slot "outboxd".
  Lsn LastCheckpoint() {
    auto records = ReadTopic(env_.Brokers(), env_.Topic("outboxd.checkpoints"), 100000, absl::Seconds(3));
    Lsn last;
    if (!records.ok()) return last;
    for (const KafkaRecord& r : *records) {
      v1::Checkpoint c;
      if (r.key == "outboxd" && c.ParseFromString(r.value)) last = std::max(last, Lsn(c.end_lsn()));
    }
    return last;
  }
  static std::map<std::string, int> CountIds(const std::vector<Event>& events) {
    std::map<std::string, int> count;
    for (const Event& e : events) ++count[e.event.id()];
    return count;
  }

  RelayEnv env_;
};

TEST_F(ExactlyOnceTest, DeliversWithCheckpointAndConfirmsAfterCommit) {
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "SELECT 'order', 'o-' || (i % 10), 'Placed', '{}' FROM generate_series(1, 200) i"));
  for (int i = 0; i < 20; ++i) ASSERT_OK(env_.InsertEvent("order", absl::StrCat("s-", i), "Single", "{}"));
  const Lsn end = env_.CurrentWalLsn();
  ASSERT_TRUE(env_.WaitConfirmed(end)) << relay->Stderr();
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", 300);
  std::map<std::string, int> count = CountIds(events);
  EXPECT_EQ(count.size(), 220u);
  EXPECT_EQ(events.size(), 220u) << "duplicates";
  // The last checkpoint covers the last transaction with events.
  EXPECT_GE(LastCheckpoint(), Lsn(events.back().event.source().commit_lsn()));
  EXPECT_THAT(relay->Stderr(), ::testing::HasSubstr("exactly-once"));
  EXPECT_EQ(relay->Terminate(), 0) << relay->Stderr();
}

TEST_F(ExactlyOnceTest, CrashAfterKafkaCommitResumesFromCheckpointNotSlot) {
  // Status updates only at start: the slot stays where it was, so after the
  // crash only the checkpoint in Kafka knows what was delivered.
  auto relay = StartRelay({"--status_interval=1h", "--confirm_interval=0"});
  ASSERT_TRUE(relay);
  const Lsn slot_before = env_.ConfirmedLsn();
  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "SELECT 'order', 'o-' || (i % 10), 'Placed', '{}' FROM generate_series(1, 100) i"));
  const Lsn end = env_.CurrentWalLsn();
  ASSERT_TRUE(WaitFor([&] { return LastCheckpoint() >= Lsn(end.value() - 200); }, absl::Seconds(20)));
  const Lsn checkpoint = LastCheckpoint();
  // Every Kafka transaction is committed (no events left to batch): a kill -9
  // now leaves nothing open, which kafka-mock could not hide from readers.
  relay->Signal(SIGKILL);
  ASSERT_TRUE(relay->Wait(absl::Seconds(10)).ok());
  ASSERT_LT(env_.ConfirmedLsn(), checkpoint) << "the slot should be behind the checkpoint";
  ASSERT_EQ(env_.ConfirmedLsn(), slot_before);

  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "SELECT 'order', 'o-' || (i % 10), 'Later', '{}' FROM generate_series(1, 50) i"));
  relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << relay->Stderr();
  EXPECT_THAT(relay->Stderr(), ::testing::HasSubstr(absl::StrCat(
                                   "checkpoint for slot outboxd in ", env_.Topic("outboxd.checkpoints"), ": ",
                                   checkpoint.ToString())));
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", 300);
  EXPECT_EQ(CountIds(events).size(), 150u);
  EXPECT_EQ(events.size(), 150u) << "events repeated after the crash";
  EXPECT_EQ(relay->Terminate(), 0);
}

TEST_F(ExactlyOnceTest, BrokerOutageLosesNothingAndConfirmsNothingEarly) {
  auto relay = StartRelay({"--kafka_property=message.timeout.ms=3000"});
  ASSERT_TRUE(relay);
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Before", "{}"));
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << relay->Stderr();
  ASSERT_OK(env_.kafka().AllDown());
  const Lsn before = env_.CurrentWalLsn();
  for (int i = 0; i < 20; ++i) ASSERT_OK(env_.InsertEvent("order", absl::StrCat("o-", i), "During", "{}"));
  EXPECT_FALSE(WaitFor([&] { return env_.ConfirmedLsn() > before; }, absl::Seconds(4)))
      << "confirmed past events Kafka never committed";
  ASSERT_OK(env_.kafka().AllUp());
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn(), absl::Seconds(60))) << relay->Stderr();
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", 100);
  std::map<std::string, int> count = CountIds(events);
  EXPECT_EQ(count.size(), 21u);
  // kafka-mock shows the records of aborted transactions too, so repeats of a
  // batch that failed during the outage can appear here; a read_committed
  // consumer on a real Kafka would not see them (ctest -L kafka).
  std::cerr << "exactly-once outage on kafka-mock: " << events.size() << " records for 21 events\n";
  EXPECT_EQ(relay->Terminate(), 0);
}

TEST_F(ExactlyOnceTest, StandbyTouchesKafkaTransactionsOnlyOnceItHoldsTheSlot) {
  auto active = StartRelay();
  ASSERT_TRUE(active);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*active, 1, absl::Seconds(20))) << active->Stderr();
  auto standby = StartRelay();
  ASSERT_TRUE(standby);
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(standby->Stderr(), "hot standby"); }, absl::Seconds(20)));
  // Fencing or reading the checkpoint now would cut the active relay off
  // (on a real Kafka): the standby must not have done either.
  EXPECT_THAT(standby->Stderr(), ::testing::Not(::testing::HasSubstr("last committed checkpoint")));
  ASSERT_OK(env_.InsertEvent("order", "o-1", "ViaActive", "{}"));
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << active->Stderr();
  EXPECT_THAT(active->Stderr(), ::testing::Not(::testing::HasSubstr("rewinding")));

  active->Signal(SIGKILL);
  ASSERT_TRUE(active->Wait(absl::Seconds(10)).ok());
  ASSERT_TRUE(RelayEnv::WaitStreaming(*standby, 1, absl::Seconds(20))) << standby->Stderr();
  EXPECT_THAT(standby->Stderr(), ::testing::HasSubstr("last committed checkpoint"));
  ASSERT_OK(env_.InsertEvent("order", "o-2", "ViaStandby", "{}"));
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << standby->Stderr();
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", 10);
  EXPECT_EQ(CountIds(events).size(), 2u);
  EXPECT_EQ(standby->Terminate(), 0);
}

}  // namespace
}  // namespace outboxd::test
