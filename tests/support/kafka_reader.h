// Reading back what reached Kafka, for integration tests.
//
//   absl::StatusOr<std::vector<KafkaRecord>> records =
//       ReadTopic(kafka->bootstrap(), "outbox.event.order", /*expected=*/3, absl::Seconds(20));
//   ASSERT_TRUE(records.ok()) << records.status();
//   EXPECT_EQ(records->size(), 3);
//
// Reads with isolation.level=read_committed (librdkafka's default, set explicitly): on a real
// Kafka, aborted and open transactions are invisible. No group membership and no commits: every call assigns every partition from the beginning, so
// it sees all records, including ones an earlier call already read. Looking for the topic never
// creates it (see WaitForPartitions in the .cc: the mock cluster auto-creates a topic that a
// metadata request names). Each call owns a short-lived consumer on
// the calling thread.
#ifndef OUTBOXD_TESTS_SUPPORT_KAFKA_READER_H_
#define OUTBOXD_TESTS_SUPPORT_KAFKA_READER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace outboxd::test {

struct KafkaRecord {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;  // in record order, repeats kept
};

// Consumes `topic` from the beginning of every partition until `expected` records have arrived
// or `deadline` has passed, and returns what arrived, in consumption order (ordered within a
// partition, interleaved across partitions). Stopping at `expected` means extra records
// (duplicates) past it are not returned. A topic that does not exist yet is waited for (and
// reads as empty if it never appears); brokers that are down are retried. Only errors that
// waiting cannot fix (bad configuration, authorization, invalid topic) are returned as errors.
absl::StatusOr<std::vector<KafkaRecord>> ReadTopic(absl::string_view brokers,
                                                   absl::string_view topic, size_t expected,
                                                   absl::Duration deadline);

// Names of the cluster's topics, retried until the cluster answers or `deadline` passes.
absl::StatusOr<std::vector<std::string>> ListTopics(
    absl::string_view brokers, absl::Duration deadline = absl::Seconds(10));

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_SUPPORT_KAFKA_READER_H_
