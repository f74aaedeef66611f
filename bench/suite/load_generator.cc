// The bench's load generator; see load_generator.h.

#include "bench/suite/load_generator.h"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace outboxd::bench {

using pq::PgResult;

int64_t NowUs() { return absl::GetCurrentTimeNanos() / 1000; }

int64_t CommitClockUs(absl::string_view payload) {
  static constexpr absl::string_view kKey = "\"t_commit_us\": ";
  size_t pos = payload.find(kKey);
  if (pos == absl::string_view::npos) return -1;
  int64_t t = 0;
  bool any = false;
  for (pos += kKey.size(); pos < payload.size() && payload[pos] >= '0' && payload[pos] <= '9';
       ++pos) {
    t = t * 10 + (payload[pos] - '0');
    any = true;
  }
  return any ? t : -1;
}

absl::StatusOr<std::unique_ptr<Writer>> Writer::Connect(const std::string& conninfo,
                                                        const LoadSpec& spec, int index) {
  std::unique_ptr<Writer> w(new Writer(spec, index));
  w->conn_.reset(PQconnectdb(conninfo.c_str()));
  if (PQstatus(w->conn_.get()) != CONNECTION_OK) {
    return absl::UnavailableError(PQerrorMessage(w->conn_.get()));
  }
  const std::string sql = absl::StrCat(
      "INSERT INTO ", spec.table,
      " (aggregate_type, aggregate_id, event_type, payload) SELECT $1, $2 || '-' || g, "
      "'BenchEvent', jsonb_build_object('t_commit_us', $3::bigint, 'pad', $4::text) "
      "FROM generate_series(1, $5::int) g");
  PgResult r(PQprepare(w->conn_.get(), "ins", sql.c_str(), 0, nullptr));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    return absl::InternalError(PQerrorMessage(w->conn_.get()));
  }
  w->backend_pid_ = PQbackendPID(w->conn_.get());
  return w;
}

void Writer::Run(int64_t start_us, int64_t end_us, int64_t window_start, int64_t window_end) {
  std::mt19937 rng(index_ * 7919 + 1);
  const double tx_rate = spec_.rate / spec_.events_per_tx / spec_.writers;
  const double interval_us = spec_.rate > 0 ? 1e6 / tx_rate : 0;
  // Writers start spread over one interval so they do not commit in lock step.
  double next = start_us + interval_us * index_ / spec_.writers;
  const std::string pad(std::max(0, spec_.payload_bytes - 45), 'x');
  const std::string n = absl::StrCat(spec_.events_per_tx);
  while (true) {
    int64_t now = NowUs();
    if (now >= end_us) break;
    if (interval_us > 0) {
      if (now < next) {
        std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(next - now)));
      } else if (now > next + 50000) {
        next = now;  // more than 50 ms behind: the machine cannot offer this rate; do not burst
      }
      next += interval_us;
    }
    const std::string aggregate = absl::StrCat("w", index_, "-a", rng() % 1000);
    // The writer's clock just before the INSERT+COMMIT round trip (autocommit).
    const int64_t t = NowUs();
    const std::string ts = absl::StrCat(t);
    const char* params[] = {spec_.aggregate_type.c_str(), aggregate.c_str(), ts.c_str(),
                            pad.c_str(), n.c_str()};
    PgResult r(PQexecPrepared(conn_.get(), "ins", 5, params, nullptr, nullptr, 0));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      status_ = absl::InternalError(PQerrorMessage(conn_.get()));
      return;
    }
    sent_ += spec_.events_per_tx;
    if (t >= window_start && t < window_end) in_window_ += spec_.events_per_tx;
  }
}

}  // namespace outboxd::bench
