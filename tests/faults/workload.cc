#include "tests/faults/workload.h"

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>

#include <algorithm>
#include <memory>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "outboxd/status_macros.h"
#include "outboxd/v1/event.pb.h"
#include "pq/handles.h"

namespace outboxd::test {
namespace {

using pq::PgConn;
using pq::PgResult;

// Between connection attempts while PostgreSQL is down.
constexpr absl::Duration kReconnectPause = absl::Milliseconds(50);

std::string AggregateName(int aggregate) { return absl::StrCat("a-", aggregate); }

// One statement that takes the aggregate's counter row (lock held to commit), and writes an
// event carrying the new counter value.
std::string EventStatement(int aggregate, int writer, const std::string& tag) {
  const std::string agg = AggregateName(aggregate);
  return absl::StrCat(
      "WITH c AS (UPDATE fault_counters SET n = n + 1 WHERE agg = ", aggregate,
      " RETURNING n) INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
      "SELECT 'fault', '", agg, "', 'FaultEvent', jsonb_build_object('agg', '", agg,
      "', 'n', c.n, 'writer', ", writer, ", 'tag', '", tag, "') FROM c;");
}

// A connection that is up, or null once stopping.
PgConn Connect(const std::string& conninfo, const std::atomic<bool>& stop, int64_t* errors) {
  while (!stop.load()) {
    PgConn conn(PQconnectdb(conninfo.c_str()));
    if (PQstatus(conn.get()) == CONNECTION_OK) return conn;
    ++*errors;
    absl::SleepFor(kReconnectPause);  // pacing of retries, not synchronisation
  }
  return nullptr;
}

bool ExecOk(PGconn* conn, const std::string& sql, std::string* command_status = nullptr) {
  PgResult result(PQexec(conn, sql.c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (command_status != nullptr && result != nullptr) *command_status = PQcmdStatus(result.get());
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

// The value of "key" in PostgreSQL's jsonb text ({"n": 5, "agg": "a-1", ...}); "" if absent.
std::string JsonField(absl::string_view json, absl::string_view key) {
  const std::string needle = absl::StrCat("\"", key, "\": ");
  size_t pos = json.find(needle);
  if (pos == absl::string_view::npos) return "";
  pos += needle.size();
  if (pos < json.size() && json[pos] == '"') {
    const size_t end = json.find('"', pos + 1);
    if (end == absl::string_view::npos) return "";
    return std::string(json.substr(pos + 1, end - pos - 1));
  }
  size_t end = pos;
  while (end < json.size() && json[end] != ',' && json[end] != '}') ++end;
  return std::string(json.substr(pos, end - pos));
}

}  // namespace

absl::Status Workload::Setup() {
  PgConn conn(PQconnectdb(conninfo_.c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(PQerrorMessage(conn.get()));
  }
  const std::string sql = absl::StrCat(
      "CREATE TABLE fault_counters (agg int PRIMARY KEY, n bigint NOT NULL);"
      "INSERT INTO fault_counters SELECT g, 0 FROM generate_series(0, ",
      options_.aggregates - 1, ") g;");
  PgResult result(PQexec(conn.get(), sql.c_str()));
  if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
    return absl::InternalError(PQerrorMessage(conn.get()));
  }
  return absl::OkStatus();
}

void Workload::Start() {
  for (int w = 0; w < options_.writers; ++w) threads_.emplace_back([this, w] { WriterLoop(w); });
  if (options_.large_events > 0) threads_.emplace_back([this] { LargeLoop(); });
}

void Workload::Stop() {
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(gate_mu_);
    paused_ = false;
  }
  gate_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void Workload::Pause() {
  std::unique_lock<std::mutex> lock(gate_mu_);
  paused_ = true;
  gate_cv_.wait(lock, [&] { return in_transaction_ == 0; });
}

void Workload::Resume() {
  {
    std::lock_guard<std::mutex> lock(gate_mu_);
    paused_ = false;
  }
  gate_cv_.notify_all();
}

bool Workload::EnterTransaction() {
  std::unique_lock<std::mutex> lock(gate_mu_);
  gate_cv_.wait(lock, [&] { return !paused_ || stop_.load(); });
  if (stop_.load()) return false;
  ++in_transaction_;
  return true;
}

void Workload::LeaveTransaction() {
  {
    std::lock_guard<std::mutex> lock(gate_mu_);
    --in_transaction_;
  }
  gate_cv_.notify_all();
}

void Workload::Record(const std::vector<std::string>& tags, Outcome outcome) {
  absl::MutexLock lock(&mu_);
  for (const std::string& tag : tags) outcomes_[tag] = outcome;
  int64_t& counter = outcome == Outcome::kCommitted    ? stats_.committed_events
                     : outcome == Outcome::kRolledBack ? stats_.rolled_back_events
                                                       : stats_.unknown_events;
  counter += static_cast<int64_t>(tags.size());
}

void Workload::WriterLoop(int writer) {
  std::mt19937_64 rng(options_.seed * 1000003 + static_cast<uint64_t>(writer));
  std::uniform_int_distribution<int> aggregate_dist(0, options_.aggregates - 1);
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_int_distribution<int> multi_size(2, 5);
  const absl::Duration period = options_.tx_per_second > 0
                                    ? absl::Seconds(1) / options_.tx_per_second
                                    : absl::ZeroDuration();
  int64_t errors = 0;
  PgConn conn;
  absl::Time next = absl::Now();
  for (int64_t tx = 0; !stop_.load(); ++tx) {
    if (period > absl::ZeroDuration()) {
      next += period;
      const absl::Duration wait = next - absl::Now();
      if (wait > absl::ZeroDuration()) absl::SleepFor(wait);  // pacing, not synchronisation
      else next = absl::Now();
    }
    if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
      conn = Connect(conninfo_, stop_, &errors);
      if (conn == nullptr) break;
    }
    // Distinct aggregates, locked in ascending order so writers never deadlock.
    auto pick = [&](int count) {
      std::vector<int> aggs;
      while (static_cast<int>(aggs.size()) < count) {
        const int a = aggregate_dist(rng);
        if (std::find(aggs.begin(), aggs.end(), a) == aggs.end()) aggs.push_back(a);
      }
      std::sort(aggs.begin(), aggs.end());
      return aggs;
    };
    auto tag = [&](int event) { return absl::StrCat("w", writer, "-", tx, "-", event); };

    std::string body = "BEGIN;";
    std::vector<std::string> kept;       // committed if the COMMIT succeeds
    std::vector<std::string> discarded;  // never committed (rolled-back savepoint)
    bool rollback = false;
    const int kind = percent(rng);
    if (kind < 40) {  // one event
      const int a = pick(1)[0];
      kept.push_back(tag(0));
      body += EventStatement(a, writer, kept.back());
    } else if (kind < 65) {  // 2-5 events across aggregates
      int e = 0;
      for (int a : pick(multi_size(rng))) {
        kept.push_back(tag(e++));
        body += EventStatement(a, writer, kept.back());
      }
    } else if (kind < 75) {  // rolled back
      int e = 0;
      for (int a : pick(multi_size(rng))) {
        kept.push_back(tag(e++));
        body += EventStatement(a, writer, kept.back());
      }
      rollback = true;
    } else {  // savepoint, rolled back (< 88) or released
      const bool release = kind >= 88;
      const std::vector<int> aggs = pick(3);
      kept.push_back(tag(0));
      body += EventStatement(aggs[0], writer, kept.back());
      body += "SAVEPOINT s;";
      std::vector<std::string>& inner = release ? kept : discarded;
      inner.push_back(tag(1));
      body += EventStatement(aggs[1], writer, inner.back());
      body += release ? "RELEASE SAVEPOINT s;" : "ROLLBACK TO SAVEPOINT s;";
      kept.push_back(tag(2));
      body += EventStatement(aggs[2], writer, kept.back());
    }

    if (!EnterTransaction()) break;
    std::string command_status;
    if (!ExecOk(conn.get(), body)) {
      // Failed before COMMIT was sent: nothing of it is committed.
      ++errors;
      ExecOk(conn.get(), "ROLLBACK");
      Record(kept, Outcome::kRolledBack);
    } else if (rollback) {
      ExecOk(conn.get(), "ROLLBACK");
      Record(kept, Outcome::kRolledBack);
    } else if (ExecOk(conn.get(), "COMMIT", &command_status) && command_status == "COMMIT") {
      Record(kept, Outcome::kCommitted);
    } else if (PQstatus(conn.get()) == CONNECTION_OK && command_status == "ROLLBACK") {
      ++errors;
      Record(kept, Outcome::kRolledBack);
    } else {
      // COMMIT sent, answer lost: it may or may not have committed.
      ++errors;
      Record(kept, Outcome::kUnknown);
    }
    Record(discarded, Outcome::kRolledBack);
    LeaveTransaction();
    absl::MutexLock lock(&mu_);
    ++stats_.transactions;
  }
  absl::MutexLock lock(&mu_);
  stats_.errors += errors;
}

void Workload::LargeLoop() {
  const absl::Time start_at = absl::Now() + options_.large_after;
  while (!stop_.load() && absl::Now() < start_at) absl::SleepFor(absl::Milliseconds(20));
  int64_t errors = 0;
  for (int attempt = 1; !stop_.load(); ++attempt) {
    PgConn conn = Connect(conninfo_, stop_, &errors);
    if (conn == nullptr) break;
    if (!EnterTransaction()) break;
    {
      absl::MutexLock lock(&mu_);
      ++stats_.large_attempts;
    }
    // Aggregates big-0..big-19, n increasing in insert order within each.
    const std::string prefix = absl::StrCat("L", attempt, "-");
    const std::string body = absl::StrCat(
        "BEGIN; INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
        "SELECT 'fault', 'big-' || (i % 20), 'LargeTx', jsonb_build_object('agg', 'big-' || (i % "
        "20), 'n', i, 'writer', -1, 'tag', '",
        prefix, "' || i) FROM generate_series(1, ", options_.large_events, ") i;");
    std::vector<std::string> tags;
    tags.reserve(static_cast<size_t>(options_.large_events));
    for (int i = 1; i <= options_.large_events; ++i) tags.push_back(absl::StrCat(prefix, i));
    std::string command_status;
    bool done = false;
    if (!ExecOk(conn.get(), body)) {
      ++errors;
      Record(tags, Outcome::kRolledBack);
    } else if (ExecOk(conn.get(), "COMMIT", &command_status) && command_status == "COMMIT") {
      Record(tags, Outcome::kCommitted);
      done = true;
    } else if (PQstatus(conn.get()) == CONNECTION_OK && command_status == "ROLLBACK") {
      ++errors;
      Record(tags, Outcome::kRolledBack);
    } else {
      ++errors;
      Record(tags, Outcome::kUnknown);
      // It may have committed; one large transaction is what was asked for, so a retry is only
      // made if the table shows it did not.
      PgConn check = Connect(conninfo_, stop_, &errors);
      if (check != nullptr) {
        PgResult r(PQexec(check.get(),
                          absl::StrCat("SELECT count(*) FROM outbox_events WHERE payload->>'tag' = '",
                                       prefix, "1'")
                              .c_str()));
        done = PQresultStatus(r.get()) == PGRES_TUPLES_OK && std::string(PQgetvalue(r.get(), 0, 0)) != "0";
      }
    }
    LeaveTransaction();
    if (done) {
      absl::MutexLock lock(&mu_);
      stats_.large_committed = true;
      break;
    }
  }
  absl::MutexLock lock(&mu_);
  stats_.errors += errors;
}

bool Workload::WaitLargeCommitted(absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stats_.large_committed) return true;
    }
    if (absl::Now() >= end) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

absl::Status Workload::ResolveUnknown(PgServer& pg) {
  ASSIGN_OR_RETURN(PgServer::Rows rows,
      pg.Query("SELECT payload->>'tag' FROM outbox_events WHERE payload ? 'tag'"));
  std::unordered_set<std::string> in_table;
  for (const auto& row : rows) {
    if (!row.empty() && row[0].has_value()) in_table.insert(*row[0]);
  }
  absl::MutexLock lock(&mu_);
  std::vector<std::string> bookkeeping_errors;
  for (auto& [tag, outcome] : outcomes_) {
    const bool present = in_table.count(tag) > 0;
    switch (outcome) {
      case Outcome::kUnknown:
        outcome = present ? Outcome::kCommitted : Outcome::kRolledBack;
        ++(present ? stats_.resolved_committed : stats_.resolved_rolled_back);
        break;
      case Outcome::kCommitted:
        if (!present) bookkeeping_errors.push_back(absl::StrCat(tag, " committed but not in table"));
        break;
      case Outcome::kRolledBack:
        if (present) bookkeeping_errors.push_back(absl::StrCat(tag, " rolled back but in table"));
        break;
    }
  }
  if (!bookkeeping_errors.empty()) {
    bookkeeping_errors.resize(std::min<size_t>(bookkeeping_errors.size(), 10));
    return absl::InternalError(absl::StrCat("workload bookkeeping disagrees with the table: ",
                                            absl::StrJoin(bookkeeping_errors, "; ")));
  }
  return absl::OkStatus();
}

std::unordered_map<std::string, Outcome> Workload::Outcomes() const {
  absl::MutexLock lock(&mu_);
  return outcomes_;
}

WorkloadStats Workload::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

// --- Reading back -----------------------------------------------------------------------------

namespace {

struct RdKafkaDeleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* md) const { rd_kafka_metadata_destroy(md); }
};

}  // namespace

