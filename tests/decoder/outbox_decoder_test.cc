// OutboxDecoder on hand-made messages: what a row or a logical decoding
// message becomes, that JSON numbers and payloads keep their exact text, that
// bad JSON becomes a dead letter with its reason, and that an event decoded
// into a kept DecodedEvent (as the relay does) carries nothing over from the
// event before it.
#include "decoder/outbox_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

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

// --- The headers column ---------------------------------------------------

pgoutput::Insert RowWithHeaders(absl::string_view headers) {
  return Row({Text("1"), Text("order"), Text("o-1"), Text("OrderPlaced"), Text("{}"),
              Text(headers), Null()});
}

TEST_F(OutboxDecoderTest, HeadersColumnBecomesHeaders) {
  ASSERT_TRUE(*decoder_.Decode(
      RowWithHeaders(R"({"source": "order-service", "trace": "t1", "tracestate": "rojo=1"})"),
      Lsn(0x400), &event_));
  EXPECT_THAT(event_.event.headers(),
              ::testing::UnorderedElementsAre(::testing::Pair("source", "order-service"),
                                              ::testing::Pair("trace", "t1"),
                                              ::testing::Pair("tracestate", "rojo=1")));
  EXPECT_TRUE(event_.dead_letter_reason.empty());
}

TEST_F(OutboxDecoderTest, HeaderEscapesAreDecoded) {
  ASSERT_TRUE(*decoder_.Decode(
      RowWithHeaders(R"({"a\"b": "line\none", "caf\u00e9": "\ud83d\ude00 \\ \/"})"), Lsn(0x400),
      &event_));
  EXPECT_THAT(event_.event.headers(),
              ::testing::UnorderedElementsAre(::testing::Pair("a\"b", "line\none"),
                                              ::testing::Pair("caf\xc3\xa9", "\xf0\x9f\x98\x80 \\ /")));
  EXPECT_TRUE(event_.dead_letter_reason.empty());
}

TEST_F(OutboxDecoderTest, NonStringHeaderValuesAreLeftOut) {
  // README: "every string entry of the headers column" becomes a header.
  ASSERT_TRUE(*decoder_.Decode(
      RowWithHeaders(
          R"({"n": 1, "b": true, "z": null, "o": {"x": "y"}, "a": ["x"], "kept": "yes"})"),
      Lsn(0x400), &event_));
  EXPECT_THAT(event_.event.headers(), ::testing::ElementsAre(::testing::Pair("kept", "yes")));
  EXPECT_TRUE(event_.dead_letter_reason.empty());
}

TEST_F(OutboxDecoderTest, HeadersThatAreNotAJsonObjectAreADeadLetter) {
  for (const char* headers : {"[\"a\"]", "\"text\"", "42", "null", "not json", "{\"a\": \"b\"",
                              "{\"a\": \"b\"} trailing", "{\"a\": tru}", "{\"a\": \"b\\q\"}",
                              "{\"a\": \"b\", \"n\": 01}", ""}) {
    SCOPED_TRACE(headers);
    ASSERT_TRUE(*decoder_.Decode(RowWithHeaders(headers), Lsn(0x400), &event_));
    EXPECT_THAT(event_.dead_letter_reason,
                ::testing::HasSubstr("column 'headers' is not a JSON object of strings"));
    EXPECT_EQ(event_.event.id(), "1");  // the rest of the event is still there
    EXPECT_EQ(event_.event.aggregate_id(), "o-1");
    // A good row after it has no reason or headers left over.
    ASSERT_TRUE(*decoder_.Decode(RowWithHeaders("{\"k\": \"v\"}"), Lsn(0x410), &event_));
    EXPECT_TRUE(event_.dead_letter_reason.empty());
    EXPECT_THAT(event_.event.headers(), ::testing::ElementsAre(::testing::Pair("k", "v")));
  }
}

// --- Logical decoding messages (--source=messages) ---------------------------

class MessageDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pgoutput::Begin begin;
    begin.final_lsn = Lsn(0x500);
    begin.xid = 43;
    ASSERT_TRUE(decoder_.Decode(begin, Lsn(2), &event_).ok());
  }

  static OutboxSource Messages() {
    OutboxSource source;
    source.table = false;
    source.messages = true;
    return source;
  }

  // Decodes content as a transactional message with prefix "outbox" at lsn.
  void Decode(absl::string_view content, Lsn lsn = Lsn(0x420)) {
    pgoutput::LogicalMessage message;
    message.transactional = true;
    message.lsn = lsn;
    message.prefix = "outbox";
    message.content = content;
    absl::StatusOr<bool> got = decoder_.Decode(message, lsn, &event_);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(*got);
  }

  OutboxDecoder decoder_{OutboxTable{}, OutboxColumns{}, Messages()};
  DecodedEvent event_;
};

TEST_F(MessageDecoderTest, MessageBecomesEvent) {
  Decode(R"({"aggregate_type": "order", "aggregate_id": "o-1", "event_type": "Placed",
             "payload": {"order_id": "o-1", "total": 42.50}, "headers": {"trace": "t-1"},
             "topic": "orders.special"})");
  EXPECT_EQ(event_.event.id(), "0/420");  // default: the message's LSN
  EXPECT_EQ(event_.event.aggregate_type(), "order");
  EXPECT_EQ(event_.event.aggregate_id(), "o-1");
  EXPECT_EQ(event_.event.event_type(), "Placed");
  EXPECT_EQ(event_.event.payload(), R"({"order_id": "o-1", "total": 42.50})");
  EXPECT_THAT(event_.event.headers(), ::testing::ElementsAre(::testing::Pair("trace", "t-1")));
  EXPECT_EQ(event_.topic_override, "orders.special");
  EXPECT_EQ(event_.event.source().table(), "message:outbox");
  EXPECT_EQ(event_.event.source().event_lsn(), 0x420u);
  EXPECT_EQ(event_.event.source().commit_lsn(), 0x500u);
  EXPECT_EQ(event_.event.source().xid(), 43u);
  EXPECT_TRUE(event_.dead_letter_reason.empty());
}

// Issue 10: ids 1234567 and 1234568 both arrived as "1.23457e+06", and
// integers above 2^53 lost digits.
TEST_F(MessageDecoderTest, NumbersKeepTheirExactText) {
  Decode(R"({"id": 1234567, "aggregate_type": "order", "aggregate_id": 1234568,
             "event_type": "Placed", "payload": {"big": 9007199254740993}})");
  EXPECT_EQ(event_.event.id(), "1234567");
  EXPECT_EQ(event_.event.aggregate_id(), "1234568");
  EXPECT_EQ(event_.event.payload(), R"({"big": 9007199254740993})");
  EXPECT_TRUE(event_.dead_letter_reason.empty());

  Decode(R"({"id": 1234568, "aggregate_type": "order", "aggregate_id": 1234568,
             "event_type": "Placed", "payload": {}})");
  EXPECT_EQ(event_.event.id(), "1234568");

  for (const char* number : {"0", "-0", "-17", "9007199254740993", "18446744073709551616",
                             "123456789012345678901234567890", "1.50", "1e3", "-2.5E-7", "1e400"}) {
    SCOPED_TRACE(number);
    Decode(absl::StrCat(R"({"id": )", number, R"(, "aggregate_type": "t", "aggregate_id": )",
                        number, R"(, "event_type": "e", "topic": )", number, "}"));
    EXPECT_EQ(event_.event.id(), number);
    EXPECT_EQ(event_.event.aggregate_id(), number);
    EXPECT_EQ(event_.topic_override, number);
    EXPECT_TRUE(event_.dead_letter_reason.empty());
  }
}

