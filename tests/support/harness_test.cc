// Proves the integration-test harness itself: a real PostgreSQL, the kafka-mock process, the
// Kafka reader and subprocesses behave as the integration tests assume.
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/kafka_mock_process.h"
#include "tests/support/kafka_reader.h"
#include "pq/handles.h"
#include "tests/support/pg_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/wait.h"

namespace outboxd::test {
namespace {

using ::outboxd::pq::PgConn;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

// --- PostgreSQL -----------------------------------------------------------------------------

TEST(PgServerTest, StartsWithLogicalWalLevel) {
  absl::StatusOr<std::unique_ptr<PgServer>> pg = PgServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  EXPECT_GT((*pg)->port(), 0);
  EXPECT_EQ((*pg)->QueryValue("SHOW wal_level").value_or("?"), "logical");
  EXPECT_EQ((*pg)->ConnInfo("alice", "shop"),
            absl::StrCat("host=127.0.0.1 port=", (*pg)->port(), " user=alice dbname=shop"));
}

TEST(PgServerTest, ExecQueryAndErrors) {
  absl::StatusOr<std::unique_ptr<PgServer>> pg = PgServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  ASSERT_TRUE((*pg)->Exec("CREATE TABLE t (id int, name text); "
                          "INSERT INTO t VALUES (1, 'a'), (2, NULL)")
                  .ok());
  absl::StatusOr<PgServer::Rows> rows = (*pg)->Query("SELECT id, name FROM t ORDER BY id");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0][1], "a");
  EXPECT_EQ((*rows)[1][1], std::nullopt);
  EXPECT_FALSE((*pg)->QueryValue("SELECT name FROM t WHERE id = 2").ok());  // NULL
  EXPECT_FALSE((*pg)->QueryValue("SELECT 1 WHERE false").ok());            // no row

  absl::Status bad = (*pg)->Exec("SELECT * FROM no_such_table");
  EXPECT_THAT(bad.message(), HasSubstr("no_such_table"));
}

TEST(PgServerTest, NonSuperuserNeedsPassword) {
  absl::StatusOr<std::unique_ptr<PgServer>> pg = PgServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  ASSERT_TRUE((*pg)->Exec("CREATE ROLE app LOGIN PASSWORD 'secret'").ok());
  auto connects = [&](const std::string& conninfo) {
    PgConn conn(PQconnectdb(conninfo.c_str()));
    return PQstatus(conn.get()) == CONNECTION_OK;
  };
  EXPECT_TRUE(connects((*pg)->ConnInfo("app") + " password=secret"));
  EXPECT_FALSE(connects((*pg)->ConnInfo("app") + " password=wrong"));
}

TEST(PgServerTest, StopAndStartAgainKeepsDataAndPort) {
  absl::StatusOr<std::unique_ptr<PgServer>> pg = PgServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  const int port = (*pg)->port();
  ASSERT_TRUE((*pg)->Exec("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)").ok());

  ASSERT_TRUE((*pg)->Stop().ok());
  EXPECT_FALSE((*pg)->Exec("SELECT 1").ok());
  absl::Status restarted = (*pg)->StartAgain();
  ASSERT_TRUE(restarted.ok()) << restarted;

  EXPECT_EQ((*pg)->port(), port);
  EXPECT_EQ((*pg)->QueryValue("SELECT x FROM kept").value_or("?"), "42");
  EXPECT_THAT((*pg)->LogTail(50), HasSubstr("database system is ready"));
}

TEST(PgServerTest, TwoServersGetDifferentPortsAndDirs) {
  absl::StatusOr<std::unique_ptr<PgServer>> a = PgServer::Start();
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::unique_ptr<PgServer>> b =
      PgServer::Start({.wal_level = "replica", .extra_config = {"max_connections = 50"}});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE((*a)->port(), (*b)->port());
  EXPECT_NE((*a)->data_dir(), (*b)->data_dir());
  EXPECT_EQ((*b)->QueryValue("SHOW wal_level").value_or("?"), "replica");
  EXPECT_EQ((*b)->QueryValue("SHOW max_connections").value_or("?"), "50");
}

TEST(PgServerTest, DestructorRemovesDataDir) {
  std::string dir;
  {
    absl::StatusOr<std::unique_ptr<PgServer>> pg = PgServer::Start();
    ASSERT_TRUE(pg.ok()) << pg.status();
    dir = (*pg)->data_dir();
    ASSERT_EQ(access(dir.c_str(), F_OK), 0);
  }
  EXPECT_NE(access(dir.c_str(), F_OK), 0);
}

