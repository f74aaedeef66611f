// RelayStats: what the relay publishes for the admin API and /metrics.
//
//   RelayStats stats;                  // outlives the relay and the servers
//   Relay relay(options, factory, &stats);
//   stats.events_delivered.load();     // from any thread
//
// The stream thread writes; server threads read. Every counter and gauge is an
// atomic; the few strings that change at run time sit behind a mutex.
#ifndef OUTBOXD_STATS_RELAY_STATS_H_
#define OUTBOXD_STATS_RELAY_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace outboxd::stats {

struct RelayStats {
  // Upper bounds (seconds) of the commit→acknowledgement latency buckets; +Inf
  // is `commit_to_ack_count`.
  static constexpr std::array<double, 12> kLatencyBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

  // One atomic add per bucket touched: each observation counts in its own
  // bucket only, and the exposition sums them up Prometheus-style.
  void ObserveCommitToAck(double seconds) {
    for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
      if (seconds <= kLatencyBuckets[i]) {
        commit_to_ack_buckets[i].fetch_add(1, std::memory_order_relaxed);
        break;
      }
    }
    commit_to_ack_count.fetch_add(1, std::memory_order_relaxed);
    // Microseconds, so the sum stays an integer atomic.
    commit_to_ack_sum_micros.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  }

  // Counters.
  std::atomic<uint64_t> events_delivered{0};     // acknowledged by Kafka (incl. dead letters)
  std::atomic<uint64_t> events_dead_lettered{0};
  std::atomic<uint64_t> reconnects{0};           // replication connections lost
  std::atomic<uint64_t> rewinds{0};              // fresh producer after a failed delivery
  // Observations in (kLatencyBuckets[i-1], kLatencyBuckets[i]]; not cumulative.
  std::array<std::atomic<uint64_t>, kLatencyBuckets.size()> commit_to_ack_buckets{};
  std::atomic<uint64_t> commit_to_ack_count{0};
  std::atomic<uint64_t> commit_to_ack_sum_micros{0};

  // Gauges.
  std::atomic<uint64_t> confirmed_lsn{0};        // last flush position reported to PostgreSQL
  std::atomic<uint64_t> received_lsn{0};         // highest position received
  std::atomic<uint64_t> server_wal_end{0};       // server's WAL end from the last keepalive/data
  std::atomic<uint64_t> events_in_flight{0};
  std::atomic<int64_t> oldest_unacked_commit_unix_micros{0};  // 0: nothing in flight
  std::atomic<bool> postgres_connected{false};
  std::atomic<bool> kafka_reachable{true};
  std::atomic<bool> paused{false};
  // The slot's failover state as read at the last session start (cdc/setup.h
  // SlotFailoverState; PostgreSQL 17+ failover slots).
  std::atomic<bool> slot_failover{false};
  std::atomic<uint32_t> standbys{0};
  std::atomic<uint32_t> standbys_synchronizing{0};
  std::atomic<bool> failover_ready{false};
  const absl::Time started = absl::Now();

  std::string server_version() const {
    absl::MutexLock lock(&mu);
    return server_version_;
  }
  void set_server_version(std::string v) {
    absl::MutexLock lock(&mu);
    server_version_ = std::move(v);
  }
  // Topic of the oldest event Kafka has not acknowledged (empty: none or unknown); set when
  // it changes, at most once per status interval, for the "stalled" log line.
  std::string oldest_unacked_topic() const {
    absl::MutexLock lock(&mu);
    return oldest_unacked_topic_;
  }
  void set_oldest_unacked_topic(std::string topic) {
    absl::MutexLock lock(&mu);
    oldest_unacked_topic_ = std::move(topic);
  }

 private:
  mutable absl::Mutex mu;
  std::string server_version_ ABSL_GUARDED_BY(mu);
  std::string oldest_unacked_topic_ ABSL_GUARDED_BY(mu);
};

}  // namespace outboxd::stats

#endif  // OUTBOXD_STATS_RELAY_STATS_H_
