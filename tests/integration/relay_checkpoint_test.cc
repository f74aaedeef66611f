// The confirmed position: never past an unacknowledged event, never pinned by
// an idle outbox, and what happens to it across stops, restarts and outages.
#include <signal.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(env_.Start()); }

  std::unique_ptr<Subprocess> StartRelay(std::vector<std::string> extra = {}) {
    auto relay = env_.StartRelay(std::move(extra));
    EXPECT_TRUE(relay.ok()) << relay.status();
    return relay.ok() ? std::move(*relay) : nullptr;
  }

  RelayEnv env_;
};

TEST_F(CheckpointTest, BrokerDownConfirmedLsnNeverPassesUnackedEvent) {
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_OK(env_.InsertEvent("order", "o-1", "First", "{}"));
  ASSERT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u);
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn()));

  ASSERT_OK(env_.kafka().AllDown());
  const Lsn before = env_.CurrentWalLsn();
  ASSERT_OK(env_.InsertEvent("order", "o-2", "DuringOutage", "{}"));
  // Busy writes elsewhere: keepalives and other transactions must not move the
  // slot past the unacknowledged event either.
  ASSERT_OK(env_.Sql("CREATE TABLE noise (id serial, v text)"));
  Lsn max_confirmed;
  for (int i = 0; i < 40; ++i) {  // 4 s, sampled every 100 ms
    ASSERT_OK(env_.Sql("INSERT INTO noise (v) SELECT repeat('x', 100) FROM generate_series(1, 50)"));
    max_confirmed = std::max(max_confirmed, env_.ConfirmedLsn());
    absl::SleepFor(absl::Milliseconds(100));  // the sampling period, not synchronisation
  }
  EXPECT_LE(max_confirmed, before) << "confirmed " << max_confirmed.ToString()
                                   << " passed the unacknowledged event after " << before.ToString();
  EXPECT_TRUE(relay->Running());

  ASSERT_OK(env_.kafka().AllUp());
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 2);
  ASSERT_EQ(events.size(), 2u);
  SortById(events);
  EXPECT_EQ(events[1].event.aggregate_id(), "o-2");
  EXPECT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn(), absl::Seconds(30)));
  EXPECT_EQ(relay->Terminate(), 0) << relay->Stderr();
}

// Resident memory of a process in KiB, from /proc.
int64_t RssKib(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST_F(CheckpointTest, FullProducerQueueStopsReadingAndLosesNothing) {
  // A tiny queue so backpressure sets in at once while the brokers are down.
  auto relay = StartRelay({"--kafka_property=queue.buffering.max.messages=20"});
  ASSERT_TRUE(relay);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay));
  ASSERT_OK(env_.kafka().CreateTopic("outbox.event.order", 8));
  ASSERT_OK(env_.kafka().AllDown());
  const Lsn before = env_.CurrentWalLsn();
  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "SELECT 'order', 'o-' || (i % 40), 'Bulk', jsonb_build_object('i', i) FROM generate_series(1, 500) i"));
  for (int i = 0; i < 100; ++i) ASSERT_OK(env_.InsertEvent("order", absl::StrCat("s-", i % 10), "Single", "{}"));
  // Held up, not failed: the relay keeps its connection and confirms nothing past the events.
  EXPECT_FALSE(WaitFor([&] { return !relay->Running(); }, absl::Seconds(3)));
  EXPECT_LE(env_.ConfirmedLsn(), before);
  const int64_t rss = RssKib(relay->pid());
  EXPECT_GT(rss, 0);
  EXPECT_LT(rss, 100 * 1024) << "relay RSS while blocked: " << rss << " KiB";

  ASSERT_OK(env_.kafka().AllUp());
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn(), absl::Seconds(60))) << relay->Stderr();
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", 700);
  std::set<std::string> ids;
  for (const Event& e : events) ids.insert(e.event.id());
  EXPECT_EQ(ids.size(), 600u);
  EXPECT_EQ(relay->Terminate(), 0);
}

