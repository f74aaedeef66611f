#include "sink/tail.h"

#include <unistd.h>  // getpid

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "librdkafka/rdkafka.h"
#include "outboxd/json.h"
#include "outboxd/status_macros.h"
#include "outboxd/v1/event.pb.h"

namespace outboxd::sink {
namespace {

struct ConsumerDeleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
using Consumer = std::unique_ptr<rd_kafka_t, ConsumerDeleter>;
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

absl::StatusOr<Consumer> MakeConsumer(const TailOptions& options) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  const std::string group = absl::StrCat("outboxd-tail-", getpid());
  const std::pair<const char*, std::string> settings[] = {
      {"bootstrap.servers", options.brokers},
      {"group.id", group},
      {"enable.auto.commit", "false"},
      {"auto.offset.reset", options.from_beginning ? "earliest" : "latest"},
      {"enable.partition.eof", "false"},
      {"topic.metadata.refresh.interval.ms", "2000"},
      {"log_level", "3"},  // errors only: a tail is for reading events, not broker chatter
  };
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("Kafka consumer setting ", key, ": ", err));
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(absl::StrCat("cannot create a Kafka consumer: ", err));
  }
  rd_kafka_poll_set_consumer(rk);
  return Consumer(rk);
}

// A plain topic name: assign every partition, no group coordination needed.
// Metadata is asked for all topics: naming one topic in the request makes a
// broker with auto-creation on create it, and a tail must not create topics.
absl::Status AssignAllPartitions(rd_kafka_t* rk, const TailOptions& options, const std::atomic<bool>& stop) {
  const absl::Time deadline =
      options.timeout > absl::ZeroDuration() ? absl::Now() + options.timeout : absl::InfiniteFuture();
  while (!stop.load() && absl::Now() < deadline) {
    const rd_kafka_metadata_t* metadata = nullptr;
    if (rd_kafka_metadata(rk, /*all_topics=*/1, nullptr, &metadata, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      PartitionList list(rd_kafka_topic_partition_list_new(1));
      for (int t = 0; t < metadata->topic_cnt; ++t) {
        const rd_kafka_metadata_topic_t& topic = metadata->topics[t];
        if (options.topic != topic.topic || topic.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
        for (int i = 0; i < topic.partition_cnt; ++i) {
          rd_kafka_topic_partition_list_add(list.get(), topic.topic, topic.partitions[i].id)->offset =
              options.from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
        }
      }
      rd_kafka_metadata_destroy(metadata);
      if (list->cnt > 0) {
        const rd_kafka_resp_err_t e = rd_kafka_assign(rk, list.get());
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
          return absl::UnavailableError(absl::StrCat("cannot read ", options.topic, ": ", rd_kafka_err2str(e)));
        }
        return absl::OkStatus();
      }
    }
    // The topic may not exist yet (nothing produced to it) or the brokers are
    // down: keep asking; waiting here is what the user asked for.
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError(absl::StrCat("topic ", options.topic, " did not appear in time"));
}

}  // namespace

std::string RecordToJson(absl::string_view topic, int32_t partition, int64_t offset,
                         absl::string_view key, absl::string_view value, const Headers& headers,
                         std::optional<Format> format) {
  // Composed by hand so keys keep a fixed, readable order.
  std::string out = "{\"topic\":";
  AppendJsonString(out, topic);
  absl::StrAppend(&out, ",\"partition\":", partition, ",\"offset\":", offset, ",\"key\":");
  AppendJsonString(out, key);
  out += ",\"headers\":{";
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i > 0) out += ",";
    AppendJsonString(out, headers[i].first);
    out += ":";
    AppendJsonString(out, headers[i].second);
  }
  out += "}";
  const Format f = format.value_or(DetectFormat(value, headers));
  absl::StrAppend(&out, ",\"format\":\"", FormatName(f), "\"");

  switch (f) {
    case Format::kEnvelope:
    case Format::kJson: {
      absl::StatusOr<v1::OutboxEvent> event = v1::OutboxEvent();
      if (f == Format::kJson) {
        event = EventFromJson(value);
      } else if (!event->ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        event = absl::InvalidArgumentError("value is not an outboxd.v1.OutboxEvent");
      }
      if (!event.ok()) {
        out += ",\"error\":";
        AppendJsonString(out, event.status().message());
        break;
      }
      out += ",\"event\":";
      AppendEventJson(*event, /*include_payload=*/false, &out);
      out += ",\"payload\":";
      AppendPayloadJson(event->payload(), event->payload_type(), &out);
      break;
    }
    case Format::kCloudEvents: {
      // The attributes as the binding maps them: ce_<name> headers, and
      // content-type as datacontenttype.
      out += ",\"cloudevent\":{";
      bool first = true;
      v1::PayloadType type = v1::PAYLOAD_TYPE_UNSPECIFIED;
      for (const auto& [name, v] : headers) {
        absl::string_view attribute = name;
        if (name == "content-type") {
          attribute = "datacontenttype";
          if (v == "application/octet-stream") type = v1::PAYLOAD_TYPE_BYTES;
        } else if (!absl::ConsumePrefix(&attribute, "ce_")) {
          continue;
        }
        if (!first) out += ",";
        first = false;
        AppendJsonString(out, attribute);
        out += ":";
        AppendJsonString(out, v);
      }
      out += "},\"payload\":";
      AppendPayloadJson(value, type, &out);
      break;
    }
    case Format::kDebezium:
      out += ",\"payload\":";
      AppendPayloadJson(value, v1::PAYLOAD_TYPE_UNSPECIFIED, &out);
      break;
  }
  out += "}";
  return out;
}

absl::Status Tail(const TailOptions& options, std::ostream& out, const std::atomic<bool>& stop) {
  const bool regex = !options.topic.empty() && options.topic[0] == '^';
  ASSIGN_OR_RETURN(auto consumer, MakeConsumer(options));
  rd_kafka_t* rk = consumer.get();
  if (regex) {
    PartitionList list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), options.topic.c_str(), RD_KAFKA_PARTITION_UA);
    if (rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::InvalidArgumentError(absl::StrCat("cannot subscribe to ", options.topic, ": ", rd_kafka_err2str(e)));
    }
  } else if (absl::Status s = AssignAllPartitions(rk, options, stop); !s.ok()) {
    return s;
  }

  const absl::Time deadline =
      options.timeout > absl::ZeroDuration() ? absl::Now() + options.timeout : absl::InfiniteFuture();
  int64_t printed = 0;
  while (!stop.load() && (options.limit == 0 || printed < options.limit)) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("only ", printed, " of ", options.limit,
                                                      " events arrived within ",
                                                      absl::FormatDuration(options.timeout)));
    }
    std::unique_ptr<rd_kafka_message_t, MessageDeleter> m(rd_kafka_consumer_poll(rk, 100));
    if (m == nullptr) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;  // transient: broker down, rebalancing
    Headers headers;
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m.get(), &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name;
      const void* value;
      size_t size;
      for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
        headers.emplace_back(name, std::string(static_cast<const char*>(value), size));
      }
    }
    out << RecordToJson(rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                        absl::string_view(static_cast<const char*>(m->key), m->key_len),
                        absl::string_view(static_cast<const char*>(m->payload), m->len), headers,
                        options.format)
        << std::endl;
    ++printed;
  }
  return absl::OkStatus();
}

}  // namespace outboxd::sink
