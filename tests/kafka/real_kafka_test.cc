// What only a real Kafka can show, under the fault suite's workload (tests/faults/workload.h) and
// its checks (no committed event missing, nothing rolled back present, per-aggregate order; in
// exactly-once mode zero duplicates for a read_committed reader):
//   * zombie fencing: a relay frozen with SIGSTOP while a second one takes the slot and produces
//     must, resumed, commit nothing;
//   * on a 3-node cluster (RF 3, min.insync.replicas 2, unclean election off): kill -9 of the
//     leader of the busiest partition, then of a second broker (outboxd holds and confirms
//     nothing it has not had acknowledged), then both back; a rolling restart of all three.
// Runs only against a kafka-cluster.sh cluster (OUTBOXD_TEST_KAFKA_CLUSTER), from ctest label
// kafka (tests/kafka/CMakeLists.txt); the node-killing tests need 3 nodes.
//
// Each scenario prints one line `kafka: scenario=<name> mode=<mode> ... duplicates=<n> ...`.
// Sleeps here only pace the workload or place a fault; waits on the system are WaitFor.
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/faults/workload.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

#define EXPECT_OK(expr)                                      \
  do {                                                       \
    const absl::Status _st = (expr);                         \
    EXPECT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (0)

constexpr int kPartitions = 16;

struct Mode {
  std::string name;
  bool exactly_once;
};

// The partition of `topic` with the highest high watermark (the one with the most records).
absl::StatusOr<int> BusiestPartition(const std::string& brokers, const std::string& topic) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr)) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(errstr);
  }
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(errstr);
  }
  int best = -1;
  int64_t best_high = -1;
  for (int p = 0; p < kPartitions; ++p) {
    int64_t low = 0, high = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 5000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        high > best_high) {
      best = p;
      best_high = high;
    }
  }
  rd_kafka_destroy(rk);
  if (best < 0) return absl::UnavailableError("no partition answered a ListOffsets request");
  return best;
}

class RealKafkaTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RelayEnv::ExternalKafkaMode())
        << "runs against a kafka-cluster.sh cluster: set OUTBOXD_TEST_KAFKA_CLUSTER (ctest -L kafka)";
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = absl::StrCat("kafka.", absl::ToUnixMillis(absl::Now()), "-", getpid(), ".",
                           absl::StrReplaceAll(info->name(), {{"/", "-"}}));
    topic_prefix_ = prefix_ + ".event.";
    workload_topic_ = topic_prefix_ + std::string(Workload::kAggregateType);
    ASSERT_OK(env_.Start());
    ASSERT_NE(env_.external(), nullptr);
    // Every node up and answering before the test (an earlier one may have failed mid-way).
    ASSERT_OK(env_.external()->Node("heal").status());
    ASSERT_OK(env_.kafka().CreateTopic(workload_topic_, kPartitions));
    ASSERT_OK(env_.kafka().CreateTopic(prefix_ + ".dead-letter", 1));
    ASSERT_OK(env_.external()->CreateTopicWithConfig(prefix_ + ".checkpoints", 1,
                                                    {{"cleanup.policy", "compact"}}));
    workload_ = std::make_unique<Workload>(env_.pg().ConnInfo(), WorkloadOptions{.writers = 4, .seed = 7});
    ASSERT_OK(workload_->Setup());
  }

  void TearDown() override {
    if (workload_) workload_->Stop();
    if (env_.external() != nullptr) (void)env_.external()->Node("heal");
  }

  std::unique_ptr<Subprocess> StartRelay(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--shutdown_timeout=2s", "--max_backoff=1s",
                                     "--topic_prefix=" + topic_prefix_,
                                     "--dead_letter_topic=" + prefix_ + ".dead-letter",
                                     "--checkpoint_topic=" + prefix_ + ".checkpoints"};
    if (GetParam().exactly_once) args.push_back("--delivery=exactly-once");
    args.insert(args.end(), extra.begin(), extra.end());
    auto relay = env_.StartRelay(std::move(args));
    EXPECT_TRUE(relay.ok()) << relay.status();
    return relay.ok() ? std::move(*relay) : nullptr;
  }

  void Number(const std::string& name, const std::string& value) { numbers_.emplace_back(name, value); }
  void Number(const std::string& name, absl::Duration d) {
    Number(name, absl::StrCat(absl::ToInt64Milliseconds(d), "ms"));
  }

  int NodeCount() {
    std::ifstream in(env_.external()->cluster_dir() + "/nodes");
    int n = 0;
    in >> n;
    return n;
  }

  // Stops the workload, waits for the relay to confirm everything, stops it (exit 0), reads the
  // topic back and checks it; in exactly-once mode duplicates must be zero.
  void Finish(Subprocess& relay) {
    workload_->Stop();
    EXPECT_OK(workload_->ResolveUnknown(env_.pg()));
    const Lsn end = env_.CurrentWalLsn();
    EXPECT_TRUE(env_.WaitConfirmed(end, absl::Seconds(120)))
        << "slot confirmed " << env_.ConfirmedLsn().ToString() << ", WAL at " << end.ToString() << "\n"
        << relay.Stderr();
    EXPECT_EQ(relay.Terminate(), 0) << relay.Stderr();
    auto records = ReadWholeTopic(env_.Brokers(), workload_topic_);
    ASSERT_TRUE(records.ok()) << records.status();
    const CheckResult result = Check(workload_->Outcomes(), *records);
    std::string line = absl::StrCat("kafka: scenario=", scenario_, " mode=", GetParam().name,
                                    " events=", result.events, " records=", result.records,
                                    " duplicates=", result.duplicates,
                                    " lost=", result.missing.size());
    for (const auto& [k, v] : numbers_) absl::StrAppend(&line, " ", k, "=", v);
    std::cout << line << std::endl;
    RecordProperty("duplicates", static_cast<int>(result.duplicates));
    for (const auto& [k, v] : numbers_) RecordProperty(k, v);
    EXPECT_TRUE(result.Ok()) << result.Describe();
    EXPECT_GT(result.committed, 0);
    if (GetParam().exactly_once) {
      EXPECT_EQ(result.duplicates, 0) << "exactly-once, read_committed\n" << result.Describe();
    }
  }

  RelayEnv env_;
  std::string prefix_, topic_prefix_, workload_topic_, scenario_;
  std::unique_ptr<Workload> workload_;
  std::vector<std::pair<std::string, std::string>> numbers_;
};

