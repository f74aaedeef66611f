// Samples the WAL a slot makes the primary keep: pg_current_wal_lsn() - confirmed_flush_lsn,
// once a second, on its own connection and thread.
//
//   auto wal = WalSampler::Start(conninfo, "outboxd");
//   ... run ...
//   std::vector<WalSample> samples = (*wal)->Stop();
//
// Threads: one sampling thread; Stop() joins it and hands the samples over.
#ifndef OUTBOXD_BENCH_SUITE_WAL_SAMPLER_H_
#define OUTBOXD_BENCH_SUITE_WAL_SAMPLER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "pq/handles.h"

namespace outboxd::bench {

struct WalSample {
  double t_s = 0;     // seconds since Start()
  int64_t bytes = 0;  // WAL held by the slot
};

class WalSampler {
 public:
  static absl::StatusOr<std::unique_ptr<WalSampler>> Start(const std::string& conninfo,
                                                           const std::string& slot);
  ~WalSampler();
  WalSampler(const WalSampler&) = delete;
  WalSampler& operator=(const WalSampler&) = delete;

  std::vector<WalSample> Stop();

 private:
  WalSampler() = default;
  void Loop();

  pq::PgConn conn_;  // sampling thread only
  std::string slot_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<WalSample> samples_;  // sampling thread until joined
};

// Mean and max of the samples' bytes (0 when there are none).
double MeanBytes(const std::vector<WalSample>& samples);
int64_t MaxBytes(const std::vector<WalSample>& samples);

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_WAL_SAMPLER_H_
