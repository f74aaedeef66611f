#include "sink/format.h"

#include <algorithm>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "outboxd/json.h"
#include "outboxd/lsn.h"

namespace outboxd::sink {
namespace {

constexpr char kSpecVersion[] = "1.0";

// headers[index] = {name, value}, growing the vector and reusing the strings' buffers.
void SetHeader(Headers& headers, size_t index, absl::string_view name, absl::string_view value) {
  if (headers.size() <= index) headers.resize(index + 1);
  headers[index].first.assign(name.data(), name.size());
  headers[index].second.assign(value.data(), value.size());
}

// CloudEvents: a header that begins with ce_ (in any case) is an attribute in the
// Kafka binding, so it must be ce_ and an extension name the spec allows:
// lower-case ASCII letters and digits. A CloudEvents SDK refuses the whole record
// for any other (the Java SDK's CloudEventDeserializer throws, and its consumer
// cannot get past the record).
bool IsInvalidCloudEventsAttribute(absl::string_view name) {
  if (name.size() < 3 || !absl::EqualsIgnoreCase(name.substr(0, 3), "ce_")) return false;
  if (name.substr(0, 3) != "ce_" || name.size() == 3) return true;
  return !std::all_of(name.begin() + 3, name.end(),
                      [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

// The event's own headers after the first `fixed` ones, sorted by name; a name
// the format has already set is left out (cloudevents: no second ce_id), and for
// cloudevents a ce_ name that cannot be an extension attribute.
void AppendEventHeaders(const v1::OutboxEvent& event, size_t fixed, Headers& headers,
                        bool cloudevents = false) {
  headers.resize(fixed);
  if (event.headers().empty()) return;
  for (const auto& [name, value] : event.headers()) {
    const bool taken = std::any_of(headers.begin(), headers.begin() + fixed,
                                   [&](const auto& h) { return h.first == name; });
    if (taken || (cloudevents && IsInvalidCloudEventsAttribute(name))) continue;
    headers.emplace_back(name, value);
  }
  std::sort(headers.begin() + fixed, headers.end());
}

absl::string_view PayloadTypeName(v1::PayloadType type) {
  switch (type) {
    case v1::PAYLOAD_TYPE_JSON: return "json";
    case v1::PAYLOAD_TYPE_TEXT: return "text";
    case v1::PAYLOAD_TYPE_BYTES: return "bytes";
    default: return "";
  }
}

// CloudEvents datacontenttype of the payload; empty when unknown.
absl::string_view ContentType(v1::PayloadType type) {
  switch (type) {
    case v1::PAYLOAD_TYPE_JSON: return "application/json";
    case v1::PAYLOAD_TYPE_TEXT: return "text/plain; charset=utf-8";
    case v1::PAYLOAD_TYPE_BYTES: return "application/octet-stream";
    default: return "";
  }
}

bool IsJson(absl::string_view text) {
  google::protobuf::Value parsed;
  return google::protobuf::util::JsonStringToMessage(std::string(text), &parsed).ok();
}

// A small scanner over JSON text that has already been validated (or, in
// DetectFormat, is only being sniffed): every read is bounds-checked, so
// untrusted bytes from Kafka cannot run it past the end.
size_t SkipSpace(absl::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

// The end of the JSON value starting at i.
size_t SkipValue(absl::string_view s, size_t i) {
  if (i >= s.size()) return s.size();
  if (s[i] == '"') {
    for (++i; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\') ++i;
    }
    return std::min(i + 1, s.size());
  }
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = SkipValue(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') --depth;
      ++i;
      if (depth == 0) break;
    }
    return i;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
         s[i] != '\n' && s[i] != '\r') {
    ++i;
  }
  return i;
}

// The raw text of member `key` of the top-level object in s (keys compared as
// written, so only for keys without escapes).
std::optional<absl::string_view> MemberText(absl::string_view s, absl::string_view key) {
  size_t i = SkipSpace(s, 0);
  if (i >= s.size() || s[i] != '{') return std::nullopt;
  i = SkipSpace(s, i + 1);
  while (i < s.size() && s[i] == '"') {
    const size_t key_end = SkipValue(s, i);
    const absl::string_view name = s.substr(i + 1, key_end - i - 2);
    i = SkipSpace(s, key_end);
    if (i >= s.size() || s[i] != ':') return std::nullopt;
    i = SkipSpace(s, i + 1);
    const size_t value_end = SkipValue(s, i);
    if (name == key) return s.substr(i, value_end - i);
    i = SkipSpace(s, value_end);
    if (i >= s.size() || s[i] != ',') return std::nullopt;
    i = SkipSpace(s, i + 1);
  }
  return std::nullopt;
}

const google::protobuf::Value* Member(const google::protobuf::Struct& s, const char* name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

std::string StringMember(const google::protobuf::Struct& s, const char* name) {
  const google::protobuf::Value* v = Member(s, name);
  return v != nullptr && v->kind_case() == google::protobuf::Value::kStringValue ? v->string_value() : "";
}

}  // namespace

absl::StatusOr<Format> ParseFormat(absl::string_view name) {
  if (name == "envelope") return Format::kEnvelope;
  if (name == "debezium") return Format::kDebezium;
  if (name == "cloudevents") return Format::kCloudEvents;
  if (name == "json") return Format::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("--format='", name, "' is not valid; use envelope, debezium, cloudevents or json"));
}

absl::string_view FormatName(Format format) {
  switch (format) {
    case Format::kEnvelope: return "envelope";
    case Format::kDebezium: return "debezium";
    case Format::kCloudEvents: return "cloudevents";
    case Format::kJson: return "json";
  }
  return "envelope";
}

std::string Rfc3339(const google::protobuf::Timestamp& time) {
  const absl::Time t = absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

void AppendPayloadJson(absl::string_view payload, v1::PayloadType type, std::string* out) {
  if (type == v1::PAYLOAD_TYPE_UNSPECIFIED) {
    type = IsJson(payload) ? v1::PAYLOAD_TYPE_JSON : v1::PAYLOAD_TYPE_TEXT;
  }
  switch (type) {
    case v1::PAYLOAD_TYPE_JSON: {
      if (payload.empty()) {
        out->append("null");
        return;
      }
      // Newlines can only stand between tokens of valid JSON; one line per record.
      const size_t start = out->size();
      out->append(payload.data(), payload.size());
      std::replace_if(out->begin() + start, out->end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
      return;
    }
    case v1::PAYLOAD_TYPE_BYTES:
      AppendJsonString(*out, absl::Base64Escape(payload));
      return;
    default:
      AppendJsonString(*out, payload);
  }
}

void AppendEventJson(const v1::OutboxEvent& event, bool include_payload, std::string* out) {
  // Composed by hand so keys keep a fixed, readable order and LSNs their X/Y form.
  out->append("{\"id\":");
  AppendJsonString(*out, event.id());
  out->append(",\"aggregate_type\":");
  AppendJsonString(*out, event.aggregate_type());
  out->append(",\"aggregate_id\":");
  AppendJsonString(*out, event.aggregate_id());
  out->append(",\"event_type\":");
  AppendJsonString(*out, event.event_type());
  if (include_payload) {
    out->append(",\"payload\":");
    AppendPayloadJson(event.payload(), event.payload_type(), out);
  }
  if (absl::string_view type = PayloadTypeName(event.payload_type()); !type.empty()) {
    out->append(",\"payload_type\":");
    AppendJsonString(*out, type);
  }
  out->append(",\"headers\":{");
  std::vector<std::pair<absl::string_view, absl::string_view>> headers(event.headers().begin(),
                                                                       event.headers().end());
  std::sort(headers.begin(), headers.end());
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(*out, headers[i].first);
    out->push_back(':');
    AppendJsonString(*out, headers[i].second);
  }
  const v1::SourcePosition& source = event.source();
  absl::StrAppend(out, "},\"source\":{\"commit_lsn\":\"", Lsn(source.commit_lsn()).ToString(),
                  "\",\"event_lsn\":\"", Lsn(source.event_lsn()).ToString(), "\",\"xid\":", source.xid(),
                  ",\"commit_time\":\"", Rfc3339(source.commit_time()), "\",\"table\":");
  AppendJsonString(*out, source.table());
  out->append("}}");
}

void EncodeEvent(const v1::OutboxEvent& event, const FormatOptions& options, bool omit_payload,
                 std::string* key, std::string* value, Headers* headers_out) {
  key->assign(event.aggregate_id());
  Headers& headers = *headers_out;
  switch (options.format) {
    case Format::kEnvelope:
      if (omit_payload) {
        v1::OutboxEvent stripped = event;
        stripped.clear_payload();
        stripped.SerializeToString(value);
      } else {
        event.SerializeToString(value);
      }
      break;
    case Format::kDebezium:
      // StringConverter writes the payload column's string: PostgreSQL's text
      // of it, which is what the event carries.
      if (omit_payload) {
        value->clear();
      } else {
        value->assign(event.payload());
      }
      break;
    case Format::kCloudEvents: {
      if (omit_payload) {
        value->clear();
      } else {
        value->assign(event.payload());
      }
      size_t n = 0;
      SetHeader(headers, n++, "ce_specversion", kSpecVersion);
      SetHeader(headers, n++, "ce_id", event.id());
      SetHeader(headers, n++, "ce_source", "");
      std::string& source = headers[n - 1].second;
      if (options.cloudevents_source.empty()) {
        source.assign(options.cloudevents_source_prefix).append(event.source().table());
      } else {
        source.assign(options.cloudevents_source);
      }
      SetHeader(headers, n++, "ce_type", event.event_type());
      SetHeader(headers, n++, "ce_time", Rfc3339(event.source().commit_time()));
      SetHeader(headers, n++, "ce_subject", event.aggregate_id());
      if (absl::string_view type = ContentType(event.payload_type()); !type.empty()) {
        SetHeader(headers, n++, "content-type", type);
      }
      AppendEventHeaders(event, n, headers, /*cloudevents=*/true);
      return;
    }
    case Format::kJson:
      value->clear();
      AppendEventJson(event, !omit_payload, value);
      break;
  }
  SetHeader(headers, 0, "id", event.id());
  SetHeader(headers, 1, "event_type", event.event_type());
  AppendEventHeaders(event, 2, headers);
}

void OmitPayload(Format format, std::string* value) {
  switch (format) {
    case Format::kEnvelope: {
      v1::OutboxEvent event;
      if (!event.ParseFromString(*value)) break;
      event.clear_payload();
      event.SerializeToString(value);
      return;
    }
    case Format::kJson: {
      absl::StatusOr<v1::OutboxEvent> event = EventFromJson(*value);
      if (!event.ok()) break;
      value->clear();
      AppendEventJson(*event, /*include_payload=*/false, value);
      return;
    }
    case Format::kDebezium:
    case Format::kCloudEvents:
      break;  // the value is the payload
  }
  value->clear();
}

absl::StatusOr<v1::OutboxEvent> EventFromJson(absl::string_view value) {
  google::protobuf::Struct root;
  if (!google::protobuf::util::JsonStringToMessage(std::string(value), &root).ok()) {
    return absl::InvalidArgumentError("value is not a JSON object");
  }
  v1::OutboxEvent event;
  event.set_id(StringMember(root, "id"));
  event.set_aggregate_type(StringMember(root, "aggregate_type"));
  event.set_aggregate_id(StringMember(root, "aggregate_id"));
  event.set_event_type(StringMember(root, "event_type"));
  const std::string type = StringMember(root, "payload_type");
  event.set_payload_type(type == "json"    ? v1::PAYLOAD_TYPE_JSON
                         : type == "text"  ? v1::PAYLOAD_TYPE_TEXT
                         : type == "bytes" ? v1::PAYLOAD_TYPE_BYTES
                                           : v1::PAYLOAD_TYPE_UNSPECIFIED);
  if (const google::protobuf::Value* payload = Member(root, "payload"); payload != nullptr) {
    if (payload->kind_case() == google::protobuf::Value::kStringValue &&
        event.payload_type() != v1::PAYLOAD_TYPE_JSON) {
      std::string bytes;
      if (event.payload_type() == v1::PAYLOAD_TYPE_BYTES && absl::Base64Unescape(payload->string_value(), &bytes)) {
        event.set_payload(std::move(bytes));
      } else {
        event.set_payload(payload->string_value());
      }
    } else if (payload->kind_case() != google::protobuf::Value::kNullValue) {
      if (std::optional<absl::string_view> raw = MemberText(value, "payload")) event.set_payload(std::string(*raw));
    }
  }
  if (const google::protobuf::Value* headers = Member(root, "headers");
      headers != nullptr && headers->kind_case() == google::protobuf::Value::kStructValue) {
    for (const auto& [name, v] : headers->struct_value().fields()) {
      if (v.kind_case() == google::protobuf::Value::kStringValue) (*event.mutable_headers())[name] = v.string_value();
    }
  }
  const google::protobuf::Value* source = Member(root, "source");
  if (source == nullptr || source->kind_case() != google::protobuf::Value::kStructValue) {
    return absl::InvalidArgumentError("value has no \"source\" object");
  }
  const google::protobuf::Struct& s = source->struct_value();
  v1::SourcePosition* position = event.mutable_source();
  for (const auto& [name, field] : {std::pair{"commit_lsn", 0}, std::pair{"event_lsn", 1}}) {
    absl::StatusOr<Lsn> lsn = Lsn::Parse(StringMember(s, name));
    if (!lsn.ok()) return absl::InvalidArgumentError(absl::StrCat("source.", name, ": ", lsn.status().message()));
    field == 0 ? position->set_commit_lsn(lsn->value()) : position->set_event_lsn(lsn->value());
  }
  if (const google::protobuf::Value* xid = Member(s, "xid");
      xid != nullptr && xid->kind_case() == google::protobuf::Value::kNumberValue) {
    position->set_xid(static_cast<uint32_t>(xid->number_value()));
  }
  absl::Time time;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, StringMember(s, "commit_time"), &time, &error)) {
    const absl::Duration since_epoch = time - absl::UnixEpoch();
    const int64_t micros = absl::ToInt64Microseconds(since_epoch);
    int64_t seconds = micros / 1000000;
    int64_t remainder = micros % 1000000;
    if (remainder < 0) {
      remainder += 1000000;
      --seconds;
    }
    position->mutable_commit_time()->set_seconds(seconds);
    position->mutable_commit_time()->set_nanos(static_cast<int32_t>(remainder * 1000));
  }
  position->set_table(StringMember(s, "table"));
  return event;
}

Format DetectFormat(absl::string_view value, const Headers& headers) {
  for (const auto& [name, v] : headers) {
    if (name == "ce_specversion") return Format::kCloudEvents;
  }
  v1::OutboxEvent event;
  if (event.ParseFromArray(value.data(), static_cast<int>(value.size())) && event.has_source() &&
      event.source().commit_lsn() != 0 && !event.source().table().empty()) {
    return Format::kEnvelope;
  }
  if (std::optional<absl::string_view> source = MemberText(value, "source");
      source && MemberText(*source, "commit_lsn")) {
    return Format::kJson;
  }
  return Format::kDebezium;
}

}  // namespace outboxd::sink
