// pgoutput: the messages PostgreSQL's built-in logical replication output
// plugin sends, and a parser from one message's bytes to a value.
//
//   PgOutputParser parser(/*protocol_version=*/1);
//   absl::StatusOr<pgoutput::Message> msg = parser.Parse(xlogdata_payload);
//   if (auto* insert = std::get_if<pgoutput::Insert>(&*msg)) { ... }
//
// The layout follows "Logical Replication Message Formats" in the PostgreSQL
// documentation and the reference writer, src/backend/replication/logical/proto.c.
// Views (string_view) in a parsed message point into the input bytes: the
// caller keeps those bytes alive while it uses the message.
//
// Errors: a message that ends early is "truncated" (IsTruncated), one with an
// unknown type, flag or tuple kind is "malformed" (IsMalformed); both messages
// name the message type and the byte offset. Trailing bytes after a complete
// message are malformed. The parser never asserts on input.
//
// Thread: pure and stateless apart from the protocol version; any thread.
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

}  // namespace pgoutput

using Message =
    std::variant<pgoutput::Begin, pgoutput::Commit, pgoutput::Origin, pgoutput::Relation,
                 pgoutput::Type, pgoutput::Insert, pgoutput::Update, pgoutput::Delete,
                 pgoutput::Truncate, pgoutput::LogicalMessage>;

class PgOutputParser {
 public:
  // protocol_version is what START_REPLICATION asked for; from 2 on, messages
  // inside a streamed transaction carry an xid (not requested by outboxd yet).
  explicit PgOutputParser(int protocol_version = 1) : protocol_version_(protocol_version) {}

  // Parses exactly one message: the payload of one XLogData.
  absl::StatusOr<Message> Parse(absl::Span<const uint8_t> bytes) const;
  absl::StatusOr<Message> Parse(absl::string_view bytes) const {
    return Parse(absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()),
                                           bytes.size()));
  }

  int protocol_version() const { return protocol_version_; }

 private:
  int protocol_version_;
};

}  // namespace outboxd::decoder

#endif  // OUTBOXD_DECODER_PGOUTPUT_H_
