// The drain and memory runs; see drain_run.h.

#include "outboxd/status_macros.h"
#include "bench/suite/drain_run.h"

#include <algorithm>
#include <map>
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

namespace {

// Streams `slot` up to `end_lsn` with bench-repl-reader; seconds from process start to its exit,
// and PostgreSQL's CPU meanwhile (the walsender: nothing else runs).
absl::StatusOr<std::pair<double, double>> ReaderDrain(Env& env, const std::string& slot,
                                                      const std::string& end_lsn) {
  Progress(absl::StrCat("drain: bench-repl-reader up to ", end_lsn));
  const std::map<pid_t, double> pg_before = PostgresCpu(env.postmaster);
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(auto reader,
                   Subprocess::Start({test::BinaryPath("bench-repl-reader"),
                                      "--postgres=" + env.conninfo, "--slot=" + slot,
                                      "--publication=outboxd", "--end_lsn=" + end_lsn}));
  absl::StatusOr<int> rc = reader->Wait(absl::Minutes(5));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!rc.ok() || *rc != 0) {
    return absl::InternalError("bench-repl-reader failed: " + reader->Stderr());
  }
  const double pg_cpu = CpuDelta(pg_before, PostgresCpu(env.postmaster), {});
  (void)Sql(env, absl::StrCat("SELECT pg_drop_replication_slot('", slot, "')"));
  return std::make_pair(seconds, pg_cpu);
}

// One publisher drains the backlog: timed from its process start until its last event is
// consumed from its own topic.
absl::StatusOr<PublisherDrain> PublisherDrainRun(Env& env, const std::string& publisher,
                                                 const std::string& agg, int64_t n) {
  Progress("drain: " + publisher);
  PublisherDrain d;
  d.publisher = publisher;
  const std::string topic = TopicPrefix(publisher) + agg;
  RETURN_IF_ERROR(env.kafka->CreateTopic(topic, absl::GetFlag(FLAGS_partitions)));
  ASSIGN_OR_RETURN(auto consumer,
                   LatencyConsumer::Start(env.brokers, topic, absl::GetFlag(FLAGS_partitions),
                                          absl::GetFlag(FLAGS_consumer_fetch_wait_ms)));
  const std::map<pid_t, double> pg_before = PostgresCpu(env.postmaster);
  const int64_t start = NowUs();
  std::unique_ptr<Subprocess> proc;
  if (publisher == "cdc" || publisher == "cdc-eos") {
    ASSIGN_OR_RETURN(proc, Subprocess::Start(
                               OutboxdArgv(env, publisher, absl::GetFlag(FLAGS_linger_ms))));
  } else {
    // Debezium and the poller: their start-up waits are part of the drain's time.
    ASSIGN_OR_RETURN(proc, StartPublisher(env, publisher, absl::GetFlag(FLAGS_drain_poll_ms),
                                          absl::GetFlag(FLAGS_linger_ms)));
  }
  if (!test::WaitFor([&] { return consumer->total() >= n || !proc->Running(); },
                     absl::Minutes(5), absl::Milliseconds(5)) ||
      consumer->total() < n) {
    return absl::DeadlineExceededError(absl::StrCat("drain: ", publisher, " delivered ",
                                                    consumer->total(), " of ", n, "; ",
                                                    proc->Stderr()));
  }
  d.total_s = (consumer->last_consume_us() - start) / 1e6;
  d.startup_s = (consumer->first_consume_us() - start) / 1e6;
  d.first_to_last_s = (consumer->last_consume_us() - consumer->first_consume_us()) / 1e6;
  d.cpu_s = CpuSeconds(proc->pid()).value_or(0);
  d.peak_rss_mb = StatusMb(proc->pid(), "VmHWM");
  d.pg_cpu_s = CpuDelta(pg_before, PostgresCpu(env.postmaster), {});
  StopProcess(proc.get());
  return d;
}

}  // namespace

