// The Kafka floor's producer; see kafka_floor.h.

#include "bench/suite/kafka_floor.h"

#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace outboxd::bench {
namespace {

std::vector<std::pair<std::string, std::string>> Settings(int linger_ms) {
  return {{"enable.idempotence", "true"},
          {"acks", "all"},
          {"linger.ms", absl::StrCat(linger_ms)},
          {"partitioner", "murmur2_random"},
          {"queue.buffering.max.messages", "20000"},
          {"queue.buffering.max.kbytes", "16384"},
          {"message.timeout.ms", "0"}};
}

}  // namespace

std::string FloorProducerSettings(int linger_ms) {
  return absl::StrJoin(Settings(linger_ms), ", ", absl::PairFormatter("="));
}

absl::StatusOr<std::unique_ptr<FloorProducer>> FloorProducer::Create(const std::string& brokers,
                                                                     int linger_ms) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> props = Settings(linger_ms);
  props.emplace_back("bootstrap.servers", brokers);
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(err);
  }
  return std::unique_ptr<FloorProducer>(new FloorProducer(rk));
}

FloorProducer::~FloorProducer() {
  rd_kafka_flush(rk_, 10000);
  rd_kafka_destroy(rk_);
}

void FloorProducer::Run(const std::string& topic, const LoadSpec& spec, int64_t start_us,
                        int64_t end_us, int64_t window_start, int64_t window_end) {
  const double interval_us = spec.rate > 0 ? 1e6 / spec.rate : 0;
  double next = start_us;
  const std::string pad(std::max(0, spec.payload_bytes - 45), 'x');
  int64_t seq = 0;
  while (true) {
    int64_t now = NowUs();
    if (now >= end_us) break;
    if (interval_us > 0) {
      if (now < next) {
        std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(next - now)));
      } else if (now > next + 50000) {
        next = now;  // more than 50 ms behind: do not burst
      }
      next += interval_us;
    }
    const int64_t t = NowUs();
    const std::string key = absl::StrCat("a", seq++ % 1000);
    const std::string value = absl::StrCat("{\"pad\": \"", pad, "\", \"t_commit_us\": ", t, "}");
    rd_kafka_resp_err_t e;
    while (true) {
      e = rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
                            RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      // Unpaced (offered max): the queue fills; wait for deliveries as outboxd's sink does.
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || NowUs() >= end_us) break;
      rd_kafka_poll(rk_, 5);
    }
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status_ = absl::InternalError(absl::StrCat("floor produce: ", rd_kafka_err2str(e)));
      return;
    }
    rd_kafka_poll(rk_, 0);
    if (t >= window_start && t < window_end) ++in_window_;
  }
  rd_kafka_flush(rk_, 10000);
}

}  // namespace outboxd::bench
