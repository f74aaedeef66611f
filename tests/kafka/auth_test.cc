// outboxd against a Kafka that authenticates and authorizes: a SASL_SSL listener and ACLs
// (kafka-cluster.sh start --sasl: a self-signed certificate made with openssl, users
// "outboxd"/"outboxd-secret" and "admin", StandardAuthorizer with no access for anyone without
// an ACL; the PLAINTEXT listener is the unrestricted ANONYMOUS super user, which the test uses to
// create topics and ACLs and to read back). Auto-creation is off there too.
//
// The mechanism is PLAIN (over TLS), not SCRAM-SHA-512: librdkafka before 2.6.1 builds the SCRAM
// client-final-message with the client nonce appended twice, which Kafka 4.x rejects as invalid
// credentials (librdkafka #4895; Debian 12 ships 2.0.2). The listener offers SCRAM-SHA-512 too,
// with the same users, for when the library is new enough: kMechanism is the one switch.
//
//   * the right password, given through --kafka_property: events arrive;
//   * a wrong password: a clear error naming the broker and the fix, nothing confirmed;
//   * a topic the user may not write: the poison rule (dead letter, or stop with
//     --on_poison=stop), never a silent retry loop;
//   * a topic that does not exist: what the README says for it.
// Runs from ctest label kafka against OUTBOXD_TEST_KAFKA_CLUSTER (tests/kafka/CMakeLists.txt).
#include <librdkafka/rdkafka.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

using ::testing::HasSubstr;

constexpr char kMechanism[] = "PLAIN";

// ALLOW `operations` on topics starting with `prefix` for User:outboxd, through the
// unrestricted PLAINTEXT listener.
absl::Status AllowTopicPrefix(const std::string& brokers, const std::string& prefix,
                              const std::vector<rd_kafka_AclOperation_t>& operations) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(errstr);
  }
  std::vector<rd_kafka_AclBinding_t*> acls;
  for (rd_kafka_AclOperation_t op : operations) {
    acls.push_back(rd_kafka_AclBinding_new(RD_KAFKA_RESOURCE_TOPIC, prefix.c_str(),
                                           RD_KAFKA_RESOURCE_PATTERN_PREFIXED, "User:outboxd", "*",
                                           op, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, errstr,
                                           sizeof(errstr)));
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateAcls(rk, acls.data(), acls.size(), nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30000);
  absl::Status status = absl::OkStatus();
  if (event == nullptr) {
    status = absl::DeadlineExceededError("CreateAcls");
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = absl::InternalError(absl::StrCat("CreateAcls: ", rd_kafka_event_error_string(event)));
  } else {
    size_t n = 0;
    const rd_kafka_acl_result_t** results =
        rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(event), &n);
    for (size_t i = 0; i < n; ++i) {
      if (const rd_kafka_error_t* e = rd_kafka_acl_result_error(results[i]); e != nullptr) {
        status = absl::InternalError(absl::StrCat("CreateAcls: ", rd_kafka_error_string(e)));
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  for (rd_kafka_AclBinding_t* acl : acls) rd_kafka_AclBinding_destroy(acl);
  rd_kafka_destroy(rk);
  return status;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RelayEnv::ExternalKafkaMode()) << "set OUTBOXD_TEST_KAFKA_CLUSTER (ctest -L kafka)";
    ASSERT_OK(env_.Start());
    const std::string dir = env_.external()->cluster_dir();
    std::ifstream in(dir + "/sasl-bootstrap");
    std::getline(in, sasl_brokers_);
    ASSERT_FALSE(sasl_brokers_.empty()) << dir << " was not started with --sasl";
    ca_ = dir + "/tls/ca.pem";
    // Every topic this test's relay writes to starts with its prefix (RelayEnv::Topic).
    prefix_ = env_.Topic("outbox.");
    ASSERT_OK(env_.kafka().CreateTopic("outbox.event.order", 1));
    ASSERT_OK(env_.kafka().CreateTopic("outbox.dead-letter", 1));
  }

  // The relay on the SASL_SSL listener as User:outboxd with `password`.
  std::unique_ptr<Subprocess> StartSaslRelay(const std::string& password,
                                             std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--brokers=" + sasl_brokers_,
        "--kafka_property=security.protocol=SASL_SSL",
        absl::StrCat("--kafka_property=sasl.mechanisms=", kMechanism),
        "--kafka_property=sasl.username=outboxd",
        "--kafka_property=sasl.password=" + password,
        "--kafka_property=ssl.ca.location=" + ca_,
        "--max_backoff=1s"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto relay = env_.StartRelay(std::move(args));
    EXPECT_TRUE(relay.ok()) << relay.status();
    return relay.ok() ? std::move(*relay) : nullptr;
  }

  RelayEnv env_;
  std::string sasl_brokers_, ca_, prefix_;
};

