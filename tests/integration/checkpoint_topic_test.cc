// The exactly-once checkpoint topic on kafka-mock: recovery reads only its
// tail, so start-up does not slow down as the topic's history grows; a broker
// without topic admin (kafka-mock has neither CreateTopics nor
// DescribeConfigs) gets a warning with the fix. Creating the topic compacted
// and refusing one that is not are for a real Kafka (tests/kafka/).
#include <librdkafka/rdkafka.h>

#include <array>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "outboxd/v1/checkpoint.pb.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

struct RdKafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};

// Writes checkpoint records (non-transactional, which read_committed readers
// see too): `count` for `slot` with end LSNs 1..count, then `others` for
// another slot.
absl::Status WriteCheckpoints(const std::string& brokers, int count, const std::string& slot,
                              int others) {
  std::array<char, 512> err{};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : {std::pair<std::string, std::string>{"bootstrap.servers", brokers},
                             {"linger.ms", "50"},
                             {"batch.num.messages", "10000"},
                             {"queue.buffering.max.messages", "200000"},
                             {"log_level", "3"}}) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err.data(), err.size()) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InternalError(err.data());
    }
  }
  std::unique_ptr<rd_kafka_t, RdKafkaDeleter> rk(
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, err.data(), err.size()));
  if (rk == nullptr) return absl::InternalError(err.data());
  for (int i = 1; i <= count + others; ++i) {
    const std::string key = i <= count ? slot : "some-other-slot";
    v1::Checkpoint c;
    c.set_slot(key);
    c.set_end_lsn(static_cast<uint64_t>(i));
    c.set_end_lsn_text(Lsn(static_cast<uint64_t>(i)).ToString());
    const std::string value = c.SerializeAsString();
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(rk.get(), RD_KAFKA_V_TOPIC("outboxd.checkpoints"),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_KEY(key.data(), key.size()),
                                  RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                  RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk.get(), 10);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::InternalError(rd_kafka_err2str(e));
  }
  if (rd_kafka_flush(rk.get(), 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::DeadlineExceededError("checkpoint records not delivered in 60 s");
  }
  return absl::OkStatus();
}

class CheckpointTopicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RelayEnv::ExternalKafkaMode()) GTEST_SKIP() << "kafka-mock only (topics kept between tests)";
    ASSERT_OK(env_.Start());
    ASSERT_OK(env_.kafka().CreateTopic("outbox.event.order", 4));
  }
  RelayEnv env_;
};

// kafka-mock has neither CreateTopics nor DescribeConfigs: run says what it
// could not do and how to do it by hand, without delay, and relays.
TEST_F(CheckpointTopicTest, BrokerWithoutTopicAdminGetsAWarningWithTheFixNotAFailure) {
  const absl::Time started = absl::Now();
  auto relay = env_.StartRelay({"--delivery=exactly-once", "--admin_listen=", "--metrics_listen="});
  ASSERT_TRUE(relay.ok()) << relay.status();
  ASSERT_TRUE(RelayEnv::WaitStreaming(**relay)) << (*relay)->Stderr();
  EXPECT_LT(absl::Now() - started, absl::Seconds(5)) << "waited for an admin answer";
  EXPECT_THAT((*relay)->Stderr(), ::testing::HasSubstr(
                                      "--create --topic outboxd.checkpoints --partitions 1 "
                                      "--config cleanup.policy=compact"));
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Placed", "{}"));
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << (*relay)->Stderr();
  EXPECT_EQ((*relay)->Terminate(), 0) << (*relay)->Stderr();
  // A second start finds the (auto-created) topic and says it cannot check its policy.
  relay = env_.StartRelay({"--delivery=exactly-once", "--admin_listen=", "--metrics_listen="});
  ASSERT_TRUE(relay.ok()) << relay.status();
  ASSERT_TRUE(RelayEnv::WaitStreaming(**relay)) << (*relay)->Stderr();
  EXPECT_THAT((*relay)->Stderr(),
              ::testing::HasSubstr("cannot check that the checkpoint topic outboxd.checkpoints is "
                                   "compacted"));
  EXPECT_EQ((*relay)->Terminate(), 0) << (*relay)->Stderr();
}

TEST_F(CheckpointTopicTest, StartUpReadsOnlyTheTailOfALongHistory) {
  ASSERT_OK(env_.kafka().CreateTopic("outboxd.checkpoints", 1));
  // 100,000 earlier checkpoints of this slot, then 5,000 of another slot
  // behind them, so the reader has to step back past the other slot's.
  ASSERT_OK(WriteCheckpoints(env_.Brokers(), 100000, "outboxd", 5000));
  const absl::Time started = absl::Now();
  auto relay = env_.StartRelay({"--delivery=exactly-once", "--admin_listen=", "--metrics_listen="});
  ASSERT_TRUE(relay.ok()) << relay.status();
  const std::string expected = absl::StrCat(
      "checkpoint for slot outboxd in outboxd.checkpoints: ", Lsn(100000).ToString());
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains((*relay)->Stderr(), expected); },
                      absl::Seconds(60), absl::Milliseconds(10)))
      << (*relay)->Stderr();
  const absl::Duration took = absl::Now() - started;
  std::cerr << "start-up to the recovered checkpoint with 105,000 checkpoint records: "
            << absl::FormatDuration(took) << "\n";
  EXPECT_LT(took, absl::Seconds(2)) << (*relay)->Stderr();
  // And it relays from there.
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Placed", "{}"));
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << (*relay)->Stderr();
  EXPECT_EQ((*relay)->Terminate(), 0) << (*relay)->Stderr();
}

}  // namespace
}  // namespace outboxd::test
