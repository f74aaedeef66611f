// End to end: real PostgreSQL → `outboxd run` → kafka-mock; assertions on what
// a consumer reads back and on the slot's position in pg_replication_slots.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

using ::testing::HasSubstr;

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(env_.Start());
    auto relay = env_.StartRelay();
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = std::move(*relay);
  }
  void TearDown() override {
    if (relay_ && relay_->Running()) {
      EXPECT_EQ(relay_->Terminate(), 0) << "relay did not stop cleanly; stderr:\n" << relay_->Stderr();
    }
    if (HasFailure() && relay_) std::cerr << "relay stderr:\n" << relay_->Stderr() << "\n";
  }

  RelayEnv env_;
  std::unique_ptr<Subprocess> relay_;
};

TEST_F(RelayTest, DeliversEventWithKeyHeadersAndProtobufValue) {
  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload, headers) "
      "VALUES ('order', 'o-1', 'OrderPlaced', '{\"total\": 42.50}', "
      "'{\"trace_id\": \"t-1\", \"tenant\": \"acme\", \"retries\": 3}')"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 1);
  ASSERT_EQ(events.size(), 1u);
  const Event& e = events[0];
  EXPECT_EQ(e.record.key, "o-1");
  EXPECT_EQ(e.Header("id"), "1");
  EXPECT_EQ(e.Header("event_type"), "OrderPlaced");
  EXPECT_EQ(e.Header("trace_id"), "t-1");
  EXPECT_EQ(e.Header("tenant"), "acme");
  EXPECT_EQ(e.Header("retries"), "");  // only string entries become headers
  EXPECT_EQ(e.event.id(), "1");
  EXPECT_EQ(e.event.aggregate_type(), "order");
  EXPECT_EQ(e.event.aggregate_id(), "o-1");
  EXPECT_EQ(e.event.event_type(), "OrderPlaced");
  EXPECT_EQ(e.event.payload(), "{\"total\": 42.50}");  // as PostgreSQL prints jsonb
  EXPECT_EQ(e.event.headers().at("trace_id"), "t-1");
  EXPECT_EQ(e.event.source().table(), "public.outbox_events");
  EXPECT_GT(e.event.source().xid(), 0u);
  EXPECT_GT(e.event.source().commit_lsn(), e.event.source().event_lsn());
  EXPECT_GT(e.event.source().commit_time().seconds(), 1700000000);
  // The newest pgoutput protocol the server speaks (15: 3; 16+, the pg17 label: 4), named in
  // the start-up line.
  const int version = env_.pg().version();
  EXPECT_THAT(relay_->Stderr(), HasSubstr(absl::StrCat("from PostgreSQL ", version, ".")));
  EXPECT_THAT(relay_->Stderr(),
              HasSubstr(absl::StrCat("(pgoutput protocol ", version >= 16 ? 4 : 3, ")")));
}

