// KafkaSink against librdkafka's in-process mock cluster. Every test asserts
// on what reached the broker (read back with a plain consumer) and on the
// tickets the delivery callback reported.
//
// Thread: each test runs on the gtest main thread; the mock cluster runs on
// its own librdkafka thread.
#include "sink/kafka_sink.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <set>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "outboxd/v1/event.pb.h"

namespace outboxd::sink {
namespace {

using ::testing::HasSubstr;

// Kafka protocol ApiKey of Produce (rdkafka_protocol.h is not installed).
constexpr int16_t kProduceApiKey = 0;

struct RdKafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using RdKafkaPtr = std::unique_ptr<rd_kafka_t, RdKafkaDeleter>;

// An in-process Kafka cluster on OS-chosen ports. The mock needs an rd_kafka_t
// to live in; this throwaway producer is never used for anything else.
class MockCluster {
 public:
  explicit MockCluster(int brokers) : broker_count_(brokers) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    std::array<char, 256> err{};
    rd_kafka_conf_set(conf, "log_level", "3", err.data(), err.size());
    rk_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf, err.data(), err.size()));
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      ADD_FAILURE() << "rd_kafka_new: " << err.data();
      return;
    }
    cluster_ = rd_kafka_mock_cluster_new(rk_.get(), brokers);
  }
  ~MockCluster() {
    if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
  rd_kafka_mock_cluster_t* get() const { return cluster_; }

  void CreateTopic(const std::string& topic, int partitions) {
    ASSERT_EQ(rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions,
                                         std::min(broker_count_, 3)),
              RD_KAFKA_RESP_ERR_NO_ERROR)
        << topic;
  }
  void SetAllBrokers(bool up) {
    for (int id = 1; id <= broker_count_; ++id) {
      if (up) {
        rd_kafka_mock_broker_set_up(cluster_, id);
      } else {
        rd_kafka_mock_broker_set_down(cluster_, id);
      }
    }
  }

 private:
  int broker_count_;
  RdKafkaPtr rk_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

struct Record {
  int32_t partition = 0;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;

  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return "<missing>";
  }
};

// Reads `count` records of `topic` from the beginning of every partition, or
// whatever arrived by the deadline. A group.id is set only because
// rd_kafka_assign() wants one; nothing joins a group or commits.
std::vector<Record> ReadRecords(const std::string& bootstraps, const std::string& topic,
                                size_t count, absl::Duration timeout = absl::Seconds(20)) {
  std::vector<Record> records;
  std::array<char, 256> err{};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"bootstrap.servers", bootstraps},
           {"group.id", "sink-test-reader"},
           {"enable.auto.commit", "false"},
           {"log_level", "3"}}) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err.data(), err.size()) !=
        RD_KAFKA_CONF_OK) {
      ADD_FAILURE() << err.data();
    }
  }
  RdKafkaPtr consumer(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err.data(), err.size()));
  if (consumer == nullptr) {
    rd_kafka_conf_destroy(conf);
    ADD_FAILURE() << err.data();
    return records;
  }
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(consumer.get(), topic.c_str(), nullptr);
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t md_err = rd_kafka_metadata(consumer.get(), 0, rkt, &metadata, 10000);
  rd_kafka_topic_destroy(rkt);
  if (md_err != RD_KAFKA_RESP_ERR_NO_ERROR || metadata->topic_cnt != 1) {
    ADD_FAILURE() << "metadata for " << topic << ": " << rd_kafka_err2str(md_err);
    if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
    return records;
  }
  rd_kafka_topic_partition_list_t* partitions =
      rd_kafka_topic_partition_list_new(metadata->topics[0].partition_cnt);
  for (int i = 0; i < metadata->topics[0].partition_cnt; ++i) {
    rd_kafka_topic_partition_list_add(partitions, topic.c_str(),
                                      metadata->topics[0].partitions[i].id)
        ->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_metadata_destroy(metadata);
  EXPECT_EQ(rd_kafka_assign(consumer.get(), partitions), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(partitions);

  const absl::Time deadline = absl::Now() + timeout;
  while (records.size() < count && absl::Now() < deadline) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer.get(), 100);
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      Record record;
      record.partition = message->partition;
      if (message->key != nullptr) {
        record.key.assign(static_cast<const char*>(message->key), message->key_len);
      }
      if (message->payload != nullptr) {
        record.value.assign(static_cast<const char*>(message->payload), message->len);
      }
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          record.headers.emplace_back(
              name, value == nullptr ? "" : std::string(static_cast<const char*>(value), size));
        }
      }
      records.push_back(std::move(record));
    }
    rd_kafka_message_destroy(message);
  }
  rd_kafka_consumer_close(consumer.get());
  return records;
}

