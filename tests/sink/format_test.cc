// Record formats (sink/format.h): exact keys, values and headers per format,
// and the way back that `outboxd tail` takes.
#include "sink/format.h"

#include <string>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sink/tail.h"

namespace outboxd::sink {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// 2026-11-22T06:32:42.503046Z
constexpr int64_t kSeconds = 1795329162;
constexpr int32_t kNanos = 503046000;

v1::OutboxEvent Sample(v1::PayloadType type = v1::PAYLOAD_TYPE_JSON) {
  v1::OutboxEvent e;
  e.set_id("4d47e190-0402-4048-bc2c-89dd54343cdc");
  e.set_aggregate_type("Order");
  e.set_aggregate_id("o-1001");
  e.set_event_type("OrderCreated");
  e.set_payload("{\"id\": 1, \"name\": \"Zoë ✓\", \"total\": 42.50}");
  e.set_payload_type(type);
  (*e.mutable_headers())["trace"] = "t-1";
  (*e.mutable_headers())["a_first"] = "x";
  v1::SourcePosition* s = e.mutable_source();
  s->set_commit_lsn(0x152C040);
  s->set_event_lsn(0x152BE50);
  s->set_xid(726);
  s->mutable_commit_time()->set_seconds(kSeconds);
  s->mutable_commit_time()->set_nanos(kNanos);
  s->set_table("public.outbox_events");
  return e;
}

EncodedRecord Encode(const v1::OutboxEvent& e, Format format, bool omit_payload = false) {
  FormatOptions options;
  options.format = format;
  options.cloudevents_source_prefix = "/outboxd/shop/";
  EncodedRecord r;
  EncodeEvent(e, options, omit_payload, &r);
  return r;
}

bool ValidJson(const std::string& text) {
  google::protobuf::Value v;
  return google::protobuf::util::JsonStringToMessage(text, &v).ok();
}

TEST(FormatTest, ParsesTheFourNamesAndRejectsOthersNamingTheChoices) {
  for (Format f : {Format::kEnvelope, Format::kDebezium, Format::kCloudEvents, Format::kJson}) {
    EXPECT_EQ(*ParseFormat(FormatName(f)), f);
  }
  absl::StatusOr<Format> bad = ParseFormat("avro");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "--format='avro' is not valid; use envelope, debezium, cloudevents or json");
}

TEST(FormatTest, EnvelopeIsTheSerializedEventWithIdAndTypeHeaders) {
  const v1::OutboxEvent e = Sample();
  EncodedRecord r = Encode(e, Format::kEnvelope);
  EXPECT_EQ(r.key, "o-1001");
  v1::OutboxEvent back;
  ASSERT_TRUE(back.ParseFromString(r.value));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, e));
  EXPECT_THAT(r.headers, ElementsAre(Pair("id", e.id()), Pair("event_type", "OrderCreated"),
                                     Pair("a_first", "x"), Pair("trace", "t-1")));
}

TEST(FormatTest, DebeziumIsThePayloadTextKeyedByAggregateWithIdHeaderFirst) {
  const v1::OutboxEvent e = Sample();
  EncodedRecord r = Encode(e, Format::kDebezium);
  EXPECT_EQ(r.key, "o-1001");
  EXPECT_EQ(r.value, e.payload());  // byte for byte, unicode included
  ASSERT_FALSE(r.headers.empty());
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"id", "4d47e190-0402-4048-bc2c-89dd54343cdc"}));
  EXPECT_THAT(r.headers, ElementsAre(Pair("id", e.id()), Pair("event_type", "OrderCreated"),
                                     Pair("a_first", "x"), Pair("trace", "t-1")));
}

