// Record formats and Debezium's table layout end to end: real PostgreSQL,
// kafka-mock, the outboxd binary; what reached Kafka is checked byte for byte.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

using ::testing::HasSubstr;

std::vector<google::protobuf::Struct> JsonLines(const std::string& text) {
  std::vector<google::protobuf::Struct> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    google::protobuf::Struct s;
    if (!line.empty() && line[0] == '{' && google::protobuf::util::JsonStringToMessage(line, &s).ok()) {
      lines.push_back(std::move(s));
    }
    start = end + 1;
  }
  return lines;
}

class FormatsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (relay_ && relay_->Running()) {
      EXPECT_EQ(relay_->Terminate(), 0) << relay_->Stderr();
    }
  }
  void StartRelay(std::vector<std::string> args) {
    auto relay = env_.StartRelay(std::move(args));
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = std::move(*relay);
    ASSERT_TRUE(RelayEnv::WaitStreaming(*relay_)) << relay_->Stderr();
  }
  std::string Tail(absl::string_view topic, int limit, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"tail", "--brokers=" + env_.Brokers(), absl::StrCat("--topic=", topic),
                                     absl::StrCat("--limit=", limit), "--timeout=20s"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto result = env_.RunOutboxd(args);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return "";
    EXPECT_EQ(result->first, 0) << result->second;
    return result->second;
  }

  RelayEnv env_;
  std::unique_ptr<Subprocess> relay_;
};

