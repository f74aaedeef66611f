// The bench report: Markdown tables, raw TSV rows and the gnuplot script; see report.h.

#include "bench/suite/report.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/suite/flags.h"
#include "bench/suite/proc_stats.h"
#include "librdkafka/rdkafka.h"

namespace outboxd::bench {

std::string Fmt(double v, int digits) {
  if (std::isnan(v)) return "–";
  return absl::StrFormat("%.*f", digits, v);
}

std::string PublisherName(const RunResult& r) {
  std::string name =
      r.publisher == "cdc" ? "outboxd (CDC)" : absl::StrCat("poll ", r.interval_ms, " ms");
  if (r.spec.linger_ms != absl::GetFlag(FLAGS_linger_ms)) {
    absl::StrAppend(&name, ", linger.ms=", r.spec.linger_ms);
  }
  if (r.spec.partitions != absl::GetFlag(FLAGS_latency_partitions)) {
    absl::StrAppend(&name, ", ", r.spec.partitions, " partitions");
  }
  return name;
}

namespace {

// OUT/runs.tsv: one raw row per latency run.
void WriteTsv(const std::string& dir, const std::vector<RunResult>& runs) {
  std::ofstream tsv(dir + "/runs.tsv");
  tsv << "publisher\tinterval_ms\tlinger_ms\tpartitions\toffered_ev_s\tev_per_tx\tpayload_b\twriters\tachieved_"
         "ev_s\t"
         "events\tmeasured\tp50_ms\tp95_ms\tp99_ms\tp999_ms\tmax_ms\tpub_cpu_us_per_ev\t"
         "pub_peak_rss_mb\tpub_steady_rss_mb\tpg_cpu_us_per_ev\n";
  for (const RunResult& r : runs) {
    const double ev = std::max<double>(1, r.expected);
    tsv << absl::StrJoin(
               std::vector<std::string>{
                   r.publisher, absl::StrCat(r.interval_ms), absl::StrCat(r.spec.linger_ms),
                   absl::StrCat(r.spec.partitions), Fmt(r.spec.rate, 0), absl::StrCat(r.spec.events_per_tx),
                   absl::StrCat(r.spec.payload_bytes), absl::StrCat(r.spec.writers),
                   Fmt(r.achieved, 0), absl::StrCat(r.expected), absl::StrCat(r.measured),
                   Fmt(r.p50, 3), Fmt(r.p95, 3), Fmt(r.p99, 3), Fmt(r.p999, 3), Fmt(r.max, 3),
                   Fmt(r.pub_cpu_s / ev * 1e6, 2), Fmt(r.pub_peak_rss_mb, 1),
                   Fmt(r.pub_steady_rss_mb, 1), Fmt(r.pg_cpu_s / ev * 1e6, 2)},
               "\t")
        << "\n";
  }
}

// OUT/latency.dat and OUT/latency.gp: the plot of the main runs.
void WritePlot(const std::string& dir, const std::vector<RunResult>& runs) {
  // gnuplot: one block per publisher (main runs: 1 event/tx, 200 B), x = achieved events/s.
  std::ofstream dat(dir + "/latency.dat");
  std::vector<std::string> names;
  for (const RunResult& r : runs) {
    if (r.spec.events_per_tx != 1 || r.spec.payload_bytes != 200 ||
        r.spec.linger_ms != absl::GetFlag(FLAGS_linger_ms)) {
      continue;
    }
    if (std::find(names.begin(), names.end(), PublisherName(r)) == names.end()) {
      names.push_back(PublisherName(r));
    }
  }
  for (const std::string& name : names) {
    dat << "# " << name << "\n";
    dat << "# offered achieved p50 p95 p99 p999 max (ms)\n";
    for (const RunResult& r : runs) {
      // "As fast as possible" runs have no offered rate to plot against; they are in the table.
      if (PublisherName(r) != name || r.spec.events_per_tx != 1 || r.spec.payload_bytes != 200 ||
          r.spec.linger_ms != absl::GetFlag(FLAGS_linger_ms) || r.measured == 0 ||
          r.spec.rate <= 0) {
        continue;
      }
      dat << Fmt(r.spec.rate, 0) << " " << Fmt(r.achieved, 0) << " " << Fmt(r.p50, 3) << " "
          << Fmt(r.p95, 3) << " " << Fmt(r.p99, 3) << " " << Fmt(r.p999, 3) << " " << Fmt(r.max, 3)
          << "\n";
    }
    dat << "\n\n";
  }
  // The plot: p50 (solid) and p99 (dashed) against offered load, one colour per
  // publisher, log latency axis (CDC is milliseconds, polling hundreds).
  std::ofstream gp(dir + "/latency.gp");
  gp << "set terminal pngcairo size 1000,620 font ',10'\n"
     << "set output '" << dir << "/" << absl::GetFlag(FLAGS_plot_name) << "'\n"
     << "set title 'Commit-to-consume latency vs load (1 event/transaction, 200 B payload)'\n"
     << "set xlabel 'offered load (events/s)'\nset ylabel 'latency (ms, log scale)'\n"
     << "set logscale y\nset grid\nset key outside right\n"
     << "plot ";
  for (size_t i = 0; i < names.size(); ++i) {
    gp << (i ? ", \\\n     " : "") << "'" << dir << "/latency.dat' index " << i
       << " using 1:3 with linespoints lc " << i + 1 << " dt 1 pt 7 title '" << names[i]
       << " p50', '" << dir << "/latency.dat' index " << i << " using 1:5 with linespoints lc "
       << i + 1 << " dt 2 pt 5 title '" << names[i] << " p99'";
  }
  gp << "\n";
}

}  // namespace

void WriteReport(Env& env, const std::vector<RunResult>& runs,
                 const std::optional<DrainResult>& drain, const std::optional<MemoryResult>& mem,
                 double load_before, double wall_s) {
  const std::string dir = absl::GetFlag(FLAGS_out);
  WriteTsv(dir, runs);
  WritePlot(dir, runs);
  std::ofstream md(dir + "/report.md");
  utsname u{};
  uname(&u);
  md << "# outboxd bench: CDC vs polling\n\n";
  md << "| | |\n|---|---|\n";
  md << "| date | " << absl::FormatTime("%Y-%m-%d %H:%M %Z", absl::Now(), absl::UTCTimeZone())
     << " |\n";
  md << "| host | " << u.nodename << ", " << u.sysname << " " << u.release << " " << u.machine
     << " |\n";
  md << "| CPU | " << CpuModel()
     << ", " << std::thread::hardware_concurrency() << " online |\n";
  md << "| memory | " << MemTotal()
     << " |\n";
  md << "| load average before / after | " << Fmt(load_before, 2) << " / "
     << Fmt(LoadAverage1(), 2) << " |\n";
  md << "| PostgreSQL | " << env.pg->QueryValue("SHOW server_version").value_or("?")
     << " (throwaway: fsync=off, wal_level=logical) |\n";
  md << "| librdkafka | " << rd_kafka_version_str()
     << "; broker: kafka-mock (librdkafka mock "
        "cluster, 1 broker; topics of "
     << absl::GetFlag(FLAGS_latency_partitions) << " partition(s) for latency runs unless a row "
     << "says otherwise, " << absl::GetFlag(FLAGS_partitions)
     << " for drain and memory runs; latency consumer fetch.wait.max.ms="
     << absl::GetFlag(FLAGS_consumer_fetch_wait_ms) << ") |\n";
  md << "| outboxd | " << absl::GetFlag(FLAGS_git_rev)
     << ", --linger_ms=" << absl::GetFlag(FLAGS_linger_ms)
     << " unless a row says otherwise, producer defaults"
     << (absl::GetFlag(FLAGS_relay_args).empty()
             ? ""
             : " + " + absl::StrJoin(absl::GetFlag(FLAGS_relay_args), " "))
     << " |\n";
  md << "| poller | bench-poller: FOR UPDATE SKIP LOCKED LIMIT " << absl::GetFlag(FLAGS_poll_batch)
     << ", " << absl::GetFlag(FLAGS_poll_workers)
     << " worker(s), same producer settings, partial index on unpublished rows |\n";
  md << "| load | " << absl::GetFlag(FLAGS_writers) << " writers, autocommit INSERT (1 statement "
     << "= 1 transaction), " << absl::GetFlag(FLAGS_warmup_s) << " s warm-up + "
     << absl::GetFlag(FLAGS_duration_s) << " s measured per run |\n";
  md << "| mode | " << (absl::GetFlag(FLAGS_quick) ? "--quick" : "full") << ", " << Fmt(wall_s, 0)
     << " s wall |\n\n";

  md << "## Latency: writer clock before COMMIT → consumed from Kafka\n\n";
  md << "Offered 0 = as fast as the writers go. CPU per event and RSS are the publisher's "
        "(outboxd or bench-poller); PostgreSQL CPU excludes the writers' own backends (so it is "
        "the walsender for CDC, the poller's queries plus autovacuum for polling).\n\n";
  md << "| publisher | offered ev/s | ev/tx | payload | achieved ev/s | p50 ms | p95 ms | p99 ms "
        "| p99.9 ms | max ms | publisher CPU µs/ev | peak RSS MB | steady RSS MB | PostgreSQL "
        "CPU µs/ev | note |\n";
  md << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const RunResult& r : runs) {
    const double ev = std::max<double>(1, r.expected);
    md << "| " << PublisherName(r) << " | " << (r.spec.rate > 0 ? Fmt(r.spec.rate, 0) : "max")
       << " | " << r.spec.events_per_tx << " | " << r.spec.payload_bytes << " B | "
       << Fmt(r.achieved, 0) << " | " << Fmt(r.p50) << " | " << Fmt(r.p95) << " | " << Fmt(r.p99)
       << " | " << Fmt(r.p999) << " | " << Fmt(r.max) << " | " << Fmt(r.pub_cpu_s / ev * 1e6)
       << " | " << Fmt(r.pub_peak_rss_mb, 1) << " | " << Fmt(r.pub_steady_rss_mb, 1) << " | "
       << Fmt(r.pg_cpu_s / ev * 1e6) << " | " << r.note << " |\n";
  }
  md << "\n![latency percentiles vs load](" << absl::GetFlag(FLAGS_plot_name) << ")\n\n";