TEST(PgServerTest, RunsTheSelectedVersion) {
  absl::StatusOr<std::unique_ptr<PgServer>> pg = PgServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  EXPECT_EQ((*pg)->version(), PgServer::DefaultVersion());
  absl::StatusOr<std::string> num = (*pg)->QueryValue("SHOW server_version_num");
  ASSERT_TRUE(num.ok()) << num.status();
  EXPECT_EQ(num->substr(0, 2), absl::StrCat((*pg)->version())) << *num;
}

// A crash: every server process gone at once; the next start recovers what was committed.
TEST(PgServerTest, Kill9ThenStartAgainRecovers) {
  absl::StatusOr<std::unique_ptr<PgServer>> pg = PgServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  ASSERT_TRUE((*pg)->Exec("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)").ok());
  absl::Status killed = (*pg)->Kill9();
  ASSERT_TRUE(killed.ok()) << killed;
  EXPECT_FALSE((*pg)->Exec("SELECT 1").ok());
  absl::Status restarted = (*pg)->StartAgain();
  ASSERT_TRUE(restarted.ok()) << restarted;
  EXPECT_EQ((*pg)->QueryValue("SELECT x FROM kept").value_or("?"), "7");
  EXPECT_THAT((*pg)->LogTail(50), HasSubstr("not properly shut down"));
}

TEST(PgServerTest, StandbyStreamsThenPromotes) {
  absl::StatusOr<std::unique_ptr<PgServer>> primary =
      PgServer::Start({.extra_config = {"wal_keep_size = 64MB"}});
  ASSERT_TRUE(primary.ok()) << primary.status();
  ASSERT_TRUE((*primary)->Exec("CREATE TABLE t (x int); INSERT INTO t VALUES (1)").ok());
  absl::StatusOr<std::unique_ptr<PgServer>> standby = PgServer::StartStandby(
      **primary, {.extra_config = {"hot_standby_feedback = on"}}, "standby1");
  ASSERT_TRUE(standby.ok()) << standby.status();
  EXPECT_NE((*standby)->port(), (*primary)->port());
  EXPECT_EQ((*standby)->version(), (*primary)->version());
  EXPECT_EQ((*standby)->QueryValue("SELECT pg_is_in_recovery()").value_or("?"), "t");
  EXPECT_EQ((*standby)->QueryValue("SHOW hot_standby_feedback").value_or("?"), "on");
  if ((*standby)->version() >= 17) {  // 15's pg_basebackup -R leaves dbname out
    EXPECT_THAT((*standby)->QueryValue("SHOW primary_conninfo").value_or("?"),
                HasSubstr("dbname=postgres"));
  }
  EXPECT_EQ((*primary)
                ->QueryValue("SELECT active FROM pg_replication_slots WHERE slot_name = 'standby1'")
                .value_or("?"),
            "t");

  ASSERT_TRUE((*primary)->Exec("INSERT INTO t VALUES (2)").ok());
  EXPECT_TRUE(WaitFor(
      [&] { return (*standby)->QueryValue("SELECT count(*) FROM t").value_or("") == "2"; },
      absl::Seconds(30)));
  EXPECT_FALSE((*standby)->Exec("INSERT INTO t VALUES (3)").ok());  // read-only

  ASSERT_TRUE((*primary)->Kill9().ok());
  absl::Status promoted = (*standby)->Promote();
  ASSERT_TRUE(promoted.ok()) << promoted;
  EXPECT_EQ((*standby)->QueryValue("SELECT pg_is_in_recovery()").value_or("?"), "f");
  absl::Status write = (*standby)->Exec("INSERT INTO t VALUES (3)");
  EXPECT_TRUE(write.ok()) << write;
}

// --- Kafka ----------------------------------------------------------------------------------

