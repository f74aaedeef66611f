// The exactly-once checkpoint topic: created right, checked, read in bounded
// time.
//
//   RETURN_IF_ERROR(EnsureCheckpointTopic(config, "outboxd.checkpoints"));   // init, run
//   ASSIGN_OR_RETURN(std::optional<std::string> last,
//                    ReadLastCommittedRecord(config, "outboxd.checkpoints", slot));
//
// The topic holds one record per committed Kafka transaction, keyed by slot.
// It must be compacted (cleanup.policy=compact): with the delete policy it is
// never trimmed to what matters. Recovery never reads it whole: it reads
// backwards from the end, in windows, until it has the last committed record
// of the slot, so start-up time does not grow with the topic's history.
//
// Thread: any; each call makes and closes its own short-lived client.
#ifndef OUTBOXD_SINK_CHECKPOINT_TOPIC_H_
#define OUTBOXD_SINK_CHECKPOINT_TOPIC_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "sink/sink_config.h"

namespace outboxd::sink {

// Creates `topic` if it does not exist (compacted, one partition, replication
// factor min(3, brokers)); if it exists, checks that it is compacted:
// FailedPrecondition with the fix if not. A broker that cannot describe topic
// configurations gets a warning, not an error. Unavailable if Kafka cannot be
// reached within `timeout`. While it waits for the brokers it asks
// keep_waiting (if set) every 100 ms, and ends with Cancelled when that
// returns false (a stop signal).
absl::Status EnsureCheckpointTopic(const SinkConfig& config, absl::string_view topic,
                                   absl::Duration timeout = absl::Seconds(10),
                                   const std::function<bool()>& keep_waiting = {});

// The value of the last record with `key` that read_committed readers see in
// `topic` (any partition), or nullopt if none (or the topic does not exist).
// No librdkafka call in it waits longer than 100 ms; between two it calls
// keep_waiting (if set) and ends with Cancelled when that returns false.
// Refused credentials end it at once (SinkFailure::kFatal), as they end
// EnsureCheckpointTopic.
absl::StatusOr<std::optional<std::string>> ReadLastCommittedRecord(
    const SinkConfig& config, absl::string_view topic, absl::string_view key,
    absl::Duration timeout = absl::Seconds(30), const std::function<bool()>& keep_waiting = {});

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_CHECKPOINT_TOPIC_H_
