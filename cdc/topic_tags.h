// TopicTags: small numbers for topic names, so the AckTracker can remember which topic each
// transaction in flight went to without keeping a string per transaction.
//
//   TopicTags tags("outbox.event.");
//   uint32_t tag = tags.Tag(/*topic_override=*/"", /*aggregate_type=*/"order");
//   tags.Name(tag);   // "outbox.event.order"
//
// Tag() costs one string compare when the key is the previous one (the common case: one
// aggregate type after another), a hash lookup otherwise. At most kMaxTopics names are kept;
// beyond that Tag() returns 0 ("unknown"), so a writer inventing topics cannot grow memory.
//
// Thread: the relay's stream thread only.
#ifndef OUTBOXD_CDC_TOPIC_TAGS_H_
#define OUTBOXD_CDC_TOPIC_TAGS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace outboxd::cdc {

class TopicTags {
 public:
  static constexpr size_t kMaxTopics = 10000;

  explicit TopicTags(std::string topic_prefix) : prefix_(std::move(topic_prefix)) {}

  // The tag of the topic an event goes to: topic_override when set, else prefix + aggregate
  // type (the sink's routing rule). Never 0 unless the table is full.
  uint32_t Tag(absl::string_view topic_override, absl::string_view aggregate_type) {
    const bool override = !topic_override.empty();
    const absl::string_view key = override ? topic_override : aggregate_type;
    if (last_tag_ != 0 && override == last_override_ && key == last_key_) return last_tag_;
    std::string topic = override ? std::string(key) : absl::StrCat(prefix_, key);
    auto it = tags_.find(topic);
    uint32_t tag = 0;
    if (it != tags_.end()) {
      tag = it->second;
    } else if (names_.size() < kMaxTopics) {
      names_.push_back(topic);
      tag = static_cast<uint32_t>(names_.size());
      tags_.emplace(std::move(topic), tag);
    }
    last_key_.assign(key.data(), key.size());
    last_override_ = override;
    last_tag_ = tag;
    return tag;
  }

  // The topic of a tag; empty for 0.
  absl::string_view Name(uint32_t tag) const {
    return tag == 0 || tag > names_.size() ? absl::string_view() : names_[tag - 1];
  }

 private:
  const std::string prefix_;
  absl::flat_hash_map<std::string, uint32_t> tags_;
  std::vector<std::string> names_;  // names_[tag - 1]
  std::string last_key_;
  bool last_override_ = false;
  uint32_t last_tag_ = 0;
};

}  // namespace outboxd::cdc

#endif  // OUTBOXD_CDC_TOPIC_TAGS_H_
