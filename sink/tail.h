// Tail: reads outbox events back from Kafka and prints them as JSON lines.
//
//   TailOptions options{.brokers = "127.0.0.1:9092", .topic = "outbox.event.order"};
//   absl::Status s = Tail(options, std::cout, stop_flag);
//
// One line per record: {"topic", "partition", "offset", "key", "headers",
// "format", ...}; the format (sink/format.h) is told (--format) or recognised
// per record. envelope and json records add "event" (AppendEventJson: LSNs as
// X/Y, payload left out); cloudevents records add "cloudevent" (the
// attributes: ce_* headers without the prefix, content-type as
// datacontenttype); every record adds "payload", the payload as it was
// written: JSON when it is JSON, a string otherwise (bytes: base64). A topic starting with "^" is
// a regular expression (a consumer group named outboxd-tail-<pid> tracks it);
// a plain name is read without a group, from every partition.
//
// Thread: runs on the caller's thread until stop is set, --limit records were
// printed, or the timeout passed (DeadlineExceeded).
#ifndef OUTBOXD_SINK_TAIL_H_
#define OUTBOXD_SINK_TAIL_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "sink/format.h"

namespace outboxd::sink {

struct TailOptions {
  std::string brokers;
  std::string topic;
  bool from_beginning = true;
  int64_t limit = 0;                             // 0: no limit
  absl::Duration timeout = absl::ZeroDuration();  // 0: no timeout
  std::optional<Format> format;                   // unset: recognised per record
};

absl::Status Tail(const TailOptions& options, std::ostream& out, const std::atomic<bool>& stop);

// One record as the JSON line Tail prints (exposed for tests).
std::string RecordToJson(absl::string_view topic, int32_t partition, int64_t offset,
                         absl::string_view key, absl::string_view value, const Headers& headers,
                         std::optional<Format> format = std::nullopt);

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_TAIL_H_
