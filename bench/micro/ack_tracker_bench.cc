// AckTracker cost per transaction: BeginTransaction, AddEvent (x N),
// CommitTransaction, Ack (x N), SafeLsn.
//
//   build/bin/ack_tracker_bench
//
// items_per_second = transactions/s (Arg = events per transaction).
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "checkpoint/ack_tracker.h"

namespace outboxd::checkpoint {
namespace {

// Acknowledged at once: the steady state with a fast broker.
void BM_AckTrackerCycle(benchmark::State& state) {
  const int events = static_cast<int>(state.range(0));
  AckTracker tracker;
  std::vector<AckTracker::Ticket> tickets(events);
  uint64_t lsn = 0x1000;
  for (auto _ : state) {
    tracker.BeginTransaction();
    for (int i = 0; i < events; ++i) tickets[i] = tracker.AddEvent();
    lsn += 0x100;
    tracker.CommitTransaction(Lsn(lsn));
    for (int i = 0; i < events; ++i) tracker.Ack(tickets[i]);
    benchmark::DoNotOptimize(tracker.SafeLsn());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["events/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * events,
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AckTrackerCycle)->Arg(1)->Arg(10);

// Acknowledgements lag 1,000 transactions behind: the tracker holds a window
// of in-flight transactions, as with a slow broker.
void BM_AckTrackerWindow(benchmark::State& state) {
  constexpr size_t kWindow = 1000;
  AckTracker tracker;
  std::vector<AckTracker::Ticket> ring(kWindow);
  uint64_t lsn = 0x1000;
  size_t n = 0;
  for (auto _ : state) {
    const size_t slot = n++ % kWindow;
    if (n > kWindow) tracker.Ack(ring[slot]);
    tracker.BeginTransaction();
    ring[slot] = tracker.AddEvent();
    lsn += 0x100;
    tracker.CommitTransaction(Lsn(lsn));
    benchmark::DoNotOptimize(tracker.SafeLsn());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AckTrackerWindow);

}  // namespace
}  // namespace outboxd::checkpoint
