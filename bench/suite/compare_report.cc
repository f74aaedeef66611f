// The side-by-side report: OUT/report.md, OUT/runs.tsv, OUT/latency.{dat,gp}, OUT/wal.{dat,gp};
// see compare_suite.h.

#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/suite/compare_suite.h"
#include "bench/suite/flags.h"
#include "bench/suite/debezium_connect.h"
#include "bench/suite/kafka_floor.h"
#include "bench/suite/proc_stats.h"
#include "bench/suite/report.h"
#include "librdkafka/rdkafka.h"

namespace outboxd::bench {
namespace {

double PerEventUs(double cpu_s, double events) { return cpu_s / std::max(1.0, events) * 1e6; }

std::string Kb(double bytes) { return std::isnan(bytes) ? "–" : Fmt(bytes / 1024, 0); }

std::string WalPlotName() {
  return absl::StrReplaceAll(absl::GetFlag(FLAGS_plot_name), {{"latency", "wal"}});
}

const RunResult* Find(const std::vector<RunResult>& runs, const std::string& sys, double rate,
                      int tx = 1) {
  for (const RunResult& r : runs) {
    if (r.publisher == sys && r.spec.rate == rate && r.spec.events_per_tx == tx) return &r;
  }
  return nullptr;
}

// The better (smaller) of the two Debezium configurations' values; NaN when neither ran.
double BestDebezium(const std::vector<RunResult>& runs, double rate,
                    const std::function<double(const RunResult&)>& metric) {
  double best = NAN;
  for (const char* sys : {"dbz-defaults", "dbz-tuned"}) {
    if (const RunResult* r = Find(runs, sys, rate)) {
      const double v = metric(*r);
      if (!std::isnan(v) && (std::isnan(best) || v < best)) best = v;
    }
  }
  return best;
}

void WriteTsv(const std::string& dir, const std::vector<RunResult>& runs) {
  std::ofstream tsv(dir + "/runs.tsv");
  tsv << "system\toffered_ev_s\tev_per_tx\tachieved_ev_s\tevents\tmeasured\tp50_ms\tp95_ms\t"
         "p99_ms\tp999_ms\tmax_ms\tpub_cpu_us_per_ev\tpub_peak_rss_mb\tpub_steady_rss_mb\t"
         "pg_cpu_us_per_ev\twal_held_mean_b\twal_held_max_b\n";
  for (const RunResult& r : runs) {
    tsv << absl::StrJoin(
               std::vector<std::string>{
                   r.publisher, Fmt(r.spec.rate, 0), absl::StrCat(r.spec.events_per_tx),
                   Fmt(r.achieved, 0), absl::StrCat(r.expected), absl::StrCat(r.measured),
                   Fmt(r.p50, 3), Fmt(r.p95, 3), Fmt(r.p99, 3), Fmt(r.p999, 3), Fmt(r.max, 3),
                   Fmt(PerEventUs(r.pub_cpu_s, r.expected)), Fmt(r.pub_peak_rss_mb, 1),
                   Fmt(r.pub_steady_rss_mb, 1), Fmt(PerEventUs(r.pg_cpu_s, r.expected)),
                   Fmt(r.wal_mean_bytes, 0), Fmt(r.wal_max_bytes, 0)},
               "\t")
        << "\n";
  }
}

// Latency percentiles against offered load (1 event/transaction), one colour per system; WAL
// held over time in the 1k and 10k runs.
void WritePlots(const std::string& dir, const std::vector<std::string>& systems,
                const std::vector<RunResult>& runs) {
  std::ofstream dat(dir + "/latency.dat");
  std::ofstream gp(dir + "/latency.gp");
  gp << "set terminal pngcairo size 1100,650 font ',10'\n"
     << "set output '" << dir << "/" << absl::GetFlag(FLAGS_plot_name) << "'\n"
     << "set title 'Commit-to-consume latency vs offered load, real Kafka (1 event/transaction)'\n"
     << "set xlabel 'offered load (events/s)'\nset ylabel 'latency (ms, log scale)'\n"
     << "set logscale y\nset grid\nset key outside right\nplot ";
  int block = 0;
  for (const std::string& sys : systems) {
    dat << "# " << SystemName(sys) << "\n# offered achieved p50 p95 p99 p999 max (ms)\n";
    for (const RunResult& r : runs) {
      if (r.publisher != sys || r.spec.events_per_tx != 1 || r.spec.rate <= 0 ||
          r.measured == 0) {
        continue;
      }
      dat << Fmt(r.spec.rate, 0) << " " << Fmt(r.achieved, 0) << " " << Fmt(r.p50, 3) << " "
          << Fmt(r.p95, 3) << " " << Fmt(r.p99, 3) << " " << Fmt(r.p999, 3) << " "
          << Fmt(r.max, 3) << "\n";
    }
    dat << "\n\n";
    gp << (block ? ", \\\n     " : "") << "'" << dir << "/latency.dat' index " << block
       << " using 1:3 with linespoints lc " << block + 1 << " dt 1 pt 7 title '" << SystemName(sys)
       << " p50', '" << dir << "/latency.dat' index " << block << " using 1:5 with linespoints lc "
       << block + 1 << " dt 2 pt 5 title '" << SystemName(sys) << " p99'";
    ++block;
  }
  gp << "\n";

  std::ofstream wdat(dir + "/wal.dat");
  std::ofstream wgp(dir + "/wal.gp");
  wgp << "set terminal pngcairo size 1100,650 font ',10'\n"
      << "set output '" << dir << "/" << WalPlotName() << "'\n"
      << "set title 'WAL held by each publisher''s slot (pg\\_current\\_wal\\_lsn() - "
         "confirmed\\_flush\\_lsn), 1 event/transaction'\n"
      << "set xlabel 'seconds into the run'\nset ylabel 'WAL held (KB, log scale)'\n"
      << "set logscale y\nset grid\nset key outside right\nplot ";
  block = 0;
  for (const std::string& sys : systems) {
    for (double rate : {1000.0, 10000.0}) {
      const RunResult* r = Find(runs, sys, rate);
      if (r == nullptr || r->wal.empty()) continue;
      wdat << "# " << SystemName(sys) << " at " << Fmt(rate, 0) << " ev/s\n";
      for (const WalSample& s : r->wal) {
        wdat << Fmt(s.t_s, 1) << " " << Fmt(std::max<double>(1, s.bytes / 1024.0), 1) << "\n";
      }
      wdat << "\n\n";
      wgp << (block ? ", \\\n     " : "") << "'" << dir << "/wal.dat' index " << block
          << " using 1:2 with linespoints dt " << (rate == 1000 ? 1 : 2) << " title '"
          << SystemName(sys) << ", " << Fmt(rate / 1000, 0) << "k ev/s'";
      ++block;
    }
  }
  if (block == 0) wgp << "0 title 'no WAL samples'";
  wgp << "\n";
}

void WriteSettings(std::ostream& md, Env& env, const std::vector<std::string>& systems) {
  md << "## Settings of every system\n\n";
  md << "- **outboxd (at-least-once)**: `outboxd run --linger_ms="
     << absl::GetFlag(FLAGS_linger_ms)
     << "` (idempotent producer, acks=all; the rest defaults), own slot `outboxd`.\n";
  md << "- **outboxd (exactly-once)**: the same with `--delivery=exactly-once` (Kafka "
        "transactions, committed at the latest 100 ms after they begin or at once when the "
        "stream goes quiet; the consumer reads `read_committed`), own slot `outboxd_eos`.\n";
  bool dbz = false;
  for (const std::string& s : systems) dbz |= IsDebezium(s);
  if (dbz) {
    md << "- **Debezium**: Kafka Connect standalone (connect-runtime 4.3.0, the Kafka version "
          "Debezium 3.6.1.Final is built against) with debezium-connector-postgres and the "
          "Outbox Event Router from debezium-connect-plugins 3.6.1.Final, pinned in "
          "bench/debezium/pom.xml; the JVM options of connect-standalone.sh (-Xms256m -Xmx2g, G1, "
          "MaxGCPauseMillis=20); a fresh offsets file and its own slot per run. Shared by both configurations:\n\n";
    md << "| setting | value | why |\n|---|---|---|\n";
    for (const DebeziumSetting& s : DebeziumCommonSettings()) {
      md << "| `" << s.key << "` | `" << s.value << "` | " << s.why << " |\n";
    }
    md << "\n  **defaults**: nothing else set (poll.interval.ms 500, max.batch.size 2048, "
          "offset.flush.interval.ms 60000, the worker producer's linger.ms 5). **tuned for "
          "latency**:\n\n";
    md << "| setting | value | why |\n|---|---|---|\n";
    const DebeziumConfig tuned = DebeziumTuned();
    for (const DebeziumSetting& s : tuned.connector) {
      md << "| `" << s.key << "` | `" << s.value << "` | " << s.why << " |\n";
    }
    for (const DebeziumSetting& s : tuned.worker) {
      md << "| `" << s.key << "` (worker) | `" << s.value << "` | " << s.why << " |\n";
    }
    md << "\n";
  }
  md << "- **polling**: bench-poller every " << absl::GetFlag(FLAGS_compare_poll_ms)
     << " ms, `FOR UPDATE SKIP LOCKED LIMIT " << absl::GetFlag(FLAGS_poll_batch)
     << "`, a partial index on unpublished rows, outboxd's producer settings.\n";
  md << "- **Kafka floor**: the bench produces straight to the broker with outboxd's producer "
        "settings ("
     << FloorProducerSettings(absl::GetFlag(FLAGS_linger_ms))
     << ") and the same consumer reads it: no database, no publisher.\n";
  md << "- **consumer** (every system): librdkafka " << rd_kafka_version_str()
     << ", assigned before the load starts, fetch.wait.max.ms="
     << absl::GetFlag(FLAGS_consumer_fetch_wait_ms)
     << " (the broker answers as soon as records arrive), read_committed.\n";
  md << "- **broker**: Apache Kafka " << (env.kafka_version.empty() ? "?" : env.kafka_version)
     << ", one KRaft node (broker + controller) on 127.0.0.1 started by "
        "tests/kafka/kafka-cluster.sh (the tests' launcher: its settings and JVM flags, "
        "C1-only JIT); topics of "
     << absl::GetFlag(FLAGS_latency_partitions) << " partition(s) for latency runs, "
     << absl::GetFlag(FLAGS_partitions) << " for the drain.\n\n";
}

}  // namespace

void WriteCompareReport(Env& env, const std::vector<std::string>& systems,
                        const std::vector<RunResult>& runs,
                        const std::optional<DrainResult>& drain, double load_before,
                        double load_max, double wall_s) {
  const std::string dir = absl::GetFlag(FLAGS_out);
  WriteTsv(dir, runs);
  WritePlots(dir, systems, runs);
  std::ofstream md(dir + "/report.md");
  utsname u{};
  uname(&u);
  md << "# outboxd bench: outboxd, Debezium and polling on a real Kafka\n\n| | |\n|---|---|\n";
  md << "| date | " << absl::FormatTime("%Y-%m-%d %H:%M %Z", absl::Now(), absl::UTCTimeZone())
     << " |\n| host | " << u.nodename << ", " << u.sysname << " " << u.release << " " << u.machine
     << " |\n| CPU | " << CpuModel() << ", " << std::thread::hardware_concurrency()
     << " online |\n| memory | " << MemTotal() << " |\n";
  md << "| load average (1 min) before / highest seen / after | " << Fmt(load_before) << " / "
     << Fmt(load_max) << " / " << Fmt(LoadAverage1()) << " |\n";
  md << "| PostgreSQL | " << env.pg->QueryValue("SHOW server_version").value_or("?")
     << " (throwaway: fsync=off, wal_level=logical) |\n";
  md << "| outboxd | " << absl::GetFlag(FLAGS_git_rev)
     << (absl::GetFlag(FLAGS_outboxd_binary).empty()
             ? ""
             : absl::StrCat(" (relay binary: ", absl::GetFlag(FLAGS_outboxd_binary), ")"))
     << " |\n";
  md << "| load | " << absl::GetFlag(FLAGS_writers) << " writers, INSERT ... SELECT of N events + "
     << "COMMIT per transaction, " << absl::GetFlag(FLAGS_warmup_s) << " s warm-up + "
     << absl::GetFlag(FLAGS_duration_s) << " s measured per run (Debezium: "
     << absl::GetFlag(FLAGS_jvm_warmup_s) << " s more warm-up for the JIT) |\n";
  md << "| mode | " << (absl::GetFlag(FLAGS_quick) ? "--quick" : "full") << ", " << Fmt(wall_s, 0)
     << " s wall |\n\n";
  WriteSettings(md, env, systems);

  md << "## Latency: writer clock before COMMIT → consumed from Kafka\n\n";
  md << "CPU and RSS are the publisher's (outboxd; Connect's JVM for Debezium; bench-poller; the "
        "bench's own producer for the floor). PostgreSQL CPU leaves out the writers' backends (the "
        "walsender for CDC; the poller's queries for polling). WAL held: the publisher's slot, "
        "sampled each second. Offered max = as fast as the writers go: the rate each system "
        "sustains is its achieved rate there when every event arrived.\n\n";
  std::vector<int> txs;
  for (const RunResult& r : runs) {
    if (std::find(txs.begin(), txs.end(), r.spec.events_per_tx) == txs.end()) {
      txs.push_back(r.spec.events_per_tx);
    }
  }
  for (int tx : txs) {
    md << "### " << tx << " event" << (tx == 1 ? "" : "s") << " per transaction\n\n";
    md << "| system | offered ev/s | achieved ev/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms "
          "| CPU µs/ev | peak RSS MB | steady RSS MB | PostgreSQL CPU µs/ev | WAL held mean / "
          "max KB | note |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
    for (const RunResult& r : runs) {
      if (r.spec.events_per_tx != tx) continue;
      md << "| " << SystemName(r.publisher) << " | "
         << (r.spec.rate > 0 ? Fmt(r.spec.rate, 0) : "max") << " | " << Fmt(r.achieved, 0)
         << " | " << Fmt(r.p50) << " | " << Fmt(r.p95) << " | " << Fmt(r.p99) << " | "
         << Fmt(r.p999) << " | " << Fmt(r.max) << " | "
         << Fmt(PerEventUs(r.pub_cpu_s, r.expected)) << " | " << Fmt(r.pub_peak_rss_mb, 1)
         << " | " << Fmt(r.pub_steady_rss_mb, 1) << " | "
         << Fmt(PerEventUs(r.pg_cpu_s, r.expected)) << " | " << Kb(r.wal_mean_bytes) << " / "
         << Kb(r.wal_max_bytes) << " | " << r.note << " |\n";
    }
    md << "\n";
  }
  md << "![latency percentiles vs offered load](" << absl::GetFlag(FLAGS_plot_name) << ")\n\n";
  md << "## WAL held (1 event/transaction)\n\n| system | 1k ev/s mean KB | 1k max KB | 10k ev/s "
        "mean KB | 10k max KB |\n|---|---:|---:|---:|---:|\n";
  for (const std::string& sys : systems) {
    if (SlotOf(sys).empty()) continue;
    const RunResult* a = Find(runs, sys, 1000);
    const RunResult* b = Find(runs, sys, 10000);
    md << "| " << SystemName(sys) << " | " << (a ? Kb(a->wal_mean_bytes) : "–") << " | "
       << (a ? Kb(a->wal_max_bytes) : "–") << " | " << (b ? Kb(b->wal_mean_bytes) : "–")
       << " | " << (b ? Kb(b->wal_max_bytes) : "–") << " |\n";
  }
  md << "\n![WAL held over time](" << WalPlotName() << ")\n\n";

  double dbz_drain_rate = NAN, cdc_drain_rate = NAN, cdc_drain_cpu = NAN, dbz_drain_cpu = NAN;
  if (drain) {
    const double n = drain->events;
    md << "## Drain: " << drain->events << " committed events (10 per transaction, "
       << Fmt(drain->wal_mb, 1) << " MB of WAL), publisher started afterwards\n\n";
    md << "| reader | total s (incl. start-up) | start-up s (to first event) | first → last s | "
          "events/s (total) | events/s (first → last) | CPU µs/event | peak RSS MB | PostgreSQL "
          "CPU µs/event | vs reader |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    md << "| bench-repl-reader (pgoutput, discarded, acked at once; "
       << absl::StrJoin(drain->recv_runs_s, " s / ",
                        [](std::string* out, double v) { out->append(Fmt(v)); })
       << " s before / after) | " << Fmt(drain->recv_s) << " | – | – | "
       << Fmt(n / drain->recv_s, 0) << " | – | – | – | "
       << Fmt(PerEventUs(drain->reader_pg_cpu_s, n)) << " | 1.00 |\n";
    for (const PublisherDrain& d : drain->publishers) {
      const double rate = n / d.total_s;
      md << "| " << SystemName(d.publisher) << " | " << Fmt(d.total_s) << " | "
         << Fmt(d.startup_s) << " | " << Fmt(d.first_to_last_s) << " | " << Fmt(rate, 0)
         << " | " << Fmt(n / std::max(1e-6, d.first_to_last_s), 0) << " | "
         << Fmt(PerEventUs(d.cpu_s, n)) << " | " << Fmt(d.peak_rss_mb, 1) << " | "
         << Fmt(PerEventUs(d.pg_cpu_s, n)) << " | " << Fmt(drain->recv_s / d.total_s) << " |\n";
      if (d.publisher == "cdc") {
        cdc_drain_rate = rate;
        cdc_drain_cpu = PerEventUs(d.cpu_s, n);
      }
      if (IsDebezium(d.publisher)) {
        if (std::isnan(dbz_drain_rate) || rate > dbz_drain_rate) dbz_drain_rate = rate;
        const double cpu = PerEventUs(d.cpu_s, n);
        if (std::isnan(dbz_drain_cpu) || cpu < dbz_drain_cpu) dbz_drain_cpu = cpu;
      }
    }
    md << "\nPostgreSQL CPU during a drain is the walsender's decoding (nothing else runs; for "
          "polling, the poller's queries).\n\n";
  }

  // Targets (benchmarks, not tests): where each stands. Debezium = the better configuration.
  md << "## Targets (outboxd at-least-once against the better Debezium configuration)\n\n"
        "| target | outboxd | reference | ratio | met |\n|---|---:|---:|---:|---|\n";
  auto yes = [](bool b) { return b ? "yes" : "**no**"; };
  auto row = [&](const std::string& name, double ours, double ref, double ratio, bool met) {
    md << "| " << name << " | " << Fmt(ours) << " | " << Fmt(ref) << " | " << Fmt(ratio) << " | "
       << (std::isnan(ours) || std::isnan(ref) ? "–" : yes(met)) << " |\n";
  };
  const RunResult* c1 = Find(runs, "cdc", 1000);
  const RunResult* c10 = Find(runs, "cdc", 10000);
  const RunResult* f1 = Find(runs, "floor", 1000);
  auto p99 = [](const RunResult& r) { return r.p99; };
  auto cpu = [](const RunResult& r) { return PerEventUs(r.pub_cpu_s, r.expected); };
  auto rss = [](const RunResult& r) { return r.pub_steady_rss_mb; };
  auto wal = [](const RunResult& r) { return r.wal_mean_bytes / 1024; };
  if (drain) {
    row("drain events/s ≥ 5 × Debezium (incl. start-up)", cdc_drain_rate, dbz_drain_rate,
        cdc_drain_rate / dbz_drain_rate, cdc_drain_rate >= 5 * dbz_drain_rate);
    row("drain CPU µs/event ≤ 1/10 Debezium", cdc_drain_cpu, dbz_drain_cpu,
        cdc_drain_cpu / dbz_drain_cpu, cdc_drain_cpu * 10 <= dbz_drain_cpu);
    const double reader_rate = drain->events / drain->recv_s;
    row("drain events/s ≥ 0.9 × bench-repl-reader", cdc_drain_rate, reader_rate,
        cdc_drain_rate / reader_rate, cdc_drain_rate >= 0.9 * reader_rate);
  }
  for (const RunResult* c : {c1, c10}) {
    if (c == nullptr) continue;
    const std::string at = c->spec.rate == 1000 ? "1k" : "10k";
    if (c == c1) {
      const double d = BestDebezium(runs, 1000, p99);
      row("p99 ms at 1k ev/s ≤ 1/10 Debezium", c->p99, d, c->p99 / d, c->p99 * 10 <= d);
    }
    const double dc = BestDebezium(runs, c->spec.rate, cpu);
    row("publisher CPU µs/event at " + at + " ev/s ≤ 1/10 Debezium", cpu(*c), dc, cpu(*c) / dc,
        cpu(*c) * 10 <= dc);
    const double dr = BestDebezium(runs, c->spec.rate, rss);
    row("steady RSS MB at " + at + " ev/s ≤ 1/20 Debezium", rss(*c), dr, rss(*c) / dr,
        rss(*c) * 20 <= dr);
    const double dw = BestDebezium(runs, c->spec.rate, wal);
    row("WAL held mean KB at " + at + " ev/s ≤ 1/10 Debezium", wal(*c), dw, wal(*c) / dw,
        wal(*c) * 10 <= dw);
  }
  if (c1 != nullptr && f1 != nullptr) {
    row("p50 ms at 1k ev/s ≤ Kafka floor p50 + 1 ms", c1->p50, f1->p50, c1->p50 / f1->p50,
        c1->p50 <= f1->p50 + 1);
  }
  if (c1 != nullptr) row("p99 ms at 1k ev/s ≤ 5 ms", c1->p99, 5, c1->p99 / 5, c1->p99 <= 5);
  if (c10 != nullptr) {
    row("p99 ms at 10k ev/s ≤ 10 ms", c10->p99, 10, c10->p99 / 10,
        c10->p99 <= 10 && c10->achieved >= 9500);
  }
  md << "\n";
}

}  // namespace outboxd::bench