  if (drain) {
    const double recv_rate = drain->events / drain->recv_s;
    const double relay_rate = drain->events / drain->relay_s;
    md << "## Drain: " << drain->events << " committed events (10 per transaction, "
       << Fmt(drain->wal_mb, 1) << " MB of WAL), relay stopped while they were written\n\n";
    md << "| reader | seconds | events/s | CPU µs/event | peak RSS MB "
          "|\n|---|---:|---:|---:|---:|\n";
    md << "| bench-repl-reader (pgoutput, discarded, acked at once; faster of "
       << absl::StrJoin(drain->recv_runs_s, " s and ",
                        [](std::string* out, double v) { out->append(Fmt(v)); })
       << " s, run before and after outboxd) | " << Fmt(drain->recv_s) << " | " << Fmt(recv_rate, 0)
       << " | – | – |\n";
    md << "| outboxd (until the last event is consumed from Kafka) | " << Fmt(drain->relay_s)
       << " | " << Fmt(relay_rate, 0) << " | " << Fmt(drain->relay_cpu_s / drain->events * 1e6)
       << " | " << Fmt(drain->relay_peak_rss_mb, 1) << " |\n\n";
    md << "Ratio outboxd / bench-repl-reader: **" << Fmt(relay_rate / recv_rate)
       << "** (both timed from process start; outboxd from its first to its last consumed "
          "event: "
       << Fmt(drain->relay_first_to_last_s) << " s, "
       << Fmt(drain->events / std::max(1e-6, drain->relay_first_to_last_s), 0) << " events/s)";
    if (drain->all_runs.size() > 1) {
      md << ". The median of " << drain->all_runs.size()
         << " drains by ratio; every drain (ratio, relay CPU): "
         << absl::StrJoin(drain->all_runs, ", ");
    }
    md << "\n\n";
  }
  if (mem) {
    md << "## Memory: one transaction of " << mem->events << " events\n\n";
    md << "| insert s | drain s | events/s | relay peak RSS MB | relay RSS, second half of the "
          "drain, MB | relay RSS after MB | relay CPU µs/event |\n"
          "|---:|---:|---:|---:|---:|---:|---:|\n";
    md << "| " << Fmt(mem->insert_s) << " | " << Fmt(mem->drain_s) << " | "
       << Fmt(mem->events / mem->drain_s, 0) << " | " << Fmt(mem->peak_rss_mb, 1) << " | "
       << Fmt(mem->steady_rss_mb, 1) << " | " << Fmt(mem->end_rss_mb, 1) << " | "
       << Fmt(mem->cpu_s / mem->events * 1e6) << " |\n\n";
  }

