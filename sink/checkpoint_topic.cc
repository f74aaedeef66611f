#include "sink/checkpoint_topic.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "outboxd/log.h"
#include "outboxd/status_macros.h"
#include "sink/rdkafka_util.h"

namespace outboxd::sink {
namespace {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct ConsumerDeleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
struct OptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* o) const { rd_kafka_AdminOptions_destroy(o); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* m) const { rd_kafka_metadata_destroy(m); }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;

// The longest one blocking librdkafka call of a read waits.
constexpr absl::Duration kSlice = absl::Milliseconds(100);

int Ms(absl::Duration d) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 1, 600000));
}

// What a short-lived client's error callback saw: refused credentials end
// the call at once (librdkafka would retry them until the call's deadline).
struct ClientErrors {
  std::string refused;  // librdkafka's reason for _AUTHENTICATION; empty: none
  bool scram = false;
  absl::Status Check() const { return refused.empty() ? absl::OkStatus() : CredentialsRefused(refused, scram); }
};

void OnClientError(rd_kafka_t*, int err, const char* reason, void* opaque) {
  auto* errors = static_cast<ClientErrors*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION && errors->refused.empty()) errors->refused = reason;
}

// A client with the user's properties (security settings apply here too;
// ones that do not fit this kind of client are skipped). Its error callback
// (served by rd_kafka_poll, or rd_kafka_consumer_poll once the consumer
// queue is redirected) records into *errors, which must outlive it.
absl::StatusOr<rd_kafka_t*> NewClient(rd_kafka_type_t type, const SinkConfig& config,
                                      const std::vector<std::pair<std::string, std::string>>& own,
                                      ClientErrors* errors) {
  ConfPtr conf(rd_kafka_conf_new());
  std::array<char, 512> errstr{};
  for (const auto& [name, value] : own) {
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), errstr.data(), errstr.size()) !=
        RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("Kafka property ", name, ": ", errstr.data()));
    }
  }
  for (const auto& [name, value] : config.kafka_properties) {
    rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), errstr.data(), errstr.size());
  }
  rd_kafka_conf_set_log_cb(conf.get(), &LogToOutboxd);
  errors->scram = UsesScram(conf.get());
  rd_kafka_conf_set_opaque(conf.get(), errors);
  rd_kafka_conf_set_error_cb(conf.get(), &OnClientError);
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), errstr.data(), errstr.size());
  if (rk == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot create a Kafka client: ", errstr.data()));
  }
  conf.release();
  return rk;
}

// Between two slices of a wait: refused credentials end it, and so does the
// caller (keep_waiting false: Cancelled).
absl::Status BetweenSlices(rd_kafka_t* rk, bool consumer, const ClientErrors& errors,
                           const std::function<bool()>& keep_waiting) {
  if (consumer) {
    std::unique_ptr<rd_kafka_message_t, MessageDeleter> m(rd_kafka_consumer_poll(rk, 0));
  } else {
    rd_kafka_poll(rk, 0);
  }
  RETURN_IF_ERROR(errors.Check());
  if (keep_waiting && !keep_waiting()) return absl::CancelledError("stopped while reading Kafka");
  return absl::OkStatus();
}

// Metadata of every topic, not of `topic` by name: naming it would make a
// broker with auto.create.topics.enable create it, with the wrong settings.
// Asked in slices of kSlice, so refused credentials and the caller are heard.
absl::StatusOr<MetadataPtr> AllTopics(rd_kafka_t* rk, bool consumer, absl::Duration timeout,
                                      const ClientErrors& errors,
                                      const std::function<bool()>& keep_waiting) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const rd_kafka_metadata_t* metadata = nullptr;
    const rd_kafka_resp_err_t e = rd_kafka_metadata(
        rk, 1, nullptr, &metadata, Ms(std::min(kSlice, deadline - absl::Now())));
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return MetadataPtr(metadata);
    RETURN_IF_ERROR(BetweenSlices(rk, consumer, errors, keep_waiting));
    if (e != RD_KAFKA_RESP_ERR__TIMED_OUT || absl::Now() >= deadline) {
      return absl::UnavailableError(absl::StrCat("cannot read Kafka metadata: ", rd_kafka_err2str(e)));
    }
  }
}