using ExactlyOnceRealKafkaTest = RealKafkaTest;

// A relay frozen (SIGSTOP) with a Kafka transaction open loses its replication connection (as
// wal_sender_timeout would end it) and a second relay takes the slot: creating its transactional
// producer (same transactional.id) fences the first and aborts its open transaction. Resumed,
// the first must commit nothing (a read_committed reader sees no duplicate) and exit or step
// down to a hot standby.
TEST_P(ExactlyOnceRealKafkaTest, FrozenRelayIsFencedAndCommitsNothing) {
  scenario_ = "zombie_fenced";
  // A long batch age keeps a transaction with records open most of the time.
  auto zombie = StartRelay({"--transaction_max_age=1s"});
  ASSERT_TRUE(zombie && RelayEnv::WaitStreaming(*zombie)) << (zombie ? zombie->Stderr() : "");
  workload_->Start();
  absl::SleepFor(absl::Milliseconds(1500));  // under load, a transaction open
  zombie->Signal(SIGSTOP);
  auto killed = env_.pg().QueryValue(
      "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots "
      "WHERE slot_name = 'outboxd' AND active_pid IS NOT NULL");
  ASSERT_TRUE(killed.ok()) << killed.status();
  ASSERT_EQ(*killed, "1");
  ASSERT_TRUE(WaitFor([&] {
    return env_.pg().QueryValue("SELECT active FROM pg_replication_slots WHERE slot_name = 'outboxd'")
               .value_or("") == "f";
  }, absl::Seconds(20)));

  auto successor = StartRelay({"--transaction_max_age=1s"});
  ASSERT_TRUE(successor && RelayEnv::WaitStreaming(*successor)) << (successor ? successor->Stderr() : "");
  // The successor delivers past the point where the zombie froze.
  const Lsn after_takeover = env_.CurrentWalLsn();
  ASSERT_TRUE(env_.WaitConfirmed(after_takeover, absl::Seconds(30))) << successor->Stderr();

  zombie->Signal(SIGCONT);
  const absl::Time resumed = absl::Now();
  // It finds its producer fenced and its connection gone: it exits, or waits as a hot standby
  // (the slot is held), and commits nothing either way.
  const bool settled = WaitFor(
      [&] {
        return !zombie->Running() || absl::StrContains(zombie->Stderr(), "hot standby");
      },
      absl::Seconds(60), absl::Milliseconds(50));
  EXPECT_TRUE(settled) << "the resumed relay neither exited nor stepped down:\n" << zombie->Stderr();
  Number("zombie_settled", absl::Now() - resumed);
  Number("zombie_state", zombie->Running() ? "hot_standby" : "exited");
  absl::SleepFor(absl::Seconds(2));  // load through the successor, the zombie resumed
  EXPECT_EQ(CountOf(successor->Stderr(), "streaming slot"), 1)
      << "the successor lost the slot or rewound:\n" << successor->Stderr() << "\nthe zombie:\n"
      << zombie->Stderr();
  if (zombie->Running()) {
    // Stopped before the successor is, so that it cannot (rightly) take the slot over then.
    EXPECT_EQ(CountOf(zombie->Stderr(), "streaming slot"), 1) << "the zombie took the slot back";
    EXPECT_EQ(zombie->Terminate(), 0) << zombie->Stderr();
  }
  Number("zombie_fenced_logged", absl::StrContains(zombie->Stderr(), "_FENCED") ? "yes" : "no");
  Finish(*successor);
}

INSTANTIATE_TEST_SUITE_P(Kafka, ExactlyOnceRealKafkaTest,
                         ::testing::Values(Mode{"exactly_once", true}),
                         [](const auto& info) { return info.param.name; });

using ClusterTest = RealKafkaTest;

