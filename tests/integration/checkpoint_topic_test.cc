// The exactly-once checkpoint topic on kafka-mock: recovery reads only its
// tail, so start-up does not slow down as the topic's history grows; a
// checkpoint written by another PostgreSQL system is refused unless accepted
// with a flag; a broker
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
#include "tests/support/pg_server.h"

namespace outboxd::test {
namespace {

struct RdKafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};

// Writes checkpoint records (non-transactional, which read_committed readers
// see too): `count` for `slot` with end LSNs 1..count, then `others` for
// another slot.
absl::Status WriteCheckpoints(const std::string& brokers, const std::string& topic, int count,
                              const std::string& slot, int others) {
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
    while ((e = rd_kafka_producev(rk.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
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
    ASSERT_OK(env_.Start());
    ASSERT_OK(env_.kafka().CreateTopic("outbox.event.order", 4));
  }
  RelayEnv env_;
};

// kafka-mock only: on a real broker run creates the topic compacted
// (tests/kafka/auth_test.cc), and a test's relay is the only one on its PostgreSQL.
class CheckpointTopicMockTest : public CheckpointTopicTest {
 protected:
  void SetUp() override {
    if (RelayEnv::ExternalKafkaMode()) GTEST_SKIP() << "kafka-mock only";
    CheckpointTopicTest::SetUp();
  }
};

// kafka-mock has neither CreateTopics nor DescribeConfigs: run says what it
// could not do and how to do it by hand, without delay, and relays.
TEST_F(CheckpointTopicMockTest, BrokerWithoutTopicAdminGetsAWarningWithTheFixNotAFailure) {
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

// On kafka-mock and on real Kafka (ctest kafka.CheckpointTopicTest...).
TEST_F(CheckpointTopicTest, StartUpReadsOnlyTheTailOfALongHistory) {
  const std::string topic = env_.Topic("outboxd.checkpoints");
  if (RelayEnv::ExternalKafkaMode()) {
    // A relay before: run creates the topic compacted, and the broker's
    // transaction coordinator is up, as on any cluster with a history.
    auto first = env_.StartRelay({"--delivery=exactly-once", "--admin_listen=", "--metrics_listen="});
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_TRUE(RelayEnv::WaitStreaming(**first)) << (*first)->Stderr();
    ASSERT_EQ((*first)->Terminate(), 0) << (*first)->Stderr();
  } else {
    ASSERT_OK(env_.kafka().CreateTopic("outboxd.checkpoints", 1));
  }
  // 100,000 earlier checkpoints of this slot, then 5,000 of another slot
  // behind them, so the reader has to step back past the other slot's.
  ASSERT_OK(WriteCheckpoints(env_.Brokers(), topic, 100000, "outboxd", 5000));
  const absl::Time started = absl::Now();
  auto relay = env_.StartRelay({"--delivery=exactly-once", "--admin_listen=", "--metrics_listen="});
  ASSERT_TRUE(relay.ok()) << relay.status();
  const std::string expected =
      absl::StrCat("checkpoint for slot outboxd in ", topic, ": ", Lsn(100000).ToString());
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains((*relay)->Stderr(), expected); },
                      absl::Seconds(60), absl::Milliseconds(10)))
      << (*relay)->Stderr();
  const absl::Duration took = absl::Now() - started;
  std::cerr << "start-up to the recovered checkpoint with 105,000 checkpoint records: "
            << absl::FormatDuration(took) << "\n";
  EXPECT_LT(took, absl::Seconds(2)) << (*relay)->Stderr();
  // Not from the beginning: the reader says how many records it read, and it
  // is the tail (the other slot's 5,000 and a window of this slot's), not
  // the 105,000.
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains((*relay)->Stderr(), "checkpoint read: "); },
                      absl::Seconds(10), absl::Milliseconds(10)))
      << (*relay)->Stderr();
  const std::string log = (*relay)->Stderr();
  const size_t at = log.find("checkpoint read: ") + std::string("checkpoint read: ").size();
  const int64_t read = std::stoll(log.substr(at));
  std::cerr << "checkpoint records read at start-up: " << read << " of 105000\n";
  EXPECT_LT(read, 25000) << log;
  EXPECT_THAT(log, ::testing::HasSubstr(absl::StrCat("of 105000 records in ", topic)));
  // The records carry no system identifier (written by an older outboxd):
  // accepted, and said so.
  EXPECT_THAT(log, ::testing::HasSubstr("records no PostgreSQL system identifier"));
  // And it relays from there.
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Placed", "{}"));
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << (*relay)->Stderr();
  EXPECT_EQ((*relay)->Terminate(), 0) << (*relay)->Stderr();
}