const rd_kafka_metadata_topic_t* FindTopic(const rd_kafka_metadata_t& metadata,
                                           absl::string_view topic) {
  for (int t = 0; t < metadata.topic_cnt; ++t) {
    if (topic == metadata.topics[t].topic && metadata.topics[t].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      return &metadata.topics[t];
    }
  }
  return nullptr;
}

// Waits for the one result event of an admin call on `queue`.
std::unique_ptr<rd_kafka_event_t, EventDeleter> AwaitResult(rd_kafka_queue_t* queue,
                                                            absl::Duration timeout) {
  return std::unique_ptr<rd_kafka_event_t, EventDeleter>(rd_kafka_queue_poll(queue, Ms(timeout)));
}

std::string CompactFix(absl::string_view topic) {
  return absl::StrCat("kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics "
                      "--entity-name ", topic, " --add-config cleanup.policy=compact");
}

// To `broker` (-1: the controller). Kafka forwards CreateTopics to its
// controller from any broker since 2.8 (KIP-590); kafka-mock names no
// controller at all, so a request waiting for one would only time out.
absl::Status CreateTopic(rd_kafka_t* rk, absl::string_view topic, int replication_factor,
                         int32_t broker, absl::Duration timeout) {
  std::array<char, 512> errstr{};
  const std::string name(topic);
  rd_kafka_NewTopic_t* new_topic =
      rd_kafka_NewTopic_new(name.c_str(), 1, replication_factor, errstr.data(), errstr.size());
  if (new_topic == nullptr) return absl::InternalError(errstr.data());
  rd_kafka_NewTopic_set_config(new_topic, "cleanup.policy", "compact");
  std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  rd_kafka_AdminOptions_set_operation_timeout(options.get(), Ms(timeout), errstr.data(),
                                              errstr.size());
  rd_kafka_AdminOptions_set_request_timeout(options.get(), Ms(timeout), errstr.data(),
                                            errstr.size());
  if (broker >= 0) rd_kafka_AdminOptions_set_broker(options.get(), broker, errstr.data(), errstr.size());
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk));
  rd_kafka_CreateTopics(rk, &new_topic, 1, options.get(), queue.get());
  rd_kafka_NewTopic_destroy(new_topic);
  auto event = AwaitResult(queue.get(), timeout + absl::Seconds(1));
  if (event == nullptr) {
    return absl::UnavailableError(absl::StrCat("creating Kafka topic ", topic, " timed out"));
  }
  rd_kafka_resp_err_t err = rd_kafka_event_error(event.get());
  std::string message = err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_event_error_string(event.get()) : "";
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    size_t count = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(
        rd_kafka_event_CreateTopics_result(event.get()), &count);
    if (count == 1) {
      err = rd_kafka_topic_result_error(results[0]);
      const char* text = rd_kafka_topic_result_error_string(results[0]);
      message = text != nullptr ? text : rd_kafka_err2str(err);
    }
  }
  if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) return absl::OkStatus();  // a race: fine
  if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) {
    // kafka-mock (librdkafka's mock cluster) has no CreateTopics; a real
    // Kafka since 0.10.2 has.
    LogWarning(absl::StrCat("the broker cannot create topics (", message, "); the checkpoint "
                            "topic ", topic, " will be auto-created with the broker's defaults. "
                            "Create it compacted yourself: kafka-topics.sh --bootstrap-server "
                            "<broker> --create --topic ", topic,
                            " --partitions 1 --config cleanup.policy=compact"));
    return absl::OkStatus();
  }
  if (err == RD_KAFKA_RESP_ERR_NOT_CONTROLLER && broker >= 0) {
    return CreateTopic(rk, topic, replication_factor, /*broker=*/-1, timeout);  // Kafka < 2.8
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create the checkpoint topic ", topic, ": ", rd_kafka_err2name(err), ": ", message,
        ". Fix: grant outboxd CreateTopics, or create it yourself: kafka-topics.sh "
        "--bootstrap-server <broker> --create --topic ", topic,
        " --partitions 1 --config cleanup.policy=compact"));
  }
  LogInfo(absl::StrCat("created the checkpoint topic ", topic, " (cleanup.policy=compact, 1 "
                       "partition, replication factor ", replication_factor, ")"));
  return absl::OkStatus();
}

