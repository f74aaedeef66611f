#include "sink/record.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "outboxd/event_sink.h"
#include "outboxd/log.h"

namespace outboxd::sink {
namespace {

// Kafka's own limit (kafka.common.internals.Topic.MAX_NAME_LENGTH).
constexpr size_t kMaxTopicNameLength = 249;

std::string QuoteTopic(absl::string_view topic) {
  return absl::StrCat("\"", absl::CHexEscape(topic), "\"");
}

}  // namespace

absl::Status ValidateTopicName(absl::string_view topic) {
  if (topic.empty()) {
    return absl::InvalidArgumentError("topic name \"\" is empty; Kafka needs at least 1 character");
  }
  if (topic == "." || topic == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("topic name ", QuoteTopic(topic), " is reserved; Kafka rejects \".\" and \"..\""));
  }
  if (topic.size() > kMaxTopicNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("topic name ", QuoteTopic(topic), " is ",
                                                   topic.size(),
                                                   " characters long; Kafka allows at most ",
                                                   kMaxTopicNameLength));
  }
  for (size_t i = 0; i < topic.size(); ++i) {
    const char c = topic[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "topic name ", QuoteTopic(topic), " has '", absl::CHexEscape(absl::string_view(&c, 1)),
          "' at position ", i, "; Kafka allows only ASCII letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

size_t Record::ByteSize() const {
  size_t n = key.size() + value.size();
  for (const auto& [name, v] : headers) n += name.size() + v.size();
  return n;
}

void BuildRecord(const v1::OutboxEvent& event, absl::string_view topic_override,
                 const SinkConfig& config, Record* record) {
  // assign/append/SerializeToString keep the strings' buffers: no allocation
  // per event once the kept record has seen events of this size.
  if (topic_override.empty()) {
    record->topic.assign(config.topic_prefix).append(event.aggregate_type());
  } else {
    record->topic.assign(topic_override.data(), topic_override.size());
  }
  EncodeEvent(event, config.format, /*omit_payload=*/false, &record->key, &record->value,
              &record->headers);
  record->dead_letter_reason.clear();
  Headers& headers = record->headers;

  if (absl::Status valid = ValidateTopicName(record->topic); !valid.ok()) {
    record->dead_letter_reason = std::string(valid.message());
    headers.emplace_back(kDeadLetterReasonHeader, record->dead_letter_reason);
    headers.emplace_back(kDeadLetterOriginalTopicHeader, record->topic);
    record->topic = config.dead_letter_topic;
  }
}

Record BuildRecord(const v1::OutboxEvent& event, absl::string_view topic_override,
                   const SinkConfig& config) {
  Record record;
  BuildRecord(event, topic_override, config, &record);
  return record;
}

Record DeadLetterCopy(const Record& record, absl::string_view reason, bool strip_payload,
                      const SinkConfig& config) {
  Record copy = record;
  if (strip_payload) OmitPayload(config.format.format, &copy.value);
  copy.dead_letter_reason = std::string(reason);
  copy.headers.emplace_back(kDeadLetterReasonHeader, copy.dead_letter_reason);
  copy.headers.emplace_back(kDeadLetterOriginalTopicHeader, record.topic);
  copy.topic = config.dead_letter_topic;
  return copy;
}

absl::Status PoisonError(absl::string_view event_id, absl::string_view reason) {
  return SinkError(
      SinkFailure::kPoison,
      absl::FailedPreconditionError(absl::StrCat(
          "poison event: Kafka cannot take event id=", event_id, ": ", reason,
          ". Stopping because of --on_poison=stop; nothing past it is confirmed. Fix the row or "
          "the broker limit and restart, or run with --on_poison=dead-letter to park such events")));
}

std::string TooLargeReason(size_t bytes, int64_t message_max_bytes) {
  return absl::StrCat("record of ", bytes, " bytes exceeds message.max.bytes=", message_max_bytes,
                      "; raise it on the broker and in --kafka_property=message.max.bytes=...");
}

absl::Status SendEvent(const v1::OutboxEvent& event, absl::string_view topic_override,
                       const SinkConfig& config, int64_t message_max_bytes, Record* scratch,
                       absl::FunctionRef<absl::Status(const Record&)> send, bool* dead_lettered) {
  *dead_lettered = false;
  Record& record = *scratch;
  BuildRecord(event, topic_override, config, &record);
  if (!record.dead_letter_reason.empty()) {
    if (config.stop_on_poison) return PoisonError(event.id(), record.dead_letter_reason);
    LogWarning(absl::StrCat("event ", event.id(), " goes to dead-letter topic ", record.topic,
                            ": ", record.dead_letter_reason));
  }
  absl::Status sent = send(record);
  if (!record.dead_letter_reason.empty()) {
    *dead_lettered = sent.ok();
    return DeadLetterSendResult(sent, config);
  }
  // Too large, or refused for good (say its topic does not exist): the
  // dead-letter topic, payload removed when size is the reason.
  const bool too_large = absl::IsOutOfRange(sent);
  if (!too_large && !absl::IsFailedPrecondition(sent)) return sent;
  const std::string reason =
      too_large ? TooLargeReason(record.ByteSize(), message_max_bytes) : std::string(sent.message());
  if (config.stop_on_poison) return PoisonError(event.id(), reason);
  LogWarning(absl::StrCat("event ", event.id(), " goes to dead-letter topic ",
                          config.dead_letter_topic, too_large ? " without its payload" : "", ": ",
                          reason));
  sent = send(DeadLetterCopy(record, reason, /*strip_payload=*/too_large, config));
  *dead_lettered = sent.ok();
  return DeadLetterSendResult(sent, config);
}

absl::Status DeadLetterSendResult(const absl::Status& sent, const SinkConfig& config) {
  if (sent.ok() || absl::IsResourceExhausted(sent)) return sent;
  // Nothing is left to park the event in: stop rather than rewind into the
  // same refusal forever.
  return SinkError(SinkFailure::kFatal,
                   absl::UnavailableError(absl::StrCat(
                       "cannot write to the dead-letter topic ", config.dead_letter_topic, ": ",
                       sent.message(), "; stopping, nothing past it is confirmed. Fix: make the "
                       "topic writable (or choose another with --dead_letter_topic) and restart")));
}

}  // namespace outboxd::sink
