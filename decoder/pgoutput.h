// pgoutput: the messages PostgreSQL's built-in logical replication output
// plugin sends, and a parser from one message's bytes to a value.
//
//   PgOutputParser parser(/*protocol_version=*/4);
//   absl::StatusOr<Message> msg = parser.Parse(xlogdata_payload, xlogdata_lsn);
//   if (auto* insert = std::get_if<pgoutput::Insert>(&*msg)) { ... }
//
// The layout follows "Logical Replication Message Formats" in the PostgreSQL
// documentation and the reference writer,
// src/backend/replication/logical/proto.c, for protocol versions 1 to 4:
//   1: Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate,
//      Message;
//   2: + Stream Start/Stop/Commit/Abort (option streaming 'on'); between Stream
//      Start and Stream Stop, Relation, Type, Insert, Update, Delete, Truncate
//      and Message carry the (sub)transaction's xid right after the type byte;
//   3: + Begin Prepare, Prepare, Commit Prepared, Rollback Prepared, Stream
//      Prepare (option two_phase);
//   4: + Stream Abort carries the abort LSN and time when the subscriber asked
//      for streaming 'parallel' (the only layout change; see Options).
// Views (string_view) in a parsed message point into the input bytes: the
// caller keeps those bytes alive while it uses the message.
//
// Errors: a message that ends early is "truncated" (IsTruncated), one with an
// unknown type, flag or tuple kind, or a message the protocol version or the
// stream state does not allow, is "malformed" (IsMalformed); both name the
// message type, the byte offset and, when the caller passes it, the LSN.
// Trailing bytes after a complete message are malformed. The parser never
// asserts on input.
//
// Thread: owned by one thread (the stream thread). The parser keeps one bit
// of stream state (inside Stream Start..Stream Stop or not), which decides
// whether changes carry an xid; a failed Parse leaves that state unchanged.
#ifndef OUTBOXD_DECODER_PGOUTPUT_H_
#define OUTBOXD_DECODER_PGOUTPUT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "outboxd/lsn.h"

