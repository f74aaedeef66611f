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

// cleanup.policy of `topic` (DescribeConfigs through the unrestricted PLAINTEXT listener).
absl::StatusOr<std::string> CleanupPolicy(const std::string& brokers, const std::string& topic) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(errstr);
  }
  rd_kafka_ConfigResource_t* resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_DescribeConfigs(rk, &resource, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30000);
  absl::StatusOr<std::string> policy = absl::NotFoundError(absl::StrCat("no cleanup.policy for ", topic));
  if (event == nullptr) {
    policy = absl::DeadlineExceededError("DescribeConfigs");
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    policy = absl::InternalError(absl::StrCat("DescribeConfigs: ", rd_kafka_event_error_string(event)));
  } else {
    size_t n = 0;
    const rd_kafka_ConfigResource_t** resources =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event), &n);
    for (size_t i = 0; i < n; ++i) {
      if (rd_kafka_ConfigResource_error(resources[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        policy = absl::InternalError(absl::StrCat("DescribeConfigs ", topic, ": ",
                                                  rd_kafka_ConfigResource_error_string(resources[i])));
        continue;
      }
      size_t count = 0;
      const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(resources[i], &count);
      for (size_t j = 0; j < count; ++j) {
        if (std::string(rd_kafka_ConfigEntry_name(entries[j])) == "cleanup.policy") {
          const char* value = rd_kafka_ConfigEntry_value(entries[j]);
          policy = std::string(value == nullptr ? "" : value);
        }
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_ConfigResource_destroy(resource);
  rd_kafka_destroy(rk);
  return policy;
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

  // The relay with a wrong password and `extra` flags: exit 1 within a bound, the broker, the
  // reason and the fix in the log (never the password), nothing confirmed, nothing delivered.
  void ExpectWrongPasswordStops(std::vector<std::string> extra) {
    ASSERT_OK(AllowTopicPrefix(env_.Brokers(), prefix_,
                               {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE}));
    const Lsn before = env_.ConfirmedLsn();
    ASSERT_OK(env_.InsertEvent("order", "o-1", "Created", R"({"n": 1})"));
    auto relay = StartSaslRelay("not-the-password", std::move(extra));
    ASSERT_TRUE(relay);
    const absl::Time started = absl::Now();
    // librdkafka's own waits are 10 s (metadata) and 30 s (transactions): an
    // exit well inside 10 s shows the refusal, not a timeout, ended it.
    auto code = relay->Wait(absl::Seconds(8));
    const absl::Duration took = absl::Now() - started;
    ASSERT_TRUE(code.ok()) << "an authentication failure must end the relay, not be retried:\n"
                           << relay->Stderr();
    EXPECT_EQ(*code, 1) << relay->Stderr();
    const std::string log = relay->Stderr();
    const std::string broker = sasl_brokers_.substr(0, sasl_brokers_.find(','));
    EXPECT_THAT(log, HasSubstr("Kafka refused the credentials")) << log;
    EXPECT_THAT(log, HasSubstr(broker)) << log;
    EXPECT_THAT(log, HasSubstr("Authentication failed")) << log;  // librdkafka's reason
    EXPECT_THAT(log, HasSubstr("--kafka_property=sasl.username")) << log;
    EXPECT_THAT(log, HasSubstr("--kafka_property=sasl.password")) << log;
    EXPECT_THAT(log, ::testing::Not(HasSubstr("not-the-password"))) << "never log the password";
    std::cout << "kafka: wrong password: exit " << *code << " after " << took << std::endl;
    // Nothing confirmed to PostgreSQL, nothing delivered.
    EXPECT_EQ(env_.ConfirmedLsn(), before) << log;
    EXPECT_TRUE(env_.ReadEvents("outbox.event.order", 1, absl::Seconds(2)).empty());
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

// A wrong password is not an outage: Kafka will refuse it however often it is sent, so outboxd
// exits 1 at once with the broker and the fix, rather than retrying forever like an outage.
TEST_F(AuthTest, WrongPasswordIsAClearErrorAndConfirmsNothing) { ExpectWrongPasswordStops({}); }

// Exactly-once meets the refusal in its recovery (checkpoint topic, fencing,
// checkpoint read), before any record is sent: it must stop as fast, not wait
// out librdkafka's timeouts.
TEST_F(AuthTest, WrongPasswordStopsExactlyOnceToo) {
  ExpectWrongPasswordStops({"--delivery=exactly-once",
                            "--checkpoint_topic=" + env_.Topic("outboxd.checkpoints")});
}

// SCRAM-SHA-512 with the right password: a librdkafka before 2.6.1 (Debian 12's 2.0.2) sends a
// proof Kafka 4.x refuses (#4895). outboxd must stop at once and say that it is the library,
// not the password, and what to use instead; with a newer library it simply delivers.
TEST_F(AuthTest, ScramWithAnOldLibrdkafkaSaysWhyItIsRefused) {
  ASSERT_OK(AllowTopicPrefix(env_.Brokers(), prefix_,
                             {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE}));
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Created", R"({"n": 1})"));
  const Lsn before = env_.ConfirmedLsn();
  // A later --kafka_property wins over StartSaslRelay's mechanism.
  auto relay = StartSaslRelay("outboxd-secret", {"--kafka_property=sasl.mechanisms=SCRAM-SHA-512"});
  ASSERT_TRUE(relay);
  if (rd_kafka_version() >= 0x020601ff) {
    std::vector<Event> events = env_.ReadEvents("outbox.event.order", 1);
    ASSERT_EQ(events.size(), 1u) << relay->Stderr();
    EXPECT_EQ(relay->Terminate(), 0) << relay->Stderr();
    return;
  }
  auto code = relay->Wait(absl::Seconds(8));
  ASSERT_TRUE(code.ok()) << "a refused SCRAM proof must end the relay:\n" << relay->Stderr();
  EXPECT_EQ(*code, 1) << relay->Stderr();
  const std::string log = relay->Stderr();
  EXPECT_THAT(log, HasSubstr("Kafka refused the credentials")) << log;
  EXPECT_THAT(log, HasSubstr(absl::StrCat("SCRAM with Kafka 4.x brokers needs librdkafka 2.6.1 or later, this is ",
                                          rd_kafka_version_str())))
      << log;
  EXPECT_THAT(log, HasSubstr("sasl.mechanisms=PLAIN over SASL_SSL")) << log;
  EXPECT_THAT(log, ::testing::Not(HasSubstr("outboxd-secret"))) << "never log the password";
  EXPECT_EQ(env_.ConfirmedLsn(), before) << log;
}

// TOPIC_AUTHORIZATION_FAILED (no WRITE ACL) is refused for good: a poison record.
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

// No WRITE on the event's topic and none on the dead-letter topic either: nothing can park the
// event, so outboxd stops with the dead-letter topic named (never a rewind loop).
TEST_F(AuthTest, DeadLetterTopicWithoutWriteAclStops) {
  ASSERT_OK(AllowTopicPrefix(env_.Brokers(), env_.Topic("outbox.event.order"),
                             {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE}));
  ASSERT_OK(env_.kafka().CreateTopic("outbox.event.secret", 1));
  auto relay = StartSaslRelay("outboxd-secret");
  ASSERT_TRUE(relay && RelayEnv::WaitStreaming(*relay)) << (relay ? relay->Stderr() : "");
  const Lsn before = env_.ConfirmedLsn();
  ASSERT_OK(env_.InsertEvent("secret", "s-1", "Created", R"({"n": 1})"));
  auto code = relay->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << "still running, no silent loop allowed:\n" << relay->Stderr();
  EXPECT_EQ(*code, 1) << relay->Stderr();
  EXPECT_THAT(relay->Stderr(), HasSubstr("cannot write to the dead-letter topic " +
                                         env_.Topic("outbox.dead-letter")));
  EXPECT_EQ(env_.ConfirmedLsn(), before) << relay->Stderr();
}

// auto.create.topics.enable=false: an event for a topic that does not exist is refused for good
// (README "When things fail"): once librdkafka has known it missing for
// topic.metadata.propagation.max.ms (30 s by default; 3 s here, to keep the test short) it fails
// the record with UNKNOWN_TOPIC, and outboxd parks it in the dead-letter topic with the reason;
// the events behind it go on, and nothing creates the topic.
TEST_F(AuthTest, MissingTopicWithAutoCreateOff) {
  auto relay = env_.StartRelay({"--max_backoff=1s", "--kafka_property=topic.metadata.propagation.max.ms=3000"});
  ASSERT_TRUE(relay.ok() && RelayEnv::WaitStreaming(**relay)) << (relay.ok() ? (*relay)->Stderr() : "");
  ASSERT_OK(env_.InsertEvent("nosuch", "n-1", "Created", R"({"n": 1})"));
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Created", R"({"n": 2})"));
  std::vector<Event> dead = env_.ReadEvents("outbox.dead-letter", 1, absl::Seconds(60));
  const std::string log = (*relay)->Stderr();
  ASSERT_EQ(dead.size(), 1u) << log;
  EXPECT_EQ(dead[0].Header("outboxd.dead_letter.original_topic"), env_.Topic("outbox.event.nosuch"));
  EXPECT_THAT(dead[0].Header("outboxd.dead_letter.reason"), HasSubstr("UNKNOWN_TOPIC")) << log;
  EXPECT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u) << log;
  auto topics = ListTopics(env_.Brokers());
  ASSERT_TRUE(topics.ok()) << topics.status();
  EXPECT_THAT(*topics, ::testing::Not(::testing::Contains(env_.Topic("outbox.event.nosuch"))))
      << "auto-creation is off: nothing may create it";
  EXPECT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << log;
  EXPECT_EQ((*relay)->Terminate(), 0) << log;
}

// Exactly-once on a cluster without auto-creation: outboxd creates its checkpoint topic, and
// creates it compacted (only the last checkpoint per slot matters; a deleting policy would lose
// it after retention.ms).
TEST_F(AuthTest, CheckpointTopicIsCreatedCompacted) {
  const std::string checkpoints = env_.Topic("outboxd.checkpoints");
  auto relay = env_.StartRelay({"--delivery=exactly-once", "--max_backoff=1s"});
  ASSERT_TRUE(relay.ok() && RelayEnv::WaitStreaming(**relay)) << (relay.ok() ? (*relay)->Stderr() : "");
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Created", R"({"n": 1})"));
  ASSERT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u) << (*relay)->Stderr();
  ASSERT_TRUE(env_.WaitConfirmed(env_.CurrentWalLsn())) << (*relay)->Stderr();
  auto policy = CleanupPolicy(env_.Brokers(), checkpoints);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(*policy, "compact") << checkpoints;
  EXPECT_EQ((*relay)->Terminate(), 0) << (*relay)->Stderr();
}

}  // namespace
}  // namespace outboxd::test
