// /proc readings of the bench; see proc_stats.h.

#include "bench/suite/proc_stats.h"

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace outboxd::bench {
namespace {

// The whole of a small /proc file ("" when it cannot be read).
std::string ReadProcFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The value after "key:" on the first line of `text` that starts with it, trimmed.
std::optional<std::string> KeyedLine(const std::string& text, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, key)) {
      absl::string_view rest = line.substr(key.size());
      rest = absl::StripLeadingAsciiWhitespace(rest);
      if (!absl::ConsumePrefix(&rest, ":")) continue;
      return std::string(absl::StripAsciiWhitespace(rest));
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<double> CpuSeconds(pid_t pid) {
  const std::string stat = ReadProcFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t paren = stat.rfind(')');
  if (stat.empty() || paren == std::string::npos) return std::nullopt;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 2), ' ');
  // After "pid (comm) ": field 3 (state) is index 0, so utime (14) is 11, stime (15) is 12.
  if (fields.size() < 13) return std::nullopt;
  int64_t utime = 0, stime = 0;
  if (!absl::SimpleAtoi(fields[11], &utime) || !absl::SimpleAtoi(fields[12], &stime)) {
    return std::nullopt;
  }
  const double tick = 1.0 / sysconf(_SC_CLK_TCK);
  const double coarse = static_cast<double>(utime + stime) * tick;
  // utime + stime count whole clock ticks (10 ms), too coarse for a 5,000-event drain. Each live
  // thread's schedstat has its CPU time in ns; their sum stands unless threads that have exited
  // took more than a tick (the sum then falls short of the process's ticks).
  double precise = 0;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
    const std::string sched = ReadProcFile(task.path().string() + "/schedstat");
    int64_t ns = 0;
    std::vector<absl::string_view> f = absl::StrSplit(sched, ' ', absl::SkipEmpty());
    if (!f.empty() && absl::SimpleAtoi(f[0], &ns)) precise += ns / 1e9;
  }
  return precise >= coarse - tick && precise < coarse + 2 * tick ? precise : coarse;
}

std::optional<pid_t> ParentPid(pid_t pid) {
  const std::string stat = ReadProcFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t paren = stat.rfind(')');
  if (stat.empty() || paren == std::string::npos) return std::nullopt;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 2), ' ');
  int ppid = 0;
  if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &ppid)) return std::nullopt;
  return ppid;
}

double StatusMb(pid_t pid, const std::string& key) {
  std::optional<std::string> value =
      KeyedLine(ReadProcFile(absl::StrCat("/proc/", pid, "/status")), key);
  int64_t kb = 0;
  if (!value || !absl::SimpleAtoi(absl::StripSuffix(*value, " kB"), &kb)) return 0;
  return kb / 1024.0;
}

void ResetPeakRss(pid_t pid) {
  std::ofstream out(absl::StrCat("/proc/", pid, "/clear_refs"));
  out << "5";
}

std::map<pid_t, double> PostgresCpu(pid_t postmaster) {
  std::map<pid_t, double> cpu;
  if (postmaster <= 0) return cpu;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    if (pid != postmaster && ParentPid(pid) != postmaster) continue;
    if (std::optional<double> s = CpuSeconds(pid)) cpu[pid] = *s;
  }
  return cpu;
}

double CpuDelta(const std::map<pid_t, double>& before, const std::map<pid_t, double>& after,
                const std::set<pid_t>& excluded) {
  double total = 0;
  for (const auto& [pid, s] : after) {
    if (excluded.count(pid)) continue;
    auto it = before.find(pid);
    total += s - (it == before.end() ? 0 : it->second);
  }
  return total;
}

double LoadAverage1() {
  const std::string text = ReadProcFile("/proc/loadavg");
  double load = 0;
  std::vector<absl::string_view> fields = absl::StrSplit(text, ' ', absl::SkipEmpty());
  if (fields.empty() || !absl::SimpleAtod(fields[0], &load)) return 0;
  return load;
}

std::string CpuModel() {
  return KeyedLine(ReadProcFile("/proc/cpuinfo"), "model name").value_or("?");
}

std::string MemTotal() {
  std::optional<std::string> total = KeyedLine(ReadProcFile("/proc/meminfo"), "MemTotal");
  int64_t kb = 0;
  if (!total || !absl::SimpleAtoi(absl::StripSuffix(*total, " kB"), &kb)) return "?";
  return absl::StrFormat("%.1f GB", kb / 1048576.0);
}

}  // namespace outboxd::bench