absl::StatusOr<std::vector<KafkaRecord>> ReadWholeTopic(absl::string_view brokers,
                                                        absl::string_view topic,
                                                        absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::vector<std::pair<const char*, std::string>> settings = {
      {"bootstrap.servers", std::string(brokers)},
      {"group.id", "outboxd-fault-checker"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // The end of a partition may be a transaction marker (a control record, never delivered):
      // the end-of-partition event says the reader has passed it.
      {"enable.partition.eof", "true"},
      // What an exactly-once consumer uses (librdkafka's default, stated); on a real Kafka it
      // hides aborted and open transactions. kafka-mock ignores it.
      {"isolation.level", "read_committed"},
      {"log_level", "3"},
  };
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(errstr);
    }
  }
  rd_kafka_t* raw = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (raw == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(errstr);
  }
  std::unique_ptr<rd_kafka_t, RdKafkaDeleter> rk(raw);
  rd_kafka_poll_set_consumer(rk.get());
  const std::string name(topic);

  // Partition count, from all-topic metadata (naming the topic would auto-create it).
  int partitions = 0;
  while (partitions == 0) {
    const rd_kafka_metadata_t* md_raw = nullptr;
    if (rd_kafka_metadata(rk.get(), 1, nullptr, &md_raw, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter> md(md_raw);
      for (int i = 0; i < md->topic_cnt; ++i) {
        if (name == md->topics[i].topic) partitions = md->topics[i].partition_cnt;
      }
      if (partitions == 0) return std::vector<KafkaRecord>{};  // never created: nothing in it
    }
    if (absl::Now() >= end) return absl::DeadlineExceededError("metadata");
  }

  std::vector<int64_t> high(static_cast<size_t>(partitions), 0);
  std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter> assignment(
      rd_kafka_topic_partition_list_new(partitions));
  int64_t total = 0;
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0;
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_query_watermark_offsets(rk.get(), name.c_str(), p, &low,
                                                   &high[static_cast<size_t>(p)], 2000)) !=
           RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (absl::Now() >= end) {
        return absl::DeadlineExceededError(absl::StrCat("watermarks: ", rd_kafka_err2str(err)));
      }
    }
    if (low != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, "[", p, "] starts at offset ", low,
          ": kafka-mock's retention dropped records; create the topic with more partitions"));
    }
    total += high[static_cast<size_t>(p)];
    rd_kafka_topic_partition_list_add(assignment.get(), name.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  if (rd_kafka_resp_err_t err = rd_kafka_assign(rk.get(), assignment.get());
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(rd_kafka_err2str(err));
  }
  std::vector<int64_t> next(static_cast<size_t>(partitions), 0);
  std::vector<KafkaRecord> records;
  records.reserve(static_cast<size_t>(total));
  auto done = [&] {
    for (int p = 0; p < partitions; ++p) {
      if (next[static_cast<size_t>(p)] < high[static_cast<size_t>(p)]) return false;
    }
    return true;
  };
  while (!done()) {
    if (absl::Now() >= end) {
      return absl::DeadlineExceededError(
          absl::StrCat("read ", records.size(), " of ", total, " records of ", name));
    }
    std::unique_ptr<rd_kafka_message_t, MessageDeleter> m(rd_kafka_consumer_poll(rk.get(), 200));
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // The fetch position (past markers and aborted records) reached the end as of now.
      if (m->partition >= 0 && m->partition < partitions) {
        int64_t& at = next[static_cast<size_t>(m->partition)];
        at = std::max(at, m->offset);
      }
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    const size_t p = static_cast<size_t>(m->partition);
    if (m->offset >= high[p]) continue;
    next[p] = m->offset + 1;
    KafkaRecord r;
    r.topic = name;
    r.partition = m->partition;
    r.offset = m->offset;
    if (m->key != nullptr) r.key.assign(static_cast<const char*>(m->key), m->key_len);
    if (m->payload != nullptr) r.value.assign(static_cast<const char*>(m->payload), m->len);
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m.get(), &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* hname;
      const void* value;
      size_t size;
      for (size_t i = 0;
           rd_kafka_header_get_all(headers, i, &hname, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        r.headers.emplace_back(hname, value == nullptr
                                          ? std::string()
                                          : std::string(static_cast<const char*>(value), size));
      }
    }
    records.push_back(std::move(r));
  }
  // Offset order within each partition (partitions interleave in consumption order).
  std::stable_sort(records.begin(), records.end(), [](const KafkaRecord& a, const KafkaRecord& b) {
    return a.partition != b.partition ? a.partition < b.partition : a.offset < b.offset;
  });
  return records;
}