// A SinkConfig with `brokers` and whatever `edit` changes. (Designated
// initializers would trip -Wmissing-field-initializers.)
SinkConfig Config(const std::string& brokers,
                  const std::function<void(SinkConfig&)>& edit = [](SinkConfig&) {}) {
  SinkConfig config;
  config.brokers = brokers;
  edit(config);
  return config;
}
SinkConfig ConfigFor(const MockCluster& cluster,
                     const std::function<void(SinkConfig&)>& edit = [](SinkConfig&) {}) {
  return Config(cluster.bootstraps(), edit);
}

v1::OutboxEvent MakeEvent(const std::string& id, const std::string& aggregate_type,
                          const std::string& aggregate_id, const std::string& payload = "{}") {
  v1::OutboxEvent event;
  event.set_id(id);
  event.set_aggregate_type(aggregate_type);
  event.set_aggregate_id(aggregate_id);
  event.set_event_type("Created");
  event.set_payload(payload);
  event.mutable_source()->set_commit_lsn(0x1000 + std::stoull(id));
  event.mutable_source()->set_table("public.outbox_events");
  return event;
}

// A sink plus every (ticket, status) its callback reported, in order.
class SinkHarness {
 public:
  static std::unique_ptr<SinkHarness> Start(SinkConfig config) {
    auto harness = std::make_unique<SinkHarness>();
    auto sink = KafkaSink::Create(config, [h = harness.get()](Ticket t, const absl::Status& s) {
      h->reports.emplace_back(t, s);
    });
    EXPECT_TRUE(sink.ok()) << sink.status();
    if (!sink.ok()) return nullptr;
    harness->sink = std::move(*sink);
    return harness;
  }

  // Polls until `done` holds or the deadline passes; returns `done()`.
  bool PollUntil(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!done() && absl::Now() < deadline) sink->Poll(50);
    return done();
  }
  bool WaitForReports(size_t n, absl::Duration timeout = absl::Seconds(20)) {
    return PollUntil([&] { return reports.size() >= n; }, timeout);
  }

  std::vector<std::pair<Ticket, absl::Status>> reports;
  std::unique_ptr<KafkaSink> sink;
};

void ExpectEachTicketOkOnce(const std::vector<std::pair<Ticket, absl::Status>>& reports,
                            const std::vector<Ticket>& tickets) {
  std::map<Ticket, int> seen;
  for (const auto& [ticket, status] : reports) {
    EXPECT_TRUE(status.ok()) << "ticket " << ticket << ": " << status;
    ++seen[ticket];
  }
  EXPECT_EQ(seen.size(), tickets.size());
  for (Ticket t : tickets) EXPECT_EQ(seen[t], 1) << "ticket " << t;
}