absl::StatusOr<DrainResult> DrainRun(Env& env, int64_t n,
                                     const std::vector<std::string>& publishers) {
  DrainResult res;
  res.events = n;
  const std::string agg = absl::StrCat("drain_", ++env.topic_seq);
  // The reader streams the range before and after the publishers (one slot each), so neither
  // reader alone gets the colder or the warmer page cache; the faster time is the bound. Every
  // publisher has its own slot, created before the backlog is written.
  std::vector<std::string> slots = {"bench_reader1", "bench_reader2"};
  bool poll = false;
  for (const std::string& p : publishers) {
    if (!SlotOf(p).empty()) slots.push_back(SlotOf(p));
    if (p == "poll") poll = true;
  }
  RETURN_IF_ERROR(RecreateSlots(env, slots));
  ASSIGN_OR_RETURN(std::string start_lsn, env.pg->QueryValue("SELECT pg_current_wal_lsn()"));
  Progress(absl::StrCat("drain: committing ", n, " events (10 per transaction)"));
  // Server-side loop with a COMMIT per 10 events: transactions as a service writes them.
  auto backlog = [&](const std::string& table) {
    return Sql(env, absl::StrCat("DO $$ BEGIN FOR i IN 1..", n / 10,
                                 " LOOP "
                                 "INSERT INTO ",
                                 table,
                                 " (aggregate_type, aggregate_id, event_type, payload) SELECT '",
                                 agg,
                                 "', 'a' || (i % 1000), 'BenchEvent', jsonb_build_object("
                                 "'t_commit_us', 0, 'pad', repeat('x', 155)) "
                                 "FROM generate_series(1, 10); COMMIT; END LOOP; END $$"));
  };
  RETURN_IF_ERROR(backlog("public.outbox_events"));
  ASSIGN_OR_RETURN(std::string end_lsn, env.pg->QueryValue("SELECT pg_current_wal_lsn()"));
  ASSIGN_OR_RETURN(std::string wal_bytes,
                   env.pg->QueryValue(absl::StrCat("SELECT pg_wal_lsn_diff('", end_lsn, "', '",
                                                   start_lsn, "')")));
  double wal = 0;
  (void)absl::SimpleAtod(wal_bytes, &wal);
  res.wal_mb = wal / 1e6;
  // The polling table's backlog comes after end_lsn: the slot readers stop before it.
  if (poll) RETURN_IF_ERROR(backlog("public.outbox_poll"));

  ASSIGN_OR_RETURN(auto reader1, ReaderDrain(env, "bench_reader1", end_lsn));
  for (const std::string& p : publishers) {
    ASSIGN_OR_RETURN(PublisherDrain d, PublisherDrainRun(env, p, agg, n));
    Progress(absl::StrFormat("drain: %s %.2f s (start-up %.2f s), %.2f µs/event", p, d.total_s,
                             d.startup_s, d.cpu_s / n * 1e6));
    if (!SlotOf(p).empty()) {
      (void)Sql(env, absl::StrCat("SELECT pg_drop_replication_slot('", SlotOf(p), "')"));
    }
    res.publishers.push_back(d);
    if (p == "cdc") {
      res.relay_s = d.total_s;
      res.relay_first_to_last_s = d.first_to_last_s;
      res.relay_cpu_s = d.cpu_s;
      res.relay_peak_rss_mb = d.peak_rss_mb;
    }
  }
  if (poll) RETURN_IF_ERROR(Sql(env, "TRUNCATE public.outbox_poll"));
  ASSIGN_OR_RETURN(auto reader2, ReaderDrain(env, "bench_reader2", end_lsn));
  res.recv_s = std::min(reader1.first, reader2.first);
  res.recv_runs_s = {reader1.first, reader2.first};
  res.reader_pg_cpu_s = reader1.first <= reader2.first ? reader1.second : reader2.second;
  return res;
}

absl::StatusOr<MemoryResult> MemoryRun(Env& env, int64_t n) {
  MemoryResult res;
  res.events = n;
  std::string agg;
  ASSIGN_OR_RETURN(std::string topic,
                   NewTopic(env, "cdc", "mem", absl::GetFlag(FLAGS_partitions), &agg));
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
  ASSIGN_OR_RETURN(auto relay, Subprocess::Start(OutboxdArgv(env, "cdc", absl::GetFlag(FLAGS_linger_ms))));
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
