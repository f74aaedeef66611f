// One latency run; see latency_run.h.

#include "bench/suite/latency_run.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/suite/flags.h"
#include "bench/suite/kafka_floor.h"
#include "bench/suite/latency_consumer.h"
#include "bench/suite/proc_stats.h"
#include "bench/suite/wal_sampler.h"
#include "outboxd/status_macros.h"
#include "outboxd/v1/event.pb.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/wait.h"

namespace outboxd::bench {

double Percentile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return NAN;
  size_t i = static_cast<size_t>(std::ceil(q * sorted.size())) - 1;
  return sorted[std::min(i, sorted.size() - 1)] / 1000.0;
}

absl::StatusOr<RunResult> LatencyRun(Env& env, const std::string& publisher, int interval_ms,
                                     LoadSpec spec) {
  RunResult res;
  res.publisher = publisher;
  res.interval_ms = interval_ms;
  const bool floor = publisher == "floor";
  spec.table = publisher == "poll" ? "public.outbox_poll" : "public.outbox_events";
  ASSIGN_OR_RETURN(std::string topic,
                   NewTopic(env, publisher, publisher, spec.partitions, &spec.aggregate_type));
  res.spec = spec;

  // A fresh slot per run: no backlog of earlier runs ahead of this one.
  const std::string slot = SlotOf(publisher);
  if (!slot.empty()) RETURN_IF_ERROR(RecreateSlots(env, {slot}));
  ASSIGN_OR_RETURN(auto proc, StartPublisher(env, publisher, interval_ms, spec.linger_ms));
  // The floor has no publisher process: the bench's own producer is what is measured.
  const pid_t pub_pid = proc != nullptr ? proc->pid() : getpid();
  ASSIGN_OR_RETURN(auto consumer,
                   LatencyConsumer::Start(env.brokers, topic, spec.partitions,
                                          absl::GetFlag(FLAGS_consumer_fetch_wait_ms)));

  // One probe event through the whole path before the load: the publisher is streaming and
  // delivering, not merely started (a JVM's connector can take seconds more). Its clock (0) is
  // outside every window.
  if (!floor) {
    RETURN_IF_ERROR(Sql(env, absl::StrCat("INSERT INTO ", spec.table,
                                          " (aggregate_type, aggregate_id, event_type, payload) "
                                          "VALUES ('",
                                          spec.aggregate_type,
                                          "', 'probe', 'BenchProbe', '{\"t_commit_us\": 0}')")));
    if (!test::WaitFor([&] { return consumer->total() >= 1; }, absl::Seconds(120),
                       absl::Milliseconds(5))) {
      return absl::DeadlineExceededError(
          absl::StrCat(publisher, " did not deliver the probe event within 120 s: ",
                       proc != nullptr ? proc->Stderr() : ""));
    }
  }

  std::vector<std::unique_ptr<Writer>> writers;
  std::unique_ptr<FloorProducer> floor_producer;
  std::set<pid_t> writer_backends;
  if (floor) {
    ASSIGN_OR_RETURN(floor_producer, FloorProducer::Create(env.brokers, spec.linger_ms));
  } else {
    for (int i = 0; i < spec.writers; ++i) {
      ASSIGN_OR_RETURN(auto w, Writer::Connect(env.conninfo, spec, i));
      writer_backends.insert(w->backend_pid());
      writers.push_back(std::move(w));
    }
  }

  // A JVM compiles its hot paths during the first seconds of load; give Connect that time
  // unmeasured, as a long-running deployment has had it.
  const double warmup = absl::GetFlag(FLAGS_warmup_s) +
                        (IsDebezium(publisher) ? absl::GetFlag(FLAGS_jvm_warmup_s) : 0);
  const double duration = absl::GetFlag(FLAGS_duration_s);
  const int64_t start = NowUs() + 20000;
  const int64_t window_start = start + static_cast<int64_t>(warmup * 1e6);
  const int64_t window_end = window_start + static_cast<int64_t>(duration * 1e6);
  consumer->SetWindow(window_start, window_end);

  std::vector<std::thread> threads;
  for (auto& w : writers) {
    threads.emplace_back([&, w = w.get()] { w->Run(start, window_end, window_start, window_end); });
  }
  if (floor_producer != nullptr) {
    threads.emplace_back([&] {
      floor_producer->Run(topic, spec, start, window_end, window_start, window_end);
    });
  }
  // WAL held by the publisher's slot, once a second over the whole run.
  std::unique_ptr<WalSampler> wal;
  if (!slot.empty()) {
    ASSIGN_OR_RETURN(wal, WalSampler::Start(env.conninfo, slot));
  }
  // Sampler: CPU and RSS snapshots at the window start, RSS every 100 ms inside the window.
  std::map<pid_t, double> pg_before;
  double pub_cpu_before = 0;
  std::vector<std::pair<int64_t, double>> rss;
  while (NowUs() < window_start) absl::SleepFor(absl::Milliseconds(2));
  pg_before = PostgresCpu(env.postmaster);
  pub_cpu_before = CpuSeconds(pub_pid).value_or(0);
  ResetPeakRss(pub_pid);
  while (NowUs() < window_end) {
    rss.emplace_back(NowUs(), StatusMb(pub_pid, "VmRSS"));
    absl::SleepFor(absl::Milliseconds(100));
  }
  for (auto& t : threads) t.join();
  for (auto& w : writers) {
    if (!w->status().ok()) return w->status();
    res.expected += w->in_window();
  }
  if (floor_producer != nullptr) {
    RETURN_IF_ERROR(floor_producer->status());
    res.expected = floor_producer->in_window();
  }
  // Wait for the tail: returns as soon as every event is in; a publisher that fell behind (a
  // starved JVM on a busy machine) gets up to 30 s and a few poll intervals to catch up, 10 s
  // at the unpaced rate (where falling behind is what the run finds out).
  const absl::Duration tail = absl::Seconds(spec.rate > 0 ? 30 : 10) +
                              absl::Milliseconds(3 * interval_ms);
  test::WaitFor([&] { return consumer->measured() >= res.expected; }, tail,
                absl::Milliseconds(5));
  res.pub_cpu_s = CpuSeconds(pub_pid).value_or(0) - pub_cpu_before;
  res.pg_cpu_s = CpuDelta(pg_before, PostgresCpu(env.postmaster), writer_backends);
  res.pub_peak_rss_mb = StatusMb(pub_pid, "VmHWM");
  for (const auto& [t, mb] : rss) {
    if (t >= window_start + (window_end - window_start) / 2) {
      res.pub_steady_rss_mb = std::max(res.pub_steady_rss_mb, mb);
    }
  }
  if (wal != nullptr) {
    res.wal = wal->Stop();
    res.wal_mean_bytes = MeanBytes(res.wal);
    res.wal_max_bytes = MaxBytes(res.wal);
  }
  std::vector<int64_t> lat = consumer->TakeLatencies();
  res.measured = static_cast<int64_t>(lat.size());
  std::sort(lat.begin(), lat.end());
  res.duration_s = duration;
  res.achieved = res.expected / duration;
  res.p50 = Percentile(lat, 0.50);
  res.p95 = Percentile(lat, 0.95);
  res.p99 = Percentile(lat, 0.99);
  res.p999 = Percentile(lat, 0.999);
  res.max = lat.empty() ? NAN : lat.back() / 1000.0;
  if (res.measured < res.expected) {
    // Tell a slow or stuck consumer from events that never reached Kafka: read the whole topic
    // again with a fresh consumer and count the window's events in it.
    int64_t in_kafka = 0;
    absl::StatusOr<std::vector<test::KafkaRecord>> all = test::ReadTopic(
        env.brokers, topic, consumer->total() + res.expected, absl::Seconds(5));
    if (all.ok()) {
      outboxd::v1::OutboxEvent event;
      for (const test::KafkaRecord& rec : *all) {
        int64_t t = -1;
        if (!rec.value.empty() && rec.value[0] == '{') {
          t = CommitClockUs(rec.value);
        } else if (event.ParseFromString(rec.value)) {
          t = CommitClockUs(event.payload());
        }
        if (t >= window_start && t < window_end) ++in_kafka;
      }
    }
    res.note = absl::StrCat(res.expected - res.measured,
                            " events not consumed within the tail; a fresh read finds ", in_kafka,
                            " of ", res.expected, " in Kafka");
  }
  consumer.reset();
  writers.clear();
  floor_producer.reset();
  if (proc != nullptr) StopProcess(proc.get());
  return res;
}

}  // namespace outboxd::bench
