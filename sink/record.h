// Record: what one outbox event becomes in Kafka, and what happens to an event
// that cannot go where it belongs — decided in one place for every sink
// (at-least-once and exactly-once).
//
//   Record r = BuildRecord(event, topic_override, config);
//   if (!r.dead_letter_reason.empty()) { ... it goes to the dead-letter topic ... }
//
//   bool dead_lettered = false;
//   absl::Status s = SendEvent(event, "", config, max_bytes, &scratch,
//                              [&](const Record& r) { return producer.Send(r, opaque); },
//                              &dead_lettered);
//
// Topic = override, else prefix + aggregate type; key, value and headers as
// config.format says (sink/format.h: key = aggregate id; for the envelope,
// headers "id", "event_type", then the event's headers sorted by name). A
// topic Kafka would reject turns the record into its dead-letter copy, in the
// same format, with the reason headers after the format's.
#ifndef OUTBOXD_SINK_RECORD_H_
#define OUTBOXD_SINK_RECORD_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "outboxd/v1/event.pb.h"
#include "sink/format.h"
#include "sink/sink_config.h"

namespace outboxd::sink {

inline constexpr char kDeadLetterReasonHeader[] = "outboxd.dead_letter.reason";
inline constexpr char kDeadLetterOriginalTopicHeader[] = "outboxd.dead_letter.original_topic";

// Headers: sink/format.h.

struct Record {
  std::string topic;
  std::string key;
  std::string value;
  Headers headers;
  // Set when the record was redirected to the dead-letter topic.
  std::string dead_letter_reason;

  size_t ByteSize() const;
};

// Why a topic name is unusable, or OK.
absl::Status ValidateTopicName(absl::string_view topic);

Record BuildRecord(const v1::OutboxEvent& event, absl::string_view topic_override,
                   const SinkConfig& config);
// The same into *record, reusing its buffers (a sink keeps one for all events).
void BuildRecord(const v1::OutboxEvent& event, absl::string_view topic_override,
                 const SinkConfig& config, Record* record);

// The dead-letter copy of a record Kafka will not take at all (too large, or
// rejected by the broker): to the dead-letter topic with the reason; the
// payload is removed (OmitPayload in config's format) when size is the reason.
Record DeadLetterCopy(const Record& record, absl::string_view reason, bool strip_payload,
                      const SinkConfig& config);

// The error an event Kafka cannot take is reported with under
// --on_poison=stop: FailedPrecondition, marked SinkFailure::kPoison.
absl::Status PoisonError(absl::string_view event_id, absl::string_view reason);

// Why a record of `bytes` is refused by the client (message.max.bytes).
std::string TooLargeReason(size_t bytes, int64_t message_max_bytes);

// Routes `event` and queues its record through `send`. `send` returns OK,
// ResourceExhausted (queue full, nothing queued), OutOfRange (larger than the
// client's message.max.bytes, nothing queued), FailedPrecondition (Kafka will
// never take it) or its own error. An invalid topic, a record too large or
// one refused for good goes to the dead-letter topic (too large: without its
// payload), or with config.stop_on_poison returns PoisonError(). Returns OK
// when queued (*dead_lettered says whether as a dead letter),
// ResourceExhausted (offer the same event again), a SinkFailure::kFatal error
// when the dead-letter topic refuses it too, or send's error.
absl::Status SendEvent(const v1::OutboxEvent& event, absl::string_view topic_override,
                       const SinkConfig& config, int64_t message_max_bytes, Record* scratch,
                       absl::FunctionRef<absl::Status(const Record&)> send, bool* dead_lettered);

// What a failed send of a dead letter means: OK and ResourceExhausted as
// they are; anything else a SinkFailure::kFatal error naming the topic.
absl::Status DeadLetterSendResult(const absl::Status& sent, const SinkConfig& config);

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_RECORD_H_