// A checkpoint names the PostgreSQL system (IDENTIFY_SYSTEM) whose WAL
// positions it holds. A relay pointed at another system with the same slot
// name (a different cluster, a restored backup) must not skip or repeat by
// those positions: it exits 1 naming both identifiers and the flag; with the
// flag it goes on, and records its own system from then on.
TEST_F(CheckpointTopicMockTest, CheckpointOfAnotherPostgresSystemIsRefusedUnlessAccepted) {
  const std::vector<std::string> eo = {"--delivery=exactly-once", "--admin_listen=",
                                       "--metrics_listen="};
  auto relay = env_.StartRelay(eo);
  ASSERT_TRUE(relay.ok()) << relay.status();
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Placed", "{}"));
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << (*relay)->Stderr();
  EXPECT_EQ((*relay)->Terminate(), 0) << (*relay)->Stderr();

  auto other = PgServer::Start();
  ASSERT_TRUE(other.ok()) << other.status();
  auto a_id = env_.pg().QueryValue("SELECT system_identifier FROM pg_control_system()");
  auto b_id = (*other)->QueryValue("SELECT system_identifier FROM pg_control_system()");
  ASSERT_TRUE(a_id.ok() && b_id.ok());
  ASSERT_NE(*a_id, *b_id);
  auto init = env_.RunOutboxd({"init", "--postgres=" + (*other)->ConnInfo()});
  ASSERT_TRUE(init.ok() && init->first == 0) << (init.ok() ? init->second : "");
  const std::vector<std::string> run_b = {"run", "--postgres=" + (*other)->ConnInfo(),
                                          "--brokers=" + env_.Brokers(), "--linger_ms=1",
                                          "--delivery=exactly-once"};
  auto refused = env_.RunOutboxd(run_b, {}, absl::Seconds(15));
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->first, 1) << refused->second;
  EXPECT_THAT(refused->second, ::testing::HasSubstr(*a_id));
  EXPECT_THAT(refused->second, ::testing::HasSubstr(*b_id));
  EXPECT_THAT(refused->second, ::testing::HasSubstr("--accept_checkpoint_system_id_change"));
  EXPECT_THAT(refused->second, ::testing::Not(::testing::HasSubstr("streaming slot")));

  // Accepted: it streams, from B's slot (not A's positions), and its
  // checkpoints record B, so the next start needs no flag.
  std::vector<std::string> accepted_args = {BinaryPath("outboxd")};
  accepted_args.insert(accepted_args.end(), run_b.begin(), run_b.end());
  accepted_args.push_back("--accept_checkpoint_system_id_change");
  accepted_args.push_back("--admin_listen=");
  accepted_args.push_back("--metrics_listen=");
  auto accepted = Subprocess::Start(accepted_args);
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  ASSERT_TRUE(RelayEnv::WaitStreaming(**accepted)) << (*accepted)->Stderr();
  // Its transactional.id is B's own: it does not fence relays of the slot on A.
  EXPECT_THAT((*accepted)->Stderr(),
              ::testing::HasSubstr(absl::StrCat("transactional.id outboxd-", *b_id, "-postgres-outboxd")));
  ASSERT_OK((*other)->Exec(
      "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "VALUES ('order', 'b-1', 'Placed', '{}')"));
  EXPECT_EQ(env_.ReadEvents("outbox.event.order", 2).size(), 2u);
  EXPECT_EQ((*accepted)->Terminate(), 0) << (*accepted)->Stderr();
  // (And a transactional.id given with --kafka_property is the one used.)
  auto again = Subprocess::Start({BinaryPath("outboxd"), "run", "--postgres=" + (*other)->ConnInfo(),
                                  "--brokers=" + env_.Brokers(), "--delivery=exactly-once",
                                  "--kafka_property=transactional.id=shop-relay",
                                  "--admin_listen=", "--metrics_listen="});
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE(RelayEnv::WaitStreaming(**again)) << (*again)->Stderr();
  EXPECT_THAT((*again)->Stderr(), ::testing::HasSubstr("transactional.id shop-relay"));
  EXPECT_THAT((*again)->Stderr(), ::testing::Not(::testing::HasSubstr("written for PostgreSQL system")));
  EXPECT_EQ((*again)->Terminate(), 0) << (*again)->Stderr();
}

}  // namespace
}  // namespace outboxd::test
