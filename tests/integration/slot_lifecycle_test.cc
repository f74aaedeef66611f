// The slot and the publication belong to `outboxd init`; `outboxd run` never creates them.
//
// A slot that is missing when `run` starts (dropped by a DBA, or absent on the server a failover
// promoted) or that PostgreSQL invalidated (wal_status 'lost') means events committed since its
// position are gone from the WAL: a fresh slot would start at the current position and skip them
// without a word. So `run` exits 1 with a message that names the server and points to the README,
// at start and on every reconnect, and the slot stays missing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kExitFailure = 1;

class SlotLifecycleTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() && relay_) std::cerr << "relay stderr:\n" << relay_->Stderr() << "\n";
  }

  std::string Count(absl::string_view sql) {
    auto v = env_.pg().QueryValue(sql);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : "?";
  }
  std::string SlotCount() {
    return Count("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'outboxd'");
  }

  absl::Status InsertEvents(int from, int to) {
    return env_.Sql(absl::StrCat(
        "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
        "SELECT 'order', 'o-' || i, 'Placed', jsonb_build_object('n', i) "
        "FROM generate_series(", from, ", ", to, ") i"));
  }

  // The walsender holds the slot while the relay streams, so a DBA who wants it gone terminates
  // the walsender and drops the slot before the relay reconnects; retried in one server-side
  // loop so the relay's reconnect cannot win the race.
  absl::Status DropActiveSlot() {
    return env_.Sql(
        "DO $$ BEGIN FOR i IN 1..500 LOOP "
        "  PERFORM pg_terminate_backend(active_pid, 1000) FROM pg_replication_slots "
        "    WHERE slot_name = 'outboxd' AND active_pid IS NOT NULL; "
        "  BEGIN PERFORM pg_drop_replication_slot('outboxd'); RETURN; "
        "  EXCEPTION WHEN object_in_use THEN PERFORM pg_sleep(0.01); END; "
        "END LOOP; RAISE 'slot stayed active'; END $$");
  }

  // `outboxd run` that is expected to give up: its exit code within `deadline` (-1 if it runs
  // on, which the old `run` did after recreating the slot) and its output.
  std::pair<int, std::string> RunExpectingExit(absl::Duration deadline = absl::Seconds(15)) {
    auto relay = env_.StartRelay({"--admin_listen=", "--metrics_listen="});
    EXPECT_TRUE(relay.ok()) << relay.status();
    if (!relay.ok()) return {-1, ""};
    absl::StatusOr<int> code = (*relay)->Wait(deadline);
    const std::string output = (*relay)->Stderr();
    if (!code.ok()) (*relay)->Terminate();
    return {code.ok() ? *code : -1, output};
  }

  std::string Server() { return absl::StrCat("127.0.0.1:", env_.pg().port()); }

  // A loopback port nothing listens on: one the OS just handed out, closed again.
  static int UnusedPort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    int port = -1;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  }

  RelayEnv env_;
  std::unique_ptr<Subprocess> relay_;
};

// init, run, 20 events, stop, 20 more, drop the slot, run again: the old `run` recreated the slot
// at the current WAL position and events 21-40 were never sent, with nothing logged.
TEST_F(SlotLifecycleTest, RunWithDroppedSlotExitsAndDoesNotRecreateIt) {
  ASSERT_OK(env_.Start());
  auto relay = env_.StartRelay({"--admin_listen=", "--metrics_listen="});
  ASSERT_TRUE(relay.ok()) << relay.status();
  relay_ = std::move(*relay);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay_)) << relay_->Stderr();
  ASSERT_OK(InsertEvents(1, 20));
  EXPECT_EQ(env_.ReadAllCommitted("outbox.event.order", 20).size(), 20u);
  ASSERT_EQ(relay_->Terminate(), 0) << relay_->Stderr();

  ASSERT_OK(InsertEvents(21, 40));
  ASSERT_OK(env_.Sql("SELECT pg_drop_replication_slot('outboxd')"));
  auto [code, output] = RunExpectingExit();
  EXPECT_EQ(code, kExitFailure) << output;
  EXPECT_THAT(output, HasSubstr(absl::StrCat(
                          "replication slot \"outboxd\" does not exist on ", Server(),
                          "; events committed since it was lost cannot be recovered by outboxd. "
                          "If this is a new database run 'outboxd init'; after a failover, see "
                          "README \"Failover\"")));
  EXPECT_EQ(SlotCount(), "0") << "run must never create the slot";
}

