// Lsn: a position in PostgreSQL's write-ahead log.
//
//   outboxd::Lsn lsn(0x16B3748);
//   lsn.ToString();                          // "0/16B3748"
//   absl::StatusOr<Lsn> parsed = Lsn::Parse("0/16B3748");
//
// A value type shared by every module (decoder, checkpoint, cdc), so it lives
// beside the event envelope in proto/ rather than in any one of them.
#ifndef OUTBOXD_PROTO_OUTBOXD_LSN_H_
#define OUTBOXD_PROTO_OUTBOXD_LSN_H_

#include <compare>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace outboxd {

class Lsn {
 public:
  constexpr Lsn() = default;
  constexpr explicit Lsn(uint64_t value) : value_(value) {}

  // Parses PostgreSQL's text form "X/Y" (hexadecimal high and low 32 bits).
  static absl::StatusOr<Lsn> Parse(absl::string_view text);

  constexpr uint64_t value() const { return value_; }
  constexpr bool valid() const { return value_ != 0; }
  std::string ToString() const;

  friend constexpr auto operator<=>(Lsn, Lsn) = default;

 private:
  uint64_t value_ = 0;  // 0 is InvalidXLogRecPtr in PostgreSQL.
};

}  // namespace outboxd

#endif  // OUTBOXD_PROTO_OUTBOXD_LSN_H_
