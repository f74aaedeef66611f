// Table-less outbox: transactional pg_logical_emit_message() as events
// (--source=messages|both), with the same guarantees as table rows.
#include <signal.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

std::string Emit(absl::string_view json, bool transactional = true, absl::string_view prefix = "outbox") {
  return absl::StrCat("SELECT pg_logical_emit_message(", transactional ? "true" : "false", ", ",
                      RelayEnv::Literal(prefix), ", ", RelayEnv::Literal(json), ");");
}

std::string Order(absl::string_view id, absl::string_view type) {
  return absl::StrCat(R"({"aggregate_type": "order", "aggregate_id": ")", id, R"(", "event_type": ")",
                      type, R"(", "payload": {"order_id": ")", id, R"(", "total": 42.5}, "headers": {"trace": "t-1"}})");
}

class MessagesSourceTest : public ::testing::Test {
 protected:
  void Start(absl::string_view source) {
    ASSERT_OK(env_.Start(/*init=*/false));
    auto init = env_.RunOutboxd({"init", "--postgres=" + env_.pg().ConnInfo(), absl::StrCat("--source=", source)});
    ASSERT_TRUE(init.ok() && init->first == 0) << (init.ok() ? init->second : init.status().ToString());
    auto relay = env_.StartRelay({absl::StrCat("--source=", source)});
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = std::move(*relay);
  }
  void TearDown() override {
    if (relay_ && relay_->Running()) {
      EXPECT_EQ(relay_->Terminate(), 0) << relay_->Stderr();
    }
  }
  RelayEnv env_;
  std::unique_ptr<Subprocess> relay_;
};

TEST_F(MessagesSourceTest, CommittedMessagesBecomeEventsRollbacksDoNot) {
  Start("messages");
  // No outbox table exists at all.
  EXPECT_EQ(*env_.pg().QueryValue("SELECT count(*) FROM pg_class WHERE relname = 'outbox_events'"), "0");
  ASSERT_OK(env_.Sql(absl::StrCat("BEGIN;", Emit(Order("o-1", "Placed")), "COMMIT;")));
  ASSERT_OK(env_.Sql(absl::StrCat("BEGIN;", Emit(Order("gone", "RolledBack")), "ROLLBACK;")));
  ASSERT_OK(env_.Sql(absl::StrCat("BEGIN;", Emit(Order("o-2", "Kept")), "SAVEPOINT s;",
                                  Emit(Order("gone", "InRolledBackSavepoint")),
                                  "ROLLBACK TO SAVEPOINT s;", Emit(Order("o-2", "AlsoKept")), "COMMIT;")));
  // Not events: non-transactional, or another prefix.
  ASSERT_OK(env_.Sql(Emit(Order("gone", "NonTransactional"), /*transactional=*/false)));
  ASSERT_OK(env_.Sql(absl::StrCat("BEGIN;", Emit(Order("gone", "OtherPrefix"), true, "audit"), "COMMIT;")));
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", 10);
  std::vector<std::string> got;
  for (const Event& e : events) got.push_back(e.event.aggregate_id() + "/" + e.event.event_type());
  std::multiset<std::string> seen(got.begin(), got.end());
  EXPECT_EQ(seen, (std::multiset<std::string>{"o-1/Placed", "o-2/Kept", "o-2/AlsoKept"}));
  for (const Event& e : events) {
    EXPECT_EQ(e.record.key, e.event.aggregate_id());
    EXPECT_EQ(e.Header("trace"), "t-1");
    EXPECT_EQ(e.event.payload().front(), '{');
    EXPECT_EQ(e.event.source().table(), "message:outbox");
    // The id defaults to the message's LSN: stable if the event is sent again.
    EXPECT_EQ(e.event.id(), Lsn(e.event.source().event_lsn()).ToString());
  }
  // Same aggregate, same transaction: commit order kept.
  std::vector<std::string> o2;
  for (const Event& e : events) {
    if (e.event.aggregate_id() == "o-2") o2.push_back(e.event.event_type());
  }
  EXPECT_EQ(o2, (std::vector<std::string>{"Kept", "AlsoKept"}));
}

TEST_F(MessagesSourceTest, MalformedContentGoesToDeadLetterAndStreamGoesOn) {
  Start("messages");
  ASSERT_OK(env_.Sql(absl::StrCat("BEGIN;", Emit("not json at all"), Emit(R"({"aggregate_type": "order"})"), "COMMIT;")));
  ASSERT_OK(env_.Sql(absl::StrCat("BEGIN;", Emit(Order("o-9", "After")), "COMMIT;")));
  std::vector<Event> dead = env_.ReadEvents("outbox.dead-letter", 2);
  ASSERT_EQ(dead.size(), 2u);
  for (const Event& e : dead) EXPECT_FALSE(e.Header("outboxd.dead_letter.reason").empty());
  EXPECT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u);
  EXPECT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn()));
}

// Issue 10: numbers went through a double ("1.23457e+06" for both ids) and the
// payload was re-serialized from doubles (2^53 + 1 lost its last digit).
TEST_F(MessagesSourceTest, NumbersAndPayloadArriveExactly) {
  Start("messages");
  ASSERT_OK(env_.Sql(absl::StrCat(
      "BEGIN;",
      Emit(R"({"id": 1234567, "aggregate_type": "order", "aggregate_id": 1234568, )"
           R"("event_type": "Big", "payload": {"big": 9007199254740993}})"),
      Emit(R"({"id": 1234568, "aggregate_type": "order", "aggregate_id": 1234568, )"
           R"("event_type": "Big", "payload": {"price": 1.10, "list": [1, 2.50]}})"),
      "COMMIT;")));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].Header("id"), "1234567");
  EXPECT_EQ(events[0].event.id(), "1234567");
  EXPECT_EQ(events[0].record.key, "1234568");
  EXPECT_EQ(events[0].event.aggregate_id(), "1234568");
  EXPECT_EQ(events[0].event.payload(), R"({"big": 9007199254740993})");
  EXPECT_EQ(events[1].Header("id"), "1234568");
  EXPECT_EQ(events[1].record.key, "1234568");
  EXPECT_EQ(events[1].event.payload(), R"({"price": 1.10, "list": [1, 2.50]})");
}

TEST_F(MessagesSourceTest, BothSourcesInOneTransaction) {
  Start("both");
  ASSERT_OK(env_.Sql(absl::StrCat(
      "BEGIN;",
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "VALUES ('order', 'o-1', 'FromTable', '{}');",
      Emit(Order("o-1", "FromMessage")), "COMMIT;")));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event.event_type(), "FromTable");  // one key, one partition: WAL order
  EXPECT_EQ(events[1].event.event_type(), "FromMessage");
}

}  // namespace
}  // namespace outboxd::test