  // Targets (benchmarks, not tests): where each stands.
  md << "## Targets\n\n| target | measured | met |\n|---|---|---|\n";
  auto find = [&](double rate) -> const RunResult* {
    for (const RunResult& r : runs) {
      if (r.publisher == "cdc" && r.spec.rate == rate && r.spec.events_per_tx == 1 &&
          r.spec.payload_bytes == 200 && r.spec.linger_ms == absl::GetFlag(FLAGS_linger_ms) &&
          r.spec.partitions == absl::GetFlag(FLAGS_latency_partitions)) {
        return &r;
      }
    }
    return nullptr;
  };
  auto yes = [](bool b) { return b ? "yes" : "**no**"; };
  if (const RunResult* r = find(1000)) {
    md << "| CDC 1k ev/s p50 ≤ 1.5 ms | " << Fmt(r->p50) << " ms | " << yes(r->p50 <= 1.5)
       << " |\n";
    md << "| CDC 1k ev/s p99 ≤ 5 ms | " << Fmt(r->p99) << " ms | " << yes(r->p99 <= 5) << " |\n";
  }
  if (const RunResult* r = find(10000)) {
    md << "| CDC 10k ev/s p99 ≤ 10 ms | " << Fmt(r->p99) << " ms (achieved " << Fmt(r->achieved, 0)
       << " ev/s) | " << yes(r->p99 <= 10 && r->achieved >= 9500) << " |\n";
  }
  if (drain) {
    const double ratio = (drain->events / drain->relay_s) / (drain->events / drain->recv_s);
    md << "| drain ≥ 0.9 × bench-repl-reader | " << Fmt(ratio) << " × | " << yes(ratio >= 0.9)
       << " |\n";
  }
  double worst_cpu = 0, worst_rss = 0, worst_rate = 0;
  for (const RunResult& r : runs) {
    if (r.publisher != "cdc" || r.expected == 0) continue;
    if (r.pub_cpu_s / r.expected * 1e6 > worst_cpu) {
      worst_cpu = r.pub_cpu_s / r.expected * 1e6;
      worst_rate = r.achieved;
    }
    worst_rss = std::max(worst_rss, r.pub_steady_rss_mb);
  }
  if (drain || mem) {
    double bulk = 0;
    if (drain) bulk = std::max(bulk, drain->relay_cpu_s / drain->events * 1e6);
    if (mem) bulk = std::max(bulk, mem->cpu_s / mem->events * 1e6);
    md << "| relay CPU ≤ 3 µs/event at saturation (drain and big transaction, incl. start-up) | "
       << Fmt(bulk) << " µs | " << yes(bulk <= 3) << " |\n";
  }
  md << "| relay CPU ≤ 3 µs/event at a fixed rate (worst CDC latency run, " << Fmt(worst_rate, 0)
     << " ev/s) | " << Fmt(worst_cpu) << " µs | " << yes(worst_cpu <= 3) << " |\n";
  md << "| steady RSS ≤ 64 MB under load (worst CDC latency run) | " << Fmt(worst_rss, 1)
     << " MB | " << yes(worst_rss <= 64) << " |\n";
  if (mem) {
    md << "| steady RSS ≤ 64 MB under saturating load (second half of the big drain) | "
       << Fmt(mem->steady_rss_mb, 1) << " MB | " << yes(mem->steady_rss_mb <= 64) << " |\n";
  }
  if (mem) {
    md << "| " << mem->events << "-event transaction peak RSS < 100 MB | "
       << Fmt(mem->peak_rss_mb, 1) << " MB | " << yes(mem->peak_rss_mb < 100) << " |\n";
  }
}

}  // namespace outboxd::bench
