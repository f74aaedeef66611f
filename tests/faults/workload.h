// A concurrent outbox workload with a record of what it committed, and the checker that compares
// that record with what a fresh consumer reads back from Kafka. The fault suite runs one while it
// kills, stops and disconnects things.
//
//   Workload workload(pg.ConnInfo(), {.writers = 4, .seed = 7});
//   ASSERT_OK(workload.Setup());          // counters table, one row per aggregate
//   workload.Start();                     // writer threads + one large transaction
//   ... faults ...
//   workload.Stop();
//   ASSERT_OK(workload.ResolveUnknown(pg));   // COMMITs whose answer was lost: look them up
//   auto records = ReadWholeTopic(brokers, "outbox.event.fault");  // --topic_prefix + kAggregateType
//   CheckResult result = Check(workload.Outcomes(), *records);
//   EXPECT_TRUE(result.Ok()) << result.Describe();
//
// Per-aggregate commit order is knowable: every event's transaction increments its aggregate's
// row in `fault_counters` (a row lock held to commit) and writes the new value into the payload
// as "n", so for one aggregate, commit order = increasing n. The one large transaction writes its
// own aggregates ("big-K") with n increasing in insert order.
//
// Outcomes: a transaction whose COMMIT was answered is committed; one that was rolled back (on
// purpose, or because a statement before COMMIT failed) is rolled back, and so is the part of a
// transaction inside a rolled-back savepoint. A COMMIT that got no answer (PostgreSQL went away)
// is unknown until ResolveUnknown looks for the tag in the outbox table; it is never counted as
// lost or as rolled back on a guess.
//
// Threads: Start() runs `writers` writer threads and one large-transaction thread; every other
// method is called from the test thread. The outcome record is guarded by a mutex.
#ifndef OUTBOXD_TESTS_FAULTS_WORKLOAD_H_
#define OUTBOXD_TESTS_FAULTS_WORKLOAD_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/pg_server.h"

namespace outboxd::test {

struct WorkloadOptions {
  int writers = 4;
  int aggregates = 100;
  uint64_t seed = 1;
  // Pacing per writer (transactions per second), so the suite's size does not depend on the
  // machine's speed; 0 = as fast as possible.
  int tx_per_second = 150;
  // The large transaction starts this long after Start(); its size in events.
  absl::Duration large_after = absl::Seconds(1);
  int large_events = 20000;
};

enum class Outcome { kCommitted, kRolledBack, kUnknown };

struct WorkloadStats {
  int64_t transactions = 0;
  int64_t committed_events = 0;
  int64_t rolled_back_events = 0;
  int64_t unknown_events = 0;  // before ResolveUnknown
  int64_t resolved_committed = 0;
  int64_t resolved_rolled_back = 0;
  int64_t errors = 0;  // statements or connections that failed (faults at work)
  int64_t large_attempts = 0;
  bool large_committed = false;
};

class Workload {
 public:
  static constexpr absl::string_view kAggregateType = "fault";
  // The events go to <--topic_prefix>fault.

  Workload(std::string conninfo, WorkloadOptions options)
      : conninfo_(std::move(conninfo)), options_(options) {}
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;
  ~Workload() { Stop(); }

  // Creates fault_counters with one row per aggregate.
  absl::Status Setup();
  void Start();
  // Stops the writers after their current transaction and joins them.
  void Stop();
  // Holds every writer between transactions; returns once none is inside one.
  void Pause();
  void Resume();
  // Waits until the large transaction has committed (or `deadline` passes).
  bool WaitLargeCommitted(absl::Duration deadline);

  // Looks every unknown tag up in the outbox table: there = committed, absent = rolled back.
  // Also checks that every committed tag is in the table and no rolled-back one is (a check of
  // the workload's own bookkeeping).
  absl::Status ResolveUnknown(PgServer& pg);

  // tag -> outcome, after Stop().
  std::unordered_map<std::string, Outcome> Outcomes() const;
  WorkloadStats Stats() const;

 private:
  struct Event {
    std::string tag;
    int aggregate;
  };
  void WriterLoop(int writer);
  void LargeLoop();
  // Blocks while paused; false when stopping.
  bool EnterTransaction();
  void LeaveTransaction();
  void Record(const std::vector<std::string>& tags, Outcome outcome);

  const std::string conninfo_;
  const WorkloadOptions options_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;

  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  bool paused_ = false;     // guarded by gate_mu_
  int in_transaction_ = 0;  // guarded by gate_mu_

  mutable absl::Mutex mu_;
  std::unordered_map<std::string, Outcome> outcomes_ ABSL_GUARDED_BY(mu_);
  WorkloadStats stats_ ABSL_GUARDED_BY(mu_);
};

// Every record of `topic`: all partitions read from the beginning up to the high watermark taken
// when the call starts (call it once nothing is being produced any more). Within a partition the
// records are in offset order. Reads with isolation.level=read_committed: on a real Kafka,
// records of aborted or open transactions are not returned, and a partition is read through once
// the reader reaches its end (the last offsets may be transaction markers, never delivered).
absl::StatusOr<std::vector<KafkaRecord>> ReadWholeTopic(absl::string_view brokers,
                                                        absl::string_view topic,
                                                        absl::Duration deadline = absl::Seconds(60));

struct Delivery {
  std::string tag;
  std::string aggregate;
  int64_t n = 0;
  uint64_t commit_lsn = 0;
  int32_t partition = 0;
  int64_t offset = 0;
};

struct CheckResult {
  int64_t records = 0;
  int64_t events = 0;      // distinct tags delivered
  int64_t duplicates = 0;  // records - events
  int64_t committed = 0;
  std::vector<std::string> missing;             // committed, never delivered
  std::vector<std::string> rolled_back_present;  // rolled back (or in a rolled-back savepoint)
  std::vector<std::string> unknown_present;      // outcome still unknown, or not ours
  std::vector<std::string> order_violations;     // first deliveries out of commit order
  std::vector<std::string> undecodable;
  // First deliveries in read order (per partition, offset order), for scenario-specific checks.
  std::vector<Delivery> first_deliveries;

  bool Ok() const {
    return missing.empty() && rolled_back_present.empty() && unknown_present.empty() &&
           order_violations.empty() && undecodable.empty();
  }
  // Counts and the first few tags of each kind of failure.
  std::string Describe() const;
};

// Compares what was committed with what was read. `excluded` are tags checked elsewhere (e.g.
// an event the scenario expects in the dead-letter topic instead).
CheckResult Check(const std::unordered_map<std::string, Outcome>& outcomes,
                  const std::vector<KafkaRecord>& records,
                  const std::unordered_set<std::string>& excluded = {});

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_FAULTS_WORKLOAD_H_