TEST_F(MessageDecoderTest, PayloadIsCarriedExactlyAsWritten) {
  for (const char* payload : {
           R"({"big": 9007199254740993, "price": 1.10, "tiny": 1e-400, "neg": -0})",
           R"({ "nested" : { "a" : [ 1 , 2.50 , { "x" : null } ] , "t" : true } })",
           R"({"z": 1, "a": 2, "m": 3})",  // key order kept
           R"({"s": "caf\u00e9 \"q\" \ud83d\ude00"})",  // escapes as written
           "{\n  \"pretty\": [\n    1\n  ]\n}",
           R"([1, "two", 3.0])", R"("a string payload")", "12345678901234567890123", "true",
           "null", "{}", "[]"}) {
    SCOPED_TRACE(payload);
    Decode(absl::StrCat(R"({"aggregate_type": "t", "aggregate_id": "a", "event_type": "e",)",
                        R"( "payload": )", payload, " \n\t}"));
    EXPECT_EQ(event_.event.payload(), payload);
    EXPECT_TRUE(event_.dead_letter_reason.empty()) << event_.dead_letter_reason;
  }
  // Payload first and last in the object, without spaces.
  Decode(R"({"payload":{"a":1},"aggregate_type":"t","aggregate_id":"a","event_type":"e"})");
  EXPECT_EQ(event_.event.payload(), R"({"a":1})");
  Decode(R"({"aggregate_type":"t","aggregate_id":"a","event_type":"e","payload":[1,2]})");
  EXPECT_EQ(event_.event.payload(), "[1,2]");
}

TEST_F(MessageDecoderTest, StringFieldsAreUnescaped) {
  Decode(R"({"id": "id-\u0031", "aggregate_type": "or\"der", "aggregate_id": "caf\u00e9",
             "event_type": "a\/b", "payload": {}})");
  EXPECT_EQ(event_.event.id(), "id-1");
  EXPECT_EQ(event_.event.aggregate_type(), "or\"der");
  EXPECT_EQ(event_.event.aggregate_id(), "caf\xc3\xa9");
  EXPECT_EQ(event_.event.event_type(), "a/b");
}

TEST_F(MessageDecoderTest, ContentThatIsNotAJsonObjectIsADeadLetter) {
  for (const char* content : {"not json at all", "[1, 2]", "\"text\"", "42", "null", "",
                              R"({"aggregate_type": "t")",
                              R"({"aggregate_type": "t"} {"more": 1})",
                              R"({"aggregate_type": "t", "aggregate_id": "a", "event_type": "e", "payload": {"a": tru}})",
                              R"({"aggregate_type": "t", "aggregate_id": "a", "event_type": "e", "payload": [1, 01]})",
                              R"({"aggregate_type": "t", "aggregate_id": "a", "event_type": "e", "payload": "\x"})",
                              R"({"aggregate_type": "t", "aggregate_id": "a", "event_type": "e", "id": 1.})",
                              R"({"aggregate_type": "t", "aggregate_id": "a", "event_type": "e", "id": -})",
                              "{\"aggregate_type\": \"\xff\"}"}) {
    SCOPED_TRACE(content);
    Decode(content, Lsn(0x430));
    EXPECT_THAT(event_.dead_letter_reason, ::testing::HasSubstr("message content is not a JSON object"));
    // Nothing is lost: the content itself is the payload, the LSN the id.
    EXPECT_EQ(event_.event.payload(), content);
    EXPECT_EQ(event_.event.id(), "0/430");
    EXPECT_EQ(event_.event.source().table(), "message:outbox");
  }
}