// To `broker`: any broker describes a topic's configuration.
absl::Status CheckCompacted(rd_kafka_t* rk, absl::string_view topic, int32_t broker,
                            absl::Duration timeout) {
  const std::string name(topic);
  std::array<char, 512> errstr{};
  rd_kafka_ConfigResource_t* resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name.c_str());
  std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS));
  rd_kafka_AdminOptions_set_request_timeout(options.get(), Ms(timeout), errstr.data(),
                                            errstr.size());
  rd_kafka_AdminOptions_set_broker(options.get(), broker, errstr.data(), errstr.size());
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk));
  rd_kafka_DescribeConfigs(rk, &resource, 1, options.get(), queue.get());
  rd_kafka_ConfigResource_destroy(resource);
  auto event = AwaitResult(queue.get(), timeout + absl::Seconds(1));
  // A broker that cannot describe configurations (kafka-mock) is not a
  // reason to refuse to run: say what could not be checked.
  auto cannot_check = [&](absl::string_view why) {
    LogWarning(absl::StrCat("cannot check that the checkpoint topic ", topic,
                            " is compacted (", why, "); make sure it has cleanup.policy=compact, "
                            "else start-up gets slower as it grows: ", CompactFix(topic)));
    return absl::OkStatus();
  };
  if (event == nullptr) return cannot_check("DescribeConfigs timed out");
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return cannot_check(rd_kafka_event_error_string(event.get()));
  }
  size_t count = 0;
  const rd_kafka_ConfigResource_t** resources = rd_kafka_DescribeConfigs_result_resources(
      rd_kafka_event_DescribeConfigs_result(event.get()), &count);
  if (count != 1) return cannot_check("no result");
  if (rd_kafka_ConfigResource_error(resources[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return cannot_check(rd_kafka_ConfigResource_error_string(resources[0]));
  }
  size_t entries = 0;
  const rd_kafka_ConfigEntry_t** configs = rd_kafka_ConfigResource_configs(resources[0], &entries);
  for (size_t i = 0; i < entries; ++i) {
    if (absl::string_view(rd_kafka_ConfigEntry_name(configs[i])) != "cleanup.policy") continue;
    const char* value = rd_kafka_ConfigEntry_value(configs[i]);
    const std::string policy = value != nullptr ? value : "";
    if (absl::StrContains(policy, "compact")) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "the checkpoint topic ", topic, " has cleanup.policy=", policy,
        "; exactly-once needs it compacted (one record per slot is all it must keep, and "
        "start-up reads from its end). Fix: ", CompactFix(topic)));
  }
  return cannot_check("the broker did not report cleanup.policy");
}

}  // namespace

absl::Status EnsureCheckpointTopic(const SinkConfig& config, absl::string_view topic,
                                   absl::Duration timeout, const std::function<bool()>& keep_waiting) {
  ClientErrors errors;
  auto client = NewClient(RD_KAFKA_PRODUCER, config, {{"bootstrap.servers", config.brokers}}, &errors);
  if (!client.ok()) return client.status();
  std::unique_ptr<rd_kafka_t, HandleDeleter> rk(*client);
  auto metadata = AllTopics(rk.get(), /*consumer=*/false, timeout, errors, keep_waiting);
  if (!metadata.ok()) return metadata.status();
  if ((*metadata)->broker_cnt < 1) return absl::UnavailableError("Kafka listed no brokers");
  const int32_t broker = (*metadata)->brokers[0].id;
  if (FindTopic(**metadata, topic) == nullptr) {
    return CreateTopic(rk.get(), topic, std::min(3, (*metadata)->broker_cnt), broker, timeout);
  }
  return CheckCompacted(rk.get(), topic, broker, timeout);
}

