// A primary failover on PostgreSQL 17 with failover slots (README "Failover").
//
// A PG17 primary and a streaming standby on a physical slot; outboxd runs with libpq's
// multi-host --postgres (target_session_attrs=read-write) while a writer commits one event per
// transaction over 8 aggregates. The primary is killed with kill -9 under that load and the
// standby promoted.
//
// Synchronising: the standby has sync_replication_slots, hot_standby_feedback and a dbname in
// primary_conninfo, the primary synchronized_standby_slots. outboxd must reconnect to the new
// primary, continue on the synchronised slot, and lose nothing that survived the failover (every
// row in the new primary's table is in Kafka; repeats counted and printed), keep per-aggregate
// order of first deliveries, and the synchronised slot's position must never have been past what
// Kafka had acknowledged: every event whose commit LSN lies below the slot's confirmed position
// on the standby, sampled after the kill, was in Kafka at that moment.
//
// Not synchronising: the same without slot synchronisation. outboxd warns at start naming the
// settings, and after the promotion exits 1 with the slot-missing error; the slot is not created.
//
// Label pg17 (needs the PostgreSQL 17 root) and failover.
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kAggregates = 8;

class FailoverTest : public ::testing::Test {
 protected:
  void TearDown() override {
    StopWriter();
    if (HasFailure() && relay_) std::cerr << "relay stderr:\n" << relay_->Stderr() << "\n";
    if (HasFailure() && standby_) std::cerr << "standby log:\n" << standby_->LogTail(30) << "\n";
  }

  // Primary (with init: the slot is created with failover = true) and its standby on physical
  // slot standby1.
  void StartServers(bool synchronise) {
    ASSERT_OK(env_.Start(/*init=*/true, PgServerOptions{.version = 17}, /*brokers=*/1));
    std::vector<std::string> standby_config = {"hot_standby_feedback = on"};
    if (synchronise) standby_config.push_back("sync_replication_slots = on");
    auto standby = PgServer::StartStandby(env_.pg(), PgServerOptions{.extra_config = standby_config}, "standby1");
    ASSERT_TRUE(standby.ok()) << standby.status();
    standby_ = std::move(*standby);
    if (synchronise) {
      ASSERT_OK(env_.Sql("ALTER SYSTEM SET synchronized_standby_slots = 'standby1'"));
      ASSERT_OK(env_.Sql("SELECT pg_reload_conf()"));
    }
    ASSERT_EQ(env_.pg().QueryValue("SELECT failover FROM pg_replication_slots WHERE slot_name = 'outboxd'")
                  .value_or("?"), "t");
  }

  std::string MultiHost() {
    return absl::StrCat("host=127.0.0.1,127.0.0.1 port=", env_.pg().port(), ",", standby_->port(),
                        " user=postgres dbname=postgres target_session_attrs=read-write");
  }

  void StartRelay() {
    auto relay = env_.StartRelay({"--postgres=" + MultiHost(), "--max_backoff=500ms", "--admin_listen=",
                                  "--metrics_listen="});
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = std::move(*relay);
    ASSERT_TRUE(RelayEnv::WaitStreaming(*relay_)) << relay_->Stderr();
  }

  static std::string Insert(PgServer& pg, int seq) {
    return absl::StrCat("INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) VALUES ",
                        "('order', 'a-", seq % kAggregates, "', 'Placed', '{\"seq\": ", seq, "}')");
  }

  // One event per transaction on the primary until a write fails (the kill) or stop.
  void StartWriter() {
    writer_ = std::thread([this] {
      for (int seq = 1; !stop_writer_.load(); ++seq) {
        if (!env_.pg().Exec(Insert(env_.pg(), seq)).ok()) break;
        committed_.store(seq);
      }
    });
  }
  void StopWriter() {
    stop_writer_.store(true);
    if (writer_.joinable()) writer_.join();
  }

  RelayEnv env_;
  std::unique_ptr<PgServer> standby_;
  std::unique_ptr<Subprocess> relay_;
  std::thread writer_;
  std::atomic<bool> stop_writer_{false};
  std::atomic<int> committed_{0};
};

