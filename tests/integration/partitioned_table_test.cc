// A partitioned outbox table (--table names the partitioned root): init makes
// the publication publish through the root, run refuses a publication that
// does not (with the ALTER to run), and partitions created, attached, detached
// and dropped while rows are written change nothing for the stream.
#include <libpq-fe.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pq/handles.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

constexpr char kTable[] = "public.outbox_p";

// Time-partitioned by month, the layout a team uses to retire old events with DROP TABLE.
constexpr char kCreateRoot[] =
    "CREATE TABLE public.outbox_p ("
    "  id bigserial, aggregate_type text NOT NULL, aggregate_id text NOT NULL,"
    "  event_type text NOT NULL, payload jsonb NOT NULL, headers jsonb, topic text,"
    "  created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id, created_at)"
    ") PARTITION BY RANGE (created_at);";

std::string Month(int m) { return absl::StrCat("2026_", m < 10 ? "0" : "", m); }
std::string MonthStart(int m) {
  return m == 13 ? "2027-01-01" : absl::StrCat("2026-", m < 10 ? "0" : "", m, "-01");
}
std::string CreatePartition(int m) {
  return absl::StrCat("CREATE TABLE public.outbox_p_", Month(m), " PARTITION OF public.outbox_p FOR VALUES FROM ('",
                      MonthStart(m), "') TO ('", MonthStart(m + 1), "');");
}

// The n in a payload {"n": N} as PostgreSQL prints jsonb.
int64_t PayloadN(absl::string_view payload) {
  const size_t colon = payload.find(':');
  int64_t n = 0;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(payload.substr(colon + 1, payload.find('}') - colon - 1), &n)) {
    ADD_FAILURE() << "payload " << payload;
  }
  return n;
}

// Writes numbered events (payload {"n": N}) into the month in `current`, and every third one
// into `older` when that is set (> 0), one or three per transaction. Records N only after
// COMMIT succeeded, so written() is exactly what must arrive.
class Writer {
 public:
  explicit Writer(std::string conninfo) : conninfo_(std::move(conninfo)) {}
  ~Writer() { Stop(); }

  void Start() { thread_ = std::thread([this] { Loop(); }); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::atomic<int> current{1};
  std::atomic<int> older{0};

  int64_t committed() const { return committed_.load(); }
  // Waits until `more` further transactions have committed (so the writer has seen the
  // months set before this call).
  bool WaitMore(int64_t more) {
    const int64_t target = committed_.load() + more;
    return WaitFor([&] { return committed_.load() >= target || !error().empty(); }, absl::Seconds(30),
                   absl::Milliseconds(5)) &&
           error().empty();
  }
  std::set<int64_t> written() const {
    std::lock_guard<std::mutex> lock(mu_);
    return written_;
  }
  std::string error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  void Loop() {
    pq::PgConn conn(PQconnectdb(conninfo_.c_str()));
    if (PQstatus(conn.get()) != CONNECTION_OK) return Fail(PQerrorMessage(conn.get()));
    std::mt19937 rng(14);  // seeded: the same mix of transactions every run
    int64_t n = 0;
    while (!stop_) {
      const int rows = rng() % 4 == 0 ? 3 : 1;
      std::string sql = "BEGIN;";
      std::vector<int64_t> batch;
      for (int i = 0; i < rows; ++i) {
        ++n;
        const int older = this->older.load();
        const int month = (older > 0 && n % 3 == 0) ? older : current.load();
        absl::StrAppend(&sql,
                        "INSERT INTO public.outbox_p (aggregate_type, aggregate_id, event_type, payload, "
                        "created_at) VALUES ('order', 'o-", n % 17, "', 'Placed', '{\"n\": ", n, "}', '",
                        MonthStart(month), "'::timestamptz + interval '", n % 20, " days');");
        batch.push_back(n);
      }
      sql += "COMMIT;";
      pq::PgResult result(PQexec(conn.get(), sql.c_str()));
      if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
        return Fail(absl::StrCat(PQerrorMessage(conn.get()), " in ", sql));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        written_.insert(batch.begin(), batch.end());
      }
      committed_.fetch_add(1);
    }
  }
  void Fail(const std::string& message) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = message;
  }

  const std::string conninfo_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> committed_{0};
  mutable std::mutex mu_;
  std::set<int64_t> written_;  // guarded by mu_
  std::string error_;          // guarded by mu_
  std::thread thread_;
};

class PartitionedTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(env_.Start(/*init=*/false));
    ASSERT_OK(env_.Sql(absl::StrCat(kCreateRoot, CreatePartition(1), CreatePartition(2))));
  }
  void TearDown() override {
    if (relay_ && relay_->Running()) {
      EXPECT_EQ(relay_->Terminate(), 0) << relay_->Stderr();
    }
  }
  std::pair<int, std::string> Outboxd(const std::string& command) {
    auto result = env_.RunOutboxd({command, "--postgres=" + env_.pg().ConnInfo(), absl::StrCat("--table=", kTable)});
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : std::make_pair(-1, std::string());
  }
  void StartRelay() {
    auto relay = env_.StartRelay({absl::StrCat("--table=", kTable)});
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = std::move(*relay);
    ASSERT_TRUE(RelayEnv::WaitStreaming(*relay_)) << relay_->Stderr();
  }

  RelayEnv env_;
  std::unique_ptr<Subprocess> relay_;
};

TEST_F(PartitionedTableTest, InitPublishesThroughTheRoot) {
  const auto [code, output] = Outboxd("init");
  ASSERT_EQ(code, 0) << output;
  EXPECT_EQ(*env_.pg().QueryValue("SELECT pubviaroot FROM pg_publication WHERE pubname = 'outboxd'"), "t");
  // Through the root, the publication lists the partitioned table itself, not its partitions.
  EXPECT_EQ(*env_.pg().QueryValue("SELECT string_agg(schemaname || '.' || tablename, ',') "
                                  "FROM pg_publication_tables WHERE pubname = 'outboxd'"),
            kTable);
}

TEST_F(PartitionedTableTest, PublicationWithoutViaRootIsRefusedWithTheAlterToRun) {
  // As a DBA (or Debezium) would have made them, without publish_via_partition_root.
  ASSERT_OK(env_.Sql("CREATE PUBLICATION outboxd FOR TABLE public.outbox_p WITH (publish = 'insert')"));
  ASSERT_OK(env_.Sql("SELECT pg_create_logical_replication_slot('outboxd', 'pgoutput')"));
  constexpr char kFix[] = "ALTER PUBLICATION \"outboxd\" SET (publish_via_partition_root = true)";
  for (const char* command : {"run", "init"}) {
    std::vector<std::string> args = {command, "--postgres=" + env_.pg().ConnInfo(),
                                     absl::StrCat("--table=", kTable)};
    if (std::string(command) == "run") args.push_back("--brokers=" + env_.Brokers());
    auto result = env_.RunOutboxd(args);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->first, 1) << command << ": " << result->second;
    EXPECT_NE(result->second.find(kFix), std::string::npos) << command << ": " << result->second;
    EXPECT_NE(result->second.find("partitioned"), std::string::npos) << command << ": " << result->second;
  }
  // The Fix line fixes it: the same relay now runs and names the root table in its events.
  ASSERT_OK(env_.Sql(absl::StrCat(kFix, ";")));
  ASSERT_NO_FATAL_FAILURE(StartRelay());
  ASSERT_OK(env_.Sql("INSERT INTO public.outbox_p (aggregate_type, aggregate_id, event_type, payload, created_at) "
                     "VALUES ('order', 'o-1', 'Placed', '{\"n\": 1}', '2026-02-03')"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event.source().table(), kTable);
  EXPECT_EQ(events[0].record.key, "o-1");
}

