#include "decoder/outbox_decoder.h"

#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "outboxd/pg_time.h"
#include "outboxd/status_macros.h"

namespace outboxd::decoder {
namespace {

constexpr pgoutput::Oid kByteaOid = 17;
constexpr pgoutput::Oid kJsonOid = 114;
constexpr pgoutput::Oid kJsonbOid = 3802;

v1::PayloadType PayloadTypeOf(pgoutput::Oid type) {
  if (type == kJsonbOid || type == kJsonOid) return v1::PAYLOAD_TYPE_JSON;
  if (type == kByteaOid) return v1::PAYLOAD_TYPE_BYTES;
  return v1::PAYLOAD_TYPE_TEXT;  // CheckTable allows only text types besides
}

int FindColumn(const pgoutput::Relation& relation, absl::string_view name) {
  for (size_t i = 0; i < relation.columns.size(); ++i) {
    if (relation.columns[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

const pgoutput::Datum* Column(const pgoutput::TupleData& tuple, int index) {
  if (index < 0 || static_cast<size_t>(index) >= tuple.columns.size()) return nullptr;
  return &tuple.columns[index];
}

bool IsValue(const pgoutput::Datum* d) {
  return d != nullptr && (d->kind == pgoutput::Datum::Kind::kText ||
                          d->kind == pgoutput::Datum::Kind::kBinary);
}

// Empties a kept event for the next one. Cleared, not made anew: the strings
// (and the source position, which SetSource overwrites whole) keep their
// memory from the previous event.
void ClearForReuse(DecodedEvent& out) {
  v1::OutboxEvent& event = out.event;
  v1::SourcePosition* source = event.release_source();
  event.Clear();
  if (source != nullptr) event.set_allocated_source(source);
  out.topic_override.clear();
  out.dead_letter_reason.clear();
}

}  // namespace

absl::StatusOr<OutboxTable> OutboxTable::Parse(absl::string_view qualified) {
  OutboxTable table;
  const size_t dot = qualified.find('.');
  if (dot == absl::string_view::npos) {
    table.name = std::string(qualified);
  } else {
    table.schema = std::string(qualified.substr(0, dot));
    table.name = std::string(qualified.substr(dot + 1));
  }
  if (table.schema.empty() || table.name.empty() || absl::StrContains(table.name, '.')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--table='", qualified, "' is not a table name; use schema.table, e.g. public.outbox_events"));
  }
  return table;
}

OutboxDecoder::OutboxDecoder(OutboxTable table, OutboxColumns columns, OutboxSource source)
    : table_(std::move(table)),
      qualified_table_(table_.QualifiedName()),
      columns_(std::move(columns)),
      source_(std::move(source)),
      message_origin_(absl::StrCat("message:", source_.message_prefix)) {}

void OutboxDecoder::Reset() {
  relations_.Clear();
  outbox_oid_.reset();
  map_ = ColumnMap{};
  begin_ = pgoutput::Begin{};
}

absl::Status OutboxDecoder::OnRelation(const pgoutput::Relation& relation) {
  const std::string& schema = relation.namespace_name.empty() ? "pg_catalog" : relation.namespace_name;
  if (schema != table_.schema || relation.relation_name != table_.name) {
    if (outbox_oid_ == relation.oid) outbox_oid_.reset();  // renamed away
    return absl::OkStatus();
  }
  ColumnMap map;
  map.id = FindColumn(relation, columns_.id);
  map.aggregate_type = FindColumn(relation, columns_.aggregate_type);
  map.aggregate_id = FindColumn(relation, columns_.aggregate_id);
  map.event_type = FindColumn(relation, columns_.event_type);
  map.payload = FindColumn(relation, columns_.payload);
  map.headers = FindColumn(relation, columns_.headers);
  map.topic = FindColumn(relation, columns_.topic);
  const std::pair<int, const std::string*> required[] = {
      {map.id, &columns_.id},
      {map.aggregate_type, &columns_.aggregate_type},
      {map.aggregate_id, &columns_.aggregate_id},
      {map.event_type, &columns_.event_type},
      {map.payload, &columns_.payload}};
  for (const auto& [index, name] : required) {
    if (index < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "outbox table ", table_.QualifiedName(), " no longer has column '", *name,
          "' (changed by ALTER TABLE?); restore the column or point --", "table and the column "
          "flags at the new layout, then restart: outboxd resumes from the last confirmed position"));
    }
  }
  map.payload_type = relation.columns[map.payload].type_oid;
  map_ = map;
  outbox_oid_ = relation.oid;
  return absl::OkStatus();
}

void OutboxDecoder::MakeEvent(const pgoutput::TupleData& tuple, Lsn lsn, DecodedEvent* reuse) {
  DecodedEvent& out = *reuse;
  ClearForReuse(out);
  v1::OutboxEvent& event = out.event;
  auto take = [&](int index, absl::string_view name, std::string* field) {
    const pgoutput::Datum* d = Column(tuple, index);
    if (IsValue(d)) {
      field->assign(d->value.data(), d->value.size());
    } else if (out.dead_letter_reason.empty()) {
      out.dead_letter_reason = absl::StrCat("column '", name, "' is NULL; it is required");
    }
  };
  take(map_.id, columns_.id, event.mutable_id());
  take(map_.aggregate_type, columns_.aggregate_type, event.mutable_aggregate_type());
  take(map_.aggregate_id, columns_.aggregate_id, event.mutable_aggregate_id());
  take(map_.event_type, columns_.event_type, event.mutable_event_type());

  event.set_payload_type(PayloadTypeOf(map_.payload_type));
  if (const pgoutput::Datum* d = Column(tuple, map_.payload); IsValue(d)) {
    std::string unescaped;
    // bytea prints as \x followed by hex; carry the bytes themselves.
    if (map_.payload_type == kByteaOid && d->kind == pgoutput::Datum::Kind::kText &&
        absl::StartsWith(d->value, "\\x")) {
      event.set_payload(absl::HexStringToBytes(d->value.substr(2)));
    } else {
      event.set_payload(d->value.data(), d->value.size());
    }
  }

  if (const pgoutput::Datum* d = Column(tuple, map_.headers); IsValue(d)) {
    auto* headers = event.mutable_headers();
    const absl::Status read =
        json_.ReadObject(d->value, [&](absl::string_view key, JsonReader::Value& value) {
          // Only strings are headers (README); a later duplicate key wins, as in jsonb.
          if (value.type() == JsonReader::Type::kString) {
            const absl::string_view text = value.Text();
            (*headers)[std::string(key)].assign(text.data(), text.size());
          }
        });
    if (!read.ok()) {
      headers->clear();
      if (out.dead_letter_reason.empty()) {
        out.dead_letter_reason = absl::StrCat("column '", columns_.headers,
                                              "' is not a JSON object of strings (",
                                              read.message(), "): ", d->value);
      }
    }
  }

  if (const pgoutput::Datum* d = Column(tuple, map_.topic); IsValue(d)) {
    out.topic_override.assign(d->value.data(), d->value.size());
  }

  SetSource(event, lsn, qualified_table_);
}

void OutboxDecoder::SetSource(v1::OutboxEvent& event, Lsn lsn, absl::string_view origin) const {
  v1::SourcePosition* source = event.mutable_source();
  source->set_commit_lsn(begin_.final_lsn.value());
  source->set_event_lsn(lsn.value());
  source->set_xid(begin_.xid);
  const int64_t micros = PgToUnixMicros(begin_.commit_time);
  // Floor division: a timestamp before 1970 still gets nanos in [0, 1e9).
  int64_t seconds = micros / 1000000;
  int64_t remainder = micros % 1000000;
  if (remainder < 0) {
    remainder += 1000000;
    --seconds;
  }
  source->mutable_commit_time()->set_seconds(seconds);
  source->mutable_commit_time()->set_nanos(static_cast<int32_t>(remainder * 1000));
  source->set_table(std::string(origin));
}

void OutboxDecoder::MakeEventFromMessage(const pgoutput::LogicalMessage& message,
                                         DecodedEvent* reuse) {
  DecodedEvent& out = *reuse;
  ClearForReuse(out);
  v1::OutboxEvent& event = out.event;
  // Which routing fields were given as a string or a number.
  bool has_id = false, has_aggregate_type = false, has_aggregate_id = false, has_event_type = false;
  bool headers_not_object = false;
  auto* headers = event.mutable_headers();
  const absl::Status read =
      json_.ReadObject(message.content, [&](absl::string_view key, JsonReader::Value& value) {
        // A string field, or a number as its exact text (ids are often numeric).
        auto text = [&](std::string* target, bool* given) {
          if (value.type() != JsonReader::Type::kString &&
              value.type() != JsonReader::Type::kNumber) {
            return;
          }
          const absl::string_view v = value.Text();
          target->assign(v.data(), v.size());
          if (given != nullptr) *given = true;
        };
        // A repeated key: the last one wins, as in jsonb.
        if (key == "id") {
          text(event.mutable_id(), &has_id);
        } else if (key == "aggregate_type") {
          text(event.mutable_aggregate_type(), &has_aggregate_type);
        } else if (key == "aggregate_id") {
          text(event.mutable_aggregate_id(), &has_aggregate_id);
        } else if (key == "event_type") {
          text(event.mutable_event_type(), &has_event_type);
        } else if (key == "topic") {
          text(&out.topic_override, nullptr);
        } else if (key == "payload") {
          // Any JSON value, carried as its text: exact, whatever its numbers.
          const absl::string_view payload = value.Json();
          event.mutable_payload()->assign(payload.data(), payload.size());
        } else if (key == "headers") {
          headers->clear();
          headers_not_object = value.type() != JsonReader::Type::kObject;
          value.ForEachString([&](absl::string_view name, absl::string_view header) {
            (*headers)[std::string(name)].assign(header.data(), header.size());
          });
        }
      });
  if (!read.ok()) {
    ClearForReuse(out);
    out.dead_letter_reason = absl::StrCat("message content is not a JSON object (", read.message(), ")");
    event.set_id(message.lsn.ToString());
    event.set_payload(message.content.data(), message.content.size());
    event.set_payload_type(v1::PAYLOAD_TYPE_TEXT);
    SetSource(event, message.lsn, message_origin_);
    return;
  }
  if (!has_id) event.set_id(message.lsn.ToString());
  for (const auto& [name, given] : {std::pair{"aggregate_type", has_aggregate_type},
                                    std::pair{"aggregate_id", has_aggregate_id},
                                    std::pair{"event_type", has_event_type}}) {
    if (!given && out.dead_letter_reason.empty()) {
      out.dead_letter_reason = absl::StrCat("message content has no string \"", name, "\"; it is required");
    }
  }
  event.set_payload_type(v1::PAYLOAD_TYPE_JSON);
  if (headers_not_object && out.dead_letter_reason.empty()) {
    out.dead_letter_reason = "message \"headers\" is not a JSON object";
  }
  SetSource(event, message.lsn, message_origin_);
}

absl::StatusOr<std::optional<DecodedEvent>> OutboxDecoder::Decode(const Message& message, Lsn lsn) {
  DecodedEvent event;
  ASSIGN_OR_RETURN(bool decoded, Decode(message, lsn, &event));
  if (!decoded) return std::nullopt;
  return event;
}

absl::StatusOr<bool> OutboxDecoder::Decode(const Message& message, Lsn lsn, DecodedEvent* out) {
  if (const auto* begin = std::get_if<pgoutput::Begin>(&message)) {
    begin_ = *begin;
  } else if (const auto* relation = std::get_if<pgoutput::Relation>(&message)) {
    const pgoutput::Relation& stored = relations_.Update(*relation);
    RETURN_IF_ERROR(OnRelation(stored));
  } else if (const auto* logical = std::get_if<pgoutput::LogicalMessage>(&message)) {
    if (source_.messages && logical->transactional && logical->prefix == source_.message_prefix) {
      MakeEventFromMessage(*logical, out);
      return true;
    }
  } else if (const auto* insert = std::get_if<pgoutput::Insert>(&message)) {
    if (outbox_oid_ != insert->relation_oid) {
      if (relations_.Find(insert->relation_oid) == nullptr) {
        return absl::DataLossError(absl::StrCat(
            "INSERT for relation ", insert->relation_oid, " at ", lsn.ToString(),
            " arrived before its Relation message; this is a protocol error, please report it"));
      }
      return false;  // another table in the publication
    }
    if (!source_.table) return false;
    MakeEvent(insert->new_tuple, lsn, out);
    return true;
  }
  return false;
}

}  // namespace outboxd::decoder