TEST(KafkaSinkTest, RoutesKeysAndHeadersAndValue) {
  MockCluster cluster(1);
  cluster.CreateTopic("outbox.event.order", 3);
  cluster.CreateTopic("custom.orders", 1);
  auto h = SinkHarness::Start(ConfigFor(cluster));
  ASSERT_NE(h, nullptr);

  v1::OutboxEvent first = MakeEvent("1", "order", "order-17");
  (*first.mutable_headers())["trace_id"] = "abc";
  (*first.mutable_headers())["tenant"] = "t1";
  v1::OutboxEvent second = MakeEvent("2", "order", "order-18");
  v1::OutboxEvent third = MakeEvent("3", "order", "order-19");
  ASSERT_TRUE(h->sink->Produce(first, "", 11).ok());
  ASSERT_TRUE(h->sink->Produce(second, "", 12).ok());
  ASSERT_TRUE(h->sink->Produce(third, "custom.orders", 13).ok());
  ASSERT_TRUE(h->sink->Flush(absl::Seconds(20)).ok());
  EXPECT_EQ(h->sink->InFlight(), 0);
  ExpectEachTicketOkOnce(h->reports, {11, 12, 13});

  std::vector<Record> routed = ReadRecords(cluster.bootstraps(), "outbox.event.order", 2);
  ASSERT_EQ(routed.size(), 2u);
  std::map<std::string, Record> by_key;
  for (Record& r : routed) by_key[r.key] = r;
  ASSERT_EQ(by_key.count("order-17"), 1u);
  ASSERT_EQ(by_key.count("order-18"), 1u);
  const Record& r1 = by_key["order-17"];
  ASSERT_EQ(r1.headers.size(), 4u);
  EXPECT_EQ(r1.headers[0], (std::pair<std::string, std::string>("id", "1")));
  EXPECT_EQ(r1.headers[1], (std::pair<std::string, std::string>("event_type", "Created")));
  EXPECT_EQ(r1.Header("trace_id"), "abc");
  EXPECT_EQ(r1.Header("tenant"), "t1");
  v1::OutboxEvent parsed;
  ASSERT_TRUE(parsed.ParseFromString(r1.value));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, first))
      << parsed.DebugString();
  EXPECT_EQ(by_key["order-18"].Header("id"), "2");

  std::vector<Record> overridden = ReadRecords(cluster.bootstraps(), "custom.orders", 1);
  ASSERT_EQ(overridden.size(), 1u);
  EXPECT_EQ(overridden[0].key, "order-19");
  ASSERT_TRUE(parsed.ParseFromString(overridden[0].value));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, third));
}

TEST(KafkaSinkTest, SameKeySamePartitionInOrder) {
  MockCluster cluster(3);
  cluster.CreateTopic("outbox.event.cart", 6);
  auto h = SinkHarness::Start(ConfigFor(cluster));
  ASSERT_NE(h, nullptr);
  std::vector<Ticket> tickets;
  for (int i = 1; i <= 40; ++i) {
    ASSERT_TRUE(
        h->sink->Produce(MakeEvent(absl::StrCat(i), "cart", absl::StrCat("cart-", i % 4)), "", i)
            .ok());
    tickets.push_back(i);
  }
  ASSERT_TRUE(h->sink->Flush(absl::Seconds(20)).ok());
  ExpectEachTicketOkOnce(h->reports, tickets);
  std::vector<Record> records = ReadRecords(cluster.bootstraps(), "outbox.event.cart", 40);
  ASSERT_EQ(records.size(), 40u);
  std::map<std::string, std::vector<int>> ids_by_key;
  std::map<std::string, int32_t> partition_of_key;
  for (const Record& r : records) {
    ids_by_key[r.key].push_back(std::stoi(r.Header("id")));
    auto [it, inserted] = partition_of_key.emplace(r.key, r.partition);
    EXPECT_EQ(it->second, r.partition) << r.key;
  }
  for (const auto& [key, ids] : ids_by_key) {
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << key;
    EXPECT_EQ(ids.size(), 10u) << key;
  }
}

TEST(KafkaSinkTest, InvalidTopicsGoToDeadLetterTopic) {
  MockCluster cluster(1);
  cluster.CreateTopic("outbox.dead-letter", 1);
  // An empty prefix lets the aggregate type alone name the topic.
  auto h = SinkHarness::Start(ConfigFor(cluster, [](SinkConfig& c) { c.topic_prefix = ""; }));
  ASSERT_NE(h, nullptr);
  const std::vector<std::string> bad = {"", ".", "..", std::string(250, 'x'), "a/b", "caf\xc3\xa9"};
  std::vector<Ticket> tickets;
  for (size_t i = 0; i < bad.size(); ++i) {
    ASSERT_TRUE(h->sink->Produce(MakeEvent(absl::StrCat(i + 1), bad[i], "k"), "", 100 + i).ok());
    tickets.push_back(100 + i);
  }
  ASSERT_TRUE(h->sink->Flush(absl::Seconds(20)).ok());
  ExpectEachTicketOkOnce(h->reports, tickets);

  std::vector<Record> records = ReadRecords(cluster.bootstraps(), "outbox.dead-letter", bad.size());
  ASSERT_EQ(records.size(), bad.size());
  for (const Record& r : records) {
    const size_t index = std::stoul(r.Header("id")) - 1;
    ASSERT_LT(index, bad.size());
    EXPECT_EQ(r.Header("outboxd.dead_letter.original_topic"), bad[index]);
    EXPECT_EQ(r.Header("outboxd.dead_letter.reason"),
              std::string(ValidateTopicName(bad[index]).message()));
    EXPECT_EQ(r.key, "k");
    v1::OutboxEvent parsed;
    ASSERT_TRUE(parsed.ParseFromString(r.value));
    EXPECT_EQ(parsed.aggregate_type(), bad[index]);
    EXPECT_EQ(parsed.payload(), "{}");
  }
}

