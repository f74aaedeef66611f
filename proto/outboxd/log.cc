#include "outboxd/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "outboxd/json.h"

namespace outboxd {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};
std::atomic<LogLevel> g_min_level{LogLevel::kInfo};

constexpr absl::string_view kLevelNames[] = {"debug", "info", "warning", "error"};
constexpr absl::string_view kLevelTags[] = {"DEBUG", "INFO", "WARN", "ERROR"};

}  // namespace

void SetLogFormat(LogFormat format) { g_format.store(format); }
void SetMinLogLevel(LogLevel level) { g_min_level.store(level); }

void Log(LogLevel level, absl::string_view message) {
  if (level < g_min_level.load(std::memory_order_relaxed)) return;
  const std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  const int idx = static_cast<int>(level);
  std::string line;
  if (g_format.load(std::memory_order_relaxed) == LogFormat::kJson) {
    line = absl::StrCat(R"({"ts":")", ts, R"(","level":")", kLevelNames[idx], R"(","msg":)");
    AppendJsonString(line, message);
    line += "}\n";
  } else {
    line = absl::StrCat(ts, " ", kLevelTags[idx], " ", message, "\n");
  }
  // One write keeps concurrent lines whole; a failed log write has nowhere to be reported.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace outboxd
