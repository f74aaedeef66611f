// The bench's environment and publishers; see bench_env.h.

#include "outboxd/status_macros.h"
#include "bench/suite/bench_env.h"

#include <signal.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/suite/flags.h"
#include "tests/support/wait.h"

namespace outboxd::bench {

using test::Subprocess;

void Progress(const std::string& line) {
  std::cerr << absl::FormatTime("%H:%M:%S ", absl::Now(), absl::LocalTimeZone()) << line
            << std::endl;
}

absl::Status Sql(Env& env, const std::string& sql) { return env.pg->Exec(sql); }

std::vector<std::string> OutboxdArgv(const Env& env, int linger_ms) {
  std::vector<std::string> argv = {test::BinaryPath("outboxd"),
                                   "run",
                                   "--postgres=" + env.conninfo,
                                   "--brokers=" + env.brokers,
                                   absl::StrCat("--linger_ms=", linger_ms),
                                   "--shutdown_timeout=5s",
                                   // Servers up as a user runs them, on free ports: the default
                                   // ones may be a developer's relay (make test runs --quick).
                                   "--admin_listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0"};
  for (const std::string& arg : absl::GetFlag(FLAGS_relay_args)) argv.push_back(arg);
  return argv;
}

absl::StatusOr<std::unique_ptr<Subprocess>> StartOutboxd(Env& env, int linger_ms) {
  ASSIGN_OR_RETURN(auto relay, Subprocess::Start(OutboxdArgv(env, linger_ms)));
  Subprocess* p = relay.get();
  if (!test::WaitFor(
          [&] { return p->Stderr().find("streaming slot") != std::string::npos || !p->Running(); },
          absl::Seconds(30))) {
    return absl::DeadlineExceededError("outboxd did not start streaming: " + p->Stderr());
  }
  if (!p->Running()) return absl::InternalError("outboxd exited: " + p->Stderr());
  // A previous run may have left events in the slot (a relay that fell behind): measure only
  // once this relay has caught up with everything written so far.
  ASSIGN_OR_RETURN(std::string now_lsn, env.pg->QueryValue("SELECT pg_current_wal_lsn()"));
  if (!test::WaitFor(
          [&] {
            return env.pg
                       ->QueryValue(
                           absl::StrCat("SELECT confirmed_flush_lsn >= '", now_lsn,
                                        "' FROM pg_replication_slots WHERE slot_name = 'outboxd'"))
                       .value_or("f") == "t";
          },
          absl::Seconds(120), absl::Milliseconds(100))) {
    return absl::DeadlineExceededError("outboxd did not catch up with the slot within 120 s");
  }
  return relay;
}

absl::StatusOr<std::unique_ptr<Subprocess>> StartPoller(Env& env, int interval_ms, int linger_ms) {
  ASSIGN_OR_RETURN(
      auto poller,
      Subprocess::Start({test::BinaryPath("bench-poller"), "--postgres=" + env.conninfo,
                         "--brokers=" + env.brokers, "--table=public.outbox_poll",
                         absl::StrCat("--interval_ms=", interval_ms),
                         absl::StrCat("--batch=", absl::GetFlag(FLAGS_poll_batch)),
                         absl::StrCat("--workers=", absl::GetFlag(FLAGS_poll_workers)),
                         absl::StrCat("--linger_ms=", linger_ms)}));
  Subprocess* p = poller.get();
  if (!test::WaitFor(
          [&] { return p->Stdout().find("ready") != std::string::npos || !p->Running(); },
          absl::Seconds(30)) ||
      !p->Running()) {
    return absl::InternalError("bench-poller did not start: " + p->Stderr());
  }
  return poller;
}

void StopProcess(Subprocess* p) {
  p->Signal(SIGTERM);
  if (!p->Wait(absl::Seconds(15)).ok()) p->Signal(SIGKILL);
}

absl::StatusOr<std::string> NewTopic(Env& env, const std::string& label, int partitions,
                                     std::string* agg) {
  *agg = absl::StrCat(label, "_", ++env.topic_seq);
  const std::string topic = "outbox.event." + *agg;
  RETURN_IF_ERROR(env.kafka->CreateTopic(topic, partitions));
  return topic;
}

}  // namespace outboxd::bench