TEST_F(CheckpointTest, OutageLongerThanMessageTimeoutRewindsAndDelivers) {
  auto relay = StartRelay({"--kafka_property=message.timeout.ms=1500"});
  ASSERT_TRUE(relay);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay));
  ASSERT_OK(env_.kafka().AllDown());
  const Lsn before = env_.CurrentWalLsn();
  ASSERT_OK(env_.InsertEvent("order", "o-1", "DuringLongOutage", "{}"));
  // The producer gives up on the event; the relay must rewind, not skip it.
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(relay->Stderr(), "rewinding"); }, absl::Seconds(20)))
      << relay->Stderr();
  EXPECT_LE(env_.ConfirmedLsn(), before);
  EXPECT_TRUE(relay->Running());
  ASSERT_OK(env_.kafka().AllUp());
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event.aggregate_id(), "o-1");
  EXPECT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn(), absl::Seconds(30)));
  EXPECT_EQ(relay->Terminate(), 0);
}

TEST_F(CheckpointTest, OnPoisonStopExitsWithoutConfirmingPastTheEvent) {
  auto relay = StartRelay({"--on_poison=stop"});
  ASSERT_TRUE(relay);
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Fine", "{}"));
  ASSERT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u);
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn()));
  const Lsn before = env_.CurrentWalLsn();
  ASSERT_OK(env_.Sql("INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload, topic) "
                     "VALUES ('order', 'o-2', 'Poison', '{}', 'not a valid topic')"));
  auto code = relay->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.ok()) << "relay kept running: " << relay->Stderr();
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(relay->Stderr(), ::testing::HasSubstr("--on_poison=stop"));
  EXPECT_LE(env_.ConfirmedLsn(), before);

  // Restarted with the default policy, the event is parked and the stream goes on.
  relay = StartRelay();
  ASSERT_TRUE(relay);
  std::vector<Event> dead = env_.ReadEvents("outbox.dead-letter", 1);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].event.aggregate_id(), "o-2");
  EXPECT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn()));
  EXPECT_EQ(relay->Terminate(), 0);
}

TEST_F(CheckpointTest, IdleOutboxDoesNotPinWal) {
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay));
  ASSERT_OK(env_.Sql("CREATE TABLE busy (id serial PRIMARY KEY, v text)"));
  const Lsn start = env_.CurrentWalLsn();
  for (int i = 0; i < 100; ++i) {  // 10,000 rows in 100 transactions, about 4 MB of WAL
    ASSERT_OK(env_.Sql("INSERT INTO busy (v) SELECT repeat(md5(g::text), 8) FROM generate_series(1, 100) g"));
  }
  const Lsn end = env_.CurrentWalLsn();
  ASSERT_GT(end.value() - start.value(), 2u << 20) << "the workload should write more than 2 MB of WAL";
  uint64_t lag = 0;
  const bool bounded = WaitFor(
      [&] {
        lag = env_.CurrentWalLsn().value() - env_.ConfirmedLsn().value();
        return lag < (1u << 20);
      },
      absl::Seconds(15), absl::Milliseconds(100));
  EXPECT_TRUE(bounded) << "slot lag stayed at " << lag << " bytes";
  std::cerr << "WAL written: " << (end.value() - start.value()) << " bytes; slot lag after: " << lag
            << " bytes\n";
  EXPECT_EQ(relay->Terminate(), 0);
}

TEST_F(CheckpointTest, FastShutdownOfPostgresIsNotHeldUpAndRelayReconnects) {
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Before", "{}"));
  ASSERT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u);

  const absl::Time t0 = absl::Now();
  ASSERT_OK(env_.pg().Stop("fast"));
  const absl::Duration took = absl::Now() - t0;
  EXPECT_LT(took, absl::Seconds(5)) << "pg_ctl stop -m fast took " << took;
  std::cerr << "pg_ctl stop -m fast took " << took << " with outboxd connected\n";

  ASSERT_OK(env_.pg().StartAgain());
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay, 2)) << relay->Stderr();
  ASSERT_OK(env_.InsertEvent("order", "o-2", "After", "{}"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 2);
  ASSERT_EQ(events.size(), 2u);
  SortById(events);
  EXPECT_EQ(events[1].event.aggregate_id(), "o-2");
  EXPECT_EQ(relay->Terminate(), 0);
}

