// RelayInfo and StatusReporter: what the admin API and /metrics say about a
// running relay, computed from the RelayStats the relay publishes.
//
//   StatusReporter reporter(&stats, {.slot = "outboxd", .publication = "outboxd",
//                                    .table = "public.outbox_events"});
//   reporter.Sample(absl::Now());            // once a second: events/s, progress
//   v1::Status status = reporter.Snapshot(absl::Now());
//   if (reporter.CheckProgress(absl::Now()).stalled) ...   // /healthz answers 503
//
// Thread-safe: Sample() runs on a server's ticker thread, Snapshot() and
// CheckProgress() on any RPC or HTTP thread. RelayStats is read through its
// atomics only.
#ifndef OUTBOXD_ADMIN_RELAY_INFO_H_
#define OUTBOXD_ADMIN_RELAY_INFO_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "stats/relay_stats.h"
#include "outboxd/v1/admin.pb.h"

namespace outboxd::admin {

// outboxd's version (CMake's PROJECT_VERSION).
const char* Version();

// What does not change while the relay runs.
struct RelayInfo {
  std::string slot;
  std::string publication;
  std::string table;  // schema.name; empty for a messages-only outbox
  // --stall_timeout: how long work may be outstanding without progress; 0: never stalled.
  absl::Duration stall_timeout = absl::Minutes(5);
};

// Whether the relay makes progress (CheckProgress).
struct Progress {
  bool stalled = false;
  std::string reason;  // what is stuck, since when; empty unless stalled
};

class StatusReporter {
 public:
  StatusReporter(const stats::RelayStats* stats, RelayInfo info) : stats_(stats), info_(std::move(info)) {}

  // Takes a sample of the delivered counter; the rate reported is the one
  // between the last two samples. Also checks progress (so the "stalled" log
  // line appears without anyone probing /healthz).
  void Sample(absl::Time now);
  v1::Status Snapshot(absl::Time now) const;

  // Stalled: events are in flight, or PostgreSQL has sent WAL past the confirmed
  // position (while connected), and for info.stall_timeout nothing has been
  // acknowledged by Kafka nor confirmed to PostgreSQL, while not paused. Judged
  // from RelayStats each time it is asked (/healthz, /metrics, the admin ticker),
  // with no thread of its own: a stream thread that hangs stops its counters and
  // so shows as stalled too. The clock starts when this sees work outstanding, so
  // it never reports a stall before the timeout has passed. Logs a warning when a
  // stall starts (which side, since when, the oldest unacknowledged event's topic
  // and age) and a line when progress resumes.
  Progress CheckProgress(absl::Time now) const;

  const stats::RelayStats& stats() const { return *stats_; }
  const RelayInfo& info() const { return info_; }
  // Ready: connected to PostgreSQL and Kafka reachable.
  bool Ready() const { return stats_->postgres_connected.load() && stats_->kafka_reachable.load(); }

 private:
  const stats::RelayStats* stats_;
  const RelayInfo info_;
  mutable absl::Mutex mu_;
  absl::Time last_sample_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t last_sample_delivered_ ABSL_GUARDED_BY(mu_) = 0;
  double events_per_second_ ABSL_GUARDED_BY(mu_) = 0;

  // CheckProgress()'s view of the counters at its previous call.
  struct ProgressClock {
    absl::Time last_check = absl::InfinitePast();
    absl::Time quiet_since = absl::InfinitePast();  // last progress, or when work appeared
    uint64_t delivered = 0;
    uint64_t confirmed = 0;
    bool outstanding = false;
    bool paused = false;
    bool stalled = false;
  };
  mutable absl::Mutex progress_mu_;
  mutable ProgressClock progress_ ABSL_GUARDED_BY(progress_mu_);
};

// Seconds since the oldest unacknowledged event committed; 0 with nothing in flight.
double OldestUnackedAgeSeconds(const stats::RelayStats& stats, absl::Time now);
// server_wal_end - confirmed_lsn, 0 before the first keepalive.
uint64_t LagBytes(const stats::RelayStats& stats);

}  // namespace outboxd::admin

#endif  // OUTBOXD_ADMIN_RELAY_INFO_H_