TEST_F(AuthTest, SaslOverTlsDelivers) {
  ASSERT_OK(AllowTopicPrefix(env_.Brokers(), prefix_,
                             {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE}));
  auto relay = StartSaslRelay("outboxd-secret");
  ASSERT_TRUE(relay && RelayEnv::WaitStreaming(*relay)) << (relay ? relay->Stderr() : "");
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Created", R"({"n": 1})"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 1);
  ASSERT_EQ(events.size(), 1u) << relay->Stderr();
  EXPECT_EQ(events[0].record.key, "o-1");
  EXPECT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << relay->Stderr();
  EXPECT_EQ(relay->Terminate(), 0) << relay->Stderr();
}

TEST_F(AuthTest, WrongPasswordIsAClearErrorAndConfirmsNothing) {
  ASSERT_OK(AllowTopicPrefix(env_.Brokers(), prefix_,
                             {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE}));
  const Lsn before = env_.ConfirmedLsn();
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Created", R"({"n": 1})"));
  const Lsn committed = env_.CurrentWalLsn();
  auto relay = StartSaslRelay("not-the-password");
  ASSERT_TRUE(relay);
  const std::string broker = sasl_brokers_.substr(0, sasl_brokers_.find(','));
  // The reason, naming the broker.
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string log = relay->Stderr();
        return absl::StrContains(log, "Authentication failed") && absl::StrContains(log, broker);
      },
      absl::Seconds(30)))
      << relay->Stderr();
  absl::SleepFor(absl::Seconds(2));  // time in which a wrong relay would confirm
  EXPECT_LT(env_.ConfirmedLsn(), committed) << relay->Stderr();
  EXPECT_GE(env_.ConfirmedLsn(), before);
  EXPECT_TRUE(env_.ReadEvents("outbox.event.order", 1, absl::Seconds(2)).empty());
  // Not asserted yet (issue 11, Kafka error classification): that the message also names the
  // fix (--kafka_property=sasl.username/sasl.password); today it is librdkafka's "SASL
  // authentication error: Authentication failed: Invalid username or password", the broker
  // named, and "all Kafka brokers are down ... retried".
  EXPECT_TRUE(relay->Running()) << "an authentication failure is retried, like an outage";
  EXPECT_EQ(relay->Terminate(), 0) << relay->Stderr();
}

