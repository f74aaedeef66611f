// The Kafka floor: produce -> consume on the same broker with outboxd's producer settings and no
// database, so a latency row reads as "floor + publisher".
//
//   auto floor = FloorProducer::Create(brokers, /*linger_ms=*/1);
//   std::thread t([&] { (*floor)->Run(topic, spec, start_us, end_us, window_start, window_end); });
//
// Each record's value is the JSON a writer would commit ({"t_commit_us": <clock just before
// produce>, "pad": ...}), which the latency consumer reads like Debezium's string values.
// Threads: Run() owns the producer on its own thread; counters are read after it is joined.
#ifndef OUTBOXD_BENCH_SUITE_KAFKA_FLOOR_H_
#define OUTBOXD_BENCH_SUITE_KAFKA_FLOOR_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/suite/load_generator.h"
#include "librdkafka/rdkafka.h"

namespace outboxd::bench {

// outboxd's producer settings (sink/rdkafka_util.cc) that shape latency and durability.
std::string FloorProducerSettings(int linger_ms);

class FloorProducer {
 public:
  static absl::StatusOr<std::unique_ptr<FloorProducer>> Create(const std::string& brokers,
                                                               int linger_ms);
  ~FloorProducer();
  FloorProducer(const FloorProducer&) = delete;
  FloorProducer& operator=(const FloorProducer&) = delete;

  // Produces spec.rate records/s (events_per_tx is ignored) until end_us, then flushes.
  void Run(const std::string& topic, const LoadSpec& spec, int64_t start_us, int64_t end_us,
           int64_t window_start, int64_t window_end);
  int64_t in_window() const { return in_window_; }
  absl::Status status() const { return status_; }

 private:
  explicit FloorProducer(rd_kafka_t* rk) : rk_(rk) {}
  rd_kafka_t* rk_;
  int64_t in_window_ = 0;
  absl::Status status_;
};

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_KAFKA_FLOOR_H_
