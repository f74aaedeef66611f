// The bench's load generator: writers that commit outbox events at a fixed offered rate.
//
//   auto w = Writer::Connect(conninfo, spec, index);
//   std::thread t([&] { (*w)->Run(start_us, end_us, window_start_us, window_end_us); });
//
// Each payload carries the writer's clock taken just before the INSERT+COMMIT round trip
// (autocommit: one statement is one transaction), which the latency consumer subtracts from its
// consume time. Threads: each Writer runs on its own thread with its own libpq connection; its
// counters are read only after that thread is joined.
#ifndef OUTBOXD_BENCH_SUITE_LOAD_GENERATOR_H_
#define OUTBOXD_BENCH_SUITE_LOAD_GENERATOR_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pq/handles.h"

namespace outboxd::bench {

// Microseconds since the epoch: the clock both the writers and the consumer read.
int64_t NowUs();

// The writer clock in an event's payload ({"t_commit_us": 123, ...}: jsonb's text form, as
// outboxd's protobuf value carries it and Debezium's string value is); -1 when it has none.
int64_t CommitClockUs(absl::string_view payload);

struct LoadSpec {
  std::string table;           // public.outbox_events (CDC) or public.outbox_poll
  std::string aggregate_type;  // routes the topic
  double rate = 1000;          // offered events/s over all writers; 0 = unpaced
  int events_per_tx = 1;
  int payload_bytes = 200;
  int writers = 4;
  int linger_ms = 1;   // the publisher's producer linger.ms
  int partitions = 1;  // of the run's topic
};

class Writer {
 public:
  // Connects writer `index` of spec.writers and prepares its INSERT.
  static absl::StatusOr<std::unique_ptr<Writer>> Connect(const std::string& conninfo,
                                                         const LoadSpec& spec, int index);

  // The writer's backend, so PostgreSQL's CPU can be counted without the load's own.
  pid_t backend_pid() const { return backend_pid_; }
  int64_t in_window() const { return in_window_; }
  int64_t sent() const { return sent_; }
  absl::Status status() const { return status_; }

  // Commits transactions on schedule until `end_us`; counts events whose clock lies in the
  // window. Runs on its own thread.
  void Run(int64_t start_us, int64_t end_us, int64_t window_start, int64_t window_end);

 private:
  Writer(LoadSpec spec, int index) : spec_(std::move(spec)), index_(index) {}
  LoadSpec spec_;
  int index_;
  pq::PgConn conn_;
  pid_t backend_pid_ = 0;
  int64_t in_window_ = 0;
  int64_t sent_ = 0;
  absl::Status status_;
};

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_LOAD_GENERATOR_H_
