// Reader: checked big-endian reads over a byte span, as the PostgreSQL wire
// protocols use.
//
//   Reader r(bytes);
//   absl::StatusOr<uint32_t> oid = r.ReadInt<uint32_t>();
//   absl::StatusOr<absl::string_view> name = r.ReadCString();
//
// Reading past the end is a kTruncated error (absl::OutOfRangeError); a read
// that finds bytes it cannot accept is the caller's kMalformed error
// (absl::InvalidArgumentError, via Malformed()). The two stay distinct so a
// caller can tell "need more bytes" from "these bytes are wrong".
#ifndef OUTBOXD_DECODER_READER_H_
#define OUTBOXD_DECODER_READER_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace outboxd::decoder {

class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> bytes) : bytes_(bytes) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return bytes_.size() - offset_; }
  bool AtEnd() const { return offset_ == bytes_.size(); }

  template <typename T>
  absl::StatusOr<T> ReadInt() {
    static_assert(std::is_integral_v<T>);
    if (remaining() < sizeof(T)) return Truncated(sizeof(T));
    std::make_unsigned_t<T> v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v = static_cast<decltype(v)>((v << 8) | bytes_[offset_ + i]);
    offset_ += sizeof(T);
    return static_cast<T>(v);
  }

  absl::StatusOr<uint8_t> ReadByte() { return ReadInt<uint8_t>(); }

  // Exactly n bytes, as a view into the underlying buffer.
  absl::StatusOr<absl::string_view> ReadBytes(size_t n) {
    if (remaining() < n) return Truncated(n);
    absl::string_view out(reinterpret_cast<const char*>(bytes_.data()) + offset_, n);
    offset_ += n;
    return out;
  }

  // A NUL-terminated string (the terminator is consumed, not returned).
  absl::StatusOr<absl::string_view> ReadCString() {
    const void* nul = std::memchr(bytes_.data() + offset_, 0, remaining());
    if (nul == nullptr) {
      return absl::OutOfRangeError(
          absl::StrCat("truncated: string at offset ", offset_, " has no terminating NUL"));
    }
    const size_t len = static_cast<const uint8_t*>(nul) - (bytes_.data() + offset_);
    absl::string_view out(reinterpret_cast<const char*>(bytes_.data()) + offset_, len);
    offset_ += len + 1;
    return out;
  }

  absl::Status Malformed(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("malformed: ", what, " at offset ", offset_));
  }

 private:
  absl::Status Truncated(size_t wanted) const {
    return absl::OutOfRangeError(absl::StrCat("truncated: need ", wanted, " bytes at offset ",
                                              offset_, ", have ", remaining()));
  }

  absl::Span<const uint8_t> bytes_;
  size_t offset_ = 0;
};

// Both error kinds as predicates, for callers and tests.
inline bool IsTruncated(const absl::Status& s) { return absl::IsOutOfRange(s); }
inline bool IsMalformed(const absl::Status& s) { return absl::IsInvalidArgument(s); }

}  // namespace outboxd::decoder

#endif  // OUTBOXD_DECODER_READER_H_