TEST(KafkaSinkTest, InvalidOverrideGoesToDeadLetterTopic) {
  MockCluster cluster(1);
  cluster.CreateTopic("dlq", 1);
  auto h = SinkHarness::Start(
      ConfigFor(cluster, [](SinkConfig& c) { c.dead_letter_topic = "dlq"; }));
  ASSERT_NE(h, nullptr);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("1", "order", "k"), "bad topic", 1).ok());
  ASSERT_TRUE(h->sink->Flush(absl::Seconds(20)).ok());
  ExpectEachTicketOkOnce(h->reports, {1});
  std::vector<Record> records = ReadRecords(cluster.bootstraps(), "dlq", 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].Header("outboxd.dead_letter.original_topic"), "bad topic");
  EXPECT_THAT(records[0].Header("outboxd.dead_letter.reason"), HasSubstr("\"bad topic\""));
}

TEST(ValidateTopicNameTest, FollowsKafkaRules) {
  struct Case {
    std::string topic;
    bool ok;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"outbox.event.order", true, ""},
      {"A-Z_a-z.0-9", true, ""},
      {std::string(249, 'a'), true, ""},
      {"...", true, ""},
      {"", false, "is empty"},
      {".", false, "\".\" is reserved"},
      {"..", false, "\"..\" is reserved"},
      {std::string(250, 'a'), false, "is 250 characters long; Kafka allows at most 249"},
      {"a/b", false, "\"a/b\" has '/' at position 1"},
      {"a b", false, "\"a b\" has ' ' at position 1"},
      {"tab\t", false, "has '\\t' at position 3"},
      {"caf\xc3\xa9", false, "at position 3"},
      {"x:y", false, "':'"},
  };
  for (const Case& c : cases) {
    absl::Status st = ValidateTopicName(c.topic);
    EXPECT_EQ(st.ok(), c.ok) << c.topic << ": " << st;
    if (!c.ok) {
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(st.message()), HasSubstr(c.message_part)) << c.topic;
    }
  }
}

TEST(KafkaSinkTest, UnknownPropertyIsInvalidArgument) {
  auto sink = KafkaSink::Create(Config("127.0.0.1:1", [](SinkConfig& c) {
                                  c.kafka_properties = {{"no.such.property", "1"}};
                                }),
                                [](Ticket, const absl::Status&) {});
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(sink.status().message()), HasSubstr("no.such.property"));
}

TEST(KafkaSinkTest, BadPropertyValueIsInvalidArgumentWithoutTheValue) {
  auto sink = KafkaSink::Create(
      Config("127.0.0.1:1", [](SinkConfig& c) { c.kafka_properties = {{"acks", "s3cret-ish"}}; }),
      [](Ticket, const absl::Status&) {});
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(sink.status().message()), HasSubstr("acks"));
  EXPECT_THAT(std::string(sink.status().message()), ::testing::Not(HasSubstr("s3cret-ish")));
}

TEST(KafkaSinkTest, EmptyBrokersSaysHowToFixIt) {
  auto sink = KafkaSink::Create({}, [](Ticket, const absl::Status&) {});
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(sink.status().message()), HasSubstr("--brokers=HOST:PORT"));
  EXPECT_THAT(std::string(sink.status().message()), HasSubstr("OUTBOXD_BROKERS"));
}

