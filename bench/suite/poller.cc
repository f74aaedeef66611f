// bench-poller: the polling outbox publisher the bench compares outboxd against, written the way
// teams run the pattern in production, so the comparison is fair to it.
//
//   $ bench-poller --postgres='host=... dbname=...' --brokers=127.0.0.1:9092
//         --table=public.outbox_poll --interval_ms=100 --batch=500 --workers=1
//   ready                                <- first stdout line once every worker is connected
//
// Each worker loops: BEGIN; SELECT ... WHERE published_at IS NULL ORDER BY id LIMIT n FOR UPDATE
// SKIP LOCKED (served by a partial index on unpublished rows); produce every row to Kafka with
// outboxd's producer settings and the same protobuf value and headers; wait until Kafka has
// acknowledged all of them; UPDATE ... SET published_at = now(); COMMIT. When a poll returned a
// full batch it polls again at once (draining a backlog), otherwise it sleeps --interval_ms.
// A failed delivery rolls the batch back, so the rows are claimed again (at-least-once, as in
// the pattern).
//
// Threads: one thread per worker, each owning its PostgreSQL connection and its librdkafka
// producer (delivery reports are served by rd_kafka_flush on that same thread). The main thread
// waits for SIGTERM/SIGINT and sets the stop flag the workers check between polls.

#include <libpq-fe.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "librdkafka/rdkafka.h"
#include "outboxd/status_macros.h"
#include "outboxd/v1/event.pb.h"

ABSL_FLAG(std::string, postgres, "", "libpq connection string");
ABSL_FLAG(std::string, brokers, "", "Kafka bootstrap servers");
ABSL_FLAG(std::string, table, "public.outbox_poll", "outbox table with a published_at column");
ABSL_FLAG(int, interval_ms, 100, "sleep between polls that did not return a full batch");
ABSL_FLAG(int, batch, 500, "rows claimed per poll (LIMIT)");
ABSL_FLAG(int, workers, 1, "concurrent pollers (SKIP LOCKED keeps them apart)");
ABSL_FLAG(int, linger_ms, 1, "producer linger.ms (outboxd's default)");
ABSL_FLAG(std::string, topic_prefix, "outbox.event.", "topic = prefix + aggregate_type");

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;
struct KafkaDeleter {
  void operator()(rd_kafka_t* k) const { rd_kafka_destroy(k); }
};
using KafkaPtr = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

// Delivery outcome of one batch; written by the delivery callback, which runs inside
// rd_kafka_flush/rd_kafka_poll on the worker's own thread.
struct BatchState {
  int64_t delivered = 0;
  int64_t failed = 0;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* state = static_cast<BatchState*>(opaque);
  if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++state->delivered;
  } else {
    ++state->failed;
    std::cerr << "bench-poller: delivery failed: " << rd_kafka_err2str(msg->err) << "\n";
  }
}

absl::Status Exec(PGconn* conn, const char* sql) {
  PgResult r(PQexec(conn, sql));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    return absl::InternalError(absl::StrCat(sql, ": ", PQerrorMessage(conn)));
  }
  return absl::OkStatus();
}

class Worker {
 public:
  // Connects and prepares; the error says what failed.
  absl::Status Init() {
    conn_.reset(PQconnectdb(absl::GetFlag(FLAGS_postgres).c_str()));
    if (PQstatus(conn_.get()) != CONNECTION_OK) {
      return absl::UnavailableError(absl::StrCat("connect: ", PQerrorMessage(conn_.get())));
    }
    const std::string table = absl::GetFlag(FLAGS_table);
    claim_sql_ = absl::StrCat(
        "SELECT id::text, aggregate_type, aggregate_id, event_type, payload::text FROM ", table,
        " WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED");
    mark_sql_ =
        absl::StrCat("UPDATE ", table, " SET published_at = now() WHERE id = ANY($1::bigint[])");
    // Unnamed statements (planned on every execution, as most drivers send them): a cached
    // generic plan made while the table was small would turn into sequential scans later.
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    const std::vector<std::pair<std::string, std::string>> props = {
        {"bootstrap.servers", absl::GetFlag(FLAGS_brokers)},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", absl::StrCat(absl::GetFlag(FLAGS_linger_ms))},
        {"partitioner", "murmur2_random"},
        // The same bounds as outboxd's producer (sink/rdkafka_util.cc).
        {"queue.buffering.max.messages", "20000"},
        {"queue.buffering.max.kbytes", "16384"},
        {"message.max.bytes", "1048588"},
        {"client.id", "bench-poller"},
    };
    for (const auto& [k, v] : props) {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return absl::InvalidArgumentError(absl::StrCat(k, "=", v, ": ", err));
      }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
    rd_kafka_conf_set_opaque(conf, &state_);
    producer_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
    if (producer_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      return absl::InternalError(absl::StrCat("rd_kafka_new: ", err));
    }
    return absl::OkStatus();
  }

