// WAL held by a slot, sampled once a second; see wal_sampler.h.

#include "bench/suite/wal_sampler.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace outboxd::bench {

absl::StatusOr<std::unique_ptr<WalSampler>> WalSampler::Start(const std::string& conninfo,
                                                              const std::string& slot) {
  std::unique_ptr<WalSampler> s(new WalSampler());
  s->conn_.reset(PQconnectdb(conninfo.c_str()));
  if (PQstatus(s->conn_.get()) != CONNECTION_OK) {
    return absl::UnavailableError(PQerrorMessage(s->conn_.get()));
  }
  s->slot_ = slot;
  s->thread_ = std::thread([p = s.get()] { p->Loop(); });
  return s;
}

WalSampler::~WalSampler() { Stop(); }

std::vector<WalSample> WalSampler::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  return std::move(samples_);
}

void WalSampler::Loop() {
  const absl::Time start = absl::Now();
  absl::Time next = start;
  const char* params[] = {slot_.c_str()};
  while (!stop_.load()) {
    pq::PgResult r(PQexecParams(
        conn_.get(),
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
        "FROM pg_replication_slots WHERE slot_name = $1",
        1, nullptr, params, nullptr, nullptr, 0));
    if (PQresultStatus(r.get()) == PGRES_TUPLES_OK && PQntuples(r.get()) == 1 &&
        !PQgetisnull(r.get(), 0, 0)) {
      samples_.push_back({absl::ToDoubleSeconds(absl::Now() - start),
                          std::strtoll(PQgetvalue(r.get(), 0, 0), nullptr, 10)});
    }
    next += absl::Seconds(1);
    // Short sleeps, so Stop() returns within ~50 ms.
    while (!stop_.load() && absl::Now() < next) absl::SleepFor(absl::Milliseconds(50));
  }
}

double MeanBytes(const std::vector<WalSample>& samples) {
  if (samples.empty()) return 0;
  double sum = 0;
  for (const WalSample& s : samples) sum += s.bytes;
  return sum / samples.size();
}

int64_t MaxBytes(const std::vector<WalSample>& samples) {
  int64_t max = 0;
  for (const WalSample& s : samples) max = std::max(max, s.bytes);
  return max;
}

}  // namespace outboxd::bench
