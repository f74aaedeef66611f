#include "tests/support/external_kafka.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "outboxd/status_macros.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/subprocess.h"
#include "tests/support/wait.h"

namespace outboxd::test {
namespace {

// `docker compose pause` may take a while on a loaded machine.
constexpr absl::Duration kCommandTimeout = absl::Seconds(60);
constexpr absl::Duration kAdminTimeout = absl::Seconds(30);

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// Runs `sh -c command`; its stdout on success.
absl::StatusOr<std::string> RunShellOutput(absl::string_view what, const std::string& command,
                                           std::vector<std::pair<std::string, std::string>> env = {}) {
  ASSIGN_OR_RETURN(auto p, Subprocess::Start({"/bin/sh", "-c", command}, std::move(env)));
  auto code = p->Wait(kCommandTimeout);
  if (!code.ok()) {
    return absl::DeadlineExceededError(
        absl::StrCat(what, " `", command, "`: ", code.status().message()));
  }
  if (*code != 0) {
    return absl::InternalError(absl::StrCat(what, " `", command, "` exited ", *code, ": ",
                                            p->Stderr(), p->Stdout()));
  }
  return std::string(absl::StripAsciiWhitespace(p->Stdout()));
}

absl::Status RunShell(absl::string_view what, const std::string& command,
                      std::vector<std::pair<std::string, std::string>> env = {}) {
  return RunShellOutput(what, command, std::move(env)).status();
}

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct NewTopicDeleter {
  void operator()(rd_kafka_NewTopic_t* t) const { rd_kafka_NewTopic_destroy(t); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* md) const { rd_kafka_metadata_destroy(md); }
};

// CreateTopics through a short-lived admin client (a producer handle).
absl::Status AdminCreateTopic(const std::string& brokers, const std::string& name, int partitions,
                              const std::vector<std::pair<std::string, std::string>>& configs = {}) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr)) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(errstr);
  }
  rd_kafka_t* raw = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (raw == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(absl::StrCat("rd_kafka_new: ", errstr));
  }
  std::unique_ptr<rd_kafka_t, HandleDeleter> rk(raw);

  // Replication factor min(brokers, 3): 1 on a single-node Kafka.
  int brokers_seen = 0;
  const absl::Time end = absl::Now() + kAdminTimeout;
  while (brokers_seen == 0) {
    const rd_kafka_metadata_t* md_raw = nullptr;
    if (rd_kafka_metadata(rk.get(), 0, nullptr, &md_raw, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter> md(md_raw);
      brokers_seen = md->broker_cnt;
    }
    if (brokers_seen == 0 && absl::Now() >= end) {
      return absl::UnavailableError(absl::StrCat("no broker of ", brokers, " answered"));
    }
  }
  std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter> topic(rd_kafka_NewTopic_new(
      name.c_str(), partitions, std::min(brokers_seen, 3), errstr, sizeof(errstr)));
  if (topic == nullptr) return absl::InvalidArgumentError(absl::StrCat("topic ", name, ": ", errstr));
  for (const auto& [key, value] : configs) {
    if (rd_kafka_NewTopic_set_config(topic.get(), key.c_str(), value.c_str()) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::InvalidArgumentError(absl::StrCat("topic ", name, ": config ", key, "=", value));
    }
  }
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk.get()));
  rd_kafka_NewTopic_t* topics[] = {topic.get()};
  rd_kafka_CreateTopics(rk.get(), topics, 1, nullptr, queue.get());
  std::unique_ptr<rd_kafka_event_t, EventDeleter> event(
      rd_kafka_queue_poll(queue.get(), static_cast<int>(absl::ToInt64Milliseconds(kAdminTimeout))));
  if (event == nullptr) return absl::DeadlineExceededError(absl::StrCat("CreateTopics ", name));
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(
        absl::StrCat("CreateTopics ", name, ": ", rd_kafka_event_error_string(event.get())));
  }
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event.get());
  size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
  for (size_t i = 0; i < count; ++i) {
    const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      const char* message = rd_kafka_topic_result_error_string(results[i]);
      return absl::InternalError(absl::StrCat("CreateTopics ", name, ": ", rd_kafka_err2str(err),
                                              message != nullptr ? absl::StrCat(" (", message, ")")
                                                                 : ""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool ExternalKafka::Configured() {
  return !Env(kBrokersEnv).empty() || !Env(kClusterEnv).empty();
}

absl::StatusOr<std::unique_ptr<ExternalKafka>> ExternalKafka::FromEnv() {
  std::string brokers = Env(kBrokersEnv);
  const std::string dir = Env(kClusterEnv);
  if (brokers.empty() && !dir.empty()) {
    std::ifstream in(dir + "/bootstrap");
    std::getline(in, brokers);
    if (brokers.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          kClusterEnv, "=", dir, " has no bootstrap file: start the cluster first "
                                 "(tests/kafka/kafka-cluster.sh start ", dir, ")"));
    }
  }
  if (brokers.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("neither ", kBrokersEnv, " nor ", kClusterEnv, " is set"));
  }
  return std::make_unique<ExternalKafka>(std::move(brokers), Env("OUTBOXD_TEST_KAFKA_DOWN_CMD"),
                                         Env("OUTBOXD_TEST_KAFKA_UP_CMD"),
                                         Env("OUTBOXD_TEST_KAFKA_CREATE_TOPIC_CMD"), dir);
}

