// Record: what one outbox event becomes in Kafka, decided in one place for
// every sink (at-least-once and exactly-once).
//
//   Record r = BuildRecord(event, topic_override, config);
//   if (!r.dead_letter_reason.empty()) { ... it goes to the dead-letter topic ... }
//
// Topic = override, else prefix + aggregate type; key = aggregate id; headers
// "id", "event_type", then the event's headers sorted by name (a protobuf map
// has no order; sorted, a redelivered event carries identical headers). A
// topic Kafka would reject turns the record into its dead-letter copy.
#ifndef OUTBOXD_SINK_RECORD_H_
#define OUTBOXD_SINK_RECORD_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "outboxd/v1/event.pb.h"
#include "sink/kafka_sink.h"

namespace outboxd::sink {

inline constexpr char kDeadLetterReasonHeader[] = "outboxd.dead_letter.reason";
inline constexpr char kDeadLetterOriginalTopicHeader[] = "outboxd.dead_letter.original_topic";

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Record {
  std::string topic;
  std::string key;
  std::string value;
  Headers headers;
  // Set when the record was redirected to the dead-letter topic.
  std::string dead_letter_reason;

  size_t ByteSize() const;
};

Record BuildRecord(const v1::OutboxEvent& event, absl::string_view topic_override,
                   const SinkConfig& config);
// The same into *record, reusing its buffers (a sink keeps one for all events).
void BuildRecord(const v1::OutboxEvent& event, absl::string_view topic_override,
                 const SinkConfig& config, Record* record);

// The dead-letter copy of a record Kafka will not take at all (too large, or
// rejected by the broker): to the dead-letter topic with the reason; the
// payload is removed when size is the reason (strip_payload).
Record DeadLetterCopy(const Record& record, absl::string_view reason, bool strip_payload,
                      const SinkConfig& config);

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_RECORD_H_