TEST_F(RelayTest, SlotIsConfirmedOnceKafkaAcknowledgesNotOnlyEveryStatusInterval) {
  ASSERT_TRUE(RelayEnv::WaitStreaming(*relay_)) << relay_->Stderr();
  ASSERT_EQ(relay_->Terminate(), 0) << relay_->Stderr();
  auto relay = env_.StartRelay({"--status_interval=1h"});
  ASSERT_TRUE(relay.ok()) << relay.status();
  relay_ = std::move(*relay);
  const Lsn before = env_.ConfirmedLsn();
  ASSERT_OK(env_.InsertEvent("order", "o-1", "OrderPlaced", "{}"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 1);
  ASSERT_EQ(events.size(), 1u);
  const Lsn commit(events[0].event.source().commit_lsn());
  ASSERT_GT(commit, before);
  // --confirm_interval (10 ms) reports it; --status_interval alone would take an hour.
  EXPECT_TRUE(env_.WaitConfirmed(commit, absl::Seconds(10)))
      << "confirmed " << env_.ConfirmedLsn().ToString() << ", event committed at " << commit.ToString();
}

TEST_F(RelayTest, RolledBackTransactionsAndSavepointsProduceNothing) {
  ASSERT_OK(env_.Sql(
      "BEGIN;"
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "  VALUES ('order', 'gone', 'RolledBack', '{}');"
      "ROLLBACK;"
      "BEGIN;"
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "  VALUES ('order', 'kept-1', 'Kept', '{}');"
      "SAVEPOINT s1;"
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "  VALUES ('order', 'gone', 'InRolledBackSavepoint', '{}');"
      "ROLLBACK TO SAVEPOINT s1;"
      "SAVEPOINT s2;"
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "  VALUES ('order', 'kept-2', 'InReleasedSavepoint', '{}');"
      "RELEASE SAVEPOINT s2;"
      "COMMIT;"));
  ASSERT_OK(env_.InsertEvent("order", "marker", "Marker", "{}"));
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", 4);
  SortById(events);
  std::vector<std::string> ids;
  for (const Event& e : events) ids.push_back(e.event.aggregate_id());
  EXPECT_EQ(ids, (std::vector<std::string>{"kept-1", "kept-2", "marker"}));
}

TEST_F(RelayTest, InsertAndDeleteInOneTransactionStillDelivers) {
  ASSERT_OK(env_.Sql(
      "BEGIN;"
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "  VALUES ('order', 'o-7', 'OrderPlaced', '{\"n\": 1}');"
      "DELETE FROM outbox_events;"
      "COMMIT;"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event.aggregate_id(), "o-7");
  EXPECT_EQ(*env_.pg().QueryValue("SELECT count(*) FROM outbox_events"), "0");
}

TEST_F(RelayTest, UnicodeInIdsAndPayloads) {
  ASSERT_OK(env_.InsertEvent("bestellung", "kunde-äöü-日本-🚀", "BestellungAufgegeben",
                             "{\"name\": \"Zoë 🎉\", \"city\": \"東京\"}"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.bestellung", 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].record.key, "kunde-äöü-日本-🚀");
  EXPECT_EQ(events[0].event.payload(), "{\"city\": \"東京\", \"name\": \"Zoë 🎉\"}");
}

TEST_F(RelayTest, ToastedOneMegabytePayloadArrivesWhole) {
  // ~1 MB of poorly compressible text, so PostgreSQL stores it out of line (TOAST).
  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "SELECT 'blob', 'b-1', 'Big', jsonb_build_object('data', string_agg(md5(i::text), '')) "
      "FROM generate_series(1, 31000) i"));
  auto expected = env_.pg().QueryValue("SELECT payload::text FROM outbox_events WHERE aggregate_id = 'b-1'");
  ASSERT_TRUE(expected.ok());
  ASSERT_GT(expected->size(), 990000u);
  std::vector<Event> events = env_.ReadEvents("outbox.event.blob", 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event.payload(), *expected);
}

TEST_F(RelayTest, OtherTablesNeverBecomeEvents) {
  ASSERT_OK(env_.Sql("CREATE TABLE orders (id int PRIMARY KEY, note text)"));
  ASSERT_OK(env_.Sql("CREATE TABLE shadow_outbox (LIKE outbox_events INCLUDING ALL)"));
  ASSERT_OK(env_.Sql(
      "BEGIN;"
      "INSERT INTO orders SELECT i, 'x' FROM generate_series(1, 100) i;"
      "INSERT INTO shadow_outbox (aggregate_type, aggregate_id, event_type, payload) "
      "  VALUES ('order', 'shadow', 'NotAnEvent', '{}');"
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "  VALUES ('order', 'real', 'RealEvent', '{}');"
      "UPDATE outbox_events SET event_type = 'Updated';"
      "COMMIT;"));
  ASSERT_OK(env_.InsertEvent("order", "marker", "Marker", "{}"));
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", 3);
  SortById(events);
  std::vector<std::string> ids;
  for (const Event& e : events) ids.push_back(e.event.aggregate_id() + "/" + e.event.event_type());
  EXPECT_EQ(ids, (std::vector<std::string>{"real/RealEvent", "marker/Marker"}));
}

TEST_F(RelayTest, TopicColumnOverridesAndInvalidTopicGoesToDeadLetter) {
  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload, topic) VALUES "
      "('order', 'o-1', 'Routed', '{}', 'custom.orders'),"
      "('order', 'o-2', 'BadTopic', '{}', 'no spaces/or slashes allowed'),"
      "('bad type!', 'o-3', 'BadAggregateType', '{}', NULL)"));
  std::vector<Event> routed = env_.ReadEvents("custom.orders", 1);
  ASSERT_EQ(routed.size(), 1u);
  EXPECT_EQ(routed[0].event.aggregate_id(), "o-1");
  std::vector<Event> dead = env_.ReadEvents("outbox.dead-letter", 2);
  ASSERT_EQ(dead.size(), 2u);
  std::set<std::string> ids;
  for (const Event& e : dead) {
    ids.insert(e.event.aggregate_id());
    EXPECT_FALSE(e.Header("outboxd.dead_letter.reason").empty());
    EXPECT_FALSE(e.Header("outboxd.dead_letter.original_topic").empty());
  }
  EXPECT_EQ(ids, (std::set<std::string>{"o-2", "o-3"}));
  // The stream went on: a later event still arrives and the slot moves past all of them.
  ASSERT_OK(env_.InsertEvent("order", "after", "After", "{}"));
  EXPECT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u);
  EXPECT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn()));
}