absl::StatusOr<std::optional<std::string>> ReadLastCommittedRecord(const SinkConfig& config,
                                                                   absl::string_view topic,
                                                                   absl::string_view key,
                                                                   absl::Duration timeout,
                                                                   const std::function<bool()>& keep_waiting) {
  const absl::Time deadline = absl::Now() + timeout;
  ClientErrors errors;
  auto client = NewClient(RD_KAFKA_CONSUMER, config,
                          {{"bootstrap.servers", config.brokers},
                           // assign() needs a group id; nothing joins or commits with it.
                           {"group.id", "outboxd-checkpoint-reader"},
                           {"isolation.level", "read_committed"},
                           {"enable.auto.commit", "false"},
                           {"enable.partition.eof", "true"},
                           {"auto.offset.reset", "earliest"},
                           // The end of a window is found by an empty fetch; a
                           // broker holds one for up to this long.
                           {"fetch.wait.max.ms", "10"}},
                          &errors);
  if (!client.ok()) return client.status();
  std::unique_ptr<rd_kafka_t, ConsumerDeleter> consumer(*client);
  rd_kafka_t* rk = consumer.get();
  rd_kafka_poll_set_consumer(rk);
  auto metadata = AllTopics(rk, /*consumer=*/true, std::min(timeout, absl::Seconds(10)), errors, keep_waiting);
  if (!metadata.ok()) {
    if (!absl::IsUnavailable(metadata.status())) return metadata.status();
    return absl::UnavailableError(absl::StrCat("reading the checkpoint: ", metadata.status().message()));
  }
  const rd_kafka_metadata_topic_t* found = FindTopic(**metadata, topic);
  if (found == nullptr) return std::optional<std::string>();
  const std::string name(topic);
  std::vector<int32_t> partitions;
  for (int p = 0; p < found->partition_cnt; ++p) partitions.push_back(found->partitions[p].id);
  metadata->reset();

  // Per partition, windows of growing size back from the end, until one holds
  // a record of the slot; with one slot per topic the first (the last
  // transactions' records and their markers) does.
  // A slot's records all land in one partition (the key picks it), unless the
  // partition count changed; then any partition's last record will do.
  std::optional<std::string> last;
  const absl::Time started = absl::Now();
  int64_t records_read = 0, records_held = 0;
  for (int32_t partition : partitions) {
    int64_t low = 0, high = 0;
    while (true) {
      const rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
          rk, name.c_str(), partition, &low, &high, Ms(std::min(kSlice, deadline - absl::Now())));
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      RETURN_IF_ERROR(BetweenSlices(rk, /*consumer=*/true, errors, keep_waiting));
      if (e != RD_KAFKA_RESP_ERR__TIMED_OUT || absl::Now() >= deadline) {
        return absl::UnavailableError(absl::StrCat("cannot read the offsets of ", topic, ": ",
                                                   rd_kafka_err2str(e)));
      }
    }
    records_held += high - low;
    int64_t end = high;
    int64_t window = 256;
    bool have = false;
    while (!have && end > low) {
      const int64_t start = std::max(low, end - window);
      std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter> assignment(
          rd_kafka_topic_partition_list_new(1));
      rd_kafka_topic_partition_list_add(assignment.get(), name.c_str(), partition)->offset = start;
      if (rd_kafka_resp_err_t e = rd_kafka_assign(rk, assignment.get());
          e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return absl::UnavailableError(absl::StrCat("cannot read ", topic, ": ", rd_kafka_err2str(e)));
      }
      while (true) {
        if (absl::Now() > deadline) {
          return absl::DeadlineExceededError(absl::StrCat(
              "reading the checkpoint from ", topic, " took over ", absl::FormatDuration(timeout),
              "; is a transaction of another producer still open on it?"));
        }
        RETURN_IF_ERROR(errors.Check());
        if (keep_waiting && !keep_waiting()) return absl::CancelledError("stopped while reading Kafka");
        std::unique_ptr<rd_kafka_message_t, MessageDeleter> m(
            rd_kafka_consumer_poll(rk, static_cast<int>(absl::ToInt64Milliseconds(kSlice))));
        if (m == nullptr) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) break;
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
        if (m->offset >= end) break;  // past this window: the later ones were read before
        ++records_read;
        // In offset order: the last one read is the partition's last.
        if (absl::string_view(static_cast<const char*>(m->key), m->key_len) == key) {
          have = true;
          last.emplace(static_cast<const char*>(m->payload), m->len);
        }
      }
      end = start;
      window *= 4;
    }
  }
  // What start-up cost, so a reader can see it does not grow with history.
  LogInfo(absl::StrCat("checkpoint read: ", records_read, " of ", records_held, " records in ",
                       topic, " (", partitions.size(), " partition", partitions.size() == 1 ? "" : "s",
                       ", from the end back) in ",
                       absl::FormatDuration(absl::Trunc(absl::Now() - started, absl::Milliseconds(1)))));
  return last;
}

}  // namespace outboxd::sink
