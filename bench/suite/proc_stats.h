// What the bench reads from /proc: a process's CPU time and memory, PostgreSQL's processes,
// the load average and the host's CPU and memory for the report. Read straight from the files
// (no child processes), so sampling costs the measured machine as little as possible.
//
//   std::map<pid_t, double> before = PostgresCpu(postmaster);
//   ...
//   double pg_cpu = CpuDelta(before, PostgresCpu(postmaster), writer_backends);
//
// Stateless functions, safe on any thread.
#ifndef OUTBOXD_BENCH_SUITE_PROC_STATS_H_
#define OUTBOXD_BENCH_SUITE_PROC_STATS_H_

#include <sys/types.h>

#include <map>
#include <optional>
#include <set>
#include <string>

namespace outboxd::bench {

// CPU time (user + system) of a process in seconds, to the ns where its live threads account
// for it all (schedstat), else to the clock tick (stat); nullopt when it is gone.
std::optional<double> CpuSeconds(pid_t pid);

// The parent's pid; nullopt when the process is gone.
std::optional<pid_t> ParentPid(pid_t pid);

// A "Vm...:  1234 kB" line of /proc/pid/status (key "VmRSS", "VmHWM"), in MB; 0 when absent.
double StatusMb(pid_t pid, const std::string& key);

// Resets VmHWM to the current RSS (Linux: echo 5 > /proc/pid/clear_refs).
void ResetPeakRss(pid_t pid);

// CPU seconds of the postmaster and each of its children, by pid.
std::map<pid_t, double> PostgresCpu(pid_t postmaster);

// CPU spent between two snapshots, leaving out `excluded` pids (the load generator's backends).
// A process that exited in between is lost; one that started is counted whole.
double CpuDelta(const std::map<pid_t, double>& before, const std::map<pid_t, double>& after,
                const std::set<pid_t>& excluded);

// The 1-minute load average (/proc/loadavg); 0 when unreadable.
double LoadAverage1();

// "model name" of the first CPU in /proc/cpuinfo; "?" when absent.
std::string CpuModel();

// MemTotal of /proc/meminfo as "23.4 GB"; "?" when absent.
std::string MemTotal();

}  // namespace outboxd::bench

#endif  // OUTBOXD_BENCH_SUITE_PROC_STATS_H_
