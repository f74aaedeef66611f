// What the relay shows of its progress: the gauges RelayStats carries to the
// admin API and /metrics, and the periodic "progress:" log line. Both run on
// the stream thread, after a status update or once per loop turn.
#include <string>

#include "absl/strings/str_format.h"
#include "cdc/relay.h"
#include "outboxd/log.h"

namespace outboxd::cdc {

void Relay::PublishGauges() {
  stats_->events_in_flight.store(tracker_.EventsInFlight());
  stats_->oldest_unacked_commit_unix_micros.store(tracker_.OldestUnackedCommitTime());
  if (const uint32_t tag = tracker_.OldestUnackedTag(); tag != published_topic_tag_) {
    stats_->set_oldest_unacked_topic(std::string(topic_tags_.Name(tag)));
    published_topic_tag_ = tag;
  }
  stats_->events_dead_lettered.store(dead_lettered_ + dead_lettered_by_old_sinks_ +
                                     (sink_ ? sink_->DeadLettered() : 0));
  if (sink_) stats_->kafka_reachable.store(sink_->Reachable());
}

void Relay::MaybeLogProgress(absl::Time now, Lsn received) {
  if (now - last_progress_log_ < options_.progress_interval) return;
  const uint64_t delta = delivered_ - delivered_at_last_log_;
  if (delta > 0 || tracker_.EventsInFlight() > 0) {
    const double seconds = absl::ToDoubleSeconds(now - last_progress_log_);
    LogInfo(absl::StrFormat("progress: %d events delivered (%.0f/s), %d in flight, received %s, "
                            "confirmed %s",
                            delivered_, delta / seconds, tracker_.EventsInFlight(),
                            received.ToString(), tracker_.SafeLsn().ToString()));
  }
  delivered_at_last_log_ = delivered_;
  last_progress_log_ = now;
}

}  // namespace outboxd::cdc