// A plain librdkafka producer; synchronous enough for a test: Produce, then Flush.
class TestProducer {
 public:
  explicit TestProducer(const std::string& brokers) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr));
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  }
  TestProducer(const TestProducer&) = delete;
  TestProducer& operator=(const TestProducer&) = delete;
  ~TestProducer() { rd_kafka_destroy(rk_); }

  rd_kafka_resp_err_t Produce(const std::string& topic, const std::string& key,
                              const std::string& value, const std::string& header_value) {
    return rd_kafka_producev(
        rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("event_type", header_value.data(),
                          static_cast<ssize_t>(header_value.size())),
        RD_KAFKA_V_END);
  }
  rd_kafka_resp_err_t Flush() { return rd_kafka_flush(rk_, 10000); }

  // -1 when the cluster does not answer.
  int PartitionCount(const std::string& topic) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    int count = -1;
    if (rd_kafka_metadata(rk_, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      count = md->topics[0].partition_cnt;
      rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return count;
  }

 private:
  rd_kafka_t* rk_;
};

TEST(KafkaMockTest, CreateTopicProduceAndReadBack) {
  absl::StatusOr<std::unique_ptr<KafkaMockProcess>> kafka = KafkaMockProcess::Start();
  ASSERT_TRUE(kafka.ok()) << kafka.status();
  EXPECT_THAT((*kafka)->bootstrap(), HasSubstr("127.0.0.1:"));
  ASSERT_TRUE((*kafka)->CreateTopic("orders", 2).ok());
  EXPECT_EQ(TestProducer((*kafka)->bootstrap()).PartitionCount("orders"), 2);
  EXPECT_FALSE((*kafka)->CreateTopic("orders", 2).ok());  // already exists
  EXPECT_FALSE((*kafka)->BrokerDown(4).ok());             // ids are 1..3

  TestProducer producer((*kafka)->bootstrap());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(producer.Produce("orders", "order-1", absl::StrCat("v", i), "created"),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_EQ(producer.Flush(), RD_KAFKA_RESP_ERR_NO_ERROR);

  absl::StatusOr<std::vector<KafkaRecord>> records =
      ReadTopic((*kafka)->bootstrap(), "orders", 3, absl::Seconds(20));
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 3u);
  // One key, one partition: the order produced.
  for (int i = 0; i < 3; ++i) {
    const KafkaRecord& r = (*records)[i];
    EXPECT_EQ(r.topic, "orders");
    EXPECT_EQ(r.partition, (*records)[0].partition);
    EXPECT_EQ(r.offset, i);
    EXPECT_EQ(r.key, "order-1");
    EXPECT_EQ(r.value, absl::StrCat("v", i));
    EXPECT_THAT(r.headers, ElementsAre(Pair("event_type", "created")));
  }

  absl::StatusOr<std::vector<std::string>> topics = ListTopics((*kafka)->bootstrap());
  ASSERT_TRUE(topics.ok()) << topics.status();
  EXPECT_THAT(*topics, Contains("orders"));
}

TEST(KafkaMockTest, ReadingAMissingTopicNeitherFailsNorCreatesIt) {
  absl::StatusOr<std::unique_ptr<KafkaMockProcess>> kafka = KafkaMockProcess::Start(1);
  ASSERT_TRUE(kafka.ok()) << kafka.status();
  absl::StatusOr<std::vector<KafkaRecord>> records =
      ReadTopic((*kafka)->bootstrap(), "never.created", 1, absl::Milliseconds(500));
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_TRUE(records->empty());
  absl::StatusOr<std::vector<std::string>> topics = ListTopics((*kafka)->bootstrap());
  ASSERT_TRUE(topics.ok()) << topics.status();
  EXPECT_THAT(*topics, Not(Contains("never.created")));
}

