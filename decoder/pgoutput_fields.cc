#include "decoder/pgoutput_fields.h"

#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "outboxd/status_macros.h"

namespace outboxd::decoder::fields {

using pgoutput::Datum;
using pgoutput::TupleData;
using pgoutput::Xid;

// Names for every message letter PostgreSQL's logicalrep_message_type() knows.
absl::string_view MessageName(uint8_t type) {
  switch (type) {
    case 'B': return "Begin";
    case 'C': return "Commit";
    case 'O': return "Origin";
    case 'R': return "Relation";
    case 'Y': return "Type";
    case 'I': return "Insert";
    case 'U': return "Update";
    case 'D': return "Delete";
    case 'T': return "Truncate";
    case 'M': return "Message";
    case 'b': return "Begin Prepare";
    case 'P': return "Prepare";
    case 'K': return "Commit Prepared";
    case 'r': return "Rollback Prepared";
    case 'S': return "Stream Start";
    case 'E': return "Stream Stop";
    case 'c': return "Stream Commit";
    case 'A': return "Stream Abort";
    case 'p': return "Stream Prepare";
    default: return "unknown";
  }
}

// Prefixes an error with the message it came from, keeping its code so
// IsTruncated/IsMalformed still answer for the caller.
absl::Status InMessage(uint8_t type, const Lsn* lsn, const absl::Status& status) {
  const std::string letter = (type >= 0x20 && type < 0x7f) ? absl::StrFormat("'%c'", type)
                                                           : absl::StrFormat("0x%02x", type);
  return absl::Status(
      status.code(), absl::StrCat("pgoutput ", MessageName(type), " (", letter, ") message",
                                  lsn != nullptr ? absl::StrCat(" at ", lsn->ToString()) : "", ": ",
                                  status.message()));
}

// A count read from the wire promises at least `count * min_bytes` more bytes.
// Checking that before reserve() bounds an allocation by the input size, so a
// hostile count cannot make us allocate gigabytes. Too few bytes left means
// the message was cut short, which is what a truncated prefix looks like too.
absl::Status CheckCountFits(const Reader& r, size_t count, size_t min_bytes,
                            absl::string_view what) {
  if (count > r.remaining() / min_bytes) {
    return absl::OutOfRangeError(absl::StrCat("truncated: ", what, " ", count, " needs at least ",
                                              count * min_bytes, " bytes at offset ", r.offset(),
                                              ", have ", r.remaining()));
  }
  return absl::OkStatus();
}

absl::StatusOr<Lsn> ReadLsn(Reader& r) {
  ASSIGN_OR_RETURN(uint64_t v, r.ReadInt<uint64_t>());
  return Lsn(v);
}

// An LSN the reference reader refuses when it is 0/0: a position nothing can
// be confirmed or applied at.
absl::StatusOr<Lsn> ReadValidLsn(Reader& r, absl::string_view what) {
  ASSIGN_OR_RETURN(Lsn lsn, ReadLsn(r));
  if (!lsn.valid()) return BadField(r, uint64_t{0}, absl::StrCat(what, " is 0/0"));
  return lsn;
}

// An xid that the writer only sends when it is valid (not 0).
absl::StatusOr<Xid> ReadValidXid(Reader& r, absl::string_view what) {
  ASSIGN_OR_RETURN(Xid xid, r.ReadInt<uint32_t>());
  if (xid == 0) return BadField(r, xid, absl::StrCat(what, " is 0 (invalid)"));
  return xid;
}

// A flags byte no PostgreSQL version sets yet; a future server that sets one
// means something we would silently misread.
absl::Status ReadZeroFlags(Reader& r, uint8_t& flags) {
  ASSIGN_OR_RETURN(flags, r.ReadByte());
  if (flags != 0) return BadField(r, flags, absl::StrCat("unknown flags ", flags));
  return absl::OkStatus();
}

// Inside a stream block, the changes and their Relation/Type carry the xid of
// the (sub)transaction right after the type byte.
absl::Status ReadStreamXid(Reader& r, bool in_stream, std::optional<Xid>& xid) {
  if (!in_stream) return absl::OkStatus();
  ASSIGN_OR_RETURN(xid, ReadValidXid(r, "xid of a streamed change"));
  return absl::OkStatus();
}

// TupleData: Int16 column count, then per column a kind byte and, for 't' and
// 'b', an Int32 length and that many bytes.
absl::Status ReadTuple(Reader& r, TupleData& tuple) {
  ASSIGN_OR_RETURN(int16_t ncols, r.ReadInt<int16_t>());
  if (ncols < 0) return BadField(r, ncols, absl::StrCat("negative column count ", ncols));
  // Every column takes at least its kind byte.
  RETURN_IF_ERROR(CheckCountFits(r, static_cast<size_t>(ncols), 1, "column count"));
  tuple.columns.clear();
  tuple.columns.reserve(static_cast<size_t>(ncols));
  for (int i = 0; i < ncols; ++i) {
    ASSIGN_OR_RETURN(uint8_t kind, r.ReadByte());
    Datum d;
    switch (kind) {
      case 'n': d.kind = Datum::Kind::kNull; break;
      case 'u':
        // An unchanged TOASTed value: the server did not send it, the old row
        // on the subscriber side still has it.
        d.kind = Datum::Kind::kUnchangedToast;
        break;
      case 't':
      case 'b': {
        d.kind = kind == 't' ? Datum::Kind::kText : Datum::Kind::kBinary;
        ASSIGN_OR_RETURN(int32_t len, r.ReadInt<int32_t>());
        if (len < 0) {
          return BadField(r, len, absl::StrCat("negative length ", len, " of column ", i));
        }
        ASSIGN_OR_RETURN(d.value, r.ReadBytes(static_cast<size_t>(len)));
        break;
      }
      default:
        return BadField(r, kind,
                        absl::StrFormat("unknown tuple data kind 0x%02x of column %d", kind, i));
    }
    tuple.columns.push_back(d);
  }
  return absl::OkStatus();
}

}  // namespace outboxd::decoder::fields