TEST_F(FailoverTest, SynchronisedSlotSurvivesKill9OfThePrimary) {
  StartServers(/*synchronise=*/true);
  if (HasFatalFailure()) return;
  // The standby's slot-sync worker is connected to the primary.
  ASSERT_TRUE(WaitFor([&] {
    return env_.pg().QueryValue("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%slotsync worker'")
               .value_or("0") == "1";
  }, absl::Seconds(30))) << standby_->LogTail(20);
  StartRelay();
  if (HasFatalFailure()) return;
  EXPECT_THAT(relay_->Stderr(), HasSubstr("slot failover on, 1 standby(s), 1 synchronising slots;"));
  EXPECT_THAT(relay_->Stderr(), Not(HasSubstr("would not survive a failover")));

  StartWriter();
  // The copy stays temporary until the primary's slot has passed the WAL position the standby
  // started from (the slot is older than the standby): outboxd confirming events moves it there.
  ASSERT_TRUE(WaitFor([&] {
    return committed_.load() >= 300 &&
           standby_->QueryValue("SELECT synced AND NOT temporary FROM pg_replication_slots WHERE slot_name = 'outboxd'")
               .value_or("") == "t";
  }, absl::Seconds(60))) << standby_->LogTail(10);
  ASSERT_OK(env_.pg().Kill9());
  const absl::Time killed = absl::Now();
  StopWriter();
  std::cout << "killed the primary after " << committed_.load() << " acknowledged commits\n";

  // The synchronised slot's position, and what Kafka has now: nothing more can be confirmed
  // until the standby is promoted, and acknowledgements only add to Kafka.
  auto synced = standby_->QueryValue("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'outboxd'");
  ASSERT_TRUE(synced.ok()) << synced.status();
  const Lsn synced_lsn = Lsn::Parse(*synced).value_or(Lsn());
  std::set<std::string> in_kafka_at_kill;
  for (const Event& e : env_.ReadEvents("outbox.event.order", committed_.load() + 1000, absl::Seconds(2))) {
    in_kafka_at_kill.insert(e.event.id());
  }

  ASSERT_OK(standby_->Promote());
  const absl::Time promoted = absl::Now();
  ASSERT_OK(standby_->Exec("INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
                           "VALUES ('marker', 'm', 'Promoted', '{}')"));
  EXPECT_EQ(env_.ReadEvents("outbox.event.marker", 1, absl::Seconds(60)).size(), 1u);
  const absl::Time first = absl::Now();
  for (int seq = 100001; seq <= 100100; ++seq) ASSERT_OK(standby_->Exec(Insert(*standby_, seq)));

  // Everything the new primary holds is confirmed on its slot, hence acknowledged.
  auto wal = standby_->QueryValue("SELECT pg_current_wal_lsn()");
  ASSERT_TRUE(wal.ok());
  const Lsn end = Lsn::Parse(*wal).value_or(Lsn());
  ASSERT_TRUE(WaitFor([&] {
    auto c = standby_->QueryValue("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'outboxd'");
    return c.ok() && Lsn::Parse(*c).value_or(Lsn()) >= end;
  }, absl::Seconds(30))) << relay_->Stderr();
  EXPECT_THAT(relay_->Stderr(), HasSubstr(absl::StrCat("reconnected: streaming slot outboxd")));
  EXPECT_THAT(relay_->Stderr(), HasSubstr(absl::StrCat(" at 127.0.0.1:", standby_->port(), " of ")));

  auto rows = standby_->Query("SELECT id::text, aggregate_id FROM outbox_events WHERE aggregate_type = 'order'");
  ASSERT_TRUE(rows.ok()) << rows.status();
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", rows->size() + 10000, absl::Seconds(3));
  std::map<std::string, int> seen;
  std::map<std::string, std::vector<long long>> first_order;  // aggregate -> ids of first deliveries
  int violations = 0;
  for (const Event& e : events) {
    if (seen[e.event.id()]++ == 0) first_order[e.event.aggregate_id()].push_back(std::stoll(e.event.id()));
    if (Lsn(e.event.source().commit_lsn()) < synced_lsn && !in_kafka_at_kill.contains(e.event.id())) {
      ++violations;  // confirmed on the synchronised slot before Kafka had it
    }
  }
  int missing = 0;
  for (const auto& row : *rows) {
    if (!seen.contains(*row[0])) ++missing;
  }
  int repeats = 0, extra = 0;
  std::set<std::string> surviving;
  for (const auto& row : *rows) surviving.insert(*row[0]);
  for (const auto& [id, n] : seen) {
    repeats += n - 1;
    if (!surviving.contains(id)) ++extra;
  }
  std::cout << "failover: " << rows->size() << " events survived, " << missing << " missing, " << repeats
            << " repeats, " << extra << " in Kafka but lost by the failover; kill -> promoted "
            << absl::FormatDuration(promoted - killed) << ", kill -> first event from the new primary "
            << absl::FormatDuration(first - killed) << " (promoted -> delivered "
            << absl::FormatDuration(first - promoted) << ")\n";
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(violations, 0) << "events below the synchronised slot's position that Kafka did not have";
  EXPECT_EQ(extra, 0) << "with synchronized_standby_slots nothing the standby lacks reaches outboxd";
  for (auto& [aggregate, ids] : first_order) {
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << "order of aggregate " << aggregate;
  }
  EXPECT_EQ(relay_->Terminate(), 0) << relay_->Stderr();
}

