// JsonReader: the members of a JSON object, read in one pass with simdjson's
// On Demand parser, every value validated and every number kept as the exact
// text it was written as (ids and payloads never go through a double).
//
//   JsonReader json;
//   absl::Status s = json.ReadObject(R"({"id": 1234567, "headers": {"trace": "t-1"}})",
//       [&](absl::string_view key, JsonReader::Value& value) {
//         if (key == "id") id = value.Text();                  // "1234567"
//         if (key == "headers") value.ForEachString(on_header); // trace = t-1
//       });
//   if (!s.ok()) -> not one valid JSON object; what the callback saw must be dropped
//
// Used by OutboxDecoder for the headers column and for the content of
// logical decoding messages. It keeps its parser and a padded copy of the
// input between calls, so reading an event's JSON allocates nothing once the
// buffers have grown to the largest document seen (documents over 1 MiB get
// buffers of their own that are freed afterwards, so one huge message does
// not pin memory).
//
// Thread: owned by one thread (the stream thread, through the decoder); not
// thread-safe. Views passed to the callback are valid during the call only.
#ifndef OUTBOXD_DECODER_JSON_READER_H_
#define OUTBOXD_DECODER_JSON_READER_H_

#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace outboxd::decoder {

class JsonReader {
 public:
  enum class Type : uint8_t { kObject, kArray, kString, kNumber, kBool, kNull };

  // The value of one member, handed to ReadObject's callback. Read it at most
  // once (Text, Json or ForEachString); what the callback leaves unread,
  // ReadObject still validates.
  class Value {
   public:
    Type type() const { return type_; }
    // A string: its unescaped text. Any other type: the value's JSON text
    // exactly as written, validated: a number's digits, an object from its
    // '{' to its '}' with the spaces inside it.
    absl::string_view Text();
    // The value's JSON text exactly as written, validated, for any type (a
    // string with its quotes and escapes).
    absl::string_view Json();
    // An object: on_string(key, unescaped value) for each member whose value
    // is a string, in order; other members are validated and passed over.
    // Does nothing for other types.
    void ForEachString(absl::FunctionRef<void(absl::string_view, absl::string_view)> on_string);

   private:
    friend class JsonReader;
    struct Walk;  // simdjson's state, in json_reader.cc
    Value(Walk* walk, Type type) : walk_(walk), type_(type) {}
    Walk* walk_;
    Type type_;
  };

  JsonReader();
  ~JsonReader();
  JsonReader(const JsonReader&) = delete;
  JsonReader& operator=(const JsonReader&) = delete;

  // Reads `json`, which must be exactly one JSON object (RFC 8259; nothing
  // but whitespace after it), calling on_member(key, value) for each member
  // in order, with the key unescaped. InvalidArgument naming the problem when
  // json is not valid JSON or not an object; the callback may have been
  // called for members before the problem was found.
  absl::Status ReadObject(absl::string_view json,
                          absl::FunctionRef<void(absl::string_view key, Value& value)> on_member);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace outboxd::decoder

#endif  // OUTBOXD_DECODER_JSON_READER_H_
