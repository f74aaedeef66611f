// Log lines for people and for log collectors.
//
//   outboxd::LogInfo(absl::StrCat("connected to ", host));
//   outboxd::SetLogFormat(outboxd::LogFormat::kJson);
//
// One line per call, written with a single write(2) to stderr so lines from
// different threads never interleave. Text: "2026-11-22T05:31:57.123Z INFO msg".
// JSON: {"ts":"...","level":"info","msg":"..."}.
#ifndef OUTBOXD_PROTO_OUTBOXD_LOG_H_
#define OUTBOXD_PROTO_OUTBOXD_LOG_H_

#include "absl/strings/string_view.h"

namespace outboxd {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
enum class LogFormat { kText, kJson };

// Set once at start-up, before other threads run.
void SetLogFormat(LogFormat format);
void SetMinLogLevel(LogLevel level);

void Log(LogLevel level, absl::string_view message);
inline void LogDebug(absl::string_view m) { Log(LogLevel::kDebug, m); }
inline void LogInfo(absl::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarning(absl::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogError(absl::string_view m) { Log(LogLevel::kError, m); }

}  // namespace outboxd

#endif  // OUTBOXD_PROTO_OUTBOXD_LOG_H_
