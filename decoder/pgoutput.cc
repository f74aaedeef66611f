#include "decoder/pgoutput.h"

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "decoder/pgoutput_fields.h"
#include "decoder/reader.h"
#include "outboxd/status_macros.h"

namespace outboxd::decoder {
namespace {

using pgoutput::Begin;
using pgoutput::BeginPrepare;
using pgoutput::Commit;
using pgoutput::CommitPrepared;
using pgoutput::Datum;
using pgoutput::Delete;
using pgoutput::Insert;
using pgoutput::LogicalMessage;
using pgoutput::Oid;
using pgoutput::Origin;
using pgoutput::Prepare;
using pgoutput::Relation;
using pgoutput::RelationColumn;
using pgoutput::RollbackPrepared;
using pgoutput::StreamAbort;
using pgoutput::StreamCommit;
using pgoutput::StreamPrepare;
using pgoutput::StreamStart;
using pgoutput::StreamStop;
using pgoutput::Truncate;
using pgoutput::TupleData;
using pgoutput::Type;
using pgoutput::Update;
using pgoutput::Xid;

using fields::BadField;
using fields::CheckCountFits;
using fields::InMessage;
using fields::MessageName;
using fields::ReadLsn;
using fields::ReadStreamXid;
using fields::ReadTuple;
using fields::ReadValidLsn;
using fields::ReadValidXid;
using fields::ReadZeroFlags;

absl::StatusOr<Begin> ParseBegin(Reader& r) {
  Begin m;
  ASSIGN_OR_RETURN(m.final_lsn, ReadLsn(r));
  // The reference reader (logicalrep_read_begin) refuses this too: a
  // transaction without a commit position could never be confirmed.
  if (!m.final_lsn.valid()) return BadField(r, uint64_t{0}, "final LSN is 0/0");
  ASSIGN_OR_RETURN(m.commit_time, r.ReadInt<int64_t>());
  ASSIGN_OR_RETURN(m.xid, r.ReadInt<uint32_t>());
  return m;
}

absl::StatusOr<Commit> ParseCommit(Reader& r) {
  Commit m;
  RETURN_IF_ERROR(ReadZeroFlags(r, m.flags));
  ASSIGN_OR_RETURN(m.commit_lsn, ReadLsn(r));
  ASSIGN_OR_RETURN(m.end_lsn, ReadLsn(r));
  ASSIGN_OR_RETURN(m.commit_time, r.ReadInt<int64_t>());
  return m;
}

absl::StatusOr<Origin> ParseOrigin(Reader& r) {
  Origin m;
  ASSIGN_OR_RETURN(m.commit_lsn, ReadLsn(r));
  ASSIGN_OR_RETURN(m.name, r.ReadCString());
  return m;
}

absl::StatusOr<Relation> ParseRelation(Reader& r, bool in_stream) {
  Relation m;
  RETURN_IF_ERROR(ReadStreamXid(r, in_stream, m.xid));
  ASSIGN_OR_RETURN(m.oid, r.ReadInt<uint32_t>());
  ASSIGN_OR_RETURN(absl::string_view ns, r.ReadCString());
  ASSIGN_OR_RETURN(absl::string_view name, r.ReadCString());
  m.namespace_name = std::string(ns);
  m.relation_name = std::string(name);
  ASSIGN_OR_RETURN(uint8_t identity, r.ReadByte());
  // pg_class.relreplident: default, nothing, full, index.
  if (identity != 'd' && identity != 'n' && identity != 'f' && identity != 'i') {
    return BadField(r, identity, absl::StrFormat("unknown replica identity 0x%02x", identity));
  }
  m.replica_identity = static_cast<char>(identity);
  ASSIGN_OR_RETURN(int16_t ncols, r.ReadInt<int16_t>());
  if (ncols < 0) return BadField(r, ncols, absl::StrCat("negative column count ", ncols));
  // Flags, empty name's NUL, type oid, typmod.
  constexpr size_t kMinColumnBytes = 1 + 1 + 4 + 4;
  RETURN_IF_ERROR(CheckCountFits(r, static_cast<size_t>(ncols), kMinColumnBytes, "column count"));
  m.columns.reserve(static_cast<size_t>(ncols));
  for (int i = 0; i < ncols; ++i) {
    RelationColumn c;
    ASSIGN_OR_RETURN(uint8_t flags, r.ReadByte());
    // Bit 0 is "part of the replica identity key"; no other bit is defined.
    if (flags > 1) {
      return BadField(r, flags, absl::StrCat("unknown flags ", flags, " of column ", i));
    }
    c.part_of_key = flags == 1;
    ASSIGN_OR_RETURN(absl::string_view col_name, r.ReadCString());
    c.name = std::string(col_name);
    ASSIGN_OR_RETURN(c.type_oid, r.ReadInt<uint32_t>());
    ASSIGN_OR_RETURN(c.type_modifier, r.ReadInt<int32_t>());
    m.columns.push_back(std::move(c));
  }
  return m;
}

absl::StatusOr<Type> ParseType(Reader& r, bool in_stream) {
  Type m;
  RETURN_IF_ERROR(ReadStreamXid(r, in_stream, m.xid));
  ASSIGN_OR_RETURN(m.oid, r.ReadInt<uint32_t>());
  ASSIGN_OR_RETURN(m.namespace_name, r.ReadCString());
  ASSIGN_OR_RETURN(m.type_name, r.ReadCString());
  return m;
}

absl::StatusOr<Insert> ParseInsert(Reader& r, bool in_stream) {
  Insert m;
  RETURN_IF_ERROR(ReadStreamXid(r, in_stream, m.xid));
  ASSIGN_OR_RETURN(m.relation_oid, r.ReadInt<uint32_t>());
  ASSIGN_OR_RETURN(uint8_t marker, r.ReadByte());
  if (marker != 'N') {
    return BadField(r, marker, absl::StrFormat("expected new tuple 'N', got 0x%02x", marker));
  }
  RETURN_IF_ERROR(ReadTuple(r, m.new_tuple));
  return m;
}

absl::StatusOr<Update> ParseUpdate(Reader& r, bool in_stream) {
  Update m;
  RETURN_IF_ERROR(ReadStreamXid(r, in_stream, m.xid));
  ASSIGN_OR_RETURN(m.relation_oid, r.ReadInt<uint32_t>());
  ASSIGN_OR_RETURN(uint8_t marker, r.ReadByte());
  // The old row comes first and only when the server has one: 'K' when a key
  // column changed (replica identity default/index), 'O' for identity full.
  if (marker == 'K' || marker == 'O') {
    m.old_kind = static_cast<char>(marker);
    RETURN_IF_ERROR(ReadTuple(r, m.old_tuple.emplace()));
    ASSIGN_OR_RETURN(marker, r.ReadByte());
  }
  if (marker != 'N') {
    return BadField(r, marker, absl::StrFormat("expected new tuple 'N', got 0x%02x", marker));
  }
  RETURN_IF_ERROR(ReadTuple(r, m.new_tuple));
  return m;
}

absl::StatusOr<Delete> ParseDelete(Reader& r, bool in_stream) {
  Delete m;
  RETURN_IF_ERROR(ReadStreamXid(r, in_stream, m.xid));
  ASSIGN_OR_RETURN(m.relation_oid, r.ReadInt<uint32_t>());
  ASSIGN_OR_RETURN(uint8_t marker, r.ReadByte());
  if (marker != 'K' && marker != 'O') {
    return BadField(r, marker,
                    absl::StrFormat("expected old key 'K' or old row 'O', got 0x%02x", marker));
  }
  m.old_kind = static_cast<char>(marker);
  RETURN_IF_ERROR(ReadTuple(r, m.old_tuple));
  return m;
}

absl::StatusOr<Truncate> ParseTruncate(Reader& r, bool in_stream) {
  constexpr uint8_t kCascade = 1;
  constexpr uint8_t kRestartIdentity = 2;
  Truncate m;
  RETURN_IF_ERROR(ReadStreamXid(r, in_stream, m.xid));
  ASSIGN_OR_RETURN(int32_t nrels, r.ReadInt<int32_t>());
  if (nrels < 0) return BadField(r, nrels, absl::StrCat("negative relation count ", nrels));
  ASSIGN_OR_RETURN(m.options, r.ReadByte());
  if ((m.options & ~(kCascade | kRestartIdentity)) != 0) {
    return BadField(r, m.options, absl::StrCat("unknown options ", m.options));
  }
  RETURN_IF_ERROR(CheckCountFits(r, static_cast<size_t>(nrels), 4, "relation count"));
  m.relation_oids.reserve(static_cast<size_t>(nrels));
  for (int32_t i = 0; i < nrels; ++i) {
    ASSIGN_OR_RETURN(Oid oid, r.ReadInt<uint32_t>());
    m.relation_oids.push_back(oid);
  }
  return m;
}

absl::StatusOr<LogicalMessage> ParseLogicalMessage(Reader& r, bool in_stream) {
  LogicalMessage m;
  RETURN_IF_ERROR(ReadStreamXid(r, in_stream, m.xid));
  ASSIGN_OR_RETURN(uint8_t flags, r.ReadByte());
  // Bit 0 is "transactional"; no other bit is defined.
  if (flags > 1) return BadField(r, flags, absl::StrCat("unknown flags ", flags));
  m.transactional = flags == 1;
  ASSIGN_OR_RETURN(m.lsn, ReadLsn(r));
  ASSIGN_OR_RETURN(m.prefix, r.ReadCString());
  // The server writes the length from a Size; as an Int32 on the wire, a
  // negative value can only be damage.
  ASSIGN_OR_RETURN(int32_t len, r.ReadInt<int32_t>());
  if (len < 0) return BadField(r, len, absl::StrCat("negative content length ", len));
  ASSIGN_OR_RETURN(m.content, r.ReadBytes(static_cast<size_t>(len)));
  return m;
}

// --- Streaming (v2+) --------------------------------------------------------

absl::StatusOr<StreamStart> ParseStreamStart(Reader& r) {
  StreamStart m;
  ASSIGN_OR_RETURN(m.xid, ReadValidXid(r, "xid"));
  ASSIGN_OR_RETURN(uint8_t first, r.ReadByte());
  // The writer sends exactly 0 or 1.
  if (first > 1) return BadField(r, first, absl::StrCat("unknown first-segment flag ", first));
  m.first_segment = first == 1;
  return m;
}

absl::StatusOr<StreamCommit> ParseStreamCommit(Reader& r) {
  StreamCommit m;
  ASSIGN_OR_RETURN(m.xid, ReadValidXid(r, "xid"));
  RETURN_IF_ERROR(ReadZeroFlags(r, m.flags));
  ASSIGN_OR_RETURN(m.commit_lsn, ReadLsn(r));
  ASSIGN_OR_RETURN(m.end_lsn, ReadLsn(r));
  ASSIGN_OR_RETURN(m.commit_time, r.ReadInt<int64_t>());
  return m;
}

absl::StatusOr<StreamAbort> ParseStreamAbort(Reader& r, bool abort_info) {
  StreamAbort m;
  ASSIGN_OR_RETURN(m.xid, ReadValidXid(r, "xid"));
  ASSIGN_OR_RETURN(m.subxid, ReadValidXid(r, "subtransaction xid"));
  if (abort_info) {
    ASSIGN_OR_RETURN(m.abort_lsn, ReadLsn(r));
    ASSIGN_OR_RETURN(m.abort_time, r.ReadInt<int64_t>());
  }
  return m;
}

// --- Two-phase (v3+) ---------------------------------------------------------

absl::StatusOr<BeginPrepare> ParseBeginPrepare(Reader& r) {
  BeginPrepare m;
  ASSIGN_OR_RETURN(m.prepare_lsn, ReadValidLsn(r, "prepare LSN"));
  ASSIGN_OR_RETURN(m.end_lsn, ReadValidLsn(r, "end LSN"));
  ASSIGN_OR_RETURN(m.prepare_time, r.ReadInt<int64_t>());
  ASSIGN_OR_RETURN(m.xid, r.ReadInt<uint32_t>());
  ASSIGN_OR_RETURN(m.gid, r.ReadCString());
  return m;
}

// Prepare and Stream Prepare share logicalrep_write_prepare_common().
template <typename T>
absl::StatusOr<T> ParsePrepareCommon(Reader& r) {
  T m;
  RETURN_IF_ERROR(ReadZeroFlags(r, m.flags));
  ASSIGN_OR_RETURN(m.prepare_lsn, ReadValidLsn(r, "prepare LSN"));
  ASSIGN_OR_RETURN(m.end_lsn, ReadValidLsn(r, "end LSN"));
  ASSIGN_OR_RETURN(m.prepare_time, r.ReadInt<int64_t>());
  ASSIGN_OR_RETURN(m.xid, r.ReadInt<uint32_t>());
  ASSIGN_OR_RETURN(m.gid, r.ReadCString());
  return m;
}

absl::StatusOr<CommitPrepared> ParseCommitPrepared(Reader& r) {
  CommitPrepared m;
  RETURN_IF_ERROR(ReadZeroFlags(r, m.flags));
  ASSIGN_OR_RETURN(m.commit_lsn, ReadValidLsn(r, "commit LSN"));
  ASSIGN_OR_RETURN(m.end_lsn, ReadValidLsn(r, "end LSN"));
  ASSIGN_OR_RETURN(m.commit_time, r.ReadInt<int64_t>());
  ASSIGN_OR_RETURN(m.xid, r.ReadInt<uint32_t>());
  ASSIGN_OR_RETURN(m.gid, r.ReadCString());
  return m;
}

absl::StatusOr<RollbackPrepared> ParseRollbackPrepared(Reader& r) {
  RollbackPrepared m;
  RETURN_IF_ERROR(ReadZeroFlags(r, m.flags));
  ASSIGN_OR_RETURN(m.prepare_end_lsn, ReadValidLsn(r, "prepare end LSN"));
  ASSIGN_OR_RETURN(m.rollback_end_lsn, ReadValidLsn(r, "rollback end LSN"));
  ASSIGN_OR_RETURN(m.prepare_time, r.ReadInt<int64_t>());
  ASSIGN_OR_RETURN(m.rollback_time, r.ReadInt<int64_t>());
  ASSIGN_OR_RETURN(m.xid, r.ReadInt<uint32_t>());
  ASSIGN_OR_RETURN(m.gid, r.ReadCString());
  return m;
}

// The first protocol version that has the message; 0 for an unknown letter.
int FirstVersion(uint8_t type) {
  switch (type) {
    case 'B':
    case 'C':
    case 'O':
    case 'R':
    case 'Y':
    case 'I':
    case 'U':
    case 'D':
    case 'T':
    case 'M': return 1;
    case 'S':
    case 'E':
    case 'c':
    case 'A': return 2;
    case 'b':
    case 'P':
    case 'K':
    case 'r':
    case 'p': return 3;
    default: return 0;
  }
}

// Where a message may appear relative to a stream block. Inside one the
// server sends only changes (with their Relation/Type/Origin) and Stream Stop;
// transaction boundaries come outside (proto.c and pgoutput.c assert the same
// on the writing side, worker.c refuses the rest on the reading side).
bool AllowedInStream(uint8_t type) {
  switch (type) {
    case 'O':
    case 'R':
    case 'Y':
    case 'I':
    case 'U':
    case 'D':
    case 'T':
    case 'M':
    case 'E': return true;
    default: return false;
  }
}

struct ParseContext {
  int protocol_version;
  bool in_stream;
  bool abort_info;
};

// An error about the type byte itself, at offset 0.
absl::Status BadType(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed: ", what, " at offset 0"));
}

absl::StatusOr<Message> ParseBody(uint8_t type, Reader& r, const ParseContext& ctx) {
  const int first_version = FirstVersion(type);
  if (first_version == 0) return BadType("unknown message type");
  if (first_version > ctx.protocol_version) {
    return BadType(absl::StrCat("message type of protocol version ", first_version,
                                ", but protocol version ", ctx.protocol_version, " was requested"));
  }
  if (ctx.in_stream && !AllowedInStream(type)) {
    return BadType("message type not allowed between Stream Start and Stream Stop");
  }
  if (!ctx.in_stream && type == 'E') return BadType("Stream Stop without Stream Start");
  switch (type) {
    case 'B': return ParseBegin(r);
    case 'C': return ParseCommit(r);
    case 'O': return ParseOrigin(r);
    case 'R': return ParseRelation(r, ctx.in_stream);
    case 'Y': return ParseType(r, ctx.in_stream);
    case 'I': return ParseInsert(r, ctx.in_stream);
    case 'U': return ParseUpdate(r, ctx.in_stream);
    case 'D': return ParseDelete(r, ctx.in_stream);
    case 'T': return ParseTruncate(r, ctx.in_stream);
    case 'M': return ParseLogicalMessage(r, ctx.in_stream);
    case 'S': return ParseStreamStart(r);
    case 'E': return StreamStop{};
    case 'c': return ParseStreamCommit(r);
    case 'A': return ParseStreamAbort(r, ctx.abort_info);
    case 'b': return ParseBeginPrepare(r);
    case 'P': return ParsePrepareCommon<Prepare>(r);
    case 'K': return ParseCommitPrepared(r);
    case 'r': return ParseRollbackPrepared(r);
    case 'p': return ParsePrepareCommon<StreamPrepare>(r);
    default: return BadType("unknown message type");
  }
}

#undef ASSIGN_OR_RETURN
#undef RETURN_IF_ERROR
#undef OUTBOXD_ASSIGN_OR_RETURN_IMPL_
#undef OUTBOXD_CONCAT_
#undef OUTBOXD_CONCAT_INNER_

}  // namespace

absl::string_view MessageTypeName(const Message& message) {
  static constexpr absl::string_view kNames[] = {"begin",
                                                 "commit",
                                                 "origin",
                                                 "relation",
                                                 "type",
                                                 "insert",
                                                 "update",
                                                 "delete",
                                                 "truncate",
                                                 "message",
                                                 "stream_start",
                                                 "stream_stop",
                                                 "stream_commit",
                                                 "stream_abort",
                                                 "begin_prepare",
                                                 "prepare",
                                                 "commit_prepared",
                                                 "rollback_prepared",
                                                 "stream_prepare"};
  static_assert(std::size(kNames) == std::variant_size_v<Message>);
  return kNames[message.index()];
}

absl::StatusOr<Message> PgOutputParser::Parse(absl::Span<const uint8_t> bytes, const Lsn* lsn) {
  Reader r(bytes);
  absl::StatusOr<uint8_t> type = r.ReadByte();
  if (!type.ok()) {
    return absl::OutOfRangeError(
        absl::StrCat("truncated: empty pgoutput message (no type byte)",
                     lsn != nullptr ? absl::StrCat(" at ", lsn->ToString()) : "", " at offset 0"));
  }
  const ParseContext ctx{protocol_version_, in_stream_,
                         parallel_streaming_ && protocol_version_ >= 4};
  absl::StatusOr<Message> msg = ParseBody(*type, r, ctx);
  if (!msg.ok()) return InMessage(*type, lsn, msg.status());
  if (!r.AtEnd()) {
    return InMessage(
        *type, lsn,
        r.Malformed(absl::StrCat(r.remaining(), " trailing bytes after a complete message")));
  }
  // Only a whole, valid message moves the stream state.
  // (ParseBody refused a Stream Start inside a block and a Stream Stop
  // outside.)
  if (*type == 'S') {
    in_stream_ = true;
  } else if (*type == 'E') {
    in_stream_ = false;
  }
  return msg;
}

}  // namespace outboxd::decoder