// kill -9 of the leader of the busiest partition under load; then of a second broker, which
// leaves one of three (below min.insync.replicas, and without a controller quorum: every node is
// a voter): outboxd must hold, confirming nothing committed after that kill, and carry on when
// the broker returns.
TEST_P(ClusterTest, LeaderKilledThenSecondBrokerThenBothBack) {
  scenario_ = "leader_killed";
  ASSERT_GE(NodeCount(), 3) << "needs the 3-node cluster";
  auto relay = StartRelay();
  ASSERT_TRUE(relay && RelayEnv::WaitStreaming(*relay)) << (relay ? relay->Stderr() : "");
  workload_->Start();
  absl::SleepFor(absl::Milliseconds(1500));
  auto busiest = BusiestPartition(env_.Brokers(), workload_topic_);
  ASSERT_TRUE(busiest.ok()) << busiest.status();
  auto leader_text = env_.external()->Node(absl::StrCat("leader ", workload_topic_, " ", *busiest));
  ASSERT_TRUE(leader_text.ok()) << leader_text.status();
  int leader = 0;
  ASSERT_TRUE(absl::SimpleAtoi(*leader_text, &leader)) << *leader_text;

  const Lsn at_kill = env_.CurrentWalLsn();
  const absl::Time killed_at = absl::Now();
  ASSERT_OK(env_.external()->Node(absl::StrCat("kill ", leader)).status());
  // Failover as outboxd sees it: everything committed before the kill acknowledged by Kafka
  // (new leaders elected, the dead broker out of every ISR) and confirmed to PostgreSQL.
  ASSERT_TRUE(env_.WaitConfirmed(at_kill, absl::Seconds(60))) << relay->Stderr();
  const absl::Duration failover = absl::Now() - killed_at;
  Number("killed_leader", absl::StrCat(leader, "(p", *busiest, ")"));
  Number("failover", failover);
  EXPECT_LT(failover, absl::Seconds(30));

  const int second = leader % 3 + 1;
  ASSERT_OK(env_.external()->Node(absl::StrCat("kill ", second)).status());
  const absl::Time hold_start = absl::Now();
  const Lsn outage_start = env_.CurrentWalLsn();
  std::vector<Lsn> samples;
  while (absl::Now() - hold_start < absl::Seconds(5)) {
    samples.push_back(env_.ConfirmedLsn());
    absl::SleepFor(absl::Milliseconds(100));  // the sampling period
  }
  EXPECT_TRUE(relay->Running()) << relay->Stderr();
  ASSERT_OK(env_.external()->Node(absl::StrCat("start-node ", second)).status());
  const absl::Time back_at = absl::Now();
  const Lsn at_return = env_.CurrentWalLsn();
  ASSERT_TRUE(env_.WaitConfirmed(at_return, absl::Seconds(90))) << relay->Stderr();
  Number("recovered_after_return", absl::Now() - back_at);
  ASSERT_OK(env_.external()->Node(absl::StrCat("start-node ", leader)).status());
  absl::SleepFor(absl::Seconds(1));  // load with all three back
  Finish(*relay);

  // Nothing committed after the second kill was confirmed while one broker of three was up.
  auto records = ReadWholeTopic(env_.Brokers(), workload_topic_);
  ASSERT_TRUE(records.ok());
  uint64_t first_after = UINT64_MAX;
  for (const Delivery& d : Check(workload_->Outcomes(), *records).first_deliveries) {
    if (d.commit_lsn > outage_start.value()) first_after = std::min(first_after, d.commit_lsn);
  }
  ASSERT_NE(first_after, UINT64_MAX) << "nothing committed during the hold: the check would be empty";
  for (const Lsn& s : samples) {
    EXPECT_LT(s.value(), first_after) << "confirmed_flush_lsn " << s.ToString()
                                      << " passed an event committed at " << Lsn(first_after).ToString()
                                      << " while 2 of 3 brokers were down";
  }
}

// Every broker restarted in turn (SIGTERM: controlled shutdown moves its leaders away) under load.
TEST_P(ClusterTest, RollingRestartOfAllThree) {
  scenario_ = "rolling_restart";
  ASSERT_GE(NodeCount(), 3) << "needs the 3-node cluster";
  auto relay = StartRelay();
  ASSERT_TRUE(relay && RelayEnv::WaitStreaming(*relay)) << (relay ? relay->Stderr() : "");
  workload_->Start();
  for (int node = 1; node <= 3; ++node) {
    absl::SleepFor(absl::Milliseconds(1000));
    const absl::Time t0 = absl::Now();
    auto restarted = env_.external()->Node(absl::StrCat("restart ", node));
    ASSERT_TRUE(restarted.ok()) << restarted.status();
    Number(absl::StrCat("restart_", node), absl::Now() - t0);
  }
  absl::SleepFor(absl::Seconds(1));
  Finish(*relay);
}

INSTANTIATE_TEST_SUITE_P(Kafka, ClusterTest,
                         ::testing::Values(Mode{"at_least_once", false}, Mode{"exactly_once", true}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace outboxd::test