// The reconnect path: a slot dropped while the relay streams is not recreated either; the relay
// stops with the same message instead of retrying forever.
TEST_F(SlotLifecycleTest, SlotDroppedWhileRunningStopsTheRelay) {
  ASSERT_OK(env_.Start());
  auto relay = env_.StartRelay({"--admin_listen=", "--metrics_listen="});
  ASSERT_TRUE(relay.ok()) << relay.status();
  relay_ = std::move(*relay);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay_)) << relay_->Stderr();
  ASSERT_OK(InsertEvents(1, 5));
  EXPECT_EQ(env_.ReadAllCommitted("outbox.event.order", 5).size(), 5u);

  ASSERT_OK(DropActiveSlot());
  absl::StatusOr<int> code = relay_->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << "the relay went on after its slot was dropped:\n" << relay_->Stderr();
  EXPECT_EQ(*code, kExitFailure) << relay_->Stderr();
  EXPECT_THAT(relay_->Stderr(),
              HasSubstr(absl::StrCat("replication slot \"outboxd\" does not exist on ", Server(),
                                     "; events committed since it was lost")));
  EXPECT_THAT(relay_->Stderr(), HasSubstr("README \"Failover\""));
  EXPECT_EQ(SlotCount(), "0");
}

// A slot PostgreSQL invalidated because it fell further behind than max_slot_wal_keep_size:
// the WAL it needed is gone, so streaming it can only skip; run says so and stops.
TEST_F(SlotLifecycleTest, InvalidatedSlotExitsWithItsOwnMessage) {
  ASSERT_OK(env_.Start(/*init=*/true,
                       PgServerOptions{.extra_config = {"max_slot_wal_keep_size = 1MB",
                                                        "wal_keep_size = 0"}}));
  // Two WAL segments past the slot's and a checkpoint: the slot loses its WAL.
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(InsertEvents(i * 10 + 1, i * 10 + 10));
    ASSERT_OK(env_.Sql("SELECT pg_switch_wal()"));
  }
  ASSERT_OK(env_.Sql("CHECKPOINT"));
  ASSERT_EQ(Count("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'outboxd'"),
            "lost");

  auto [code, output] = RunExpectingExit();
  EXPECT_EQ(code, kExitFailure) << output;
  EXPECT_THAT(output, HasSubstr(absl::StrCat("replication slot \"outboxd\" on ", Server(),
                                             " was invalidated by PostgreSQL")));
  EXPECT_THAT(output, HasSubstr("max_slot_wal_keep_size"));
  EXPECT_THAT(output, HasSubstr("README \"Failover\""));
  // Still the invalidated slot: run neither drops nor recreates it.
  EXPECT_EQ(Count("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'outboxd'"),
            "lost");
}

// The publication too: run names the fix instead of creating it.
TEST_F(SlotLifecycleTest, RunWithoutPublicationExitsAndDoesNotCreateIt) {
  ASSERT_OK(env_.Start());
  ASSERT_OK(env_.Sql("DROP PUBLICATION outboxd"));
  auto [code, output] = RunExpectingExit();
  EXPECT_EQ(code, kExitFailure) << output;
  EXPECT_THAT(output, HasSubstr(absl::StrCat("publication \"outboxd\" does not exist on ",
                                             Server())));
  EXPECT_THAT(output, HasSubstr("outboxd init"));
  EXPECT_EQ(Count("SELECT count(*) FROM pg_publication"), "0") << "run must not create it";
}

