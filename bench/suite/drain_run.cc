// The drain and memory runs; see drain_run.h.

#include "outboxd/status_macros.h"
#include "bench/suite/drain_run.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/suite/flags.h"
#include "bench/suite/latency_consumer.h"
#include "bench/suite/load_generator.h"
#include "bench/suite/proc_stats.h"
#include "tests/support/subprocess.h"
#include "tests/support/wait.h"

namespace outboxd::bench {

using test::Subprocess;

absl::Status RecreateSlots(Env& env, const std::vector<std::string>& slots) {
  for (const std::string& slot : slots) {
    (void)Sql(env, absl::StrCat("SELECT pg_drop_replication_slot('", slot,
                                "') FROM pg_replication_slots WHERE slot_name = '", slot, "'"));
    RETURN_IF_ERROR(Sql(
        env, absl::StrCat("SELECT pg_create_logical_replication_slot('", slot, "', 'pgoutput')")));
  }
  return absl::OkStatus();
}

absl::StatusOr<DrainResult> DrainRun(Env& env, int64_t n) {
  DrainResult res;
  res.events = n;
  std::string agg;
  ASSIGN_OR_RETURN(std::string topic,
                   NewTopic(env, "drain", absl::GetFlag(FLAGS_partitions), &agg));
  // pg_recvlogical reads the range before and after outboxd (one slot each), so neither reader
  // alone gets the colder or the warmer page cache; the faster pg_recvlogical time is the bound.
  RETURN_IF_ERROR(RecreateSlots(env, {"outboxd", "bench_recv1", "bench_recv2"}));
  ASSIGN_OR_RETURN(std::string start_lsn, env.pg->QueryValue("SELECT pg_current_wal_lsn()"));
  Progress(absl::StrCat("drain: committing ", n, " events (10 per transaction)"));
  // Server-side loop with a COMMIT per 10 events: transactions as a service writes them.
  RETURN_IF_ERROR(Sql(
      env, absl::StrCat("DO $$ BEGIN FOR i IN 1..", n / 10,
                        " LOOP "
                        "INSERT INTO public.outbox_events (aggregate_type, aggregate_id, "
                        "event_type, payload) SELECT '",
                        agg,
                        "', 'a' || (i % 1000), 'BenchEvent', jsonb_build_object("
                        "'t_commit_us', 0, 'pad', repeat('x', 155)) FROM generate_series(1, 10); "
                        "COMMIT; END LOOP; END $$")));
  absl::StatusOr<std::string> end_lsn = env.pg->QueryValue("SELECT pg_current_wal_lsn()");
  absl::StatusOr<std::string> wal_bytes = env.pg->QueryValue(
      absl::StrCat("SELECT pg_wal_lsn_diff('", *end_lsn, "', '", start_lsn, "')"));
  if (!end_lsn.ok() || !wal_bytes.ok()) return absl::InternalError("reading WAL position");
  double wal = 0;
  (void)absl::SimpleAtod(*wal_bytes, &wal);
  res.wal_mb = wal / 1e6;

  auto run_recv = [&](const std::string& slot) -> absl::StatusOr<double> {
    Progress(absl::StrCat("drain: pg_recvlogical over ", start_lsn, "..", *end_lsn));
    const absl::Time recv_start = absl::Now();
    ASSIGN_OR_RETURN(
        auto recv,
        Subprocess::Start({"pg_recvlogical", "-d", env.conninfo, "--slot=" + slot, "--start",
                           "--no-loop", "-o", "proto_version=1", "-o",
                           "publication_names=outboxd", "-E", *end_lsn, "-f", "/dev/null"}));
    absl::StatusOr<int> rc = recv->Wait(absl::Minutes(5));
    const double seconds = absl::ToDoubleSeconds(absl::Now() - recv_start);
    if (!rc.ok() || *rc != 0) {
      return absl::InternalError("pg_recvlogical failed: " + recv->Stderr());
    }
    (void)Sql(env, absl::StrCat("SELECT pg_drop_replication_slot('", slot, "')"));
    return seconds;
  };
  ASSIGN_OR_RETURN(double recv1, run_recv("bench_recv1"));

  Progress("drain: outboxd");
  ASSIGN_OR_RETURN(auto consumer,
                   LatencyConsumer::Start(env.brokers, topic, absl::GetFlag(FLAGS_partitions),
                                          absl::GetFlag(FLAGS_consumer_fetch_wait_ms)));
  const int64_t relay_start = NowUs();
  ASSIGN_OR_RETURN(auto relay, Subprocess::Start(OutboxdArgv(env, absl::GetFlag(FLAGS_linger_ms))));
  if (!test::WaitFor([&] { return consumer->total() >= n || !relay->Running(); },
                     absl::Minutes(5), absl::Milliseconds(5)) ||
      consumer->total() < n) {
    return absl::DeadlineExceededError(absl::StrCat("drain: ", consumer->total(), " of ", n,
                                                    " consumed; ", relay->Stderr()));
  }
  res.relay_s = (consumer->last_consume_us() - relay_start) / 1e6;
  res.relay_first_to_last_s =
      (consumer->last_consume_us() - consumer->first_consume_us()) / 1e6;
  res.relay_cpu_s = CpuSeconds(relay->pid()).value_or(0);
  res.relay_peak_rss_mb = StatusMb(relay->pid(), "VmHWM");
  StopProcess(relay.get());
  ASSIGN_OR_RETURN(double recv2, run_recv("bench_recv2"));
  res.recv_s = std::min(recv1, recv2);
  res.recv_runs_s = {recv1, recv2};
  return res;
}

absl::StatusOr<MemoryResult> MemoryRun(Env& env, int64_t n) {
  MemoryResult res;
  res.events = n;
  std::string agg;
  ASSIGN_OR_RETURN(std::string topic,
                   NewTopic(env, "mem", absl::GetFlag(FLAGS_partitions), &agg));
  RETURN_IF_ERROR(RecreateSlots(env, {"outboxd"}));
  Progress(absl::StrCat("memory: one transaction of ", n, " events"));
  const absl::Time t0 = absl::Now();
  RETURN_IF_ERROR(Sql(
      env, absl::StrCat("INSERT INTO public.outbox_events (aggregate_type, aggregate_id, "
                        "event_type, payload) SELECT '",
                        agg,
                        "', 'a' || (g % 1000), 'BenchEvent', jsonb_build_object("
                        "'t_commit_us', 0, 'pad', repeat('x', 155)) FROM generate_series(1, ",
                        n, ") g")));
  res.insert_s = absl::ToDoubleSeconds(absl::Now() - t0);
  ASSIGN_OR_RETURN(auto consumer,
                   LatencyConsumer::Start(env.brokers, topic, absl::GetFlag(FLAGS_partitions),
                                          absl::GetFlag(FLAGS_consumer_fetch_wait_ms)));
  const int64_t start = NowUs();
  ASSIGN_OR_RETURN(auto relay, Subprocess::Start(OutboxdArgv(env, absl::GetFlag(FLAGS_linger_ms))));
  const pid_t pid = relay->pid();
  int64_t last_progress = start;
  std::vector<std::pair<int64_t, double>> rss;  // (consumed so far, RSS MB)
  while (consumer->total() < n && relay->Running()) {
    absl::SleepFor(absl::Milliseconds(50));
    res.peak_rss_mb = std::max(res.peak_rss_mb, StatusMb(pid, "VmHWM"));
    rss.emplace_back(consumer->total(), StatusMb(pid, "VmRSS"));
    if (NowUs() - last_progress > 5000000) {
      last_progress = NowUs();
      Progress(absl::StrFormat("memory: %d of %d consumed, relay RSS %.1f MB (peak %.1f MB)",
                               consumer->total(), n, StatusMb(pid, "VmRSS"), res.peak_rss_mb));
    }
    if (NowUs() - start > 600000000) return absl::DeadlineExceededError("memory run > 10 min");
  }
  if (consumer->total() < n) return absl::InternalError("outboxd exited: " + relay->Stderr());
  res.drain_s = (consumer->last_consume_us() - start) / 1e6;
  res.peak_rss_mb = std::max(res.peak_rss_mb, StatusMb(pid, "VmHWM"));
  res.end_rss_mb = StatusMb(pid, "VmRSS");
  for (const auto& [consumed, mb] : rss) {
    if (consumed >= n / 2) res.steady_rss_mb = std::max(res.steady_rss_mb, mb);
  }
  res.cpu_s = CpuSeconds(pid).value_or(0);
  StopProcess(relay.get());
  return res;
}

}  // namespace outboxd::bench