TEST_F(MessageDecoderTest, MissingOrNonStringRoutingFieldIsADeadLetter) {
  Decode(R"({"aggregate_type": "order", "event_type": "Placed", "payload": {}})");
  EXPECT_THAT(event_.dead_letter_reason, ::testing::HasSubstr("\"aggregate_id\""));
  Decode(R"({"aggregate_type": "order", "aggregate_id": true, "event_type": "Placed"})");
  EXPECT_THAT(event_.dead_letter_reason, ::testing::HasSubstr("\"aggregate_id\""));
  Decode(R"({"aggregate_type": {"a": 1}, "aggregate_id": "a", "event_type": "Placed"})");
  EXPECT_THAT(event_.dead_letter_reason, ::testing::HasSubstr("\"aggregate_type\""));
  // An id that is neither a string nor a number falls back to the LSN.
  Decode(R"({"id": null, "aggregate_type": "t", "aggregate_id": "a", "event_type": "e"})", Lsn(0x440));
  EXPECT_EQ(event_.event.id(), "0/440");
  EXPECT_TRUE(event_.dead_letter_reason.empty());
}

TEST_F(MessageDecoderTest, HeadersThatAreNotAnObjectAreADeadLetter) {
  Decode(R"({"aggregate_type": "t", "aggregate_id": "a", "event_type": "e", "headers": ["x"]})");
  EXPECT_THAT(event_.dead_letter_reason, ::testing::HasSubstr("\"headers\" is not a JSON object"));
  Decode(R"({"aggregate_type": "t", "aggregate_id": "a", "event_type": "e",
             "headers": {"n": 1, "kept": "yes", "o": {"x": "y"}}})");
  EXPECT_TRUE(event_.dead_letter_reason.empty());
  EXPECT_THAT(event_.event.headers(), ::testing::ElementsAre(::testing::Pair("kept", "yes")));
}

TEST_F(MessageDecoderTest, KeptEventCarriesNothingFromThePreviousOne) {
  Decode(R"({"id": 7, "aggregate_type": "t", "aggregate_id": "a", "event_type": "e",
             "payload": {"x": 1}, "headers": {"h": "v"}, "topic": "special"})");
  Decode(R"({"aggregate_type": "t2", "event_type": "e2"})", Lsn(0x450));
  EXPECT_EQ(event_.event.id(), "0/450");
  EXPECT_EQ(event_.event.aggregate_type(), "t2");
  EXPECT_EQ(event_.event.aggregate_id(), "");
  EXPECT_EQ(event_.event.payload(), "");
  EXPECT_TRUE(event_.event.headers().empty());
  EXPECT_EQ(event_.topic_override, "");
  EXPECT_THAT(event_.dead_letter_reason, ::testing::HasSubstr("\"aggregate_id\""));
  Decode(R"({"aggregate_type": "t", "aggregate_id": "a", "event_type": "e"})", Lsn(0x460));
  EXPECT_TRUE(event_.dead_letter_reason.empty());
  EXPECT_EQ(event_.event.source().event_lsn(), 0x460u);
}

TEST_F(MessageDecoderTest, LargeContentIsDecodedToo) {
  // Past the size the decoder keeps its JSON buffers for.
  std::string big(3 << 20, 'x');
  Decode(absl::StrCat(R"({"aggregate_type": "t", "aggregate_id": 5, "event_type": "e", "payload": {"blob": ")",
                      big, R"("}})"));
  EXPECT_EQ(event_.event.aggregate_id(), "5");
  EXPECT_EQ(event_.event.payload(), absl::StrCat(R"({"blob": ")", big, R"("})"));
  Decode(R"({"aggregate_type": "t", "aggregate_id": 6, "event_type": "e", "payload": {}})");
  EXPECT_EQ(event_.event.aggregate_id(), "6");
}

TEST_F(MessageDecoderTest, NonTransactionalOrOtherPrefixIsNotAnEvent) {
  pgoutput::LogicalMessage message;
  message.transactional = false;
  message.prefix = "outbox";
  message.content = R"({"aggregate_type": "t", "aggregate_id": "a", "event_type": "e"})";
  absl::StatusOr<bool> got = decoder_.Decode(message, Lsn(0x470), &event_);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
  message.transactional = true;
  message.prefix = "audit";
  got = decoder_.Decode(message, Lsn(0x470), &event_);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
}

}  // namespace
}  // namespace outboxd::decoder