TEST(FormatTest, CloudEventsBinaryModeAttributesAsCeHeaders) {
  v1::OutboxEvent e = Sample();
  (*e.mutable_headers())["ce_id"] = "not-the-id";  // cannot replace an attribute outboxd sets
  (*e.mutable_headers())["ce_traceparent"] = "00-abc";  // an extension attribute passes
  // Names no CloudEvents extension may have ([a-z0-9]+ after ce_) are left out: a CloudEvents
  // SDK refuses the whole record for one of them (the Java SDK's CloudEventDeserializer throws,
  // and the consumer cannot get past it).
  for (const char* invalid : {"ce_Tenant-ID", "ce_my_ext", "ce_", "CE_upper", "Ce_x", "ce_zoë"}) {
    (*e.mutable_headers())[invalid] = "dropped";
  }
  EncodedRecord r = Encode(e, Format::kCloudEvents);
  EXPECT_EQ(r.key, "o-1001");
  EXPECT_EQ(r.value, e.payload());
  EXPECT_THAT(r.headers,
              ElementsAre(Pair("ce_specversion", "1.0"), Pair("ce_id", e.id()),
                          Pair("ce_source", "/outboxd/shop/public.outbox_events"),
                          Pair("ce_type", "OrderCreated"), Pair("ce_time", "2026-11-22T06:32:42.503046Z"),
                          Pair("ce_subject", "o-1001"), Pair("content-type", "application/json"),
                          Pair("a_first", "x"), Pair("ce_traceparent", "00-abc"), Pair("trace", "t-1")));

  FormatOptions fixed{.format = Format::kCloudEvents, .cloudevents_source = "urn:shop:orders"};
  EncodeEvent(e, fixed, false, &r);
  EXPECT_EQ(r.headers[2], (std::pair<std::string, std::string>{"ce_source", "urn:shop:orders"}));

  // content-type follows the payload column's type.
  EXPECT_EQ(Encode(Sample(v1::PAYLOAD_TYPE_TEXT), Format::kCloudEvents).headers[6].second,
            "text/plain; charset=utf-8");
  EXPECT_EQ(Encode(Sample(v1::PAYLOAD_TYPE_BYTES), Format::kCloudEvents).headers[6].second,
            "application/octet-stream");
  EXPECT_EQ(Encode(Sample(v1::PAYLOAD_TYPE_UNSPECIFIED), Format::kCloudEvents).headers[6].first, "a_first");
}

TEST(FormatTest, JsonIsTheEnvelopeAsOneObjectWithPayloadEmbeddedAndLsnsAsXY) {
  const v1::OutboxEvent e = Sample();
  EncodedRecord r = Encode(e, Format::kJson);
  EXPECT_EQ(r.key, "o-1001");
  EXPECT_EQ(r.value,
            "{\"id\":\"4d47e190-0402-4048-bc2c-89dd54343cdc\",\"aggregate_type\":\"Order\","
            "\"aggregate_id\":\"o-1001\",\"event_type\":\"OrderCreated\","
            "\"payload\":{\"id\": 1, \"name\": \"Zoë ✓\", \"total\": 42.50},\"payload_type\":\"json\","
            "\"headers\":{\"a_first\":\"x\",\"trace\":\"t-1\"},"
            "\"source\":{\"commit_lsn\":\"0/152C040\",\"event_lsn\":\"0/152BE50\",\"xid\":726,"
            "\"commit_time\":\"2026-11-22T06:32:42.503046Z\",\"table\":\"public.outbox_events\"}}");
  EXPECT_TRUE(ValidJson(r.value));
  EXPECT_THAT(r.headers, ElementsAre(Pair("id", e.id()), Pair("event_type", "OrderCreated"),
                                     Pair("a_first", "x"), Pair("trace", "t-1")));
}