TEST_F(FormatsTest, DebeziumTableLayoutCreatesAndReadsDebeziumsTable) {
  ASSERT_OK(env_.Start(/*init=*/false));
  auto init = env_.RunOutboxd({"init", "--postgres=" + env_.pg().ConnInfo(), "--table=public.outboxevent",
                               "--table_layout=debezium"});
  ASSERT_TRUE(init.ok() && init->first == 0) << (init.ok() ? init->second : init.status().ToString());
  // Debezium's documented table, nothing more.
  EXPECT_EQ(*env_.pg().QueryValue(
                "SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum) "
                "FROM pg_attribute WHERE attrelid = 'public.outboxevent'::regclass AND attnum > 0"),
            "id:uuid,aggregatetype:character varying(255),aggregateid:character varying(255),"
            "type:character varying(255),payload:jsonb");
  ASSERT_NO_FATAL_FAILURE(StartRelay({"--table=public.outboxevent", "--table_layout=debezium"}));
  ASSERT_OK(env_.Sql("INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload) VALUES "
                     "('4d47e190-0402-4048-bc2c-89dd54343cdc', 'Order', '1', 'OrderCreated', "
                     "'{\"id\": 1, \"customerId\": 123}')"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.Order", 1);  // case kept
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event.id(), "4d47e190-0402-4048-bc2c-89dd54343cdc");
  EXPECT_EQ(events[0].event.aggregate_id(), "1");
  EXPECT_EQ(events[0].event.event_type(), "OrderCreated");
  EXPECT_EQ(events[0].event.payload(), "{\"id\": 1, \"customerId\": 123}");
  EXPECT_EQ(events[0].event.payload_type(), v1::PAYLOAD_TYPE_JSON);
  EXPECT_EQ(events[0].record.key, "1");

  // tail shows the envelope with LSNs as PostgreSQL prints them.
  const std::string out = Tail("outbox.event.Order", 1);
  std::vector<google::protobuf::Struct> lines = JsonLines(out);
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_EQ(lines[0].fields().at("format").string_value(), "envelope");
  const auto& source = lines[0].fields().at("event").struct_value().fields().at("source").struct_value().fields();
  EXPECT_EQ(source.at("commit_lsn").string_value(), Lsn(events[0].event.source().commit_lsn()).ToString());
  EXPECT_EQ(source.at("event_lsn").string_value(), Lsn(events[0].event.source().event_lsn()).ToString());
  EXPECT_THAT(out, HasSubstr("\"payload\":{\"id\": 1, \"customerId\": 123}"));
}

TEST_F(FormatsTest, AColumnFlagOverridesTheLayout) {
  ASSERT_OK(env_.Start(/*init=*/false));
  ASSERT_OK(env_.Sql("CREATE TABLE public.outboxevent (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
                     "aggregatetype varchar(255) NOT NULL, aggregateid varchar(255) NOT NULL, "
                     "eventtype varchar(255) NOT NULL, payload jsonb)"));
  auto init = env_.RunOutboxd({"init", "--postgres=" + env_.pg().ConnInfo(), "--table=public.outboxevent",
                               "--table_layout=debezium"});
  ASSERT_TRUE(init.ok());
  // Without the override the layout's "type" column is missing, and the error says which flag fixes it.
  EXPECT_EQ(init->first, 1) << init->second;
  EXPECT_THAT(init->second, HasSubstr("has no column 'type'"));
  EXPECT_THAT(init->second, HasSubstr("--event_type_column"));
  init = env_.RunOutboxd({"init", "--postgres=" + env_.pg().ConnInfo(), "--table=public.outboxevent",
                          "--table_layout=debezium", "--event_type_column=eventtype"});
  ASSERT_TRUE(init.ok() && init->first == 0) << (init.ok() ? init->second : init.status().ToString());
  ASSERT_NO_FATAL_FAILURE(
      StartRelay({"--table=public.outboxevent", "--table_layout=debezium", "--event_type_column=eventtype"}));
  ASSERT_OK(env_.Sql("INSERT INTO outboxevent (aggregatetype, aggregateid, eventtype, payload) "
                     "VALUES ('order', 'o-1', 'Shipped', '{}')"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event.event_type(), "Shipped");
  EXPECT_EQ(events[0].event.id().size(), 36u);  // the uuid's text
}

TEST_F(FormatsTest, BadFormatAndLayoutAreUsageErrors) {
  ASSERT_OK(env_.Start(/*init=*/false));
  auto layout = env_.RunOutboxd({"init", "--postgres=" + env_.pg().ConnInfo(), "--table_layout=liquibase"});
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->first, 2);
  EXPECT_THAT(layout->second, HasSubstr("--table_layout='liquibase' is not valid; use outboxd or debezium"));
  auto format = env_.RunOutboxd({"tail", "--brokers=" + env_.Brokers(), "--topic=x", "--format=avro"});
  ASSERT_TRUE(format.ok());
  EXPECT_EQ(format->first, 2);
  EXPECT_THAT(format->second, HasSubstr("--format='avro' is not valid"));
}

// Kafka's own partitioner for keyed records (org.apache.kafka.common.utils.Utils.murmur2 and
// toPositive), what a Java producer and so Kafka Connect use: written out here so the test
// proves outboxd's records land where Debezium's would, not that librdkafka agrees with itself.
int32_t JavaPartition(absl::string_view key, int partitions) {
  const uint32_t m = 0x5bd1e995;
  const size_t length = key.size();
  uint32_t h = 0x9747b28c ^ static_cast<uint32_t>(length);
  const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(key[i])); };
  for (size_t i = 0; i + 4 <= length; i += 4) {
    uint32_t k = byte(i) | (byte(i + 1) << 8) | (byte(i + 2) << 16) | (byte(i + 3) << 24);
    k *= m;
    k ^= k >> 24;
    k *= m;
    h *= m;
    h ^= k;
  }
  const size_t tail = length & ~size_t{3};
  switch (length % 4) {
    case 3: h ^= byte(tail + 2) << 16; [[fallthrough]];
    case 2: h ^= byte(tail + 1) << 8; [[fallthrough]];
    case 1: h ^= byte(tail); h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>((h & 0x7fffffff) % static_cast<uint32_t>(partitions));
}

std::string HeaderOf(const KafkaRecord& r, absl::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "<none>";
}

google::protobuf::Struct ParseJson(const std::string& text) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &s).ok()) << text;
  return s;
}

struct FormatCase {
  std::string format;
  std::string delivery;
};