TEST_F(CheckpointTest, SigtermFlushesConfirmsAndExitsZero) {
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay));
  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "SELECT 'order', 'o-' || i, 'Placed', '{}' FROM generate_series(1, 500) i"));
  const Lsn end = env_.CurrentWalLsn();
  ASSERT_EQ(env_.ReadEvents("outbox.event.order", 500).size(), 500u);
  EXPECT_EQ(relay->Terminate(), 0) << relay->Stderr();
  EXPECT_THAT(relay->Stderr(), ::testing::HasSubstr("stopped; confirmed LSN"));
  // The final status update confirmed everything that was delivered.
  EXPECT_GE(env_.ConfirmedLsn(), end);
}

TEST_F(CheckpointTest, RestartResumesWhereItStoppedWithoutDuplicates) {
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_OK(env_.InsertEvent("order", "o-1", "One", "{}"));
  ASSERT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u);
  ASSERT_EQ(relay->Terminate(), 0);

  for (int i = 2; i <= 5; ++i) ASSERT_OK(env_.InsertEvent("order", absl::StrCat("o-", i), "Later", "{}"));
  relay = StartRelay();
  ASSERT_TRUE(relay);
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", 6);
  ASSERT_EQ(events.size(), 5u) << "expected exactly 5: nothing lost, nothing repeated";
  std::set<std::string> ids;
  for (const Event& e : events) ids.insert(e.event.id());
  EXPECT_EQ(ids.size(), 5u);
  EXPECT_EQ(relay->Terminate(), 0);
}

TEST_F(CheckpointTest, KilledRelayLosesNothingOnRestart) {
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_OK(env_.kafka().CreateTopic("outbox.event.order", 8));
  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "SELECT 'order', 'o-' || (i % 50), 'Placed', '{}' FROM generate_series(1, 2000) i"));
  relay->Signal(SIGKILL);
  ASSERT_TRUE(relay->Wait(absl::Seconds(10)).ok());
  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "SELECT 'order', 'o-' || (i % 50), 'Placed', '{}' FROM generate_series(1, 1000) i"));
  relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn(), absl::Seconds(30))) << relay->Stderr();
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", 6000);
  std::set<std::string> ids;
  for (const Event& e : events) ids.insert(e.event.id());
  EXPECT_EQ(ids.size(), 3000u) << "every committed event at least once";
  std::cerr << "after kill -9: " << events.size() << " records for 3000 events ("
            << events.size() - ids.size() << " duplicates)\n";
  EXPECT_EQ(relay->Terminate(), 0);
}

TEST_F(CheckpointTest, WalsenderTerminatedMidStreamReconnects) {
  auto relay = StartRelay();
  ASSERT_TRUE(relay);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay));
  ASSERT_OK(env_.Sql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'outboxd'"));
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay, 2)) << relay->Stderr();
  ASSERT_OK(env_.InsertEvent("order", "o-1", "AfterTerminate", "{}"));
  EXPECT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u);
  EXPECT_EQ(relay->Terminate(), 0);
}

TEST_F(CheckpointTest, SecondRelayWaitsAsHotStandbyAndTakesOver) {
  auto first = StartRelay();
  ASSERT_TRUE(first);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*first));
  auto second = StartRelay();
  ASSERT_TRUE(second);
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(second->Stderr(), "hot standby"); },
                      absl::Seconds(20)))
      << second->Stderr();
  ASSERT_OK(env_.InsertEvent("order", "o-1", "ViaFirst", "{}"));
  ASSERT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u);
  // Confirmed before the kill, so the standby has nothing to send again (a kill
  // before the next status update would repeat o-1: at-least-once allows it,
  // and other tests count those repeats).
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn(), absl::Seconds(10)));

  first->Signal(SIGKILL);
  ASSERT_TRUE(first->Wait(absl::Seconds(10)).ok());
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(RelayEnv::WaitStreaming(*second)) << second->Stderr();
  std::cerr << "standby took over after " << absl::Now() - killed << "\n";
  ASSERT_OK(env_.InsertEvent("order", "o-2", "ViaSecond", "{}"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 2);
  ASSERT_EQ(events.size(), 2u);
  SortById(events);
  EXPECT_EQ(events[1].event.aggregate_id(), "o-2");
  EXPECT_EQ(second->Terminate(), 0);
}

}  // namespace
}  // namespace outboxd::test