TEST(FormatTest, JsonReadsBackToTheSameEventForEveryPayloadType) {
  for (v1::PayloadType type : {v1::PAYLOAD_TYPE_JSON, v1::PAYLOAD_TYPE_TEXT, v1::PAYLOAD_TYPE_BYTES}) {
    v1::OutboxEvent e = Sample(type);
    if (type == v1::PAYLOAD_TYPE_TEXT) e.set_payload("plain \"quoted\"\ntext");
    if (type == v1::PAYLOAD_TYPE_BYTES) e.set_payload(std::string("\x00\xff\x10", 3));
    EncodedRecord r = Encode(e, Format::kJson);
    ASSERT_TRUE(ValidJson(r.value)) << r.value;
    absl::StatusOr<v1::OutboxEvent> back = EventFromJson(r.value);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*back, e))
        << back->DebugString() << "\nvs\n" << e.DebugString();
  }
  EXPECT_FALSE(EventFromJson("{\"id\":\"1\"}").ok());
  EXPECT_FALSE(EventFromJson("not json").ok());
}

TEST(FormatTest, AJsonPayloadWithNewlinesStaysOnOneLine) {
  v1::OutboxEvent e = Sample();
  e.set_payload("{\n  \"a\": 1\n}");  // a json (not jsonb) column keeps what was written
  EncodedRecord r = Encode(e, Format::kJson);
  EXPECT_EQ(r.value.find('\n'), std::string::npos);
  EXPECT_TRUE(ValidJson(r.value));
}

TEST(FormatTest, OmittingThePayloadForDeadLetters) {
  const v1::OutboxEvent e = Sample();
  v1::OutboxEvent back;
  ASSERT_TRUE(back.ParseFromString(Encode(e, Format::kEnvelope, true).value));
  EXPECT_EQ(back.payload(), "");
  EXPECT_EQ(back.id(), e.id());
  EXPECT_EQ(Encode(e, Format::kDebezium, true).value, "");
  EXPECT_EQ(Encode(e, Format::kCloudEvents, true).value, "");
  const std::string json = Encode(e, Format::kJson, true).value;
  EXPECT_TRUE(ValidJson(json));
  EXPECT_EQ(json.find("\"payload\":"), std::string::npos);
}

TEST(FormatTest, OmitPayloadFromARecordValueAlone) {
  const v1::OutboxEvent e = Sample();
  for (Format f : {Format::kEnvelope, Format::kDebezium, Format::kCloudEvents, Format::kJson}) {
    std::string value = Encode(e, f).value;
    OmitPayload(f, &value);
    const std::string expected = Encode(e, f, /*omit_payload=*/true).value;
    if (f == Format::kEnvelope) {  // a protobuf map serializes in no fixed order
      v1::OutboxEvent got, want;
      ASSERT_TRUE(got.ParseFromString(value));
      ASSERT_TRUE(want.ParseFromString(expected));
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, want));
      EXPECT_EQ(got.payload(), "");
    } else {
      EXPECT_EQ(value, expected) << FormatName(f);
    }
  }
  std::string junk = "not a record";
  OmitPayload(Format::kJson, &junk);
  EXPECT_EQ(junk, "");
}

TEST(FormatTest, AKeptRecordCarriesNothingOverFromThePreviousEvent) {
  for (Format f : {Format::kEnvelope, Format::kDebezium, Format::kCloudEvents, Format::kJson}) {
    FormatOptions options{.format = f};
    EncodedRecord kept;
    v1::OutboxEvent big = Sample();
    for (int i = 0; i < 10; ++i) (*big.mutable_headers())["h" + std::to_string(i)] = "v";
    EncodeEvent(big, options, false, &kept);
    v1::OutboxEvent small = Sample();
    small.clear_headers();
    small.set_payload("{}");
    EncodeEvent(small, options, false, &kept);
    EncodedRecord fresh;
    EncodeEvent(small, options, false, &fresh);
    EXPECT_EQ(kept.headers, fresh.headers) << FormatName(f);
    EXPECT_EQ(kept.value, fresh.value) << FormatName(f);
    EXPECT_EQ(kept.key, fresh.key) << FormatName(f);
  }
}