TEST(KafkaSinkTest, InvalidDeadLetterTopicIsRejected) {
  auto sink = KafkaSink::Create(
      Config("127.0.0.1:1", [](SinkConfig& c) { c.dead_letter_topic = "dead letters"; }),
      [](Ticket, const absl::Status&) {});
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KafkaSinkTest, BrokersDownThenUpDeliversEverythingInOrder) {
  MockCluster cluster(3);
  cluster.CreateTopic("outbox.event.order", 4);
  auto h = SinkHarness::Start(ConfigFor(cluster));
  ASSERT_NE(h, nullptr);
  // One delivery first, so the producer has metadata and a producer id.
  ASSERT_TRUE(h->sink->Produce(MakeEvent("1", "order", "warm-up"), "", 1).ok());
  ASSERT_TRUE(h->WaitForReports(1));

  cluster.SetAllBrokers(false);
  std::vector<Ticket> tickets = {1};
  for (int i = 2; i <= 31; ++i) {
    ASSERT_TRUE(
        h->sink->Produce(MakeEvent(absl::StrCat(i), "order", absl::StrCat("o-", i % 5)), "", i)
            .ok());
    tickets.push_back(i);
  }
  // Nothing can be delivered while every broker is down; librdkafka reports
  // that once all its connections have failed.
  EXPECT_TRUE(h->PollUntil([&] { return !h->sink->Reachable(); }, absl::Seconds(15)));
  EXPECT_EQ(h->reports.size(), 1u);
  EXPECT_EQ(h->sink->InFlight(), 30);

  cluster.SetAllBrokers(true);
  ASSERT_TRUE(h->WaitForReports(31, absl::Seconds(30)));
  ExpectEachTicketOkOnce(h->reports, tickets);
  EXPECT_TRUE(h->sink->Reachable());

  std::vector<Record> records = ReadRecords(cluster.bootstraps(), "outbox.event.order", 31);
  ASSERT_EQ(records.size(), 31u);
  std::map<std::string, std::vector<int>> ids_by_key;
  for (const Record& r : records) ids_by_key[r.key].push_back(std::stoi(r.Header("id")));
  for (const auto& [key, ids] : ids_by_key) {
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << key;
    EXPECT_EQ(std::set<int>(ids.begin(), ids.end()).size(), ids.size()) << key << " duplicated";
  }
}

TEST(KafkaSinkTest, TimedOutRecordIsReportedAsError) {
  MockCluster cluster(1);
  cluster.CreateTopic("outbox.event.order", 1);
  cluster.SetAllBrokers(false);
  auto h = SinkHarness::Start(ConfigFor(
      cluster, [](SinkConfig& c) { c.kafka_properties = {{"message.timeout.ms", "1000"}}; }));
  ASSERT_NE(h, nullptr);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("1", "order", "k"), "", 7).ok());
  ASSERT_TRUE(h->WaitForReports(1, absl::Seconds(15)));
  ASSERT_EQ(h->reports.size(), 1u);
  EXPECT_EQ(h->reports[0].first, 7u);
  EXPECT_FALSE(h->reports[0].second.ok());
  EXPECT_THAT(std::string(h->reports[0].second.message()), HasSubstr("_MSG_TIMED_OUT"));
  EXPECT_EQ(h->sink->InFlight(), 0);
}

TEST(KafkaSinkTest, FullQueueIsResourceExhausted) {
  MockCluster cluster(1);
  cluster.SetAllBrokers(false);
  auto h = SinkHarness::Start(ConfigFor(cluster, [](SinkConfig& c) {
    c.kafka_properties = {{"queue.buffering.max.messages", "10"}};
  }));
  ASSERT_NE(h, nullptr);
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE(h->sink->Produce(MakeEvent(absl::StrCat(i), "order", "k"), "", i).ok()) << i;
  }
  absl::Status st = h->sink->Produce(MakeEvent("11", "order", "k"), "", 11);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_EQ(h->sink->InFlight(), 10);
  EXPECT_EQ(h->sink->Flush(absl::Milliseconds(100)).code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(KafkaSinkTest, WakeupFdTurnsReadableAfterDelivery) {
  MockCluster cluster(1);
  cluster.CreateTopic("outbox.event.order", 1);
  auto h = SinkHarness::Start(ConfigFor(cluster));
  ASSERT_NE(h, nullptr);
  ASSERT_GE(h->sink->wakeup_fd(), 0);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("1", "order", "k"), "", 5).ok());
  // Only what an event loop does: poll() the fd, then Poll(0).
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (h->reports.empty() && absl::Now() < deadline) {
    pollfd pfd{.fd = h->sink->wakeup_fd(), .events = POLLIN, .revents = 0};
    const int ready = ::poll(&pfd, 1, 100);
    if (ready > 0) h->sink->Poll(0);
  }
  ExpectEachTicketOkOnce(h->reports, {5});
  // Poll(0) drained the pipe: it is quiet until the next report.
  pollfd pfd{.fd = h->sink->wakeup_fd(), .events = POLLIN, .revents = 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
}