  // One poll: claim, produce, wait, mark, commit. Returns rows published (0: nothing to do).
  absl::StatusOr<int> PollOnce(int batch) {
    RETURN_IF_ERROR(Exec(conn_.get(), "BEGIN"));
    const std::string limit = absl::StrCat(batch);
    const char* params[] = {limit.c_str()};
    PgResult rows(
        PQexecParams(conn_.get(), claim_sql_.c_str(), 1, nullptr, params, nullptr, nullptr, 0));
    if (PQresultStatus(rows.get()) != PGRES_TUPLES_OK) {
      absl::Status s = absl::InternalError(absl::StrCat("claim: ", PQerrorMessage(conn_.get())));
      (void)Exec(conn_.get(), "ROLLBACK");
      return s;
    }
    const int n = PQntuples(rows.get());
    if (n == 0) {
      RETURN_IF_ERROR(Exec(conn_.get(), "COMMIT"));
      return 0;
    }
    state_ = BatchState{};
    const std::string prefix = absl::GetFlag(FLAGS_topic_prefix);
    const std::string table = absl::GetFlag(FLAGS_table);
    std::vector<std::string> ids;
    ids.reserve(n);
    std::string value;
    for (int i = 0; i < n; ++i) {
      outboxd::v1::OutboxEvent event;
      event.set_id(PQgetvalue(rows.get(), i, 0));
      event.set_aggregate_type(PQgetvalue(rows.get(), i, 1));
      event.set_aggregate_id(PQgetvalue(rows.get(), i, 2));
      event.set_event_type(PQgetvalue(rows.get(), i, 3));
      event.set_payload(PQgetvalue(rows.get(), i, 4), PQgetlength(rows.get(), i, 4));
      event.mutable_source()->set_table(table);
      event.SerializeToString(&value);
      ids.push_back(event.id());
      const std::string topic = prefix + event.aggregate_type();
      rd_kafka_headers_t* headers = rd_kafka_headers_new(2);
      rd_kafka_header_add(headers, "id", -1, event.id().data(), event.id().size());
      rd_kafka_header_add(headers, "event_type", -1, event.event_type().data(),
                          event.event_type().size());
      rd_kafka_resp_err_t err;
      while (true) {
        err = rd_kafka_producev(
            producer_.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(value.data(), value.size()),
            RD_KAFKA_V_KEY(event.aggregate_id().data(), event.aggregate_id().size()),
            RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(producer_.get(), 10);
      }
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(headers);  // ownership passes only on success
        ++state_.failed;
      }
    }
    // Wait for every delivery report of this batch: the rows may be marked only once Kafka
    // has them.
    while (state_.delivered + state_.failed < n && !g_stop.load()) {
      rd_kafka_flush(producer_.get(), 1000);
    }
    if (state_.failed > 0 || state_.delivered < n) {
      (void)Exec(conn_.get(), "ROLLBACK");
      return absl::UnavailableError(absl::StrCat(state_.failed, " deliveries failed"));
    }
    const std::string array = absl::StrCat("{", absl::StrJoin(ids, ","), "}");
    const char* mark_params[] = {array.c_str()};
    PgResult marked(
        PQexecParams(conn_.get(), mark_sql_.c_str(), 1, nullptr, mark_params, nullptr, nullptr, 0));
    if (PQresultStatus(marked.get()) != PGRES_COMMAND_OK) {
      absl::Status s = absl::InternalError(absl::StrCat("mark: ", PQerrorMessage(conn_.get())));
      (void)Exec(conn_.get(), "ROLLBACK");
      return s;
    }
    RETURN_IF_ERROR(Exec(conn_.get(), "COMMIT"));
    return n;
  }

 private:
  PgConn conn_;
  std::string claim_sql_;
  std::string mark_sql_;
  KafkaPtr producer_;
  BatchState state_;
};

void RunWorker(Worker* worker) {
  const int batch = absl::GetFlag(FLAGS_batch);
  const auto interval = std::chrono::milliseconds(absl::GetFlag(FLAGS_interval_ms));
  while (!g_stop.load()) {
    absl::StatusOr<int> n = worker->PollOnce(batch);
    if (!n.ok()) {
      std::cerr << "bench-poller: " << n.status() << "\n";
      std::this_thread::sleep_for(interval);
      continue;
    }
    if (*n < batch) std::this_thread::sleep_for(interval);
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_postgres).empty() || absl::GetFlag(FLAGS_brokers).empty()) {
    std::cerr << "bench-poller: --postgres and --brokers are required\n";
    return 2;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < absl::GetFlag(FLAGS_workers); ++i) {
    auto worker = std::make_unique<Worker>();
    if (absl::Status s = worker->Init(); !s.ok()) {
      std::cerr << "bench-poller: " << s << "\n";
      return 1;
    }
    workers.push_back(std::move(worker));
  }
  std::cout << "ready" << std::endl;
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back(RunWorker, w.get());
  for (auto& t : threads) t.join();
  return 0;
}
