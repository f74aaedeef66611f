#include "sink/rdkafka_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "outboxd/event_sink.h"
#include "outboxd/log.h"

namespace outboxd::sink {

absl::Status ApplyProducerProperties(rd_kafka_conf_t* conf, const SinkConfig& config,
                                     const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::pair<std::string, std::string>> properties = {
      {"bootstrap.servers", config.brokers},
      // Retries inside librdkafka never reorder or duplicate a partition.
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", absl::StrCat(config.linger_ms)},
      // The Java client's partitioner, so a key lands on the partition that
      // Java and Debezium producers would pick for it.
      {"partitioner", "murmur2_random"},
      // Bounded memory: a huge transaction waits in the WAL, not in RAM. The
      // count matters as much as the bytes: librdkafka keeps a few hundred
      // bytes of its own per queued record.
      {"queue.buffering.max.messages", "20000"},
      {"queue.buffering.max.kbytes", "16384"},
      // A broker's default limit, so a ~1 MB payload fits.
      {"message.max.bytes", "1048588"},
      {"client.id", "outboxd"},
      // Never give up on a record: an outage is ridden out by backpressure.
      // A finite timeout makes outboxd rewind, and a record that timed out
      // can then land after later records of its aggregate that did not.
      {"message.timeout.ms", "0"},
  };
  properties.insert(properties.end(), extra.begin(), extra.end());
  properties.insert(properties.end(), config.kafka_properties.begin(), config.kafka_properties.end());
  std::array<char, 512> errstr{};
  for (const auto& [name, value] : properties) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr.data(), errstr.size()) !=
        RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("Kafka property ", name, ": ", errstr.data()));
    }
  }
  return absl::OkStatus();
}

rd_kafka_topic_t* ProducerHandle::Topic(const std::string& topic) {
  auto it = topics_.find(topic);
  if (it != topics_.end()) return it->second;
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
  if (handle != nullptr) topics_.emplace(topic, handle);
  return handle;
}

void ProducerHandle::Reset() {
  for (const auto& [name, handle] : topics_) rd_kafka_topic_destroy(handle);
  topics_.clear();
  if (rk_ != nullptr) rd_kafka_destroy(rk_);
  rk_ = nullptr;
}

absl::StatusOr<WakeupPipe> WakeupPipe::Attach(rd_kafka_t* rk) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  WakeupPipe pipe;
  pipe.read_ = UniqueFd(fds[0]);
  pipe.write_ = UniqueFd(fds[1]);
  rd_kafka_queue_t* main_queue = rd_kafka_queue_get_main(rk);
  rd_kafka_queue_io_event_enable(main_queue, pipe.write_.get(), "1", 1);
  rd_kafka_queue_destroy(main_queue);
  return pipe;
}

void WakeupPipe::Drain() const {
  std::array<char, 256> buf;
  while (read(read_.get(), buf.data(), buf.size()) > 0) {
  }
}

bool IsPermanentRecordError(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    // The topic does not exist and the broker will not create it
    // (auto.create.topics.enable=false): librdkafka gives up after
    // topic.metadata.propagation.max.ms, or at once when it knows.
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
      return true;
    default:
      return false;
  }
}

void LogToOutboxd(const rd_kafka_t* rk, int level, const char* facility, const char* buf) {
  // syslog levels: 0..3 are emergencies to errors, 4 warnings; the rest is
  // librdkafka's chatter.
  if (level <= 3) {
    LogError(absl::StrCat("kafka: ", facility, ": ", buf));
  } else if (level == 4) {
    LogWarning(absl::StrCat("kafka: ", facility, ": ", buf));
  }
}

absl::Status CredentialsRefused(absl::string_view reason, bool scram) {
  return SinkError(
      SinkFailure::kFatal,
      absl::UnauthenticatedError(absl::StrCat(
          "Kafka refused the credentials: ", reason,
          ". Not retried: check --kafka_property=sasl.username=... and "
          "--kafka_property=sasl.password=... (and sasl.mechanisms, security.protocol) "
          "against the brokers' users",
          // librdkafka #4895: Kafka 4.x refuses older librdkafkas' SCRAM proofs.
          scram && rd_kafka_version() < 0x020601ff
              ? absl::StrCat(" (SCRAM with Kafka 4.x brokers needs librdkafka 2.6.1 or "
                             "later, this is ", rd_kafka_version_str(),
                             ": with it use sasl.mechanisms=PLAIN over SASL_SSL)")
              : "",
          ". Stopping; nothing past the last acknowledged event is confirmed")));
}

bool UsesScram(const rd_kafka_conf_t* conf) {
  std::array<char, 128> mechanisms{};
  size_t size = mechanisms.size();
  return rd_kafka_conf_get(conf, "sasl.mechanisms", mechanisms.data(), &size) == RD_KAFKA_CONF_OK &&
         absl::StartsWith(mechanisms.data(), "SCRAM");
}

}  // namespace outboxd::sink
