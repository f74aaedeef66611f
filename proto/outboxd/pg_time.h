// PostgreSQL's wire timestamps (TimestampTz) count microseconds from
// 2000-01-01 00:00:00 UTC; everything else in outboxd uses the Unix epoch.
//
//   int64_t unix_us = outboxd::PgToUnixMicros(begin.commit_time);
#ifndef OUTBOXD_PROTO_OUTBOXD_PG_TIME_H_
#define OUTBOXD_PROTO_OUTBOXD_PG_TIME_H_

#include <cstdint>

namespace outboxd {

inline constexpr int64_t kPgEpochUnixMicros = 946684800LL * 1000000;

constexpr int64_t PgToUnixMicros(int64_t pg_micros) { return pg_micros + kPgEpochUnixMicros; }
constexpr int64_t UnixToPgMicros(int64_t unix_micros) { return unix_micros - kPgEpochUnixMicros; }

}  // namespace outboxd

#endif  // OUTBOXD_PROTO_OUTBOXD_PG_TIME_H_
