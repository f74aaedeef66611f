// `outboxd peek` and `outboxd tail` as a user runs them: real PostgreSQL,
// kafka-mock, the binary, and assertions on the JSON lines they print.
#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

using ::testing::HasSubstr;

// Parses JSON lines into objects; fails the test on a line that is not JSON.
std::vector<google::protobuf::Struct> JsonLines(const std::string& text) {
  std::vector<google::protobuf::Struct> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    google::protobuf::Struct s;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &s).ok()) << line;
    out.push_back(s);
  }
  return out;
}

std::string Field(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? "" : it->second.string_value();
}

class CliToolsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(env_.Start()); }
  RelayEnv env_;
};

TEST_F(CliToolsTest, PeekPrintsTheDecodedStreamAndNeverMovesTheSlot) {
  const Lsn slot_before = env_.ConfirmedLsn();
  ASSERT_OK(env_.Sql(
      "BEGIN;"
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "  VALUES ('order', 'o-1', 'Placed', '{\"total\": 1}');"
      "SELECT pg_logical_emit_message(true, 'outbox', 'hello');"
      "COMMIT;"));
  const Lsn end = env_.CurrentWalLsn();
  // Reading the relay's own slot: begin, relation, insert, message, commit.
  auto result = env_.RunOutboxd({"peek", "--postgres=" + env_.pg().ConnInfo(), "--slot=outboxd",
                                 "--end_lsn=" + end.ToString(), "--limit=5"});
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->first, 0) << result->second;
  std::vector<google::protobuf::Struct> lines = JsonLines(result->second);
  ASSERT_EQ(lines.size(), 5u) << result->second;
  std::vector<std::string> types;
  for (const auto& l : lines) types.push_back(Field(l, "type"));
  EXPECT_EQ(types, (std::vector<std::string>{"begin", "relation", "insert", "message", "commit"}));
  const google::protobuf::Struct& insert = lines[2];
  EXPECT_EQ(Field(insert, "relation"), "public.outbox_events");
  EXPECT_TRUE(Lsn::Parse(Field(insert, "lsn")).ok());
  EXPECT_GT(insert.fields().at("xid").number_value(), 0);
  const auto& row = insert.fields().at("new").struct_value().fields();
  EXPECT_EQ(row.at("aggregate_id").string_value(), "o-1");
  EXPECT_EQ(row.at("payload").string_value(), "{\"total\": 1}");
  EXPECT_EQ(row.at("headers").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_EQ(Field(lines[3], "prefix"), "outbox");
  EXPECT_EQ(Field(lines[3], "content"), "hello");
  EXPECT_TRUE(lines[3].fields().at("transactional").bool_value());
  // Peek confirmed nothing.
  EXPECT_EQ(env_.ConfirmedLsn(), slot_before);

  // Without --slot: a temporary slot that starts now, gone afterwards.
  auto later = Subprocess::Start({BinaryPath("outboxd"), "peek", "--postgres=" + env_.pg().ConnInfo(), "--limit=3"});
  ASSERT_TRUE(later.ok());
  ASSERT_TRUE(WaitFor([&] {
    return env_.pg().QueryValue("SELECT count(*) FROM pg_replication_slots WHERE temporary").value_or("0") == "1";
  }, absl::Seconds(10)));
  ASSERT_OK(env_.InsertEvent("order", "o-2", "Later", "{}"));
  auto code = (*later)->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.ok() && *code == 0) << (*later)->Stderr();
  std::vector<google::protobuf::Struct> fresh = JsonLines((*later)->Stdout());
  ASSERT_EQ(fresh.size(), 3u);
  EXPECT_EQ(Field(fresh[2], "type"), "insert");  // only what happened after it started
  EXPECT_EQ(fresh[2].fields().at("new").struct_value().fields().at("aggregate_id").string_value(), "o-2");
  EXPECT_EQ(*env_.pg().QueryValue("SELECT count(*) FROM pg_replication_slots WHERE temporary"), "0");
}

TEST_F(CliToolsTest, TailPrintsEventsWithHeadersPartitionOffsetAndJsonPayload) {
  auto relay = env_.StartRelay();
  ASSERT_TRUE(relay.ok());
  ASSERT_OK(env_.Sql(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload, headers) VALUES "
      "('order', 'o-1', 'Placed', '{\"total\": 42.50}', '{\"trace\": \"t-1\"}'),"
      "('order', 'o-2', 'Placed', '{\"total\": 7}', NULL)"));
  auto result = env_.RunOutboxd({"tail", "--brokers=" + env_.Brokers(), "--topic=outbox.event.order",
                                 "--limit=2", "--timeout=20s"});
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->first, 0) << result->second;
  EXPECT_THAT(result->second, HasSubstr("\"payload\":{\"total\": 42.50}"));  // as written, as JSON
  std::vector<google::protobuf::Struct> lines = JsonLines(result->second);
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& l : lines) {
    EXPECT_EQ(Field(l, "topic"), "outbox.event.order");
    EXPECT_TRUE(l.fields().contains("partition"));
    EXPECT_TRUE(l.fields().contains("offset"));
    EXPECT_EQ(l.fields().at("headers").struct_value().fields().at("event_type").string_value(), "Placed");
    EXPECT_EQ(l.fields().at("event").struct_value().fields().at("aggregate_type").string_value(), "order");
  }
  // A pattern (a consumer group follows every matching topic).
  auto pattern = env_.RunOutboxd({"tail", "--brokers=" + env_.Brokers(), "--topic=^outbox\\.event\\..*",
                                  "--limit=2", "--timeout=30s"});
  ASSERT_TRUE(pattern.ok());
  ASSERT_EQ(pattern->first, 0) << pattern->second;
  EXPECT_EQ(JsonLines(pattern->second).size(), 2u);
  // --timeout with too few events: exit 1 and say so.
  auto too_few = env_.RunOutboxd({"tail", "--brokers=" + env_.Brokers(), "--topic=outbox.event.order",
                                  "--limit=10", "--timeout=2s"});
  ASSERT_TRUE(too_few.ok());
  EXPECT_EQ(too_few->first, 1);
  EXPECT_THAT(too_few->second, HasSubstr("of 10 events arrived"));
  EXPECT_EQ((*relay)->Terminate(), 0);
}

}  // namespace
}  // namespace outboxd::test
