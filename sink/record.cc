#include "sink/record.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace outboxd::sink {

size_t Record::ByteSize() const {
  size_t n = key.size() + value.size();
  for (const auto& [name, v] : headers) n += name.size() + v.size();
  return n;
}

Record BuildRecord(const v1::OutboxEvent& event, absl::string_view topic_override,
                   const SinkConfig& config) {
  Record record;
  record.topic = topic_override.empty() ? absl::StrCat(config.topic_prefix, event.aggregate_type())
                                        : std::string(topic_override);
  record.key = event.aggregate_id();
  record.value = event.SerializeAsString();
  record.headers.reserve(event.headers_size() + 4);
  record.headers.emplace_back("id", event.id());
  record.headers.emplace_back("event_type", event.event_type());
  Headers user_headers(event.headers().begin(), event.headers().end());
  std::sort(user_headers.begin(), user_headers.end());
  record.headers.insert(record.headers.end(), user_headers.begin(), user_headers.end());

  if (absl::Status valid = ValidateTopicName(record.topic); !valid.ok()) {
    record.dead_letter_reason = std::string(valid.message());
    record.headers.emplace_back(kDeadLetterReasonHeader, record.dead_letter_reason);
    record.headers.emplace_back(kDeadLetterOriginalTopicHeader, record.topic);
    record.topic = config.dead_letter_topic;
  }
  return record;
}

Record DeadLetterCopy(const Record& record, absl::string_view reason, bool strip_payload,
                      const SinkConfig& config) {
  Record copy = record;
  if (strip_payload) {
    v1::OutboxEvent stripped;
    if (stripped.ParseFromString(record.value)) {
      stripped.clear_payload();
      copy.value = stripped.SerializeAsString();
    }
  }
  copy.dead_letter_reason = std::string(reason);
  copy.headers.emplace_back(kDeadLetterReasonHeader, copy.dead_letter_reason);
  copy.headers.emplace_back(kDeadLetterOriginalTopicHeader, record.topic);
  copy.topic = config.dead_letter_topic;
  return copy;
}

}  // namespace outboxd::sink
