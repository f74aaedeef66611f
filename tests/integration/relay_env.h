// RelayEnv: a throwaway PostgreSQL, kafka-mock (or an external Kafka) and the real outboxd
// binary, for integration tests.
//
//   RelayEnv env;                        // in a test fixture's SetUp
//   ASSERT_OK(env.Start());              // PostgreSQL + kafka-mock + `outboxd init`
//   auto relay = env.StartRelay();       // `outboxd run` as a subprocess
//   env.Sql("INSERT INTO outbox_events ...");
//   auto events = env.ReadEvents("outbox.event.order", 3);
//
// Tests talk to a real server and a real Kafka-protocol broker; only the
// assertions are in-process.
//
// External Kafka: with OUTBOXD_TEST_KAFKA_CLUSTER or OUTBOXD_TEST_KAFKA_BROKERS set, no
// kafka-mock is started and kafka() is an ExternalKafka (tests/support/external_kafka.h);
// kafka().HasMockControl() is false there. A real broker is shared by the tests running at once
// and keeps their topics, so there every name the relay derives from its defaults is given a
// prefix unique to the test: StartRelay passes --topic_prefix, --dead_letter_topic and
// --checkpoint_topic under it (a test's own flags come later and win; the default
// transactional.id already differs per test: it holds the server's system identifier), and Topic() maps
// "outbox.*"/"outboxd.*" names to it for CreateTopic and ReadEvents. Tests keep writing
// "outbox.event.order".
#ifndef OUTBOXD_TESTS_INTEGRATION_RELAY_ENV_H_
#define OUTBOXD_TESTS_INTEGRATION_RELAY_ENV_H_

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "outboxd/lsn.h"
#include "outboxd/status_macros.h"
#include "outboxd/v1/event.pb.h"
#include "tests/support/external_kafka.h"
#include "tests/support/kafka_control.h"
#include "tests/support/kafka_mock_process.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/pg_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/wait.h"

namespace outboxd::test {

#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const absl::Status _st = (expr);                         \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (0)

// How often `needle` occurs in `haystack` (e.g. a log line in a relay's stderr).
inline int CountOf(absl::string_view haystack, absl::string_view needle) {
  int count = 0;
  for (size_t pos = haystack.find(needle); pos != absl::string_view::npos;
       pos = haystack.find(needle, pos + 1)) {
    ++count;
  }
  return count;
}

struct Event {
  KafkaRecord record;
  v1::OutboxEvent event;
  std::string Header(absl::string_view name) const {
    for (const auto& [k, v] : record.headers) {
      if (k == name) return v;
    }
    return "";
  }
};

// Records of different keys sit in different partitions, so a reader sees them
// interleaved in no particular order; tests that compare order across keys
// sort by the outbox id (the insert order) first.
inline void SortById(std::vector<Event>& events) {
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return std::stoll(a.event.id()) < std::stoll(b.event.id());
  });
}

// kafka() of an environment on a shared real Kafka: CreateTopic maps the name like Topic().
class NamespacedKafka : public KafkaControl {
 public:
  NamespacedKafka(std::unique_ptr<ExternalKafka> kafka, std::function<std::string(absl::string_view)> map)
      : kafka_(std::move(kafka)), map_(std::move(map)) {}
  const std::string& bootstrap() const override { return kafka_->bootstrap(); }
  absl::Status CreateTopic(absl::string_view name, int partitions) override {
    return kafka_->CreateTopic(map_(name), partitions);
  }
  absl::Status AllDown() override { return kafka_->AllDown(); }
  absl::Status AllUp() override { return kafka_->AllUp(); }
  absl::Status Command(absl::string_view line) override { return kafka_->Command(line); }
  bool HasMockControl() const override { return false; }
  ExternalKafka& external() { return *kafka_; }

 private:
  std::unique_ptr<ExternalKafka> kafka_;
  std::function<std::string(absl::string_view)> map_;
};