TEST_F(PartitionedTableTest, PartitionsCreatedAttachedDetachedAndDroppedUnderLoad) {
  ASSERT_EQ(Outboxd("init").first, 0);
  ASSERT_NO_FATAL_FAILURE(StartRelay());
  Writer writer(env_.pg().ConnInfo());
  writer.Start();
  ASSERT_TRUE(writer.WaitMore(40)) << writer.error();
  writer.current = 2;
  ASSERT_TRUE(writer.WaitMore(40)) << writer.error();

  // A partition created while the relay runs.
  ASSERT_OK(env_.Sql(CreatePartition(3)));
  writer.current = 3;
  writer.older = 2;
  ASSERT_TRUE(writer.WaitMore(40)) << writer.error();

  // A table made on its own, with its columns in another order and a dropped column (so its
  // tuples differ from the root's), holding rows from before: attached, its new rows are
  // events under the root's name and mapping, its old rows are not.
  ASSERT_OK(env_.Sql(
      "CREATE TABLE public.outbox_p_2026_04 (payload jsonb NOT NULL, junk int, created_at timestamptz NOT NULL,"
      "  event_type text NOT NULL, topic text, aggregate_id text NOT NULL, headers jsonb,"
      "  aggregate_type text NOT NULL, id bigint NOT NULL DEFAULT nextval('public.outbox_p_id_seq'));"
      "ALTER TABLE public.outbox_p_2026_04 DROP COLUMN junk;"
      "INSERT INTO public.outbox_p_2026_04 (payload, created_at, event_type, aggregate_id, aggregate_type) "
      "  SELECT jsonb_build_object('n', -g), '2026-04-02', 'Before', 'o-x', 'order' FROM generate_series(1, 3) g;"));
  ASSERT_OK(env_.Sql("ALTER TABLE public.outbox_p ATTACH PARTITION public.outbox_p_2026_04 "
                     "FOR VALUES FROM ('2026-04-01') TO ('2026-05-01')"));
  writer.current = 4;
  writer.older = 3;
  ASSERT_TRUE(writer.WaitMore(40)) << writer.error();

  // Retention: the oldest month detached (a row written into it afterwards is no event),
  // then dropped; the next one dropped while still attached.
  ASSERT_OK(env_.Sql("ALTER TABLE public.outbox_p DETACH PARTITION public.outbox_p_2026_01"));
  ASSERT_OK(env_.Sql("INSERT INTO public.outbox_p_2026_01 (aggregate_type, aggregate_id, event_type, payload, created_at) "
                     "VALUES ('order', 'o-x', 'AfterDetach', '{\"n\": -10}', '2026-01-05')"));
  ASSERT_OK(env_.Sql("DROP TABLE public.outbox_p_2026_01"));
  ASSERT_TRUE(writer.WaitMore(40)) << writer.error();
  ASSERT_OK(env_.Sql("DROP TABLE public.outbox_p_2026_02"));
  ASSERT_TRUE(writer.WaitMore(40)) << writer.error();
  writer.older = 0;
  ASSERT_TRUE(writer.WaitMore(2)) << writer.error();  // nothing goes to March any more
  ASSERT_OK(env_.Sql("ALTER TABLE public.outbox_p DETACH PARTITION public.outbox_p_2026_03 CONCURRENTLY"));
  ASSERT_TRUE(writer.WaitMore(40)) << writer.error();
  writer.Stop();
  ASSERT_EQ(writer.error(), "");

  const std::set<int64_t> written = writer.written();
  ASSERT_GT(written.size(), 280u);
  // Everything committed, once confirmed, is in Kafka; a short read past that shows any extra.
  std::vector<Event> events = env_.ReadAllCommitted("outbox.event.order", written.size() + 20);
  std::multiset<int64_t> got;
  std::map<std::string, int64_t> last_n_per_key;
  for (const Event& e : events) {
    const int64_t n = PayloadN(e.event.payload());
    got.insert(n);
    EXPECT_EQ(e.event.source().table(), kTable) << n;
    EXPECT_EQ(e.record.key, e.event.aggregate_id()) << n;
    EXPECT_EQ(e.record.key, absl::StrCat("o-", n % 17)) << n;
    EXPECT_EQ(e.event.event_type(), "Placed") << n;
    // One key, one partition: the writer's order (its commit order) kept.
    EXPECT_GT(n, last_n_per_key[e.record.key]) << "out of order for " << e.record.key;
    last_n_per_key[e.record.key] = n;
  }
  EXPECT_EQ(got, std::multiset<int64_t>(written.begin(), written.end()))
      << "events " << events.size() << ", written " << written.size();
  EXPECT_TRUE(relay_->Running()) << relay_->Stderr();
}

}  // namespace
}  // namespace outboxd::test
