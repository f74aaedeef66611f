// KafkaControl: what a test needs from the Kafka it runs against, whichever one that is.
//
//   std::unique_ptr<KafkaControl> kafka = ...;   // KafkaMockProcess::Start() or ExternalKafka
//   ASSERT_TRUE(kafka->CreateTopic("outbox.event.order", 8).ok());
//   relay args: "--brokers=" + kafka->bootstrap()
//   ASSERT_TRUE(kafka->AllDown().ok());           // every broker unreachable
//   ASSERT_TRUE(kafka->AllUp().ok());
//   if (kafka->HasMockControl()) kafka->Command("error produce 10 1");
//
// Two implementations: KafkaMockProcess (tests/support/kafka_mock_process.h, the default) and
// ExternalKafka (tests/support/external_kafka.h, a real broker named by
// OUTBOXD_TEST_KAFKA_BROKERS). Mock-only abilities (injected errors, single brokers down) are
// behind Command(), which a real Kafka answers with Unimplemented; tests that need them check
// HasMockControl() and do not run elsewhere.
//
// Used from one test thread; not thread-safe.
#ifndef OUTBOXD_TESTS_SUPPORT_KAFKA_CONTROL_H_
#define OUTBOXD_TESTS_SUPPORT_KAFKA_CONTROL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace outboxd::test {

class KafkaControl {
 public:
  virtual ~KafkaControl() = default;

  // bootstrap.servers for clients and for `outboxd run --brokers=`.
  virtual const std::string& bootstrap() const = 0;
  // Creates the topic and returns once clients see it; a topic that already exists is fine
  // (its partition count is then whatever it was created with).
  virtual absl::Status CreateTopic(absl::string_view name, int partitions) = 0;
  // Every broker unreachable (connections dropped or stalled) / reachable again.
  virtual absl::Status AllDown() = 0;
  virtual absl::Status AllUp() = 0;
  // A kafka-mock control line (see `kafka-mock --help`); Unimplemented on a real Kafka.
  virtual absl::Status Command(absl::string_view line) = 0;
  // True when Command() works (kafka-mock).
  virtual bool HasMockControl() const = 0;
};

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_SUPPORT_KAFKA_CONTROL_H_
