// The bench's Kafka consumer: reads one topic from the beginning of every partition and turns
// each event's writer clock ("t_commit_us" in its JSON payload) into a commit-to-consume
// latency.
//
//   auto consumer = LatencyConsumer::Start(brokers, topic, partitions, fetch_wait_ms);
//   (*consumer)->SetWindow(window_start_us, window_end_us);
//   ... load ...
//   std::vector<int64_t> latencies_us = (*consumer)->TakeLatencies();
//
// Events whose writer clock lies in [window_start, window_end) are measured; every event is
// counted. Threads: one consumer thread owns the librdkafka handle; counters are atomics read
// from any thread, the latency samples are handed over under a mutex.
#ifndef OUTBOXD_BENCH_SUITE_LATENCY_CONSUMER_H_
#define OUTBOXD_BENCH_SUITE_LATENCY_CONSUMER_H_

#include <atomic>
#include <climits>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "librdkafka/rdkafka.h"
#include "outboxd/v1/event.pb.h"

namespace outboxd::bench {

class LatencyConsumer {
 public:
  // Assigns every partition of `topic` from the beginning and returns once the consumer has
  // fetched a few times, so its start-up is not in the measurement. `fetch_wait_ms` is its
  // fetch.wait.max.ms.
  static absl::StatusOr<std::unique_ptr<LatencyConsumer>> Start(const std::string& brokers,
                                                                const std::string& topic,
                                                                int partitions,
                                                                int fetch_wait_ms);
  ~LatencyConsumer();
  LatencyConsumer(const LatencyConsumer&) = delete;
  LatencyConsumer& operator=(const LatencyConsumer&) = delete;

  void SetWindow(int64_t start_us, int64_t end_us) {
    window_start_.store(start_us);
    window_end_.store(end_us);
  }
  int64_t total() const { return total_.load(); }
  int64_t measured() const { return measured_.load(); }
  int64_t last_consume_us() const { return last_consume_us_.load(); }
  int64_t first_consume_us() const { return first_consume_us_.load(); }
  std::vector<int64_t> TakeLatencies();

 private:
  explicit LatencyConsumer(rd_kafka_t* rk) : rk_(rk) {}
  void Loop();

  rd_kafka_t* rk_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> polls_{0};
  std::atomic<int64_t> total_{0};
  std::atomic<int64_t> measured_{0};
  std::atomic<int64_t> last_consume_us_{0};
  std::atomic<int64_t> first_consume_us_{0};
  std::atomic<int64_t> window_start_{INT64_MAX};
  std::atomic<int64_t> window_end_{INT64_MAX};
  outboxd::v1::OutboxEvent event_;  // consumer thread only
  std::mutex mu_;
  std::vector<int64_t> latencies_us_ ABSL_GUARDED_BY(mu_);
};

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_LATENCY_CONSUMER_H_
