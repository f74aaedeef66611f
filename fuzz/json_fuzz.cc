// libFuzzer target: the JSON the decoder reads (decoder/json_reader.h), as the
// content of a logical decoding message and as a headers column, through
// OutboxDecoder the way the relay calls it.
//
// Input layout: byte 0 chooses how each member is read (bits 0-1: 0 = Text,
// 1 = Json, 2 = ForEachString, 3 = left unread); the rest is the JSON.
// fuzz/run.sh BUILD SECONDS json seeds it from fuzz/json_seeds.txt.
//
// Beyond the sanitizers it checks JsonReader against simdjson's DOM parser,
// which validates the whole document: both accept the same objects (apart
// from the number and depth limits that only DOM has), and each text Json()
// returns is itself valid JSON and a piece of the input.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "decoder/json_reader.h"
#include "decoder/outbox_decoder.h"

namespace {

using outboxd::Lsn;
using outboxd::decoder::DecodedEvent;
using outboxd::decoder::JsonReader;
using outboxd::decoder::OutboxColumns;
using outboxd::decoder::OutboxDecoder;
using outboxd::decoder::OutboxSource;
using outboxd::decoder::OutboxTable;
namespace pgoutput = outboxd::decoder::pgoutput;

[[noreturn]] void Fail(const char* what, absl::string_view detail) {
  std::fprintf(stderr, "contract broken: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

// simdjson's fully validating parser: SUCCESS, or why not.
simdjson::error_code DomCheck(simdjson::dom::parser& dom, absl::string_view json, bool* is_object) {
  simdjson::dom::element root;
  const simdjson::error_code e = dom.parse(json.data(), json.size()).get(root);
  if (is_object != nullptr) *is_object = e == simdjson::SUCCESS && root.is_object();
  return e;
}

// Errors only DOM has: it converts numbers (too large for a double or for 64
// bits) and bounds depth at 1024; JsonReader keeps numbers as text and bounds
// depth itself.
bool DomOnlyLimit(simdjson::error_code e) {
  return e == simdjson::NUMBER_ERROR || e == simdjson::NUMBER_OUT_OF_RANGE ||
         e == simdjson::DEPTH_ERROR;
}

JsonReader& Reader() {
  static JsonReader* reader = new JsonReader();  // kept, as the decoder keeps it
  return *reader;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] & 3;
  const absl::string_view json(reinterpret_cast<const char*>(data + 1), size - 1);
  static simdjson::dom::parser dom;

  std::string texts;                    // what ForEachString passed, touched
  std::vector<std::string> json_texts;  // what Json() returned, checked after ReadObject
  const absl::Status read =
      Reader().ReadObject(json, [&](absl::string_view key, JsonReader::Value& value) {
        switch (mode) {
          case 0:
            (void)value.Text();
            break;
          case 1:
            json_texts.emplace_back(value.Json());
            break;
          case 2:
            value.ForEachString([&](absl::string_view k, absl::string_view v) {
              texts.append(k.data(), k.size());
              texts.append(v.data(), v.size());
            });
            break;
          default:
            break;
        }
      });

  bool is_object = false;
  const simdjson::error_code dom_error = DomCheck(dom, json, &is_object);
  if (read.ok()) {
    if (dom_error != simdjson::SUCCESS && !DomOnlyLimit(dom_error)) {
      Fail("JsonReader accepted what DOM rejects", simdjson::error_message(dom_error));
    }
    if (dom_error == simdjson::SUCCESS && !is_object) Fail("accepted a non-object", json);
    for (const std::string& text : json_texts) {
      if (!absl::StrContains(json, text)) Fail("Json() text is not from the input", text);
      const std::string wrapped = absl::StrCat("[", text, "]");
      const simdjson::error_code e = DomCheck(dom, wrapped, nullptr);
      if (e != simdjson::SUCCESS && !DomOnlyLimit(e)) Fail("Json() text is not JSON", text);
    }
  } else if (dom_error == simdjson::SUCCESS && is_object &&
             !absl::StrContains(read.message(), "nested too deeply")) {
    Fail("JsonReader rejected a valid object", read.message());
  }

  // Through the decoder: as message content, and as a headers column.
  static OutboxDecoder* decoder = [] {
    OutboxSource source;
    source.messages = true;
    auto* d = new OutboxDecoder(OutboxTable{}, OutboxColumns{}, source);
    pgoutput::Relation relation;
    relation.oid = 16400;
    relation.namespace_name = "public";
    relation.relation_name = "outbox_events";
    for (const char* name :
         {"id", "aggregate_type", "aggregate_id", "event_type", "payload", "headers", "topic"}) {
      relation.columns.push_back({.name = name, .type_oid = 25});
    }
    DecodedEvent ignored;
    if (!d->Decode(relation, Lsn(1), &ignored).ok()) std::abort();
    return d;
  }();
  static DecodedEvent event;
  pgoutput::LogicalMessage message;
  message.transactional = true;
  message.prefix = "outbox";
  message.content = json;
  message.lsn = Lsn(0x1000);
  absl::StatusOr<bool> got = decoder->Decode(message, message.lsn, &event);
  if (!got.ok() || !*got) Fail("message not decoded", json);
  if (!read.ok() && event.dead_letter_reason.empty()) Fail("bad content without a reason", json);
  (void)event.event.ByteSizeLong();

  using Datum = pgoutput::Datum;
  pgoutput::Insert insert;
  insert.relation_oid = 16400;
  insert.new_tuple.columns = {
      {.kind = Datum::Kind::kText, .value = "1"},   {.kind = Datum::Kind::kText, .value = "t"},
      {.kind = Datum::Kind::kText, .value = "a"},   {.kind = Datum::Kind::kText, .value = "e"},
      {.kind = Datum::Kind::kText, .value = "{}"},  {.kind = Datum::Kind::kText, .value = json},
      {.kind = Datum::Kind::kNull, .value = {}}};
  got = decoder->Decode(insert, Lsn(0x1100), &event);
  if (!got.ok() || !*got) Fail("row not decoded", json);
  if (!read.ok() && event.dead_letter_reason.empty()) Fail("bad headers without a reason", json);
  (void)event.event.ByteSizeLong();
  return 0;
}
