#include "admin/relay_info.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "outboxd/log.h"
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

namespace {

std::string Rfc3339(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()); }

std::string Rounded(absl::Duration d) {
  return absl::FormatDuration(absl::Trunc(d, d < absl::Minutes(1) ? absl::Milliseconds(100) : absl::Seconds(1)));
}

}  // namespace

Progress StatusReporter::CheckProgress(absl::Time now) const {
  const stats::RelayStats& s = *stats_;
  const uint64_t delivered = s.events_delivered.load();
  const uint64_t confirmed = s.confirmed_lsn.load();
  const uint64_t received = s.received_lsn.load();
  const uint64_t in_flight = s.events_in_flight.load();
  const bool outstanding = in_flight > 0 || (s.postgres_connected.load() && received > confirmed);
  const bool paused = s.paused.load();

  absl::MutexLock lock(&progress_mu_);
  ProgressClock& p = progress_;
  now = std::max(now, p.last_check);  // callers on several threads
  p.last_check = now;
  const bool moved = delivered != p.delivered || confirmed != p.confirmed;
  const absl::Time quiet_since_before = p.quiet_since;
  // Work that only now appears, or a resume only now seen, starts the clock now, not at
  // the last check before it: never a stall reported early.
  if (!outstanding || !p.outstanding || moved || paused || p.paused) p.quiet_since = now;
  p.delivered = delivered;
  p.confirmed = confirmed;
  p.outstanding = outstanding;
  p.paused = paused;

  Progress out;
  out.stalled = info_.stall_timeout > absl::ZeroDuration() && now - p.quiet_since >= info_.stall_timeout;
  if (out.stalled) {
    const std::string since = absl::StrCat(Rfc3339(p.quiet_since), " (", Rounded(now - p.quiet_since), ")");
    if (in_flight > 0) {
      const std::string topic = s.oldest_unacked_topic();
      out.reason = absl::StrCat("Kafka has acknowledged none of the ", in_flight, " events in flight since ", since,
                                "; the oldest unacknowledged event", topic.empty() ? "" : absl::StrCat(", to topic ", topic),
                                ", committed ", Rounded(absl::Seconds(OldestUnackedAgeSeconds(s, now))),
                                " ago; Kafka ", s.kafka_reachable.load() ? "is reachable" : "is unreachable");
    } else {
      out.reason = absl::StrCat("nothing confirmed to PostgreSQL past ", Lsn(confirmed).ToString(), " since ", since,
                                " although WAL up to ", Lsn(received).ToString(),
                                " was received; nothing is in flight to Kafka");
    }
  }
  if (out.stalled != p.stalled) {
    p.stalled = out.stalled;
    if (out.stalled) {
      LogWarning(absl::StrCat("stalled: ", out.reason, ". /healthz answers 503 until something moves (--stall_timeout=",
                              absl::FormatDuration(info_.stall_timeout), ")"));
    } else {
      LogInfo(absl::StrCat("no longer stalled after ", Rounded(now - quiet_since_before),
                           paused ? " (paused)" : moved ? " (progress)" : " (nothing outstanding)",
                           "; /healthz answers 200"));
    }
  }
  return out;
}

void StatusReporter::Sample(absl::Time now) {
  CheckProgress(now);
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
  out.set_slot_failover(s.slot_failover.load());
  out.set_standbys(s.standbys.load());
  out.set_standbys_synchronizing(s.standbys_synchronizing.load());
  out.set_failover_ready(s.failover_ready.load());
  Progress progress = CheckProgress(now);
  out.set_stalled(progress.stalled);
  out.set_stalled_reason(std::move(progress.reason));
  out.set_version(Version());
  out.set_uptime_seconds(absl::ToDoubleSeconds(now - s.started));
  return out;
}

}  // namespace outboxd::admin