TEST_F(RelayTest, SchemaChangeIsFollowed) {
  ASSERT_OK(env_.InsertEvent("order", "before", "Before", "{}"));
  ASSERT_OK(env_.Sql("ALTER TABLE outbox_events ADD COLUMN tenant text DEFAULT 'acme'"));
  ASSERT_OK(env_.Sql("ALTER TABLE outbox_events DROP COLUMN created_at"));
  ASSERT_OK(env_.InsertEvent("order", "after", "After", "{\"v\": 2}"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 2);
  ASSERT_EQ(events.size(), 2u);
  SortById(events);
  EXPECT_EQ(events[1].event.aggregate_id(), "after");
  EXPECT_EQ(events[1].event.payload(), "{\"v\": 2}");
}

TEST_F(RelayTest, HundredThousandRowTransaction) {
  constexpr int kRows = 100000;
  // Enough partitions that kafka-mock's per-partition retention (5 MB) keeps everything.
  ASSERT_OK(env_.kafka().CreateTopic("outbox.event.bulk", 32));
  ASSERT_OK(env_.Sql(absl::StrCat(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "SELECT 'bulk', 'agg-' || (i % 500), 'Bulk', jsonb_build_object('seq', i) "
      "FROM generate_series(1, ", kRows, ") i")));
  const Lsn end = env_.CurrentWalLsn();
  std::vector<Event> events = env_.ReadEvents("outbox.event.bulk", kRows, absl::Seconds(120));
  ASSERT_EQ(events.size(), static_cast<size_t>(kRows));
  std::set<std::string> ids;
  // Within one aggregate (one partition), events keep the order they were inserted in.
  std::map<std::string, int64_t> last_seq;
  for (const Event& e : events) {
    ids.insert(e.event.id());
    const int64_t seq = std::stoll(e.event.id());
    auto [it, inserted] = last_seq.emplace(e.record.key, seq);
    if (!inserted) {
      EXPECT_GT(seq, it->second) << "out of order for " << e.record.key;
      it->second = seq;
    }
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kRows)) << "duplicates or missing ids";
  EXPECT_TRUE(env_.WaitConfirmed(end, absl::Seconds(30)));
}

TEST_F(RelayTest, ConcurrentWritersKeepPerAggregateOrder) {
  constexpr int kWriters = 4;
  constexpr int kTransactions = 150;
  ASSERT_OK(env_.kafka().CreateTopic("outbox.event.account", 8));
  ASSERT_OK(env_.Sql("CREATE TABLE counters (id text PRIMARY KEY, n int NOT NULL)"));
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int t = 0; t < kTransactions; ++t) {
        // Each transaction appends the next step for 3 of 20 aggregates; the
        // row lock on the counter makes commit order the order per aggregate.
        const int a = (w * 7 + t) % 20;
        const absl::Status s = env_.Sql(absl::StrCat(
            "BEGIN;"
            "INSERT INTO counters VALUES ('acc-", a, "', 1) ON CONFLICT (id) DO UPDATE SET n = counters.n + 1;"
            "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
            "  SELECT 'account', id, 'Step', jsonb_build_object('n', n) FROM counters WHERE id = 'acc-", a, "';"
            "COMMIT;"));
        EXPECT_TRUE(s.ok()) << s;
      }
    });
  }
  for (auto& t : writers) t.join();
  const size_t total = kWriters * kTransactions;
  std::vector<Event> events = env_.ReadEvents("outbox.event.account", total, absl::Seconds(60));
  ASSERT_EQ(events.size(), total);
  std::map<std::string, int> next;
  for (const Event& e : events) {
    const std::string& payload = e.event.payload();
    const int n = std::stoi(payload.substr(payload.find(':') + 1));
    int& expected = next.try_emplace(e.record.key, 1).first->second;
    EXPECT_EQ(n, expected) << "aggregate " << e.record.key;
    expected = n + 1;
  }
}

}  // namespace
}  // namespace outboxd::test