TEST(FormatTest, DetectsEachFormatFromTheRecord) {
  const v1::OutboxEvent e = Sample();
  for (Format f : {Format::kEnvelope, Format::kDebezium, Format::kCloudEvents, Format::kJson}) {
    EncodedRecord r = Encode(e, f);
    EXPECT_EQ(DetectFormat(r.value, r.headers), f) << FormatName(f);
  }
  // A bare payload that happens to have a "source" member is still a payload.
  EXPECT_EQ(DetectFormat("{\"source\": \"web\", \"n\": 1}", {}), Format::kDebezium);
  EXPECT_EQ(DetectFormat("{\"source\": {\"x\": 1}}", {}), Format::kDebezium);
  EXPECT_EQ(DetectFormat("plain text", {}), Format::kDebezium);
  EXPECT_EQ(DetectFormat("", {}), Format::kDebezium);
  EXPECT_EQ(DetectFormat("{\"source\": {\"commit_lsn", {}), Format::kDebezium);  // truncated
}

TEST(FormatTest, TailPrintsEveryFormatAsOneJsonLineWithLsnsAsXY) {
  const v1::OutboxEvent e = Sample();
  for (Format f : {Format::kEnvelope, Format::kDebezium, Format::kCloudEvents, Format::kJson}) {
    EncodedRecord r = Encode(e, f);
    const std::string line = RecordToJson("outbox.event.Order", 3, 17, r.key, r.value, r.headers);
    google::protobuf::Struct parsed;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line;
    const auto& fields = parsed.fields();
    EXPECT_EQ(fields.at("format").string_value(), FormatName(f)) << line;
    EXPECT_EQ(fields.at("key").string_value(), "o-1001");
    // The payload as written, as JSON.
    EXPECT_NE(line.find("\"payload\":{\"id\": 1, \"name\": \"Zoë ✓\", \"total\": 42.50}"), std::string::npos)
        << line;
    if (f == Format::kEnvelope || f == Format::kJson) {
      const auto& source = fields.at("event").struct_value().fields().at("source").struct_value().fields();
      EXPECT_EQ(source.at("commit_lsn").string_value(), "0/152C040") << line;
      EXPECT_EQ(source.at("event_lsn").string_value(), "0/152BE50") << line;
      EXPECT_EQ(source.at("commit_time").string_value(), "2026-11-22T06:32:42.503046Z") << line;
    }
    if (f == Format::kCloudEvents) {
      const auto& ce = fields.at("cloudevent").struct_value().fields();
      EXPECT_EQ(ce.at("specversion").string_value(), "1.0");
      EXPECT_EQ(ce.at("id").string_value(), e.id());
      EXPECT_EQ(ce.at("datacontenttype").string_value(), "application/json");
      EXPECT_EQ(ce.at("time").string_value(), "2026-11-22T06:32:42.503046Z");
    }
  }
  // Told the format, tail does not guess: an envelope read as debezium is a payload.
  EncodedRecord r = Encode(e, Format::kJson);
  const std::string forced = RecordToJson("t", 0, 0, r.key, r.value, r.headers, Format::kDebezium);
  EXPECT_NE(forced.find("\"format\":\"debezium\""), std::string::npos);
  // A value that is not what the format says: one line with the error.
  const std::string broken = RecordToJson("t", 0, 0, "k", "junk", {}, Format::kEnvelope);
  EXPECT_NE(broken.find("\"error\":"), std::string::npos) << broken;
}

TEST(FormatTest, Rfc3339KeepsMicrosecondsAndUtc) {
  google::protobuf::Timestamp t;
  t.set_seconds(0);
  EXPECT_EQ(Rfc3339(t), "1970-01-01T00:00:00.000000Z");
  t.set_seconds(-1);
  t.set_nanos(999999000);
  EXPECT_EQ(Rfc3339(t), "1969-12-31T23:59:59.999999Z");
}

}  // namespace
}  // namespace outboxd::sink
