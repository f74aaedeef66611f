#include "sink/record.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace outboxd::sink {

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
  record->key.assign(event.aggregate_id());
  event.SerializeToString(&record->value);
  record->dead_letter_reason.clear();
  Headers& headers = record->headers;
  headers.resize(2);
  headers[0].first.assign("id");
  headers[0].second.assign(event.id());
  headers[1].first.assign("event_type");
  headers[1].second.assign(event.event_type());
  if (!event.headers().empty()) {
    headers.insert(headers.end(), event.headers().begin(), event.headers().end());
    std::sort(headers.begin() + 2, headers.end());
  }

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
