// JSON text helpers shared by the logger and `outboxd tail`.
//
//   std::string out = "{\"msg\":";
//   outboxd::AppendJsonString(out, "line one\nline two");   // "line one\nline two", escaped
#ifndef OUTBOXD_PROTO_OUTBOXD_JSON_H_
#define OUTBOXD_PROTO_OUTBOXD_JSON_H_

#include <string>

#include "absl/strings/string_view.h"

namespace outboxd {

// Appends s as a quoted JSON string. Bytes >= 0x80 pass through unchanged, so
// UTF-8 text stays readable.
void AppendJsonString(std::string& out, absl::string_view s);

}  // namespace outboxd

#endif  // OUTBOXD_PROTO_OUTBOXD_JSON_H_
