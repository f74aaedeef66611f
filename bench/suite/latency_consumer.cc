// The bench's latency consumer; see latency_consumer.h.

#include "bench/suite/latency_consumer.h"

#include <utility>

#include "absl/status/status.h"
#include "bench/suite/load_generator.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/support/wait.h"

namespace outboxd::bench {

absl::StatusOr<std::unique_ptr<LatencyConsumer>> LatencyConsumer::Start(const std::string& brokers,
                                                                        const std::string& topic,
                                                                        int partitions,
                                                                        int fetch_wait_ms) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", brokers},
      {"group.id", "outboxd-bench"},
      {"enable.auto.commit", "false"},
      {"enable.partition.eof", "false"},
      {"auto.offset.reset", "earliest"},
      // Added to every publisher alike: kafka-mock holds an empty fetch for the whole
      // wait; a real broker answers as soon as records arrive (fetch.min.bytes=1).
      {"fetch.wait.max.ms", absl::StrCat(fetch_wait_ms)},
      {"fetch.error.backoff.ms", "5"},
      {"log_level", "3"},
      // Exactly-once publishers' records count once their transaction commits.
      {"isolation.level", "read_committed"},
  };
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(err);
  }
  std::unique_ptr<LatencyConsumer> c(new LatencyConsumer(rk));
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::InternalError(rd_kafka_err2str(e));
  c->thread_ = std::thread([p = c.get()] { p->Loop(); });
  // Assigned: wait until the consumer has fetched once (its first fetch of an empty topic),
  // so its start-up is not in the measurement.
  if (!test::WaitFor([&] { return c->polls_.load() > 3; }, absl::Seconds(20))) {
    return absl::DeadlineExceededError("consumer did not start polling");
  }
  absl::SleepFor(absl::Milliseconds(300));
  return c;
}

LatencyConsumer::~LatencyConsumer() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  rd_kafka_consumer_close(rk_);
  rd_kafka_destroy(rk_);
}

std::vector<int64_t> LatencyConsumer::TakeLatencies() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::move(latencies_us_);
}

void LatencyConsumer::Loop() {
  while (!stop_.load()) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk_, 50);
    polls_.fetch_add(1);
    if (msg == nullptr) continue;
    const int64_t now = NowUs();
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      int64_t t = -1;
      const char* value = static_cast<const char*>(msg->payload);
      if (msg->len > 0 && value[0] == '{') {
        // A plain JSON value: Debezium's StringConverter, the Kafka floor.
        t = CommitClockUs(absl::string_view(value, msg->len));
      } else if (event_.ParseFromArray(msg->payload, static_cast<int>(msg->len))) {
        t = CommitClockUs(event_.payload());
      }
      if (total_.fetch_add(1) == 0) first_consume_us_.store(now);
      last_consume_us_.store(now);
      if (t >= window_start_.load() && t < window_end_.load()) {
        measured_.fetch_add(1);
        std::lock_guard<std::mutex> lock(mu_);
        latencies_us_.push_back(now - t);
      }
    }
    rd_kafka_message_destroy(msg);
  }
}

}  // namespace outboxd::bench
