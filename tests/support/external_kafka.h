// ExternalKafka: a Kafka the tests did not start (a real broker, e.g. tests/real-kafka/), as a
// KafkaControl.
//
//   absl::StatusOr<std::unique_ptr<ExternalKafka>> kafka = ExternalKafka::FromEnv();
//   if (!kafka.ok()) ...;                  // OUTBOXD_TEST_KAFKA_BROKERS is unset or empty
//
// Environment:
//   OUTBOXD_TEST_KAFKA_BROKERS        bootstrap.servers; setting it is what selects external mode
//                                     (RelayEnv then starts no kafka-mock)
//   OUTBOXD_TEST_KAFKA_DOWN_CMD       `sh -c` command that makes every broker unreachable
//   OUTBOXD_TEST_KAFKA_UP_CMD         ... and reachable again (e.g. `docker compose pause kafka`
//                                     / `unpause kafka`); AllDown/AllUp fail if unset
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

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tests/support/kafka_control.h"

namespace outboxd::test {

class ExternalKafka : public KafkaControl {
 public:
  static constexpr char kBrokersEnv[] = "OUTBOXD_TEST_KAFKA_BROKERS";

  // True when OUTBOXD_TEST_KAFKA_BROKERS is set (and not empty).
  static bool Configured();
  // From the environment above; FailedPrecondition when OUTBOXD_TEST_KAFKA_BROKERS is not set.
  static absl::StatusOr<std::unique_ptr<ExternalKafka>> FromEnv();

  ExternalKafka(std::string bootstrap, std::string down_cmd, std::string up_cmd,
                std::string create_topic_cmd)
      : bootstrap_(std::move(bootstrap)),
        down_cmd_(std::move(down_cmd)),
        up_cmd_(std::move(up_cmd)),
        create_topic_cmd_(std::move(create_topic_cmd)) {}

  const std::string& bootstrap() const override { return bootstrap_; }
  // Admin API CreateTopics (replication factor min(brokers, 3)), "already exists" is success;
  // then waits until the topic is in the cluster's metadata.
  absl::Status CreateTopic(absl::string_view name, int partitions) override;
  absl::Status AllDown() override;
  absl::Status AllUp() override;
  absl::Status Command(absl::string_view line) override;
  bool HasMockControl() const override { return false; }

 private:
  const std::string bootstrap_;
  const std::string down_cmd_;
  const std::string up_cmd_;
  const std::string create_topic_cmd_;
};

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_SUPPORT_EXTERNAL_KAFKA_H_
