#include "admin/relay_info.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "outboxd/lsn.h"

namespace outboxd::admin {

const char* Version() { return OUTBOXD_VERSION; }

double OldestUnackedAgeSeconds(const stats::RelayStats& stats, absl::Time now) {
  const int64_t committed = stats.oldest_unacked_commit_unix_micros.load();
  if (committed == 0) return 0;
  return std::max(0.0, absl::ToDoubleSeconds(now - absl::FromUnixMicros(committed)));
}

uint64_t LagBytes(const stats::RelayStats& stats) {
  const uint64_t end = stats.server_wal_end.load();
  const uint64_t confirmed = stats.confirmed_lsn.load();
  return end > confirmed ? end - confirmed : 0;
}

void StatusReporter::Sample(absl::Time now) {
  const uint64_t delivered = stats_->events_delivered.load();
  absl::MutexLock lock(&mu_);
  if (last_sample_time_ != absl::InfinitePast() && now > last_sample_time_) {
    const uint64_t delta = delivered >= last_sample_delivered_ ? delivered - last_sample_delivered_ : 0;
    events_per_second_ = delta / absl::ToDoubleSeconds(now - last_sample_time_);
  }
  last_sample_time_ = now;
  last_sample_delivered_ = delivered;
}

v1::Status StatusReporter::Snapshot(absl::Time now) const {
  const stats::RelayStats& s = *stats_;
  v1::Status out;
  out.set_slot(info_.slot);
  out.set_publication(info_.publication);
  out.set_table(info_.table);
  out.set_server_version(s.server_version());
  const Lsn confirmed(s.confirmed_lsn.load());
  const Lsn received(s.received_lsn.load());
  const Lsn wal_end(s.server_wal_end.load());
  out.set_confirmed_lsn(confirmed.ToString());
  out.set_confirmed_lsn_value(confirmed.value());
  out.set_received_lsn(received.ToString());
  out.set_received_lsn_value(received.value());
  out.set_server_wal_end(wal_end.ToString());
  out.set_server_wal_end_value(wal_end.value());
  out.set_lag_bytes(LagBytes(s));
  out.set_events_in_flight(s.events_in_flight.load());
  out.set_oldest_unacked_age_seconds(OldestUnackedAgeSeconds(s, now));
  out.set_events_delivered(s.events_delivered.load());
  {
    absl::MutexLock lock(&mu_);
    out.set_events_per_second(events_per_second_);
  }
  out.set_events_dead_lettered(s.events_dead_lettered.load());
  out.set_reconnects(s.reconnects.load());
  out.set_rewinds(s.rewinds.load());
  out.set_postgres_connected(s.postgres_connected.load());
  out.set_kafka_reachable(s.kafka_reachable.load());
  out.set_paused(s.paused.load());
  out.set_version(Version());
  out.set_uptime_seconds(absl::ToDoubleSeconds(now - s.started));
  return out;
}

}  // namespace outboxd::admin