absl::StatusOr<std::string> ExternalKafka::Node(absl::string_view verb_and_args) {
  if (cluster_dir_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("controlling single nodes needs ", kClusterEnv, " (a kafka-cluster.sh directory)"));
  }
  return RunShellOutput("kafka-cluster.sh", absl::StrCat(cluster_dir_, "/ctl ", verb_and_args));
}

absl::Status ExternalKafka::CreateTopic(absl::string_view name, int partitions) {
  return CreateTopicWithConfig(name, partitions, {});
}

absl::Status ExternalKafka::CreateTopicWithConfig(
    absl::string_view name, int partitions,
    std::vector<std::pair<std::string, std::string>> configs) {
  const std::string topic(name);
  absl::Status created =
      create_topic_cmd_.empty()
          ? AdminCreateTopic(bootstrap_, topic, partitions, configs)
          : RunShell("create topic", create_topic_cmd_,
                     {{"OUTBOXD_TEST_TOPIC", topic},
                      {"OUTBOXD_TEST_PARTITIONS", absl::StrCat(partitions)}});
  if (!created.ok()) return created;
  // CreateTopics answers from the controller; wait until the brokers' metadata has it too.
  const bool visible = WaitFor(
      [&] {
        auto names = ListTopics(bootstrap_, absl::Seconds(5));
        return names.ok() && std::find(names->begin(), names->end(), topic) != names->end();
      },
      kAdminTimeout, absl::Milliseconds(100));
  if (!visible) {
    return absl::DeadlineExceededError(absl::StrCat("topic ", topic, " created but not in metadata"));
  }
  return absl::OkStatus();
}

absl::Status ExternalKafka::AllDown() {
  if (down_cmd_.empty()) {
    return absl::FailedPreconditionError(
        "set OUTBOXD_TEST_KAFKA_DOWN_CMD (e.g. `docker compose pause kafka`) to take the external "
        "Kafka down");
  }
  return RunShell("OUTBOXD_TEST_KAFKA_DOWN_CMD", down_cmd_);
}

absl::Status ExternalKafka::AllUp() {
  if (up_cmd_.empty()) {
    return absl::FailedPreconditionError(
        "set OUTBOXD_TEST_KAFKA_UP_CMD (e.g. `docker compose unpause kafka`) to bring the external "
        "Kafka back");
  }
  return RunShell("OUTBOXD_TEST_KAFKA_UP_CMD", up_cmd_);
}

absl::Status ExternalKafka::Command(absl::string_view line) {
  return absl::UnimplementedError(
      absl::StrCat("\"", line, "\" is a kafka-mock control command; an external Kafka has none"));
}

}  // namespace outboxd::test