namespace outboxd::decoder {
namespace pgoutput {

using Oid = uint32_t;
using Xid = uint32_t;
// Microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's TimestampTz).
using PgTimestamp = int64_t;

// One column value of a TupleData.
struct Datum {
  enum class Kind : char { kNull = 'n', kUnchangedToast = 'u', kText = 't', kBinary = 'b' };
  Kind kind = Kind::kNull;
  absl::string_view value;  // Set for kText and kBinary.
};

struct TupleData {
  std::vector<Datum> columns;
};

struct Begin {
  Lsn final_lsn;  // LSN of the commit record.
  PgTimestamp commit_time = 0;
  Xid xid = 0;
};

struct Commit {
  uint8_t flags = 0;  // Currently always 0.
  Lsn commit_lsn;     // LSN of the commit record.
  Lsn end_lsn;        // End of the commit record: the position to confirm.
  PgTimestamp commit_time = 0;
};

struct Origin {
  Lsn commit_lsn;
  absl::string_view name;
};

struct RelationColumn {
  bool part_of_key = false;
  std::string name;
  Oid type_oid = 0;
  int32_t type_modifier = -1;
};

// Relation owns its strings: the relation cache keeps it past the message.
struct Relation {
  std::optional<Xid> xid;  // Set inside a streamed transaction (v2+).
  Oid oid = 0;
  std::string namespace_name;  // Empty means pg_catalog.
  std::string relation_name;
  char replica_identity = 'd';
  std::vector<RelationColumn> columns;
};

struct Type {
  std::optional<Xid> xid;
  Oid oid = 0;
  absl::string_view namespace_name;
  absl::string_view type_name;
};

struct Insert {
  std::optional<Xid> xid;
  Oid relation_oid = 0;
  TupleData new_tuple;
};

struct Update {
  std::optional<Xid> xid;
  Oid relation_oid = 0;
  // 'K' (key columns) or 'O' (whole old row) when the server sent one.
  char old_kind = 0;
  std::optional<TupleData> old_tuple;
  TupleData new_tuple;
};

struct Delete {
  std::optional<Xid> xid;
  Oid relation_oid = 0;
  char old_kind = 'K';  // 'K' or 'O'.
  TupleData old_tuple;
};

struct Truncate {
  std::optional<Xid> xid;
  uint8_t options = 0;  // 1 = CASCADE, 2 = RESTART IDENTITY.
  std::vector<Oid> relation_oids;
};

// pg_logical_emit_message().
struct LogicalMessage {
  std::optional<Xid> xid;
  bool transactional = false;
  Lsn lsn;
  absl::string_view prefix;
  absl::string_view content;
};

// --- Streaming of in-progress transactions (protocol version 2+). ---------

// Opens a block of changes of a transaction that has not committed yet. The
// same transaction may be streamed in several blocks; the first has
// first_segment set.
struct StreamStart {
  Xid xid = 0;
  bool first_segment = false;
};

// Closes the block opened by the last StreamStart.
struct StreamStop {};

// The streamed transaction committed: apply its blocks.
struct StreamCommit {
  Xid xid = 0;
  uint8_t flags = 0;  // Currently always 0.
  Lsn commit_lsn;
  Lsn end_lsn;  // The position to confirm.
  PgTimestamp commit_time = 0;
};

// The streamed transaction (xid == subxid) or one of its subtransactions
// (subxid) aborted: discard its changes.
struct StreamAbort {
  Xid xid = 0;
  Xid subxid = 0;
  // Version 4 with streaming 'parallel' only.
  std::optional<Lsn> abort_lsn;
  std::optional<PgTimestamp> abort_time;
};

// --- Two-phase commit (protocol version 3+, option two_phase). -------------

struct BeginPrepare {
  Lsn prepare_lsn;  // LSN of the PREPARE TRANSACTION record.
  Lsn end_lsn;      // End of that record.
  PgTimestamp prepare_time = 0;
  Xid xid = 0;
  absl::string_view gid;  // The name given to PREPARE TRANSACTION.
};

struct Prepare {
  uint8_t flags = 0;  // Currently always 0.
  Lsn prepare_lsn;
  Lsn end_lsn;
  PgTimestamp prepare_time = 0;
  Xid xid = 0;
  absl::string_view gid;
};

struct CommitPrepared {
  uint8_t flags = 0;  // Currently always 0.
  Lsn commit_lsn;     // LSN of the COMMIT PREPARED record.
  Lsn end_lsn;        // End of that record: the position to confirm.
  PgTimestamp commit_time = 0;
  Xid xid = 0;
  absl::string_view gid;
};

struct RollbackPrepared {
  uint8_t flags = 0;  // Currently always 0.
  Lsn prepare_end_lsn;
  Lsn rollback_end_lsn;
  PgTimestamp prepare_time = 0;
  PgTimestamp rollback_time = 0;
  Xid xid = 0;
  absl::string_view gid;
};

// A streamed transaction was prepared (streaming and two_phase both on). Same
// layout as Prepare.
struct StreamPrepare {
  uint8_t flags = 0;
  Lsn prepare_lsn;
  Lsn end_lsn;
  PgTimestamp prepare_time = 0;
  Xid xid = 0;
  absl::string_view gid;
};

}  // namespace pgoutput

// Alternatives 0-9 are the protocol version 1 messages, in this order; the
// later versions' messages follow.
using Message =
    std::variant<pgoutput::Begin, pgoutput::Commit, pgoutput::Origin, pgoutput::Relation,
                 pgoutput::Type, pgoutput::Insert, pgoutput::Update, pgoutput::Delete,
                 pgoutput::Truncate, pgoutput::LogicalMessage, pgoutput::StreamStart,
                 pgoutput::StreamStop, pgoutput::StreamCommit, pgoutput::StreamAbort,
                 pgoutput::BeginPrepare, pgoutput::Prepare, pgoutput::CommitPrepared,
                 pgoutput::RollbackPrepared, pgoutput::StreamPrepare>;

// "insert", "stream_start", ...: a stable lower-case name per alternative.
absl::string_view MessageTypeName(const Message& message);

class PgOutputParser {
 public:
  // protocol_version is what START_REPLICATION asked for (1 to 4). Messages
  // of a later version than that are rejected as malformed.
  // parallel_streaming: START_REPLICATION asked for streaming 'parallel'
  // (version 4), so Stream Abort carries the abort LSN and time; the message
  // itself does not say, which is why the parser must be told.
  explicit PgOutputParser(int protocol_version = 1, bool parallel_streaming = false)
      : protocol_version_(protocol_version), parallel_streaming_(parallel_streaming) {}

  // Parses exactly one message: the payload of one XLogData. Not const: a
  // Stream Start or Stream Stop changes how the following messages are read.
  absl::StatusOr<Message> Parse(absl::Span<const uint8_t> bytes) { return Parse(bytes, nullptr); }
  // The same, with the XLogData's WAL position named in any error.
  absl::StatusOr<Message> Parse(absl::Span<const uint8_t> bytes, Lsn lsn) {
    return Parse(bytes, &lsn);
  }
  absl::StatusOr<Message> Parse(absl::string_view bytes) { return Parse(AsSpan(bytes), nullptr); }
  absl::StatusOr<Message> Parse(absl::string_view bytes, Lsn lsn) {
    return Parse(AsSpan(bytes), &lsn);
  }

  // A new replication connection starts outside any stream block.
  void Reset() { in_stream_ = false; }

  int protocol_version() const { return protocol_version_; }
  bool parallel_streaming() const { return parallel_streaming_; }
  // Between Stream Start and Stream Stop.
  bool in_stream() const { return in_stream_; }

 private:
  static absl::Span<const uint8_t> AsSpan(absl::string_view bytes) {
    return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  absl::StatusOr<Message> Parse(absl::Span<const uint8_t> bytes, const Lsn* lsn);

  int protocol_version_;
  bool parallel_streaming_;
  bool in_stream_ = false;
};

}  // namespace outboxd::decoder

#endif  // OUTBOXD_DECODER_PGOUTPUT_H_
