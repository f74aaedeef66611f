// Record formats: what key, value and headers an outbox event becomes in Kafka
// (--format), and the way back for `outboxd tail`.
//
//   FormatOptions options{.format = Format::kDebezium};
//   EncodedRecord r;
//   EncodeEvent(event, options, /*omit_payload=*/false, &r);   // r.key, r.value, r.headers
//
// Formats (the topic is the same for all; routing is record.h's):
//   envelope     value = the serialized outboxd.v1.OutboxEvent; headers id, event_type, then
//                the event's headers.
//   debezium     what Debezium's Outbox Event Router writes with StringConverter: key =
//                aggregate id, value = the payload as PostgreSQL printed it, header `id`
//                first; then event_type and the event's headers (Debezium has no such).
//   cloudevents  the CloudEvents 1.0 Kafka binding, binary content mode: value = payload,
//                headers ce_specversion, ce_id, ce_source, ce_type, ce_time (commit time,
//                RFC 3339), ce_subject (aggregate id), content-type; then the event's headers.
//   json         value = the event as one JSON object (EventToJson), payload embedded as
//                JSON when it is JSON; headers as envelope.
// Every format keys the record by aggregate id, and lists the event's own headers sorted by
// name (a protobuf map has no order; sorted, a redelivered event carries identical headers).
//
// Pure functions: no I/O, any thread.
#ifndef OUTBOXD_SINK_FORMAT_H_
#define OUTBOXD_SINK_FORMAT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "outboxd/v1/event.pb.h"

namespace outboxd::sink {

using Headers = std::vector<std::pair<std::string, std::string>>;

enum class Format { kEnvelope, kDebezium, kCloudEvents, kJson };

// "envelope", "debezium", "cloudevents" or "json"; anything else is InvalidArgument naming
// the choices.
absl::StatusOr<Format> ParseFormat(absl::string_view name);
absl::string_view FormatName(Format format);

struct FormatOptions {
  Format format = Format::kEnvelope;
  // cloudevents: ce_source of every event when set (--cloudevents_source); otherwise
  // cloudevents_source_prefix followed by the event's source table ("public.outbox_events",
  // or "message:<prefix>" for the messages source).
  std::string cloudevents_source;
  std::string cloudevents_source_prefix = "/outboxd/";  // main: "/outboxd/<database>/"
};

struct EncodedRecord {
  std::string key;
  std::string value;
  Headers headers;
};

// Sets the event's key, value and headers in options.format, reusing the
// strings' buffers. omit_payload: the same record without the payload (the
// dead-letter copy of a record too large for Kafka).
void EncodeEvent(const v1::OutboxEvent& event, const FormatOptions& options, bool omit_payload,
                 std::string* key, std::string* value, Headers* headers);
inline void EncodeEvent(const v1::OutboxEvent& event, const FormatOptions& options, bool omit_payload,
                        EncodedRecord* out) {
  EncodeEvent(event, options, omit_payload, &out->key, &out->value, &out->headers);
}

// A record value of `format` with the payload taken out, when only the record
// is left (the broker rejected it as too large). A value that is not of the
// format is emptied.
void OmitPayload(Format format, std::string* value);

// The event as a JSON object (the json format's value, and what `tail` prints
// for envelope and json records): {"id", "aggregate_type", "aggregate_id",
// "event_type", "payload" (only with include_payload), "payload_type",
// "headers", "source": {"commit_lsn" and "event_lsn" as X/Y, "xid",
// "commit_time" (RFC 3339, UTC), "table"}}. The payload is embedded as it was
// written when it is JSON, as a JSON string when text, base64 when bytes.
void AppendEventJson(const v1::OutboxEvent& event, bool include_payload, std::string* out);

// The payload as a JSON value: itself when it is JSON (newlines, whitespace
// between tokens, become spaces so it stays on one line), else a string
// (bytes: base64). Known JSON types are not parsed again; an unspecified one is.
void AppendPayloadJson(absl::string_view payload, v1::PayloadType type, std::string* out);

// The commit time as RFC 3339 in UTC with microseconds: "2026-11-22T06:32:42.503046Z".
std::string Rfc3339(const google::protobuf::Timestamp& time);

// Reads a json-format value back (LSNs from X/Y); the payload is the embedded
// JSON text as it stands in the value.
absl::StatusOr<v1::OutboxEvent> EventFromJson(absl::string_view value);

// Which format a record read from Kafka is in: cloudevents when it has a
// ce_specversion header, envelope when the value parses as an OutboxEvent with
// a source position, json when it is a JSON object with a "source" object
// holding "commit_lsn", else debezium (a bare payload).
Format DetectFormat(absl::string_view value, const Headers& headers);

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_FORMAT_H_
