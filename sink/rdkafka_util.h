// Small shared pieces for code that talks to librdkafka: move-only owners of
// its handles, outboxd's producer defaults, and routing of its log lines.
#ifndef OUTBOXD_SINK_RDKAFKA_UTIL_H_
#define OUTBOXD_SINK_RDKAFKA_UTIL_H_

#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sink/sink_config.h"

namespace outboxd::sink {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

struct HeadersDeleter {
  void operator()(rd_kafka_headers_t* headers) const { rd_kafka_headers_destroy(headers); }
};
using HeadersPtr = std::unique_ptr<rd_kafka_headers_t, HeadersDeleter>;

// Owns one file descriptor. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }

 private:
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

// Owns the producer handle and the topic handles made from it. Move-only.
// Destroying it does not flush: the owner of the sink decided to drop what is
// in flight, and PostgreSQL will hand those events out again because they
// were never confirmed.
class ProducerHandle {
 public:
  ProducerHandle() = default;
  explicit ProducerHandle(rd_kafka_t* rk) : rk_(rk) {}
  ProducerHandle(const ProducerHandle&) = delete;
  ProducerHandle& operator=(const ProducerHandle&) = delete;
  ProducerHandle(ProducerHandle&& other) noexcept
      : rk_(std::exchange(other.rk_, nullptr)), topics_(std::move(other.topics_)) {
    other.topics_.clear();
  }
  ProducerHandle& operator=(ProducerHandle&& other) noexcept {
    if (this != &other) {
      Reset();
      rk_ = std::exchange(other.rk_, nullptr);
      topics_ = std::move(other.topics_);
      other.topics_.clear();
    }
    return *this;
  }
  ~ProducerHandle() { Reset(); }

  rd_kafka_t* get() const { return rk_; }

  // The handle of `topic`, made on first use and kept. Producing through a
  // kept handle skips librdkafka's per-record lookup of the name, and making
  // it asks the brokers for the topic's partitions at once; librdkafka 2.0's
  // rd_kafka_producev(RD_KAFKA_V_TOPIC) only learns them on its next
  // one-second metadata scan, which delayed a new topic's first records by up
  // to a second (every topic after each start). Null if librdkafka refuses
  // the name (see rd_kafka_last_error()).
  rd_kafka_topic_t* Topic(const std::string& topic);

  // Destroys the topic handles, then the producer (librdkafka wants them gone
  // first).
  void Reset();

 private:
  rd_kafka_t* rk_ = nullptr;
  absl::flat_hash_map<std::string, rd_kafka_topic_t*> topics_;
};

// A pipe that librdkafka writes to when an event lands on a handle's EMPTY
// main queue, so an event loop can poll() it beside other sockets. After
// Drain(), serve the queue until it is empty (rd_kafka_poll until 0), or the
// next event will not write again. Destroy the handle before the pipe.
class WakeupPipe {
 public:
  static absl::StatusOr<WakeupPipe> Attach(rd_kafka_t* rk);
  int fd() const { return read_.get(); }
  void Drain() const;

 private:
  UniqueFd read_;
  UniqueFd write_;
};

// Sets outboxd's producer defaults, then `extra` (what a mode needs, e.g.
// transactional.id), then the user's --kafka_property values, which win.
// Errors name the property, never its value (it may be a password).
absl::Status ApplyProducerProperties(rd_kafka_conf_t* conf, const SinkConfig& config,
                                     const std::vector<std::pair<std::string, std::string>>& extra);

// Errors that Kafka will give for this record however often it is sent
// (too large, invalid, topic missing, unusable or not authorized): retrying
// cannot help, so they lead to the dead-letter topic (or --on_poison=stop),
// never to a rewind.
bool IsPermanentRecordError(rd_kafka_resp_err_t err);

// A log callback (rd_kafka_conf_set_log_cb) that passes librdkafka's warnings
// and errors to outboxd's log, prefixed "kafka: ". Runs on librdkafka's threads.
void LogToOutboxd(const rd_kafka_t* rk, int level, const char* facility, const char* buf);

// The error that ends the relay when Kafka refuses its credentials (librdkafka
// reports _AUTHENTICATION and would retry it forever): a SinkFailure::kFatal
// Unauthenticated status whose message says what to check. `scram`: the
// client uses a SCRAM mechanism (sasl.mechanisms), which needs a newer
// librdkafka with Kafka 4.x brokers.
absl::Status CredentialsRefused(absl::string_view reason, bool scram);
// Whether `conf` names a SCRAM-* sasl.mechanisms.
bool UsesScram(const rd_kafka_conf_t* conf);

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_RDKAFKA_UTIL_H_
