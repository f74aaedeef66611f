#include "tests/support/kafka_reader.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "outboxd/status_macros.h"

namespace outboxd::test {
namespace {

// Between metadata attempts while a topic or the brokers are not there yet.
constexpr absl::Duration kRetryBackoff = absl::Milliseconds(50);
// One metadata request or one poll never blocks longer than this, so the deadline holds.
constexpr absl::Duration kMaxBlock = absl::Milliseconds(500);

struct ConsumerDeleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* md) const { rd_kafka_metadata_destroy(md); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* message) const { rd_kafka_message_destroy(message); }
};
using Consumer = std::unique_ptr<rd_kafka_t, ConsumerDeleter>;
using Metadata = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using Message = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;

int BlockMs(absl::Time end) {
  return static_cast<int>(
      absl::ToInt64Milliseconds(std::clamp(end - absl::Now(), absl::Milliseconds(1), kMaxBlock)));
}

// `for_assign`: the consumer will rd_kafka_assign partitions, which needs a group.id.
absl::StatusOr<Consumer> NewConsumer(absl::string_view brokers, bool for_assign) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  std::vector<std::pair<const char*, std::string>> settings = {
      {"bootstrap.servers", std::string(brokers)},
      {"enable.partition.eof", "false"},
      {"auto.offset.reset", "earliest"},
      // librdkafka's default, stated: what an exactly-once consumer uses. On a real Kafka, records
      // of aborted and still-open transactions are never returned (kafka-mock does not filter).
      {"isolation.level", "read_committed"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // A topic created while we wait must show up quickly.
      {"topic.metadata.refresh.interval.ms", "200"},
      // Errors only: broker outages are part of the tests and retried here anyway.
      {"log_level", "3"},
  };
  if (for_assign) {
    // rd_kafka_assign needs a group handle, but this consumer never joins the group (no
    // subscribe) nor commits, so one fixed name shared by every reader is harmless.
    settings.emplace_back("group.id", "outboxd-test-reader");
  }
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("consumer config ", name, ": ", errstr));
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);  // rd_kafka_new takes conf only on success
    return absl::InternalError(absl::StrCat("rd_kafka_new: ", errstr));
  }
  Consumer consumer(rk);
  // Route everything to the consumer queue so rd_kafka_consumer_poll serves it.
  rd_kafka_poll_set_consumer(rk);
  return consumer;
}

// Errors that go away by waiting: the topic is not created yet, or brokers are down/electing.
bool IsTransient(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
      return true;
    default:
      return false;
  }
}

// The topic's partition count once the cluster knows the topic; 0 if `end` passed first.
//
// Asks for the metadata of all topics, never of this one: the mock cluster speaks a Metadata
// version too old to carry allow.auto.create.topics=false, so naming a missing topic would create
// it (with default partitions) and hide whether the code under test created it.
absl::StatusOr<int> WaitForPartitions(rd_kafka_t* rk, const std::string& topic, absl::Time end) {
  while (true) {
    const rd_kafka_metadata_t* raw = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, /*all_topics=*/1, nullptr, &raw, BlockMs(end));
    Metadata md(raw);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
      for (int i = 0; i < md->topic_cnt; ++i) {
        if (topic != md->topics[i].topic) continue;
        err = md->topics[i].err;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[i].partition_cnt > 0) {
          return md->topics[i].partition_cnt;
        }
      }
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && !IsTransient(err)) {
      return absl::InternalError(
          absl::StrCat("metadata for topic '", topic, "': ", rd_kafka_err2str(err)));
    }
    if (absl::Now() >= end) return 0;
    absl::SleepFor(std::min(kRetryBackoff, end - absl::Now()));
  }
}

KafkaRecord ToRecord(const rd_kafka_message_t& message) {
  KafkaRecord record;
  record.topic = rd_kafka_topic_name(message.rkt);
  record.partition = message.partition;
  record.offset = message.offset;
  if (message.key != nullptr) {
    record.key.assign(static_cast<const char*>(message.key), message.key_len);
  }
  if (message.payload != nullptr) {
    record.value.assign(static_cast<const char*>(message.payload), message.len);
  }
  rd_kafka_headers_t* headers = nullptr;  // owned by the message
  if (rd_kafka_message_headers(&message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name;
    const void* value;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      record.headers.emplace_back(
          name, value == nullptr ? std::string() : std::string(static_cast<const char*>(value), size));
    }
  }
  return record;
}

}  // namespace

absl::StatusOr<std::vector<KafkaRecord>> ReadTopic(absl::string_view brokers,
                                                   absl::string_view topic, size_t expected,
                                                   absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  ASSIGN_OR_RETURN(Consumer consumer, NewConsumer(brokers, /*for_assign=*/true));
  rd_kafka_t* rk = consumer.get();
  const std::string topic_name(topic);

  ASSIGN_OR_RETURN(int partitions, WaitForPartitions(rk, topic_name, end));
  std::vector<KafkaRecord> records;
  if (partitions == 0) return records;  // never appeared; the caller's count check reports it

  PartitionList assignment(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(assignment.get(), topic_name.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  if (rd_kafka_resp_err_t err = rd_kafka_assign(rk, assignment.get());
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(absl::StrCat("assign '", topic_name, "': ", rd_kafka_err2str(err)));
  }

  while (records.size() < expected && absl::Now() < end) {
    Message message(rd_kafka_consumer_poll(rk, BlockMs(end)));
    if (message == nullptr) continue;
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Consumer errors (a broker down, a connection reset) are reported here and retried by
      // librdkafka itself; only a fatal error ends the read.
      if (rd_kafka_fatal_error(rk, nullptr, 0) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return absl::InternalError(
            absl::StrCat("consuming '", topic_name, "': ", rd_kafka_message_errstr(message.get())));
      }
      continue;
    }
    records.push_back(ToRecord(*message));
  }
  return records;
}

absl::StatusOr<std::vector<std::string>> ListTopics(absl::string_view brokers,
                                                    absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  ASSIGN_OR_RETURN(Consumer consumer, NewConsumer(brokers, /*for_assign=*/false));
  while (true) {
    const rd_kafka_metadata_t* raw = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(consumer.get(), /*all_topics=*/1, nullptr, &raw, BlockMs(end));
    Metadata md(raw);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::vector<std::string> names;
      for (int i = 0; i < md->topic_cnt; ++i) names.emplace_back(md->topics[i].topic);
      std::sort(names.begin(), names.end());
      return names;
    }
    if (!IsTransient(err) || absl::Now() >= end) {
      return absl::UnavailableError(absl::StrCat("list topics: ", rd_kafka_err2str(err)));
    }
    absl::SleepFor(std::min(kRetryBackoff, end - absl::Now()));
  }
}

}  // namespace outboxd::test