class EveryFormatTest : public FormatsTest, public ::testing::WithParamInterface<FormatCase> {};

constexpr int kPartitions = 6;
constexpr int kRows = 12;

// Table rows (unicode, a number as written, headers) and a message in one transaction, plus a
// row whose topic Kafka would reject: every record in the format asked for, keyed and
// partitioned as a Java producer would, the dead letter too.
TEST_P(EveryFormatTest, TableRowsMessagesAndDeadLettersInTheFormat) {
  const FormatCase& c = GetParam();
  ASSERT_OK(env_.Start(/*init=*/false));
  auto init = env_.RunOutboxd({"init", "--postgres=" + env_.pg().ConnInfo(), "--source=both"});
  ASSERT_TRUE(init.ok() && init->first == 0) << (init.ok() ? init->second : init.status().ToString());
  ASSERT_OK(env_.kafka().CreateTopic("outbox.event.order", kPartitions));
  ASSERT_NO_FATAL_FAILURE(StartRelay({"--source=both", "--format=" + c.format, "--delivery=" + c.delivery}));

  std::string sql = "BEGIN;";
  for (int i = 0; i < kRows; ++i) {
    absl::StrAppend(&sql,
                    "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload, headers) "
                    "VALUES ('order', 'o-", i, "', 'Placed', '{\"total\": 42.50, \"name\": \"Zoë ✓\", \"n\": ", i,
                    "}', '{\"trace\": \"t-", i, "\"}');");
  }
  absl::StrAppend(&sql,
                  "SELECT pg_logical_emit_message(true, 'outbox', '{\"aggregate_type\": \"order\", "
                  "\"aggregate_id\": \"o-msg\", \"event_type\": \"Emitted\", \"id\": \"m-1\", "
                  "\"payload\": {\"b\": 2.50, \"a\": [1, 2]}}');",
                  "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload, topic) "
                  "VALUES ('order', 'o-dead', 'Placed', '{\"x\": 1}', 'bad topic!');",
                  "COMMIT;");
  ASSERT_OK(env_.Sql(sql));
  auto rows = env_.pg().Query("SELECT id::text, aggregate_id, payload::text FROM outbox_events ORDER BY id");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), static_cast<size_t>(kRows + 1));
  std::map<std::string, std::pair<std::string, std::string>> by_key;  // key -> (id, payload text)
  for (const auto& row : *rows) by_key[*row[1]] = {*row[0], *row[2]};
  by_key["o-msg"] = {"m-1", "{\"b\": 2.50, \"a\": [1, 2]}"};

  // Once confirmed, everything is in Kafka: a short read past the count shows any extra.
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << relay_->Stderr();
  auto records = ReadTopic(env_.Brokers(), "outbox.event.order", kRows + 2, absl::Seconds(3));
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), static_cast<size_t>(kRows + 1)) << "one more record than written?";
  auto dead = ReadTopic(env_.Brokers(), "outbox.dead-letter", 1, absl::Seconds(10));
  ASSERT_TRUE(dead.ok()) << dead.status();
  ASSERT_EQ(dead->size(), 1u);
  std::vector<KafkaRecord> all = *records;
  all.push_back((*dead)[0]);

  for (const KafkaRecord& r : all) {
    SCOPED_TRACE(absl::StrCat(c.format, "/", c.delivery, " ", r.topic, " key ", r.key));
    ASSERT_TRUE(by_key.contains(r.key));
    const auto& [id, payload] = by_key[r.key];
    const bool message = r.key == "o-msg";
    const bool dead_letter = r.topic == "outbox.dead-letter";
    if (!dead_letter) {
      EXPECT_EQ(r.partition, JavaPartition(r.key, kPartitions));
    }
    if (dead_letter) {
      EXPECT_THAT(HeaderOf(r, "outboxd.dead_letter.reason"), HasSubstr("bad topic!"));
      EXPECT_EQ(HeaderOf(r, "outboxd.dead_letter.original_topic"), "bad topic!");
    }
    const std::string table = message ? "message:outbox" : "public.outbox_events";
    if (c.format == "envelope") {
      v1::OutboxEvent e;
      ASSERT_TRUE(e.ParseFromString(r.value));
      EXPECT_EQ(e.id(), id);
      EXPECT_EQ(e.payload(), payload);
      EXPECT_EQ(e.source().table(), table);
      EXPECT_EQ(HeaderOf(r, "id"), id);
    } else if (c.format == "debezium") {
      EXPECT_EQ(r.value, payload);  // PostgreSQL's text of the payload, byte for byte
      ASSERT_FALSE(r.headers.empty());
      EXPECT_EQ(r.headers[0].first, "id");
      EXPECT_EQ(r.headers[0].second, id);
      EXPECT_EQ(HeaderOf(r, "event_type"), message ? "Emitted" : "Placed");
    } else if (c.format == "cloudevents") {
      EXPECT_EQ(r.value, payload);
      EXPECT_EQ(HeaderOf(r, "ce_specversion"), "1.0");
      EXPECT_EQ(HeaderOf(r, "ce_id"), id);
      EXPECT_EQ(HeaderOf(r, "ce_source"), "/outboxd/postgres/" + table);
      EXPECT_EQ(HeaderOf(r, "ce_type"), message ? "Emitted" : "Placed");
      EXPECT_EQ(HeaderOf(r, "ce_subject"), r.key);
      EXPECT_EQ(HeaderOf(r, "content-type"), "application/json");
      absl::Time time;
      std::string error;
      EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, HeaderOf(r, "ce_time"), &time, &error))
          << HeaderOf(r, "ce_time") << ": " << error;
      EXPECT_LT(absl::AbsDuration(absl::Now() - time), absl::Minutes(5));
    } else {
      const google::protobuf::Struct v = ParseJson(r.value);
      EXPECT_EQ(v.fields().at("id").string_value(), id);
      EXPECT_EQ(v.fields().at("aggregate_id").string_value(), r.key);
      EXPECT_TRUE(v.fields().at("payload").has_struct_value());
      EXPECT_THAT(r.value, HasSubstr(absl::StrCat("\"payload\":", payload, ",")));  // embedded as written
      const auto& source = v.fields().at("source").struct_value().fields();
      EXPECT_TRUE(Lsn::Parse(source.at("commit_lsn").string_value()).ok()) << r.value;
      EXPECT_TRUE(Lsn::Parse(source.at("event_lsn").string_value()).ok()) << r.value;
      EXPECT_EQ(source.at("table").string_value(), table);
    }
    if (!message && !dead_letter) {
      EXPECT_EQ(HeaderOf(r, "trace"), absl::StrCat("t-", r.key.substr(2)));
    }
  }
  // tail recognises the format of every record and shows the payload as written.
  const std::string out = Tail("outbox.event.order", kRows + 1);
  std::vector<google::protobuf::Struct> lines = JsonLines(out);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kRows + 1)) << out;
  for (const auto& line : lines) EXPECT_EQ(line.fields().at("format").string_value(), c.format) << out;
  EXPECT_THAT(out, HasSubstr("\"payload\":{\"b\": 2.50, \"a\": [1, 2]}"));
}

INSTANTIATE_TEST_SUITE_P(
    FormatsAndDeliveries, EveryFormatTest,
    ::testing::Values(FormatCase{"envelope", "at-least-once"}, FormatCase{"debezium", "at-least-once"},
                      FormatCase{"cloudevents", "at-least-once"}, FormatCase{"json", "at-least-once"},
                      FormatCase{"envelope", "exactly-once"}, FormatCase{"debezium", "exactly-once"},
                      FormatCase{"cloudevents", "exactly-once"}, FormatCase{"json", "exactly-once"}),
    [](const ::testing::TestParamInfo<FormatCase>& info) {
      std::string name = info.param.format + "_" + info.param.delivery;
      for (char& ch : name) {
        if (ch == '-') ch = '_';
      }
      return name;
    });

}  // namespace
}  // namespace outboxd::test