TEST_F(FailoverTest, WithoutSlotSynchronisationTheRelayStopsAndCreatesNoSlot) {
  StartServers(/*synchronise=*/false);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(WaitFor([&] {
    return env_.pg().QueryValue("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'standby1' AND active")
               .value_or("0") == "1";
  }, absl::Seconds(30)));
  StartRelay();
  if (HasFatalFailure()) return;
  EXPECT_THAT(relay_->Stderr(), HasSubstr("replication slot \"outboxd\" would not survive a failover to the 1 standby(s)"));
  EXPECT_THAT(relay_->Stderr(), HasSubstr("on the standby set sync_replication_slots = on, hot_standby_feedback = on"));
  EXPECT_THAT(relay_->Stderr(), HasSubstr("on the primary set synchronized_standby_slots = 'standby1'"));

  StartWriter();
  ASSERT_TRUE(WaitFor([&] { return committed_.load() >= 50; }, absl::Seconds(60)));
  ASSERT_OK(env_.pg().Kill9());
  StopWriter();
  ASSERT_OK(standby_->Promote());
  absl::StatusOr<int> code = relay_->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << "the relay went on without its slot:\n" << relay_->Stderr();
  EXPECT_EQ(*code, 1) << relay_->Stderr();
  EXPECT_THAT(relay_->Stderr(), HasSubstr(absl::StrCat("replication slot \"outboxd\" does not exist on 127.0.0.1:",
                                                       standby_->port())));
  EXPECT_THAT(relay_->Stderr(), HasSubstr("README \"Failover\""));
  EXPECT_EQ(standby_->QueryValue("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'outboxd'").value_or("?"),
            "0");
}

// init on 17: --slot_failover=false creates a slot without failover; a later init with the
// default sets failover on the existing slot (ALTER_REPLICATION_SLOT), keeping its position.
TEST_F(FailoverTest, InitSetsFailoverOnAnExistingSlot) {
  ASSERT_OK(env_.Start(/*init=*/false, PgServerOptions{.version = 17}, /*brokers=*/1));
  auto failover = [&] {
    return env_.pg().QueryValue("SELECT failover FROM pg_replication_slots WHERE slot_name = 'outboxd'").value_or("?");
  };
  auto off = env_.RunOutboxd({"init", "--postgres=" + env_.pg().ConnInfo(), "--slot_failover=false"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->first, 0) << off->second;
  EXPECT_THAT(off->second, HasSubstr("; failover off, 0 standby(s), 0 synchronising slots)"));
  EXPECT_EQ(failover(), "f");
  const Lsn before = env_.ConfirmedLsn();
  auto on = env_.RunOutboxd({"init", "--postgres=" + env_.pg().ConnInfo()});
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_EQ(on->first, 0) << on->second;
  EXPECT_THAT(on->second, HasSubstr("; failover on, 0 standby(s), 0 synchronising slots)"));
  EXPECT_EQ(failover(), "t");
  EXPECT_EQ(env_.ConfirmedLsn(), before) << "the slot must be kept, not recreated";
}

}  // namespace
}  // namespace outboxd::test
