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
#include "bench/suite/debezium_connect.h"
#include "tests/support/wait.h"

namespace outboxd::bench {

using test::Subprocess;

void Progress(const std::string& line) {
  std::cerr << absl::FormatTime("%H:%M:%S ", absl::Now(), absl::LocalTimeZone()) << line
            << std::endl;
}

absl::Status Sql(Env& env, const std::string& sql) { return env.pg->Exec(sql); }

std::string TopicPrefix(const std::string& publisher) {
  if (publisher == "cdc-eos") return "eos.event.";
  if (publisher == "dbz-defaults") return DebeziumDefaults().topic_prefix;
  if (publisher == "dbz-tuned") return DebeziumTuned().topic_prefix;
  if (publisher == "poll") return "poll.event.";
  if (publisher == "floor") return "floor.event.";
  return "outbox.event.";
}

std::string SlotOf(const std::string& publisher) {
  if (publisher == "cdc") return "outboxd";
  if (publisher == "cdc-eos") return "outboxd_eos";
  if (publisher == "dbz-defaults") return "dbz_defaults";
  if (publisher == "dbz-tuned") return "dbz_tuned";
  return "";
}

bool IsDebezium(const std::string& publisher) { return publisher.rfind("dbz-", 0) == 0; }

absl::Status RecreateSlots(Env& env, const std::vector<std::string>& slots) {
  for (const std::string& slot : slots) {
    (void)Sql(env, absl::StrCat("SELECT pg_drop_replication_slot('", slot,
                                "') FROM pg_replication_slots WHERE slot_name = '", slot, "'"));
    RETURN_IF_ERROR(Sql(
        env, absl::StrCat("SELECT pg_create_logical_replication_slot('", slot, "', 'pgoutput')")));
  }
  return absl::OkStatus();
}

std::vector<std::string> OutboxdArgv(const Env& env, const std::string& publisher, int linger_ms) {
  const std::string binary = absl::GetFlag(FLAGS_outboxd_binary);
  std::vector<std::string> argv = {binary.empty() ? test::BinaryPath("outboxd") : binary,
                                   "run",
                                   "--postgres=" + env.conninfo,
                                   "--brokers=" + env.brokers,
                                   "--slot=" + SlotOf(publisher),
                                   "--topic_prefix=" + TopicPrefix(publisher),
                                   absl::StrCat("--linger_ms=", linger_ms),
                                   "--shutdown_timeout=5s",
                                   // Servers up as a user runs them, on free ports: the default
                                   // ones may be a developer's relay (make test runs --quick).
                                   "--admin_listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0"};
  if (publisher == "cdc-eos") {
    argv.push_back("--delivery=exactly-once");
    argv.push_back(absl::StrCat("--checkpoint_topic=", kCheckpointTopic));
  }
  for (const std::string& arg : absl::GetFlag(FLAGS_relay_args)) argv.push_back(arg);
  return argv;
}

namespace {

absl::StatusOr<std::unique_ptr<Subprocess>> StartOutboxd(Env& env, const std::string& publisher,
                                                         int linger_ms) {
  ASSIGN_OR_RETURN(auto relay, Subprocess::Start(OutboxdArgv(env, publisher, linger_ms)));
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
                       ->QueryValue(absl::StrCat(
                           "SELECT confirmed_flush_lsn >= '", now_lsn,
                           "' FROM pg_replication_slots WHERE slot_name = '", SlotOf(publisher),
                           "'"))
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
                         "--topic_prefix=" + TopicPrefix("poll"),
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

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> StartPublisher(Env& env, const std::string& publisher,
                                                           int interval_ms, int linger_ms) {
  if (publisher == "floor") return nullptr;
  if (publisher == "poll") return StartPoller(env, interval_ms, linger_ms);
  if (IsDebezium(publisher)) {
    const std::string slot = SlotOf(publisher);
    DebeziumOptions options{
        .classpath = env.connect_classpath,
        .dir = env.work_dir + "/" + publisher,
        .brokers = env.brokers,
        .pg_host = "127.0.0.1",
        .pg_port = env.pg->port(),
        .pg_user = "postgres",
        .pg_dbname = "postgres",
        .slot = slot,
        .publication = "debezium",
        .config = publisher == "dbz-tuned" ? DebeziumTuned() : DebeziumDefaults(),
    };
    return StartDebezium(options, [&] {
      return env.pg
                 ->QueryValue(absl::StrCat(
                     "SELECT active FROM pg_replication_slots WHERE slot_name = '", slot, "'"))
                 .value_or("f") == "t";
    });
  }
  return StartOutboxd(env, publisher, linger_ms);
}

void StopProcess(Subprocess* p) {
  p->Signal(SIGTERM);
  if (!p->Wait(absl::Seconds(15)).ok()) p->Signal(SIGKILL);
}

absl::StatusOr<std::string> NewTopic(Env& env, const std::string& publisher,
                                     const std::string& label, int partitions, std::string* agg) {
  *agg = absl::StrCat(label, "_", ++env.topic_seq);
  const std::string topic = TopicPrefix(publisher) + *agg;
  RETURN_IF_ERROR(env.kafka->CreateTopic(topic, partitions));
  return topic;
}

}  // namespace outboxd::bench
