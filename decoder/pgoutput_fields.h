// The field readers every pgoutput message parser shares: LSNs, xids, flags,
// tuples, counts that bound allocations, and the wording of errors. Internal
// to decoder/ (pgoutput.cc is its only user); kept apart so each file stays
// about one thing.
#ifndef OUTBOXD_DECODER_PGOUTPUT_FIELDS_H_
#define OUTBOXD_DECODER_PGOUTPUT_FIELDS_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "decoder/pgoutput.h"
#include "decoder/reader.h"
#include "outboxd/lsn.h"

namespace outboxd::decoder::fields {

// Names for every message letter PostgreSQL's logicalrep_message_type() knows.
absl::string_view MessageName(uint8_t type);

// Prefixes an error with the message it came from, keeping its code so
// IsTruncated/IsMalformed still answer for the caller.
absl::Status InMessage(uint8_t type, const Lsn* lsn, const absl::Status& status);

// A count read from the wire promises at least `count * min_bytes` more bytes.
// Checking that before reserve() bounds an allocation by the input size, so a
// hostile count cannot make us allocate gigabytes. Too few bytes left means
// the message was cut short, which is what a truncated prefix looks like too.
absl::Status CheckCountFits(const Reader& r, size_t count, size_t min_bytes,
                            absl::string_view what);

// Reader::Malformed reports the offset after the last read; a field that
// fails validation has already been read, so point back at its first byte.
template <typename Field>
absl::Status BadField(const Reader& r, const Field&, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed: ", what, " at offset ", r.offset() - sizeof(Field)));
}

absl::StatusOr<Lsn> ReadLsn(Reader& r);

// An LSN the reference reader refuses when it is 0/0: a position nothing can
// be confirmed or applied at.
absl::StatusOr<Lsn> ReadValidLsn(Reader& r, absl::string_view what);

// An xid that the writer only sends when it is valid (not 0).
absl::StatusOr<pgoutput::Xid> ReadValidXid(Reader& r, absl::string_view what);

// A flags byte no PostgreSQL version sets yet; a future server that sets one
// means something we would silently misread.
absl::Status ReadZeroFlags(Reader& r, uint8_t& flags);

// Inside a stream block, the changes and their Relation/Type carry the xid of
// the (sub)transaction right after the type byte.
absl::Status ReadStreamXid(Reader& r, bool in_stream, std::optional<pgoutput::Xid>& xid);

// TupleData: Int16 column count, then per column a kind byte and, for 't' and
// 'b', an Int32 length and that many bytes.
absl::Status ReadTuple(Reader& r, pgoutput::TupleData& tuple);

}  // namespace outboxd::decoder::fields

#endif  // OUTBOXD_DECODER_PGOUTPUT_FIELDS_H_
