#include "decoder/json_reader.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"

namespace outboxd::decoder {
namespace {

namespace ondemand = simdjson::ondemand;
using Type = JsonReader::Type;

// On Demand does not bound nesting; this does, so hostile input cannot
// exhaust the stack through Validate's recursion.
constexpr int kMaxDepth = 1000;
// Larger documents are read with buffers of their own (see the header).
constexpr size_t kKeepBuffersUpTo = size_t{256} << 10;

// Debian's abseil has its own string_view type, not std::string_view.
absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A scalar's raw token runs up to the next token, spaces included.
std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && IsJsonSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, checked on
// the text itself so that no number, however long, is converted.
bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  auto digits = [&] {
    const size_t from = i;
    while (i < n && IsDigit(s[i])) ++i;
    return i > from;
  };
  if (i < n && s[i] == '-') ++i;
  if (i < n && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == n;
}

// nullptr, or what is wrong.
using Problem = const char*;

Problem TypeOf(ondemand::value& value, Type* type) {
  ondemand::json_type t;
  if (simdjson::error_code e = value.type().get(t)) return simdjson::error_message(e);
  switch (t) {
    case ondemand::json_type::object: *type = Type::kObject; return nullptr;
    case ondemand::json_type::array: *type = Type::kArray; return nullptr;
    case ondemand::json_type::string: *type = Type::kString; return nullptr;
    case ondemand::json_type::number: *type = Type::kNumber; return nullptr;
    case ondemand::json_type::boolean: *type = Type::kBool; return nullptr;
    case ondemand::json_type::null: *type = Type::kNull; return nullptr;
  }
  return "unknown JSON value";
}

// A number, true, false or null: its exact text. On Demand reads atoms only
// when asked, so they are checked here; the caller's next step skips them.
Problem ScalarText(ondemand::value& value, Type type, std::string_view* text) {
  *text = TrimRight(value.raw_json_token());
  switch (type) {
    case Type::kNumber:
      return IsJsonNumber(*text) ? nullptr : "invalid JSON number";
    case Type::kBool:
      return *text == "true" || *text == "false" ? nullptr : "invalid JSON literal";
    case Type::kNull:
      return *text == "null" ? nullptr : "invalid JSON literal";
    default:
      return "not a scalar";
  }
}

Problem Validate(ondemand::value& value, int depth);

// Reads every member of an object, on_string(key, value) for the string ones.
template <typename OnString>
Problem ReadMembers(ondemand::object& object, int depth, OnString on_string) {
  for (auto member : object) {
    ondemand::field field;
    if (simdjson::error_code e = std::move(member).get(field)) return simdjson::error_message(e);
    std::string_view key;
    if (simdjson::error_code e = field.unescaped_key().get(key)) return simdjson::error_message(e);
    ondemand::value& child = field.value();
    Type type;
    if (Problem p = TypeOf(child, &type)) return p;
    if (type == Type::kString) {
      std::string_view s;
      if (simdjson::error_code e = child.get_string().get(s)) return simdjson::error_message(e);
      on_string(Absl(key), Absl(s));
    } else if (Problem p = Validate(child, depth + 1)) {
      return p;
    }
  }
  return nullptr;
}

// Reads the value whole, checking that it is valid JSON.
Problem Validate(ondemand::value& value, int depth) {
  if (depth > kMaxDepth) return "JSON nested too deeply";
  Type type;
  if (Problem p = TypeOf(value, &type)) return p;
  switch (type) {
    case Type::kObject: {
      ondemand::object object;
      if (simdjson::error_code e = value.get_object().get(object)) return simdjson::error_message(e);
      return ReadMembers(object, depth, [](absl::string_view, absl::string_view) {});
    }
    case Type::kArray: {
      ondemand::array array;
      if (simdjson::error_code e = value.get_array().get(array)) return simdjson::error_message(e);
      for (auto element : array) {
        ondemand::value child;
        if (simdjson::error_code e = std::move(element).get(child)) return simdjson::error_message(e);
        if (Problem p = Validate(child, depth + 1)) return p;
      }
      return nullptr;
    }
    case Type::kString: {
      std::string_view s;  // unescaping checks the escapes
      if (simdjson::error_code e = value.get_string().get(s)) return simdjson::error_message(e);
      return nullptr;
    }
    default: {
      std::string_view text;
      return ScalarText(value, type, &text);
    }
  }
}

}  // namespace

struct JsonReader::Value::Walk {
  ondemand::value value;
  int depth = 1;
  bool read = false;
  Problem problem = nullptr;
};

struct JsonReader::State {
  ondemand::parser parser;
  // The document followed by SIMDJSON_PADDING bytes: simdjson reads whole
  // SIMD words and may look past the end.
  std::string buffer;

