// ExternalKafka: a Kafka the test process did not start (a real broker, usually one that
// tests/kafka/kafka-cluster.sh started for ctest), as a KafkaControl.
//
//   absl::StatusOr<std::unique_ptr<ExternalKafka>> kafka = ExternalKafka::FromEnv();
//   if (!kafka.ok()) ...;                  // OUTBOXD_TEST_KAFKA_BROKERS is unset or empty
//
// Environment:
//   OUTBOXD_TEST_KAFKA_CLUSTER        a kafka-cluster.sh directory: bootstrap.servers from its
//                                     `bootstrap` file, and Node() controls single nodes through
//                                     its `ctl` (kill, start-node, pause, leader ...); setting
//                                     it (or the next) is what selects external mode (RelayEnv
//                                     then starts no kafka-mock)
//   OUTBOXD_TEST_KAFKA_BROKERS        bootstrap.servers of any other Kafka (wins over the file)
//   OUTBOXD_TEST_KAFKA_DOWN_CMD       `sh -c` command that makes every broker unreachable
//   OUTBOXD_TEST_KAFKA_UP_CMD         ... and reachable again (e.g. `docker compose pause kafka`
//                                     / `unpause kafka`, `$DIR/ctl pause all` / `resume all`);
//                                     AllDown/AllUp fail if unset: a cluster shared by tests
//                                     running at once must not be taken down by one of them
//   OUTBOXD_TEST_KAFKA_CREATE_TOPIC_CMD
//                                     optional: `sh -c` command run with OUTBOXD_TEST_TOPIC and
//                                     OUTBOXD_TEST_PARTITIONS set, instead of the Admin API, for a
//                                     cluster without CreateTopics (kafka-mock)
//
// A real broker keeps its topics between tests: callers use names unique to the test.
//
// Used from one test thread; not thread-safe.
#ifndef OUTBOXD_TESTS_SUPPORT_EXTERNAL_KAFKA_H_
#define OUTBOXD_TESTS_SUPPORT_EXTERNAL_KAFKA_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tests/support/kafka_control.h"

namespace outboxd::test {

class ExternalKafka : public KafkaControl {
 public:
  static constexpr char kBrokersEnv[] = "OUTBOXD_TEST_KAFKA_BROKERS";
  static constexpr char kClusterEnv[] = "OUTBOXD_TEST_KAFKA_CLUSTER";

  // True when OUTBOXD_TEST_KAFKA_BROKERS or OUTBOXD_TEST_KAFKA_CLUSTER is set (and not empty).
  static bool Configured();
  // From the environment above; FailedPrecondition when neither is set.
  static absl::StatusOr<std::unique_ptr<ExternalKafka>> FromEnv();

  ExternalKafka(std::string bootstrap, std::string down_cmd, std::string up_cmd,
                std::string create_topic_cmd, std::string cluster_dir = "")
      : bootstrap_(std::move(bootstrap)),
        down_cmd_(std::move(down_cmd)),
        up_cmd_(std::move(up_cmd)),
        create_topic_cmd_(std::move(create_topic_cmd)),
        cluster_dir_(std::move(cluster_dir)) {}

  const std::string& bootstrap() const override { return bootstrap_; }
  // Admin API CreateTopics (replication factor min(brokers, 3)), "already exists" is success;
  // then waits until the topic is in the cluster's metadata.
  absl::Status CreateTopic(absl::string_view name, int partitions) override;
  absl::Status AllDown() override;
  absl::Status AllUp() override;
  absl::Status Command(absl::string_view line) override;
  bool HasMockControl() const override { return false; }

  // Topic-level configs (cleanup.policy=compact, ...) at creation; "already exists" is success.
  absl::Status CreateTopicWithConfig(absl::string_view name, int partitions,
                                     std::vector<std::pair<std::string, std::string>> configs);
  // A kafka-cluster.sh verb on this cluster (OUTBOXD_TEST_KAFKA_CLUSTER), e.g. Node("kill 2"),
  // Node("start-node 2"), Node("leader my-topic 0"); returns its stdout (trimmed).
  // FailedPrecondition without a cluster directory.
  absl::StatusOr<std::string> Node(absl::string_view verb_and_args);
  const std::string& cluster_dir() const { return cluster_dir_; }

 private:
  const std::string bootstrap_;
  const std::string down_cmd_;
  const std::string up_cmd_;
  const std::string create_topic_cmd_;
  const std::string cluster_dir_;
};

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_SUPPORT_EXTERNAL_KAFKA_H_