TEST(KafkaSinkTest, OversizedEventGoesToDeadLetterWithoutPayload) {
  MockCluster cluster(1);
  cluster.CreateTopic("outbox.event.order", 1);
  cluster.CreateTopic("outbox.dead-letter", 1);
  auto h = SinkHarness::Start(ConfigFor(cluster));
  ASSERT_NE(h, nullptr);
  v1::OutboxEvent big = MakeEvent("1", "order", "k", std::string(2 << 20, 'x'));
  ASSERT_TRUE(h->sink->Produce(big, "", 9).ok());
  ASSERT_TRUE(h->sink->Flush(absl::Seconds(20)).ok());
  ExpectEachTicketOkOnce(h->reports, {9});
  std::vector<Record> records = ReadRecords(cluster.bootstraps(), "outbox.dead-letter", 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_THAT(records[0].Header("outboxd.dead_letter.reason"),
              HasSubstr("exceeds message.max.bytes=1048588"));
  EXPECT_EQ(records[0].Header("outboxd.dead_letter.original_topic"), "outbox.event.order");
  v1::OutboxEvent parsed;
  ASSERT_TRUE(parsed.ParseFromString(records[0].value));
  EXPECT_EQ(parsed.id(), "1");
  EXPECT_TRUE(parsed.payload().empty());
}

TEST(KafkaSinkTest, RecordTheBrokerRejectsGoesToDeadLetter) {
  MockCluster cluster(1);
  cluster.CreateTopic("outbox.event.order", 1);
  cluster.CreateTopic("outbox.dead-letter", 1);
  auto h = SinkHarness::Start(ConfigFor(cluster));
  ASSERT_NE(h, nullptr);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("1", "order", "k"), "", 1).ok());
  ASSERT_TRUE(h->WaitForReports(1));
  rd_kafka_mock_push_request_errors(cluster.get(), kProduceApiKey, 1,
                                    RD_KAFKA_RESP_ERR_INVALID_RECORD);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("2", "order", "k"), "", 2).ok());
  ASSERT_TRUE(h->sink->Flush(absl::Seconds(20)).ok());
  ExpectEachTicketOkOnce(h->reports, {1, 2});
  std::vector<Record> records = ReadRecords(cluster.bootstraps(), "outbox.dead-letter", 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].Header("id"), "2");
  EXPECT_THAT(records[0].Header("outboxd.dead_letter.reason"), HasSubstr("INVALID_RECORD"));
  EXPECT_EQ(records[0].Header("outboxd.dead_letter.original_topic"), "outbox.event.order");
  v1::OutboxEvent parsed;
  ASSERT_TRUE(parsed.ParseFromString(records[0].value));
  EXPECT_EQ(parsed.payload(), "{}");
}

// Kafka refusing a record for good for other reasons than size (not
// authorized, the topic does not exist and will not be created): the
// dead-letter topic with the reason, never a rewind that sends it again.
TEST(KafkaSinkTest, TopicAuthorizationFailureGoesToDeadLetterWithTheReason) {
  MockCluster cluster(1);
  cluster.CreateTopic("outbox.event.order", 1);
  cluster.CreateTopic("outbox.dead-letter", 1);
  auto h = SinkHarness::Start(ConfigFor(cluster));
  ASSERT_NE(h, nullptr);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("1", "order", "k"), "", 1).ok());
  ASSERT_TRUE(h->WaitForReports(1));
  rd_kafka_mock_push_request_errors(cluster.get(), kProduceApiKey, 1,
                                    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("2", "order", "k"), "", 2).ok());
  ASSERT_TRUE(h->sink->Flush(absl::Seconds(20)).ok());
  ExpectEachTicketOkOnce(h->reports, {1, 2});
  EXPECT_EQ(h->sink->DeadLettered(), 1u);
  std::vector<Record> records = ReadRecords(cluster.bootstraps(), "outbox.dead-letter", 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].Header("id"), "2");
  EXPECT_THAT(records[0].Header("outboxd.dead_letter.reason"),
              HasSubstr("TOPIC_AUTHORIZATION_FAILED"));
}

