// OutboxDecoder: pgoutput messages in stream order → outbox events.
//
//   OutboxDecoder decoder(OutboxTable{"public", "outbox_events"}, OutboxColumns{});
//   for each (message, wal position):
//     absl::StatusOr<std::optional<DecodedEvent>> ev = decoder.Decode(message, lsn);
//     if (!ev.ok())  -> the stream cannot go on (e.g. the table lost a column)
//     if (*ev)       -> produce (*ev)->event
//
// Only INSERTs into the configured table become events; UPDATE, DELETE and
// other tables are ignored. With OutboxSource::messages, so do transactional
// logical decoding messages with the configured prefix, whose content is a
// JSON object: {"aggregate_type", "aggregate_id", "event_type", "payload",
// optional "id" (default: the message's LSN, stable across redeliveries),
// "headers" (object of strings), "topic"}. Non-transactional messages are
// ignored: they are not part of a transaction that could roll back.
// JSON is read with JsonReader: a field given as a number keeps the number's
// exact text (id 1234567 is "1234567"), and the payload is the payload
// value's JSON text exactly as written, so nothing passes through a double.
// A row or message that cannot be routed (a NULL/missing id, aggregate type,
// aggregate id or event type; headers that are not a JSON object; content
// that is not JSON) still becomes an event, marked with dead_letter_reason,
// so nothing is dropped.
//
// Thread: owned by the stream thread; not thread-safe.
#ifndef OUTBOXD_DECODER_OUTBOX_DECODER_H_
#define OUTBOXD_DECODER_OUTBOX_DECODER_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "decoder/json_reader.h"
#include "decoder/pgoutput.h"
#include "decoder/relation_cache.h"
#include "outboxd/lsn.h"
#include "outboxd/v1/event.pb.h"

namespace outboxd::decoder {

struct OutboxTable {
  std::string schema = "public";
  std::string name = "outbox_events";

  // "name" (schema public) or "schema.name"; PostgreSQL's unquoted identifier
  // rules are not applied: give the names as stored in the catalog.
  static absl::StatusOr<OutboxTable> Parse(absl::string_view qualified);
  std::string QualifiedName() const { return schema + "." + name; }
};

// Column names of the outbox table; headers and topic are optional columns.
struct OutboxColumns {
  std::string id = "id";
  std::string aggregate_type = "aggregate_type";
  std::string aggregate_id = "aggregate_id";
  std::string event_type = "event_type";
  std::string payload = "payload";
  std::string headers = "headers";
  std::string topic = "topic";
};

// Where events come from: INSERTs into the outbox table, transactional
// logical decoding messages (pg_logical_emit_message(true, prefix, json)), or both.
struct OutboxSource {
  bool table = true;
  bool messages = false;
  std::string message_prefix = "outbox";
};

struct DecodedEvent {
  v1::OutboxEvent event;
  std::string topic_override;      // The row's topic column, when set.
  std::string dead_letter_reason;  // Non-empty: route to the dead-letter topic.
};

class OutboxDecoder {
 public:
  OutboxDecoder(OutboxTable table, OutboxColumns columns, OutboxSource source = {});

  // lsn: the WAL position of the XLogData that carried the message.
  absl::StatusOr<std::optional<DecodedEvent>> Decode(const Message& message, Lsn lsn);
  // The same into *out, reusing its memory (the relay keeps one for every
  // event): true when the message was an event and *out holds it; otherwise
  // *out is unspecified.
  absl::StatusOr<bool> Decode(const Message& message, Lsn lsn, DecodedEvent* out);

  // A new replication connection: relations are sent again.
  void Reset();

 private:
  // Column positions of the outbox table in the current Relation; -1 if absent.
  struct ColumnMap {
    int id = -1, aggregate_type = -1, aggregate_id = -1, event_type = -1, payload = -1,
        headers = -1, topic = -1;
    pgoutput::Oid payload_type = 0;
  };

  absl::Status OnRelation(const pgoutput::Relation& relation);
  void MakeEvent(const pgoutput::TupleData& tuple, Lsn lsn, DecodedEvent* reuse);
  void MakeEventFromMessage(const pgoutput::LogicalMessage& message, DecodedEvent* reuse);
  void SetSource(v1::OutboxEvent& event, Lsn lsn, absl::string_view origin) const;

  OutboxTable table_;
  std::string qualified_table_;  // table_.QualifiedName(), built once: it goes into every event
  OutboxColumns columns_;
  OutboxSource source_;
  std::string message_origin_;  // "message:<prefix>", the source table of message events
  JsonReader json_;
  RelationCache relations_;
  std::optional<pgoutput::Oid> outbox_oid_;
  ColumnMap map_;
  // Of the transaction being decoded.
  pgoutput::Begin begin_;
};

}  // namespace outboxd::decoder

#endif  // OUTBOXD_DECODER_OUTBOX_DECODER_H_