TEST(KafkaMockTest, ProducerAutoCreatesTopicWithDefaultPartitions) {
  absl::StatusOr<std::unique_ptr<KafkaMockProcess>> kafka = KafkaMockProcess::Start();
  ASSERT_TRUE(kafka.ok()) << kafka.status();
  TestProducer producer((*kafka)->bootstrap());
  ASSERT_EQ(producer.Produce("auto.created", "k", "v", "h"), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(producer.Flush(), RD_KAFKA_RESP_ERR_NO_ERROR);
  absl::StatusOr<std::vector<KafkaRecord>> records =
      ReadTopic((*kafka)->bootstrap(), "auto.created", 1, absl::Seconds(20));
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  // The mock cluster's default for auto-created topics (documented in kafka_mock_process.h).
  EXPECT_EQ(producer.PartitionCount("auto.created"), 4);
}

TEST(KafkaMockTest, AllDownThenAllUpDeliversAfterRecovery) {
  absl::StatusOr<std::unique_ptr<KafkaMockProcess>> kafka = KafkaMockProcess::Start();
  ASSERT_TRUE(kafka.ok()) << kafka.status();
  ASSERT_TRUE((*kafka)->CreateTopic("outage", 1).ok());
  TestProducer producer((*kafka)->bootstrap());
  ASSERT_EQ(producer.Produce("outage", "k", "before", "h"), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(producer.Flush(), RD_KAFKA_RESP_ERR_NO_ERROR);

  ASSERT_TRUE((*kafka)->AllDown().ok());
  absl::StatusOr<std::vector<KafkaRecord>> during =
      ReadTopic((*kafka)->bootstrap(), "outage", 1, absl::Milliseconds(500));
  ASSERT_TRUE(during.ok()) << during.status();
  EXPECT_TRUE(during->empty());
  ASSERT_EQ(producer.Produce("outage", "k", "during", "h"), RD_KAFKA_RESP_ERR_NO_ERROR);

  ASSERT_TRUE((*kafka)->AllUp().ok());
  ASSERT_EQ(producer.Flush(), RD_KAFKA_RESP_ERR_NO_ERROR);
  absl::StatusOr<std::vector<KafkaRecord>> after =
      ReadTopic((*kafka)->bootstrap(), "outage", 2, absl::Seconds(20));
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].value, "before");
  EXPECT_EQ((*after)[1].value, "during");

  ASSERT_TRUE((*kafka)->BrokerDown(2).ok());
  ASSERT_TRUE((*kafka)->BrokerUp(2).ok());
}

TEST(KafkaMockTest, BinaryKeepsServingAfterStdinEofAndExitsZeroOnSigterm) {
  absl::StatusOr<std::unique_ptr<Subprocess>> mock =
      Subprocess::Start({BinaryPath("kafka-mock"), "--brokers=1", "--topic=pre:2"});
  ASSERT_TRUE(mock.ok()) << mock.status();
  ASSERT_TRUE(WaitFor([&] { return (*mock)->Stdout().find('\n') != std::string::npos; },
                      absl::Seconds(10)))
      << (*mock)->Stderr();
  std::string bootstrap = (*mock)->Stdout();
  bootstrap.pop_back();
  // stdin is /dev/null, so it has seen EOF; it must still answer.
  absl::StatusOr<std::vector<std::string>> topics = ListTopics(bootstrap);
  ASSERT_TRUE(topics.ok()) << topics.status();
  EXPECT_THAT(*topics, Contains("pre"));
  EXPECT_TRUE((*mock)->Running());

  (*mock)->Signal(SIGTERM);
  absl::StatusOr<int> code = (*mock)->Wait(absl::Seconds(10));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

// --- Subprocess -----------------------------------------------------------------------------

TEST(SubprocessTest, CapturesOutputAndExitCode) {
  absl::StatusOr<std::unique_ptr<Subprocess>> sh =
      Subprocess::Start({"/bin/sh", "-c", "echo hi; echo err >&2; exit 3"});
  ASSERT_TRUE(sh.ok()) << sh.status();
  absl::StatusOr<int> code = (*sh)->Wait(absl::Seconds(10));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 3);
  EXPECT_EQ((*sh)->Stdout(), "hi\n");
  EXPECT_EQ((*sh)->Stderr(), "err\n");
  EXPECT_FALSE((*sh)->Running());
}

TEST(SubprocessTest, ExtraEnvAndPathLookup) {
  absl::StatusOr<std::unique_ptr<Subprocess>> sh =
      Subprocess::Start({"sh", "-c", "echo \"$OUTBOXD_TEST_VAR\""}, {{"OUTBOXD_TEST_VAR", "x=1"}});
  ASSERT_TRUE(sh.ok()) << sh.status();
  ASSERT_EQ((*sh)->Wait(absl::Seconds(10)).value_or(-1), 0);
  EXPECT_EQ((*sh)->Stdout(), "x=1\n");
}