// --- Checking ---------------------------------------------------------------------------------

CheckResult Check(const std::unordered_map<std::string, Outcome>& outcomes,
                  const std::vector<KafkaRecord>& records,
                  const std::unordered_set<std::string>& excluded) {
  CheckResult result;
  result.records = static_cast<int64_t>(records.size());
  std::unordered_set<std::string> seen;
  std::unordered_map<std::string, int64_t> last_first_n;  // per aggregate
  for (const KafkaRecord& r : records) {
    v1::OutboxEvent event;
    if (!event.ParseFromString(r.value)) {
      result.undecodable.push_back(absl::StrCat(r.partition, "@", r.offset));
      continue;
    }
    const std::string tag = JsonField(event.payload(), "tag");
    int64_t n = 0;
    if (tag.empty() || !absl::SimpleAtoi(JsonField(event.payload(), "n"), &n)) {
      result.undecodable.push_back(absl::StrCat(r.partition, "@", r.offset, ": ", event.payload()));
      continue;
    }
    if (!seen.insert(tag).second) {
      ++result.duplicates;
      continue;
    }
    const auto it = outcomes.find(tag);
    if (it == outcomes.end() || it->second == Outcome::kUnknown) {
      result.unknown_present.push_back(tag);
    } else if (it->second == Outcome::kRolledBack) {
      result.rolled_back_present.push_back(tag);
    }
    auto [last, inserted] = last_first_n.try_emplace(event.aggregate_id(), n);
    if (!inserted) {
      if (n <= last->second) {
        result.order_violations.push_back(absl::StrCat(event.aggregate_id(), ": n=", n, " (", tag,
                                                       ") after n=", last->second, " at ",
                                                       r.partition, "@", r.offset));
      }
      last->second = std::max(last->second, n);
    }
    result.first_deliveries.push_back({tag, event.aggregate_id(), n, event.source().commit_lsn(),
                                       r.partition, r.offset});
  }
  result.events = static_cast<int64_t>(seen.size());
  for (const auto& [tag, outcome] : outcomes) {
    if (outcome != Outcome::kCommitted || excluded.count(tag) > 0) continue;
    ++result.committed;
    if (seen.count(tag) == 0) result.missing.push_back(tag);
  }
  std::sort(result.missing.begin(), result.missing.end());
  return result;
}

std::string CheckResult::Describe() const {
  auto head = [](const std::vector<std::string>& v) {
    std::vector<std::string> first(v.begin(), v.begin() + std::min<size_t>(v.size(), 5));
    return absl::StrCat(v.size(), v.empty() ? "" : " (", absl::StrJoin(first, ", "),
                        v.size() > 5 ? ", ..." : "", v.empty() ? "" : ")");
  };
  return absl::StrCat("records=", records, " events=", events, " committed=", committed,
                      " duplicates=", duplicates, " missing=", head(missing),
                      " rolled_back_present=", head(rolled_back_present),
                      " unknown_present=", head(unknown_present),
                      " order_violations=", head(order_violations),
                      " undecodable=", head(undecodable));
}

}  // namespace outboxd::test