class RelayEnv {
 public:
  // PostgreSQL (wal_level=logical) + kafka-mock with `brokers` brokers (or the external Kafka);
  // with init, also `outboxd init`.
  absl::Status Start(bool init = true, PgServerOptions pg_options = {}, int brokers = 3) {
    ASSIGN_OR_RETURN(auto pg, PgServer::Start(std::move(pg_options)));
    pg_ = std::move(pg);
    if (ExternalKafka::Configured()) {
      ASSIGN_OR_RETURN(auto kafka, ExternalKafka::FromEnv());
      namespace_ = UniqueTestPrefix();
      auto ns = std::make_unique<NamespacedKafka>(
          std::move(kafka), [this](absl::string_view name) { return Topic(name); });
      external_ = &ns->external();
      kafka_ = std::move(ns);
    } else {
      ASSIGN_OR_RETURN(auto kafka, KafkaMockProcess::Start(brokers));
      kafka_ = std::move(kafka);
    }
    if (!init) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto result, RunOutboxd({"init", "--postgres=" + pg_->ConnInfo()}));
    if (result.first != 0) return absl::InternalError("outboxd init failed: " + result.second);
    return absl::OkStatus();
  }

  PgServer& pg() { return *pg_; }
  KafkaControl& kafka() { return *kafka_; }
  // The ExternalKafka (node control, topic configs); null on kafka-mock.
  ExternalKafka* external() { return external_; }

  // The topic a test names as `name`: on a shared real Kafka, "outbox.*" and "outboxd.*" (the
  // relay's default names) get this test's prefix; every other name, and every name on
  // kafka-mock, is itself.
  std::string Topic(absl::string_view name) const {
    if (namespace_.empty() ||
        !(absl::StartsWith(name, "outbox.") || absl::StartsWith(name, "outboxd."))) {
      return std::string(name);
    }
    return absl::StrCat(namespace_, name);
  }
  // True when running against OUTBOXD_TEST_KAFKA_BROKERS instead of kafka-mock.
  static bool ExternalKafkaMode() { return ExternalKafka::Configured(); }
  std::string Brokers() const { return kafka_->bootstrap(); }

  // Runs outboxd to completion: (exit code, stderr).
  absl::StatusOr<std::pair<int, std::string>> RunOutboxd(
      std::vector<std::string> args, std::vector<std::pair<std::string, std::string>> env = {},
      absl::Duration timeout = absl::Seconds(30)) {
    args.insert(args.begin(), BinaryPath("outboxd"));
    AddTestListenFlags(args, env);  // `run`: never the default admin/metrics ports
    ASSIGN_OR_RETURN(auto p, Subprocess::Start(std::move(args), std::move(env)));
    ASSIGN_OR_RETURN(auto code, p->Wait(timeout));
    return std::make_pair(code, p->Stderr() + p->Stdout());
  }

  // `outboxd run` in the background, pointed at this environment. The admin API and metrics
  // listen on free ports (127.0.0.1:0) unless `extra` says otherwise; the relay logs the
  // addresses it bound ("admin API listening on ...", "metrics listening on http://...").
  absl::StatusOr<std::unique_ptr<Subprocess>> StartRelay(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {BinaryPath("outboxd"), "run", "--postgres=" + pg_->ConnInfo(),
                                     "--brokers=" + Brokers(), "--linger_ms=1"};
    if (!namespace_.empty()) {
      args.push_back("--topic_prefix=" + Topic("outbox.event."));
      args.push_back("--dead_letter_topic=" + Topic("outbox.dead-letter"));
      args.push_back("--checkpoint_topic=" + Topic("outboxd.checkpoints"));
      // No transactional.id of the test's own: outboxd's default,
      // outboxd-<system identifier>-<database>-<slot>, differs between tests (each has its own
      // initdb), so relays of tests running at once on one Kafka do not fence each other, and
      // the zombie-fencing test fences with the default id.
    }
    args.insert(args.end(), extra.begin(), extra.end());
    AddTestListenFlags(args);
    return Subprocess::Start(std::move(args));
  }

  absl::Status Sql(absl::string_view sql) { return pg_->Exec(sql); }

  // Inserts one outbox row in its own transaction.
  absl::Status InsertEvent(absl::string_view aggregate_type, absl::string_view aggregate_id,
                           absl::string_view event_type, absl::string_view payload_json) {
    return Sql(absl::StrCat(
        "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) VALUES (",
        Literal(aggregate_type), ", ", Literal(aggregate_id), ", ", Literal(event_type), ", ",
        Literal(payload_json), ")"));
  }

  // Until `relay` has logged "streaming slot" `times` times (each time it held the slot).
  static bool WaitStreaming(Subprocess& relay, int times = 1,
                            absl::Duration deadline = absl::Seconds(30)) {
    return WaitFor([&] { return CountOf(relay.Stderr(), "streaming slot") >= times; }, deadline,
                   absl::Milliseconds(20));
  }

  // Reads up to `expected` records and decodes each value as an OutboxEvent.
  std::vector<Event> ReadEvents(absl::string_view topic, size_t expected,
                                absl::Duration deadline = absl::Seconds(30)) {
    std::vector<Event> out;
    auto records = ReadTopic(Brokers(), Topic(topic), expected, deadline);
    EXPECT_TRUE(records.ok()) << records.status();
    if (!records.ok()) return out;
    for (KafkaRecord& r : *records) {
      Event e;
      EXPECT_TRUE(e.event.ParseFromString(r.value)) << "value of " << r.topic << "@" << r.offset;
      e.record = std::move(r);
      out.push_back(std::move(e));
    }
    return out;
  }

  Lsn ConfirmedLsn(absl::string_view slot = "outboxd") {
    auto v = pg_->QueryValue(absl::StrCat(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = ", Literal(slot)));
    if (!v.ok()) return Lsn();
    return Lsn::Parse(*v).value_or(Lsn());
  }

  Lsn CurrentWalLsn() {
    auto v = pg_->QueryValue("SELECT pg_current_wal_lsn()");
    return v.ok() ? Lsn::Parse(*v).value_or(Lsn()) : Lsn();
  }

  // Everything committed so far, once the slot has confirmed past it, is
  // acknowledged by Kafka: then a short read shows all of it and any extra.
  std::vector<Event> ReadAllCommitted(absl::string_view topic, size_t at_most) {
    EXPECT_TRUE(WaitConfirmed(CurrentWalLsn())) << "the slot did not catch up";
    return ReadEvents(topic, at_most, absl::Seconds(3));
  }

  // Waits until the slot's confirmed position reaches lsn.
  bool WaitConfirmed(Lsn lsn, absl::Duration deadline = absl::Seconds(20)) {
    return WaitFor([&] { return ConfirmedLsn() >= lsn; }, deadline, absl::Milliseconds(50));
  }

  static std::string Literal(absl::string_view s) {
    std::string out = "'";
    for (char c : s) {
      if (c == '\'') out += '\'';
      out += c;
    }
    return out + "'";
  }

 private:
  // "t<unix ms>-<pid>.<suite>.<test>." with only the characters Kafka allows in topic names.
  static std::string UniqueTestPrefix() {
    std::string name = "env";
    if (const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
      name = absl::StrCat(info->test_suite_name(), ".", info->name());
    }
    for (char& c : name) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '-';
    }
    return absl::StrCat("t", absl::ToUnixMillis(absl::Now()), "-", getpid(), ".", name, ".");
  }

  std::unique_ptr<PgServer> pg_;
  std::unique_ptr<KafkaControl> kafka_;
  ExternalKafka* external_ = nullptr;  // inside kafka_, when external
  std::string namespace_;              // "" on kafka-mock
};

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_INTEGRATION_RELAY_ENV_H_