TEST(SubprocessTest, SignalAndTimeout) {
  absl::StatusOr<std::unique_ptr<Subprocess>> sleeper =
      Subprocess::Start({"/bin/sh", "-c", "exec sleep 60"});
  ASSERT_TRUE(sleeper.ok()) << sleeper.status();
  EXPECT_TRUE((*sleeper)->Running());
  EXPECT_EQ((*sleeper)->Wait(absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  (*sleeper)->Signal(SIGKILL);
  EXPECT_EQ((*sleeper)->Wait(absl::Seconds(10)).value_or(-1), 128 + SIGKILL);
}

TEST(SubprocessTest, MissingProgramExits127) {
  absl::StatusOr<std::unique_ptr<Subprocess>> missing =
      Subprocess::Start({"/nonexistent/program"});
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ((*missing)->Wait(absl::Seconds(10)).value_or(-1), 127);
}

// No test may bind outboxd's default admin (7700) or metrics (9187) port.
TEST(SubprocessTest, RefusesOutboxdRunWithoutExplicitListenAddresses) {
  const std::string outboxd = BinaryPath("outboxd");
  absl::StatusOr<std::unique_ptr<Subprocess>> run =
      Subprocess::Start({outboxd, "run", "--postgres=host=127.0.0.1 port=1", "--brokers=127.0.0.1:1"});
  ASSERT_FALSE(run.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(run.status())) << run.status();
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("--admin_listen=127.0.0.1:0"));

  const EnvVars none;
  EXPECT_FALSE(CheckListenFlags({outboxd, "run", "--admin_listen=127.0.0.1:0"}, none).ok());
  EXPECT_FALSE(CheckListenFlags({outboxd, "run", "--metrics_listen=127.0.0.1:0"}, none).ok());
  // The default ports named explicitly are refused too.
  EXPECT_FALSE(CheckListenFlags(
      {outboxd, "run", "--admin_listen=127.0.0.1:7700", "--metrics_listen=127.0.0.1:0"}, none).ok());
  EXPECT_FALSE(CheckListenFlags(
      {outboxd, "run", "--admin_listen=", "--metrics_listen", "0.0.0.0:9187"}, none).ok());
  EXPECT_FALSE(CheckListenFlags({outboxd, "run"}, {{"OUTBOXD_ADMIN_LISTEN", "127.0.0.1:0"},
                                                   {"OUTBOXD_METRICS_LISTEN", "127.0.0.1:9187"}})
                   .ok());
  // Free ports or disabled, as flags (either form) or variables.
  EXPECT_TRUE(CheckListenFlags(
      {outboxd, "run", "--admin_listen=127.0.0.1:0", "-metrics_listen="}, none).ok());
  EXPECT_TRUE(CheckListenFlags({outboxd, "run", "--admin_listen", "", "--metrics_listen="}, none).ok());
  EXPECT_TRUE(CheckListenFlags({outboxd, "run"}, {{"OUTBOXD_ADMIN_LISTEN", "127.0.0.1:0"},
                                                  {"OUTBOXD_METRICS_LISTEN", ""}})
                  .ok());
  // Other commands bind nothing; --help neither.
  EXPECT_TRUE(CheckListenFlags({outboxd, "init", "--postgres=x"}, none).ok());
  EXPECT_TRUE(CheckListenFlags({outboxd, "run", "--help"}, none).ok());
  EXPECT_TRUE(CheckListenFlags({"/bin/echo", "run"}, none).ok());
}

TEST(SubprocessTest, AddTestListenFlagsGivesFreePortsWhereNoneAreGiven) {
  const std::string outboxd = BinaryPath("outboxd");
  std::vector<std::string> argv = {outboxd, "run", "--metrics_listen="};
  AddTestListenFlags(argv);
  EXPECT_THAT(argv, ElementsAre(outboxd, "run", "--admin_listen=127.0.0.1:0", "--metrics_listen="));
  EXPECT_TRUE(CheckListenFlags(argv, {}).ok());
  std::vector<std::string> from_env = {outboxd, "run"};
  AddTestListenFlags(from_env, {{"OUTBOXD_ADMIN_LISTEN", ""}});
  EXPECT_THAT(from_env, ElementsAre(outboxd, "run", "--metrics_listen=127.0.0.1:0"));
  std::vector<std::string> init = {outboxd, "init"};
  AddTestListenFlags(init);
  EXPECT_THAT(init, ElementsAre(outboxd, "init"));
}

TEST(WaitForTest, TrueAndTimeout) {
  int calls = 0;
  EXPECT_TRUE(WaitFor([&] { return ++calls >= 3; }, absl::Seconds(5), absl::Milliseconds(1)));
  EXPECT_EQ(calls, 3);
  EXPECT_FALSE(WaitFor([] { return false; }, absl::Milliseconds(30)));
}

}  // namespace
}  // namespace outboxd::test