TEST(KafkaSinkTest, MissingTopicThatIsNotCreatedGoesToDeadLetter) {
  MockCluster cluster(1);
  cluster.CreateTopic("outbox.dead-letter", 1);
  // As a broker with auto.create.topics.enable=false answers for it.
  rd_kafka_mock_topic_set_error(cluster.get(), "outbox.event.ghost",
                                RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  auto h = SinkHarness::Start(ConfigFor(cluster, [](SinkConfig& c) {
    c.kafka_properties = {{"topic.metadata.propagation.max.ms", "200"}};
  }));
  ASSERT_NE(h, nullptr);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("1", "ghost", "k"), "", 1).ok());
  ASSERT_TRUE(h->sink->Flush(absl::Seconds(20)).ok());
  ExpectEachTicketOkOnce(h->reports, {1});
  std::vector<Record> records = ReadRecords(cluster.bootstraps(), "outbox.dead-letter", 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].Header("outboxd.dead_letter.original_topic"), "outbox.event.ghost");
  EXPECT_THAT(records[0].Header("outboxd.dead_letter.reason"), HasSubstr("UNKNOWN_TOPIC"));
}

TEST(KafkaSinkTest, WithStopOnPoisonAnUnauthorizedTopicIsPoison) {
  MockCluster cluster(1);
  cluster.CreateTopic("outbox.event.order", 1);
  auto h = SinkHarness::Start(ConfigFor(cluster, [](SinkConfig& c) { c.stop_on_poison = true; }));
  ASSERT_NE(h, nullptr);
  rd_kafka_mock_push_request_errors(cluster.get(), kProduceApiKey, 1,
                                    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("1", "order", "k"), "", 1).ok());
  ASSERT_TRUE(h->WaitForReports(1));
  EXPECT_TRUE(IsPoison(h->reports[0].second)) << h->reports[0].second;
  EXPECT_THAT(std::string(h->reports[0].second.message()), HasSubstr("poison event"));
}

// When the dead-letter topic refuses the record too, nothing can park it:
// a fatal error (the relay stops), never a rewind into the same refusal.
TEST(KafkaSinkTest, DeadLetterTopicRefusingTooIsFatal) {
  MockCluster cluster(1);
  cluster.CreateTopic("outbox.event.order", 1);
  cluster.CreateTopic("outbox.dead-letter", 1);
  auto h = SinkHarness::Start(ConfigFor(cluster));
  ASSERT_NE(h, nullptr);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("1", "order", "k"), "", 1).ok());
  ASSERT_TRUE(h->WaitForReports(1));
  rd_kafka_mock_push_request_errors(cluster.get(), kProduceApiKey, 2,
                                    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("2", "order", "k"), "", 2).ok());
  ASSERT_TRUE(h->WaitForReports(2));
  EXPECT_EQ(SinkFailureOf(h->reports[1].second), SinkFailure::kFatal) << h->reports[1].second;
  EXPECT_THAT(std::string(h->reports[1].second.message()), HasSubstr("dead-letter topic"));
}

TEST(KafkaSinkTest, DestroyingWithRecordsInFlightReportsNothing) {
  MockCluster cluster(1);
  cluster.SetAllBrokers(false);
  auto h = SinkHarness::Start(ConfigFor(cluster));
  ASSERT_NE(h, nullptr);
  ASSERT_TRUE(h->sink->Produce(MakeEvent("1", "order", "k"), "", 1).ok());
  h->sink.reset();
  EXPECT_TRUE(h->reports.empty());
}

}  // namespace
}  // namespace outboxd::sink
