// Producer: the one librdkafka producer both delivery modes are built on —
// configuration (outboxd's defaults, the mode's extras, the user's
// properties), the only rd_kafka_producev() call, the poll loop with its
// wake-up pipe, records-in-flight accounting, broker reachability and the
// error callback. KafkaSink (at-least-once) and the transactional producer
// behind TransactionalSink (exactly-once) each own one.
//
//   auto producer = Producer::Create(config, /*extra=*/{}, [&](const rd_kafka_message_t& m) {...});
//   absl::Status s = (*producer)->Send(record, opaque);   // ResourceExhausted: queue full
//   (*producer)->Poll(0);                                // delivery reports run here
//
// Thread: the owning thread calls every method; the report handler and the
// error callback run on it inside Poll()/Flush() (and inside librdkafka's
// transactional calls, which flush). The log callback runs on librdkafka's
// threads, so what it and the error callback share (reachable_) is atomic.
#ifndef OUTBOXD_SINK_PRODUCER_H_
#define OUTBOXD_SINK_PRODUCER_H_

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sink/rdkafka_util.h"
#include "sink/record.h"
#include "sink/sink_config.h"

namespace outboxd::sink {

class Producer {
 public:
  // Runs for every delivery report (after the in-flight count dropped).
  using ReportHandler = std::function<void(const rd_kafka_message_t& message)>;

  static absl::StatusOr<std::unique_ptr<Producer>> Create(
      const SinkConfig& config, const std::vector<std::pair<std::string, std::string>>& extra,
      ReportHandler on_report);

  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;
  // Does not flush: the owner decided to drop what is in flight; PostgreSQL
  // hands those events out again because they were never confirmed.
  ~Producer();

  // Queues one record (copied); `opaque` comes back as the report's _private.
  // OK; ResourceExhausted: the queue is full; OutOfRange: larger than
  // message.max.bytes; FailedPrecondition: Kafka will never take it
  // (IsPermanentRecordError, e.g. its topic is known not to exist);
  // Unavailable: librdkafka refused it at once for another reason (the
  // message names the Kafka error). Nothing is queued unless OK.
  absl::Status Send(const Record& record, void* opaque);
  // librdkafka's error code for the last Send() that failed.
  rd_kafka_resp_err_t last_send_error() const { return last_send_error_; }

  // Serves delivery reports and errors, waiting up to timeout_ms.
  void Poll(int timeout_ms);
  // rd_kafka_flush(): sends what lingers and serves reports for up to timeout_ms.
  void Flush(int timeout_ms);
  // Drops records still queued (not yet sent); each is reported with
  // _PURGE_QUEUE. Records already in flight cannot be called back.
  void PurgeQueued();

  int fd() const { return wakeup_.fd(); }
  // Records accepted and not reported yet. Counted here rather than with
  // rd_kafka_outq_len(), which also counts queued error events and so
  // overstates what is in flight while brokers are down.
  int in_flight() const { return in_flight_; }
  // False once librdkafka reported every broker down; true again after the
  // next successful delivery (and before the first failure).
  bool reachable() const { return reachable_.load(std::memory_order_relaxed); }
  // OK, or (kept from the first time the error callback saw it) a
  // SinkFailure::kFatal error for a failure no retry can fix: the brokers
  // refused the credentials (RD_KAFKA_RESP_ERR__AUTHENTICATION). Names the
  // broker and the properties to check; never a property's value.
  const absl::Status& failure() const { return failure_; }
  int64_t message_max_bytes() const { return message_max_bytes_; }
  rd_kafka_t* get() const { return handle_.get(); }

 private:
  explicit Producer(ReportHandler on_report) : on_report_(std::move(on_report)) {}
  absl::Status Init(const SinkConfig& config,
                    const std::vector<std::pair<std::string, std::string>>& extra);
  void OnReport(const rd_kafka_message_t& message);
  void OnError(rd_kafka_t* rk, int err, const char* reason);
  static void ReportCallback(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
  static void ErrorCallback(rd_kafka_t* rk, int err, const char* reason, void* opaque);

  const ReportHandler on_report_;
  int64_t message_max_bytes_ = 0;
  bool scram_ = false;  // sasl.mechanisms is SCRAM-*
  int in_flight_ = 0;
  rd_kafka_resp_err_t last_send_error_ = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::atomic<bool> reachable_{true};
  absl::Status failure_;
  WakeupPipe wakeup_;  // declared before handle_: the handle goes first
  // Last member: destroyed first, so no callback can reach a half-destroyed
  // producer and librdkafka no longer writes to the wake-up pipe.
  ProducerHandle handle_;
};

// Not rd_kafka_message_errstr(): it "MUST NOT be used with the producer" —
// on a delivery report it returns the record's value as if it were a C
// string (read past the end) or treats our msg_opaque as an internal op.
std::string DeliveryError(const rd_kafka_message_t& message);

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_PRODUCER_H_
