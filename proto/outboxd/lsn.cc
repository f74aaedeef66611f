#include "outboxd/lsn.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace outboxd {

absl::StatusOr<Lsn> Lsn::Parse(absl::string_view text) {
  const size_t slash = text.find('/');
  uint32_t high = 0;
  uint32_t low = 0;
  if (slash == absl::string_view::npos || slash == 0 || slash + 1 == text.size() ||
      !absl::SimpleHexAtoi(text.substr(0, slash), &high) ||
      !absl::SimpleHexAtoi(text.substr(slash + 1), &low)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not an LSN; expected PostgreSQL's X/Y form, e.g. 0/16B3748"));
  }
  return Lsn((static_cast<uint64_t>(high) << 32) | low);
}

std::string Lsn::ToString() const {
  return absl::StrFormat("%X/%X", static_cast<uint32_t>(value_ >> 32),
                         static_cast<uint32_t>(value_));
}

}  // namespace outboxd
