// OutboxDecoder on hand-made messages: what a row becomes, and that an event
// decoded into a kept DecodedEvent (as the relay does) carries nothing over
// from the event before it.
#include "decoder/outbox_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace outboxd::decoder {
namespace {

using pgoutput::Datum;
using pgoutput::Oid;

constexpr Oid kOutboxOid = 16400;
constexpr Oid kTextOid = 25;
constexpr Oid kJsonbOid = 3802;

pgoutput::Relation OutboxRelation() {
  pgoutput::Relation r;
  r.oid = kOutboxOid;
  r.namespace_name = "public";
  r.relation_name = "outbox_events";
  for (const char* name :
       {"id", "aggregate_type", "aggregate_id", "event_type", "payload", "headers", "topic"}) {
    r.columns.push_back({.name = name, .type_oid = kTextOid});
  }
  r.columns[4].type_oid = kJsonbOid;
  return r;
}

Datum Text(absl::string_view v) { return {.kind = Datum::Kind::kText, .value = v}; }
Datum Null() { return {}; }

pgoutput::Insert Row(std::vector<Datum> columns) {
  pgoutput::Insert insert;
  insert.relation_oid = kOutboxOid;
  insert.new_tuple.columns = std::move(columns);
  return insert;
}

class OutboxDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(decoder_.Decode(OutboxRelation(), Lsn(1), &event_).ok());
    pgoutput::Begin begin;
    begin.final_lsn = Lsn(0x500);
    begin.xid = 42;
    ASSERT_TRUE(decoder_.Decode(begin, Lsn(2), &event_).ok());
  }

  OutboxDecoder decoder_{OutboxTable{}, OutboxColumns{}};
  DecodedEvent event_;
};

TEST_F(OutboxDecoderTest, RowBecomesEvent) {
  absl::StatusOr<bool> got = decoder_.Decode(
      Row({Text("7"), Text("order"), Text("o-1"), Text("OrderPlaced"), Text("{\"a\": 1}"),
           Text("{\"trace\": \"t1\"}"), Text("orders.special")}),
      Lsn(0x400), &event_);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(*got);
  EXPECT_EQ(event_.event.id(), "7");
  EXPECT_EQ(event_.event.aggregate_type(), "order");
  EXPECT_EQ(event_.event.aggregate_id(), "o-1");
  EXPECT_EQ(event_.event.event_type(), "OrderPlaced");
  EXPECT_EQ(event_.event.payload(), "{\"a\": 1}");
  EXPECT_THAT(event_.event.headers(), ::testing::ElementsAre(::testing::Pair("trace", "t1")));
  EXPECT_EQ(event_.topic_override, "orders.special");
  EXPECT_EQ(event_.event.source().commit_lsn(), 0x500u);
  EXPECT_EQ(event_.event.source().event_lsn(), 0x400u);
  EXPECT_EQ(event_.event.source().xid(), 42u);
  EXPECT_EQ(event_.event.source().table(), "public.outbox_events");
  EXPECT_TRUE(event_.dead_letter_reason.empty());
}

TEST_F(OutboxDecoderTest, KeptEventCarriesNothingFromThePreviousOne) {
  ASSERT_TRUE(*decoder_.Decode(
      Row({Text("1"), Text("order"), Text("o-1"), Text("OrderPlaced"), Text("{}"),
           Text("{\"trace\": \"t1\"}"), Text("orders.special")}),
      Lsn(0x400), &event_));
  // No headers, no topic, and a NULL aggregate_id this time.
  ASSERT_TRUE(*decoder_.Decode(
      Row({Text("2"), Text("payment"), Null(), Text("PaymentTaken"), Text("{\"b\": 2}"), Null(),
           Null()}),
      Lsn(0x480), &event_));
  EXPECT_EQ(event_.event.id(), "2");
  EXPECT_EQ(event_.event.aggregate_type(), "payment");
  EXPECT_EQ(event_.event.aggregate_id(), "");
  EXPECT_EQ(event_.event.payload(), "{\"b\": 2}");
  EXPECT_TRUE(event_.event.headers().empty());
  EXPECT_EQ(event_.topic_override, "");
  EXPECT_THAT(event_.dead_letter_reason, ::testing::HasSubstr("'aggregate_id' is NULL"));
  EXPECT_EQ(event_.event.source().event_lsn(), 0x480u);
  EXPECT_EQ(event_.event.source().commit_lsn(), 0x500u);

  // And a good row after the bad one has no reason left over.
  ASSERT_TRUE(*decoder_.Decode(
      Row({Text("3"), Text("order"), Text("o-3"), Text("OrderShipped"), Text("{}"), Null(),
           Null()}),
      Lsn(0x490), &event_));
  EXPECT_EQ(event_.event.aggregate_id(), "o-3");
  EXPECT_TRUE(event_.dead_letter_reason.empty());
}

TEST_F(OutboxDecoderTest, ReturnedCopyMatchesTheFilledOne) {
  const pgoutput::Insert row = Row({Text("9"), Text("order"), Text("o-9"), Text("OrderPlaced"),
                                    Text("{}"), Text("{\"k\": \"v\"}"), Null()});
  absl::StatusOr<std::optional<DecodedEvent>> copy = decoder_.Decode(row, Lsn(0x400));
  ASSERT_TRUE(copy.ok() && copy->has_value());
  ASSERT_TRUE(*decoder_.Decode(row, Lsn(0x400), &event_));
  EXPECT_EQ((*copy)->event.SerializeAsString(), event_.event.SerializeAsString());
}

TEST_F(OutboxDecoderTest, OtherTablesAndNonRowMessagesAreNotEvents) {
  pgoutput::Relation other = OutboxRelation();
  other.oid = kOutboxOid + 1;
  other.relation_name = "orders";
  ASSERT_TRUE(decoder_.Decode(other, Lsn(3), &event_).ok());
  pgoutput::Insert insert = Row({Text("1")});
  insert.relation_oid = kOutboxOid + 1;
  absl::StatusOr<bool> got = decoder_.Decode(insert, Lsn(4), &event_);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
  pgoutput::Commit commit;
  got = decoder_.Decode(commit, Lsn(5), &event_);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
}

}  // namespace
}  // namespace outboxd::decoder