  simdjson::error_code Iterate(absl::string_view json, ondemand::document* doc) {
    const size_t need = json.size() + simdjson::SIMDJSON_PADDING;
    if (buffer.size() < need) buffer.resize(need);
    std::memcpy(buffer.data(), json.data(), json.size());
    std::memset(buffer.data() + json.size(), 0, simdjson::SIMDJSON_PADDING);
    // iterate() would allocate exactly the document's size each time a
    // larger one comes; growing by doubling makes that rare.
    if (parser.capacity() < json.size()) {
      if (simdjson::error_code e =
              parser.allocate(std::max({json.size(), 2 * parser.capacity(), size_t{4096}}))) {
        return e;
      }
    }
    return parser.iterate(buffer.data(), json.size(), buffer.size()).get(*doc);
  }
};

JsonReader::JsonReader() : state_(std::make_unique<State>()) {}
JsonReader::~JsonReader() = default;

absl::string_view JsonReader::Value::Text() {
  if (type_ != Type::kString) return Json();
  if (walk_->read || walk_->problem != nullptr) return {};
  walk_->read = true;
  std::string_view text;
  if (simdjson::error_code e = walk_->value.get_string().get(text)) {
    walk_->problem = simdjson::error_message(e);
    return {};
  }
  return Absl(text);
}

absl::string_view JsonReader::Value::Json() {
  if (walk_->read || walk_->problem != nullptr) return {};
  walk_->read = true;
  ondemand::value& value = walk_->value;
  std::string_view text;
  switch (type_) {
    case Type::kString: {
      text = TrimRight(value.raw_json_token());  // before get_string() moves past it
      std::string_view unescaped;  // checks the escapes
      if (simdjson::error_code e = value.get_string().get(unescaped)) {
        walk_->problem = simdjson::error_message(e);
        return {};
      }
      return Absl(text);
    }
    case Type::kObject:
    case Type::kArray: {
      // From the opening bracket to the token after the closing one.
      const char* begin = value.raw_json_token().data();
      if ((walk_->problem = Validate(value, walk_->depth)) != nullptr) return {};
      const char* end = nullptr;
      if (simdjson::error_code e = value.current_location().get(end)) {
        walk_->problem = simdjson::error_message(e);
        return {};
      }
      return Absl(TrimRight(std::string_view(begin, static_cast<size_t>(end - begin))));
    }
    default:
      walk_->problem = ScalarText(value, type_, &text);
      return walk_->problem == nullptr ? Absl(text) : absl::string_view();
  }
}

void JsonReader::Value::ForEachString(
    absl::FunctionRef<void(absl::string_view, absl::string_view)> on_string) {
  if (type_ != Type::kObject || walk_->read || walk_->problem != nullptr) return;
  walk_->read = true;
  ondemand::object object;
  if (simdjson::error_code e = walk_->value.get_object().get(object)) {
    walk_->problem = simdjson::error_message(e);
    return;
  }
  walk_->problem = ReadMembers(object, walk_->depth, on_string);
}

absl::Status JsonReader::ReadObject(
    absl::string_view json, absl::FunctionRef<void(absl::string_view key, Value& value)> on_member) {
  std::unique_ptr<State> own;
  State* state = state_.get();
  if (json.size() > kKeepBuffersUpTo) {
    own = std::make_unique<State>();
    state = own.get();
  }
  auto invalid = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", why));
  };
  ondemand::document doc;
  if (simdjson::error_code e = state->Iterate(json, &doc)) return invalid(simdjson::error_message(e));
  ondemand::object object;
  if (simdjson::error_code e = doc.get_object().get(object)) {
    if (e == simdjson::INCORRECT_TYPE) return absl::InvalidArgumentError("not a JSON object");
    return invalid(simdjson::error_message(e));
  }
  for (auto member : object) {
    ondemand::field field;
    if (simdjson::error_code e = std::move(member).get(field)) {
      return invalid(simdjson::error_message(e));
    }
    std::string_view key;
    if (simdjson::error_code e = field.unescaped_key().get(key)) {
      return invalid(simdjson::error_message(e));
    }
    Value::Walk walk{.value = field.value()};
    Type type;
    if (Problem p = TypeOf(walk.value, &type)) return invalid(p);
    Value value(&walk, type);
    on_member(Absl(key), value);
    if (walk.problem == nullptr && !walk.read) walk.problem = Validate(walk.value, walk.depth);
    if (walk.problem != nullptr) return invalid(walk.problem);
  }
  // After the object's '}' the document must be at its end.
  const char* after = nullptr;
  if (doc.current_location().get(after) == simdjson::SUCCESS) {
    return invalid("more than one value (text after the object)");
  }
  return absl::OkStatus();
}

}  // namespace outboxd::decoder