// Not in ctest yet: a TOPIC_AUTHORIZATION_FAILED delivery report is not a poison record for
// outboxd today (sink/rdkafka_util.cc IsPermanentRecordError), so it rewinds several times a
// second forever instead of dead-lettering or stopping. Issue 11 (error classification).
TEST_F(AuthTest, TopicWithoutWriteAclIsDeadLettered) {
  // WRITE on the dead-letter topic and on outbox.event.order; not on outbox.event.secret.
  ASSERT_OK(AllowTopicPrefix(env_.Brokers(), env_.Topic("outbox.dead-letter"),
                             {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE}));
  ASSERT_OK(AllowTopicPrefix(env_.Brokers(), env_.Topic("outbox.event.order"),
                             {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE}));
  ASSERT_OK(env_.kafka().CreateTopic("outbox.event.secret", 1));
  auto relay = StartSaslRelay("outboxd-secret");
  ASSERT_TRUE(relay && RelayEnv::WaitStreaming(*relay)) << (relay ? relay->Stderr() : "");
  ASSERT_OK(env_.InsertEvent("secret", "s-1", "Created", R"({"n": 1})"));
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Created", R"({"n": 2})"));
  std::vector<Event> dead = env_.ReadEvents("outbox.dead-letter", 1, absl::Seconds(60));
  ASSERT_EQ(dead.size(), 1u) << relay->Stderr();
  EXPECT_EQ(dead[0].Header("outboxd.dead_letter.original_topic"), env_.Topic("outbox.event.secret"));
  EXPECT_THAT(dead[0].Header("outboxd.dead_letter.reason"), HasSubstr("uthoriz"));
  // The stream goes on past it.
  EXPECT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u) << relay->Stderr();
  EXPECT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << relay->Stderr();
  EXPECT_EQ(relay->Terminate(), 0) << relay->Stderr();
}

TEST_F(AuthTest, TopicWithoutWriteAclWithOnPoisonStopExits) {
  ASSERT_OK(AllowTopicPrefix(env_.Brokers(), env_.Topic("outbox.event.order"),
                             {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE}));
  ASSERT_OK(env_.kafka().CreateTopic("outbox.event.secret", 1));
  auto relay = StartSaslRelay("outboxd-secret", {"--on_poison=stop"});
  ASSERT_TRUE(relay && RelayEnv::WaitStreaming(*relay)) << (relay ? relay->Stderr() : "");
  ASSERT_OK(env_.InsertEvent("secret", "s-1", "Created", R"({"n": 1})"));
  const Lsn committed = env_.CurrentWalLsn();
  auto code = relay->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << "still running, no silent loop allowed:\n" << relay->Stderr();
  EXPECT_NE(*code, 0);
  EXPECT_LT(env_.ConfirmedLsn(), committed);
  EXPECT_THAT(relay->Stderr(), HasSubstr("uthoriz"));
}

// auto.create.topics.enable=false: an event for a topic that does not exist. Not in ctest yet:
// today outboxd holds the whole stream and rewinds every message.timeout.ms (forever with the
// default 0: it waits), logging "Kafka gave up on a record for topic <t>"; the README does not
// say which of that or the dead letter is meant. Issue 11 (error classification) decides.
TEST_F(AuthTest, MissingTopicWithAutoCreateOff) {
  auto relay = env_.StartRelay({"--max_backoff=1s", "--kafka_property=message.timeout.ms=10000"});
  ASSERT_TRUE(relay.ok() && RelayEnv::WaitStreaming(**relay)) << (relay.ok() ? (*relay)->Stderr() : "");
  ASSERT_OK(env_.InsertEvent("nosuch", "n-1", "Created", R"({"n": 1})"));
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Created", R"({"n": 2})"));
  std::vector<Event> dead = env_.ReadEvents("outbox.dead-letter", 1, absl::Seconds(60));
  const std::string log = (*relay)->Stderr();
  std::cout << "kafka: missing topic: dead letters=" << dead.size() << "\n" << log << std::endl;
  ASSERT_EQ(dead.size(), 1u) << log;
  EXPECT_EQ(dead[0].Header("outboxd.dead_letter.original_topic"), env_.Topic("outbox.event.nosuch"));
  EXPECT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u) << log;
  auto topics = ListTopics(env_.Brokers());
  ASSERT_TRUE(topics.ok()) << topics.status();
  EXPECT_THAT(*topics, ::testing::Not(::testing::Contains(env_.Topic("outbox.event.nosuch"))))
      << "auto-creation is off: nothing may create it";
  EXPECT_EQ((*relay)->Terminate(), 0) << log;
}

}  // namespace
}  // namespace outboxd::test
