// Record formats and Debezium's table layout end to end: real PostgreSQL,
// kafka-mock, the outboxd binary; what reached Kafka is checked byte for byte.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

}  // namespace
}  // namespace outboxd::test