// init still creates both, and a second init keeps the existing slot (and its position).
TEST_F(SlotLifecycleTest, InitCreatesSlotAndKeepsAnExistingOne) {
  ASSERT_OK(env_.Start());
  EXPECT_EQ(SlotCount(), "1");
  const Lsn before = env_.ConfirmedLsn();
  ASSERT_OK(InsertEvents(1, 3));
  auto again = env_.RunOutboxd({"init", "--postgres=" + env_.pg().ConnInfo()});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->first, 0) << again->second;
  EXPECT_EQ(env_.ConfirmedLsn(), before) << "a second init must not move or recreate the slot";
}

// PostgreSQL 15 has no failover slots: init and run say so in their start-up lines.
TEST_F(SlotLifecycleTest, FailoverIsOffBeforeSeventeenAndSaidSo) {
  ASSERT_OK(env_.Start());
  auto again = env_.RunOutboxd({"init", "--postgres=" + env_.pg().ConnInfo()});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->first, 0) << again->second;
  EXPECT_THAT(again->second,
              HasSubstr("; failover off (PostgreSQL 15 has no failover slots; 17+ has), 0 standby(s))"));
  auto relay = env_.StartRelay({"--admin_listen=", "--metrics_listen="});
  ASSERT_TRUE(relay.ok()) << relay.status();
  relay_ = std::move(*relay);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay_)) << relay_->Stderr();
  EXPECT_THAT(relay_->Stderr(), HasSubstr(absl::StrCat("from PostgreSQL 15.")));
  EXPECT_THAT(relay_->Stderr(), HasSubstr(absl::StrCat(" at ", Server(), " of user=postgres")));
  EXPECT_THAT(relay_->Stderr(), HasSubstr(", slot failover off (PostgreSQL 15 has no failover slots"));
  EXPECT_THAT(relay_->Stderr(), Not(HasSubstr("would not survive a failover"))) << "no standby, no warning";
}

// libpq's multi-host form, for the SQL and the replication connection alike: the first host is
// down (a port nobody listens on), the relay connects to the second, and streams.
TEST_F(SlotLifecycleTest, MultiHostConnInfoStreamsFromTheHostThatAnswers) {
  ASSERT_OK(env_.Start());
  const int dead_port = UnusedPort();
  ASSERT_GT(dead_port, 0);
  const std::string conninfo =
      absl::StrCat("host=127.0.0.1,127.0.0.1 port=", dead_port, ",", env_.pg().port(),
                   " user=postgres dbname=postgres target_session_attrs=read-write");
  auto relay = env_.StartRelay({"--postgres=" + conninfo, "--admin_listen=", "--metrics_listen="});
  ASSERT_TRUE(relay.ok()) << relay.status();
  relay_ = std::move(*relay);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay_)) << relay_->Stderr();
  EXPECT_THAT(relay_->Stderr(), HasSubstr(absl::StrCat(" at ", Server(), " of ")));
  EXPECT_THAT(relay_->Stderr(), HasSubstr(absl::StrCat("host=127.0.0.1,127.0.0.1 port=", dead_port, ",",
                                                       env_.pg().port())));
  EXPECT_THAT(relay_->Stderr(), Not(HasSubstr("several hosts")));
  ASSERT_OK(InsertEvents(1, 10));
  EXPECT_EQ(env_.ReadAllCommitted("outbox.event.order", 10).size(), 10u);
  ASSERT_EQ(relay_->Terminate(), 0) << relay_->Stderr();

  // Without target_session_attrs libpq could pick a standby: run warns, and still runs.
  const std::string any = absl::StrCat("host=127.0.0.1,127.0.0.1 port=", dead_port, ",", env_.pg().port(),
                                       " user=postgres dbname=postgres");
  relay = env_.StartRelay({"--postgres=" + any, "--admin_listen=", "--metrics_listen="});
  ASSERT_TRUE(relay.ok()) << relay.status();
  relay_ = std::move(*relay);
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay_)) << relay_->Stderr();
  EXPECT_THAT(relay_->Stderr(), HasSubstr("several hosts"));
  EXPECT_THAT(relay_->Stderr(), HasSubstr("Fix: add target_session_attrs=primary"));
}

}  // namespace
}  // namespace outboxd::test
